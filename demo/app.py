"""Layout and event wiring of the studio. `build_demo(registry)` -> gr.Blocks; nothing here
computes anything (see demo.image_handlers and aigc).

Named endpoints (gradio_client: `client.predict(..., api_name="/sample")`):
  /model_info /sample /dice /open /edit /reset /nearest /use_as_a /use_as_b /interpolate
  /encode /encode_drawing /recipe /restore /save_direction /rename_direction
Per-session values live in one gr.State; the models are shared read-only through the registry.
"""
from __future__ import annotations

from typing import Callable

import gradio as gr

from aigc.limits import FRAMES_MAX, GRID_MAX, IMAGE_TEMP_MAX, SEED_MAX
from demo.image_handlers import ANY, DIM_RANGE, DIR_RANGE, N_DIM, N_DIR, SOURCES, Studio, new_state
from demo.models import ModelRegistry

CSS = """
#editor img { image-rendering: pixelated; }
#gallery img, #strip img { image-rendering: pixelated; }
.aigc-small { font-size: 0.9em; opacity: 0.85; }
.aigc-dim input[type=number] { width: 4.2em; }
"""
# Slider events send one object {"dir1": v, ..., "dim32": v} read from the page, not 48 separate
# inputs: Gradio preprocesses each input on a worker thread, and 48 thread hops per slider move
# cost more than the render itself.
JS_COLLECT = """(...args) => {
  const v = {};
  for (const [p, n] of [["dir", %d], ["dim", %d]]) {
    for (let i = 1; i <= n; i++) {
      const el = document.querySelector(`#${p}${i} input[type=range]`);
      if (el) { const x = parseFloat(el.value); if (x) v[`${p}${i}`] = x; }
    }
  }
  args[args.length - 1] = v;
  return args;
}""" % (N_DIR, N_DIM)
PLACEHOLDER_TABS = {
    "Text": "Text generation comes with its own issue.",
    "Fine-tune": "Fine-tuning on your own pictures comes with its own issue.",
}


def _models_table(registry: ModelRegistry) -> str:
    rows = ["| model | kind | dataset | metrics | status |", "|---|---|---|---|---|"]
    for e in registry.entries.values():
        metrics = ", ".join(f"{k}: {v:.4g}" if isinstance(v, (int, float)) else f"{k}: {v}"
                            for k, v in e.metrics.items()) or "not evaluated"
        status = ("loaded" if e.ready else e.error or ("text model" if e.modality == "text" else
                  "not loaded" if registry.loaded else "loading…"))
        rows.append(f"| {e.name} | {e.kind} | {e.dataset or '?'} | {metrics} | {status.replace('|', '/')[:120]} |")
    return "\n".join(rows)


def _model_card(registry: ModelRegistry, name: str | None) -> str:
    """A model's card (its README.md, read when the model was found); the picker's choice."""
    e = registry.entries.get(name) if isinstance(name, str) else None
    if e is None:
        return "_pick a model to read its card_"
    return e.card or "_no model card_"


def _card_choices(registry: ModelRegistry, current: str | None):
    names = list(registry.entries)
    return gr.update(choices=names, value=current if current in names else (names[0] if names else None))


def build_demo(registry: ModelRegistry, *, tmp_dir=None, queue_size: int = 64, fast_edit: bool = True,
               extra_tabs: dict[str, Callable[[ModelRegistry], None]] | None = None) -> gr.Blocks:
    """The whole app. `extra_tabs` maps a tab title to a function that lays out that tab (called
    inside it); titles without one show a placeholder ('Text', 'Fine-tune'). What a tab builder
    returns may carry `models_changed` (a component whose .change means: the registry has new
    models, e.g. a fine-tune finished) and `model_pickers` (a list of (fn, inputs, outputs) to run
    then, e.g. the Text tab's own picker); every `models_changed` refreshes the Image tab's model
    picker and every `model_pickers` entry.

    `fast_edit`: slider moves skip the queue (one HTTP request instead of join + event stream:
    ~40 ms less in the browser). Each tab has at most one in flight (trigger_mode always_last)
    and each costs ~5 ms, so they need no queue; everything heavier goes through the bounded queue
    (`queue_size` waiting at most)."""
    studio = Studio(registry, tmp_dir)
    models = registry.image_models()
    first = models[0] if models else None
    if first:
        label0, temp0, info0 = studio.model_controls(first)
    else:
        label0 = {"choices": [("any class (cycles)", ANY)], "visible": False}
        temp0, info0 = {"label": "Temperature"}, ""

    with gr.Blocks(title="aigc studio", delete_cache=(600, 3600), analytics_enabled=False) as demo:
        state = gr.State(new_state())
        models_seen = gr.State(getattr(registry, "version", 0))   # registry version the picker shows
        offsets = gr.JSON({}, visible=False, label="offsets")
        gr.Markdown("# aigc latent studio\nSample, edit along latent directions, interpolate, and "
                    "encode your own pictures. Everything you see carries a recipe that makes it again.")
        with gr.Tabs():
            # ---------------------------------------------------------------- Image
            with gr.Tab("Image", id="image"):
                if not models:
                    gr.Markdown(f"**No image models found under `{registry.weights_dir}`.** "
                                "Train one (`python -m aigc train ...`) or copy a saved model folder there.")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=260):
                        model = gr.Dropdown(models, value=first, label="Model", allow_custom_value=True,
                                            elem_id="model")
                        label = gr.Dropdown(label0["choices"], value=ANY, label="Class", allow_custom_value=True,
                                            visible=label0["visible"], elem_id="label")
                        with gr.Row():
                            seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=SEED_MAX,
                                             elem_id="seed", scale=3)
                            dice = gr.Button("Roll dice", elem_id="dice", scale=1, min_width=60)
                        grid = gr.Slider(1, GRID_MAX, value=4, step=1, label="Grid size (side)", elem_id="grid")
                        temperature = gr.Slider(0.0, IMAGE_TEMP_MAX, value=1.0, step=0.05, label=temp0["label"],
                                                elem_id="temperature")
                        sample_btn = gr.Button("Sample", variant="primary", elem_id="sample")
                        model_info = gr.Markdown(info0, label="model_info", elem_classes="aigc-small")
                    with gr.Column(scale=2, min_width=320):
                        gallery = gr.Gallery(label="Samples (click one to edit it)", columns=6, format="png",
                                             allow_preview=False, elem_id="gallery", height=360,
                                             interactive=False)
                        sample_info = gr.Markdown(label="info", elem_id="sample-info")

                gr.Markdown("## Latent editor")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=300):
                        editor = gr.Image(label="Edited image", format="png", interactive=False, height=300,
                                          elem_id="editor", buttons=["download"])
                        editor_info = gr.Markdown("Open a sample to edit it.", label="info", elem_id="editor-info")
                        with gr.Row():
                            pick = gr.Number(0, label="Sample #", precision=0, minimum=0,
                                             maximum=GRID_MAX ** 2 - 1, elem_id="pick", scale=1)
                            open_btn = gr.Button("Open", scale=1, min_width=60)
                            reset_btn = gr.Button("Reset sliders", elem_id="reset", scale=2)
                        with gr.Row():
                            a_btn = gr.Button("Use as A", elem_id="use-a")
                            b_btn = gr.Button("Use as B", elem_id="use-b")
                            near_btn = gr.Button("Nearest training image", elem_id="nearest")
                        recipe_btn = gr.Button("Download recipe (JSON + PNG)", elem_id="recipe")
                        recipe_out = gr.File(label="Recipe", file_count="multiple", interactive=False,
                                             elem_id="recipe-files", height=90)
                    with gr.Column(scale=2, min_width=320):
                        dir_sliders, dim_sliders = {}, {}
                        gr.Markdown("**Principal directions** (largest first; the slider unit is one standard "
                                    "deviation of the latents along it)", elem_classes="aigc-small")
                        with gr.Row():
                            for col in range(2):                    # filled row by row: 1 2 / 3 4 / ...
                                with gr.Column(min_width=200):
                                    for i in range(col, N_DIR, 2):
                                        dir_sliders[i] = gr.Slider(-DIR_RANGE, DIR_RANGE, value=0.0, step=0.05,
                                                                   label=f"direction {i + 1}", visible=False,
                                                                   interactive=True, elem_id=f"dir{i + 1}")
                        with gr.Row():
                            rename_pick = gr.Dropdown([], label="Direction", allow_custom_value=True, scale=2)
                            rename_name = gr.Textbox(label="Name it", max_length=40, scale=2)
                            rename_btn = gr.Button("Rename", scale=1, min_width=60)
                        with gr.Row():
                            new_name = gr.Textbox(label="Save the current edit as a direction named", max_length=40,
                                                  scale=4)
                            save_btn = gr.Button("Save direction", scale=1, min_width=60)
                        dir_info = gr.Markdown(label="info", elem_classes="aigc-small", elem_id="dir-info")
                        with gr.Accordion("Latent dimensions (VAEs; most used first, by KL)", open=True,
                                          visible=False) as dims_group:
                            with gr.Row():
                                for col in range(4):
                                    with gr.Column(min_width=150):
                                        for i in range(col, N_DIM, 4):
                                            dim_sliders[i] = gr.Slider(-DIM_RANGE, DIM_RANGE, value=0.0, step=0.05,
                                                                       label=f"dimension {i + 1}", visible=False,
                                                                       interactive=True, buttons=[],
                                                                       elem_id=f"dim{i + 1}",
                                                                       elem_classes="aigc-dim")
                with gr.Accordion("Memorisation check", open=False):
                    with gr.Row():
                        near_img = gr.Image(label="Editor image | nearest training image", format="png",
                                            interactive=False, height=300, elem_id="nearest-img")
                        near_md = gr.Markdown(label="info", elem_id="nearest-info")

                with gr.Accordion("Interpolate", open=False):
                    with gr.Row():
                        source = gr.Radio(list(SOURCES), value=SOURCES[0], label="Between")
                        seed_a = gr.Number(1, label="Seed A", precision=0, minimum=0, maximum=SEED_MAX)
                        seed_b = gr.Number(2, label="Seed B", precision=0, minimum=0, maximum=SEED_MAX)
                        frames = gr.Slider(2, FRAMES_MAX, value=10, step=1, label="Frames")
                        method = gr.Radio(["slerp", "lerp"], value="slerp", label="Path")
                    with gr.Row():
                        a_img = gr.Image(label="A", format="png", interactive=False, height=130)
                        b_img = gr.Image(label="B", format="png", interactive=False, height=130)
                        interp_btn = gr.Button("Interpolate", variant="primary", elem_id="interpolate")
                    strip = gr.Gallery(label="Frames (click one to edit it)", columns=10, format="png", height=160,
                                       allow_preview=False, elem_id="strip", interactive=False)
                    with gr.Row():
                        anim = gr.Image(label="Animation", interactive=False, height=300, elem_id="anim")
                        gif_file = gr.File(label="GIF", interactive=False)
                    interp_info = gr.Markdown(label="info", elem_id="interp-info")

                with gr.Accordion("Encode your own picture", open=False):
                    gr.Markdown("Encodes with the model chosen above (VAE: encoder; GAN: projection by "
                                "optimisation, a few seconds). The result opens in the editor.",
                                elem_classes="aigc-small")
                    with gr.Row(equal_height=False):
                        with gr.Column():
                            upload = gr.File(label="Upload a picture", type="filepath", elem_id="upload")
                            encode_btn = gr.Button("Encode upload", elem_id="encode")
                        with gr.Column():
                            sketch = gr.Sketchpad(label="Or draw (pick the brush first)", type="numpy",
                                                  image_mode="RGBA", layers=False,
                                                  canvas_size=(280, 280), elem_id="sketch",
                                                  brush=gr.Brush(colors=["#000000"], default_size=14,
                                                                 color_mode="fixed"))
                            draw_btn = gr.Button("Encode drawing", elem_id="encode-drawing")
                        with gr.Column():
                            with gr.Row():
                                prepared = gr.Image(label="Prepared input", format="png", interactive=False,
                                                    height=160, elem_id="prepared")
                                recon = gr.Image(label="Reconstruction", format="png", interactive=False,
                                                 height=160, elem_id="recon")
                            enc_info = gr.Markdown(label="info", elem_id="encode-info")

                with gr.Accordion("Restore a recipe", open=False):
                    with gr.Row():
                        recipe_in = gr.File(label="Drop a recipe .json or a studio .png", type="filepath",
                                            elem_id="recipe-in")
                        restore_btn = gr.Button("Restore", scale=0, min_width=100)

            # ---------------------------------------------------------------- Models
            with gr.Tab("Models", id="models"):
                models_md = gr.Markdown(_models_table(registry))
                names = list(registry.entries)
                card_pick = gr.Dropdown(names, value=names[0] if names else None, label="model card",
                                        elem_id="card-pick")
                card_md = gr.Markdown(_model_card(registry, names[0] if names else None), elem_id="model-card")

            built = []
            for title, builder in {**{t: None for t in PLACEHOLDER_TABS}, **(extra_tabs or {})}.items():
                with gr.Tab(title, id=title.lower().replace(" ", "-")):
                    if builder is None:
                        gr.Markdown(PLACEHOLDER_TABS.get(title, ""))
                    else:
                        built.append(builder(registry))

        # ==================================================================== events
        dir_sliders = [dir_sliders[i] for i in range(N_DIR)]
        dim_sliders = [dim_sliders[i] for i in range(N_DIM)]
        sliders = dir_sliders + dim_sliders
        editor_out = [editor, editor_info, *sliders, dims_group, rename_pick, state]

        demo.load(lambda: _models_table(registry), None, models_md, api_visibility="private", queue=False,
                  show_progress="hidden")
        # new user models (a finished fine-tune, a folder copied in) reach the picker without a restart
        changed = [b.models_changed.change for b in built if getattr(b, "models_changed", None) is not None]
        gr.on([demo.load, model.focus, *changed], studio.model_choices, [model, models_seen], [model, models_seen],
              api_visibility="private", queue=False, show_progress="hidden")
        # every model's card, new ones included (the picker's choices follow the registry)
        gr.on([demo.load, card_pick.focus, *changed], lambda cur: _card_choices(registry, cur), [card_pick],
              [card_pick], api_visibility="private", queue=False, show_progress="hidden")
        card_pick.change(lambda name: _model_card(registry, name), [card_pick], [card_md],
                         api_visibility="private", queue=False, show_progress="hidden")
        if changed:
            gr.on(changed, lambda: _models_table(registry), None, models_md, api_visibility="private",
                  queue=False, show_progress="hidden")
            for b in built:
                for fn, inputs, outputs in getattr(b, "model_pickers", None) or []:
                    gr.on(changed, fn, inputs, outputs, api_visibility="private", queue=False,
                          show_progress="hidden")
        model.input(studio.model_controls, [model], [label, temperature, model_info], api_name="model_info")
        sample_btn.click(studio.sample, [model, label, seed, grid, temperature, state],
                         [gallery, sample_info, state], api_name="sample", concurrency_id="render",
                         concurrency_limit=2)
        dice.click(studio.dice, [model, label, grid, temperature, state], [seed, gallery, sample_info, state],
                   api_name="dice", concurrency_id="render", concurrency_limit=2)

        def on_select(state, evt: gr.SelectData):
            return (evt.index, *studio.open_sample(state, evt.index))

        gallery.select(on_select, [state], [pick, *editor_out], api_visibility="private",
                       show_progress="hidden")
        open_btn.click(studio.open_sample, [state, pick], editor_out, api_name="open")

        # .input follows the hand while dragging; .release also catches the slider's own reset button
        gr.on([s.input for s in sliders] + [s.release for s in sliders], studio.edit, inputs=[state, offsets], js=JS_COLLECT,
              outputs=[editor, state], api_name="edit", trigger_mode="always_last", show_progress="hidden",
              concurrency_id="render", concurrency_limit=2, queue=not fast_edit)
        reset_btn.click(studio.reset, [state], [editor, *sliders, state], api_name="reset", show_progress="hidden")
        near_btn.click(studio.nearest, [state], [near_img, near_md], api_name="nearest")
        a_btn.click(studio.set_a, [state], [a_img, state], api_name="use_as_a")
        b_btn.click(studio.set_b, [state], [b_img, state], api_name="use_as_b")
        interp_btn.click(studio.interpolate, [source, model, label, seed_a, seed_b, frames, method, temperature, state],
                         [strip, anim, gif_file, interp_info, state], api_name="interpolate")

        def on_frame(state, evt: gr.SelectData):
            return studio.open_frame(state, evt.index)

        strip.select(on_frame, [state], editor_out, api_visibility="private", show_progress="hidden")

        encode_out = [prepared, recon, enc_info, *editor_out]
        gr.on([upload.upload, encode_btn.click], studio.encode, [upload, model, label, state], encode_out,
              api_name="encode", concurrency_id="project", concurrency_limit=1)
        draw_btn.click(studio.encode_drawing, [sketch, model, label, state], encode_out,
                       api_name="encode_drawing", concurrency_id="project", concurrency_limit=1)
        recipe_btn.click(studio.recipe_files, [state], [recipe_out], api_name="recipe")
        gr.on([recipe_in.upload, restore_btn.click], studio.restore, [recipe_in, state], editor_out,
              api_name="restore")
        save_btn.click(studio.save_direction, [state, new_name, offsets], [*sliders, rename_pick, dir_info, state],
                       js=JS_COLLECT, api_name="save_direction")
        rename_btn.click(studio.rename_direction, [state, rename_pick, rename_name, offsets],
                         [*sliders, rename_pick, dir_info, state], js=JS_COLLECT, api_name="rename_direction")

    demo.queue(max_size=queue_size, default_concurrency_limit=2)
    demo.studio = studio          # for tests and tools; not used by the handlers
    return demo
