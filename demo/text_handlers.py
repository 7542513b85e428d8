"""Handlers of the Text tab's Generate and Poem views: stream text from a text model, stop it,
continue it, write it again with a new seed.

Streaming: at most STREAM_EVERY_S apart an update (the text so far, the seed, a status line)
goes out; Gradio sends each streamed string as an append of what is new, and the page redraws at
most ~10 times a second, so a long text stays as quick as a short one. Stop sets a flag that the
running generation reads between two characters: it ends with a last update that says
"stopped at N characters". A run still waiting in the queue has no flag yet; Stop cancels it.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time

import gradio as gr

from aigc.limits import MAX_PROMPT_CHARS, SEED_MAX
from demo.common import owner_id

log = logging.getLogger("aigc.demo")

STREAM_EVERY_S = 0.1            # at most ~10 updates a second reach the page: each one redraws the text
MAX_STOP_FIELD = 4000


def parse_stop(field) -> list[str]:
    """The stop-strings box: one stop string per line; \\n, \\t and \\\\ are read as escapes
    (type \\n\\n to stop at a blank line). Empty lines are ignored."""
    if field is None or field == "":
        return []
    if not isinstance(field, str):
        raise ValueError("stop strings must be text")
    if len(field) > MAX_STOP_FIELD:
        raise ValueError(f"the stop strings are {len(field)} characters; the limit is {MAX_STOP_FIELD}")
    out = []
    for line in field.split("\n"):
        line = line.rstrip("\r")
        if not line:
            continue
        s, i = [], 0
        while i < len(line):
            c = line[i]
            if c == "\\" and i + 1 < len(line) and line[i + 1] in "nt\\":
                s.append({"n": "\n", "t": "\t", "\\": "\\"}[line[i + 1]])
                i += 2
            else:
                s.append(c)
                i += 1
        out.append("".join(s))
    return out


def _ui_int(v, what: str):
    """A number from a component (int or integral float) -> int; None stays None."""
    if v is None or v == "":
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{what} must be a number")
    if isinstance(v, float) and not v.is_integer():
        raise ValueError(f"{what} must be a whole number (got {v:g})")
    return int(v)


class TextHandlers:
    """Handlers of the Generate and Poem views, bound to one TextModels."""

    def __init__(self, models):
        self.models = models
        self._runs: dict[str, set[threading.Event]] = {}      # who asks -> the stop flags of their runs
        self._runs_lock = threading.Lock()

    @staticmethod
    def dice() -> int:
        return secrets.randbelow(SEED_MAX + 1)

    @staticmethod
    def _controls(seed, top_k, top_p):
        seed = _ui_int(seed, "seed")
        if seed is not None and not 0 <= seed <= SEED_MAX:
            raise ValueError(f"seed must be between 0 and {SEED_MAX}")
        top_k = _ui_int(top_k, "top-k")
        if top_p is not None and not isinstance(top_p, bool) and isinstance(top_p, (int, float)) and top_p >= 1:
            top_p = None                         # 1 = off
        return seed, top_k, top_p

    # -- Generate, Continue, Regenerate, Stop --------------------------------------------------------------
    def generate(self, model, prompt, temperature, top_k, top_p, repetition_penalty, max_length, seed, stop,
                 token=None, request: gr.Request = None):
        """Stream (continuation so far, seed used, info). Bad input -> gr.Error before any output.
        `token`/`request`: who asks (a model they may not see is an unknown model)."""
        yield from self._generate(model, prompt, "", temperature, top_k, top_p, repetition_penalty, max_length,
                                  seed, stop, token, request)

    def continue_(self, model, prompt, so_far, temperature, top_k, top_p, repetition_penalty, max_length, seed,
                  stop, token=None, request: gr.Request = None):
        """Up to `max_length` more characters after the prompt and the text so far; streams the
        text so far with the new characters appended."""
        if so_far is not None and not isinstance(so_far, str):
            raise gr.Error("the text so far must be text", print_exception=False)
        if so_far and len(prompt or "") + len(so_far) > MAX_PROMPT_CHARS:
            raise gr.Error(f"the prompt and the text so far are {len(prompt or '') + len(so_far):,} characters; "
                           f"Continue reads at most {MAX_PROMPT_CHARS:,}", print_exception=False)
        yield from self._generate(model, prompt, so_far or "", temperature, top_k, top_p, repetition_penalty,
                                  max_length, seed, stop, token, request)

    def regenerate(self, model, prompt, temperature, top_k, top_p, repetition_penalty, max_length, seed, stop,
                   token=None, request: gr.Request = None):
        """The same prompt again with a fresh seed (the seed box shows it)."""
        yield from self._generate(model, prompt, "", temperature, top_k, top_p, repetition_penalty, max_length,
                                  self.dice(), stop, token, request)

    def stop(self, miss=0, request: gr.Request = None):
        """Stop the asker's running generations -> `miss` unchanged; when none runs yet (still
        queued), `miss + 1`, whose change cancels the queued run."""
        with self._runs_lock:
            flags = list(self._runs.get(self._who(request), ()))
        for f in flags:
            f.set()
        return miss if flags else (miss or 0) + 1

    @staticmethod
    def _who(request) -> str:
        return str(getattr(request, "session_hash", None) or "local")

    def _generate(self, model, prompt, so_far, temperature, top_k, top_p, repetition_penalty, max_length, seed,
                  stop, token, request):
        try:
            pipe = self.models.get(model, owner_id(token, request))
            seed, top_k, top_p = self._controls(seed, top_k, top_p)
            if not isinstance(prompt, (str, type(None))):
                raise ValueError("prompt must be text")
            steps = pipe.stream((prompt or "") + so_far, max_new=_ui_int(max_length, "max length"),
                                temperature=temperature, top_k=top_k, top_p=top_p,
                                repetition_penalty=repetition_penalty, seed=seed, stop=parse_stop(stop))
        except gr.Error:
            raise
        except (ValueError, TypeError) as e:
            raise gr.Error(str(e), print_exception=False) from None
        flag, who = threading.Event(), self._who(request)
        with self._runs_lock:
            self._runs.setdefault(who, set()).add(flag)
        try:
            yield from self._send(steps, so_far, flag)
        finally:
            with self._runs_lock:
                runs = self._runs.get(who, set())
                runs.discard(flag)
                if not runs:
                    self._runs.pop(who, None)

    def poem(self, model, form, title, first_line, temperature, top_k, top_p, repetition_penalty, seed,
             token=None, request: gr.Request = None):
        """Stream (poem so far, seed used, info) in a Tang form; the info ends with the form check."""
        from aigc.text.forms import check_form
        try:
            pipe = self.models.get(model, owner_id(token, request))
            seed, top_k, top_p = self._controls(seed, top_k, top_p)
            steps = pipe.stream_poem(form, title=title, first_line=first_line, temperature=temperature,
                                     top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty, seed=seed)
        except gr.Error:
            raise
        except (ValueError, TypeError) as e:
            raise gr.Error(str(e), print_exception=False) from None
        for text, used, info in self._send(steps):
            if not info.endswith("writing…"):
                r = check_form(text, form)
                info += f" · {form}: " + ("form kept ✓" if r.ok else f"form broken: {r.reason}")
            yield text, used, info

    def _send(self, steps, before: str = "", flag: threading.Event | None = None):
        """TextSteps -> (before + text, seed, info) tuples, at most one per STREAM_EVERY_S (the
        last one always); a set `flag` ends the run with a "stopped at N characters" update."""
        last_sent = 0.0
        step = None
        try:
            for step in steps:
                if flag is not None and flag.is_set():
                    text = before + step.text
                    yield text, step.seed, self._info(step, len(text), f"stopped at {len(text)} characters")
                    return
                now = time.perf_counter()
                if step.done or now - last_sent >= STREAM_EVERY_S:
                    last_sent = now
                    text = before + step.text
                    yield text, step.seed, self._info(step, len(text))
        except Exception as e:  # noqa: BLE001 - the server keeps serving; the person gets a reason
            log.exception("text generation failed")
            raise gr.Error(f"internal error ({type(e).__name__}); the server is still running",
                           print_exception=False) from None
        finally:
            steps.close()

    @staticmethod
    def _info(step, shown: int, stopped: str | None = None) -> str:
        parts = [f"seed **{step.seed}**", f"{shown} characters"]
        if step.elapsed_s > 0 and step.new_chars:
            parts.append(f"{step.new_chars / step.elapsed_s:.0f} chars/s")
        if step.first_char_s is not None:
            parts.append(f"first after {step.first_char_s * 1000:.0f} ms")
        if stopped:
            parts.append(stopped)
        elif step.stopped_by is not None:
            parts.append(f"stopped at {step.stopped_by!r}")
        elif not step.done:
            parts.append("writing…")
        if step.unknown_chars:
            parts.append(f"{step.unknown_chars} prompt character(s) outside the vocabulary read as \ufffd")
        return " · ".join(parts)
