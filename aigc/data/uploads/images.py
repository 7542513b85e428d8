"""An image zip -> training images: headers first (per-image and per-upload pixel budgets, before
anything is decoded), then decoding, grey or colour, square crops, labels from class folders,
duplicates removed, the report and a preview of exactly what the model will see.

Members that are merely unusable (not an image, truncated, garbage, too many pixels) are skipped
and counted in the report with their reasons; everything else is an UploadError.
"""
from __future__ import annotations

import io
import re
import warnings
import zipfile
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps

from aigc.data.images import ImageData
from aigc.data.uploads.archive import check_archive, read_member, read_prefix, skip_silently
from aigc.data.uploads.budgets import DEFAULT_LIMITS, Deadline, UploadError, UploadLimits, check_upload_size
from aigc.data.uploads.dedup import duplicate_of, find_duplicates
from aigc.data.uploads.report import recommend_images, size_histograms, write_report

RESOLUTIONS = (28, 32, 64)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
IMAGE_FORMATS = {"PNG", "JPEG", "WEBP", "BMP"}
GREY_TOLERANCE = 8            # lossy codecs (JPEG, WebP) store grey pictures with small chroma noise
HEADER_BYTES = 64 * 2 ** 10   # enough for the size of nearly every PNG / JPEG / WebP / BMP
_CORRUPT = "corrupt in the zip (bad CRC, or not the size it declares)"


@dataclass
class PreparedImages:
    data: ImageData
    report: dict
    preview: Image.Image                         # exactly what the model will see (first 64)
    removed: ImageData | None = None             # the duplicates taken out (None when `balance` reordered data)
    removed_of: np.ndarray | None = None         # for each removed image, the index in data.images it duplicates


class _Skips:
    """Members skipped, counted by reason, with one example name each."""

    def __init__(self):
        self.counts: Counter = Counter()
        self.examples: dict[str, str] = {}

    def add(self, reason: str, member: str) -> None:
        self.counts[reason] += 1
        self.examples.setdefault(reason, member)

    def too_few(self, n: int, what: str, label: str, limits: UploadLimits):
        reasons = "; ".join(f"{k}: {v} (e.g. {self.examples[k]!r})" for k, v in self.counts.most_common(3))
        raise UploadError(f"{label}: only {n} usable images {what}(need at least {limits.min_images})"
                          + (f"; skipped {reasons}" if reasons else ""))


# -- decoding ----------------------------------------------------------------------------------------
def _open(raw: bytes, limits: UploadLimits) -> tuple[Image.Image | None, str, tuple[int, int]]:
    """Pillow reads only the header here: (image, '' or why it is skipped, (w, h)). The caller
    turns DecompressionBombWarning into an error."""
    try:
        im = Image.open(io.BytesIO(raw))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return None, f"declares too many pixels ({e.__class__.__name__})", (0, 0)
    except Exception:  # noqa: BLE001 - anything Pillow cannot identify
        return None, "not a readable image", (0, 0)
    size = im.size
    if im.format not in IMAGE_FORMATS:
        return None, f"unsupported image format {im.format}", size
    if size[0] * size[1] > limits.max_pixels:
        return None, (f"declares too many pixels ({size[0]}x{size[1]} > the per-image pixel budget of "
                      f"{limits.max_pixels:,})"), size
    if size[0] < 1 or size[1] < 1:
        return None, "empty image", size
    return im, "", size


def _to_rgb(im: Image.Image) -> np.ndarray:
    im.load()
    im = ImageOps.exif_transpose(im)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba)
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo) * 255
        im = Image.fromarray(a.round().astype(np.uint8), "L")
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _decode(raw: bytes, limits: UploadLimits) -> tuple[np.ndarray | None, str, tuple[int, int]]:
    """bytes -> (RGB uint8 H x W x 3, '' or the reason it was skipped, original (w, h))."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        im, why, size = _open(raw, limits)
        if im is None:
            return None, why, size
        try:
            rgb = _to_rgb(im)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            return None, f"declares too many pixels ({e.__class__.__name__})", size
        except Exception:  # noqa: BLE001 - truncated or corrupt data
            return None, "truncated or corrupt image data", size
    return rgb, "", size


def _header_size(raw: bytes, limits: UploadLimits) -> tuple[tuple[int, int] | None, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        im, why, size = _open(raw, limits)
    return (size, "") if im is not None else (None, why)


def _is_grey(rgb: np.ndarray) -> bool:
    """Grey when no pixel's channels differ by more than GREY_TOLERANCE."""
    a = rgb.astype(np.int16)
    return bool(np.abs(a[..., 0] - a[..., 1]).max() <= GREY_TOLERANCE
                and np.abs(a[..., 1] - a[..., 2]).max() <= GREY_TOLERANCE)


def _square(rgb: np.ndarray, resolution: int) -> np.ndarray:
    """Centre-crop to a square and resize to resolution x resolution (RGB uint8)."""
    h, w = rgb.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    im = Image.fromarray(rgb[top:top + s, left:left + s])
    if s != resolution:
        im = im.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.uint8)


# -- reading the zip -----------------------------------------------------------------------------------
def _guarded(read, *args) -> tuple[bytes | None, str]:
    """(bytes, '') or (None, why the member is unreadable); an UploadError refuses the upload."""
    try:
        return read(*args), ""
    except UploadError:
        raise
    except zipfile.BadZipFile:
        return None, _CORRUPT
    except (OSError, EOFError, ValueError, zlib.error) as e:
        return None, f"unreadable in the zip ({type(e).__name__})"


def _member_size(z, info, limits: UploadLimits, label: str) -> tuple[tuple[int, int] | None, str]:
    """The picture's (w, h) from its header: the first HEADER_BYTES, the whole member only when
    the header lies further in (large EXIF blocks)."""
    head, why = _guarded(read_prefix, z, info, HEADER_BYTES)
    if head is None:
        return None, why
    size, why = _header_size(head, limits)
    if size is None and why == "not a readable image" and len(head) < info.file_size:
        raw, why = _guarded(read_member, z, info, [limits.max_total_uncompressed], limits, label)
        if raw is None:
            return None, why
        size, why = _header_size(raw, limits)
    return size, why


def _scan(z, files, limits: UploadLimits, label: str, skips: _Skips, deadline: Deadline) -> list[zipfile.ZipInfo]:
    """The members worth decoding, after the per-image and per-upload pixel budgets (headers only)."""
    out, total = [], 0
    for info in files:
        deadline.check()
        member = info.filename
        suffix = PurePosixPath(member).suffix.lower()
        if skip_silently(member):
            skips.add("system file (__MACOSX, .DS_Store, ...)", member)
        elif suffix not in IMAGE_SUFFIXES:
            skips.add(f"not an image file ({suffix or 'no extension'})", member)
        else:
            size, why = _member_size(z, info, limits, label)
            if size is None:
                skips.add(why, member)
                continue
            total += size[0] * size[1]
            out.append(info)
    if total > limits.max_total_pixels:
        raise UploadError(f"{label}: its {len(out)} pictures declare {total:,} pixels in all; the pixel budget "
                          f"of one upload is {limits.max_total_pixels:,}: make them smaller before zipping "
                          "(the model sees at most 64x64)")
    return out


def _read_images(path: Path, size: int, resolution: int, limits: UploadLimits, label: str,
                 skips: _Skips, deadline: Deadline) -> list[tuple]:
    """[(path parts, square RGB at `resolution`, original (w, h), grey?)] of the usable members."""
    decoded = []
    with open(path, "rb") as fp:
        try:
            z = zipfile.ZipFile(fp)
        except (zipfile.BadZipFile, OSError) as e:
            raise UploadError(f"{label} is not a readable zip file ({e})") from None
        with z:
            files = check_archive(z, fp, size, limits, label)
            budget = [limits.max_total_uncompressed]
            for info in _scan(z, files, limits, label, skips, deadline):
                deadline.check()
                raw, why = _guarded(read_member, z, info, budget, limits, label)
                rgb, why, orig = _decode(raw, limits) if raw is not None else (None, why, (0, 0))
                del raw
                if rgb is None:
                    skips.add(why, info.filename)
                    continue
                parts = tuple(p for p in re.split(r"[\\/]", info.filename) if p)
                decoded.append((parts, _square(rgb, resolution), orig, _is_grey(rgb)))
    return decoded


# -- labels, duplicates, balance -----------------------------------------------------------------------
def _class_of(parts: tuple[str, ...], depth: int) -> str | None:
    """The class folder of a member whose path (after `depth` common folders) has a folder."""
    rest = parts[depth:]
    return rest[0] if len(rest) > 1 else None


def _labels(all_parts: list[tuple[str, ...]]) -> tuple[list[str], np.ndarray | None, str]:
    """(class names, labels or None, a note when folders were not usable as labels): one folder per
    class, below any folders every image shares."""
    depth = 0
    while all(len(p) > depth + 1 for p in all_parts) and len({p[depth] for p in all_parts}) == 1:
        depth += 1
    classes_raw = [_class_of(p, depth) for p in all_parts]
    if all(c is not None for c in classes_raw) and len(set(classes_raw)) >= 2:
        class_names = sorted(set(classes_raw))
        return class_names, np.array([class_names.index(c) for c in classes_raw], np.int64), ""
    note = ""
    if any(c is not None for c in classes_raw) and not all(c is not None for c in classes_raw):
        note = "some images sit outside class folders: no labels used"
    elif len(set(classes_raw) - {None}) == 1:
        note = "only one class folder: no labels used"
    return [], None, note


def _stack(decoded: list[tuple]) -> tuple[np.ndarray, int]:
    """(N x H x W x C uint8: grey (C=1) when every input is grey, else RGB; number of grey inputs)."""
    n_grey = sum(1 for *_, g in decoded if g)
    rgb_all = np.stack([im for _, im, _, _ in decoded])
    if n_grey < len(decoded):
        return rgb_all, n_grey
    luma = rgb_all.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None], n_grey


def _balance(images: np.ndarray, labels: np.ndarray, class_names: list[str]):
    """Repeat the smaller classes' images cyclically until every class has as many as the largest."""
    target = max(int((labels == i).sum()) for i in range(len(class_names)))
    order = []
    for i in range(len(class_names)):
        order.extend(np.resize(np.flatnonzero(labels == i), target).tolist())
    order = np.array(order, np.int64)
    return images[order], labels[order], {c: target for c in class_names}


def _preview_pick(data: ImageData, n: int = 64) -> np.ndarray:
    """Up to n training images, classes interleaved so every class shows."""
    if data.labels is None or not data.class_names:
        return data.images[:n]
    per = [list(np.flatnonzero(data.labels == i)) for i in range(len(data.class_names))]
    out = []
    while len(out) < min(n, len(data)) and any(per):
        for p in per:
            if p and len(out) < n:
                out.append(p.pop(0))
    return data.images[np.array(out, np.int64)]


# -- the whole preparation -----------------------------------------------------------------------------
def prepare_image_zip(path: str | Path, job_dir: str | Path | None = None, *, resolution: int = 32,
                      balance: bool = False, limits: UploadLimits = DEFAULT_LIMITS,
                      name: str | None = None) -> PreparedImages:
    """Check and prepare an image zip -> PreparedImages (ImageData, report, preview grid).

    Grey if every usable image is grey, else RGB; centre-cropped to a square and resized to
    `resolution` (28, 32 or 64); exact and near duplicates removed; `balance` repeats images of
    the smaller classes until every class has as many as the largest (the report says so). With
    `job_dir`, report.json and preview.png are written there (nothing anywhere else)."""
    from aigc.data.grid import make_grid

    path = Path(path)
    if resolution not in RESOLUTIONS:
        raise UploadError(f"resolution must be one of {', '.join(map(str, RESOLUTIONS))}, got {resolution}")
    label = path.name
    deadline = Deadline(limits.max_check_seconds, label)
    size = check_upload_size(path, limits.max_upload_bytes)
    if not zipfile.is_zipfile(path):
        raise UploadError(f"{label} is not a zip file")
    skips = _Skips()
    decoded = _read_images(path, size, resolution, limits, label, skips, deadline)
    if len(decoded) < limits.min_images:
        skips.too_few(len(decoded), "", label, limits)
    class_names, labels, label_note = _labels([p for p, *_ in decoded])
    images, n_grey = _stack(decoded)
    deadline.check()
    keep, n_exact, n_near = find_duplicates(images, limits)
    removed = ImageData(name=f"{name or f'upload:{path.stem}'}:duplicates", images=images[~keep],
                        labels=labels[~keep] if labels is not None else None, class_names=class_names)
    removed_of = duplicate_of(images, keep)
    images = images[keep]
    labels = labels[keep] if labels is not None else None
    if len(images) < limits.min_images:
        skips.too_few(len(images), f"after removing {n_exact} exact and {n_near} near duplicates ", label, limits)
    class_counts = ({c: int((labels == i).sum()) for i, c in enumerate(class_names)} if labels is not None else {})
    empty = [c for c, k in class_counts.items() if k == 0]
    if empty:
        raise UploadError(f"{label}: class folder(s) {', '.join(empty)} have no usable images left")
    balanced = None
    if balance and labels is not None:
        images, labels, balanced = _balance(images, labels, class_names)
    data = ImageData(name=name or f"upload:{path.stem}", images=np.ascontiguousarray(images),
                     labels=labels, class_names=class_names)
    report = _report(path, size, resolution, data, decoded, int(keep.sum()), skips, (n_exact, n_near),
                     n_grey, class_counts, balanced, label_note, limits, balance)
    preview = make_grid(_preview_pick(data), nrow=8)
    if job_dir is not None:
        write_report(job_dir, report, preview)
    if balanced is not None:
        removed, removed_of = None, None
    return PreparedImages(data, report, preview, removed, removed_of)


def _report(path, size, resolution, data, decoded, n_kept, skips, dups, n_grey, class_counts, balanced,
            label_note, limits, balance) -> dict:
    n_decoded = len(decoded)
    ratio = (max(class_counts.values()) / max(1, min(class_counts.values()))) if class_counts else None
    report = {
        "kind": "images",
        "file": path.name,
        "file_bytes": size,
        "resolution": resolution,
        "channels": data.shape[0],
        "mode": "grey" if n_grey == n_decoded else "rgb",
        "decoded": n_decoded,
        "kept": n_kept,
        "training_images": len(data),
        "skipped": sum(skips.counts.values()),
        "skipped_reasons": dict(skips.counts.most_common()),
        "skipped_examples": skips.examples,
        "duplicates": {"exact": dups[0], "near": dups[1]},
        "grey_inputs": n_grey,
        "colour_inputs": n_decoded - n_grey,
        **size_histograms([o for _, _, o, _ in decoded]),
        "classes": data.class_names,
        "class_counts": class_counts,
        "class_imbalance": None if ratio is None else round(ratio, 2),
        "balanced": balanced,
        "labels_note": label_note,
        "limits": asdict(limits),
    }
    rec = recommend_images(n_kept, resolution)
    if ratio is not None and ratio > 2 and not balance:
        rec += f"; classes are imbalanced ({ratio:.1f}x): consider balancing"
    report["recommendation"] = rec
    return report
