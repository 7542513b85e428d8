"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to every image the
discriminator sees, real and fake alike, so that a discriminator on a small dataset cannot
memorise it. Randomness comes from a StepRNG so that runs are exactly repeatable and a
multi-process run draws the same augmentations as a single-process one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def diff_augment(x: torch.Tensor, rng, policy: str = "color,translation,cutout") -> torch.Tensor:
    """x in [-1, 1], N x C x H x W."""
    for p in [p for p in policy.split(",") if p]:
        if p == "color":
            x = _color(x, rng)
        elif p == "translation":
            x = _translation(x, rng)
        elif p == "cutout":
            x = _cutout(x, rng)
        else:
            raise ValueError(f"unknown DiffAugment policy {p!r}")
    return x


def _color(x, rng):
    n = x.shape[0]
    x = x + (rng.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)             # brightness
    if x.shape[1] > 1:
        m = x.mean(1, keepdim=True)
        x = (x - m) * (rng.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + m  # saturation
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * (rng.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + m  # contrast


def _translation(x, rng, ratio: float = 0.125):
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = rng.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    ty = rng.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    gb, gx, gy = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(h, device=x.device),
                                torch.arange(w, device=x.device), indexing="ij")
    gx = torch.clamp(gx + tx + 1, 0, h + 1)
    gy = torch.clamp(gy + ty + 1, 0, w + 1)
    pad = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return pad.permute(0, 2, 3, 1).contiguous()[gb, gx, gy].permute(0, 3, 1, 2)


def _cutout(x, rng, ratio: float = 0.5):
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ox = rng.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    oy = rng.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    gb, gx, gy = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(ch, device=x.device),
                                torch.arange(cw, device=x.device), indexing="ij")
    gx = torch.clamp(gx + ox - ch // 2, 0, h - 1)
    gy = torch.clamp(gy + oy - cw // 2, 0, w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gx, gy] = 0
    return x * mask.unsqueeze(1)
