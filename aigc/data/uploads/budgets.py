"""What one upload check may cost: bytes, entries, pixels, seconds, and the shape of a usable text.

Checks run in the server process (the Fine-tune tab's /check_upload) and in job workers. Every
budget here bounds ONE check: a hostile upload costs at most `max_check_seconds` of one core and
one decoded picture of at most `max_pixels` (a few hundred MB while it is converted) at a time, so
several checks may run at once and none makes another person's wait longer than its own budget.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


class UploadError(ValueError):
    """An upload that cannot be used; the message says why (one line)."""


@dataclass(frozen=True)
class UploadLimits:
    max_upload_bytes: int = 200 * 2 ** 20        # the uploaded file itself
    max_entries: int = 20_000                    # zip members (folders included)
    max_total_uncompressed: int = 1 * 2 ** 30    # sum of declared sizes, and of bytes actually read
    max_member_bytes: int = 50 * 2 ** 20         # one member, declared and read
    max_ratio: float = 100.0                     # per-member uncompressed / compressed ...
    ratio_min_bytes: int = 64 * 2 ** 10          # ... for members this large (tiny blank icons reach 300x)
    max_pixels: int = 4096 * 4096                # one picture, from its header; larger ones are skipped
    max_total_pixels: int = 200_000_000          # all pictures of one upload, from headers, before decoding
    max_check_seconds: float = 20.0              # wall clock for one whole check
    min_images: int = 16                         # usable images after duplicates are removed
    max_text_bytes: int = 50 * 2 ** 20
    max_distinct_chars: int = 5000
    min_text_chars: int = 500                    # less cannot train and still spare a held-out slice
    min_distinct_chars: int = 8                  # fewer: nothing to learn but a pattern
    min_char_entropy: float = 1.0                # bits per character; English prose has ~4.5
    max_text_compression: float = 50.0           # zlib ratio; prose compresses 2-4x, one repeated span 100x+
    phash_distance: int = 4                      # near duplicate: pHash Hamming distance <= this ...
    near_mean_diff: float = 10.0                 # ... and mean |pixel difference| of 8x8 thumbnails <= this


DEFAULT_LIMITS = UploadLimits()


class Deadline:
    """The wall-clock budget of one check; `check()` between units of work refuses once it is spent."""

    def __init__(self, seconds: float, label: str):
        self.seconds = seconds
        self.label = label
        self.end = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() >= self.end:
            raise UploadError(f"{self.label}: checking it took longer than {self.seconds:g} s (the time budget "
                              "of one upload check); upload fewer or smaller images")


def fmt_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


def check_upload_size(path: Path, limit: int) -> int:
    """The upload's size in bytes; UploadError when it is missing or over `limit`."""
    if not path.is_file():
        raise UploadError(f"{path.name}: no such file")
    size = path.stat().st_size
    if size > limit:
        raise UploadError(f"{path.name} is {fmt_bytes(size)}; uploads are limited to {fmt_bytes(limit)}")
    return size
