"""`zh-modern`: today's Chinese for the `char-zh` base model.

Two corpora from data/text/ (see data/README.md): the People's Daily of January 1998 (news, one
paragraph a line) and 35,123 product reviews (informal, one a line). Exact duplicate paragraphs
are dropped (the first kept); a paragraph is held out when the last byte of its SHA-1 is < 13
(5.1%), fixed by content so any machine agrees. Paragraphs end with a newline; the vocabulary is
every character of both corpora, held-out part included, so no character an upload shares with
them is unknown.
"""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

ZH_FILES = ("peoples_daily_1998_01.txt.gz", "reviews_zh.txt.gz")


def held_out(paragraph: str) -> bool:
    return hashlib.sha1(paragraph.encode("utf-8")).digest()[-1] < 13


def zh_modern(root: Path) -> tuple[str, str, dict]:
    """(training text, held-out text, facts) of the two modern corpora."""
    train, val, seen = [], [], set()
    counts = {"paragraphs": 0, "dropped_duplicate": 0, "dropped_empty": 0}
    for name in ZH_FILES:
        with gzip.open(Path(root) / name, "rt", encoding="utf-8") as f:
            for line in f:
                p = line.strip()
                counts["paragraphs"] += 1
                if not p:
                    counts["dropped_empty"] += 1
                    continue
                if p in seen:
                    counts["dropped_duplicate"] += 1
                    continue
                seen.add(p)
                (val if held_out(p) else train).append(p + "\n")
    info = {**counts, "kept": len(seen), "held_out_paragraphs": len(val), "sources": list(ZH_FILES),
            "script": "simplified"}
    return "".join(train), "".join(val), info
