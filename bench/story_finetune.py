"""Fine-tune a char-lm on one short story; print the held-out OTHER story's nats/char before and
after, the copy rate and the minutes (issue 18's check: the other story must get better while the
copy rate stays low).

    python bench/story_finetune.py --base char-zh --out /tmp/story-run            # a pair built below
    python bench/story_finetune.py --base char-zh --story a.txt --other b.txt --out /tmp/run --lr 3e-4
    python bench/story_finetune.py --base char-zh --story a.txt --out /tmp/run --rehearsal 0.5  # selection only

Without --other, only the story's own held-out spans are measured (choose a recipe by them, then
check the other story once). It prints the recipe used (dropout, layers, rehearsal, ...).

Without --story/--other it builds a pair from the People's Daily of January 1998: paragraphs held
out of char-zh's training (aigc.data.zh.held_out) that contain --topic, in file order; the first
~5,000 characters are the story, the next ~3,000 the other story "by the same author". One torch
thread, as a shared CPU allows. Prints one JSON line last.
"""
from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def make_pair(topic: str, story_chars: int = 5000, other_chars: int = 3000) -> tuple[str, str]:
    from aigc.data.zh import held_out
    story, other = [], []
    with gzip.open(ROOT / "data" / "text" / "peoples_daily_1998_01.txt.gz", "rt", encoding="utf-8") as f:
        for line in f:
            p = line.strip()
            if len(p) < 40 or topic not in p or not held_out(p):
                continue
            part = story if sum(map(len, story)) < story_chars else other
            part.append(p + "\n")
            if sum(map(len, other)) >= other_chars:
                break
    return "".join(story), "".join(other)


def nats(model_dir, text: str) -> float:
    from aigc.checkpoint import from_pretrained
    return from_pretrained(model_dir).nats_per_char(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="char-zh")
    ap.add_argument("--story", help="the story to fine-tune on (.txt)")
    ap.add_argument("--other", help="another story by the same author, never trained on (.txt)")
    ap.add_argument("--topic", default="", help="built pair: only paragraphs containing this word (default: all)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-minutes", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--patience", type=int, default=None)
    ap.add_argument("--eval-every", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dropout", type=float, default=None, help="while fine-tuning only (default: the recipe's)")
    ap.add_argument("--train-layers", default=None, help="all | no-embeddings | top-N (default: the recipe's)")
    ap.add_argument("--rehearsal", type=float, default=None, help="share of each batch from the base's corpus")
    ap.add_argument("--rehearsal-like", type=int, default=None,
                    help="rehearse the corpus's paragraphs most like the story, this many characters (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from aigc.finetune.run import FinetuneSpec, finetune
    from aigc.hub import resolve_model_path
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.story:         # without --other: a selection run, judged on the story's own held-out spans only
        story_path, other = Path(a.story), Path(a.other).read_text(encoding="utf-8") if a.other else None
    else:
        story, other = make_pair(a.topic)
        story_path = out / "story.txt"
        story_path.write_text(story, encoding="utf-8")
        (out / "other.txt").write_text(other, encoding="utf-8")
    base = resolve_model_path(a.base)
    before = nats(base, other) if other else None
    t = time.time()
    spec = FinetuneSpec(base=str(base), data=story_path, out=out / "run", steps=a.steps, max_minutes=a.max_minutes,
                        lr=a.lr, patience=a.patience, eval_every=a.eval_every, batch_size=a.batch_size,
                        dropout=a.dropout, train_layers=a.train_layers, rehearsal=a.rehearsal, rehearsal_like=a.rehearsal_like, seed=a.seed,
                        progress=False)
    model = finetune(spec, on_progress=lambda e: print(e["text"], flush=True) if e.get("text") else None)
    minutes = (time.time() - t) / 60
    after = nats(model, other) if other else None
    metrics = json.loads((model / "metrics.json").read_text(encoding="utf-8"))
    recipe = json.loads((out / "run" / "report.json").read_text(encoding="utf-8")).get("recipe", {})
    summary = json.loads((out / "run" / "summary.json").read_text(encoding="utf-8"))
    res = {"base": a.base, "story_chars": len(story_path.read_text(encoding="utf-8")),
           "other_chars": len(other) if other else None,
           "other_nats_before": round(before, 3) if other else None,
           "other_nats_after": round(after, 3) if other else None,
           "gain": round(before - after, 3) if other else None, "copy_rate": metrics.get("text_copy_rate"),
           "heldout_nats_kept": metrics.get("nats_per_char"), "kept_step": metrics.get("measured_at_step"),
           "heldout_nats_start": (metrics.get("at_start") or {}).get("nats_per_char"),
           "steps_run": summary.get("steps"), "minutes": round(minutes, 2), "batch_size": a.batch_size,
           "steps": a.steps, "max_minutes": a.max_minutes, "seed": a.seed,
           "recipe": {k: v for k, v in recipe.items() if k != "line"}}
    print(recipe.get("line", "recipe: (not recorded)"))
    print(f"story's held-out (the selection metric): {res['heldout_nats_start']} -> {res['heldout_nats_kept']} "
          f"nats/char at step {res['kept_step']}")
    if other:
        print(f"other story: {before:.3f} -> {after:.3f} nats/char ({before - after:+.3f})")
    print(f"copy rate {100 * (res['copy_rate'] or 0):.1f}%; {minutes:.1f} minutes")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
