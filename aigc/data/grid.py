"""Turning image tensors into pictures: uint8 arrays, PIL images and grids."""
from __future__ import annotations

import math
from dataclasses import dataclass

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


@dataclass(frozen=True)
class GridLayout:
    """Where the tiles of a `make_grid` picture lie, in its pixels (to map a click to a sample)."""
    n: int
    columns: int
    height: int           # one tile's source size and the gap, before `scale`
    width: int
    pad: int
    scale: int

    def tile_at(self, x: float, y: float) -> int | None:
        """Index of the tile under pixel (x, y); a click on a gap counts for the tile it borders
        on the right or below; None outside the tiles."""
        step_x, step_y = (self.width + self.pad) * self.scale, (self.height + self.pad) * self.scale
        col, row = int((x - self.pad * self.scale) // step_x), int((y - self.pad * self.scale) // step_y)
        col, row = max(col, 0), max(row, 0)
        i = row * self.columns + col
        return i if col < self.columns and i < self.n else None

    def to_dict(self) -> dict:
        return dict(n=self.n, columns=self.columns, height=self.height, width=self.width, pad=self.pad,
                    scale=self.scale)


def grid_layout(images: np.ndarray, nrow: int | None = None, pad: int = 2, scale: int = 1) -> GridLayout:
    n, h, w, _ = images.shape
    return GridLayout(n, nrow or math.ceil(math.sqrt(n)), h, w, pad, scale)


def scale_for(images: np.ndarray, nrow: int, width_px: int) -> int:
    """The whole enlargement that makes `nrow` tiles about `width_px` wide (at least 1)."""
    return max(1, round(width_px / (nrow * (images.shape[2] + 1))))


def make_grid(images: np.ndarray, nrow: int | None = None, pad: int = 2, scale: int = 1,
              fill: int = 0) -> Image.Image:
    """uint8 N x H x W x C -> one PIL image with the samples in rows of `nrow`, `fill` between them
    (grid_layout(...) says where each tile lies)."""
    n, h, w, c = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    canvas = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), fill, np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        canvas[y:y + h, x:x + w] = images[i]
    img = to_pil(canvas)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def grid_picture(images: np.ndarray, nrow: int, width_px: int, pad: int = 1,
                 fill: int = 255) -> tuple[Image.Image, GridLayout]:
    """One picture of the samples about `width_px` wide (tiles enlarged by a whole factor), and
    where each tile lies in it."""
    scale = scale_for(images, nrow, width_px)
    return (make_grid(images, nrow=nrow, pad=pad, scale=scale, fill=fill),
            grid_layout(images, nrow=nrow, pad=pad, scale=scale))
