"""The Text tab: Generate (stream text from a char-lm), Poem (a Tang form) and Latent (a text VAE).

`build_text_tab(source)` lays the views out inside the caller's `gr.Tab` (demo.app's `extra_tabs`
calls it with the ModelRegistry). `source` may be a ModelRegistry (its weights folder is scanned),
a TextModels, a weights folder path, or None (the project's weights/).

Named endpoints (gradio_client):
  /generate_text (model, prompt, temperature, top_k, top_p, repetition_penalty, max_length, seed,
                  stop) -> (continuation, seed used, info markdown); streams: `Client.submit`
                  yields the growing continuation, `Client.predict` returns the final one.
  /continue_text (model, prompt, text_so_far, temperature, top_k, top_p, repetition_penalty,
                  max_length, seed, stop) -> (text so far + up to max_length more, seed, info)
  /regenerate_text (same as /generate_text; the seed given is replaced by a fresh one)
  /generate_poem (model, form, title, first_line, temperature, top_k, top_p, repetition_penalty, seed)
  /text_dice () -> a fresh random seed

The text models are found and loaded by the studio's one ModelRegistry (demo.models); TextModels
(demo.text_models) is the tab's view of it. A person sees the shipped models, their own user
models and shared ones (demo.common.owner_id); nothing about a user is kept outside the components.
"""
from __future__ import annotations

import gradio as gr

from aigc.limits import MAX_NEW_CHARS, SEED_MAX, TEXT_TEMP_MAX
from demo.models import NOBODY
from demo.text_examples import DEFAULT_PRESET, HELP, POEM_TITLES, PRESETS, preset_values, prompt_examples
from demo.text_handlers import MAX_STOP_FIELD, STREAM_EVERY_S, TextHandlers, parse_stop
from demo.text_models import TextModels

__all__ = ["TextModels", "TextHandlers", "build_text_tab", "parse_stop", "STREAM_EVERY_S"]
STREAMED = dict(concurrency_id="text", concurrency_limit=2, show_progress="hidden")   # the status line says "writing…"


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


def _sampling_controls(prefix: str):
    from aigc.pipelines.charlm import REP_MAX
    temperature, top_k, top_p, rep = PRESETS[DEFAULT_PRESET]
    preset = gr.Radio([*PRESETS, "custom"], value=DEFAULT_PRESET, label="Sampling preset", info=HELP["preset"],
                      elem_id=f"{prefix}-preset")
    t = gr.Slider(0.0, TEXT_TEMP_MAX, value=temperature, step=0.05, label="Temperature (0 = greedy)",
                  info=HELP["temperature"], elem_id=f"{prefix}-temperature")
    k = gr.Slider(0, 100, value=top_k, step=1, label="Top-k (0 = off)", info=HELP["top_k"], elem_id=f"{prefix}-top-k")
    p = gr.Slider(0.05, 1.0, value=top_p, step=0.01, label="Top-p (1 = off)", info=HELP["top_p"],
                  elem_id=f"{prefix}-top-p")
    r = gr.Slider(1.0, min(2.0, REP_MAX), value=rep, step=0.01, label="Repetition penalty (1 = off)",
                  info=HELP["repetition_penalty"], elem_id=f"{prefix}-rep")
    preset.input(preset_knobs, [preset], [t, k, p, r], api_visibility="private", queue=False,
                 show_progress="hidden")
    for knob in (t, k, p, r):          # a knob moved by hand: the preset no longer describes them
        knob.input(lambda: "custom", None, [preset], api_visibility="private", queue=False, show_progress="hidden")
    return t, k, p, r


def preset_knobs(name):
    """A preset's name -> updates of temperature, top-k, top-p and repetition penalty ('custom': unchanged)."""
    if name == "custom":
        return (gr.update(),) * 4
    return tuple(gr.update(value=v) for v in preset_values(name))


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
            gr.Examples([list(r) for r in POEM_TITLES], [title, form], label="Poem titles", elem_id="poem-examples",
                        api_name="poem_example", api_visibility="private")
            temperature, top_k, top_p, rep = _sampling_controls("poem")
            with gr.Row():
                seed = gr.Number(0, label="Seed (empty: draw one)", precision=0, minimum=0, maximum=SEED_MAX,
                                 elem_id="poem-seed", scale=3)
                dice = gr.Button("Roll dice", scale=1, min_width=60, elem_id="poem-dice")
            with gr.Row():
                go = gr.Button("Write", variant="primary", elem_id="poem-write")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="poem-stop")
        with gr.Column(scale=2, min_width=320):
            output = gr.Textbox(label="Poem", lines=12, interactive=False, buttons=["copy"], elem_id="poem-output",
                                elem_classes=["aigc-text-out"])
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
            rows = prompt_examples(models.datasets(NOBODY))
            if rows:
                gr.Examples(rows, [model, prompt], label="Example prompts", elem_id="text-examples",
                            examples_per_page=12, api_name="text_example", api_visibility="private")
            temperature, top_k, top_p, rep = _sampling_controls("text")
            max_length = gr.Slider(1, MAX_NEW_CHARS, value=500, step=1, label="Max length (characters)",
                                   info="Continue adds up to this many more.", elem_id="text-max-length")
            with gr.Row():
                seed = gr.Number(0, label="Seed (empty: draw one)", precision=0, minimum=0, maximum=SEED_MAX,
                                 elem_id="text-seed", scale=3)
                dice = gr.Button("Roll dice", elem_id="text-dice", scale=1, min_width=60)
            stop = gr.Textbox("", label="Stop strings (one per line; \\n for a newline)", lines=2,
                              max_length=MAX_STOP_FIELD, elem_id="text-stop")
        with gr.Column(scale=2, min_width=320):
            with gr.Row():
                gen_btn = gr.Button("Generate", variant="primary", elem_id="text-generate")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="text-stop-btn")
                cont_btn = gr.Button("Continue", elem_id="text-continue")
                regen_btn = gr.Button("Regenerate", elem_id="text-regenerate")
            # a fixed height (lines == max_lines): the page never re-measures a growing box
            output = gr.Textbox(label="Continuation", lines=20, max_lines=20, interactive=False,
                                autoscroll=True, buttons=["copy"], elem_id="text-output",
                                elem_classes=["aigc-text-out"])
            info = gr.Markdown(label="info", elem_id="text-info")

    knobs = [temperature, top_k, top_p, rep, max_length, seed, stop, h.owner_state]
    ev = gen_btn.click(h.generate, [model, prompt, *knobs], [output, seed, info], api_name="generate_text",
                       **STREAMED)
    ev_cont = cont_btn.click(h.continue_, [model, prompt, output, *knobs], [output, seed, info],
                             api_name="continue_text", **STREAMED)
    ev_regen = regen_btn.click(h.regenerate, [model, prompt, *knobs], [output, seed, info],
                               api_name="regenerate_text", **STREAMED)
    stop_miss = gr.State(0)             # changes only when Stop found nothing running: the run is still queued
    stop_btn.click(h.stop, [stop_miss], [stop_miss], api_name="stop_text", api_visibility="private", queue=False,
                   show_progress="hidden")
    stop_miss.change(None, None, None, cancels=[ev, ev_cont, ev_regen], api_visibility="private")
    dice.click(h.dice, None, [seed], api_name="text_dice", queue=False, show_progress="hidden")
    # fine-tuned language models appear without a restart: on focus, and when a job publishes one
    model.focus(models.picker_update, [model, h.owner_state], [model], api_name="text_models_refresh",
                api_visibility="private", queue=False, show_progress="hidden")
    h.model_pickers.append((models.picker_update, [model, h.owner_state], [model]))
