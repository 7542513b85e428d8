"""The Fine-tune tab's data insight: an image upload without class folders, grouped by a VaDE base the
person may use (aigc.data.uploads.group_upload), with a few pictures of each group and of the
pictures that fit no group well. A base of another size or channel count is not guessed at: the
report then says in one line why there are no groups."""
from __future__ import annotations

import numpy as np

from aigc.data.uploads import group_upload
from demo.image_clusters import rows_html

GROUP_PX = 40             # each upload picture in a group's row is drawn this many pixels high


def _shape(e) -> tuple:
    """A model entry's picture shape (C, H, W), from its config alone."""
    cfg = e.config or {}
    r = cfg.get("resolution")
    return (cfg.get("channels"), r, r)


def vade_base(registry, owner, shape, dataset=None):
    """The VaDE to group pictures of `shape` (C, H, W) with: one of that shape if any (the base's
    dataset first, then a shipped one, then MNIST's), else the most preferred one of another shape
    (so the report can say why it does not fit); None when `owner` may use no VaDE."""
    visible = getattr(registry, "visible", None)          # a registry without owners has no bases
    bases = [e for e in (visible(owner).values() if visible else ())
             if e.kind == "vade" and e.modality == "image" and e.error is None]
    if not bases:
        return None
    rank = (lambda e: (_shape(e) != tuple(shape), e.dataset != dataset or dataset is None, bool(e.user),
                       e.dataset != "mnist", e.name))
    return min(bases, key=rank)


def upload_groups(registry, data, owner, dataset=None) -> tuple[dict | None, str]:
    """Prepared upload pictures (aigc ImageData) -> (group_upload's result with the base's name, or
    None when there is nothing to group with; HTML rows of a few pictures per group and of the
    misfits)."""
    if data.labels is not None:               # class folders: the person already said what is in it
        return None, ""
    e = vade_base(registry, owner, data.shape, dataset)
    if e is None:
        return None, ""
    try:
        model = registry.get(e.name, owner).pipe.model
        g = group_upload(data.images, None, model=model)
    except ValueError as err:
        return {"fits": False, "base": e.name, "reason": f"{e.name} could not group them ({err})"}, ""
    g["base"] = e.name
    if not g["fits"]:
        g["reason"] = g["reason"].replace(f" {model.kind} groups", f" {e.name} groups")
        return g, ""
    images = np.asarray(data.images)
    rows = [(f"group {x['group']} · {x['size']} images ({x['share']:.0%})", [images[i] for i in x["examples"]])
            for x in g["groups"]]
    bad = g["misfits"]["examples"]
    if bad:
        rows.append((f"fit no group well ({g['misfits']['count']})", [images[b["index"]] for b in bad]))
    return g, rows_html(rows, GROUP_PX, "aigc-group-row")
