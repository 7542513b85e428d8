"""The Image tab's latent editor: a recipe opened with its sliders, slider moves re-rendered,
directions saved and renamed. The base of demo.image_handlers.Studio; no model math here
(aigc.latent, aigc.pipelines.recipes).

Every handler takes the per-session state (a dict held in gr.State) and returns the new one;
nothing about a user is kept anywhere else. Who asks (demo.common.owner_id: the login, the
browser's owner token kept in the state, else the session) decides which models they may use.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
import time
from pathlib import Path

import gradio as gr
import numpy as np

from aigc.limits import check_float, check_int
from aigc.pipelines import recipes
from aigc.pipelines.recipes import Recipe, RecipeError, png_image
from demo.common import friendly, owner_id
from demo.models import ModelRegistry

N_DIR = 16            # direction slider slots (principal ones first, then saved ones)
N_DIM = 32            # per-dimension slider slots (VAEs, most used dimensions first)
DIR_RANGE = 3.0       # direction sliders: -3..3 standard deviations along the direction
DIM_RANGE = 3.0       # dimension sliders: offset added to that coordinate
EDITOR_PX = 280       # the edited image is shown enlarged (nearest neighbour) to about this size
THUMB_PX = 112
_SLIDER_RE = re.compile(r"^(dir|dim)(\d{1,3})$")


def new_state() -> dict:
    return {"samples": [], "base": None, "current": None, "dir_slots": [], "dim_slots": [],
            "a": None, "b": None}


class Editor:
    """The editor's handlers, bound to one registry of models."""

    def __init__(self, registry: ModelRegistry, tmp_dir: str | Path | None = None):
        self.reg = registry
        base = tmp_dir or os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()
        self.tmp = Path(base) / "aigc-studio"
        self.tmp.mkdir(parents=True, exist_ok=True)

    # -- helpers ---------------------------------------------------------------------------------
    def _write(self, data: bytes, name: str) -> str:
        """Bytes to a fresh file the UI can offer for download (old ones pruned after an hour)."""
        now = time.time()
        for p in self.tmp.glob("*/*"):
            try:
                if now - p.stat().st_mtime > 3600:
                    p.unlink()
                    p.parent.rmdir()
            except OSError:
                pass
        d = self.tmp / secrets.token_hex(8)
        d.mkdir()
        path = d / name
        path.write_bytes(data)
        return str(path)

    def _class_name(self, pipe, label) -> str | None:
        if label is None:
            return None
        names = pipe.model.class_names
        return names[label] if label < len(names) else str(label)

    def _recipe_summary(self, rec: Recipe, entry) -> str:
        parts = [f"**{rec.model}**", rec.source]
        if rec.seed is not None:
            parts.append(f"seed {rec.seed}" + (f" #{rec.index}" if rec.index is not None else ""))
        if rec.label is not None:
            parts.append(f"class {self._class_name(entry.pipe, rec.label)}")
        if rec.temperature is not None:
            parts.append(f"temperature {rec.temperature:g}")
        parts.append(f"weights {rec.weights_hash[:8]}")
        return " · ".join(parts)


    def _who(self, state, request=None) -> str:
        """The owner id of whoever sends this request."""
        return owner_id((state or {}).get("owner_token"), request)

    def _get(self, name, state, request=None):
        """A loaded image model that this asker may use (else: unknown model)."""
        return self.reg.get(name, self._who(state, request))

    def _own(self, e, state, request=None):
        """`e`, when this asker may change what is stored beside its weights."""
        if e.owned_by_other(self._who(state, request)):
            raise ValueError(f"{e.name} belongs to someone else: only its owner can change its directions")
        return e

    # -- the editor ------------------------------------------------------------------------------
    def _slots(self, entry):
        d = entry.directions()
        n = len(d)
        if n <= N_DIR:
            dir_slots = list(range(n))
        else:                              # principal ones, then the most recent saved ones
            keep = min(d.n_principal, N_DIR // 2)
            dir_slots = list(range(keep)) + list(range(n - (N_DIR - keep), n))
        dim_slots = list(d.dim_order[:N_DIM]) if (entry.kind in ("vae", "vade") and d.kl is not None) else []
        return d, dir_slots, dim_slots

    def _slider_updates(self, entry, d, dir_slots, dim_slots, dir_values=None, dim_values=None):
        ups = []
        for i in range(N_DIR):
            if i < len(dir_slots):
                j = dir_slots[i]
                extra = f" · {100 * float(d.explained[j]):.1f}% var" if j < d.n_principal else " · saved"
                ups.append(gr.update(label=f"{d.names[j]}{extra}", visible=True,
                                     value=(dir_values or {}).get(j, 0.0)))
            else:
                ups.append(gr.update(visible=False, value=0.0))
        for i in range(N_DIM):
            if i < len(dim_slots):
                k = dim_slots[i]
                ups.append(gr.update(label=f"z{k} · KL {float(d.kl[k]):.2f}", visible=True,
                                     value=(dim_values or {}).get(k, 0.0)))
            else:
                ups.append(gr.update(visible=False, value=0.0))
        return ups

    def _rename_choices(self, d, dir_slots):
        choices = [(d.names[j], str(j)) for j in dir_slots]
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def _open(self, rec: Recipe, state: dict, note: str = "", keep_offsets: bool = False, request=None):
        """Put a recipe into the editor: its image, sliders for its model, new session state."""
        e = self._get(rec.model, state, request)
        pipe = e.pipe
        dim = pipe.model.latent_dim
        z = recipes.latent_array(rec.z, dim, "latent (z)")
        base = recipes.latent_array(rec.base, dim, "starting latent")
        if rec.label is not None or pipe.conditional:
            if rec.label is None:
                raise RecipeError(f"recipe: {rec.model} is class-conditional; the recipe gives no class")
            pipe.label_index(rec.label)
        d, dir_slots, dim_slots = self._slots(e)
        dir_vals, dim_vals = {}, {}
        offsets = rec.offsets if keep_offsets else {}
        if any(offsets.values()):
            # sliders go back where they were if every offset still has its slider (same directions,
            # shown, in range); otherwise they start at 0 from the restored image
            dirs, dims = offsets.get("directions", {}), offsets.get("dims", {})
            if rec.directions == d.fingerprint():
                for name, v in dirs.items():
                    j = d.names.index(name) if name in d.names else -1
                    if j in dir_slots and abs(v) <= DIR_RANGE:
                        dir_vals[j] = v
                for k, v in dims.items():
                    if k.isdigit() and int(k) in dim_slots and abs(v) <= DIM_RANGE:
                        dim_vals[int(k)] = v
            if len(dir_vals) + len(dim_vals) != len(dirs) + len(dims):
                dir_vals, dim_vals, base = {}, {}, z
                note = (note + " The sliders that made this edit are not all available now (the "
                        "directions changed since); they start at 0 from the restored image.").strip()
        image = pipe.decode(z[None], None if rec.label is None else [rec.label]).images[0]
        base_rec = Recipe(**{**rec.to_dict(), "z": base.tolist(), "latent": None, "offsets": {},
                             "directions": None})
        state = {**(state or new_state()), "base": base_rec.to_dict(), "current": rec.to_dict(),
                 "dir_slots": dir_slots, "dim_slots": dim_slots}
        info = self._recipe_summary(rec, e) + (f"\n\n{note}" if note else "")
        return (png_image(image, rec, EDITOR_PX), info,
                *self._slider_updates(e, d, dir_slots, dim_slots, dir_vals, dim_vals),
                gr.update(visible=bool(dim_slots)), self._rename_choices(d, dir_slots), state)

    def _open_saved(self, state, key: str, index, what: str, missing: str, request=None):
        """Open item `index` of the recipes this session keeps under `key` (a grid or a strip)."""
        items = (state or {}).get(key) or []
        if not items:
            raise ValueError(missing)
        i = check_int(index, 0, len(items) - 1, what)
        return self._open(recipes.from_dict(items[i]), state, request=request)

    @friendly
    def open_sample(self, state, index, request: gr.Request = None):
        """Open sample number `index` of the last grid in the editor."""
        return self._open_saved(state, "samples", index, "sample number",
                                "sample a grid first, then pick one of its images", request)

    @staticmethod
    def parse_offsets(offsets) -> dict[str, float]:
        """Slider values as the API takes them: {"dir1": 1.5, "dim3": -0.5} (a dict or its JSON).
        dirN is the N-th direction slider, dimN the N-th most used latent dimension (VAEs)."""
        if offsets in (None, ""):
            return {}
        if isinstance(offsets, str):
            if len(offsets) > 20000:
                raise ValueError("offsets: too long")
            try:
                offsets = json.loads(offsets)
            except json.JSONDecodeError:
                raise ValueError('offsets must be a JSON object such as {"dir1": 1.5}') from None
        if not isinstance(offsets, dict):
            raise ValueError('offsets must be an object such as {"dir1": 1.5, "dim2": -1}')
        out = {}
        for k, v in offsets.items():
            m = _SLIDER_RE.match(str(k))
            if not m or not 1 <= int(m.group(2)) <= (N_DIR if m.group(1) == "dir" else N_DIM):
                raise ValueError(f"unknown slider {str(k)[:40]!r}; use dir1..dir{N_DIR} and dim1..dim{N_DIM}")
            lim = DIR_RANGE if m.group(1) == "dir" else DIM_RANGE
            out[str(k)] = check_float(v, -lim, lim, f"slider {k}")
        return out

    def _values(self, state, offsets, request=None):
        """Slider values -> (entry, directions, coefficients, {dimension: offset}, named offsets)."""
        values = self.parse_offsets(offsets)
        e = self._get(state["base"]["model"], state, request)
        d = e.directions()
        coeffs = np.zeros(len(d), np.float32)
        named = {"directions": {}, "dims": {}}
        for i, j in enumerate(state.get("dir_slots") or []):
            v = values.get(f"dir{i + 1}", 0.0)
            if j < len(d) and v:
                coeffs[j] = v
                named["directions"][d.names[j]] = v
        dims = {}
        for i, k in enumerate(state.get("dim_slots") or []):
            v = values.get(f"dim{i + 1}", 0.0)
            if v:
                dims[int(k)] = v
                named["dims"][str(k)] = v
        return e, d, coeffs, dims, named

    def _edited(self, state, values, request=None):
        base = (state or {}).get("base")
        if not base:
            raise ValueError("open a sample (or encode a picture, or restore a recipe) first")
        e, d, coeffs, dims, offsets = self._values(state, values, request)
        rec0 = recipes.from_dict(base)
        z = e.pipe.edited_latent(rec0.z, coeffs, d, dims)
        edited = bool(offsets["directions"] or offsets["dims"])
        rec = Recipe(**{**rec0.to_dict(), "z": z.tolist(), "latent": rec0.z if edited else None,
                        "offsets": offsets if edited else {}, "directions": d.fingerprint() if edited else None,
                        "source": "edit" if edited else rec0.source})
        return e, d, rec

    @friendly
    def edit(self, state, offsets=None, request: gr.Request = None):
        """Re-render the editor image for the slider values (the hot path: one decode).
        offsets: {"dir1": 1.5, "dim2": -1.0, ...}; sliders not named are at 0."""
        e, _, rec = self._edited(state, offsets, request)
        image = e.pipe.decode(np.asarray(rec.z, np.float32)[None],
                              None if rec.label is None else [rec.label]).images[0]
        return png_image(image, rec, EDITOR_PX), {**state, "current": rec.to_dict()}

    @friendly
    def reset(self, state, request: gr.Request = None):
        """Sliders back to zero; the editor shows the latent it started from."""
        base = (state or {}).get("base")
        if not base:
            raise ValueError("open a sample first")
        rec = recipes.from_dict(base)
        e = self._get(rec.model, state, request)
        image = e.pipe.decode(np.asarray(rec.z, np.float32)[None],
                              None if rec.label is None else [rec.label]).images[0]
        ups = [gr.update(value=0.0) for _ in range(N_DIR + N_DIM)]
        return (png_image(image, rec, EDITOR_PX), *ups, {**state, "current": rec.to_dict()})

    def _current(self, state) -> Recipe:
        cur = (state or {}).get("current") or (state or {}).get("base")
        if not cur:
            raise ValueError("open a sample (or encode a picture, or restore a recipe) first")
        return recipes.from_dict(cur)

    @friendly
    def save_direction(self, state, name, offsets=None, request: gr.Request = None):
        """Save what the sliders do now (edited latent minus the start) as a named direction."""
        e, d, rec = self._edited(state, offsets, request)
        self._own(e, state, request)
        vec = np.asarray(rec.z, np.float32) - np.asarray(rec.base, np.float32)
        d2 = e.add_direction(vec, name)
        _, dir_slots, dim_slots = self._slots(e)
        _, _, _, dims, named = self._values(state, offsets, request)       # keep the sliders where they are
        dir_vals = {d2.names.index(n): v for n, v in named["directions"].items() if n in d2.names}
        state = {**state, "dir_slots": dir_slots, "dim_slots": dim_slots}
        info = f"Saved direction **{d2.names[-1]}** for {e.name} (its slider at 1 repeats this edit)."
        return (*self._slider_updates(e, d2, dir_slots, dim_slots, dir_vals, dims),
                self._rename_choices(d2, dir_slots), info, state)

    @friendly
    def rename_direction(self, state, which, name, offsets=None, request: gr.Request = None):
        """Give direction number `which` (as listed in the picker) a name."""
        base = (state or {}).get("base")
        if not base:
            raise ValueError("open a sample first")
        e = self._own(self._get(base["model"], state, request), state, request)
        d = e.directions()
        idx = check_int(which, 0, len(d) - 1, "direction")
        _, _, _, dims, named = self._values(state, offsets, request)
        old = d.names[idx]
        d2 = e.rename_direction(idx, name)
        dir_vals = {(idx if n == old else d2.names.index(n)): v for n, v in named["directions"].items()}
        dir_slots, dim_slots = state["dir_slots"], state["dim_slots"]
        choices = [(d2.names[j], str(j)) for j in dir_slots]
        return (*self._slider_updates(e, d2, dir_slots, dim_slots, dir_vals, dims),
                gr.update(choices=choices, value=str(idx)),
                f"Direction {idx + 1} is now called **{d2.names[idx]}**.", state)

