"""The Models tab: every model the asker may see, with its figures, its card and its sample picture.
Layout and wiring only; the registry (demo.models) knows the models."""
from __future__ import annotations

import re
from types import SimpleNamespace

import gradio as gr

from demo.common import owner_id
from demo.models import NOBODY, ModelRegistry

QUIET = {"api_visibility": "private", "queue": False, "show_progress": "hidden"}
TABLE_HEADERS = ["model", "kind", "dataset", "metrics", "status"]
SAMPLES_FILE = "samples.png"                  # the one picture beside a model's weights the tab serves
SAMPLES_MAX_BYTES = 8 << 20
# how the cards state each figure: KID x 1000, shares in percent
METRIC_SHOWN = {"fid": ("FID", 1.0), "kid": ("KID×1000", 1000.0), "kid_randconv": ("KID×1000 (random conv)", 1000.0),
                "label_acc": ("label accuracy %", 100.0), "copy_rate": ("copy rate %", 100.0),
                "domain_fd": ("domain FD", 1.0), "nll_nats": ("NLL nats", 1.0),
                "cluster_acc": ("cluster accuracy %", 100.0), "nmi": ("NMI", 1.0)}
_LOCAL_IMAGE = re.compile(r"!\[([^\]]*)\]\((?![a-z]+:|/)([^)\s]+)\)")


def metric_items(metrics: dict) -> list[tuple[str, str]]:
    """A model's figures as its card states them: (label, formatted value), KID x 1000."""
    out = []
    for k, v in metrics.items():
        label, scale = METRIC_SHOWN.get(k, (k, 1.0))
        out.append((label, f"{v * scale:.4g}" if isinstance(v, (int, float)) else str(v)))
    return out


def model_rows(registry: ModelRegistry, owner: str | None = NOBODY) -> list[list[str]]:
    rows = []
    for e in registry.visible(owner).values():
        metrics = ", ".join(f"{k}: {v}" for k, v in metric_items(e.metrics)) or "not evaluated"
        status = ("loaded" if e.ready else e.error or ("text model" if e.modality == "text" else
                  "not loaded" if registry.loaded else "loading…"))
        if e.owner is not None:
            status += " · yours" if e.owner == owner else " · shared"
        rows.append([e.name, e.kind, e.dataset or "?", metrics, status[:120]])
    return rows


def models_table(registry: ModelRegistry, owner: str | None = NOBODY) -> str:
    """The same rows as markdown (for scripts and logs)."""
    lines = ["| " + " | ".join(TABLE_HEADERS) + " |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in model_rows(registry, owner)]
    return "\n".join(lines)


def model_card(registry: ModelRegistry, name, owner: str | None = NOBODY) -> str:
    """A model's card (its README.md, read when the model was found). Its local picture links are
    left out: the picture is shown beside the card (`model_samples`)."""
    e = registry.visible(owner).get(name) if isinstance(name, str) else None
    if e is None:
        return "_pick a model to read its card_"
    return _LOCAL_IMAGE.sub("", e.card).strip() if e.card else "_no model card_"


def model_samples(registry: ModelRegistry, name, owner: str | None = NOBODY):
    """The samples picture beside a model this asker may see, as an image (never a path): only
    `samples.png` of a visible model's own folder, and only a real PNG of a sane size."""
    from PIL import Image

    e = registry.visible(owner).get(name) if isinstance(name, str) else None
    if e is None:
        return None
    p = e.path / SAMPLES_FILE
    try:
        if p.is_symlink() or not p.is_file() or p.stat().st_size > SAMPLES_MAX_BYTES:
            return None
        with Image.open(p) as im:
            if im.format != "PNG" or im.width * im.height > 4096 * 4096:
                return None
            return im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


class ModelsView:
    """The tab's handlers: each answers for whoever asks (the token from the page, or the request)."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def table(self, token=None, request: gr.Request = None):
        return model_rows(self.registry, owner_id(token, request))

    def card_choices(self, current, token=None, request: gr.Request = None):
        names = list(self.registry.visible(owner_id(token, request)))
        return gr.update(choices=names, value=current if current in names else (names[0] if names else None))

    def card(self, name, token=None, request: gr.Request = None):
        who = owner_id(token, request)
        return model_card(self.registry, name, who), model_samples(self.registry, name, who)

    def open_row(self, token=None, evt: gr.SelectData = None, request: gr.Request = None):
        """A click on a row of the table: that model's card."""
        row = getattr(evt, "row_value", None) or []
        name = row[0] if row else None
        if name not in self.registry.visible(owner_id(token, request)):
            return gr.skip()
        return gr.update(value=name)


def build_models_tab(registry: ModelRegistry) -> SimpleNamespace:
    """Lay the tab out (inside the caller's gr.Tab); wire it with `wire_models_tab`."""
    names = list(registry.visible(NOBODY))
    first = names[0] if names else None
    tab = SimpleNamespace(view=ModelsView(registry), owner_state=gr.State(None))
    gr.Markdown("Click a row to read that model's card.", elem_classes="aigc-small")
    tab.table = gr.Dataframe(model_rows(registry), headers=TABLE_HEADERS, interactive=False, wrap=True,
                             elem_id="models-table", label="models")
    tab.pick = gr.Dropdown(names, value=first, label="model card", elem_id="card-pick")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            tab.card = gr.Markdown(model_card(registry, first), elem_id="model-card")
        with gr.Column(scale=2, min_width=240):
            tab.samples = gr.Image(model_samples(registry, first), label="samples", type="pil", format="png",
                                   interactive=False, elem_id="card-samples", buttons=["download"])
    return tab


def wire_models_tab(tab: SimpleNamespace, refresh_on) -> None:
    """`refresh_on`: events after which the table and the card picker are read again (page load,
    a published or shared model)."""
    v = tab.view
    gr.on(list(refresh_on), v.table, [tab.owner_state], [tab.table], **QUIET)
    gr.on([tab.pick.focus, *refresh_on], v.card_choices, [tab.pick, tab.owner_state], [tab.pick], **QUIET)
    tab.pick.change(v.card, [tab.pick, tab.owner_state], [tab.card, tab.samples], **QUIET)
    tab.table.select(v.open_row, [tab.owner_state], [tab.pick], **QUIET)
