"""Every bound that the CLI, the pipelines and the studio check, defined once, and the checks.

A value outside its bound is refused with one line naming the field (ValueError), never clipped
silently. The studio's sliders use the same numbers as their ranges.
"""
from __future__ import annotations

import math
import numbers

SEED_MAX = 2 ** 32 - 1            # a browser number field holds it exactly; numpy and torch accept it
IMAGE_TEMP_MAX = 2.0              # truncation / prior temperature: beyond 2 the samples are noise
LATENT_ABS_MAX = 16.0             # |z| per coordinate in a recipe: 16 standard deviations
GRID_MAX = 6                      # a grid side in the studio: up to 36 samples per render
FRAMES_MAX = 32                   # interpolation frames in the studio
PATH_STEPS_MAX = 256              # interpolation steps in the library
SAMPLE_PNG_MAX = 1024             # `aigc sample --out x.png`: a grid a person can still look at
SAMPLE_NPZ_MAX = 50_000           # `aigc sample --out x.npz`: enough for one's own FID-50k
SAMPLE_BATCH = 250                # samples drawn per forward pass when many are asked for

TEXT_TEMP_MAX = 5.0               # text sampling temperature; 0 is greedy
MAX_NEW_CHARS = 20_000            # characters one text generation may add
MAX_PROMPT_CHARS = 100_000        # a longer prompt is refused, not truncated
TEXT_FILE_MAX_BYTES = 50 << 20    # `aigc eval --text-file`

FINETUNE_STEPS_MAX = 100_000      # one fine-tune job or command
FINETUNE_MINUTES_MAX = 24 * 60    # the longest time limit a fine-tune may ask for (one day)


def check_number(v, what: str) -> float:
    """A finite real number (bools and strings refused) -> float."""
    if isinstance(v, bool) or v is None:
        raise ValueError(f"{what} must be a number")
    if not isinstance(v, numbers.Real):
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be a number (got {type(v).__name__})") from None
    x = float(v)
    if not math.isfinite(x):
        raise ValueError(f"{what} must be a finite number")
    return x


def check_float(v, lo: float, hi: float, what: str) -> float:
    x = check_number(v, what)
    if not lo <= x <= hi:
        raise ValueError(f"{what} must be between {lo:g} and {hi:g} (got {x:g})")
    return x


def check_int(v, lo: int, hi: int, what: str) -> int:
    x = check_number(v, what)
    if x != int(x):
        raise ValueError(f"{what} must be a whole number (got {x:g})")
    if not lo <= x <= hi:
        raise ValueError(f"{what} must be between {lo} and {hi} (got {int(x)})")
    return int(x)


def check_seed(v, what: str = "seed") -> int:
    return check_int(v, 0, SEED_MAX, what)
