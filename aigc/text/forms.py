"""Tang poem forms: the corpus layout the `char-tang` model reads, the form checker, and the
decoding constraint that keeps a generated poem in its form.

Layout of one poem in the training text (and of what the model is asked to continue):

    【五言绝句】静夜思
    床前明月光，疑是地上霜。
    举头望明月，低头思故乡。
    <blank line>

The header names the form in 【】, then the title; then one couplet (联) per line: two clauses
(句) of the same length, a comma after the first and a full stop (or ？/！) after the second.

Forms are read from the structure, not from tags (the 57,607 poems carry none): every clause 5
characters -> 五言, 7 -> 七言; 4 clauses -> 绝句, 8 -> 律诗, any other even number -> 古诗;
anything else (mixed lengths, odd counts) is 杂言. Tonal rules (平仄) and rhyme are not checked:
this is the line structure the product promises to keep, stated exactly.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch

CLAUSE_END = "，。？！；"          # punctuation that ends a clause in the corpus
COUPLET_END = "。？！"             # what may close a couplet in a well-formed poem
FORMS = {                           # name -> (characters per clause, clauses)
    "五言绝句": (5, 4),
    "七言绝句": (7, 4),
    "五言律诗": (5, 8),
    "七言律诗": (7, 8),
}
OTHER_FORMS = ("五言古诗", "七言古诗", "杂言")
ALL_FORMS = tuple(FORMS) + OTHER_FORMS
HEADER_OPEN, HEADER_CLOSE = "【", "】"
MAX_TITLE_CHARS = 24


def is_hanzi(ch: str) -> bool:
    """A CJK ideograph (the unified block, extension A, and the supplementary-plane extensions)."""
    o = ord(ch)
    return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x3134F
            or 0xF900 <= o <= 0xFAFF)


def well_formed(line) -> bool:
    """A poem line: exactly 5 or 7 hanzi and nothing else (no punctuation, space or unknown symbol)."""
    return isinstance(line, str) and len(line) in (5, 7) and all(is_hanzi(c) for c in line)


def clauses(body: str) -> list[tuple[str, str]]:
    """Poem text -> [(clause characters, the punctuation after it)]; newlines are ignored."""
    out = []
    for m in re.finditer(f"([^{CLAUSE_END}\\n]*)([{CLAUSE_END}])", body.replace("\n", "")):
        out.append((m.group(1), m.group(2)))
    return out


def classify(body: str) -> str:
    """The form of a poem body (see the module doc)."""
    cl = clauses(body)
    lens = {len(c) for c, _ in cl}
    if not cl or len(lens) != 1 or len(cl) % 2:
        return "杂言"
    n = lens.pop()
    if n not in (5, 7):
        return "杂言"
    head = "五言" if n == 5 else "七言"
    return head + {4: "绝句", 8: "律诗"}.get(len(cl), "古诗")


def layout(body: str) -> str:
    """A poem body (any line breaks) -> one couplet per line, punctuation kept."""
    cl = clauses(body)
    lines = []
    for i in range(0, len(cl), 2):
        lines.append("".join(c + p for c, p in cl[i:i + 2]))
    return "\n".join(lines)


def document(form: str, title: str, body: str) -> str:
    """One poem as the model reads it (header, couplet lines, blank line)."""
    return f"{HEADER_OPEN}{form}{HEADER_CLOSE}{title}\n{layout(body)}\n\n"


def header(form: str, title: str = "") -> str:
    return f"{HEADER_OPEN}{form}{HEADER_CLOSE}{title}"


def check_form_name(form) -> str:
    if form not in FORMS:
        raise ValueError(f"unknown form {str(form)[:40]!r}; choose one of {', '.join(FORMS)}")
    return form


@dataclass(frozen=True)
class FormCheck:
    ok: bool
    reason: str = ""


def check_form(poem: str, form: str) -> FormCheck:
    """Does `poem` (couplet lines; a leading title line without clause punctuation is allowed)
    have exactly `form`'s line count, characters per clause and punctuation?"""
    n, k = FORMS[check_form_name(form)]
    lines = [ln.strip() for ln in poem.strip("\n").split("\n")]
    if lines and not any(p in lines[0] for p in CLAUSE_END):
        lines = lines[1:]                       # the title
    lines = [ln for ln in lines if ln]
    if len(lines) != k // 2:
        return FormCheck(False, f"{len(lines)} couplet lines, want {k // 2}")
    for i, ln in enumerate(lines, 1):
        if len(ln) != 2 * n + 2:
            return FormCheck(False, f"line {i} has {len(ln)} characters, want {2 * n + 2}")
        a, p1, b, p2 = ln[:n], ln[n], ln[n + 1:2 * n + 1], ln[-1]
        if not all(is_hanzi(c) for c in a + b):
            return FormCheck(False, f"line {i} has a character that is not a hanzi")
        if p1 != "，" or p2 not in COUPLET_END:
            return FormCheck(False, f"line {i} punctuation {p1}{p2}, want ，and one of {COUPLET_END}")
    return FormCheck(True)


def check_title(title) -> str:
    title = "" if title is None else title
    if not isinstance(title, str):
        raise ValueError("the title must be text")
    title = " ".join(title.split())
    if len(title) > MAX_TITLE_CHARS:
        raise ValueError(f"the title is {len(title)} characters; at most {MAX_TITLE_CHARS}")
    if any(c in title for c in HEADER_OPEN + HEADER_CLOSE):
        raise ValueError(f"the title may not contain {HEADER_OPEN} or {HEADER_CLOSE}")
    return title


class FormConstraint:
    """Keeps a character model's continuation in a form: the decoding grammar of a poem.

    The poem is a sequence of slots: (the title, when the model writes it: characters that are
    neither punctuation nor a bracket, ended by a newline, at most MAX_TITLE_CHARS), then for
    every couplet n hanzi, '，', n hanzi, one of 。？！, '\n'. `allowed(new_ids)` (the callable
    CharLM.generate takes) returns the vocabulary mask of the next slot; `done(text)` says when
    the poem is complete. The model still chooses *which* hanzi and which closing mark: only
    the slot kind is fixed, so the words, images and rhymes are all the model's.

    `first_line` (optional) is the start of the body the user wrote; it must fit the slots (a
    clause, a clause and its comma, or a whole couplet line) and is checked here."""

    def __init__(self, form: str, tokenizer, write_title: bool = False, first_line: str = ""):
        self.n, self.k = FORMS[check_form_name(form)]
        self.form = form
        slots: list[str] = []
        for _ in range(self.k // 2):
            slots += ["hanzi"] * self.n + ["，"] + ["hanzi"] * self.n + ["end", "\n"]
        self.slots = slots
        self.write_title = write_title
        self.chars = tokenizer.chars
        V = len(self.chars)
        hanzi = torch.tensor([is_hanzi(c) and c != "囗" for c in self.chars])   # 囗: a lost-character mark
        hanzi[tokenizer.unk_id] = False

        def one(ch):
            m = torch.zeros(V, dtype=torch.bool)
            if ch not in tokenizer.stoi:
                raise ValueError(f"this model cannot write {ch!r}; it does not know poem forms")
            m[tokenizer.stoi[ch]] = True
            return m

        end = torch.zeros(V, dtype=torch.bool)
        for ch in COUPLET_END:
            if ch in tokenizer.stoi:
                end[tokenizer.stoi[ch]] = True
        if int(hanzi.sum()) == 0 or not bool(end.any()):
            raise ValueError("this model does not know poem forms (no hanzi / full stops in its vocabulary)")
        title = ~torch.tensor([c in CLAUSE_END + "【】\n" or c.isspace() and c != " " for c in self.chars])
        title[tokenizer.unk_id] = False
        self.masks = {"hanzi": hanzi, "，": one("，"), "end": end, "\n": one("\n"), "title": title,
                      "title_or_nl": title | one("\n")}
        first_line = (first_line or "").strip()
        for i, ch in enumerate(first_line):
            kind = slots[i] if i < len(slots) else None
            if kind is None or not self._fits(kind, ch):
                want = {"hanzi": "a hanzi", "end": "。？！ at the end of the couplet"}.get(kind, repr(kind))
                raise ValueError(f"the first line does not fit {form}: character {i + 1} ({ch!r}) "
                                 f"should be {want} (a {self.n}-character clause, '，', "
                                 f"another {self.n}-character clause, '。')")
        self.first_line = first_line

    def _fits(self, kind: str, ch: str) -> bool:
        if kind == "hanzi":
            return is_hanzi(ch)
        if kind == "end":
            return ch in COUPLET_END
        return ch == kind

    def _split(self, text: str) -> tuple[str | None, str]:
        """Generated text -> (title being written or None when done with it, body so far)."""
        if self.write_title:
            if "\n" not in text:
                return text, ""
            return None, self.first_line + text[text.index("\n") + 1:]
        return None, self.first_line + text

    def kind(self, text: str) -> str | None:
        """The next slot after `text` (the generated characters), or None when the poem is done."""
        title, body = self._split(text)
        if title is not None:
            if len(title) >= MAX_TITLE_CHARS:
                return "\n"
            return "title" if not title else "title_or_nl"
        return self.slots[len(body)] if len(body) < len(self.slots) else None

    def allowed(self, new_ids) -> torch.Tensor | None:
        kind = self.kind("".join(self.chars[i] for i in new_ids))
        return None if kind is None else self.masks[kind]

    def done(self, text: str) -> bool:
        return self.kind(text) is None
