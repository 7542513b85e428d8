"""How much of a model's Inception FID is its pixel intensities rather than its shapes?

    python bench/fid_intensity.py dcgan-mnist --data mnist --n 1000

Draws N samples (seed 0) and measures FID against the cached 10k test statistics three ways: as
drawn; with the faint haze removed (pixels <= 8 of 255 set to 0, as the data's background is);
and with every pixel value mapped monotonically so that the samples' intensity histogram matches
the training images' (shapes kept, intensities made the data's). If the last two are close to the
first, intensities are not what FID is charging for. Also prints the intensity histograms' key
fractions. One JSON line per figure; FID on N < 10,000 is biased upwards, so compare the three
with each other, not with a 10k FID.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


import numpy as np  # noqa: E402

from aigc.checkpoint import from_pretrained  # noqa: E402
from aigc.data import load_dataset  # noqa: E402
from aigc.eval import generate_samples  # noqa: E402
from aigc.eval.frechet import feature_stats, frechet_distance  # noqa: E402
from aigc.eval.inception import inception_features  # noqa: E402
from aigc.eval.realstats import real_stats  # noqa: E402
from aigc.hub import resolve_model_path  # noqa: E402


def fractions(a: np.ndarray) -> dict:
    a = a.astype(np.int64).ravel()
    return {"zero": round(float((a == 0).mean()), 4), "haze_1_8": round(float(((a > 0) & (a <= 8)).mean()), 4),
            "core_ge_250": round(float((a >= 250).mean()), 4)}


def histogram_match(images: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """A monotone lookup table that gives `images` the intensity quantiles of `reference`."""
    q = np.linspace(0, 1, 2001)
    src = np.quantile(images.ravel(), q) + np.arange(len(q)) * 1e-6   # strictly increasing
    dst = np.quantile(reference.ravel(), q)
    lut = np.clip(np.round(np.interp(np.arange(256), src, dst)), 0, 255).astype(np.uint8)
    return lut[images]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a name under weights/ or a saved model folder")
    ap.add_argument("--data", default="mnist", help="dataset whose cached test statistics to use (default mnist)")
    ap.add_argument("--n", type=int, default=1000, help="samples (default 1000; ~4 minutes per variant on one core)")
    a = ap.parse_args(argv)
    real = real_stats(a.data, "test")
    images, _ = generate_samples(from_pretrained(resolve_model_path(a.model)), a.n, seed=0)
    train = np.asarray(load_dataset(a.data, "train").images[:10000])
    print(json.dumps({"pixels": "samples", **fractions(images)}))
    print(json.dumps({"pixels": "training images", **fractions(train)}), flush=True)
    variants = {"as drawn": images, "haze removed": np.where(images <= 8, 0, images).astype(np.uint8),
                "histogram matched": histogram_match(images, train)}
    for name, v in variants.items():
        t = time.time()
        mu, sigma = feature_stats(inception_features(v))
        fid = frechet_distance(mu, sigma, real["mu"], real["sigma"])
        print(json.dumps({"model": a.model, "variant": name, "n": a.n, "fid": round(float(fid), 2),
                          "seconds": round(time.time() - t)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
