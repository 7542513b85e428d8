"""Device and precision choices, made at run time (nothing touches CUDA at import)."""
from __future__ import annotations

import contextlib

import torch


def resolve_device(name: str = "cpu") -> torch.device:
    """'cpu', 'cuda', 'cuda:N' or 'auto' (cuda when available). A clear error if CUDA is asked
    for and absent, rather than a crash deep inside a kernel."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA GPU is available here; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {name!r}; use cpu or cuda")
    return dev


def autocast_dtype(device: torch.device, precision: str = "auto", kind: str = "") -> torch.dtype | None:
    """Which dtype autocast should use, or None for plain fp32.

    auto: bf16 on a GPU that supports it; on CPU bf16 only for the conv GAN, where it measured
    faster (bench/train_throughput.py), and for the char transformer (~2x); the small VAE and MLP
    run faster in fp32 on CPU."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r}; use auto, fp32 or bf16")
    if device.type == "cuda":
        if kind == "vae":
            return None   # a likelihood model: its logits want full precision (TF32 is on anyway)
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if kind in ("dcgan", "char-lm") else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """A context-manager factory for the chosen precision."""
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def setup_cuda_fast_paths(device: torch.device) -> None:
    """TF32 matmuls/convs on Ampere+ GPUs: ~free speed for GAN/VAE training."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
