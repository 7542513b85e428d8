"""Issue 5, target 2: cross-entropy of a text model before and after fine-tuning, on held-out text.

    python bench/make_legal_text.py
    python -m aigc finetune char-shakespeare --data runs/text/legal-train.txt --out runs/text/legal-ft --steps 60
    python bench/finetune_text_eval.py --base char-shakespeare --tuned runs/text/legal-ft

Scores (nats/char, `aigc.cli.text.score_text`: the protocol of `python -m aigc eval MODEL --text-file F`)
the base model and the fine-tuned one on
  - the held-out licences (runs/text/legal-heldout.txt: documents never seen in training), and
  - the last 10% of the upload, which `aigc finetune` held out of training (split_heldout);
and prints the run's own quality curve (stats.jsonl) with its steps and wall time.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

from aigc import checkpoint as ckpt  # noqa: E402
from aigc.data.uploads import split_heldout  # noqa: E402
from aigc.hub import resolve_model_path  # noqa: E402
from aigc.cli.text import score_text  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="char-shakespeare")
    ap.add_argument("--tuned", default=str(ROOT / "runs" / "text" / "legal-ft"), help="the finetune --out folder")
    ap.add_argument("--train", default=str(ROOT / "runs" / "text" / "legal-train.txt"), help="the upload")
    ap.add_argument("--heldout", default=str(ROOT / "runs" / "text" / "legal-heldout.txt"))
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    run = Path(a.tuned)
    base = ckpt.from_pretrained(resolve_model_path(a.base))
    tuned = ckpt.from_pretrained(run / "model")
    upload = Path(a.train).read_text(encoding="utf-8")
    _, inner, note = split_heldout(upload, tuned.config.block_size)
    texts = {"held-out licences (never seen)": Path(a.heldout).read_text(encoding="utf-8"),
             "upload's last 10% (held out by finetune)": inner}
    print(f"base {a.base} ({sum(p.numel() for p in base.parameters()) / 1e6:.1f}M parameters, block "
          f"{base.config.block_size}); tuned {run / 'model'}")
    for label, text in texts.items():
        t = time.time()
        rb = score_text(base, text)
        rt = score_text(tuned, text)
        print(f"  {label:<42} {rb['chars']:>6} chars ({rb['unknown_chars']} unknown): "
              f"{rb['nats_per_char']:.4f} -> {rt['nats_per_char']:.4f} nats/char "
              f"({100 * (rt['nats_per_char'] / rb['nats_per_char'] - 1):+.1f}%)  [{time.time() - t:.0f} s]")
    stats = [json.loads(ln) for ln in (run / "stats.jsonl").read_text().splitlines() if ln.strip()]
    summ = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    rates = [r["tok_per_s"] for r in stats if "tok_per_s" in r]
    print(f"run: {summ.get('steps', stats[-1]['step'])} steps at batch {summ.get('batch_size')}, "
          f"{summ.get('time_s', stats[-1].get('time_s', 0)):.0f} s ({summ.get('train_s', 0):.0f} s training), "
          f"median {sorted(rates)[len(rates) // 2]:.0f} tokens/s; epochs {stats[-1].get('epoch')}")
    print("  held-out curve during training (finetune's own eval, 64 windows):",
          ", ".join(f"step {r['step']}: {r['nats_per_char']:.3f}" for r in stats if "nats_per_char" in r))
    print("  training loss:", ", ".join(f"step {r['step']}: {r['loss']:.3f}" for r in stats if "loss" in r
                                         and (r["step"] % 15 == 0 or r is stats[-1] or r["step"] <= 3)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
