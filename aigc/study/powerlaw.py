"""Power laws of quality against data size: y = a * n^(-b) (+ c), fitted by least squares in log space.

    fit = fit_power_law([1000, 2000, 4000], [0.30, 0.21, 0.15])
    fit.b, fit.b_err          # the exponent and its standard error
    fit.ratio(2.0)            # predicted y(2n) / y(n): 2^-b without an offset

The uncertainty of b is the standard error of the log-log regression slope (needs three or more
points); `bootstrap=` adds a percentile interval from refits on points resampled with replacement
(resamples with fewer than two distinct sizes are dropped).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

OFFSET_GRID = 200     # candidate offsets c between 0 and just below min(y) when the offset is fitted


@dataclass(frozen=True)
class PowerLawFit:
    a: float
    b: float                       # the exponent: y falls as n^-b (b < 0: y grows with n)
    c: float = 0.0                 # the floor y approaches (0 unless fitted)
    b_err: float | None = None     # standard error of b (None with two points: no residual to judge by)
    b_ci: tuple[float, float] | None = None   # bootstrap 95% interval of b, when asked for
    n_points: int = 0
    rms_log_residual: float = 0.0  # how far the points sit from the line, in log units

    def predict(self, n) -> np.ndarray | float:
        y = self.a * np.power(np.asarray(n, dtype=np.float64), -self.b) + self.c
        return float(y) if np.ndim(y) == 0 else y

    def ratio(self, k: float, n: float | None = None) -> float:
        """Predicted y(k n) / y(n); without an offset it is k^-b for every n."""
        if self.c == 0.0 or n is None:
            return float(k ** -self.b)
        return float(self.predict(k * n) / self.predict(n))

    def to_json(self) -> dict:
        d = asdict(self)
        d["b_ci"] = None if self.b_ci is None else [float(v) for v in self.b_ci]
        return d


def _line(logn: np.ndarray, logy: np.ndarray) -> tuple[float, float, float | None, float]:
    """Slope, intercept, the slope's standard error and the rms residual of logy ~ logn."""
    x = logn - logn.mean()
    sxx = float((x ** 2).sum())
    slope = float((x * (logy - logy.mean())).sum() / sxx)
    intercept = float(logy.mean() - slope * logn.mean())
    resid = logy - (intercept + slope * logn)
    rms = float(math.sqrt((resid ** 2).mean()))
    dof = len(logn) - 2
    err = float(math.sqrt((resid ** 2).sum() / dof / sxx)) if dof > 0 else None
    return slope, intercept, err, rms


def _check(n, y) -> tuple[np.ndarray, np.ndarray]:
    n = np.asarray(n, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(n) != len(y):
        raise ValueError(f"got {len(n)} sizes for {len(y)} values")
    if not (np.isfinite(n).all() and np.isfinite(y).all()):
        raise ValueError("sizes and values must be finite numbers")
    if (n <= 0).any():
        raise ValueError("data sizes must be positive")
    if len(np.unique(n)) < 2:
        raise ValueError("a power law needs values at two or more different data sizes")
    return n, y


def _fit_fixed_c(n: np.ndarray, y: np.ndarray, c: float):
    slope, intercept, err, rms = _line(np.log(n), np.log(y - c))
    return PowerLawFit(a=math.exp(intercept), b=-slope, c=c, b_err=err, n_points=len(n), rms_log_residual=rms)


def _fit_once(n: np.ndarray, y: np.ndarray, offset: bool) -> PowerLawFit:
    if not offset:
        return _fit_fixed_c(n, y, 0.0)
    top = float(y.min())
    # the floor lies below the best value measured; keep y - c well away from 0 so logs stay finite
    if top > 0:
        cands = np.linspace(0.0, top * (1 - 1e-3), OFFSET_GRID)
    else:     # values at or below zero (an unbiased KID can be): the floor lies below them
        span = float(y.max() - top) or 1.0
        cands = top - span * np.linspace(1.0, 1e-3, OFFSET_GRID)
    best = None
    for c in cands:
        if (y - c <= 0).any():
            continue
        f = _fit_fixed_c(n, y, float(c))
        if best is None or f.rms_log_residual < best.rms_log_residual:
            best = f
    if best is None:
        raise ValueError("no offset makes every value positive")
    return best


def fit_power_law(n, y, *, offset: bool = False, bootstrap: int = 0, seed: int = 0) -> PowerLawFit:
    """Least-squares fit of log(y - c) = log a - b log n. `offset`: also fit the floor c (a grid
    search below min(y)); `bootstrap`: that many refits on resampled points for a 95% interval.
    Values must be positive (above c); ValueError otherwise."""
    n, y = _check(n, y)
    if not offset and (y <= 0).any():
        raise ValueError("a power law without an offset needs positive values "
                         f"(got {float(y.min()):.4g}); fit with an offset or use a positive metric")
    fit = _fit_once(n, y, offset)
    if bootstrap:
        rng = np.random.default_rng(seed)
        bs = []
        for _ in range(int(bootstrap)):
            i = rng.integers(0, len(n), len(n))
            if len(np.unique(n[i])) < 2:
                continue
            try:
                bs.append(_fit_once(n[i], y[i], offset).b)
            except ValueError:
                continue
        if len(bs) >= 10:
            lo, hi = np.percentile(bs, [2.5, 97.5])
            fit = PowerLawFit(**{**asdict(fit), "b_ci": (float(lo), float(hi))})
    return fit
