"""Cheap quality tracking: `kid_randconv` (KID in the features of a fixed untrained conv net,
aigc.eval.randfeat) and `copy_rate` (the share of samples that reproduce a training image).

Both take well under a second for a few hundred images on a CPU, so the fine-tune jobs can follow
them, and both accept a `reference` (an in-memory ImageData, e.g. a prepared upload) in place of a
built-in dataset: they are registered with `reference_ok=True` in aigc.eval.metrics' registry.
"""
from __future__ import annotations

import hashlib
import threading

import numpy as np

from aigc.data.images import load_dataset
import aigc.eval.randfeat as randfeat
from aigc.eval.metrics import EvalContext, register


COPY_ALPHA = 0.5     # copy: nearer to a training image t than COPY_ALPHA x (t's distance to its nearest other training image)
_REF_CACHE: dict[tuple, object] = {}
_REF_LOCK = threading.Lock()
_REF_CACHE_MAX = 8


def _images_key(images: np.ndarray) -> tuple:
    a = np.ascontiguousarray(images)
    return (a.shape, str(a.dtype), hashlib.sha1(a.tobytes()).hexdigest())


def _cached(kind: str, key: tuple, make):
    """Per-process memo of work on a reference set (features, indexes), keyed by content."""
    k = (kind,) + key
    with _REF_LOCK:
        if k in _REF_CACHE:
            return _REF_CACHE[k]
    value = make()
    with _REF_LOCK:
        while len(_REF_CACHE) >= _REF_CACHE_MAX:
            _REF_CACHE.pop(next(iter(_REF_CACHE)))
        _REF_CACHE[k] = value
    return value


KID_RANDCONV_REAL_MAX = 2000     # built-in datasets: the first 2,000 test images are the real side


def _kid_real_images(ctx: EvalContext) -> np.ndarray:
    if ctx.reference is not None:
        return ctx.reference.images
    return load_dataset(ctx.dataset, "test").images[:KID_RANDCONV_REAL_MAX]


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


class _KidReal:
    """Features of the real side and the off-diagonal mean of its kernel matrix (the part of the
    MMD that does not change between evaluations)."""

    def __init__(self, images: np.ndarray):
        self.features = randfeat.features(images)
        k = _poly_kernel(self.features, self.features)
        n = len(k)
        self.k_yy = float((k.sum() - np.trace(k)) / (n * (n - 1)))


def _describe_kid_randconv(ctx: EvalContext) -> list[str]:
    real = (f"all {len(ctx.reference)} images of {ctx.reference.name} (the training data)" if ctx.reference is not None
            else f"the first {min(KID_RANDCONV_REAL_MAX, len(load_dataset(ctx.dataset, 'test')))} {ctx.dataset} test images")
    return [f"kid_randconv: unbiased MMD^2 (cubic polynomial kernel) between all {ctx.n} samples and {real}, in "
            f"the features of an {randfeat.DESCRIPTION}; not comparable with Inception KID"]


@register("kid_randconv", describe=_describe_kid_randconv, reference_ok=True)
def kid_randconv(ctx: EvalContext) -> dict:
    """KID in a fixed untrained conv net's features (aigc.eval.randfeat): well under a second for
    a few hundred images on a CPU, so it can follow a fine-tune. It separates gross failures
    (noise, the wrong domain) from the data reliably, fine differences between good models less
    so than Inception KID. One unbiased MMD^2 over all samples and all real images (no subsets:
    at a few hundred images the subsets would be nearly the same set)."""
    real_images = _kid_real_images(ctx)
    real = _cached("kid_randconv", _images_key(real_images), lambda: _KidReal(real_images))
    x = randfeat.features(ctx.images)
    m, n = len(x), len(real.features)
    if m < 2 or n < 2:
        raise ValueError("kid_randconv needs at least 2 samples and 2 real images")
    k_xx = _poly_kernel(x, x)
    k_xy = _poly_kernel(x, real.features)
    mmd = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + real.k_yy - 2.0 * k_xy.mean()
    return {"kid_randconv": float(mmd)}


class _CopyIndex:
    """Distinct training images (pixel index) and each one's distance to its nearest other one."""

    def __init__(self, images: np.ndarray | None = None, dataset: str | None = None):
        from aigc.data.images import ImageData
        from aigc.eval.nearest import TrainingIndex, distinct, index_for
        if images is not None:
            unique = images[distinct(images)]                        # repeats (balanced classes) once
            if len(unique) < 2:
                raise ValueError("copy_rate needs at least 2 distinct training images")
            self.index = TrainingIndex(ImageData("reference", np.ascontiguousarray(unique)))
        else:
            self.index = index_for(dataset)
        self._loo: dict[int, float] = {}

    def loo(self, idx: np.ndarray) -> np.ndarray:
        """Distance from training image i to its nearest other training image, for each i in idx."""
        todo = sorted({int(i) for i in idx} - set(self._loo))
        if todo:
            d, j = self.index.distances(self.index.data.images[todo], k=2)
            for row, i in enumerate(todo):
                # the image itself is at 0; an exact duplicate elsewhere in the set is too (then 0)
                self._loo[i] = float(d[row, 1])
        return np.array([self._loo[int(i)] for i in idx])


def _copy_index(ctx: EvalContext) -> _CopyIndex:
    if ctx.reference is not None:
        imgs = ctx.reference.images
        return _cached("copyindex", _images_key(imgs), lambda: _CopyIndex(images=imgs))
    return _cached("copyindex", (ctx.dataset,), lambda: _CopyIndex(dataset=ctx.dataset))


def _describe_copy(ctx: EvalContext) -> list[str]:
    real = (f"the {len(ctx.reference)}-image training data {ctx.reference.name}" if ctx.reference is not None
            else f"the {ctx.dataset} training split")
    return [f"copy_rate: share of {ctx.n} samples whose nearest image in {real} (pixel L2, [0, 1] pixels) is "
            f"closer than {COPY_ALPHA} x that image's distance to its own nearest other training image"]


@register("copy_rate", describe=_describe_copy, reference_ok=True)
def copy_rate(ctx: EvalContext) -> dict:
    """Share of samples that reproduce a training image: sample x with nearest training image t
    (pixel L2) counts as a copy when d(x, t) < COPY_ALPHA * d(t, nearest other training image).

    The threshold is local, calibrated on the data's own spacing: in dense regions (MNIST ones)
    training images are close to each other and a copy must be closer still. Measured with
    MNIST / Fashion-MNIST subsets of 64-1,000 images (tests/test_eval.py keeps the first two):
    fresh held-out images score 0-3%, training images with N(0, 20/255) pixel noise 81-100%,
    80/20 blends of two training images 56-100%. Pixel L2 misses shifted or flipped copies."""
    index = _copy_index(ctx)
    d, i = index.index.distances(ctx.images, k=1)
    d, i = d[:, 0].numpy().astype(np.float64), i[:, 0].numpy()
    loo = index.loo(i)
    copies = d < COPY_ALPHA * loo
    ratio = d / np.maximum(loo, 1e-12)
    return {"copy_rate": float(copies.mean()), "copy_rate_median_ratio": float(np.median(ratio))}
