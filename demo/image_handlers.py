"""Event handlers of the studio: argument checking, calls into aigc, and shaping the results for
the components. No model math and no file formats live here (see aigc.latent, aigc.pipelines.recipes,
aigc.data.imageinput, aigc.latent.projection, aigc.eval.nearest).

Every handler takes the per-session state (a dict held in gr.State) and returns the new one;
nothing about a user is kept anywhere else. Bad input raises gr.Error with a message a person
can act on; the server goes on serving.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import secrets
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import gradio as gr
import numpy as np

from aigc.data import imageinput
from aigc.pipelines import recipes
from aigc.pipelines.recipes import Recipe, RecipeError, png_image

from demo.models import ModelRegistry
from demo.common import friendly
from aigc.limits import FRAMES_MAX, GRID_MAX, IMAGE_TEMP_MAX, SEED_MAX, check_float, check_int, check_number

log = logging.getLogger("aigc.demo")

N_DIR = 16            # direction slider slots (principal ones first, then saved ones)
N_DIM = 32            # per-dimension slider slots (VAEs, most used dimensions first)
DIR_RANGE = 3.0       # direction sliders: -3..3 standard deviations along the direction
DIM_RANGE = 3.0       # dimension sliders: offset added to that coordinate
EDITOR_PX = 280       # the edited image is shown enlarged (nearest neighbour) to about this size
THUMB_PX = 112
ANY = "any"
SOURCES = ("two seeds", "A and B")
_SLIDER_RE = re.compile(r"^(dir|dim)(\d{1,3})$")


def new_state() -> dict:
    return {"samples": [], "base": None, "current": None, "dir_slots": [], "dim_slots": [],
            "a": None, "b": None}


# -- argument checks -------------------------------------------------------------------------------
def _label_arg(label):
    return None if label in (None, "", ANY) else label


def text_model_choices(registry, current=None):
    """A text-model picker's update after looking for new user models: every usable text model
    (the weights folder's and the user models'), keeping `current` when it is still there.
    For the Text tab: wire it to the picker's focus and return it in `model_pickers` (see
    demo.app.build_demo); load a picked user model with `registry.text_pipeline(name)`."""
    if hasattr(registry, "refresh"):
        registry.refresh()
    names = registry.text_choices()
    return gr.update(choices=names, value=current if current in names else (names[0] if names else None))


class Studio:
    """All handlers, bound to one registry of loaded models."""

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

    # -- model picker ----------------------------------------------------------------------------
    def model_choices(self, current, seen):
        """Page load, focus of the picker, a fine-tune finished: look for new user models and, when
        the registry changed since this page last looked (`seen`, its version then, kept in the
        page's gr.State), give the picker its new choices -> (picker update, version)."""
        refresh = getattr(self.reg, "refresh", None)
        if refresh is not None:
            try:
                refresh()
            except OSError as e:                  # an unreadable user-models folder: keep serving
                log.warning("refreshing the user models: %s", e)
        v = int(getattr(self.reg, "version", 0))
        if v == seen:
            return gr.skip(), v
        models = self.reg.image_models()
        value = current if current in models else (models[0] if models else None)
        return gr.update(choices=models, value=value), v

    @friendly
    def model_controls(self, model):
        """Class picker, temperature label and a short description for the chosen model."""
        e = self.reg.entry(model)                  # config only: works while the weights load
        choices = [("any class (cycles)", ANY)] + [(n, n) for n in e.class_names]
        label = gr.update(choices=choices, value=ANY, visible=e.conditional)
        is_gan = e.kind != "vae"
        temp = gr.update(label="Truncation (scale of z)" if is_gan else "Prior temperature")
        metrics = ", ".join(f"{k} {v:.3g}" if isinstance(v, (int, float)) else f"{k} {v}"
                            for k, v in list(e.metrics.items())[:6]) or "not evaluated yet"
        n = len(e.class_names)
        info = (f"`{e.kind}` on {e.dataset or 'unknown data'} · {e.latent_dim}-d latent"
                f"{' · ' + str(n) + ' classes' if n else ''} · {metrics}")
        return label, temp, info

    # -- sampling --------------------------------------------------------------------------------
    @friendly
    def sample(self, model, label, seed, grid, temperature, state):
        """A grid of samples; each carries its recipe in its PNG."""
        e = self.reg.get(model)
        pipe = e.pipe
        seed = check_int(seed, 0, SEED_MAX, "seed")
        side = check_int(grid, 1, GRID_MAX, "grid size")
        temp = check_float(temperature, 0.0, IMAGE_TEMP_MAX, "temperature")
        pipe.label_index(_label_arg(label))            # a clear message for a class the model lacks
        s = pipe(side * side, seed=seed, label=_label_arg(label), temperature=temp)
        items, samples = [], []
        for i in range(len(s.images)):
            lab = None if s.labels is None else int(s.labels[i])
            rec = Recipe(model=e.name, weights_hash=e.weights_hash, z=s.latents[i].tolist(), label=lab,
                         source="sample", seed=seed, index=i, temperature=temp)
            cap = f"#{i}" + (f" · {self._class_name(pipe, lab)}" if lab is not None else "")
            items.append((png_image(s.images[i], rec, THUMB_PX), cap))
            samples.append(asdict(rec))
        state = {**(state or new_state()), "samples": samples}
        info = f"**{e.name}** · seed {seed} · {len(items)} samples. Click one to open it in the editor."
        return items, info, state

    @friendly
    def dice(self, model, label, grid, temperature, state):
        """A fresh random seed, and its samples."""
        seed = secrets.randbelow(SEED_MAX + 1)
        items, info, state = self.sample(model, label, seed, grid, temperature, state)
        return seed, items, info, state

    # -- the editor ------------------------------------------------------------------------------
    def _slots(self, entry):
        d = entry.directions()
        n = len(d)
        if n <= N_DIR:
            dir_slots = list(range(n))
        else:                              # principal ones, then the most recent saved ones
            keep = min(d.n_principal, N_DIR // 2)
            dir_slots = list(range(keep)) + list(range(n - (N_DIR - keep), n))
        dim_slots = list(d.dim_order[:N_DIM]) if (entry.kind == "vae" and d.kl is not None) else []
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

    def _open(self, rec: Recipe, state: dict, note: str = "", keep_offsets: bool = False):
        """Put a recipe into the editor: its image, sliders for its model, new session state."""
        e = self.reg.get(rec.model)
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
        base_rec = Recipe(**{**asdict(rec), "z": base.tolist(), "latent": None, "offsets": {},
                             "directions": None})
        state = {**(state or new_state()), "base": asdict(base_rec), "current": asdict(rec),
                 "dir_slots": dir_slots, "dim_slots": dim_slots}
        info = self._recipe_summary(rec, e) + (f"\n\n{note}" if note else "")
        return (png_image(image, rec, EDITOR_PX), info,
                *self._slider_updates(e, d, dir_slots, dim_slots, dir_vals, dim_vals),
                gr.update(visible=bool(dim_slots)), self._rename_choices(d, dir_slots), state)

    def _open_saved(self, state, key: str, index, what: str, missing: str):
        """Open item `index` of the recipes this session keeps under `key` (a grid or a strip)."""
        items = (state or {}).get(key) or []
        if not items:
            raise ValueError(missing)
        i = check_int(index, 0, len(items) - 1, what)
        return self._open(recipes.from_dict(items[i]), state)

    @friendly
    def open_sample(self, state, index):
        """Open sample number `index` of the last grid in the editor."""
        return self._open_saved(state, "samples", index, "sample number",
                                "sample a grid first, then pick one of its images")

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

    def _values(self, state, offsets):
        """Slider values -> (entry, directions, coefficients, {dimension: offset}, named offsets)."""
        values = self.parse_offsets(offsets)
        e = self.reg.get(state["base"]["model"])
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

    def _edited(self, state, values):
        base = (state or {}).get("base")
        if not base:
            raise ValueError("open a sample (or encode a picture, or restore a recipe) first")
        e, d, coeffs, dims, offsets = self._values(state, values)
        rec0 = recipes.from_dict(base)
        z = e.pipe.edited_latent(rec0.z, coeffs, d, dims)
        edited = bool(offsets["directions"] or offsets["dims"])
        rec = Recipe(**{**asdict(rec0), "z": z.tolist(), "latent": rec0.z if edited else None,
                        "offsets": offsets if edited else {}, "directions": d.fingerprint() if edited else None,
                        "source": "edit" if edited else rec0.source})
        return e, d, rec

    @friendly
    def edit(self, state, offsets=None):
        """Re-render the editor image for the slider values (the hot path: one decode).
        offsets: {"dir1": 1.5, "dim2": -1.0, ...}; sliders not named are at 0."""
        e, _, rec = self._edited(state, offsets)
        image = e.pipe.decode(np.asarray(rec.z, np.float32)[None],
                              None if rec.label is None else [rec.label]).images[0]
        return png_image(image, rec, EDITOR_PX), {**state, "current": asdict(rec)}

    @friendly
    def reset(self, state):
        """Sliders back to zero; the editor shows the latent it started from."""
        base = (state or {}).get("base")
        if not base:
            raise ValueError("open a sample first")
        rec = recipes.from_dict(base)
        e = self.reg.get(rec.model)
        image = e.pipe.decode(np.asarray(rec.z, np.float32)[None],
                              None if rec.label is None else [rec.label]).images[0]
        ups = [gr.update(value=0.0) for _ in range(N_DIR + N_DIM)]
        return (png_image(image, rec, EDITOR_PX), *ups, {**state, "current": asdict(rec)})

    def _current(self, state) -> Recipe:
        cur = (state or {}).get("current") or (state or {}).get("base")
        if not cur:
            raise ValueError("open a sample (or encode a picture, or restore a recipe) first")
        return recipes.from_dict(cur)

    @friendly
    def save_direction(self, state, name, offsets=None):
        """Save what the sliders do now (edited latent minus the start) as a named direction."""
        e, d, rec = self._edited(state, offsets)
        vec = np.asarray(rec.z, np.float32) - np.asarray(rec.base, np.float32)
        d2 = e.add_direction(vec, name)
        _, dir_slots, dim_slots = self._slots(e)
        _, _, _, dims, named = self._values(state, offsets)       # keep the sliders where they are
        dir_vals = {d2.names.index(n): v for n, v in named["directions"].items() if n in d2.names}
        state = {**state, "dir_slots": dir_slots, "dim_slots": dim_slots}
        info = f"Saved direction **{d2.names[-1]}** for {e.name} (its slider at 1 repeats this edit)."
        return (*self._slider_updates(e, d2, dir_slots, dim_slots, dir_vals, dims),
                self._rename_choices(d2, dir_slots), info, state)

    @friendly
    def rename_direction(self, state, which, name, offsets=None):
        """Give direction number `which` (as listed in the picker) a name."""
        base = (state or {}).get("base")
        if not base:
            raise ValueError("open a sample first")
        e = self.reg.get(base["model"])
        d = e.directions()
        idx = check_int(which, 0, len(d) - 1, "direction")
        _, _, _, dims, named = self._values(state, offsets)
        old = d.names[idx]
        d2 = e.rename_direction(idx, name)
        dir_vals = {(idx if n == old else d2.names.index(n)): v for n, v in named["directions"].items()}
        dir_slots, dim_slots = state["dir_slots"], state["dim_slots"]
        choices = [(d2.names[j], str(j)) for j in dir_slots]
        return (*self._slider_updates(e, d2, dir_slots, dim_slots, dir_vals, dims),
                gr.update(choices=choices, value=str(idx)),
                f"Direction {idx + 1} is now called **{d2.names[idx]}**.", state)

    # -- memorisation check ---------------------------------------------------------------------
    @friendly
    def nearest(self, state):
        """The training image nearest to the editor's image, and how near it is."""
        from aigc.eval.nearest import index_for_model

        rec = self._current(state)
        e = self.reg.get(rec.model)
        idx = index_for_model(e.path, e.dataset)
        img = e.pipe.decode(np.asarray(rec.z, np.float32)[None], None if rec.label is None else [rec.label]).images[0]
        m = idx.query(img)[0][0]
        ref = idx.reference()
        verdict = ""
        if ref:
            r = m.distance / ref
            typical = ("A held-out test image is typically {:.2f} from its nearest training image; " if idx.reference_is_test
                       else "A training image is typically {:.2f} from its nearest other training image; ")
            verdict = (" " + typical.format(ref)
                       + ("this sample is **much closer: it may be a copy**." if r < 0.5 else
                          "this sample is not unusually close: **no sign of copying**."))
        cls = f", class {m.label_name}" if m.label_name is not None else ""
        md = (f"Nearest of {len(idx):,} training images: **#{m.index}**{cls}, Euclidean distance "
              f"**{m.distance:.2f}** (RMS {m.rms:.3f} per pixel).{verdict}")
        pair = np.concatenate([img, np.full((img.shape[0], 2, img.shape[2]), 128, np.uint8), m.image], 1)
        return png_image(pair, None, EDITOR_PX * 2), md

    # -- interpolation ---------------------------------------------------------------------------
    @friendly
    def set_endpoint(self, which, state):
        rec = self._current(state)
        e = self.reg.get(rec.model)
        img = e.pipe.decode(np.asarray(rec.z, np.float32)[None], None if rec.label is None else [rec.label]).images[0]
        return png_image(img, rec, THUMB_PX), {**state, which: asdict(rec)}

    def set_a(self, state):
        return self.set_endpoint("a", state)

    def set_b(self, state):
        return self.set_endpoint("b", state)

    @friendly
    def interpolate(self, source, model, label, seed_a, seed_b, frames, method, temperature, state):
        """Frames from A to B and an animated GIF. Source 'two seeds': the first sample of each
        seed; 'A and B': the two images picked in the editor."""
        frames = check_int(frames, 2, FRAMES_MAX, "frames")
        if method not in ("slerp", "lerp"):
            raise ValueError("method must be 'slerp' or 'lerp'")
        note = ""
        state = state or new_state()
        if source == "two seeds":
            e = self.reg.get(model)
            pipe = e.pipe
            temp = check_float(temperature, 0.0, IMAGE_TEMP_MAX, "temperature")
            sa, sb = check_int(seed_a, 0, SEED_MAX, "seed A"), check_int(seed_b, 0, SEED_MAX, "seed B")
            za, zb = pipe.latents(1, sa)[0] * temp, pipe.latents(1, sb)[0] * temp
            lab = pipe.label_index(_label_arg(label)) if pipe.conditional else None
            if pipe.conditional and lab is None:
                lab, note = 0, "No class chosen: frames are drawn as class 0. "
            seed, what = None, f"seeds {sa} → {sb}"
        elif source == "A and B":
            a, b = state.get("a"), state.get("b")
            if not a or not b:
                raise ValueError("pick A and B first: open an image in the editor and press 'Use as A', then another for B")
            ra, rb = recipes.from_dict(a), recipes.from_dict(b)
            if ra.model != rb.model:
                raise ValueError(f"A is from {ra.model} and B from {rb.model}; both must come from one model")
            e = self.reg.get(ra.model)
            pipe = e.pipe
            za, zb = ra.z, rb.z
            lab = ra.label
            if ra.label != rb.label:
                note = "A and B have different classes: frames use A's class. "
            seed, temp, what = None, None, "A → B"
        else:
            raise ValueError(f"source must be one of: {', '.join(SOURCES)}")
        s = pipe.interpolate(za, zb, frames, method, lab)
        items = []
        for i, img in enumerate(s.images):
            rec = Recipe(model=e.name, weights_hash=e.weights_hash, z=s.latents[i].tolist(), label=lab,
                         source="interpolate", seed=seed, index=i, temperature=temp)
            items.append((png_image(img, rec, THUMB_PX), f"{i / (frames - 1):.2f}"))
        from aigc.latent import gif_bytes

        gif = self._write(gif_bytes(s.images, fps=10, scale=max(1, EDITOR_PX // s.images.shape[1])),
                          f"{e.name}-interpolation.gif")
        info = f"{note}**{e.name}** · {what} · {frames} frames · {method}"
        return items, gif, gif, info, {**state, "strip": [asdict(
            Recipe(model=e.name, weights_hash=e.weights_hash, z=s.latents[i].tolist(), label=lab,
                   source="interpolate", index=i)) for i in range(len(s.images))]}

    @friendly
    def open_frame(self, state, index):
        """Open frame number `index` of the last interpolation strip in the editor."""
        return self._open_saved(state, "strip", index, "frame number",
                                "interpolate first, then pick one of its frames")

    # -- encoding your own picture --------------------------------------------------------------
    def _encode(self, e, prep, label, state, progress):
        pipe = e.pipe
        notes = list(prep.notes)
        if e.kind == "vae":
            s = pipe.encode(prep.image)
            source = "encode"
        else:
            lab = pipe.label_index(_label_arg(label)) if pipe.conditional else None
            if not pipe.conditional and _label_arg(label) is not None:
                pipe.label_index(label)            # raises: unconditional models take no class
            last = [0.0]

            def cb(step, total, err):
                now = time.perf_counter()
                if step == total or now - last[0] > 0.1:
                    last[0] = now
                    progress((step, total), desc=f"projecting into {e.name}: error {err:.4f}")

            s = pipe.encode(prep.image, label=lab, progress=cb)
            source = "project"
        recon = s.images[0]
        mse = float(np.mean((recon.astype(np.float32) - prep.image.astype(np.float32)) ** 2) / 255.0 ** 2)
        psnr = float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)
        lab = None if s.labels is None else int(s.labels[0])
        rec = Recipe(model=e.name, weights_hash=e.weights_hash, z=s.latents[0].tolist(), label=lab, source=source)
        how = "VAE encoder (posterior mean)" if source == "encode" else "projection by optimisation"
        cls = f" · class {self._class_name(pipe, lab)}" if lab is not None else ""
        notes_md = (f"Reconstruction by {how}{cls}: error **{mse:.4f}** MSE per pixel ({psnr:.1f} dB PSNR). "
                    "Edit it with the sliders above." + ("\n\nPrepared input: " + "; ".join(notes) if notes else ""))
        opened = self._open(rec, state)
        return (png_image(prep.image, None, EDITOR_PX // 2 * 1), png_image(recon, rec, EDITOR_PX // 2 * 1),
                notes_md, *opened)

    @friendly
    def encode(self, picture, model, label, state, progress=gr.Progress()):
        """Upload -> checked decoding -> prepared input -> latent (VAE encode / GAN projection)."""
        if not picture:
            raise ValueError("upload a picture first")
        e = self.reg.get(model)
        c, h, _ = e.pipe.model.image_shape
        prep = imageinput.load_and_prepare(picture, h, c, e.dataset)
        return self._encode(e, prep, label, state, progress)

    @friendly
    def encode_drawing(self, drawing, model, label, state, progress=gr.Progress()):
        """A sketchpad drawing -> the same path as an upload."""
        comp = drawing.get("composite") if isinstance(drawing, dict) else drawing
        if comp is None:
            raise ValueError("draw something first")
        e = self.reg.get(model)
        c, h, _ = e.pipe.model.image_shape
        arr = np.asarray(comp)
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        prep = imageinput.from_array(arr, h, c, e.dataset)
        return self._encode(e, prep, label, state, progress)

    # -- recipes ---------------------------------------------------------------------------------
    @friendly
    def recipe_files(self, state):
        """The editor's recipe as a JSON file and as a PNG that carries it."""
        rec = self._current(state)
        e = self.reg.get(rec.model)
        img = e.pipe.decode(np.asarray(rec.z, np.float32)[None], None if rec.label is None else [rec.label]).images[0]
        stem = f"{rec.model}-{rec.source}" + (f"-seed{rec.seed}" if rec.seed is not None else "")
        j = self._write((rec.to_json(indent=2) + "\n").encode("utf-8"), f"{stem}.json")
        p = self._write(recipes.png_bytes(img, rec), f"{stem}.png")
        return [j, p]

    @friendly
    def restore(self, file, state):
        """A recipe .json (or a .png the studio saved) -> the exact image, in the editor."""
        if not file:
            raise ValueError("drop a recipe .json or a studio .png first")
        rec = recipes.read(file)
        if rec.model not in self.reg.image_models():
            raise ValueError(f"this recipe is for model {rec.model!r}, which this studio does not have; "
                             f"available: {', '.join(self.reg.image_models()) or 'none'}")
        e = self.reg.get(rec.model)
        note = ""
        if rec.weights_hash and rec.weights_hash != e.weights_hash:
            note = (f"Note: the recipe was made with weights {rec.weights_hash[:8]}; {e.name} now has "
                    f"{e.weights_hash[:8]}, so the picture may differ.")
        return self._open(rec, state, note, keep_offsets=True)
