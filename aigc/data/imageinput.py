"""Pictures people upload or draw: checked decoding, then preparation for a model.

`open_image` refuses what is not a usable picture with a message a person can act on (not an
image, truncated, too large a declared size, too small) and handles the awkward-but-valid ones
(transparency, CMYK, 16-bit, palettes, animation), saying what it did in `notes`. `prepare` turns
the picture into what a 28x28 model was trained on: grey, light-on-dark, cropped to its content,
resized and centred the way MNIST (digits: 20x20 box centred by mass) or Fashion-MNIST (objects:
the longer side fills the frame) were made.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000          # declared width x height; larger is refused before decoding
MIN_SIDE = 8
FORMATS = {"PNG", "JPEG", "MPO", "GIF", "BMP", "WEBP", "TIFF", "PPM", "TGA", "ICO"}


class ImageInputError(ValueError):
    """A picture that cannot be used; the message says why."""


@dataclass
class Prepared:
    image: np.ndarray                        # uint8 H x W x C, what the model sees
    notes: list[str] = field(default_factory=list)

    def float_tensor(self):
        import torch

        return torch.from_numpy(self.image.copy()).permute(2, 0, 1)[None].float().div_(255.0)


def _read(source) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        p = Path(source)
        if not p.is_file():
            raise ImageInputError("no file was received")
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageInputError(f"the file is {size / 2**20:.1f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB")
        data = p.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        raise ImageInputError(f"the file is {len(data) / 2**20:.1f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB")
    if not data:
        raise ImageInputError("the file is empty")
    return data


def open_image(source) -> tuple[Image.Image, list[str]]:
    """Decode an uploaded picture (path or bytes) safely -> (a fully loaded single-frame image, notes)."""
    data = _read(source)
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageInputError(f"the picture declares more than {MAX_PIXELS:,} pixels; "
                              "that is too large to open safely") from None
    except UnidentifiedImageError:
        raise ImageInputError("this is not a picture (the file is not in an image format: "
                              "use PNG, JPEG, GIF, BMP or WEBP)") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageInputError(f"the picture could not be read ({e})") from None
    fmt = im.format or "?"
    if fmt not in FORMATS:
        raise ImageInputError(f"{fmt} files are not accepted; use PNG, JPEG, GIF, BMP or WEBP")
    w, h = im.size
    if w * h > MAX_PIXELS:
        raise ImageInputError(f"the picture declares {w} x {h} pixels; the limit is {MAX_PIXELS:,} pixels")
    if min(w, h) < MIN_SIDE:
        raise ImageInputError(f"the picture is only {w} x {h} pixels; it needs at least {MIN_SIDE} a side")
    if getattr(im, "is_animated", False):
        notes.append(f"animated {fmt}: the first frame is used")
        im.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im.load()
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombWarning) as e:
        raise ImageInputError(f"the picture is damaged or truncated and could not be decoded ({e})") from None
    if im.mode not in ("L", "RGB"):
        notes.append(f"{im.mode} picture converted")
    return im, notes


def _alpha_background(rgb: np.ndarray, alpha: np.ndarray) -> tuple[float, str]:
    """Transparent parts become white behind dark ink, black behind light ink."""
    solid = alpha > 0.5
    luma = rgb.mean(-1) if rgb.ndim == 3 else rgb
    ink = float(luma[solid].mean()) if solid.any() else 0.0
    return (1.0, "white") if ink < 0.5 else (0.0, "black")


def to_float(im: Image.Image, channels: int = 1) -> tuple[np.ndarray, list[str]]:
    """Any PIL mode -> float32 H x W x channels in [0, 1]; transparency flattened."""
    notes: list[str] = []
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        if mode.startswith("I;16"):
            a = a / 65535.0
        else:
            lo, hi = float(np.min(a)), float(np.max(a))
            a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        notes.append("high bit-depth picture scaled to 0..1")
        g = a.astype(np.float32)[..., None]
        return (np.repeat(g, 3, -1) if channels == 3 else g), notes
    if mode == "CMYK":
        im = im.convert("RGB")
        notes.append("CMYK converted to RGB")
    if mode in ("P", "PA"):
        im = im.convert("RGBA")
    if mode == "1":
        im = im.convert("L")
    if im.mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
    arr = np.asarray(im, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[..., None]
    if im.mode in ("LA", "RGBA"):
        color, alpha = arr[..., :-1], arr[..., -1:]
        if alpha.min() < 0.999:
            bg, what = _alpha_background(color, alpha[..., 0])
            color = color * alpha + bg * (1.0 - alpha)
            notes.append(f"transparent background filled with {what}")
        arr = color
    if channels == 1 and arr.shape[-1] == 3:
        arr = (arr @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    elif channels == 3 and arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, -1)
    return np.ascontiguousarray(arr, dtype=np.float32), notes


def _border(g: np.ndarray) -> np.ndarray:
    h, w = g.shape
    b = max(1, min(h, w) // 20)
    return np.concatenate([g[:b].ravel(), g[-b:].ravel(), g[:, :b].ravel(), g[:, -b:].ravel()])


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    im = Image.fromarray(np.clip(a * 255.0, 0, 255).astype(np.uint8))
    return np.asarray(im.resize((max(1, w), max(1, h)), Image.LANCZOS), dtype=np.float32) / 255.0


def prepare(im: Image.Image, resolution: int = 28, channels: int = 1, style: str = "digit") -> Prepared:
    """A picture -> the model's input format. `style`: 'digit' (MNIST: content scaled into a
    20/28 box and centred by its centre of mass) or 'object' (Fashion-MNIST: fills the frame)."""
    arr, notes = to_float(im, channels)
    if channels == 3:
        sq = ImageOps.fit(Image.fromarray((arr * 255).astype(np.uint8)), (resolution, resolution), Image.LANCZOS)
        return Prepared(np.asarray(sq, np.uint8).reshape(resolution, resolution, 3), notes + ["centre-cropped to a square"])
    g = arr[..., 0]
    bg = float(np.median(_border(g)))
    if bg > 0.5:
        g = 1.0 - g
        bg = 1.0 - bg
        notes.append("dark-on-light picture inverted to light-on-dark, like the training images")
    g = np.clip((g - bg) / max(1e-3, 1.0 - bg), 0.0, 1.0)
    peak = float(g.max())
    if peak < 0.08:
        raise ImageInputError("the picture is blank: nothing stands out from the background")
    g = g / peak
    ys, xs = np.nonzero(g > 0.2)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    g = g[y0:y1, x0:x1]
    h, w = g.shape
    box = resolution * 20 / 28 if style == "digit" else resolution
    s = box / max(h, w)
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    small = _resize(g, nw, nh)
    canvas = np.zeros((resolution, resolution), np.float32)
    if style == "digit":
        tot = small.sum()
        cy, cx = ((np.arange(nh)[:, None] * small).sum() / tot, (np.arange(nw)[None] * small).sum() / tot) \
            if tot > 0 else (nh / 2, nw / 2)
        oy = int(round(resolution / 2 - cy - 0.5))
        ox = int(round(resolution / 2 - cx - 0.5))
    else:
        oy, ox = (resolution - nh) // 2, (resolution - nw) // 2
    oy = min(max(oy, 0), resolution - nh)
    ox = min(max(ox, 0), resolution - nw)
    canvas[oy:oy + nh, ox:ox + nw] = small
    notes.append(f"cropped to content and resized to {resolution} x {resolution}")
    out = np.clip(canvas * 255.0 + 0.5, 0, 255).astype(np.uint8)[..., None]
    return Prepared(out, notes)


def style_for(dataset: str | None) -> str:
    return "object" if dataset and "fashion" in str(dataset) else "digit"


def load_and_prepare(source, resolution: int = 28, channels: int = 1, dataset: str | None = None) -> Prepared:
    """Checked decoding then preparation, in one call (what an upload goes through)."""
    im, notes = open_image(source)
    p = prepare(im, resolution, channels, style_for(dataset))
    p.notes = notes + p.notes
    return p


def from_array(arr: np.ndarray, resolution: int = 28, channels: int = 1, dataset: str | None = None) -> Prepared:
    """A drawing from a sketchpad (uint8 H x W, H x W x 3 or H x W x 4) -> prepared input."""
    a = np.asarray(arr)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (1, 3, 4)):
        raise ImageInputError("the drawing is not an 8-bit picture")
    if min(a.shape[:2]) < MIN_SIDE:
        raise ImageInputError(f"the drawing is only {a.shape[1]} x {a.shape[0]} pixels")
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    im = Image.fromarray(a)
    return prepare(im, resolution, channels, style_for(dataset))
