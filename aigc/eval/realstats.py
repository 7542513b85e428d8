"""Inception statistics of a real image set, computed once and cached on disk.

Why a cache: the real side of FID/KID is the same 10,000 test images for every model and every
evaluation, and on a CPU one pass through Inception takes over an hour. The cache holds mu and
sigma (float64, for FID) and the features themselves (float16, for KID) in one safetensors
file under `<repo>/cache/fid/` (or `$AIGC_CACHE/fid/`), written atomically so that a crash or
a concurrent evaluation never leaves a half-written file that a later run would trust.

The file name carries the dataset, the split, the sha1 of the Inception file and the
preprocessing version, so a different network or a changed resize never reuses stale numbers;
the same facts are stored in the file's metadata and checked again on load.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from aigc.checkpoint import atomic_path
from aigc.data.images import canonical_name, load_dataset
import aigc.eval.inception as inception
from aigc.eval.frechet import feature_stats
from aigc.hub import REPO_ROOT

ENV_CACHE = "AIGC_CACHE"
FORMAT = "aigc-fid-stats/1"

_MEMO: dict[str, dict] = {}


def cache_root() -> Path:
    """`$AIGC_CACHE` if set, else `<repo>/cache` (gitignored); FID statistics live in `fid/` below."""
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else REPO_ROOT / "cache"


def stats_path(dataset: str, split: str = "test") -> Path:
    """Where the statistics of `dataset`/`split` for the current Inception file are cached."""
    info = inception.inception_info()
    name = canonical_name(dataset)
    return (cache_root() / "fid" /
            f"{name}-{split}-inception-{info['sha1'][:16]}-{inception.PREPROCESS_VERSION}.safetensors")


def _load(path: Path, expect: dict) -> dict | None:
    """Read a cache file; None (recompute) if it is unreadable or describes something else."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
        info = json.loads(meta.get("info", "{}"))
        if any(info.get(k) != v for k, v in expect.items()):
            return None
        arrays = load_file(str(path))
        mu, sigma, feats = arrays["mu"], arrays["sigma"], arrays["features"]
        d = inception.FEATURE_DIM
        if mu.shape != (d,) or sigma.shape != (d, d) or feats.ndim != 2 or feats.shape[1] != d:
            return None
        if int(info.get("n", -1)) != len(feats):          # metadata that does not describe the arrays
            return None
        if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
            return None
    except Exception:  # noqa: BLE001 - any unreadable cache file is simply recomputed
        return None
    return {"mu": mu.astype(np.float64), "sigma": sigma.astype(np.float64),
            "features": feats, "n": int(info["n"]), "path": str(path), "info": info}


def real_stats(dataset: str, split: str = "test", device: str = "cpu", batch_size: int | None = None,
               log: Callable[[str], None] | None = None, recompute: bool = False) -> dict:
    """Inception statistics of every image of `dataset`/`split`:
    {'mu': (2048,) float64, 'sigma': (2048, 2048) float64, 'features': (N, 2048) float16,
     'n': N, 'path': cache file, 'info': metadata}.

    Read from the cache when present and valid, else computed (all N images, on `device`) and
    written atomically. Memoised per process as well."""
    path = stats_path(dataset, split)
    info = inception.inception_info()
    expect = {"format": FORMAT, "dataset": canonical_name(dataset), "split": split,
              "inception_sha1": info["sha1"], "preprocess": inception.PREPROCESS_VERSION}
    key = str(path)
    if not recompute:
        if key in _MEMO:
            return _MEMO[key]
        if path.is_file():
            stats = _load(path, expect)
            if stats is not None:
                _MEMO[key] = stats
                return stats
            if log:
                log(f"real stats: ignoring unreadable or stale cache {path}")
    data = load_dataset(dataset, split)
    if log:
        log(f"real stats: Inception features of {len(data)} {expect['dataset']} {split} images "
            f"on {device} (cached afterwards in {path})")
    feats = inception.inception_features(data.images, device=device, batch_size=batch_size, log=log)
    mu, sigma = feature_stats(feats)
    meta = dict(expect, n=len(feats), network=info["name"])
    from safetensors.numpy import save_file

    with atomic_path(path) as tmp:
        save_file({"mu": mu, "sigma": sigma, "features": feats.astype(np.float16)}, str(tmp),
                  metadata={"info": json.dumps(meta)})
    stats = {"mu": mu, "sigma": sigma, "features": feats.astype(np.float16), "n": len(feats),
             "path": str(path), "info": meta}
    _MEMO[key] = stats
    return stats
