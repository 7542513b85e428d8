"""Where things are: the repository's folders, saved models by name, listing them, and their
recorded metrics. Imports no torch, so the CLI's `list` and the studio's start stay light."""
from __future__ import annotations

from pathlib import Path

from aigc import fileio

REPO_ROOT = Path(__file__).resolve().parents[1]
WEIGHTS_DIR = REPO_ROOT / "weights"
DATA_DIR = REPO_ROOT / "data"
STUDY_DIR = REPO_ROOT / "bench" / "study"      # the shipped data-vs-compute study (study.json)

KEY_METRICS = ("fid", "kid", "cluster_acc", "nmi", "nll_nats", "domain_fd", "label_acc", "nats_per_char",
               "bits_per_char", "kid_randconv", "copy_rate", "kl_per_line", "active_units", "interp_well_formed")


def resolve_model_path(name_or_path: str | Path, search: list[Path] | None = None) -> Path:
    """A folder name under weights/ (or under any folder in `search`), or a path to a saved model
    (a run folder is accepted too: its `model/` is used)."""
    p = Path(name_or_path)
    candidates = [p] if (p.is_absolute() or len(p.parts) > 1 or p.exists()) else []
    for root in (search or []) + [WEIGHTS_DIR]:
        if len(p.parts) == 1 and p.name not in ("", ".", ".."):
            candidates.append(Path(root) / p.name)
    for c in candidates:
        if (c / "config.json").is_file():
            return c
        if (c / "model" / "config.json").is_file():
            return c / "model"
    raise FileNotFoundError(f"no saved model named {str(name_or_path)!r} (looked in weights/ and as a path)")


def model_name(folder: str | Path) -> str:
    """A saved model's name: its folder's, or its run folder's for a training run's `model/`."""
    folder = Path(folder)
    return folder.parent.name if folder.name == "model" else folder.name


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
                cfg = fileio.read_config(d)
            except fileio.CheckpointError as e:
                rows.append({"name": d.name, "path": str(d), "kind": "?", "modality": "?", "dataset": None,
                             "metrics": {}, "error": str(e)})
                continue
            metrics = fileio.read_metrics(d)
            name = model_name(d)
            rows.append({"name": name, "path": str(d), "kind": cfg["kind"],
                         "modality": cfg.get("modality", "image"), "dataset": cfg.get("dataset"),
                         "metrics": {k: metrics[k] for k in KEY_METRICS if k in metrics}})
    return rows


def record_metrics(directory: Path, result: dict) -> dict:
    """Merge an evaluation result into metrics.json (atomically)."""
    metrics = fileio.read_metrics(directory)
    metrics.update(result)
    fileio.atomic_write_json(Path(directory) / "metrics.json", metrics)
    return metrics
