"""Projecting a picture into a GAN's latent space by optimisation.

A GAN has no encoder, so the latent for a given picture is searched for: several random starts
(for a class-conditional model, starts in every class) are decoded, compared with the target by
mean squared error, and moved by Adam on the latent alone. After a quarter of the steps only the
best quarter of the starts continue. A weak prior term keeps the latent near the shell where a
standard normal vector lives, so the result stays editable with the same sliders.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from aigc.data.grid import to_uint8


@dataclass
class Projection:
    latent: np.ndarray          # float32 D
    label: int | None
    image: np.ndarray           # uint8 H x W x C, the reconstruction
    mse: float                  # mean squared error per pixel, images in [0, 1]
    psnr: float                 # dB
    steps: int


def psnr(mse: float) -> float:
    return float("inf") if mse <= 0 else 10.0 * math.log10(1.0 / mse)


def project(model, target: torch.Tensor, *, label: int | None = None, steps: int = 150,
            starts: int = 8, lr: float = 0.08, prior: float = 1e-3, seed: int = 0,
            progress: Callable[[int, int, float], None] | None = None) -> Projection:
    """target: 1 x C x H x W in [0, 1]. Returns the best latent found (and its class)."""
    if not 1 <= steps <= 5000 or not 1 <= starts <= 256:
        raise ValueError("steps must be in 1..5000 and starts in 1..256")
    target = torch.as_tensor(target, dtype=torch.float32)
    if target.dim() == 3:
        target = target[None]
    if tuple(target.shape[1:]) != tuple(model.image_shape):
        raise ValueError(f"target has shape {tuple(target.shape[1:])}; the model makes {tuple(model.image_shape)}")
    dev = model.device
    target = target.to(dev)
    g = torch.Generator().manual_seed(seed)
    if model.num_classes:
        classes = [int(label)] if label is not None else list(range(model.num_classes))
        per = max(1, math.ceil(starts / len(classes))) if label is None else starts
        labels = torch.tensor(classes, dtype=torch.long).repeat_interleave(per).to(dev)
    else:
        labels = None
    n = labels.numel() if labels is not None else starts
    z = torch.randn(n, model.latent_dim, generator=g).to(dev).requires_grad_(True)
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam([z], lr=lr)
    prune_at = max(1, steps // 4)
    best = float("inf")
    try:
        with torch.enable_grad():
            for step in range(steps):
                opt.zero_grad(set_to_none=True)
                x = model.decode(z, labels)
                err = F.mse_loss(x, target.expand_as(x), reduction="none").flatten(1).mean(1)
                reg = (z.pow(2).mean(1) - 1.0).pow(2)
                (err + prior * reg).sum().backward()
                opt.step()
                best = float(err.min().detach())
                if step + 1 == prune_at and n > 2:
                    keep = torch.argsort(err.detach())[: max(2, n // 4)]
                    z = z.detach()[keep].clone().requires_grad_(True)
                    labels = None if labels is None else labels[keep]
                    n = z.shape[0]
                    opt = torch.optim.Adam([z], lr=lr)
                if progress is not None:
                    progress(step + 1, steps, best)
        with torch.no_grad():
            x = model.decode(z, labels)
            err = F.mse_loss(x, target.expand_as(x), reduction="none").flatten(1).mean(1)
            i = int(torch.argmin(err))
            mse = float(err[i])
            image = to_uint8(x[i:i + 1])[0]
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
        model.train(was_training)
    return Projection(z.detach()[i].cpu().numpy().astype(np.float32),
                      None if labels is None else int(labels[i]), image, mse, psnr(mse), steps)
