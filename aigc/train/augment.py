"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to every image the
discriminator sees, real and fake alike, so that a discriminator on a small dataset cannot
memorise it. Randomness comes from a StepRNG so that runs are exactly repeatable and a
multi-process run draws the same augmentations as a single-process one.

random_affine: small rotations and shifts of whole pictures, for VaDE's autoencoder pretraining.
"""
from __future__ import annotations

import math

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


def random_affine(x: torch.Tensor, u: torch.Tensor, degrees: float = 10.0, shift: float = 0.1) -> torch.Tensor:
    """Each image of x (N x C x H x W) rotated by up to `degrees` and shifted by up to `shift` of its
    side, as DEC-DA pretrains its autoencoder (Guo et al. 2018); `u` holds N x 3 uniforms in [0, 1)
    (angle, shift x, shift y) from the caller's seeded generator. Outside the picture is 0 (black)."""
    if u.shape != (x.shape[0], 3):
        raise ValueError(f"random_affine needs N x 3 uniforms, got {tuple(u.shape)} for {x.shape[0]} images")
    u = u.to(device=x.device, dtype=x.dtype) * 2 - 1
    ang = u[:, 0] * math.radians(degrees)
    tx, ty = u[:, 1] * 2 * shift, u[:, 2] * 2 * shift             # grid coordinates span 2 per side
    c, s = ang.cos(), ang.sin()
    theta = torch.stack([torch.stack([c, -s, tx], 1), torch.stack([s, c, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
