"""The Text tab's Generate view: stream text from a saved text model (a char-lm).

`build_text_tab(source)` lays the view out inside the caller's `gr.Tab` (demo.app's `extra_tabs`
calls it with the ModelRegistry). `source` may be a ModelRegistry (its weights folder is scanned),
a TextModels, a weights folder path, or None (the project's weights/).

Named endpoints (gradio_client):
  /generate_text (model, prompt, temperature, top_k, top_p, repetition_penalty, max_length, seed,
                  stop) -> (continuation, seed used, info markdown); streams: `Client.submit`
                  yields the growing continuation, `Client.predict` returns the final one.
  /text_dice () -> a fresh random seed

The text models are found and loaded by the studio's one ModelRegistry (demo.models); TextModels
is the tab's view of it. A person sees the shipped models, their own user models and shared ones
(demo.common.owner_id: the login, the browser's owner token, else the session); nothing about a
user is kept outside the components.
"""
from __future__ import annotations

import logging
import secrets
import time
from pathlib import Path

import gradio as gr

from aigc.limits import MAX_NEW_CHARS, SEED_MAX, TEXT_TEMP_MAX
from demo.common import owner_id
from demo.models import NOBODY, ModelRegistry

log = logging.getLogger("aigc.demo")

STREAM_EVERY_S = 0.05           # at most ~20 updates a second reach the page
MAX_STOP_FIELD = 4000


def _choices(names: list[str], current):
    return gr.update(choices=names, value=current if current in names else (names[0] if names else None))


class TextModels:
    """The Text tab's view of the studio's ModelRegistry (demo.models, the one loader): its text
    models by kind, as one asker may see them. Made from a weights folder alone, it makes a
    registry that loads each model on first use."""

    def __init__(self, weights_dir: str | Path | None = None, device: str = "cpu", registry=None):
        if registry is None:
            from aigc.hub import WEIGHTS_DIR
            registry = ModelRegistry(weights_dir or WEIGHTS_DIR, device=device, preload=False)
        self.registry = registry
        self.weights_dir = registry.weights_dir

    def names(self, kind: str | None = "char-lm", owner: str | None = None) -> list[str]:
        """Text model names of one kind (default: the language models; None: every text model)
        that `owner` may see, the weights folder's first, then the user models."""
        return self.registry.text_choices(owner, kind)

    def picker_update(self, current=None, token=None, request: gr.Request = None):
        """The language-model picker after looking for newly published user models."""
        self.registry.refresh()
        return _choices(self.names(owner=owner_id(token, request)), current)

    def poem_picker_update(self, current=None, token=None, request: gr.Request = None):
        """The poem-model picker, likewise."""
        self.registry.refresh()
        return _choices(self.poem_models(owner_id(token, request)), current)

    def poem_models(self, owner: str | None = None) -> list[str]:
        """Language models that write poem forms (their training data had the 【form】 header)."""
        return [n for n in self.names(owner=owner) if self.registry.entries[n].text_stats.get("poem_forms")]

    def get(self, name, owner: str | None = None):
        """name -> aigc.pipelines.charlm.TextPipeline (or a TextVAEPipeline); ValueError for an
        unknown, unloadable or someone else's unshared model."""
        return self.registry.text_pipeline(name, owner)

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
        if source is None or isinstance(source, (str, Path)):
            return cls(source)
        if not isinstance(source, ModelRegistry):
            raise TypeError("build_text_tab needs a ModelRegistry, a TextModels, a weights folder or None")
        return cls(registry=source)


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

    def generate(self, model, prompt, temperature, top_k, top_p, repetition_penalty, max_length, seed, stop,
                 token=None, request: gr.Request = None):
        """Stream (continuation so far, seed used, info). Bad input -> gr.Error before any output.
        `token`/`request`: who asks (a model they may not see is an unknown model)."""
        try:
            pipe = self.models.get(model, owner_id(token, request))
            seed, top_k, top_p = self._controls(seed, top_k, top_p)
            steps = pipe.stream(prompt, max_new=_ui_int(max_length, "max length"), temperature=temperature,
                                top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty, seed=seed,
                                stop=parse_stop(stop))
        except gr.Error:
            raise
        except (ValueError, TypeError) as e:
            raise gr.Error(str(e), print_exception=False) from None
        yield from self._send(steps)

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
    h.owner_state = gr.State(None)          # the browser's owner token, when demo.app passes it in
    h.model_pickers = []
    with gr.Tabs():
        with gr.Tab("Generate", id="text-generate-view"):
            _generate_view(h, models)
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
    names = models.poem_models(NOBODY)
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
    ev = go.click(h.poem, [model, form, title, first, temperature, top_k, top_p, rep, seed, h.owner_state],
                  [output, seed, info],
                  api_name="generate_poem", concurrency_id="text", concurrency_limit=2)
    stop_btn.click(None, None, None, cancels=[ev], api_visibility="private")
    dice.click(h.dice, None, [seed], api_name="poem_dice", api_visibility="private", queue=False,
               show_progress="hidden")
    model.focus(models.poem_picker_update, [model, h.owner_state], [model], api_visibility="private",
                queue=False, show_progress="hidden")
    h.model_pickers.append((models.poem_picker_update, [model, h.owner_state], [model]))


def _generate_view(h: TextHandlers, models: TextModels) -> None:
    from aigc.pipelines.charlm import MAX_PROMPT_CHARS

    names = models.names(owner=NOBODY)
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

    ev = gen_btn.click(h.generate, [model, prompt, temperature, top_k, top_p, rep, max_length, seed, stop,
                                    h.owner_state],
                       [output, seed, info], api_name="generate_text", concurrency_id="text",
                       concurrency_limit=2)
    stop_btn.click(None, None, None, cancels=[ev], api_visibility="private")
    dice.click(h.dice, None, [seed], api_name="text_dice", queue=False, show_progress="hidden")
    # fine-tuned language models appear without a restart: on focus, and when a job publishes one
    model.focus(models.picker_update, [model, h.owner_state], [model], api_name="text_models_refresh",
                api_visibility="private", queue=False, show_progress="hidden")
    h.model_pickers.append((models.picker_update, [model, h.owner_state], [model]))
