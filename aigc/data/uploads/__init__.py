"""Checked preparation of an uploaded dataset: a .zip of images or a .txt / .jsonl text.

archive (zip reading, member checks), images (image uploads), text (text uploads), groups (what a
VaDE base sees in an image upload), report (the preparation report), budgets (what one check may
cost), dedup (duplicate images). Every refusal is an UploadError (a ValueError: the CLI prints it in
one line and exits 2). Nothing is extracted: the only files written are report.json and
preview.png, and only into a job folder when given.
"""
from __future__ import annotations

from pathlib import Path

from aigc.data.uploads.archive import read_member as _read_member  # noqa: F401 (tests)
from aigc.data.uploads.budgets import DEFAULT_LIMITS, Deadline, UploadError, UploadLimits
from aigc.data.uploads.dedup import find_duplicates, phash
from aigc.data.uploads.images import (IMAGE_SUFFIXES, RESOLUTIONS, PreparedImages, _decode, _square,  # noqa: F401
                                      prepare_image_zip)
from aigc.data.uploads.groups import group_upload
from aigc.data.uploads.report import format_report, group_lines, write_report
from aigc.data.uploads.text import (TEXT_HELDOUT_MAX_CHARS, TEXT_HELDOUT_SHARE, TEXT_SUFFIXES, PreparedText,
                                    degenerate_reason, prepare_text, split_heldout)


def upload_kind(path: str | Path) -> str:
    """'images' for a .zip, 'text' for .txt / .jsonl; UploadError otherwise."""
    s = Path(path).suffix.lower()
    if s == ".zip":
        return "images"
    if s in TEXT_SUFFIXES:
        return "text"
    raise UploadError(f"{Path(path).name}: upload a .zip of images, or a .txt / .jsonl text file")


__all__ = ["DEFAULT_LIMITS", "Deadline", "IMAGE_SUFFIXES", "PreparedImages", "PreparedText", "RESOLUTIONS",
           "TEXT_HELDOUT_MAX_CHARS", "TEXT_HELDOUT_SHARE", "TEXT_SUFFIXES", "UploadError", "UploadLimits",
           "degenerate_reason", "find_duplicates", "format_report", "group_lines", "group_upload", "phash",
           "prepare_image_zip", "prepare_text", "split_heldout", "upload_kind", "write_report"]
