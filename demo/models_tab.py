"""The Models tab: every model the asker may see, with its figures and its card. Layout and
wiring only; the registry (demo.models) knows the models."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from demo.common import owner_id
from demo.models import NOBODY, ModelRegistry

QUIET = {"api_visibility": "private", "queue": False, "show_progress": "hidden"}


def models_table(registry: ModelRegistry, owner: str | None = NOBODY) -> str:
    rows = ["| model | kind | dataset | metrics | status |", "|---|---|---|---|---|"]
    for e in registry.visible(owner).values():
        metrics = ", ".join(f"{k}: {v:.4g}" if isinstance(v, (int, float)) else f"{k}: {v}"
                            for k, v in e.metrics.items()) or "not evaluated"
        status = ("loaded" if e.ready else e.error or ("text model" if e.modality == "text" else
                  "not loaded" if registry.loaded else "loading…"))
        if e.owner is not None:
            status += " · yours" if e.owner == owner else " · shared"
        rows.append(f"| {e.name} | {e.kind} | {e.dataset or '?'} | {metrics} | {status.replace('|', '/')[:120]} |")
    return "\n".join(rows)


def model_card(registry: ModelRegistry, name, owner: str | None = NOBODY) -> str:
    """A model's card (its README.md, read when the model was found); the picker's choice."""
    e = registry.visible(owner).get(name) if isinstance(name, str) else None
    if e is None:
        return "_pick a model to read its card_"
    return e.card or "_no model card_"


class ModelsView:
    """The tab's handlers: each answers for whoever asks (the token from the page, or the request)."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def table(self, token=None, request: gr.Request = None) -> str:
        return models_table(self.registry, owner_id(token, request))

    def card_choices(self, current, token=None, request: gr.Request = None):
        names = list(self.registry.visible(owner_id(token, request)))
        return gr.update(choices=names, value=current if current in names else (names[0] if names else None))

    def card(self, name, token=None, request: gr.Request = None) -> str:
        return model_card(self.registry, name, owner_id(token, request))


def build_models_tab(registry: ModelRegistry) -> SimpleNamespace:
    """Lay the tab out (inside the caller's gr.Tab); wire it with `wire_models_tab`."""
    names = list(registry.visible(NOBODY))
    return SimpleNamespace(
        view=ModelsView(registry),
        owner_state=gr.State(None),          # the browser's owner token, when demo.app passes it in
        table=gr.Markdown(models_table(registry)),
        pick=gr.Dropdown(names, value=names[0] if names else None, label="model card", elem_id="card-pick"),
        card=gr.Markdown(model_card(registry, names[0] if names else None), elem_id="model-card"))


def wire_models_tab(tab: SimpleNamespace, refresh_on) -> None:
    """`refresh_on`: events after which the table and the card picker are read again (page load,
    a published or shared model)."""
    v = tab.view
    gr.on(list(refresh_on), v.table, [tab.owner_state], [tab.table], **QUIET)
    gr.on([tab.pick.focus, *refresh_on], v.card_choices, [tab.pick, tab.owner_state], [tab.pick], **QUIET)
    tab.pick.change(v.card, [tab.pick, tab.owner_state], [tab.card], **QUIET)
