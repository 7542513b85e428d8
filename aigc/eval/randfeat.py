"""Cheap image features for quality curves during training: a fixed, untrained conv net.

The Inception network behind FID/KID runs at ~8 images/s on this project's CPUs, far too slow
to measure a fine-tune every few dozen steps. This module gives a feature space that costs
milliseconds per hundred images and works for any upload (grey or colour, 28, 32 or 64 px),
where the per-dataset domain classifiers exist only for MNIST and Fashion-MNIST.

What it is, exactly (so a number is never separated from how it was measured):
  images -> float in [-1, 1], grey tiled to 3 channels, bilinear (antialiased) resize to 32x32
  -> three blocks of 3x3 conv (no bias) + ReLU, 32 / 64 / 128 channels, the first two followed by
     2x2 average pooling; weights drawn once from N(0, 2 / fan_in) with torch.Generator seed 0
  -> features: the per-channel mean of every block (32 + 64 + 128) and the 2x2 average-pooled
     map of the last block (128 x 4): 736 numbers per image.
Untrained random conv nets respond to local contrast, edges and texture statistics at three
scales; distances in their features track image statistics, not semantics. A KID measured in
them ranks generators sensibly (tests/test_eval.py checks real < trained GAN < noise) but is
NOT comparable with the Inception KID of the model cards, and is never reported under that name:
the metric is `kid_randconv`.
"""
from __future__ import annotations

import threading

import numpy as np
import torch
import torch.nn.functional as F

SIZE = 32
WIDTHS = (32, 64, 128)
SEED = 0
DIM = sum(WIDTHS) + WIDTHS[-1] * 4
DESCRIPTION = (f"untrained 3-layer conv net (3x3, {'/'.join(map(str, WIDTHS))} channels, ReLU, He-normal "
               f"weights from seed {SEED}) on images resized to {SIZE}x{SIZE}, grey tiled to 3 channels; "
               f"{DIM}-d features (per-layer channel means + 2x2-pooled last layer)")

_LOCK = threading.Lock()
_WEIGHTS: list[torch.Tensor] | None = None


def _weights() -> list[torch.Tensor]:
    global _WEIGHTS
    with _LOCK:
        if _WEIGHTS is None:
            g = torch.Generator().manual_seed(SEED)
            ws, c_in = [], 3
            for c in WIDTHS:
                fan_in = c_in * 9
                ws.append(torch.randn(c, c_in, 3, 3, generator=g) * (2.0 / fan_in) ** 0.5)
                c_in = c
            _WEIGHTS = ws
        return _WEIGHTS


def _prepare(images) -> torch.Tensor:
    """uint8 N x H x W x C (C = 1 or 3) or float N x C x H x W in [0, 1] -> float N x 3 x 32 x 32 in [-1, 1]."""
    if isinstance(images, torch.Tensor) and images.dtype != torch.uint8:
        x = images.detach().float().cpu()
    else:
        a = np.asarray(images)
        if a.ndim == 3:
            a = a[..., None]
        if a.ndim != 4 or a.shape[-1] not in (1, 3):
            raise ValueError(f"expected N x H x W x C images with C = 1 or 3, got shape {a.shape}")
        x = torch.from_numpy(np.array(a, dtype=np.float32)).permute(0, 3, 1, 2).div_(255.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (SIZE, SIZE):
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)
    return x * 2.0 - 1.0


@torch.no_grad()
def features(images, batch_size: int = 500) -> np.ndarray:
    """N x DIM float64 features of `images` (deterministic: same images, same numbers)."""
    ws = _weights()
    n = len(images)
    out = np.empty((n, DIM), dtype=np.float64)
    for i in range(0, n, batch_size):
        h = _prepare(images[i:i + batch_size])
        parts = []
        for j, w in enumerate(ws):
            h = F.relu(F.conv2d(h, w, padding=1))
            parts.append(h.mean(dim=(2, 3)))
            if j < len(ws) - 1:
                h = F.avg_pool2d(h, 2)
        parts.append(F.adaptive_avg_pool2d(h, 2).flatten(1))
        out[i:i + len(h)] = torch.cat(parts, 1).double().numpy()
    return out
