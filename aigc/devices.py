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

    auto: on a GPU, bf16 for the transformer and TF32 for the small conv nets; on a CPU with native
    bf16 (AVX512-BF16 / AMX), bf16 for the conv GAN, where it measured faster
    (bench/train_throughput.py), and for the char transformer (~2x); everything else in fp32 (the
    small VAE and MLP run faster in fp32 everywhere; see cpu_has_native_bf16 for CPUs without
    bf16 units, where bf16 is emulated and many times slower)."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r}; use auto, fp32 or bf16")
    if device.type == "cuda":
        # Measured on an H200 (bench/README.md): the small conv nets step faster in fp32/TF32 than
        # under bf16 autocast (the casts cost more than they save), and the VAE's likelihood wants
        # full precision anyway; the transformer gains from bf16.
        if kind != "char-lm":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if kind in ("dcgan", "char-lm") and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX). Without it, PyTorch
    emulates bf16 matmuls and autocast is 10-25x *slower* than fp32: measured on a 2-core AMD
    EPYC without those units, a char-lm step took 29-66 s under bf16 autocast and 2.4 s in fp32
    (the Intel machine of bench/train_throughput.py, with AMX, ran bf16 ~2x faster)."""
    probes = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    try:
        return any(bool(p()) for p in probes if p is not None)
    except Exception:  # noqa: BLE001 - an unknown build: be safe, fp32 is always correct
        return False


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
