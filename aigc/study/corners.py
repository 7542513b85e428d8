"""Inception FID (or another registered metric) at the grid's corners, measured after the grid on the
cells' saved models, so a study gathered from parallel processes gets its corners without retraining.

The corners are those `is_corner` names (smallest and largest fraction x lowest and highest compute,
augmentation on and off, the corner seed). Each corner's model is looked for at
<models>/cells/<cell key>/model in the folders given (the run folders of the processes that trained
them); the study file is updated after every corner (atomically), so an interrupted run resumes and
never measures a corner twice.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from aigc.fileio import atomic_write_json
from aigc.study.grid import cells, is_corner, make_spec, read_study, study_lock, study_path


def corner_cells(spec: dict) -> list:
    return [c for c in cells(spec) if is_corner(spec, c)]


def _model_dir(key: str, models: list) -> Path | None:
    for root in models:
        d = Path(root) / "cells" / key / "model"
        if (d / "model.safetensors").is_file() and (d / "config.json").is_file():
            return d
    return None


def _steps_of(model_dir: Path) -> int | None:
    import json
    try:
        return int(json.loads((model_dir.parent / "summary.json").read_text())["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def add_corner_metrics(study_dir, models: list, metrics: list[str] | None = None, n: int | None = None,
                       on_progress: Callable[[dict], None] | None = None) -> dict:
    """Measure `metrics` (default: the spec's corner metrics, else ["fid"]) with `n` samples (default:
    the spec's corner_eval_n) at every corner of the study in `study_dir` that lacks them; returns the
    updated study. A corner whose model is missing, or whose saved run differs from the one measured
    (its step count), is refused with the reason: its numbers would describe another model."""
    from aigc.checkpoint import from_pretrained
    from aigc.eval import evaluate

    from aigc.eval.metrics import resolve

    study_dir = Path(study_dir)
    emit = on_progress or (lambda e: None)
    metrics = resolve(metrics) if metrics else None
    if not study_path(study_dir).is_file():
        raise ValueError(f"{study_dir}: holds no measured study (no study.json)")
    with study_lock(study_dir):
        study = read_study(study_dir)
        if not study["runs"] or "spec" not in study:
            raise ValueError(f"{study_dir}: holds no measured study")
        spec = make_spec(study["spec"])
        t = spec["images"]
        metrics = list(metrics or t["corner_metrics"] or ["fid"])
        n = int(n or t["corner_eval_n"])
        todo = [c for c in corner_cells(spec) if c.key in study["runs"]]
        if not todo:
            raise ValueError(f"{study_dir}: none of the grid's corners is measured in this study")
        for i, cell in enumerate(todo, 1):
            have = {r["metric"] for r in study["cells"] if r["metric"] in metrics
                    and all(r[k] == v for k, v in asdict(cell).items())}
            if have == set(metrics):
                continue
            d = _model_dir(cell.key, models)
            if d is None:
                raise ValueError(f"no saved model for corner {cell.key} under {', '.join(map(str, models))}")
            if _steps_of(d) != study["runs"][cell.key].get("steps"):
                raise ValueError(f"{d}: trained {_steps_of(d)} steps, the study measured "
                                 f"{study['runs'][cell.key].get('steps')}; not the same model")
            emit({"phase": "corner", "index": i, "total": len(todo),
                  "text": f"[{i}/{len(todo)}] {cell.key}: {', '.join(metrics)} on {n} samples"})
            t0 = time.time()
            res = evaluate(from_pretrained(d).eval(), t["dataset"], metrics=metrics, n=n, seed=0)
            base = asdict(cell)
            study["cells"] = [r for r in study["cells"] if not (r["metric"] in metrics and
                                                                 all(r[k] == v for k, v in base.items()))]
            study["cells"] += [{**base, "metric": m, "value": float(res[m])} for m in metrics]
            study["runs"][cell.key] = {**study["runs"][cell.key], "corner": True,
                                       "corner_eval_s": round(time.time() - t0, 1)}
            study["spec"]["images"] = {**study["spec"]["images"], "corner_metrics": metrics, "corner_eval_n": n}
            if "images" in study["recipe"]:
                study["recipe"]["images"] = {**study["recipe"]["images"], "corner_metrics": metrics,
                                             "corner_eval_n": n}
            atomic_write_json(study_path(study_dir), study)
            emit({"phase": "corner_done", "index": i, "total": len(todo),
                  "text": f"[{i}/{len(todo)}] {cell.key}: " + ", ".join(f"{m} {res[m]:.2f}" for m in metrics)})
    return study
