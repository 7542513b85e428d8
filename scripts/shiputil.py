"""What shipping any run into weights/ shares: stage a copy beside weights/NAME, swap it in atomically."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def add_card_args(ap, title_required: bool = True) -> None:
    """The arguments every ship script takes: the run, the name, and what the card says."""
    ap.add_argument("run", help="training run folder")
    ap.add_argument("name", help="folder name under weights/")
    ap.add_argument("--title", required=title_required, default=None,
                    help="card title line" + ("" if title_required else " (default: NAME)"))
    ap.add_argument("--summary", required=True, help="card summary paragraph")
    ap.add_argument("--train-command", required=True, help="the exact training command")
    ap.add_argument("--hardware", required=True, help="where and how long it trained")
    ap.add_argument("--extra-file", default=None, help="markdown appended to the card")


def stage(run: Path, name: str, drop: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Copy RUN/model (less `drop`) and the run's training record to weights/.NAME.tmp;
    returns (tmp, dest)."""
    dest = ROOT / "weights" / name
    tmp = dest.with_name(f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(run / "model", tmp)
    for stale in drop:
        (tmp / stale).unlink(missing_ok=True)
    (tmp / "training").mkdir(exist_ok=True)
    copy_run_record(run, tmp / "training")
    keep_lineage(run / "model", tmp)
    return tmp, dest


def copy_run_record(run: Path, out: Path) -> None:
    """A run folder's training record (resolved options, stats.jsonl, summary) into out/."""
    out.mkdir(parents=True, exist_ok=True)
    for f in ("options.json", "stats.jsonl", "summary.json"):
        if (run / f).is_file():
            shutil.copy2(run / f, out / f)


def keep_lineage(model: Path, tmp: Path) -> None:
    """A fine-tuned run: name its bases in the staged config (models saved before the record
    existed get it from their run folders) and keep each base's training record under
    training/base-K/, nearest first, since shipping may replace the very folder a base lived in.
    A base whose folder now holds other weights (or is gone) keeps its record in the config only."""
    from aigc import checkpoint as ckpt
    train = ckpt.train_record(model)
    chain = ckpt.lineage(train)
    if not chain:
        return
    cfg = ckpt.read_config(tmp)
    cfg["train"] = train
    ckpt.atomic_write_json(tmp / "config.json", cfg)
    for k, rec in enumerate(chain, 1):
        base, out = ckpt.find_base(str(rec.get("path"))), tmp / "training" / f"base-{k}"
        if base is None or ckpt.weights_hash(base) != rec.get("weights"):
            print(f"note: base {k} ({rec.get('path')}) is gone or holds other weights now; "
                  "its training record is not copied", file=sys.stderr)
            continue
        if (base / "training").is_dir():              # a shipped model: its record travels with it
            shutil.copytree(base / "training", out)
        elif base.name == "model" and (base.parent / "options.json").is_file():   # a run folder
            copy_run_record(base.parent, out)


def swap_in(tmp: Path, dest: Path) -> None:
    """Replace dest with tmp: the old folder is moved aside first, so a reader never sees a mix."""
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)
