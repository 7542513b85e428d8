"""Checked preparation of an uploaded dataset (the fine-tune issue, data half).

Two kinds of upload:

  images  a .zip of PNG / JPEG / WebP / BMP pictures, any sizes, grey or colour. One sub-folder
          per class gives labels (`cats/1.png`, `dogs/7.jpg`; a single folder wrapping them all is
          ignored). Result: an `ImageData` at the chosen resolution, ready for `train(opts, data=)`.
  text    a UTF-8 .txt file, or .jsonl with one {"text": ...} object per line. Result: the text,
          ready to be wrapped in a `TextData` with the model's tokenizer.

Safety: the zip is never extracted. Members are read with `ZipFile.open()` into memory (with a hard
byte cap counted while streaming) and only decoded pixel arrays are kept, so a member's name never
becomes a path on disk. Before anything is decompressed the whole archive is checked: encrypted
members, compression methods other than stored/deflate, unsafe names (`../x`, `/abs`, `C:\\x`),
symlinks, too many entries, too large a declared total, suspicious per-entry compression ratios,
and members whose byte ranges overlap (the "overlapping entries" zip bomb; Python 3.11.7's zipfile
does not detect it). The only files written are `report.json` and `preview.png`, and only into the
job folder when one is given.

Every refusal is an `UploadError` (a ValueError, so the CLI prints it in one line with exit 2).
Members that are merely unusable (not an image, truncated, garbage, too many pixels) are skipped
and counted in the report with their reasons.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import re
import struct
import unicodedata
import warnings
import zipfile
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps

from aigc.data.images import ImageData

RESOLUTIONS = (28, 32, 64)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
IMAGE_FORMATS = {"PNG", "JPEG", "WEBP", "BMP"}
TEXT_SUFFIXES = {".txt", ".jsonl"}


class UploadError(ValueError):
    """An upload that cannot be used; the message says why (one line)."""


@dataclass(frozen=True)
class UploadLimits:
    max_upload_bytes: int = 200 * 2 ** 20        # the uploaded file itself
    max_entries: int = 20_000                    # zip members (folders included)
    max_total_uncompressed: int = 1 * 2 ** 30    # sum of declared sizes, and of bytes actually read
    max_member_bytes: int = 50 * 2 ** 20         # one member, declared and read
    max_ratio: float = 100.0                     # per-member uncompressed / compressed ...
    ratio_min_bytes: int = 1 * 2 ** 20           # ... checked for members declaring at least this
    max_pixels: int = 40_000_000                 # one picture (about 6300 x 6300); Pillow's own bomb
                                                 # limit (89.5M, warning -> error) applies as well
    min_images: int = 16                         # usable images after duplicates are removed
    max_text_bytes: int = 50 * 2 ** 20
    max_distinct_chars: int = 5000
    phash_distance: int = 4                      # near duplicate: pHash Hamming distance <= this ...
    near_mean_diff: float = 10.0                 # ... and mean |pixel difference| of 8x8 thumbnails <= this


DEFAULT_LIMITS = UploadLimits()


@dataclass
class PreparedImages:
    data: ImageData
    report: dict
    preview: Image.Image                         # exactly what the model will see (first 64)


@dataclass
class PreparedText:
    text: str
    report: dict


def _fmt_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


def _check_upload_size(path: Path, limit: int) -> int:
    if not path.is_file():
        raise UploadError(f"{path.name}: no such file")
    size = path.stat().st_size
    if size > limit:
        raise UploadError(f"{path.name} is {_fmt_bytes(size)}; uploads are limited to {_fmt_bytes(limit)}")
    return size


# -- zip checks ------------------------------------------------------------------------------------
_DRIVE = re.compile(r"^[A-Za-z]:")


def _unsafe_name(name: str) -> str | None:
    """Why a member name is unsafe to have in an archive at all, or None."""
    if "\x00" in name:
        return "contains a NUL character"
    if name.startswith(("/", "\\")):
        return "is an absolute path"
    if _DRIVE.match(name):
        return "is a Windows drive path"
    parts = re.split(r"[\\/]", name)
    if ".." in parts:
        return "climbs out of the archive with '..'"
    return None


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return (info.external_attr >> 16) & 0o170000 == 0o120000


def _check_archive(z: zipfile.ZipFile, fp, archive_size: int, limits: UploadLimits, label: str) -> list[zipfile.ZipInfo]:
    """Check every member before anything is decompressed; return the file members."""
    infos = z.infolist()
    if len(infos) > limits.max_entries:
        raise UploadError(f"{label} has {len(infos)} entries; the limit is {limits.max_entries}")
    total = 0
    ranges = []
    files = []
    for info in infos:
        name = info.filename
        why = _unsafe_name(name)
        if why:
            raise UploadError(f"{label}: member {name!r} {why}; refusing the archive")
        if _is_symlink(info):
            raise UploadError(f"{label}: member {name!r} is a symbolic link; refusing the archive")
        if info.flag_bits & 0x1:
            raise UploadError(f"{label}: member {name!r} is encrypted; password-protected zips are not supported")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise UploadError(f"{label}: member {name!r} uses compression method {info.compress_type}; "
                              "only stored and deflate are supported (re-zip with standard settings)")
        if info.file_size > limits.max_member_bytes:
            raise UploadError(f"{label}: member {name!r} declares {_fmt_bytes(info.file_size)}; "
                              f"the limit per file is {_fmt_bytes(limits.max_member_bytes)}")
        if info.file_size >= limits.ratio_min_bytes and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise UploadError(f"{label}: member {name!r} expands {info.file_size / max(info.compress_size, 1):.0f}x "
                              f"(limit {limits.max_ratio:.0f}x): looks like a zip bomb")
        total += info.file_size
        if total > limits.max_total_uncompressed:
            raise UploadError(f"{label} declares more than {_fmt_bytes(limits.max_total_uncompressed)} "
                              "uncompressed; refusing it (zip bomb?)")
        # the member's byte range in the archive, from its local header
        fp.seek(info.header_offset)
        head = fp.read(30)
        if len(head) != 30 or head[:4] != b"PK\x03\x04":
            raise UploadError(f"{label}: member {name!r} has a broken local header")
        n_name, n_extra = struct.unpack("<HH", head[26:30])
        start, end = info.header_offset, info.header_offset + 30 + n_name + n_extra + info.compress_size
        if end > archive_size:
            raise UploadError(f"{label}: member {name!r} runs past the end of the archive")
        ranges.append((start, end, name))
        if not name.endswith("/"):
            files.append(info)
    ranges.sort()
    for (s0, e0, n0), (s1, e1, n1) in zip(ranges, ranges[1:]):
        if s1 < e0:
            raise UploadError(f"{label}: members {n0!r} and {n1!r} overlap in the archive "
                              "(an overlapping-entry zip bomb); refusing it")
    return files


def _read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, budget: list[int], limits: UploadLimits, label: str) -> bytes:
    """The member's bytes, counted while streaming: never more than declared, the per-file
    limit, or what is left of the total budget."""
    cap = min(info.file_size, limits.max_member_bytes)
    chunks, n = [], 0
    with z.open(info) as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            n += len(chunk)
            budget[0] -= len(chunk)
            if n > cap:
                raise UploadError(f"{label}: member {info.filename!r} decompresses past its declared size; refusing it")
            if budget[0] < 0:
                raise UploadError(f"{label}: more than {_fmt_bytes(limits.max_total_uncompressed)} "
                                  "decompressed; refusing it (zip bomb?)")
            chunks.append(chunk)
    return b"".join(chunks)


def _skip_silently(name: str) -> bool:
    p = PurePosixPath(name.replace("\\", "/"))
    return p.parts[0] == "__MACOSX" or p.name.startswith("._") or p.name in (".DS_Store", "Thumbs.db", "desktop.ini")


# -- decoding ----------------------------------------------------------------------------------------
def _decode(raw: bytes, limits: UploadLimits) -> tuple[np.ndarray | None, str, tuple[int, int]]:
    """bytes -> (RGB uint8 H x W x 3, '' or the reason it was skipped, original (w, h))."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
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
            return None, f"declares too many pixels ({size[0]}x{size[1]} > {limits.max_pixels:,})", size
        if size[0] < 1 or size[1] < 1:
            return None, "empty image", size
        try:
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
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            return None, f"declares too many pixels ({e.__class__.__name__})", size
        except Exception:  # noqa: BLE001 - truncated or corrupt data
            return None, "truncated or corrupt image data", size
    return rgb, "", size


GREY_TOLERANCE = 8     # lossy codecs (JPEG, WebP) store grey pictures with small chroma noise


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


# -- duplicates ----------------------------------------------------------------------------------
def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m


_DCT32 = _dct_matrix(32)


def phash(img: np.ndarray) -> np.ndarray:
    """64-bit perceptual hash (bool[64]) of a uint8 H x W x C image: 32x32 grey, 2-D DCT, the 8x8
    lowest frequencies compared with their median (DC excluded from the median)."""
    grey = img.mean(axis=2) if img.ndim == 3 else img
    small = np.asarray(Image.fromarray(grey.astype(np.uint8)).resize((32, 32), Image.Resampling.LANCZOS), np.float64)
    coef = (_DCT32 @ small @ _DCT32.T)[:8, :8].reshape(-1)
    return coef > np.median(coef[1:])


def _thumb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    return np.asarray(Image.fromarray(img).resize((8, 8), Image.Resampling.BOX), np.float32)


def find_duplicates(images: np.ndarray, limits: UploadLimits = DEFAULT_LIMITS) -> tuple[np.ndarray, int, int]:
    """(keep mask, exact duplicates, near duplicates) for uint8 N x H x W x C images; the first of
    each group is kept. Exact: identical pixels. Near: pHash within `phash_distance` bits and
    8x8 thumbnails within `near_mean_diff` mean absolute difference (so colour matters too)."""
    n = len(images)
    keep = np.ones(n, bool)
    seen = {}
    exact = 0
    for i in range(n):
        h = hashlib.sha1(images[i].tobytes()).digest()
        if h in seen:
            keep[i] = False
            exact += 1
        else:
            seen[h] = i
    idx = np.flatnonzero(keep)
    if len(idx) < 2:
        return keep, exact, 0
    bits = np.stack([phash(images[i]) for i in idx]).astype(np.float32)
    thumbs = np.stack([_thumb(images[i]) for i in idx]).reshape(len(idx), -1)
    near = 0
    removed = np.zeros(len(idx), bool)
    block = 1024
    for b0 in range(0, len(idx), block):
        rows = bits[b0:b0 + block]
        same = rows @ bits.T + (1 - rows) @ (1 - bits).T            # agreeing bits
        dist = 64 - same
        for r in range(rows.shape[0]):
            i = b0 + r
            if removed[i]:
                continue
            cand = np.flatnonzero((dist[r] <= limits.phash_distance) & ~removed)
            cand = cand[cand > i]
            if len(cand) == 0:
                continue
            diff = np.abs(thumbs[cand] - thumbs[i]).mean(axis=1)
            hit = cand[diff <= limits.near_mean_diff]
            removed[hit] = True
            near += len(hit)
    keep[idx[removed]] = False
    return keep, exact, near


# -- histograms and the report -----------------------------------------------------------------------
_SIZE_BINS = [(0, 32, "<32"), (32, 64, "32-63"), (64, 128, "64-127"), (128, 256, "128-255"),
              (256, 512, "256-511"), (512, 1024, "512-1023"), (1024, 10 ** 9, ">=1024")]
_ASPECT_BINS = [(0, 0.5, "<0.5 (tall)"), (0.5, 0.8, "0.5-0.8"), (0.8, 1.25, "0.8-1.25 (squarish)"),
                (1.25, 2.0, "1.25-2"), (2.0, 1e9, ">=2 (wide)")]


def _histogram(values, bins) -> dict:
    out = {label: 0 for _, _, label in bins}
    for v in values:
        for lo, hi, label in bins:
            if lo <= v < hi:
                out[label] += 1
                break
    return out


def _recommend_images(n: int, resolution: int, batch_hint: int = 32) -> str:
    """A simple, honest rule of thumb (not a measurement)."""
    epochs = 300 if n < 1000 else 100
    steps = max(1, round(epochs * n / batch_hint))
    parts = [f"{n} images at {resolution}x{resolution}"]
    if n < 2000:
        parts.append("GANs: DiffAugment on (keep it on for small sets)")
    if n < 200:
        parts.append("very few images: a GAN will mostly copy them; a VAE will blur them")
    if n < 5000:
        parts.append("from scratch on a CPU with a short time limit (~10 minutes), a VAE gives softer but "
                     "recognisable samples sooner than a GAN, which needs many more steps to be clean "
                     "(measured: bench/README.md, Fine-tune)")
    parts.append(f"rule of thumb: expect memorisation above ~{steps} steps at batch {batch_hint} "
                 f"(~{epochs} passes); compare samples with their nearest training images")
    return "; ".join(parts)


def _class_of(parts: tuple[str, ...], depth: int) -> str | None:
    """The class folder of a member whose path (after `depth` common folders) has a folder."""
    rest = parts[depth:]
    return rest[0] if len(rest) > 1 else None


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
    size = _check_upload_size(path, limits.max_upload_bytes)
    if not zipfile.is_zipfile(path):
        raise UploadError(f"{label} is not a zip file")
    skipped: Counter = Counter()
    skipped_examples: dict[str, str] = {}

    def skip(reason: str, member: str):
        skipped[reason] += 1
        skipped_examples.setdefault(reason, member)

    decoded = []    # (parts, rgb 32x32 source, original size, grey?)
    with open(path, "rb") as fp:
        try:
            z = zipfile.ZipFile(fp)
        except (zipfile.BadZipFile, OSError) as e:
            raise UploadError(f"{label} is not a readable zip file ({e})") from None
        with z:
            files = _check_archive(z, fp, size, limits, label)
            budget = [limits.max_total_uncompressed]
            for info in files:
                member = info.filename
                if _skip_silently(member):
                    skip("system file (__MACOSX, .DS_Store, ...)", member)
                    continue
                suffix = PurePosixPath(member).suffix.lower()
                if suffix not in IMAGE_SUFFIXES:
                    skip(f"not an image file ({suffix or 'no extension'})", member)
                    continue
                try:
                    raw = _read_member(z, info, budget, limits, label)
                except UploadError:
                    raise
                except zipfile.BadZipFile:
                    skip("corrupt in the zip (bad CRC, or not the size it declares)", member)
                    continue
                except (OSError, EOFError, ValueError, zlib.error) as e:
                    skip(f"unreadable in the zip ({type(e).__name__})", member)
                    continue
                rgb, why, orig = _decode(raw, limits)
                del raw
                if rgb is None:
                    skip(why, member)
                    continue
                grey = _is_grey(rgb)
                parts = tuple(p for p in re.split(r"[\\/]", member) if p)
                decoded.append((parts, _square(rgb, resolution), orig, grey))
    n_decoded = len(decoded)

    def too_few(n: int, what: str):
        reasons = "; ".join(f"{k}: {v} (e.g. {skipped_examples[k]!r})" for k, v in skipped.most_common(3))
        raise UploadError(f"{label}: only {n} usable images {what}(need at least {limits.min_images})"
                          + (f"; skipped {reasons}" if reasons else ""))

    if n_decoded < limits.min_images:
        too_few(n_decoded, "")

    # labels: one folder per class, below any folders every image shares
    depth = 0
    all_parts = [p for p, *_ in decoded]
    while all(len(p) > depth + 1 for p in all_parts) and len({p[depth] for p in all_parts}) == 1:
        depth += 1
    classes_raw = [_class_of(p, depth) for p in all_parts]
    label_note = ""
    if all(c is not None for c in classes_raw) and len(set(classes_raw)) >= 2:
        class_names = sorted(set(classes_raw))
        labels = np.array([class_names.index(c) for c in classes_raw], np.int64)
    else:
        class_names, labels = [], None
        if any(c is not None for c in classes_raw) and not all(c is not None for c in classes_raw):
            label_note = "some images sit outside class folders: no labels used"
        elif len(set(classes_raw) - {None}) == 1:
            label_note = "only one class folder: no labels used"

    n_grey = sum(1 for *_, g in decoded if g)
    all_grey = n_grey == n_decoded
    rgb_all = np.stack([im for _, im, _, _ in decoded])
    if all_grey:
        luma = rgb_all.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        images = np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None]
    else:
        images = rgb_all
    keep, n_exact, n_near = find_duplicates(images, limits)
    images = images[keep]
    if labels is not None:
        labels = labels[keep]
    if len(images) < limits.min_images:
        too_few(len(images), f"after removing {n_exact} exact and {n_near} near duplicates ")

    class_counts = ({class_names[i]: int((labels == i).sum()) for i in range(len(class_names))}
                    if labels is not None else {})
    empty = [c for c, k in class_counts.items() if k == 0]
    if empty:
        raise UploadError(f"{label}: class folder(s) {', '.join(empty)} have no usable images left")
    balanced = None
    if balance and labels is not None:
        target = max(class_counts.values())
        order = []
        for i in range(len(class_names)):
            members = np.flatnonzero(labels == i)
            order.extend(np.resize(members, target).tolist())   # repeats the first ones cyclically
        order = np.array(order, np.int64)
        images, labels = images[order], labels[order]
        balanced = {class_names[i]: target for i in range(len(class_names))}

    sizes = [o for _, _, o, _ in decoded]
    data = ImageData(name=name or f"upload:{path.stem}", images=np.ascontiguousarray(images),
                     labels=labels, class_names=class_names)
    n_kept = int(keep.sum())
    ratio = (max(class_counts.values()) / max(1, min(class_counts.values()))) if class_counts else None
    report = {
        "kind": "images",
        "file": path.name,
        "file_bytes": size,
        "resolution": resolution,
        "channels": data.shape[0],
        "mode": "grey" if all_grey else "rgb",
        "decoded": n_decoded,
        "kept": n_kept,
        "training_images": len(data),
        "skipped": sum(skipped.values()),
        "skipped_reasons": dict(skipped.most_common()),
        "skipped_examples": skipped_examples,
        "duplicates": {"exact": n_exact, "near": n_near},
        "grey_inputs": n_grey,
        "colour_inputs": n_decoded - n_grey,
        "size_histogram": _histogram([max(w, h) for w, h in sizes], _SIZE_BINS),
        "aspect_histogram": _histogram([w / h for w, h in sizes if h], _ASPECT_BINS),
        "classes": class_names,
        "class_counts": class_counts,
        "class_imbalance": None if ratio is None else round(ratio, 2),
        "balanced": balanced,
        "labels_note": label_note,
        "limits": asdict(limits),
    }
    rec = _recommend_images(n_kept, resolution)
    if ratio is not None and ratio > 2 and not balance:
        rec += f"; classes are imbalanced ({ratio:.1f}x): consider balancing"
    report["recommendation"] = rec
    preview = make_grid(_preview_pick(data), nrow=8)
    if job_dir is not None:
        write_report(job_dir, report, preview)
    return PreparedImages(data, report, preview)


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


# -- text ------------------------------------------------------------------------------------------
def _decode_utf8(raw: bytes, label: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise UploadError(f"{label} is not UTF-8: byte 0x{raw[e.start]:02x} at line {line}, column {col} "
                          f"(byte offset {e.start}); save it as UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text


def prepare_text(path: str | Path, job_dir: str | Path | None = None, *, block_size: int | None = None,
                 tokenizer=None, limits: UploadLimits = DEFAULT_LIMITS) -> PreparedText:
    """Check a .txt (UTF-8) or .jsonl ({"text": ...} per line) upload -> PreparedText.

    `block_size`: the model's context (the text must be longer than it, +2); `tokenizer`: the
    base model's CharTokenizer, to count the characters it does not know (they become unknown)."""
    path = Path(path)
    label = path.name
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        raise UploadError(f"{label}: text uploads must be .txt or .jsonl")
    size = _check_upload_size(path, limits.max_text_bytes)
    raw = path.read_bytes()
    text = _decode_utf8(raw, label)
    records = None
    if suffix == ".jsonl":
        pieces = []
        for i, ln in enumerate(text.split("\n"), 1):
            if not ln.strip():
                continue
            try:
                obj = json.loads(ln)
            except json.JSONDecodeError as e:
                raise UploadError(f"{label}: line {i} is not JSON ({e.msg})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise UploadError(f'{label}: line {i} needs an object with a "text" string')
            pieces.append(obj["text"])
        records = len(pieces)
        text = "\n\n".join(pieces)
    if not text.strip():
        raise UploadError(f"{label}: the text is empty")
    if block_size is not None and len(text) < block_size + 2:
        raise UploadError(f"{label}: {len(text)} characters is shorter than the model's context of "
                          f"{block_size} (+2); upload more text")
    counts = Counter(text)
    if len(counts) > limits.max_distinct_chars:
        raise UploadError(f"{label}: {len(counts)} distinct characters (limit {limits.max_distinct_chars}); "
                          "is this really text?")
    control = sum(n for c, n in counts.items() if unicodedata.category(c) == "Cc" and c not in "\n\r\t")
    if control > max(10, len(text) // 100):
        raise UploadError(f"{label}: {control} control characters: this looks like a binary file, not text")
    report = {
        "kind": "text",
        "file": path.name,
        "file_bytes": size,
        "chars": len(text),
        "lines": text.count("\n") + 1,
        "records": records,
        "distinct_chars": len(counts),
        "block_size": block_size,
        "control_chars": control,
        "limits": asdict(limits),
    }
    if tokenizer is not None:
        unknown = tokenizer.unknown_chars(text)
        report["unknown_chars"] = int(sum(unknown.values()))
        report["unknown_distinct"] = len(unknown)
        report["unknown_top"] = {c: int(n) for c, n in unknown.most_common(10)}
    windows = None if block_size is None else (len(text) - 1) // block_size
    report["windows"] = windows
    rec = f"{len(text):,} characters, {len(counts)} distinct"
    if block_size is not None:
        rec += f"; {windows} windows of {block_size}"
    if len(text) < 100_000:
        rec += "; small corpus: expect memorisation within a few hundred steps (watch held-out loss)"
    if report.get("unknown_chars"):
        share = report["unknown_chars"] / len(text)
        rec += f"; {report['unknown_chars']} characters ({share:.1%}) are unknown to the base model's tokenizer"
    report["recommendation"] = rec
    if job_dir is not None:
        write_report(job_dir, report)
    return PreparedText(text, report)


HELDOUT_SHARE = 0.1
HELDOUT_MAX_CHARS = 50_000


def split_heldout(text: str, block_size: int, share: float = HELDOUT_SHARE,
                  max_chars: int = HELDOUT_MAX_CHARS) -> tuple[str, str, str]:
    """(training text, held-out text, note): the last `share` of an uploaded text (at least
    block_size + 2 characters, at most `max_chars`) is kept out of training so that its
    cross-entropy measures generalisation during fine-tuning. The cut moves forward to the next
    line break when one is within a tenth of the held-out length. Too short a text to spare
    that much (the training part must keep block_size + 2 characters, the held-out part at most a
    quarter of the text) is not split: held-out is "" and the note says why."""
    n = len(text)
    want = min(max(int(n * share), block_size + 2), max_chars)
    if want > n // 4 or n - want < block_size + 2:
        return text, "", (f"no held-out slice: {n:,} characters is too short to keep {want:,} out of training "
                          f"(needs at least {4 * (block_size + 2):,})")
    cut = n - want
    nl = text.find("\n", cut, cut + max(1, want // 10))
    if nl != -1 and n - (nl + 1) >= block_size + 2:
        cut = nl + 1
    return text[:cut], text[cut:], (f"held out the last {n - cut:,} characters ({(n - cut) / n:.0%}) to measure "
                                     "cross-entropy on text the model does not train on")


# -- dispatch and output -------------------------------------------------------------------------------
def upload_kind(path: str | Path) -> str:
    """'images' for a .zip, 'text' for .txt / .jsonl; UploadError otherwise."""
    s = Path(path).suffix.lower()
    if s == ".zip":
        return "images"
    if s in TEXT_SUFFIXES:
        return "text"
    raise UploadError(f"{Path(path).name}: upload a .zip of images, or a .txt / .jsonl text file")


def write_report(job_dir: str | Path, report: dict, preview: Image.Image | None = None) -> None:
    """report.json (and preview.png) into `job_dir`, atomically."""
    from aigc.checkpoint import atomic_path, atomic_write_json

    job_dir = Path(job_dir)
    atomic_write_json(job_dir / "report.json", report)
    if preview is not None:
        with atomic_path(job_dir / "preview.png") as tmp:
            preview.save(tmp, format="PNG")


def format_report(report: dict) -> str:
    """The report as a few human-readable lines."""
    lines = []
    if report.get("kind") == "images":
        lines.append(f"{report['file']}: {report['kept']} images kept of {report['decoded']} decoded, "
                     f"{report['skipped']} skipped; {report['mode']} {report['resolution']}x{report['resolution']}")
        for reason, n in report["skipped_reasons"].items():
            lines.append(f"  skipped {n}: {reason} (e.g. {report['skipped_examples'][reason]!r})")
        d = report["duplicates"]
        lines.append(f"  duplicates removed: {d['exact']} exact, {d['near']} near")
        lines.append(f"  inputs: {report['grey_inputs']} grey, {report['colour_inputs']} colour")
        lines.append("  sizes (longer side): " + ", ".join(f"{k}: {v}" for k, v in report["size_histogram"].items() if v))
        lines.append("  aspect (w/h): " + ", ".join(f"{k}: {v}" for k, v in report["aspect_histogram"].items() if v))
        if report["class_counts"]:
            lines.append("  classes: " + ", ".join(f"{k}: {v}" for k, v in report["class_counts"].items())
                         + (" (balanced by repetition)" if report.get("balanced") else ""))
        elif report.get("labels_note"):
            lines.append(f"  {report['labels_note']}")
    else:
        lines.append(f"{report['file']}: {report['chars']:,} characters, {report['distinct_chars']} distinct"
                     + (f", {report['records']} records" if report.get("records") is not None else ""))
        if "unknown_chars" in report:
            top = "".join(report["unknown_top"])
            lines.append(f"  unknown to the tokenizer: {report['unknown_chars']} characters"
                         + (f" ({report['unknown_distinct']} distinct, e.g. {top[:10]!r})" if top else ""))
    lines.append(f"  recommendation: {report['recommendation']}")
    return "\n".join(lines)
