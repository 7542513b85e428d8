"""Paths between two latents and the GIF of their frames."""
from __future__ import annotations

import io

import numpy as np
import torch


def lerp(a: torch.Tensor, b: torch.Tensor, t) -> torch.Tensor:
    """Straight line from a to b; t a number or a 1-D tensor of positions (-> T x D)."""
    a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    t = torch.as_tensor(t, dtype=torch.float32)
    if t.dim() == 0:
        return a + t * (b - a)
    return a[None] + t[:, None] * (b - a)[None]


def slerp(a: torch.Tensor, b: torch.Tensor, t) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for generative models): follows the
    great circle between a and b, so intermediate points keep the norm a Gaussian latent has
    instead of cutting through the low-density centre. Falls back to lerp for (anti)parallel
    vectors."""
    a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    t = torch.as_tensor(t, dtype=torch.float32)
    na, nb = a.norm(), b.norm()
    if na < 1e-8 or nb < 1e-8:
        return lerp(a, b, t)
    cos = torch.clamp((a / na) @ (b / nb), -1.0, 1.0)
    omega = torch.arccos(cos)
    so = torch.sin(omega)
    if so.abs() < 1e-6:
        return lerp(a, b, t)
    tt = t if t.dim() == 0 else t[:, None]
    wa = torch.sin((1.0 - tt) * omega) / so
    wb = torch.sin(tt * omega) / so
    if t.dim() == 0:
        return wa * a + wb * b
    return wa * a[None] + wb * b[None]


def path(a, b, steps: int, method: str = "slerp") -> torch.Tensor:
    """`steps` latents from a to b inclusive (steps x D)."""
    if not 2 <= int(steps) <= 256:
        raise ValueError("frames must be between 2 and 256")
    t = torch.linspace(0.0, 1.0, int(steps))
    if method == "slerp":
        return slerp(a, b, t)
    if method == "lerp":
        return lerp(a, b, t)
    raise ValueError(f"unknown interpolation {method!r}; use 'slerp' or 'lerp'")


def gif_bytes(frames: np.ndarray, fps: float = 12.0, scale: int = 4, bounce: bool = True) -> bytes:
    """uint8 T x H x W x C frames -> an animated GIF that loops (forth and back if `bounce`)."""
    from PIL import Image

    if frames.ndim != 4 or frames.dtype != np.uint8 or len(frames) < 1:
        raise ValueError("frames must be uint8 T x H x W x C")
    seq = list(frames) + (list(frames[-2:0:-1]) if bounce and len(frames) > 2 else [])
    ims = []
    for f in seq:
        im = Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f)
        if scale > 1:
            im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
        ims.append(im.convert("P") if im.mode != "L" else im)
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], loop=0,
                duration=max(20, int(round(1000 / fps))), disposal=1)
    return buf.getvalue()
