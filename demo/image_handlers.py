"""Event handlers of the Image tab: argument checking, calls into aigc, and shaping the results for
the components. No model math and no file formats live here (see aigc.latent, aigc.pipelines.recipes,
aigc.data.imageinput, aigc.latent.projection, aigc.eval.nearest). The editor's handlers are in
demo.image_editor.

Every handler takes the per-session state (a dict held in gr.State) and returns the new one;
nothing about a user is kept anywhere else. Bad input raises gr.Error with a message a person
can act on; the server goes on serving. A model someone else owns and has not shared is
answered like an unknown model.
"""
from __future__ import annotations

import logging
import math
import secrets
import time

import gradio as gr
import numpy as np

from aigc.data import imageinput
from aigc.data.grid import GridLayout, grid_picture
from aigc.limits import FRAMES_MAX, GRID_MAX, IMAGE_TEMP_MAX, SEED_MAX, check_float, check_int
from aigc.pipelines import recipes
from aigc.pipelines.recipes import Recipe, png_image
from demo.common import friendly
from demo.image_clusters import ANY, VADE_TEMP_HELP, ClusterViews, cluster_arg, cluster_choices, is_clustered
from demo.image_editor import DIM_RANGE, DIR_RANGE, EDITOR_PX, N_DIM, N_DIR, THUMB_PX, new_state

log = logging.getLogger("aigc.demo")

SOURCES = ("two seeds", "A and B")
TRUNCATION_HELP = ("GANs: how far from the centre the latents are drawn (scale of z). Lower: more typical, "
                   "cleaner, less varied pictures; higher: more varied, more odd ones.")
GRID_PX = 512         # the sample grid's width on screen (the 128 px tiles the gallery had); tiles enlarge by a whole factor
PRIOR_TEMP_HELP = ("VAEs: the spread of the latents drawn from the prior. Lower: smoother, more average "
                   "pictures; 1: as trained; higher: more varied and more broken ones.")

__all__ = ["ANY", "DIM_RANGE", "DIR_RANGE", "N_DIM", "N_DIR", "SOURCES", "Studio", "new_state",
           "text_model_choices"]


# -- argument checks -------------------------------------------------------------------------------
def _label_arg(label):
    return None if label in (None, "", ANY) else label


def text_model_choices(registry, current=None, owner=None):
    """A text-model picker's update after looking for new user models: every usable text model
    (the weights folder's and the user models'), keeping `current` when it is still there.
    For the Text tab: wire it to the picker's focus and return it in `model_pickers` (see
    demo.app.build_demo); load a picked user model with `registry.text_pipeline(name)`."""
    if hasattr(registry, "refresh"):
        registry.refresh()
    names = registry.text_choices(owner)
    return gr.update(choices=names, value=current if current in names else (names[0] if names else None))


class Studio(ClusterViews):
    """All handlers of the Image tab, bound to one registry of models."""

    # -- model picker ----------------------------------------------------------------------------
    def model_choices(self, current, seen, state=None, request: gr.Request = None):
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
        models = self.reg.image_models(self._who(state, request))
        value = current if current in models else (models[0] if models else None)
        return gr.update(choices=models, value=value), v

    @friendly
    def model_controls(self, model, state=None, request: gr.Request = None):
        """Class (or, for a VaDE, cluster) picker, temperature label and a short description for
        the chosen model."""
        e = self.reg.entry(model, self._who(state, request))                  # config only: works while the weights load
        if is_clustered(e.kind):
            weights = e.pipe.cluster_weights() if e.ready else None           # shares once the weights are in
            n = int(e.config.get("n_clusters") or 0)
            label = gr.update(choices=cluster_choices(n, weights), value=ANY, visible=True, label="Cluster")
        else:
            choices = [("any class (cycles)", ANY)] + [(n, n) for n in e.class_names]
            label = gr.update(choices=choices, value=ANY, visible=e.conditional, label="Class")
        from demo.models_tab import metric_items

        is_gan = e.kind not in ("vae", "vade")
        helps = TRUNCATION_HELP if is_gan else VADE_TEMP_HELP if is_clustered(e.kind) else PRIOR_TEMP_HELP
        temp = gr.update(label="Truncation (scale of z)" if is_gan else "Prior temperature", info=helps)
        metrics = ", ".join(f"{k} {v}" for k, v in metric_items(e.metrics)[:6]) or "not evaluated yet"
        n = len(e.class_names)
        k = int(e.config.get("n_clusters") or 0) if is_clustered(e.kind) else 0
        info = (f"`{e.kind}` on {e.dataset or 'unknown data'} · {e.latent_dim}-d latent"
                f"{' · ' + str(n) + ' classes' if n else ''}{' · ' + str(k) + ' clusters' if k else ''} · {metrics}")
        return label, temp, info

    def picker_for(self, state, request: gr.Request = None):
        """The Model picker and its controls for the model in the editor (after a restore)."""
        cur = (state or {}).get("current") or {}
        name = cur.get("model")
        try:
            label, temp, info = self.model_controls(name, state, request)
        except gr.Error:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        names = self.reg.entry(name, self._who(state, request)).class_names
        lab = cur.get("label")
        if isinstance(lab, int) and 0 <= lab < len(names):
            label = {**label, "value": names[lab]}
        return gr.update(value=name), label, temp, info

    # -- sampling --------------------------------------------------------------------------------
    @friendly
    def sample(self, model, label, seed, grid, temperature, state, request: gr.Request = None):
        """A grid of samples as one picture (one file per render, not one per sample: that was most
        of the server's work under load); a click on a tile opens that sample (tile_at)."""
        e = self._get(model, state, request)
        pipe = e.pipe
        seed = check_int(seed, 0, SEED_MAX, "seed")
        side = check_int(grid, 1, GRID_MAX, "grid size")
        temp = check_float(temperature, 0.0, IMAGE_TEMP_MAX, "temperature")
        cluster = cluster_arg(pipe, label) if pipe.clustered else None      # a VaDE's picker holds clusters
        if not pipe.clustered:
            pipe.label_index(_label_arg(label))            # a clear message for a class the model lacks
        s = pipe(side * side, seed=seed, label=None if pipe.clustered else _label_arg(label), temperature=temp,
                 cluster=cluster)
        samples, labels = [], []
        for i in range(len(s.images)):
            lab = None if s.labels is None else int(s.labels[i])
            samples.append(Recipe(model=e.name, weights_hash=e.weights_hash, z=s.latents[i].tolist(),
                                  label=lab, source="sample", seed=seed, index=i, temperature=temp).to_dict())
            labels.append(lab)
        picture, layout = grid_picture(s.images, side, GRID_PX)
        state = {**(state or new_state()), "samples": samples, "grid": layout.to_dict()}
        what = f" · cluster {cluster}" if cluster is not None else ""
        if any(lab is not None for lab in labels):
            names = [self._class_name(pipe, lab) for lab in labels]
            what += (f" · class {names[0]}" if len(set(names)) == 1 else
                     " · classes, row by row: " + " ".join(str(n) for n in names))
        info = (f"**{e.name}** · seed {seed} · {len(samples)} samples{what}. "
                "Click one to open it in the editor.")
        return picture, info, state

    def open_tile(self, state, x, y, request: gr.Request = None):
        """The sample under pixel (x, y) of the grid picture, opened in the editor."""
        g = (state or {}).get("grid")
        index = GridLayout(**g).tile_at(x, y) if isinstance(g, dict) else None
        if index is None:
            raise gr.Error("click on one of the samples of the grid")
        return index, *self.open_sample(state, index, request)

    @friendly
    def dice(self, model, label, grid, temperature, state, request: gr.Request = None):
        """A fresh random seed, and its samples."""
        seed = secrets.randbelow(SEED_MAX + 1)
        picture, info, state = self.sample(model, label, seed, grid, temperature, state, request)
        return seed, picture, info, state

    # -- memorisation check ---------------------------------------------------------------------
    @friendly
    def nearest(self, state, request: gr.Request = None):
        """The training image nearest to the editor's image, and how near it is (not for a model
        someone else made: its training pictures are theirs)."""
        from aigc.eval.nearest import index_for_model

        rec = self._current(state)
        e = self._get(rec.model, state, request)
        if e.owned_by_other(self._who(state, request)):
            raise ValueError(f"{e.name} was trained on someone else's pictures; only its owner can "
                             "see its nearest training image")
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
    def set_endpoint(self, which, state, request=None):
        rec = self._current(state)
        e = self._get(rec.model, state, request)
        img = e.pipe.decode(np.asarray(rec.z, np.float32)[None], None if rec.label is None else [rec.label]).images[0]
        return png_image(img, rec, THUMB_PX), {**state, which: rec.to_dict()}

    def set_a(self, state, request: gr.Request = None):
        return self.set_endpoint("a", state, request)

    def set_b(self, state, request: gr.Request = None):
        return self.set_endpoint("b", state, request)

    @friendly
    def interpolate(self, source, model, label, seed_a, seed_b, frames, method, temperature, state,
                    request: gr.Request = None):
        """Frames from A to B and an animated GIF. Source 'two seeds': the first sample of each
        seed; 'A and B': the two images picked in the editor."""
        frames = check_int(frames, 2, FRAMES_MAX, "frames")
        if method not in ("slerp", "lerp"):
            raise ValueError("method must be 'slerp' or 'lerp'")
        note = ""
        state = state or new_state()
        if source == "two seeds":
            e = self._get(model, state, request)
            pipe = e.pipe
            temp = check_float(temperature, 0.0, IMAGE_TEMP_MAX, "temperature")
            sa, sb = check_int(seed_a, 0, SEED_MAX, "seed A"), check_int(seed_b, 0, SEED_MAX, "seed B")
            cluster = cluster_arg(pipe, label) if pipe.clustered else None
            za, zb = pipe.latents(1, sa, cluster, temp)[0], pipe.latents(1, sb, cluster, temp)[0]
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
            e = self._get(ra.model, state, request)
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
        return items, gif, gif, info, {**state, "strip": [
            Recipe(model=e.name, weights_hash=e.weights_hash, z=s.latents[i].tolist(), label=lab,
                   source="interpolate", index=i).to_dict() for i in range(len(s.images))]}

    @friendly
    def open_frame(self, state, index, request: gr.Request = None):
        """Open frame number `index` of the last interpolation strip in the editor."""
        return self._open_saved(state, "strip", index, "frame number",
                                "interpolate first, then pick one of its frames", request)

    # -- encoding your own picture --------------------------------------------------------------
    def _encode(self, e, prep, label, state, progress, request=None):
        pipe = e.pipe
        notes = list(prep.notes)
        if e.kind in ("vae", "vade"):
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
        post = None if s.posterior is None else [float(v) for v in s.posterior[0]]
        if post:
            best = int(np.argmax(post))
            cls += f" · most likely cluster {best} ({100 * post[best]:.1f}%)"
        notes_md = (f"Reconstruction by {how}{cls}: error **{mse:.4f}** MSE per pixel ({psnr:.1f} dB PSNR). "
                    "Edit it with the sliders above." + ("\n\nPrepared input: " + "; ".join(notes) if notes else ""))
        opened = list(self._open(rec, state, request=request))
        opened[-1] = {**opened[-1], "posterior": post}           # shown beside the result (posterior_view)
        return (png_image(prep.image, None, EDITOR_PX // 2 * 1), png_image(recon, rec, EDITOR_PX // 2 * 1),
                notes_md, *opened)

    @friendly
    def encode(self, picture, model, label, state, progress=gr.Progress(), request: gr.Request = None):
        """Upload -> checked decoding -> prepared input -> latent (VAE encode / GAN projection)."""
        if not picture:
            raise ValueError("upload a picture first")
        e = self._get(model, state, request)
        c, h, _ = e.pipe.model.image_shape
        prep = imageinput.load_and_prepare(picture, h, c, e.dataset)
        return self._encode(e, prep, label, state, progress, request)

    @friendly
    def encode_drawing(self, drawing, model, label, state, progress=gr.Progress(), request: gr.Request = None):
        """A sketchpad drawing -> the same path as an upload."""
        comp = drawing.get("composite") if isinstance(drawing, dict) else drawing
        if comp is None:
            raise ValueError("draw something first")
        e = self._get(model, state, request)
        c, h, _ = e.pipe.model.image_shape
        arr = np.asarray(comp)
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        prep = imageinput.from_array(arr, h, c, e.dataset)
        return self._encode(e, prep, label, state, progress, request)

    # -- recipes ---------------------------------------------------------------------------------
    @friendly
    def recipe_files(self, state, request: gr.Request = None):
        """The editor's recipe as a JSON file and as a PNG that carries it."""
        rec = self._current(state)
        e = self._get(rec.model, state, request)
        img = e.pipe.decode(np.asarray(rec.z, np.float32)[None], None if rec.label is None else [rec.label]).images[0]
        stem = f"{rec.model}-{rec.source}" + (f"-seed{rec.seed}" if rec.seed is not None else "")
        j = self._write((rec.to_json(indent=2) + "\n").encode("utf-8"), f"{stem}.json")
        p = self._write(recipes.png_bytes(img, rec), f"{stem}.png")
        return [j, p]

    @friendly
    def restore(self, file, state, request: gr.Request = None):
        """A recipe .json (or a .png the studio saved) -> the exact image, in the editor."""
        if not file:
            raise ValueError("drop a recipe .json or a studio .png first")
        rec = recipes.read(file)
        have = self.reg.image_models(self._who(state, request))
        if rec.model not in have:
            raise ValueError(f"this recipe is for model {rec.model!r}, which this studio does not have; "
                             f"available: {', '.join(have) or 'none'}")
        e = self._get(rec.model, state, request)
        note = ""
        if rec.weights_hash and rec.weights_hash != e.weights_hash:
            note = (f"Note: the recipe was made with weights {rec.weights_hash[:8]}; {e.name} now has "
                    f"{e.weights_hash[:8]}, so the picture may differ.")
        return self._open(rec, state, note, keep_offsets=True, request=request)
