"""The studio: `build_demo(registry)` assembles the tabs into one gr.Blocks; nothing here
computes anything. Each tab lays itself out and wires its own events (demo.image_tab,
demo.models_tab, demo.text_tab, demo.finetune_tab); here only what joins them: a published or
shared model refreshes every picker, and the browser's owner token reaches every tab.
"""
from __future__ import annotations

from typing import Callable

import gradio as gr

from demo.image_handlers import Studio, new_state
from demo.image_tab import QUIET, layout_image_tab, sample_grid, wire_image_picker, wire_image_tab
from demo.models import ModelRegistry
from demo.models_tab import build_models_tab, wire_models_tab

CSS = """
#editor img { image-rendering: pixelated; }
#gallery img, #strip img { image-rendering: pixelated; }
.aigc-small { font-size: 0.9em; opacity: 0.85; }
.aigc-dim input[type=number] { width: 4.2em; }
.gradio-container, .gradio-container textarea, .gradio-container input, .gradio-container .prose,
.gradio-container table, .gradio-container button {
  font-family: var(--font), "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei",
               sans-serif !important; }
#gallery img { cursor: pointer; max-width: 100%; height: auto; }
"""
PLACEHOLDER_TABS = {
    "Text": "Text generation comes with its own issue.",
    "Fine-tune": "Fine-tuning on your own pictures comes with its own issue.",
}


def _extra_tabs(registry: ModelRegistry, extra_tabs: dict | None) -> list:
    built = []
    for title, builder in {**{t: None for t in PLACEHOLDER_TABS}, **(extra_tabs or {})}.items():
        with gr.Tab(title, id=title.lower().replace(" ", "-")):
            if builder is None:
                gr.Markdown(PLACEHOLDER_TABS.get(title, ""))
            else:
                built.append(builder(registry))
    return built


def _share_owner_token(demo: gr.Blocks, built: list, image, owner_states: list):
    """A tab may offer the browser's owner token (`owner_token`, a gr.BrowserState); every tab's
    handlers then answer for that owner (the Image tab keeps it in its session state).
    -> the event after which the Image tab's state holds the token (None: no token)."""
    token = next((b.owner_token for b in built if getattr(b, "owner_token", None) is not None), None)
    if token is None:
        return None

    def into_image_state(tok, state):
        return {**(state or new_state()), "owner_token": tok}, -1     # -1: the picker reads again

    demo.load(into_image_state, [token, image.state], [image.state, image.models_seen], **QUIET)
    with_token = token.change(into_image_state, [token, image.state], [image.state, image.models_seen], **QUIET)
    for st in owner_states:
        gr.on([demo.load, token.change], lambda tok: tok, [token], [st], **QUIET)
    return with_token


def build_demo(registry: ModelRegistry, *, tmp_dir=None, queue_size: int = 64, fast_edit: bool = True,
               extra_tabs: dict[str, Callable[[ModelRegistry], None]] | None = None) -> gr.Blocks:
    """The whole app. `extra_tabs` maps a tab title to a function that lays out that tab (called
    inside it); titles without one show a placeholder ('Text', 'Fine-tune'). What a tab builder
    returns may carry `models_changed` (a component whose .change means: the registry has new
    models, e.g. a fine-tune finished), `model_pickers` (a list of (fn, inputs, outputs) to run
    then and at page load, e.g. the Text tab's own picker), `owner_token` (the browser's owner
    token) and `owner_state` (a gr.State that receives it).

    `fast_edit`: slider moves skip the queue (one HTTP request instead of join + event stream:
    ~40 ms less in the browser). Each tab has at most one in flight (trigger_mode always_last)
    and each costs ~5 ms, so they need no queue; everything heavier goes through the bounded queue
    (`queue_size` waiting at most)."""
    studio = Studio(registry, tmp_dir)
    with gr.Blocks(title="aigc studio", delete_cache=(600, 3600), analytics_enabled=False) as demo:
        gr.Markdown("# aigc latent studio\nSample, edit along latent directions, interpolate, and "
                    "encode your own pictures. Everything you see carries a recipe that makes it again.")
        with gr.Tabs():
            with gr.Tab("Image", id="image"):
                image = layout_image_tab(registry, studio)
                wire_image_tab(image, studio, fast_edit)      # first: its endpoints keep their names
            with gr.Tab("Models", id="models"):
                models = build_models_tab(registry)
            built = _extra_tabs(registry, extra_tabs)
        changed = [b.models_changed.change for b in built if getattr(b, "models_changed", None) is not None]
        refresh_on = [demo.load, *changed]
        wire_image_picker(image, studio, refresh_on)
        wire_models_tab(models, refresh_on)
        for b in built:
            for fn, inputs, outputs in getattr(b, "model_pickers", None) or []:
                gr.on(refresh_on, fn, inputs, outputs, **QUIET)
        owner_states = [models.owner_state] + [b.owner_state for b in built
                                               if getattr(b, "owner_state", None) is not None]
        with_token = _share_owner_token(demo, built, image, owner_states)
        # the first screen: a grid of the default model, once the state knows whose page it is
        if with_token is None:
            with_token = demo.load(lambda: None, None, None, **QUIET)
        sample_grid(image, studio, with_token)
    demo.queue(max_size=queue_size, default_concurrency_limit=2)
    demo.studio = studio          # for tests and tools; not used by the handlers
    return demo
