"""Turning image tensors into pictures: uint8 arrays, PIL images and grids."""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float N x C x H x W in [0, 1] -> uint8 N x H x W x C."""
    x = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def to_pil(image: np.ndarray) -> Image.Image:
    """uint8 H x W x C (C = 1 or 3) -> PIL image."""
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def make_grid(images: np.ndarray, nrow: int | None = None, pad: int = 2, scale: int = 1) -> Image.Image:
    """uint8 N x H x W x C -> one PIL image with the samples in rows of `nrow`."""
    n, h, w, c = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    canvas = np.zeros((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        canvas[y:y + h, x:x + w] = images[i]
    img = to_pil(canvas)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img
