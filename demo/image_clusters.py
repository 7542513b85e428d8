"""The Image tab's VaDE views: the cluster picker's choices, the clusters view (one row of samples per
cluster with its share of the data) and an encoded picture's cluster posterior as a bar list.
The pictures go into small HTML blocks as PNG data URIs (a few KB each); no model math here
(aigc.pipelines.image holds the sampling and the posterior)."""
from __future__ import annotations

import base64
import html
import io

import gradio as gr
import numpy as np
from PIL import Image

from aigc.limits import IMAGE_TEMP_MAX, SEED_MAX, check_float, check_int
from demo.common import friendly
from demo.image_editor import Editor

ANY = "any"
CLUSTER_ROW = 8            # samples per cluster in the clusters view
ROW_PX = 56                # each picture of a row is drawn this many pixels high
VADE_TEMP_HELP = ("VaDE: the spread of each cluster's latents around its centre. Lower: more typical "
                  "members of a cluster; 1: as trained; higher: more varied and more broken ones.")


def is_clustered(kind: str) -> bool:
    return kind == "vade"


def cluster_choices(n: int, weights=None) -> list[tuple[str, str]]:
    """The cluster picker: "any cluster", then "cluster k (share s%)" (the share once the weights
    are loaded); the value is the cluster's number as text."""
    out = [("any cluster", ANY)]
    for k in range(int(n)):
        share = f" (share {100 * float(weights[k]):.1f}%)" if weights is not None else ""
        out.append((f"cluster {k}{share}", str(k)))
    return out


def cluster_arg(pipe, value) -> int | None:
    """The picker's (or an API caller's) cluster: None for any, else a checked cluster number;
    "cluster 3" and "3" both mean cluster 3."""
    if value in (None, "", ANY):
        return None
    if isinstance(value, str) and value.strip().lower().startswith("cluster"):
        value = value.strip()[len("cluster"):].strip().split(" ")[0]
    return pipe.cluster_index(value)


def data_uri(image: np.ndarray, px: int = ROW_PX) -> str:
    """uint8 H x W x C -> a PNG data URI, enlarged (nearest neighbour) to about `px` pixels high."""
    im = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    scale = max(1, round(px / im.height))
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def rows_html(rows: list[tuple[str, list[np.ndarray]]], px: int = ROW_PX, css_class: str = "aigc-cluster-row") -> str:
    """One row per (title, pictures): the title, then the pictures side by side."""
    out = []
    for title, images in rows:
        imgs = "".join(f'<img src="{data_uri(im, px)}" alt="" style="height:{px}px;image-rendering:pixelated">'
                       for im in images)
        out.append(f'<div class="{css_class}" style="display:flex;align-items:center;gap:4px;margin:2px 0;'
                   f'flex-wrap:wrap"><span style="min-width:11em">{html.escape(title)}</span>{imgs}</div>')
    return "\n".join(out)


def posterior_html(probs) -> str:
    """q(c|x) as a bar list: one bar per cluster, the most probable marked."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    best = int(p.argmax()) if len(p) else -1
    out = ['<div class="aigc-posterior"><b>Cluster posterior q(c|x)</b>']
    for k, v in enumerate(p):
        weight = "font-weight:bold;" if k == best else ""
        out.append(f'<div class="aigc-posterior-bar" style="display:flex;align-items:center;gap:6px;{weight}">'
                   f'<span style="min-width:6em">cluster {k}</span>'
                   f'<span style="display:inline-block;height:10px;width:{max(0.0, 100 * v) * 1.6:.1f}px;'
                   f'background:#f97316"></span><span>{100 * v:.1f}%</span></div>')
    return "\n".join(out + ["</div>"])


class ClusterViews(Editor):
    """The VaDE handlers of the Image tab (Studio's base)."""

    def cluster_box(self, model, state=None, request: gr.Request = None):
        """The clusters view is shown for a VaDE model only -> (box, rows, info)."""
        try:
            shown = is_clustered(self.reg.entry(model, self._who(state, request)).kind)
        except ValueError:
            shown = False
        return gr.update(visible=shown), "", ""          # another model's rows would be stale

    @friendly
    def clusters(self, model, seed, temperature, state=None, request: gr.Request = None):
        """One row of CLUSTER_ROW samples per cluster, most common cluster first, with its share of
        the data the model was trained on (its mixture weight) -> (html, info)."""
        e = self._get(model, state, request)
        pipe = e.pipe
        if not pipe.clustered:
            raise ValueError(f"{e.name} is a {e.kind}, not a VaDE; it has no clusters")
        seed = check_int(seed, 0, SEED_MAX, "seed")
        temp = check_float(temperature, 0.0, IMAGE_TEMP_MAX, "temperature")
        w = pipe.cluster_weights()
        order = np.argsort(-w, kind="stable")
        rows = [(f"cluster {k} · {100 * float(w[k]):.1f}%", list(pipe(CLUSTER_ROW, seed=seed, cluster=int(k),
                                                                     temperature=temp).images))
                for k in order]
        info = (f"**{e.name}** · {len(order)} clusters, most common first (share of the training data) · "
                f"seed {seed} · temperature {temp:g}")
        return rows_html(rows), info

    def posterior_view(self, state):
        """After an encode: the picture's cluster posterior (hidden for models without clusters)."""
        post = (state or {}).get("posterior")
        if not post:
            return gr.update(value="", visible=False)
        return gr.update(value=posterior_html(post), visible=True)
