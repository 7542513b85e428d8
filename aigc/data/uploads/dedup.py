"""Exact and near duplicates among prepared images (perceptual hash plus a colour check)."""
from __future__ import annotations

import hashlib
import math

import numpy as np
from PIL import Image

from aigc.data.uploads.budgets import DEFAULT_LIMITS, UploadLimits


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


def thumb(img: np.ndarray) -> np.ndarray:
    """The 8x8 box-filtered grey or colour thumbnail near duplicates are compared by."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    return np.asarray(Image.fromarray(img).resize((8, 8), Image.Resampling.BOX), np.float32)


def _exact(images: np.ndarray) -> tuple[np.ndarray, int]:
    keep = np.ones(len(images), bool)
    seen = set()
    for i in range(len(images)):
        h = hashlib.sha1(images[i].tobytes()).digest()
        if h in seen:
            keep[i] = False
        else:
            seen.add(h)
    return keep, int((~keep).sum())


def find_duplicates(images: np.ndarray, limits: UploadLimits = DEFAULT_LIMITS) -> tuple[np.ndarray, int, int]:
    """(keep mask, exact duplicates, near duplicates) for uint8 N x H x W x C images; the first of
    each group is kept. Exact: identical pixels. Near: pHash within `phash_distance` bits and
    8x8 thumbnails within `near_mean_diff` mean absolute difference (so colour matters too)."""
    keep, exact = _exact(images)
    idx = np.flatnonzero(keep)
    if len(idx) < 2:
        return keep, exact, 0
    bits = np.stack([phash(images[i]) for i in idx]).astype(np.float32)
    thumbs = np.stack([thumb(images[i]) for i in idx]).reshape(len(idx), -1)
    near = 0
    removed = np.zeros(len(idx), bool)
    block = 1024
    for b0 in range(0, len(idx), block):
        rows = bits[b0:b0 + block]
        dist = 64 - (rows @ bits.T + (1 - rows) @ (1 - bits).T)      # 64 minus the agreeing bits
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


def duplicate_of(images: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """For each image that `keep` drops, the index among the kept images of the one it duplicates:
    the identical one if any, else the closest 8x8 thumbnail (how near duplicates were judged)."""
    kept = np.flatnonzero(keep)
    drop = np.flatnonzero(~keep)
    if len(drop) == 0:
        return np.zeros(0, np.int64)
    exact = {hashlib.sha1(images[i].tobytes()).digest(): j for j, i in enumerate(kept)}
    thumbs = None                                 # built only when a near duplicate needs them
    out = np.empty(len(drop), np.int64)
    for r, i in enumerate(drop):
        j = exact.get(hashlib.sha1(images[i].tobytes()).digest())
        if j is None:
            if thumbs is None:
                thumbs = np.stack([thumb(images[k]) for k in kept]).reshape(len(kept), -1)
            j = int(np.abs(thumbs - thumb(images[i]).reshape(1, -1)).mean(axis=1).argmin())
        out[r] = j
    return out
