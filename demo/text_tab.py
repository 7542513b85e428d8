"""The Text tab's Generate view: stream text from a saved text model (a char-lm).

`build_text_tab(source)` lays the view out inside the caller's `gr.Tab` (demo.app's `extra_tabs`
calls it with the ModelRegistry). `source` may be a ModelRegistry (its weights folder is scanned),
a TextModels, a weights folder path, or None (the project's weights/).

Named endpoints (gradio_client):
  /generate_text (model, prompt, temperature, top_k, top_p, repetition_penalty, max_length, seed,
                  stop) -> (continuation, seed used, info markdown); streams: `Client.submit`
                  yields the growing continuation, `Client.predict` returns the final one.
  /text_dice () -> a fresh random seed

The text models are found and loaded here (demo.models loads image models only) by one
TextModels object, created once and shared read-only by every session; nothing about a user is
kept outside the components.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from pathlib import Path

import gradio as gr

from demo.models import _read_json, scan
from aigc.limits import MAX_NEW_CHARS, SEED_MAX, TEXT_TEMP_MAX

log = logging.getLogger("aigc.demo")

STREAM_EVERY_S = 0.05           # at most ~20 updates a second reach the page
MAX_STOP_FIELD = 4000


class TextModels:
    """The text models of one weights folder (config.json with "modality": "text"), loaded on
    first use (one lock per model) and then shared read-only."""

    def __init__(self, weights_dir: str | Path, device: str = "cpu", registry=None):
        self.weights_dir = Path(weights_dir).resolve()
        self.device = device
        self.registry = registry        # the studio's ModelRegistry: adds the user models (fine-tunes)
        self.entries = {e.name: e for e in scan(self.weights_dir) if e.modality == "text" and e.error is None}
        self._pipes: dict = {}
        self._errors: dict[str, str] = {}
        self._locks = {name: threading.Lock() for name in self.entries}

    def names(self, kind: str | None = "char-lm") -> list[str]:
        """Model names of one kind (default: the language models; None: every text model),
        the weights folder's first, then the registry's user models (fine-tuned language models)."""
        own = [n for n, e in self.entries.items() if kind is None or e.kind == kind]
        return own + [n for n in self._user_names() if kind in (None, "char-lm")]

    def _user_names(self) -> list[str]:
        if self.registry is None or not hasattr(self.registry, "text_choices"):
            return []
        return [n for n in self.registry.text_choices()
                if n not in self.entries and getattr(self.registry.entries.get(n), "kind", "") == "char-lm"]

    def picker_update(self, current=None):
        """The language-model picker after looking for newly published user models."""
        if self.registry is not None and hasattr(self.registry, "refresh"):
            self.registry.refresh()
        names = self.names()
        return gr.update(choices=names, value=current if current in names else (names[0] if names else None))

    def entry(self, name):
        """The entry of a shipped or a user text model; None when neither folder has it."""
        if name in self.entries:
            return self.entries[name]
        return getattr(self.registry, "entries", {}).get(name) if self.registry is not None else None

    def poem_models(self) -> list[str]:
        """Language models that write poem forms (their training data had the 【form】 header);
        a model whose config cannot be read is simply not one of them."""
        out = []
        for n in self.names():
            e = self.entry(n)
            cfg = (_read_json(e.path / "config.json") if e is not None else None) or {}
            stats = cfg.get("text_stats") if isinstance(cfg, dict) and isinstance(cfg.get("text_stats"), dict) else {}
            if stats.get("poem_forms"):
                out.append(n)
        return out

    def get(self, name):
        """name -> aigc.pipelines.charlm.TextPipeline (or a TextVAEPipeline); ValueError for an unknown or
        unloadable model."""
        if isinstance(name, str) and name not in self.entries and name in self._user_names():
            return self.registry.text_pipeline(name)       # a user model: the registry loads it once
        if not isinstance(name, str) or name not in self.entries:
            known = ", ".join(self.entries) or "none"
            raise ValueError(f"unknown text model {str(name)[:80]!r} (available: {known})")
        if name in self._pipes:
            return self._pipes[name]
        with self._locks[name]:
            if name not in self._pipes:
                if name in self._errors:
                    raise ValueError(self._errors[name])
                if self.entries[name].kind == "text-vae":
                    from aigc.pipelines.textvae import TextVAEPipeline as Pipeline
                else:
                    from aigc.pipelines.charlm import TextPipeline as Pipeline
                try:
                    pipe = Pipeline.from_pretrained(self.entries[name].path, device=self.device)
                except (ValueError, OSError) as e:
                    self._errors[name] = f"text model {name} could not be loaded: {e}"[:500]
                    log.warning(self._errors[name])
                    raise ValueError(self._errors[name]) from None
                pipe.name = name
                self._pipes[name] = pipe
        return self._pipes[name]

    def load_all(self) -> None:
        for name in self.names(None):
            try:
                self.get(name)
            except ValueError:
                pass

    @classmethod
    def from_source(cls, source) -> "TextModels":
        if isinstance(source, cls):
            return source
        if source is None:
            from aigc.hub import WEIGHTS_DIR
            return cls(WEIGHTS_DIR)
        if isinstance(source, (str, Path)):
            return cls(source)
        weights_dir = getattr(source, "weights_dir", None)
        if weights_dir is None:
            raise TypeError("build_text_tab needs a ModelRegistry, a TextModels, a weights folder or None")
        return cls(weights_dir, device=getattr(source, "device", "cpu"), registry=source)


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
    """Handlers of the Generate view, bound to one TextModels."""

    def __init__(self, models: TextModels):
        self.models = models

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

    def generate(self, model, prompt, temperature, top_k, top_p, repetition_penalty, max_length, seed, stop):
        """Stream (continuation so far, seed used, info). Bad input -> gr.Error before any output."""
        try:
            pipe = self.models.get(model)
            seed, top_k, top_p = self._controls(seed, top_k, top_p)
            steps = pipe.stream(prompt, max_new=_ui_int(max_length, "max length"), temperature=temperature,
                                top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty, seed=seed,
                                stop=parse_stop(stop))
        except gr.Error:
            raise
        except (ValueError, TypeError) as e:
            raise gr.Error(str(e), print_exception=False) from None
        yield from self._send(steps)

    def poem(self, model, form, title, first_line, temperature, top_k, top_p, repetition_penalty, seed):
        """Stream (poem so far, seed used, info) in a Tang form; the info ends with the form check."""
        from aigc.text.forms import check_form
        try:
            pipe = self.models.get(model)
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

    def _send(self, steps):
        """TextSteps -> (text, seed, info) tuples, at most ~20 a second (the last one always)."""
        last_sent = 0.0
        step = None
        try:
            for step in steps:
                now = time.perf_counter()
                if step.done or now - last_sent >= STREAM_EVERY_S:
                    last_sent = now
                    yield step.text, step.seed, self._info(step)
        except Exception as e:  # noqa: BLE001 - the server keeps serving; the person gets a reason
            log.exception("text generation failed")
            raise gr.Error(f"internal error ({type(e).__name__}); the server is still running",
                           print_exception=False) from None
        finally:
            steps.close()

    @staticmethod
    def _info(step) -> str:
        parts = [f"seed **{step.seed}**", f"{len(step.text)} characters"]
        if step.elapsed_s > 0 and step.new_chars:
            parts.append(f"{step.new_chars / step.elapsed_s:.0f} chars/s")
        if step.first_char_s is not None:
            parts.append(f"first after {step.first_char_s * 1000:.0f} ms")
        if step.stopped_by is not None:
            parts.append(f"stopped at {step.stopped_by!r}")
        elif not step.done:
            parts.append("writing…")
        if step.unknown_chars:
            parts.append(f"{step.unknown_chars} prompt character(s) outside the vocabulary read as \ufffd")
        return " · ".join(parts)


def build_text_tab(source=None, models: TextModels | None = None) -> TextHandlers:
    """Lay out the Text tab (Generate, Poem and Latent views) in the current Blocks context;
    returns the Generate/Poem handlers."""
    models = models or TextModels.from_source(source)
    h = TextHandlers(models)
    with gr.Tabs():
        with gr.Tab("Generate", id="text-generate-view"):
            _generate_view(h, models)      # sets h.model_pickers
        with gr.Tab("Poem", id="text-poem-view"):
            _poem_view(h, models)
        with gr.Tab("Latent", id="text-latent-view"):
            from demo.text_latent import build_latent_view
            build_latent_view(models)
    return h


def _sampling_controls(prefix: str, temperature=0.8):
    from aigc.pipelines.charlm import REP_MAX
    t = gr.Slider(0.0, TEXT_TEMP_MAX, value=temperature, step=0.05, label="Temperature (0 = greedy)",
                  elem_id=f"{prefix}-temperature")
    k = gr.Slider(0, 100, value=0, step=1, label="Top-k (0 = off)", elem_id=f"{prefix}-top-k")
    p = gr.Slider(0.05, 1.0, value=1.0, step=0.01, label="Top-p (1 = off)", elem_id=f"{prefix}-top-p")
    r = gr.Slider(1.0, min(2.0, REP_MAX), value=1.0, step=0.01, label="Repetition penalty (1 = off)",
                  elem_id=f"{prefix}-rep")
    return t, k, p, r


def _poem_view(h: TextHandlers, models: TextModels) -> None:
    from aigc.text.forms import FORMS, MAX_TITLE_CHARS
    names = models.poem_models()
    if not names:
        gr.Markdown("**No poem model found.** Poems need a model trained on the Tang poems "
                    "(`python -m aigc train --model char-lm --data tang --out runs/char-tang --set preset=cpu`).")
    gr.Markdown("A Tang poem in a classical form. The form's line structure (characters per clause, "
                "couplets, punctuation) is kept by the decoder; every character is the model's choice. "
                "Leave the title empty and the model writes one.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            model = gr.Dropdown(names, value=names[0] if names else None, label="Poem model",
                                allow_custom_value=True, elem_id="poem-model")
            form = gr.Dropdown(list(FORMS), value="五言绝句", label="Form", elem_id="poem-form")
            title = gr.Textbox("", label="Title (empty: the model writes one)", max_length=MAX_TITLE_CHARS,
                               elem_id="poem-title")
            first = gr.Textbox("", label="First line or clause (optional, needs a title)", max_length=64,
                               elem_id="poem-first-line")
            temperature, top_k, top_p, rep = _sampling_controls("poem", 0.8)
            with gr.Row():
                seed = gr.Number(0, label="Seed (empty: draw one)", precision=0, minimum=0, maximum=SEED_MAX,
                                 elem_id="poem-seed", scale=3)
                dice = gr.Button("Roll dice", scale=1, min_width=60, elem_id="poem-dice")
            with gr.Row():
                go = gr.Button("Write", variant="primary", elem_id="poem-write")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="poem-stop")
        with gr.Column(scale=2, min_width=320):
            output = gr.Textbox(label="Poem", lines=12, interactive=False, buttons=["copy"], elem_id="poem-output")
            info = gr.Markdown(elem_id="poem-info")
    ev = go.click(h.poem, [model, form, title, first, temperature, top_k, top_p, rep, seed], [output, seed, info],
                  api_name="generate_poem", concurrency_id="text", concurrency_limit=2)
    stop_btn.click(None, None, None, cancels=[ev], api_visibility="private")
    dice.click(h.dice, None, [seed], api_name="poem_dice", api_visibility="private", queue=False,
               show_progress="hidden")


def _generate_view(h: TextHandlers, models: TextModels) -> None:
    from aigc.pipelines.charlm import MAX_PROMPT_CHARS

    names = models.names()
    first = names[0] if names else None
    if not names:
        gr.Markdown(f"**No text models found under `{models.weights_dir}`.** Train one "
                    "(`python -m aigc train --model char-lm --data shakespeare --out runs/my-lm --max-steps 2000`) or copy a saved text model folder there.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            model = gr.Dropdown(names, value=first, label="Text model", allow_custom_value=True,
                                elem_id="text-model")
            prompt = gr.Textbox("ROMEO.\n", label="Prompt (empty: start from nothing)", lines=5,
                                max_length=MAX_PROMPT_CHARS, elem_id="text-prompt")
            temperature, top_k, top_p, rep = _sampling_controls("text", 0.8)
            max_length = gr.Slider(1, MAX_NEW_CHARS, value=500, step=1, label="Max length (characters)",
                                   elem_id="text-max-length")
            with gr.Row():
                seed = gr.Number(0, label="Seed (empty: draw one)", precision=0, minimum=0, maximum=SEED_MAX,
                                 elem_id="text-seed", scale=3)
                dice = gr.Button("Roll dice", elem_id="text-dice", scale=1, min_width=60)
            stop = gr.Textbox("", label="Stop strings (one per line; \\n for a newline)", lines=2,
                              max_length=MAX_STOP_FIELD, elem_id="text-stop")
            with gr.Row():
                gen_btn = gr.Button("Generate", variant="primary", elem_id="text-generate")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="text-stop-btn")
        with gr.Column(scale=2, min_width=320):
            output = gr.Textbox(label="Continuation", lines=18, max_lines=40, interactive=False,
                                autoscroll=True, buttons=["copy"], elem_id="text-output")
            info = gr.Markdown(label="info", elem_id="text-info")

    ev = gen_btn.click(h.generate, [model, prompt, temperature, top_k, top_p, rep, max_length, seed, stop],
                       [output, seed, info], api_name="generate_text", concurrency_id="text",
                       concurrency_limit=2)
    stop_btn.click(None, None, None, cancels=[ev], api_visibility="private")
    dice.click(h.dice, None, [seed], api_name="text_dice", queue=False, show_progress="hidden")
    # fine-tuned language models appear without a restart: on focus, and when a job publishes one
    model.focus(models.picker_update, [model], [model], api_name="text_models_refresh",
                api_visibility="private", queue=False, show_progress="hidden")
    h.model_pickers = [(models.picker_update, [model], [model])]
