"""Distances between two sets of features: Fréchet distance (FID's formula) and KID.

Both are plain numpy/scipy on float64 so that the numbers do not depend on the device that
produced the features. The Fréchet distance follows the reference implementation (Heusel et al.
2017, as in pytorch-fid / StyleGAN2-ADA): scipy's `sqrtm` of sigma1 @ sigma2, with a small
diagonal offset retried when the product is singular, and the real part taken once the
imaginary residue (numerical noise of the Schur method) is confirmed small. KID follows
Bińkowski et al. 2018 as implemented in torch-fidelity: the unbiased MMD² estimator with the
cubic polynomial kernel k(x, y) = (x·y / d + 1)³, averaged over 100 random subsets of 1000
samples from each side; its standard deviation over subsets is reported alongside.
"""
from __future__ import annotations

import warnings

import numpy as np


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of an N x D feature matrix in float64; sigma is the unbiased covariance
    (np.cov, rowvar=False), as every FID implementation uses."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need an N x D feature matrix with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _sqrtm(a: np.ndarray) -> np.ndarray:
    import scipy.linalg

    with warnings.catch_warnings():
        # scipy < 1.16 prints/warns about ill-conditioning; we check the result ourselves
        warnings.simplefilter("ignore")
        return scipy.linalg.sqrtm(a)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    |mu1 - mu2|² + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^½).

    Why the fallbacks: with fewer samples than dimensions (quick runs, a classifier with dead
    ReLUs) the covariances are singular, sqrtm can return inf/NaN or a complex result; as in
    the reference code the product is then recomputed with eps added to both diagonals. A
    remaining imaginary part larger than 1e-3 on the diagonal is reported with a warning
    (the reference raises; a training curve should not die of it) and the real part is used."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag).max()
        if imag > 1e-3:
            warnings.warn(f"frechet_distance: sqrtm left an imaginary component of {imag:.3g}; "
                          "using the real part (too few samples for the feature dimension?)",
                          RuntimeWarning, stacklevel=2)
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_distance_features(f1: np.ndarray, f2: np.ndarray) -> float:
    """Fréchet distance between two feature matrices (convenience for tests and small sets)."""
    return frechet_distance(*feature_stats(f1), *feature_stats(f2))


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with the cubic polynomial kernel (torch-fidelity's kernel_mmd)."""
    d = x.shape[1]
    m = x.shape[0]
    k_xx = (x @ x.T / d + 1.0) ** 3
    k_yy = (y @ y.T / d + 1.0) ** 3
    k_xy = (x @ y.T / d + 1.0) ** 3
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(features1: np.ndarray, features2: np.ndarray, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float, int]:
    """KID between two feature sets: (mean, std, subset size used) of the unbiased MMD² over
    `subsets` random subsets drawn without replacement from each side.

    The subset size shrinks to the smaller set when fewer than `subset_size` samples exist
    (quick runs); such numbers are noisier and not comparable with published 1000-subset KIDs,
    which is why the size actually used is returned."""
    f1 = np.asarray(features1, dtype=np.float64)
    f2 = np.asarray(features2, dtype=np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"KID needs two N x D feature matrices, got {f1.shape} and {f2.shape}")
    m = min(int(subset_size), len(f1), len(f2))
    if m < 2:
        raise ValueError("KID needs at least 2 samples on each side")
    rng = np.random.RandomState(seed)
    values = np.empty(int(subsets))
    for i in range(int(subsets)):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        values[i] = _mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std()), m
