"""Recipes: everything needed to make an image again, exactly.

A recipe names the model (and the hash of its weights), the seed, class and temperature it was
sampled with, the latent it started from, the slider offsets applied, and the final latent that
was decoded. It travels as JSON, and inside the PNG of every output as a text chunk, so dropping
either back into the studio restores the same pixels.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from aigc import __version__
from aigc.limits import IMAGE_TEMP_MAX, LATENT_ABS_MAX, SEED_MAX

FORMAT = "aigc-recipe/1"
PNG_KEY = "aigc-recipe"
MAX_BYTES = 1 << 20
MAX_LATENT = 4096
SOURCES = ("sample", "edit", "encode", "project", "interpolate", "restore")


class RecipeError(ValueError):
    """A recipe that cannot be used; the message says why."""


@dataclass
class Recipe:
    model: str
    weights_hash: str
    z: list[float]                               # the latent that was decoded
    label: int | None = None
    source: str = "sample"
    seed: int | None = None
    index: int | None = None                     # position in the sampled batch
    temperature: float | None = None
    latent: list[float] | None = None            # the latent before slider offsets
    offsets: dict = field(default_factory=dict)  # {"directions": {name: value}, "dims": {"12": value}}
    directions: str | None = None               # fingerprint of the directions the offsets refer to
    format: str = FORMAT
    aigc_version: str = __version__

    def to_dict(self) -> dict:
        """What dataclasses.asdict gives, without its deep copy of every float (a 16-sample grid's
        recipes cost the server more than their render that way)."""
        d = dict(self.__dict__)
        for k in ("z", "latent"):
            if d[k] is not None:
                d[k] = list(d[k])
        d["offsets"] = {k: dict(v) if isinstance(v, dict) else v for k, v in self.offsets.items()}
        return d

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    @property
    def base(self) -> list[float]:
        return self.latent if self.latent is not None else self.z


def _floats(v, what: str) -> list[float]:
    if not isinstance(v, list) or not v:
        raise RecipeError(f"recipe: {what} must be a non-empty list of numbers")
    if len(v) > MAX_LATENT:
        raise RecipeError(f"recipe: {what} is implausibly long ({len(v)} numbers)")
    out = []
    for x in v:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise RecipeError(f"recipe: {what} must hold finite numbers only")
        if abs(x) > LATENT_ABS_MAX:
            raise RecipeError(f"recipe: {what} holds {x:g}; each value must be between "
                              f"-{LATENT_ABS_MAX:g} and {LATENT_ABS_MAX:g}")
        out.append(float(x))
    return out


def _opt_int(d: dict, key: str, lo: int = 0, hi: int = SEED_MAX):
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise RecipeError(f"recipe: {key} must be a whole number between {lo} and {hi}")
    return v


def from_dict(d) -> Recipe:
    if not isinstance(d, dict):
        raise RecipeError("recipe: expected a JSON object")
    fmt = d.get("format", FORMAT)
    if fmt != FORMAT:
        raise RecipeError(f"recipe: unknown format {fmt!r} (this studio reads {FORMAT})")
    model, wh = d.get("model"), d.get("weights_hash", "")
    if not isinstance(model, str) or not model or len(model) > 200:
        raise RecipeError("recipe: 'model' must name a model")
    if not isinstance(wh, str) or len(wh) > 128:
        raise RecipeError("recipe: 'weights_hash' must be text")
    z = _floats(d.get("z"), "z (the latent vector)")
    latent = None if d.get("latent") is None else _floats(d.get("latent"), "latent")
    if latent is not None and len(latent) != len(z):
        raise RecipeError("recipe: 'latent' and 'z' have different lengths")
    temp = d.get("temperature")
    if temp is not None and (isinstance(temp, bool) or not isinstance(temp, (int, float)) or not math.isfinite(temp)):
        raise RecipeError("recipe: temperature must be a number")
    if temp is not None and not 0 <= temp <= IMAGE_TEMP_MAX:
        raise RecipeError(f"recipe: temperature must be between 0 and {IMAGE_TEMP_MAX:g} (got {temp:g})")
    offsets = d.get("offsets") or {}
    if not isinstance(offsets, dict):
        raise RecipeError("recipe: offsets must be an object")
    clean = {}
    for group in ("directions", "dims"):
        g = offsets.get(group) or {}
        if not isinstance(g, dict) or len(g) > MAX_LATENT:
            raise RecipeError(f"recipe: offsets.{group} must be an object of numbers")
        for k, v in g.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise RecipeError(f"recipe: offsets.{group}.{k} must be a finite number")
            if abs(v) > LATENT_ABS_MAX:
                raise RecipeError(f"recipe: offsets.{group}.{str(k)[:40]} must be between "
                                  f"-{LATENT_ABS_MAX:g} and {LATENT_ABS_MAX:g}")
        clean[group] = {str(k): float(v) for k, v in g.items()}
    source = d.get("source", "sample")
    if source not in SOURCES:
        source = "sample"
    dirs = d.get("directions")
    return Recipe(model=model, weights_hash=wh, z=z, label=_opt_int(d, "label", 0, 100000),
                  source=source, seed=_opt_int(d, "seed"), index=_opt_int(d, "index", 0, 1 << 20),
                  temperature=None if temp is None else float(temp), latent=latent, offsets=clean,
                  directions=dirs if isinstance(dirs, str) else None,
                  aigc_version=str(d.get("aigc_version", "?"))[:40])


def from_json(text: str | bytes) -> Recipe:
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_BYTES:
            raise RecipeError("recipe: the file is too large to be a recipe")
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise RecipeError("recipe: the file is not UTF-8 text") from None
    if len(text) > MAX_BYTES:
        raise RecipeError("recipe: the text is too large to be a recipe")
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecipeError(f"recipe: not valid JSON ({e.msg} at line {e.lineno})") from None
    return from_dict(d)


def upscale(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 H x W x C -> nearest-neighbour enlargement by a whole factor to about `size` px."""
    f = max(1, int(size) // max(image.shape[0], image.shape[1]))
    return image if f == 1 else np.repeat(np.repeat(image, f, 0), f, 1)


def png_image(image: np.ndarray, recipe: Recipe | None, size: int = 0) -> Image.Image:
    """A PIL image (upscaled to `size` px if given) whose PNG carries the recipe: PIL keeps str
    entries of `info` as text chunks when saved with pnginfo (as Gradio does for PNG)."""
    if size:
        image = upscale(image, size)
    im = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    if recipe is not None:
        im.info[PNG_KEY] = recipe.to_json()
    return im


def png_bytes(image: np.ndarray, recipe: Recipe, size: int = 0) -> bytes:
    im = png_image(image, recipe, size)
    info = PngImagePlugin.PngInfo()
    info.add_text(PNG_KEY, recipe.to_json())
    buf = io.BytesIO()
    im.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def from_png(data: bytes) -> Recipe:
    from aigc.data.imageinput import ImageInputError, open_image

    try:
        im, _ = open_image(data)
    except ImageInputError as e:
        raise RecipeError(f"recipe: {e}") from None
    text = im.info.get(PNG_KEY) if im.format == "PNG" else None
    if not isinstance(text, str):
        raise RecipeError("recipe: this picture carries no aigc recipe (only PNGs saved by the studio do)")
    return from_json(text)


def read(source) -> Recipe:
    """A recipe from a .json or .png file (path or bytes), told apart by content, not name."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        p = Path(source)
        if not p.is_file():
            raise RecipeError("recipe: no file was received")
        if p.stat().st_size > 20 * MAX_BYTES:
            raise RecipeError("recipe: the file is too large")
        data = p.read_bytes()
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return from_png(data)
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head == b"{":
        return from_json(data)
    raise RecipeError("recipe: expected a recipe .json or a .png saved by the studio")


def latent_array(values: list[float], dim: int, what: str = "latent") -> np.ndarray:
    if len(values) != dim:
        raise RecipeError(f"recipe: the {what} has {len(values)} numbers but the model needs {dim}")
    return np.asarray(values, dtype=np.float32)
