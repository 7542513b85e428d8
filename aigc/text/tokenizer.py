"""Character-level tokeniser: one token per Unicode character (code point).

Why characters and not UTF-8 bytes:
  * A Chinese character is one token here but three UTF-8 bytes, so the same context window
    holds three times as much classical Chinese text (a whole Tang poem of 56 characters plus its
    title fits in a small window), and the model never has to learn to assemble byte triples.
  * English needs few symbols (Shakespeare: 84 distinct characters), so the embedding and output
    layers stay tiny.
  * Byte tokens would encode anything, but a model trained on one corpus never sees most byte
    values in context either; an explicit unknown symbol is simpler and honest about it.

The vocabulary is built from the training text: id 0 is the unknown symbol `UNK` (U+FFFD, the
Unicode replacement character), then every character seen at least `min_count` times, sorted by
code point, so the same text always gives the same ids. Any string a user types encodes without
error: a character outside the vocabulary (an emoji under the Shakespeare model, say) becomes the
unknown id and decodes as U+FFFD. Text made only of vocabulary characters round-trips exactly.
No normalisation is applied (no NFC, no case folding, "\r\n" is kept as two characters).

A fine-tune grows a base's vocabulary with `extended(chars)`: the new characters go after the old
ones (sorted by code point), so every old id keeps its meaning and its trained rows.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

UNK = "\ufffd"      # shown wherever a character was outside the vocabulary
FORMAT = "aigc-char-tokenizer/1"


class CharTokenizer:
    def __init__(self, chars: Iterable[str]):
        """`chars`: the vocabulary in id order; the first must be UNK (use `from_text` to build one)."""
        chars = list(chars)
        if not chars or chars[0] != UNK:
            raise ValueError("a CharTokenizer vocabulary starts with the unknown symbol U+FFFD")
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"vocabulary entries must be single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("the vocabulary holds a character twice")
        self.chars: list[str] = chars
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(chars)}
        self.unk_id = 0

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def from_text(cls, text: str, min_count: int = 1, max_size: int | None = None) -> "CharTokenizer":
        """The vocabulary of `text`: characters seen >= min_count times, sorted by code point.
        `max_size` (including UNK) keeps the most frequent ones (ties: lower code point first)."""
        counts = Counter(text)
        counts.pop(UNK, None)
        keep = [c for c, n in counts.items() if n >= min_count]
        if max_size is not None and len(keep) > max_size - 1:
            keep = sorted(keep, key=lambda c: (-counts[c], ord(c)))[:max_size - 1]
        return cls([UNK] + sorted(keep))

    def extended(self, chars: Iterable[str]) -> "CharTokenizer":
        """This vocabulary with the characters of `chars` it lacks appended (code-point order)."""
        new = sorted({c for c in chars if c not in self.stoi and c != UNK})
        return CharTokenizer(self.chars + new) if new else self

    def extends(self, other: "CharTokenizer") -> bool:
        """True when this vocabulary is `other`'s followed by more characters."""
        n = other.vocab_size
        return self.vocab_size > n and self.chars[:n] == other.chars

    # -- the mapping ------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Text -> ids; characters outside the vocabulary become `unk_id` (never an error)."""
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8", errors="replace")   # invalid bytes -> U+FFFD = UNK
        get = self.stoi.get
        return [get(c, 0) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; the unknown id (and any id out of range) decodes as U+FFFD."""
        chars, n = self.chars, len(self.chars)
        return "".join(chars[i] if 0 <= i < n else UNK for i in map(int, ids))

    def unknown_chars(self, text: str) -> Counter:
        """Characters of `text` outside the vocabulary, with their counts (what became UNK)."""
        return Counter(c for c in text if c not in self.stoi or c == UNK)

    def count_unknown(self, text: str) -> int:
        """How many characters of `text` encode as the unknown id."""
        return sum(self.unknown_chars(text).values())

    # -- files ------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"format": FORMAT, "type": "char", "unk": UNK, "vocab_size": self.vocab_size,
                "chars": list(self.chars)}

    @classmethod
    def from_json(cls, obj: dict) -> "CharTokenizer":
        if not isinstance(obj, dict) or obj.get("type") != "char" or not isinstance(obj.get("chars"), list):
            raise ValueError("tokenizer.json is not a character tokenizer (needs type 'char' and 'chars')")
        tok = cls(obj["chars"])
        if "vocab_size" in obj and int(obj["vocab_size"]) != tok.vocab_size:
            raise ValueError(f"tokenizer.json says vocab_size {obj['vocab_size']} but lists {tok.vocab_size} characters")
        return tok

    def __eq__(self, other) -> bool:
        return isinstance(other, CharTokenizer) and self.chars == other.chars

    def __hash__(self):
        return hash(tuple(self.chars))

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"
