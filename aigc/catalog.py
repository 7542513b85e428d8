"""What models exist: scanning folders of saved models, and recording measured metrics."""
from __future__ import annotations

from pathlib import Path

from . import checkpoint as ckpt
from .pipelines import WEIGHTS_DIR

KEY_METRICS = ("fid", "kid", "nll_nats", "domain_fd", "label_acc", "nats_per_char", "bits_per_char",
               "kid_randconv", "copy_rate", "kl_per_line", "active_units", "interp_well_formed")


def list_models(extra_dirs: list[Path] | None = None) -> list[dict]:
    """Every saved model under weights/ and the given folders (folders starting with '_' or '.'
    hold support files, not models). Unreadable folders are listed with their error."""
    rows = []
    for root in [WEIGHTS_DIR] + list(extra_dirs or []):
        root = Path(root)
        if (root / "config.json").is_file():
            dirs = [root]
        elif root.is_dir():
            dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(("_", ".")))
        else:
            raise FileNotFoundError(f"{root}: no such folder")
        for d in dirs:
            if not (d / "config.json").is_file() and (d / "model" / "config.json").is_file():
                d = d / "model"          # a training run folder: list its model
            if not (d / "config.json").is_file():
                continue
            try:
                cfg = ckpt.read_config(d)
            except ckpt.CheckpointError as e:
                rows.append({"name": d.name, "path": str(d), "kind": "?", "modality": "?", "dataset": None,
                             "metrics": {}, "error": str(e)})
                continue
            metrics = ckpt.read_metrics(d)
            name = d.parent.name if d.name == "model" else d.name
            rows.append({"name": name, "path": str(d), "kind": cfg["kind"],
                         "modality": cfg.get("modality", "image"), "dataset": cfg.get("dataset"),
                         "metrics": {k: metrics[k] for k in KEY_METRICS if k in metrics}})
    return rows


def record_metrics(directory: Path, result: dict) -> dict:
    """Merge an evaluation result into metrics.json (atomically)."""
    metrics = ckpt.read_metrics(directory)
    metrics.update(result)
    ckpt.atomic_write_json(Path(directory) / "metrics.json", metrics)
    return metrics
