"""Would a blend of the base and a story fine-tune generalise better than the fine-tune? (WiSE-FT,
Wortsman et al. 2022: weights base + alpha * (fine-tuned - base)). Prints the story's held-out spans'
nats/char (the selection metric of bench/story_finetune.py) for each alpha, and the other story's with --other.

    python -m bench.story_interpolate runs/recipe2/g-lr1e4-pat8-reh075/run --story bench/stories/moon_cat.txt

Rows the fine-tune added to the vocabulary keep the fine-tune's values at every alpha. One torch thread.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from aigc.checkpoint import from_pretrained
from aigc.finetune.textrecipe import heldout_split
from aigc.hub import resolve_model_path

ALPHAS = (0.0, 0.5, 0.7, 0.85, 1.0, 1.15, 1.3)


def blend(base: dict, tuned: dict, alpha: float) -> dict:
    out = {}
    for k, v in tuned.items():
        b = base[k]
        if b.shape != v.shape:                       # a grown vocabulary: the base lacks the new rows
            b = torch.cat([b, v[b.shape[0]:]], 0)
        out[k] = b + alpha * (v - b) if v.is_floating_point() else v
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a fine-tune's run folder (its model/ is the kept checkpoint)")
    p.add_argument("--story", required=True, help="the story it was fine-tuned on (for its held-out spans)")
    p.add_argument("--other", help="a text never trained on")
    p.add_argument("--base", default="char-zh")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    run = Path(a.run)
    base, tuned = from_pretrained(resolve_model_path(a.base)), from_pretrained(run / "model")
    _, held, _ = heldout_split(Path(a.story).read_text(encoding="utf-8"), tuned.config.block_size)
    other = Path(a.other).read_text(encoding="utf-8") if a.other else None
    sb, st = base.state_dict(), {k: v.clone() for k, v in tuned.state_dict().items()}
    for alpha in ALPHAS:
        tuned.load_state_dict(blend(sb, st, alpha))
        row = {"alpha": alpha, "story_heldout": round(tuned.nats_per_char(held), 4)}
        if other:
            row["other"] = round(tuned.nats_per_char(other), 4)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
