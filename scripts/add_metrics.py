"""Add a new evaluation to a shipped model: merge its JSON into weights/NAME/metrics.json and
rewrite the card's metrics table, protocol line and evaluation commands from the merged file.

    .venv/bin/python -m scripts.add_metrics NAME --eval-json FILE --eval-command "python -m aigc eval ..."

FILE is the JSON object printed by `python -m aigc eval NAME --metrics ... --json`. Its metric values
go into metrics.json as printed; its protocol is appended to the one already there (so the card says
how every number was measured) and the command is added to the card's evaluation block. The card's
other sections are kept as they are. Both files are written atomically.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_KEYS = ("dataset", "n", "seed", "model_kind", "model", "eval_seconds", "protocol")


def merge(old: dict, new: dict) -> dict:
    """The metrics of both; the protocols joined; the run facts (n, seed, ...) of the first kept."""
    out = dict(old)
    out.update({k: v for k, v in new.items() if k not in RUN_KEYS})
    parts = [p for p in (old.get("protocol"), new.get("protocol")) if p]
    if new.get("protocol") and new["protocol"] in (old.get("protocol") or ""):
        parts = [old["protocol"]]
    if parts:
        out["protocol"] = "; ".join(parts)
    return out


def rewrite_card(text: str, metrics: dict, command: str) -> str:
    """The card with its measured section rendered anew (as write_card does) and `command` added to
    its evaluation block; everything else as it was."""
    from aigc.finetune.cards import measured_lines
    head, rest = text.split("## Measured metrics", 1)
    tail = rest.split("## Reproduce", 1)[1]
    if command not in tail:
        tail = re.sub(r"(Evaluation \(prints one JSON object[^\n]*\n\n```\n)(.*?)(\n```)",
                      lambda m: m.group(1) + m.group(2) + "\n" + command + m.group(3), tail, count=1, flags=re.S)
    return head + "\n".join(measured_lines(metrics)) + "\n## Reproduce" + tail


def add_metrics(d: Path, new: dict, command: str) -> dict:
    """Merge `new` into d/metrics.json and rewrite d/README.md's measured part; returns the metrics."""
    from aigc.fileio import atomic_write_json, atomic_write_text, read_metrics
    if not isinstance(new, dict) or new.get("model") not in (d.name, None):
        raise ValueError(f"not an `aigc eval --json` result for {d.name}")
    metrics = merge(read_metrics(d), new)
    card = rewrite_card((d / "README.md").read_text(encoding="utf-8"), metrics, command)
    atomic_write_json(d / "metrics.json", metrics)
    atomic_write_text(d / "README.md", card)
    return metrics


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("name", help="folder under weights/")
    ap.add_argument("--eval-json", required=True, help="the JSON printed by `python -m aigc eval ... --json`")
    ap.add_argument("--eval-command", required=True, help="the command that printed it, for the card")
    a = ap.parse_args(argv)
    try:
        metrics = add_metrics(ROOT / "weights" / a.name, json.loads(Path(a.eval_json).read_text(encoding="utf-8")),
                              a.eval_command)
    except ValueError as e:
        raise SystemExit(f"{a.eval_json}: {e}") from None
    print(json.dumps({k: v for k, v in metrics.items() if k != "protocol"}))
    return 0

if __name__ == "__main__":
    sys.exit(main())
