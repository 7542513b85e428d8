"""A run's `stats.jsonl`: one JSON object per logged step, read back by jobs, cards and plots."""
from __future__ import annotations

import json
from pathlib import Path


def read_stats(run_dir: Path) -> list[dict]:
    """Every complete record of a run folder's stats.jsonl (a line being written is skipped)."""
    out = []
    try:
        lines = (Path(run_dir) / "stats.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for ln in lines:
        try:
            rec = json.loads(ln)
        except ValueError:
            continue        # a line being written
        if isinstance(rec, dict) and "step" in rec:
            out.append(rec)
    return out
