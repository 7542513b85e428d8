"""Line datasets for the sentence VAE (aigc.models.textvae): one short line of text per example.

  tang-lines    Single clauses (句) of Tang poems: the clauses of exactly 5 or 7 hanzi in the body
                lines of the `tang` corpus (aigc.data.text; header lines 【...】 skipped), split by
                aigc.text.forms.clauses. Training lines come from the training poems, held-out
                lines from the held-out poems (by poem, as for char-tang). Choices, each counted
                in `info`:
                  * clauses holding 囗 are dropped: the corpus writes a lost character that way
                    ("囗囗囗囗囗" is among the most frequent "lines"); it is a hanzi, so the corpus
                    cleaning keeps it.
                  * training clauses are deduplicated (first occurrence kept): 3% of them repeat,
                    mostly refrains and set openings (何处春深好 19 times in one poem series);
                    keeping the repeats would weight a few formulas up to 19x and teach the model
                    to recite them, while every distinct line is still seen.
                  * held-out lines are the distinct held-out clauses that never occur among the
                    training clauses (so reconstruction is measured on lines the model has not
                    seen) and hold no character outside the vocabulary (the decoder cannot write
                    one, so such a line could never be reconstructed).
                Vocabulary: characters seen at least twice in the kept training lines.

A `LineData` offers the training loop the interface of `TextData`: name, len() (lines),
model_overrides(kind), source(device), model_meta(), plus `evaluate(model)` and `eval_metric`
for the loop's periodic held-out score. Ids are padded with -1 after each line's end (the model
maps that to its own PAD symbol).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from aigc.text import forms
from aigc.text.tokenizer import CharTokenizer
from aigc.data.text import check_split, load_text_corpus

LOST_CHAR = "囗"
LINE_LENGTHS = (5, 7)
VOCAB_MIN_COUNT = 2
EVAL_LINES = 2000          # held-out lines scored by the loop's periodic evaluation


def poem_clauses(text: str, lengths=LINE_LENGTHS) -> list[str]:
    """Clauses of `lengths` hanzi from the body lines of corpus text (header lines skipped)."""
    out = []
    for ln in text.split("\n"):
        if not ln or ln.startswith(forms.HEADER_OPEN):
            continue
        for c, _ in forms.clauses(ln):
            if len(c) in lengths and all(forms.is_hanzi(ch) for ch in c):
                out.append(c)
    return out


def _tang_lines(data_dir) -> tuple[list[str], list[str], dict, CharTokenizer]:
    train_text, val_text, corpus_info, _ = load_text_corpus("tang", data_dir)
    clauses = poem_clauses(train_text)
    clean = [c for c in clauses if LOST_CHAR not in c]
    train = list(dict.fromkeys(clean))                       # distinct, first occurrence order
    tok = CharTokenizer.from_text("".join(train), min_count=VOCAB_MIN_COUNT)
    seen = set(train)
    val_clauses = poem_clauses(val_text)
    val_unique = list(dict.fromkeys(c for c in val_clauses if LOST_CHAR not in c))
    val_new = [c for c in val_unique if c not in seen]
    val = [c for c in val_new if tok.count_unknown(c) == 0]
    info = {"source": "tang", "line_lengths": list(LINE_LENGTHS),
            "train_clauses": len(clauses), "train_lost_char_dropped": len(clauses) - len(clean),
            "train_unique": len(train), "train_kept": len(train),
            "train_5": sum(len(c) == 5 for c in train), "train_7": sum(len(c) == 7 for c in train),
            "val_clauses": len(val_clauses), "val_unique": len(val_unique),
            "val_seen_in_train": len(val_unique) - len(val_new),
            "val_unknown_char_dropped": len(val_new) - len(val), "val_kept": len(val),
            "vocab_min_count": VOCAB_MIN_COUNT, "held_out_poems": corpus_info.get("held_out_poems")}
    return train, val, info, tok


# name -> loader(data folder or None) -> (training lines, held-out lines, facts, tokenizer)
LINE_DATASETS = {"tang-lines": _tang_lines}
_CACHE: dict = {}


def load_line_corpus(name: str, data_dir: str | Path | None = None):
    """(training lines, held-out lines, facts, tokenizer of the training lines); cached."""
    if name not in LINE_DATASETS:
        raise ValueError(f"unknown line dataset {name!r}; known: {', '.join(LINE_DATASETS)}")
    key = (name, str(data_dir))
    if key not in _CACHE:
        _CACHE[key] = LINE_DATASETS[name](data_dir)
    return _CACHE[key]


def encode_lines(lines: list[str], tokenizer: CharTokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Lines -> (ids N x longest, padded with -1; lengths N)."""
    enc = [tokenizer.encode(s) for s in lines]
    T = max((len(e) for e in enc), default=1)
    ids = torch.full((len(enc), T), -1, dtype=torch.long)
    for i, e in enumerate(enc):
        ids[i, :len(e)] = torch.tensor(e, dtype=torch.long)
    return ids, torch.tensor([len(e) for e in enc], dtype=torch.long)


@dataclass
class LineData:
    name: str
    lines: list[str]
    tokenizer: CharTokenizer
    split: str = "train"
    info: dict = field(default_factory=dict)
    val_lines: list[str] = field(default_factory=list)   # for the loop's periodic evaluation
    eval_metric: str = "nll_per_line"

    def __post_init__(self):
        if not self.lines:
            raise ValueError("no lines")
        self.ids, self.lengths = encode_lines(self.lines, self.tokenizer)
        self._val = None

    def __len__(self) -> int:
        return len(self.lines)

    def model_overrides(self, kind: str) -> dict:
        return {"vocab_size": self.tokenizer.vocab_size}

    def source(self, device) -> "LineSource":
        return LineSource(self, device)

    def stats(self) -> dict:
        return {"split": self.split, "lines": len(self.lines), "vocab_size": self.tokenizer.vocab_size, **self.info}

    def model_meta(self) -> dict:
        return {"tokenizer": "tokenizer.json", "text_stats": self.stats()}

    def evaluate(self, model, metric: str | None = None) -> float:
        """Held-out negative ELBO per line (nats) on the first EVAL_LINES held-out lines."""
        if not self.val_lines:
            raise ValueError(f"{self.name} has no held-out lines to evaluate on")
        if self._val is None:
            self._val = encode_lines(self.val_lines[:EVAL_LINES], model.tokenizer)
        ids, lengths = self._val
        g = torch.Generator().manual_seed(0)
        total = 0.0
        for i in range(0, len(ids), 500):
            out = model.nll_bound(ids[i:i + 500].to(model.device), lengths[i:i + 500].to(model.device), g)
            total += float(out["nll"].sum())
        return total / len(ids)


class LineSource:
    """All lines on the device; a batch is one gather of the loop's permutation indices (an epoch
    is a pass over every distinct line, in a new order each epoch)."""

    def __init__(self, data: LineData, device):
        self.ids = data.ids.to(device)
        self.lengths = data.lengths.to(device)

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, idx: torch.Tensor, rng=None):
        idx = torch.as_tensor(idx, device=self.ids.device).long()
        ids, lengths = self.ids[idx], self.lengths[idx]
        return ids[:, :int(lengths.max())], lengths


def load_line_dataset(name: str, split: str = "train", tokenizer: CharTokenizer | None = None,
                      data_dir: str | Path | None = None) -> LineData:
    """A line dataset split ('train' or 'val'/'test') as LineData; the tokenizer defaults to the
    corpus's own (pass a model's to encode lines as that model reads them)."""
    split = check_split(split)
    train, val, info, tok = load_line_corpus(name, data_dir)
    return LineData(name=name, lines=train if split == "train" else val, tokenizer=tokenizer or tok,
                    split=split, info=dict(info), val_lines=val)
