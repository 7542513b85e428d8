"""A text upload -> checked text: a UTF-8 .txt, or .jsonl with one {"text": ...} object per line.

Refused with the reason: not UTF-8, empty, too short to train on, a binary file, too many distinct
characters, or too degenerate to learn from (a handful of distinct characters, almost no
character entropy, or one short span repeated).
"""
from __future__ import annotations

import json
import math
import unicodedata
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from aigc.data.uploads.budgets import DEFAULT_LIMITS, UploadError, UploadLimits, check_upload_size
from aigc.data.uploads.report import write_report

TEXT_SUFFIXES = {".txt", ".jsonl"}
TEXT_HELDOUT_SHARE = 0.1
TEXT_HELDOUT_MAX_CHARS = 50_000
SMALL_CORPUS_CHARS = 100_000     # below this, fine-tuning memorises within a few hundred steps


@dataclass
class PreparedText:
    text: str
    report: dict
    tokenizer: object = None     # given a base's tokenizer: it, grown by the upload's new characters


def _decode_utf8(raw: bytes, label: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise UploadError(f"{label} is not UTF-8: byte 0x{raw[e.start]:02x} at line {line}, column {col} "
                          f"(byte offset {e.start}); save it as UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text


def _jsonl_texts(text: str, label: str) -> list[str]:
    pieces = []
    for i, ln in enumerate(text.split("\n"), 1):
        if not ln.strip():
            continue
        try:
            obj = json.loads(ln)
        except json.JSONDecodeError as e:
            raise UploadError(f"{label}: line {i} is not JSON ({e.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise UploadError(f'{label}: line {i} needs an object with a "text" string')
        pieces.append(obj["text"])
    return pieces


def _check_length(text: str, label: str, block_size: int | None, limits: UploadLimits) -> None:
    if not text.strip():
        raise UploadError(f"{label}: the text is empty")
    need, why = limits.min_text_chars, "enough to learn from and to hold a slice out for measuring"
    if block_size is not None and block_size + 2 > need:
        need, why = block_size + 2, f"the model's context of {block_size}, +2"
    if len(text) < need:
        raise UploadError(f"{label}: {len(text):,} characters is too short; a text upload needs at least "
                          f"{need:,} characters ({why}): add {need - len(text):,} more")


def char_entropy(counts: Counter) -> float:
    """Bits per character of the character distribution."""
    n = sum(counts.values())
    return -sum(k / n * math.log2(k / n) for k in counts.values()) if n else 0.0


def degenerate_reason(text: str, counts: Counter, limits: UploadLimits = DEFAULT_LIMITS) -> str | None:
    """Why a text is too degenerate to learn from, or None."""
    if len(counts) < limits.min_distinct_chars:
        shown = "".join(sorted(counts))[:limits.min_distinct_chars]
        return (f"only {len(counts)} distinct characters ({shown!r}); a text to learn from has at least "
                f"{limits.min_distinct_chars}")
    bits = char_entropy(counts)
    if bits < limits.min_char_entropy:
        top, k = counts.most_common(1)[0]
        return (f"{k / len(text):.0%} of it is {top!r}: {bits:.2f} bits of entropy per character (at least "
                f"{limits.min_char_entropy:g} needed; prose has about 4)")
    raw = text.encode("utf-8")
    ratio = len(raw) / max(1, len(zlib.compress(raw, 1)))
    if ratio > limits.max_text_compression:
        return (f"it compresses {ratio:.0f}x (limit {limits.max_text_compression:g}x; prose compresses 2-4x): "
                "it is one short passage repeated, which a model can only copy")
    return None


def _check_content(text: str, label: str, limits: UploadLimits) -> tuple[Counter, int]:
    """(character counts, control characters); UploadError for binary or degenerate text."""
    counts = Counter(text)
    if len(counts) > limits.max_distinct_chars:
        raise UploadError(f"{label}: {len(counts)} distinct characters (limit {limits.max_distinct_chars}); "
                          "is this really text?")
    control = sum(n for c, n in counts.items() if unicodedata.category(c) == "Cc" and c not in "\n\r\t")
    if control > max(10, len(text) // 100):
        raise UploadError(f"{label}: {control} control characters: this looks like a binary file, not text")
    why = degenerate_reason(text, counts, limits)
    if why:
        raise UploadError(f"{label}: too degenerate to learn from: {why}")
    return counts, control


def _recommend(text: str, counts: Counter, block_size: int | None, report: dict) -> str:
    rec = f"{len(text):,} characters, {len(counts)} distinct"
    if block_size is not None:
        rec += f"; {report['windows']} windows of {block_size}"
    if len(text) < SMALL_CORPUS_CHARS:
        rec += "; small corpus: expect memorisation within a few hundred steps (watch held-out loss)"
    if report.get("added_chars"):
        share = report["unknown_chars"] / len(text)
        rec += (f"; added {report['added_chars']} characters to the vocabulary (e.g. {report['added_sample'][:10]}): "
                f"{report['unknown_chars']} characters ({share:.1%}) were unknown to the base model's tokenizer")
    if report.get("script_note"):
        rec += f"; {report['script_note']}"
    return rec


def script_of(c: str) -> str | None:
    """The script of a letter as its Unicode name begins (CJK, LATIN, CYRILLIC...); None for the rest."""
    if not unicodedata.category(c).startswith("L"):
        return None
    return unicodedata.name(c, "?").split(" ")[0].replace("FULLWIDTH", "LATIN")


def main_script(counts: Counter) -> tuple[str | None, float]:
    """The script most letters (weighted by count) are written in, and its share of the letters."""
    by = Counter()
    for c, n in counts.items():
        sc = script_of(c)
        if sc:
            by[sc] += n
    if not by:
        return None, 0.0
    top, n = by.most_common(1)[0]
    return top, n / sum(by.values())


def script_note(counts: Counter, tokenizer) -> str | None:
    """A note when the upload is written in another script than most of the base's vocabulary."""
    mine, share = main_script(counts)
    base, _ = main_script(Counter({c: 1 for c in tokenizer.chars}))
    if mine is None or base is None or mine == base or share < 0.5:
        return None
    return (f"different script: this text is mostly {mine.title()} ({share:.0%} of its letters) but the base "
            f"model's vocabulary is mostly {base.title()}; it trains, but starts far from this text: a base "
            f"trained on {mine.title()} text fits better")


def _grow(text: str, counts: Counter, tokenizer, report: dict):
    """Count what the base's tokenizer lacks, add it; the report says so -> the grown tokenizer."""
    unknown = tokenizer.unknown_chars(text)
    report["unknown_chars"] = int(sum(unknown.values()))
    report["unknown_distinct"] = len(unknown)
    report["unknown_top"] = {c: int(n) for c, n in unknown.most_common(10)}
    grown = tokenizer.extended(unknown)
    added = [c for c, _ in unknown.most_common() if c in grown.stoi and c not in tokenizer.stoi]
    report["added_chars"], report["added_sample"] = len(added), "".join(added[:20])
    report["vocab_size"] = grown.vocab_size
    note = script_note(counts, tokenizer)
    if note:
        report["script_note"] = note
    return grown


def prepare_text(path: str | Path, job_dir: str | Path | None = None, *, block_size: int | None = None,
                 tokenizer=None, limits: UploadLimits = DEFAULT_LIMITS) -> PreparedText:
    """Check a .txt (UTF-8) or .jsonl ({"text": ...} per line) upload -> PreparedText.

    `block_size`: the model's context (the text must be longer than it, +2); `tokenizer`: the
    base model's CharTokenizer: the characters it does not know are counted and added (the result's
    `tokenizer`), and a text in another script than the base's vocabulary gets a note."""
    path = Path(path)
    label = path.name
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        raise UploadError(f"{label}: text uploads must be .txt or .jsonl")
    size = check_upload_size(path, limits.max_text_bytes)
    text = _decode_utf8(path.read_bytes(), label)
    records = None
    if suffix == ".jsonl":
        pieces = _jsonl_texts(text, label)
        records, text = len(pieces), "\n\n".join(pieces)
    _check_length(text, label, block_size, limits)
    counts, control = _check_content(text, label, limits)
    report = {"kind": "text", "file": path.name, "file_bytes": size, "chars": len(text),
              "lines": text.count("\n") + 1, "records": records, "distinct_chars": len(counts),
              "char_entropy_bits": round(char_entropy(counts), 3), "block_size": block_size,
              "control_chars": control, "limits": asdict(limits)}
    grown = None if tokenizer is None else _grow(text, counts, tokenizer, report)
    report["windows"] = None if block_size is None else (len(text) - 1) // block_size
    report["recommendation"] = _recommend(text, counts, block_size, report)
    if job_dir is not None:
        write_report(job_dir, report)
    return PreparedText(text, report, grown)


def split_heldout(text: str, block_size: int, share: float = TEXT_HELDOUT_SHARE,
                  max_chars: int = TEXT_HELDOUT_MAX_CHARS) -> tuple[str, str, str]:
    """(training text, held-out text, note): the last `share` of an uploaded text (at least
    block_size + 2 characters, at most `max_chars`) is kept out of training so that its
    cross-entropy measures generalisation during fine-tuning. The cut moves forward to the next
    line break when one is within a tenth of the held-out length. Too short a text to spare
    that much (the training part must keep block_size + 2 characters, the held-out part at most a
    quarter of the text) is not split: held-out is "" and the note says why."""
    n = len(text)
    want = min(max(int(n * share), block_size + 2), max_chars)
    if want > n // 4 or n - want < block_size + 2:
        return text, "", (f"no held-out slice: {n:,} characters is too short to keep {want:,} out of training "
                          f"(needs at least {4 * (block_size + 2):,})")
    cut = n - want
    nl = text.find("\n", cut, cut + max(1, want // 10))
    if nl != -1 and n - (nl + 1) >= block_size + 2:
        cut = nl + 1
    return text[:cut], text[cut:], (f"held out the last {n - cut:,} characters ({(n - cut) / n:.0%}) to measure "
                                     "cross-entropy on text the model does not train on")
