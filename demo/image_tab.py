"""The Image tab: layout and event wiring (the handlers are demo.image_handlers.Studio).

Named endpoints (gradio_client: `client.predict(..., api_name="/sample")`):
  /model_info /sample /dice /open /edit /reset /nearest /use_as_a /use_as_b /interpolate
  /encode /encode_drawing /recipe /restore /save_direction /rename_direction /clusters
Per-session values live in one gr.State; the models are shared read-only through the registry.
"""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from aigc.limits import FRAMES_MAX, GRID_MAX, IMAGE_TEMP_MAX, SEED_MAX
from demo.image_clusters import is_clustered
from demo.image_handlers import (ANY, DIM_RANGE, DIR_RANGE, N_DIM, N_DIR, SOURCES, TRUNCATION_HELP, Studio,
                                 new_state)
from demo.models import NOBODY
from demo.models_tab import QUIET

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
PRIVATE = {"api_visibility": "private", "show_progress": "hidden"}
DEFAULT_MODEL = "dcgan-mnist"           # the README's examples use it: the first screen shows it
# only when the editor is not wholly on screen (a click beside it must not move the page); at the top,
# so that its controls below it are on screen too
SCROLL_TO_EDITOR = """() => { const e = document.getElementById('editor'); if (!e) return;
  const r = e.getBoundingClientRect();
  if (r.top < 0 || r.bottom > window.innerHeight) e.scrollIntoView({block: 'start'}); }"""


def _sampler(ui, studio: Studio, models: list[str]) -> None:
    first = DEFAULT_MODEL if DEFAULT_MODEL in models else (models[0] if models else None)
    if first:
        label0, temp0, info0 = studio.model_controls(first)
    else:
        label0 = {"choices": [("any class (cycles)", ANY)], "visible": False}
        temp0, info0 = {"label": "Temperature"}, ""
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=260):
            ui.model = gr.Dropdown(models, value=first, label="Model", allow_custom_value=True, elem_id="model")
            ui.label = gr.Dropdown(label0["choices"], value=ANY, label=label0.get("label", "Class"),
                                   allow_custom_value=True, visible=label0["visible"], elem_id="label")
            with gr.Row():
                # no component bounds: the library's check names the field ("seed must be between ...")
                ui.seed = gr.Number(0, label="Seed", precision=0, elem_id="seed", scale=3,
                                    info=f"0 to {SEED_MAX:,}; the same seed gives the same pictures")
                ui.dice = gr.Button("Roll dice", elem_id="dice", scale=1, min_width=60)
            ui.grid = gr.Slider(1, GRID_MAX, value=4, step=1, label="Grid size (side)", elem_id="grid")
            ui.temperature = gr.Slider(0.0, IMAGE_TEMP_MAX, value=1.0, step=0.05, label=temp0["label"],
                                       elem_id="temperature", info=temp0.get("info", TRUNCATION_HELP))
            ui.sample = gr.Button("Sample", variant="primary", elem_id="sample")
            ui.model_info = gr.Markdown(info0, label="model_info", elem_classes="aigc-small")
            _examples(ui, studio, models)
        with gr.Column(scale=2, min_width=320):
            ui.gallery = gr.Image(label="Samples (click one to edit it)", format="png", interactive=False,
                                  elem_id="gallery", buttons=["download"], show_label=False)
            ui.sample_info = gr.Markdown(label="info", elem_id="sample-info")
            _clusters(ui, studio, first)


def _clusters(ui, studio: Studio, first) -> None:
    try:
        shown = bool(first) and is_clustered(studio.reg.entry(first, NOBODY).kind)
    except ValueError:
        shown = False
    with gr.Accordion("Clusters: one row of samples per cluster, with its share of the data", open=False,
                      visible=shown, elem_id="clusters-box") as box:
        ui.show_clusters = gr.Button("Show clusters", elem_id="show-clusters")
        ui.clusters_info = gr.Markdown(label="info", elem_id="clusters-info", elem_classes="aigc-small")
        ui.clusters_html = gr.HTML(elem_id="clusters")
    ui.clusters_box = box


def example_rows(studio: Studio, models: list[str], most: int = 4) -> list[list]:
    """Recipes of grids to sample in one click: the default model first, a class of each
    class-conditional model, a lower truncation."""
    rows = []
    for name in sorted(models, key=lambda m: m != DEFAULT_MODEL)[:most]:
        try:
            e = studio.reg.entry(name, NOBODY)
        except ValueError:
            continue
        cls = e.class_names[min(7, len(e.class_names) - 1)] if e.conditional else ANY
        rows.append([name, cls, 7, 4, 0.8])
    if rows:
        rows.append([rows[0][0], ANY, 42, 6, 0.6])
    return rows


def _examples(ui, studio: Studio, models: list[str]) -> None:
    rows = example_rows(studio, models)
    ui.examples = None
    if rows:
        ui.examples = gr.Examples(rows, [ui.model, ui.label, ui.seed, ui.grid, ui.temperature],
                                  label="Recipes (one click samples them)", api_visibility="private",
                                  elem_id="image-examples", examples_per_page=8, preload=False)


def _editor_left(ui) -> None:
    ui.editor = gr.Image(label="Edited image", format="png", interactive=False, height=300,
                         elem_id="editor", buttons=["download"])
    ui.editor_info = gr.Markdown("Open a sample to edit it.", label="info", elem_id="editor-info")
    with gr.Row():
        ui.pick = gr.Number(0, label="Sample #", precision=0, elem_id="pick", scale=1)
        ui.open = gr.Button("Open", scale=1, min_width=60)
        ui.reset = gr.Button("Reset sliders", elem_id="reset", scale=2)
    with gr.Row():
        ui.use_a = gr.Button("Use as A", elem_id="use-a")
        ui.use_b = gr.Button("Use as B", elem_id="use-b")
        ui.near = gr.Button("Nearest training image", elem_id="nearest")
    ui.near_img = gr.Image(label="Editor image | nearest training image", format="png", interactive=False,
                           height=150, elem_id="nearest-img", visible=False)
    ui.near_md = gr.Markdown(label="info", elem_id="nearest-info", elem_classes="aigc-small")
    ui.recipe = gr.Button("Download recipe (JSON + PNG)", elem_id="recipe")
    ui.recipe_out = gr.File(label="Recipe", file_count="multiple", interactive=False,
                            elem_id="recipe-files", height=90)


def _editor_sliders(ui) -> None:
    dirs, dims = {}, {}
    gr.Markdown("**Principal directions** (largest first; the slider unit is one standard "
                "deviation of the latents along it)", elem_classes="aigc-small")
    with gr.Row():
        for col in range(2):                    # filled row by row: 1 2 / 3 4 / ...
            with gr.Column(min_width=200):
                for i in range(col, N_DIR, 2):
                    dirs[i] = gr.Slider(-DIR_RANGE, DIR_RANGE, value=0.0, step=0.05, label=f"direction {i + 1}",
                                        visible=False, interactive=True, elem_id=f"dir{i + 1}")
    with gr.Row():
        ui.rename_pick = gr.Dropdown([], label="Direction", allow_custom_value=True, scale=2)
        ui.rename_name = gr.Textbox(label="Name it", max_length=40, scale=2)
        ui.rename = gr.Button("Rename", scale=1, min_width=60)
    with gr.Row():
        ui.new_name = gr.Textbox(label="Save the current edit as a direction named", max_length=40, scale=4)
        ui.save = gr.Button("Save direction", scale=1, min_width=60)
    ui.dir_info = gr.Markdown(label="info", elem_classes="aigc-small", elem_id="dir-info")
    with gr.Accordion("Latent dimensions (VAEs; most used first, by KL)", open=True, visible=False) as group:
        with gr.Row():
            for col in range(4):
                with gr.Column(min_width=150):
                    for i in range(col, N_DIM, 4):
                        dims[i] = gr.Slider(-DIM_RANGE, DIM_RANGE, value=0.0, step=0.05, label=f"dimension {i + 1}",
                                            visible=False, interactive=True, buttons=[], elem_id=f"dim{i + 1}",
                                            elem_classes="aigc-dim")
    ui.dims_group = group
    ui.sliders = [dirs[i] for i in range(N_DIR)] + [dims[i] for i in range(N_DIM)]


def _interpolate(ui) -> None:
    with gr.Accordion("Interpolate", open=False):
        with gr.Row():
            ui.source = gr.Radio(list(SOURCES), value=SOURCES[0], label="Between")
            ui.seed_a = gr.Number(1, label="Seed A", precision=0)
            ui.seed_b = gr.Number(2, label="Seed B", precision=0)
            ui.frames = gr.Slider(2, FRAMES_MAX, value=10, step=1, label="Frames")
            ui.method = gr.Radio(["slerp", "lerp"], value="slerp", label="Path")
        with gr.Row():
            ui.a_img = gr.Image(label="A", format="png", interactive=False, height=130)
            ui.b_img = gr.Image(label="B", format="png", interactive=False, height=130)
            ui.interp = gr.Button("Interpolate", variant="primary", elem_id="interpolate")
        ui.strip = gr.Gallery(label="Frames (click one to edit it)", columns=10, format="png", height=160,
                              allow_preview=False, elem_id="strip", interactive=False)
        with gr.Row():
            ui.anim = gr.Image(label="Animation", interactive=False, height=300, elem_id="anim")
            ui.gif = gr.File(label="GIF", interactive=False)
        ui.interp_info = gr.Markdown(label="info", elem_id="interp-info")


def _encode(ui) -> None:
    with gr.Accordion("Encode your own picture", open=False):
        gr.Markdown("Encodes with the model chosen above (VAE: encoder; GAN: projection by "
                    "optimisation, a few seconds). The result opens in the editor.", elem_classes="aigc-small")
        with gr.Row(equal_height=False):
            with gr.Column():
                ui.upload = gr.File(label="Upload a picture", type="filepath", elem_id="upload")
                ui.encode = gr.Button("Encode upload", elem_id="encode")
            with gr.Column():
                ui.sketch = gr.Sketchpad(label="Or draw (pick the brush first)", type="numpy", image_mode="RGBA",
                                         layers=False, canvas_size=(280, 280), elem_id="sketch",
                                         brush=gr.Brush(colors=["#000000"], default_size=14, color_mode="fixed"))
                ui.draw = gr.Button("Encode drawing", elem_id="encode-drawing")
            with gr.Column():
                with gr.Row():
                    ui.prepared = gr.Image(label="Prepared input", format="png", interactive=False, height=160,
                                           elem_id="prepared")
                    ui.recon = gr.Image(label="Reconstruction", format="png", interactive=False, height=160,
                                        elem_id="recon")
                ui.enc_info = gr.Markdown(label="info", elem_id="encode-info")
                ui.posterior = gr.HTML(visible=False, elem_id="posterior")


def layout_image_tab(registry, studio: Studio) -> SimpleNamespace:
    """The Image tab's components (inside the caller's gr.Tab), in a namespace."""
    ui = SimpleNamespace()
    models = registry.image_models(NOBODY)
    ui.state = gr.State(new_state())
    ui.models_seen = gr.State(-1)             # registry version the picker shows (-1: none yet)
    ui.offsets = gr.JSON({}, visible=False, label="offsets")
    if not registry.image_models():
        gr.Markdown(f"**No image models found under `{registry.weights_dir}`.** "
                    "Train one (`python -m aigc train ...`) or copy a saved model folder there.")
    _sampler(ui, studio, models)
    gr.Markdown("## Latent editor")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            _editor_left(ui)
        with gr.Column(scale=2, min_width=320):
            _editor_sliders(ui)
    _interpolate(ui)
    _encode(ui)
    with gr.Accordion("Restore a recipe", open=False):
        with gr.Row():
            ui.recipe_in = gr.File(label="Drop a recipe .json or a studio .png", type="filepath",
                                   elem_id="recipe-in")
            ui.restore = gr.Button("Restore", scale=0, min_width=100)
    return ui


def wire_image_picker(ui, studio: Studio, refresh_on=()) -> None:
    """New user models (a finished fine-tune, a folder copied in, a model shared) reach the picker
    on its focus and on `refresh_on` (page load, a tab's `models_changed`)."""
    gr.on([ui.model.focus, *refresh_on], studio.model_choices, [ui.model, ui.models_seen, ui.state],
          [ui.model, ui.models_seen], **QUIET)


def sample_grid(ui, studio: Studio, trigger) -> None:
    """After `trigger` (a dependency): sample a grid with the controls' values."""
    trigger.success(studio.sample, [ui.model, ui.label, ui.seed, ui.grid, ui.temperature, ui.state],
                    [ui.gallery, ui.sample_info, ui.state], api_name="regrid", **PRIVATE)


def _wire_sampling(ui, studio: Studio) -> None:
    ui.sample.click(studio.sample, [ui.model, ui.label, ui.seed, ui.grid, ui.temperature, ui.state],
                    [ui.gallery, ui.sample_info, ui.state], api_name="sample", concurrency_id="render",
                    concurrency_limit=2)
    ui.dice.click(studio.dice, [ui.model, ui.label, ui.grid, ui.temperature, ui.state],
                  [ui.seed, ui.gallery, ui.sample_info, ui.state], api_name="dice", concurrency_id="render",
                  concurrency_limit=2)
    info = ui.model.input(studio.model_controls, [ui.model, ui.state], [ui.label, ui.temperature, ui.model_info],
                          api_name="model_info")
    sample_grid(ui, studio, info)          # the grid on screen is always the picked model's
    ui.model.change(studio.cluster_box, [ui.model, ui.state], [ui.clusters_box, ui.clusters_html, ui.clusters_info],
                    **QUIET)
    ui.show_clusters.click(studio.clusters, [ui.model, ui.seed, ui.temperature, ui.state],
                           [ui.clusters_html, ui.clusters_info], api_name="clusters", concurrency_id="render",
                           concurrency_limit=2)
    if ui.examples is not None:
        sample_grid(ui, studio, ui.examples.load_input_event)


def _clear_nearest():
    return gr.update(value=None, visible=False), ""


def wire_image_tab(ui, studio: Studio, fast_edit: bool = True) -> None:
    """The Image tab's named endpoints and events (the picker's refresh: wire_image_picker).
    `fast_edit`: see demo.app.build_demo."""
    editor_out = [ui.editor, ui.editor_info, *ui.sliders, ui.dims_group, ui.rename_pick, ui.state]
    _wire_sampling(ui, studio)

    def on_select(state, evt: gr.SelectData, request: gr.Request):
        x, y = evt.index                       # the clicked pixel of the grid picture
        return studio.open_tile(state, x, y, request)

    near_out = [ui.near_img, ui.near_md]
    opened = [ui.gallery.select(on_select, [ui.state], [ui.pick, *editor_out], api_visibility="private",
                                show_progress="hidden"),
              ui.open.click(studio.open_sample, [ui.state, ui.pick], editor_out, api_name="open")]
    # .input follows the hand while dragging; .release also catches the slider's own reset button
    gr.on([s.input for s in ui.sliders] + [s.release for s in ui.sliders], studio.edit,
          inputs=[ui.state, ui.offsets], js=JS_COLLECT, outputs=[ui.editor, ui.state], api_name="edit",
          trigger_mode="always_last", show_progress="hidden", concurrency_id="render", concurrency_limit=2,
          queue=not fast_edit)
    ui.reset.click(studio.reset, [ui.state], [ui.editor, *ui.sliders, ui.state], api_name="reset",
                   show_progress="hidden")
    ui.near.click(studio.nearest, [ui.state], near_out, api_name="nearest").success(
        lambda: gr.update(visible=True), None, [ui.near_img], **QUIET)
    ui.use_a.click(studio.set_a, [ui.state], [ui.a_img, ui.state], api_name="use_as_a")
    ui.use_b.click(studio.set_b, [ui.state], [ui.b_img, ui.state], api_name="use_as_b")
    ui.interp.click(studio.interpolate, [ui.source, ui.model, ui.label, ui.seed_a, ui.seed_b, ui.frames,
                                         ui.method, ui.temperature, ui.state],
                    [ui.strip, ui.anim, ui.gif, ui.interp_info, ui.state], api_name="interpolate")

    def on_frame(state, evt: gr.SelectData, request: gr.Request):
        return studio.open_frame(state, evt.index, request)

    opened.append(ui.strip.select(on_frame, [ui.state], editor_out, api_visibility="private",
                                  show_progress="hidden"))
    for ev in (opened[0], opened[-1]):       # a tile or a frame opens in the editor, out of sight below or above
        ev.success(None, None, None, js=SCROLL_TO_EDITOR, **QUIET)
    encode_out = [ui.prepared, ui.recon, ui.enc_info, *editor_out]
    encoded = [gr.on([ui.upload.upload, ui.encode.click], studio.encode, [ui.upload, ui.model, ui.label, ui.state],
                     encode_out, api_name="encode", concurrency_id="project", concurrency_limit=1),
               ui.draw.click(studio.encode_drawing, [ui.sketch, ui.model, ui.label, ui.state], encode_out,
                             api_name="encode_drawing", concurrency_id="project", concurrency_limit=1)]
    for ev in encoded:             # the result opens in the editor, far above: bring it into view
        ev.success(None, None, None, js=SCROLL_TO_EDITOR, **QUIET)
        ev.success(studio.posterior_view, [ui.state], [ui.posterior], **QUIET)
    ui.recipe.click(studio.recipe_files, [ui.state], [ui.recipe_out], api_name="recipe")
    restored = gr.on([ui.recipe_in.upload, ui.restore.click], studio.restore, [ui.recipe_in, ui.state], editor_out,
                     api_name="restore")
    restored.success(studio.picker_for, [ui.state], [ui.model, ui.label, ui.temperature, ui.model_info], **QUIET)
    for ev in [*opened, *encoded, restored]:       # a nearest image belongs to the image it was asked for
        ev.success(_clear_nearest, None, near_out, **QUIET)
    dir_out = [*ui.sliders, ui.rename_pick, ui.dir_info, ui.state]
    ui.save.click(studio.save_direction, [ui.state, ui.new_name, ui.offsets], dir_out, js=JS_COLLECT,
                  api_name="save_direction")
    ui.rename.click(studio.rename_direction, [ui.state, ui.rename_pick, ui.rename_name, ui.offsets], dir_out,
                    js=JS_COLLECT, api_name="rename_direction")
