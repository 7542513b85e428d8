"""Text datasets for the character-level language models.

A `TextData` is one text (a split of a corpus) encoded by a `CharTokenizer`, plus the block size
the model reads. It offers the training loop the same small interface as `ImageData`:
`name`, `len()` (here: the number of non-overlapping block-size windows, i.e. what an "epoch"
means), `model_overrides(kind)` (the vocabulary size), `source(device)` (batches on the device)
and `model_meta()` (written into the saved model's config.json).

Built-in corpora (files under data/text/):

  shakespeare   The complete works of Shakespeare (data/text/shakespeare.txt, 4.57M characters,
                38 works). Each work starts with its title line followed by the line
                "by William Shakespeare"; that is how the file is split into works. The held-out
                validation text is three whole plays, one tragedy, one comedy and one history,
                fixed by title (not drawn at random, so every run and every machine agrees):
                    JULIUS CAESAR              116,218 characters
                    A MIDSUMMER NIGHT'S DREAM   96,251 characters
                    KING JOHN                  121,089 characters
                together 333,558 characters, 7.3% of the file. Holding out whole plays (rather than
                a random tenth of lines) means validation text never shares a scene with training
                text: the score measures how well the model writes *Shakespeare*, not how well it
                remembers neighbouring lines. The other 35 works (4.23M characters) are training
                text, and the vocabulary (84 characters + the unknown symbol) comes from them.

  tang          The Tang poems (全唐诗, data/text/tang_poems.jsonl.gz, 57,607 poems), converted to
                simplified characters with OpenCC (t2s) when the corpus is prepared, then cleaned:
                editorial notes in （）〖〗[]{} removed; a poem is dropped if its body still holds
                anything but hanzi and ，。？！； (e.g. □ or 囗 for a lost character) or has no clause;
                exact duplicate bodies are dropped (the first kept). Each poem is laid out as in
                aigc.text.forms (【form】title, one couplet a line, a blank line) with its form read
                from its structure. Held out: every poem whose body's SHA-1 ends in a byte < 13
                (5.1%), fixed by content, so any machine agrees. Vocabulary: characters seen at
                least twice in the training text (the rest, mostly rare variants, read as unknown).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from aigc.text import forms
from aigc.text.tokenizer import CharTokenizer
from aigc.data.zh import zh_modern
from aigc.hub import DATA_DIR

TEXT_DIR = DATA_DIR / "text"

SHAKESPEARE_HELD_OUT = ("JULIUS CAESAR", "A MIDSUMMER NIGHT'S DREAM", "KING JOHN")
_BYLINE = "by William Shakespeare"


# -- the container ---------------------------------------------------------------------------------
@dataclass
class TextData:
    """One text split encoded by `tokenizer`; windows of `block_size` characters are the examples."""

    name: str
    text: str
    tokenizer: CharTokenizer
    block_size: int = 256
    split: str = "train"
    info: dict = field(default_factory=dict)      # corpus facts for model_meta (held-out titles, ...)

    def __post_init__(self):
        if self.block_size < 1:
            raise ValueError("block_size must be at least 1")
        self.ids = torch.tensor(self.tokenizer.encode(self.text), dtype=torch.long)
        if self.ids.numel() < self.block_size + 2:
            raise ValueError(f"text of {self.ids.numel()} characters is too short for windows of "
                             f"{self.block_size} (+2)")
        self.unknown = self.tokenizer.count_unknown(self.text)

    def __len__(self) -> int:
        """Non-overlapping windows of block_size (with their one-character-later targets)."""
        return (self.ids.numel() - 1) // self.block_size

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def model_overrides(self, kind: str) -> dict:
        return {"vocab_size": self.tokenizer.vocab_size}

    def source(self, device) -> "TextSource":
        return TextSource(self, device)

    def stats(self) -> dict:
        return {"split": self.split, "chars": len(self.text), "tokens": int(self.ids.numel()),
                "vocab_size": self.vocab_size, "unknown_chars": self.unknown,
                "windows": len(self), "block_size": self.block_size, **self.info}

    def model_meta(self) -> dict:
        return {"tokenizer": "tokenizer.json", "text_stats": self.stats()}


class TextSource:
    """The training view of a TextData: all ids on the device (int32: Shakespeare is 17 MB), so a
    batch is one gather. `get` draws random windows, as nanoGPT does: an epoch is a budget, not a
    permutation (a permutation of window starts would add nothing but bookkeeping)."""

    def __init__(self, data: TextData, device):
        self.ids = data.ids.to(torch.int32).to(device)
        self.block = data.block_size
        self.n = int(self.ids.numel())
        self.n_windows = len(data)
        self.offsets = torch.arange(self.block + 1, device=self.ids.device)

    def __len__(self) -> int:
        return self.n_windows

    def get(self, idx: torch.Tensor, rng=None):
        """`len(idx)` windows -> (x, y), both N x block int64, y = x shifted left by one.

        With a StepRNG the window starts are random (drawn for the global batch, this process
        keeps its slice); without one, `idx` names non-overlapping windows (idx * block), which is
        deterministic (used for evaluation and tests)."""
        b = len(idx)
        if rng is not None:
            starts = rng.randint(0, self.n - self.block - 1, (b,)).to(self.ids.device)
        else:
            starts = torch.as_tensor(idx, device=self.ids.device).long() * self.block
        w = self.ids[starts[:, None] + self.offsets].long()
        return w[:, :-1], w[:, 1:]


# -- Shakespeare -----------------------------------------------------------------------------------
def split_works(text: str) -> list[tuple[str, str]]:
    """The complete-works file -> [(title, text of the work)], in file order. A work starts at
    the last non-blank line before a "by William Shakespeare" line; the pieces cover the file."""
    lines = text.split("\n")
    pos = [0]
    for ln in lines:
        pos.append(pos[-1] + len(ln) + 1)
    starts = []
    for i, ln in enumerate(lines):
        if ln.strip() == _BYLINE:
            j = i - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            if j < 0:
                raise ValueError(f"line {i + 1}: byline without a title above it")
            starts.append(j)
    if not starts:
        raise ValueError("no 'by William Shakespeare' lines: not the complete-works file")
    works = []
    for k, s in enumerate(starts):
        begin = 0 if k == 0 else pos[s]            # anything before the first title goes with it
        end = pos[starts[k + 1]] if k + 1 < len(starts) else len(text)
        works.append((lines[s].strip(), text[begin:end]))
    return works


def _shakespeare(root: Path) -> tuple[str, str, dict]:
    text = (root / "shakespeare.txt").read_text(encoding="utf-8")
    works = split_works(text)
    titles = [t for t, _ in works]
    missing = [t for t in SHAKESPEARE_HELD_OUT if t not in titles]
    if missing:
        raise ValueError(f"shakespeare.txt lacks the held-out play(s) {missing}")
    train = "".join(w for t, w in works if t not in SHAKESPEARE_HELD_OUT)
    val = "".join(w for t, w in works if t in SHAKESPEARE_HELD_OUT)
    info = {"held_out": list(SHAKESPEARE_HELD_OUT), "works": len(works),
            "held_out_share": round(len(val) / len(text), 4)}
    return train, val, info


# -- Tang poems -----------------------------------------------------------------------------------
_NOTES = re.compile(r"（[^（）]*）|〖[^〖〗]*〗|\[[^\[\]]*\]|\{[^{}]*\}|\([^()]*\)")


LOST = "囗"      # the corpus's mark for a lost character (a hanzi in Unicode, so tested on its own)


def tang_documents(poems, convert=None) -> tuple[list[tuple[str, str]], dict]:
    """[{"title", "paragraphs"}] -> ([(document text, body)], counts), cleaned as described above.
    `convert` maps traditional to simplified text (default: OpenCC t2s); it is applied to all
    titles and bodies in one call, which is ~50x faster than a call per poem."""
    if convert is None:
        from opencc import OpenCC
        convert = OpenCC("t2s").convert
    sep = "\u0001"
    raw = [(str(p.get("title", "")), "".join(p.get("paragraphs") or [])) for p in poems]
    flat = convert(sep.join(t + sep + b for t, b in raw)).split(sep)
    if len(flat) != 2 * len(raw):
        raise ValueError("conversion changed the number of fields")
    counts = {"poems": len(raw), "dropped_unclean": 0, "dropped_duplicate": 0}
    seen: set[str] = set()
    docs = []
    for i in range(len(raw)):
        title, body = flat[2 * i], flat[2 * i + 1]
        body = _NOTES.sub("", body).replace(" ", "").replace("\u3000", "")
        title = " ".join(_NOTES.sub("", title).split())[:forms.MAX_TITLE_CHARS]
        if (not body or not all(forms.is_hanzi(c) or c in forms.CLAUSE_END for c in body) or LOST in body
                or body[-1] not in forms.CLAUSE_END
                or any(c in "\n【】" for c in title)):
            counts["dropped_unclean"] += 1
            continue
        if body in seen:
            counts["dropped_duplicate"] += 1
            continue
        seen.add(body)
        docs.append((forms.document(forms.classify(body), title, body), body))
    return docs, counts


def _held_out(body: str) -> bool:
    return hashlib.sha1(body.encode("utf-8")).digest()[-1] < 13


def _tang(root: Path) -> tuple[str, str, dict]:
    with gzip.open(root / "tang_poems.jsonl.gz", "rt", encoding="utf-8") as f:
        poems = [json.loads(line) for line in f if line.strip()]
    docs, counts = tang_documents(poems)
    train = [d for d, b in docs if not _held_out(b)]
    val = [d for d, b in docs if _held_out(b)]
    by_form: dict[str, int] = {}
    for d, _ in docs:
        f = d[1:d.index(forms.HEADER_CLOSE)]
        by_form[f] = by_form.get(f, 0) + 1
    info = {**counts, "kept": len(docs), "held_out_poems": len(val), "forms": by_form,
            "poem_forms": list(forms.FORMS), "script": "simplified (OpenCC t2s)"}
    return "".join(train), "".join(val), info


# name -> loader(root folder) -> (training text, held-out text, facts)
TEXT_DATASETS = {
    "shakespeare": _shakespeare,
    "tang": _tang,
    "zh-modern": zh_modern,
}
VOCAB_FROM_ALL = {"zh-modern"}      # the tokenizer covers every character of the corpus, held-out too
# vocabulary: characters seen at least this often in the training text (default 1)
VOCAB_MIN_COUNT = {"tang": 2}
_CACHE: dict[tuple[str, str], tuple[str, str, dict, CharTokenizer]] = {}


def text_dataset_names() -> list[str]:
    return list(TEXT_DATASETS)


def load_text_corpus(name: str, data_dir: str | Path | None = None):
    """(train text, held-out text, facts, tokenizer built from the training text); cached."""
    if name not in TEXT_DATASETS:
        raise ValueError(f"unknown text dataset {name!r}; known: {', '.join(TEXT_DATASETS)}")
    root = Path(data_dir) if data_dir is not None else TEXT_DIR
    key = (name, str(root))
    if key not in _CACHE:
        train, val, info = TEXT_DATASETS[name](root)
        tok = CharTokenizer.from_text(train + val if name in VOCAB_FROM_ALL else train,
                                      min_count=VOCAB_MIN_COUNT.get(name, 1))
        _CACHE[key] = (train, val, info, tok)
    return _CACHE[key]


def check_split(split: str) -> str:
    """'train', or 'val' (alias 'test': the held-out part); anything else is refused."""
    if split == "test":
        split = "val"
    if split not in ("train", "val"):
        raise ValueError(f"unknown split {split!r}; use 'train' or 'val'")
    return split


def load_text_dataset(name: str, split: str = "train", block_size: int = 256,
                      tokenizer: CharTokenizer | None = None,
                      data_dir: str | Path | None = None) -> TextData:
    """A built-in text split as TextData. split: 'train', or 'val' (alias 'test'): the held-out
    text. The tokenizer defaults to the corpus's own (built from its training text), so both
    splits share ids; pass a model's tokenizer to encode the text exactly as that model reads it."""
    split = check_split(split)
    train, val, info, tok = load_text_corpus(name, data_dir)
    return TextData(name=name, text=train if split == "train" else val, tokenizer=tokenizer or tok,
                    block_size=block_size, split=split, info=dict(info))
