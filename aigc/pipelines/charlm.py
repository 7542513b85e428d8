"""Streaming text generation with a saved text model (a char-lm), for the studio's Text tab and
scripts. No UI code here.

    pipe = TextPipeline.from_pretrained("char-shakespeare")
    for step in pipe.stream("ROMEO.\n", max_new=200, temperature=0.8, seed=None):
        print(step.text)            # the continuation so far (grows by one character a step)
    step.seed                       # the seed used (drawn when None was given): repeat with it

Every argument is checked, with a ValueError that says what is wrong:
  prompt            a str of at most MAX_PROMPT_CHARS characters (the web Textbox's length limit is
                    not enforced by the server, so it is checked here); "" generates unconditionally.
                    Characters outside the vocabulary are allowed: they become the unknown symbol
                    and are counted (`step.unknown_chars`).
  max_new           1..MAX_NEW_CHARS new characters
  temperature       0..TEXT_TEMP_MAX; 0 is greedy (argmax)
  top_k             None or 0 = off, else an integer >= 1
  top_p             None = off, else in (0, 1]
  repetition_penalty  REP_MIN..REP_MAX (1 = off)
  seed              an integer 0..SEED_MAX, or None: one is drawn and reported
  stop              strings that end generation when the continuation produces one (the stop
                    string itself is not part of the result); at most MAX_STOPS of them, each
                    1..MAX_STOP_CHARS characters
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch

from aigc import checkpoint as ckpt
from aigc import limits
from aigc.limits import MAX_NEW_CHARS, MAX_PROMPT_CHARS, SEED_MAX, TEXT_TEMP_MAX

REP_MIN, REP_MAX = 0.5, 3.0
TOP_K_MAX = 2 ** 31 - 1
MAX_STOPS = 16
MAX_STOP_CHARS = 200


@dataclass(frozen=True)
class TextStep:
    """One streaming step: the continuation so far and how it was made."""
    text: str                   # the generated continuation so far (without the prompt)
    seed: int                   # the seed used (repeat the result with it)
    new_chars: int              # characters generated so far (before any stop string cut)
    unknown_chars: int          # prompt characters outside the vocabulary (read as the unknown symbol)
    done: bool = False          # the last step of this generation
    stopped_by: str | None = None   # the stop string that ended it, if one did
    elapsed_s: float = 0.0      # seconds since generation started
    first_char_s: float | None = None   # seconds until the first character


# -- argument checks -----------------------------------------------------------------------------------
def check_prompt(prompt) -> str:
    if prompt is None:
        return ""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be text (got {type(prompt).__name__})")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"prompt is {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
    return prompt


def check_stop(stop) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, (list, tuple)):
        raise ValueError("stop must be a list of strings")
    if len(stop) > MAX_STOPS:
        raise ValueError(f"at most {MAX_STOPS} stop strings (got {len(stop)})")
    out = []
    for s in stop:
        if not isinstance(s, str):
            raise ValueError(f"each stop string must be text (got {type(s).__name__})")
        if not s:
            raise ValueError("a stop string must not be empty")
        if len(s) > MAX_STOP_CHARS:
            raise ValueError(f"a stop string is {len(s)} characters; the limit is {MAX_STOP_CHARS}")
        if s not in out:
            out.append(s)
    return out


def check_seed(seed) -> int:
    """None -> a freshly drawn seed; otherwise an integer 0..SEED_MAX (text such as "7" is refused)."""
    if seed is None:
        return secrets.randbelow(SEED_MAX + 1)
    if isinstance(seed, str):
        raise ValueError(f"seed must be a whole number (got {seed!r})"[:120])
    return limits.check_seed(seed)


def check_sampling(max_new, temperature, top_k, top_p, repetition_penalty) -> dict:
    max_new = limits.check_int(max_new, 1, MAX_NEW_CHARS, "max_new")
    t = limits.check_float(temperature, 0, TEXT_TEMP_MAX, "temperature")
    if top_k is not None:
        top_k = limits.check_int(top_k, 0, TOP_K_MAX, "top_k (0 = off)") or None
    if top_p is not None:
        top_p = limits.check_float(top_p, 0, 1, "top_p")
        if top_p == 0:
            raise ValueError("top_p must be in (0, 1] (got 0)")
    rp = limits.check_float(repetition_penalty, REP_MIN, REP_MAX, "repetition_penalty")
    return {"max_new": max_new, "temperature": t, "top_k": top_k, "top_p": top_p, "repetition_penalty": rp}


def _find_stop(text: str, start: int, stops: Sequence[str]) -> tuple[int, str] | None:
    """The earliest stop string in text that ends at or after position `start` -> (index, stop)."""
    best = None
    for s in stops:
        i = text.find(s, max(0, start - len(s) + 1))
        if i >= 0 and (best is None or i < best[0]):
            best = (i, s)
    return best


# -- the pipeline ----------------------------------------------------------------------------------------
class TextPipeline:
    """A loaded text model and its tokenizer; `stream` is safe to call from several threads at once
    (the model is only read)."""

    def __init__(self, model, name: str = "", path: Path | None = None):
        if getattr(model, "modality", None) != "text" or getattr(model, "tokenizer", None) is None:
            raise ValueError("TextPipeline needs a text model with a tokenizer (e.g. a char-lm)")
        self.model = model.eval()
        self.tokenizer = model.tokenizer
        self.name = name
        self.path = path

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: str = "cpu", search=None) -> "TextPipeline":
        from aigc.hub import resolve_model_path
        path = resolve_model_path(name_or_path, search)
        cfg = ckpt.read_config(path)
        if cfg.get("modality") != "text":
            raise ValueError(f"{path.name} is not a text model (modality {cfg.get('modality', 'image')!r})")
        return cls(ckpt.from_pretrained(path, device=device), name=Path(name_or_path).name, path=path)

    @property
    def block_size(self) -> int:
        return self.model.config.block_size

    def stream(self, prompt: str = "", max_new: int = 200, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, repetition_penalty: float = 1.0, seed: int | None = None,
               stop: Sequence[str] | None = None, use_cache: bool = True) -> Iterator[TextStep]:
        """Yield a TextStep per new character (text growing), the last one with done=True.
        All arguments are checked here, before anything is generated: a bad one raises
        ValueError from this call itself, not from the first `next`."""
        args = self.check(prompt, max_new, temperature, top_k, top_p, repetition_penalty, seed, stop)
        return self._stream(args, use_cache)

    def check(self, prompt="", max_new=200, temperature=1.0, top_k=None, top_p=None, repetition_penalty=1.0,
              seed=None, stop=None) -> dict:
        """All arguments checked and normalised (the seed drawn if None); raises ValueError."""
        kw = check_sampling(max_new, temperature, top_k, top_p, repetition_penalty)
        kw["prompt"] = check_prompt(prompt)
        kw["stop"] = check_stop(stop)
        kw["seed"] = check_seed(seed)
        return kw

    @property
    def forms(self) -> list[str]:
        """The poem forms this model can be asked for (char-tang); [] for other text models."""
        from aigc.text.forms import FORMS
        stats = getattr(self.model, "meta", {}).get("text_stats", {}) if hasattr(self.model, "meta") else {}
        listed = stats.get("poem_forms")
        if listed is None:                 # older cards: a model that knows the 【】 header does
            listed = list(FORMS) if all(c in self.tokenizer.stoi for c in "【】，。\n") else []
        return [f for f in listed if f in FORMS]

    def stream_poem(self, form: str, title: str = "", first_line: str = "", temperature: float = 0.8,
                    top_k: int | None = None, top_p: float | None = None, repetition_penalty: float = 1.0,
                    seed: int | None = None, use_cache: bool = True) -> Iterator[TextStep]:
        """A poem in `form` (五言绝句, 七言绝句, 五言律诗, 七言律诗), streamed: each TextStep's
        text is the poem so far, title line first. An empty title lets the model write one;
        `first_line` starts the body (checked against the form). The line structure is kept by
        a decoding constraint (aigc.text.forms.FormConstraint); the model picks every character.
        Arguments are checked before anything is generated (ValueError)."""
        from aigc.text import forms as F
        if not self.forms:
            raise ValueError(f"{self.name or 'this model'} does not write poem forms; "
                             "use a Tang poem model (char-tang)")
        if form not in self.forms:
            raise ValueError(f"unknown form {str(form)[:40]!r}; choose one of {', '.join(self.forms)}")
        title = F.check_title(title)
        if not isinstance(first_line, str) and first_line is not None:
            raise ValueError("the first line must be text")
        first_line = (first_line or "").strip()
        if len(first_line) > 64:
            raise ValueError("the first line is longer than a couplet")
        constraint = F.FormConstraint(form, self.tokenizer, write_title=not title, first_line=first_line)
        max_new = len(constraint.slots) + F.MAX_TITLE_CHARS + 2
        a = self.check(F.header(form, title) + ("\n" + first_line if title else ""), max_new, temperature,
                       top_k, top_p, repetition_penalty, seed, None)
        if not title and first_line:
            raise ValueError("give a title with a first line (or leave both empty)")
        shown = (title + "\n" + first_line) if title else ""
        return self._stream(a, use_cache, constraint, shown)

    def _stream(self, a: dict, use_cache: bool, constraint=None, shown: str = "") -> Iterator[TextStep]:
        tok = self.tokenizer
        prompt, seed, stops = a["prompt"], a["seed"], a["stop"]
        unknown = tok.count_unknown(prompt)
        # only the last block_size characters are read; encode no more than that
        ids = tok.encode(prompt[-self.block_size:])
        gen = torch.Generator().manual_seed(seed)
        chars = tok.chars
        text = ""
        t0 = time.perf_counter()
        first = None
        n = 0
        it = self.model.generate(ids, a["max_new"], temperature=a["temperature"], top_k=a["top_k"],
                                 top_p=a["top_p"], repetition_penalty=a["repetition_penalty"], generator=gen,
                                 use_cache=use_cache,
                                 allowed=constraint.allowed if constraint is not None else None)
        try:
            for i in it:
                n += 1
                if first is None:
                    first = time.perf_counter() - t0
                text += chars[i] if 0 <= i < len(chars) else "\ufffd"
                hit = _find_stop(text, len(text) - 1, stops) if stops else None
                if hit is not None:
                    yield TextStep(shown + text[:hit[0]], seed, n, unknown, True, hit[1],
                                   time.perf_counter() - t0, first)
                    return
                if n == a["max_new"] or (constraint is not None and constraint.done(text)):
                    break
                yield TextStep(shown + text, seed, n, unknown, False, None, time.perf_counter() - t0, first)
        finally:
            it.close()
        if constraint is not None:
            text = text.rstrip("\n")
        yield TextStep(shown + text, seed, n, unknown, True, None, time.perf_counter() - t0, first)

    def generate(self, prompt: str = "", max_new: int = 200, **kwargs) -> TextStep:
        """The whole continuation at once (the last step of `stream`)."""
        step = None
        for step in self.stream(prompt, max_new, **kwargs):
            pass
        return step
