"""Effect sizes the studies share: log-log slopes and rates, each with its 95% interval.

A scaling law y ~ c x^p is measured as the least-squares slope p of log10(y) on log10(x). Where
the data come as groups of runs at each x (starts, seeds), the slope is fitted to each group's
median and its interval is a percentile bootstrap that resamples the runs of every group
independently (Efron & Tibshirani 1993, ch. 13; :func:`optzoo.stats.bootstrap`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from optzoo.stats import bootstrap, wilson


def slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log10(y) on log10(x); NaN with fewer than two finite points."""
    with np.errstate(divide="ignore", invalid="ignore"):
        lx, ly = np.log10(np.asarray(x, dtype=float)), np.log10(np.asarray(y, dtype=float))
    ok = np.isfinite(lx) & np.isfinite(ly)
    if ok.sum() < 2:
        return math.nan
    dx = lx[ok] - lx[ok].mean()
    sxx = float((dx * dx).sum())
    # Closed-form least squares: the bootstrap calls this thousands of times.
    return float((dx * (ly[ok] - ly[ok].mean())).sum() / sxx) if sxx > 0 else math.nan


def group_slope(
    x: Sequence[float], groups: Sequence[np.ndarray], n_boot: int = 1000, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """Slope of log10(median of each group) on log10(x), with a bootstrap interval."""
    xs = list(x)
    arrays = [np.asarray(g, dtype=float) for g in groups]

    def stat(*gs: np.ndarray) -> float:
        return slope(xs, [np.median(g) for g in gs])

    point = stat(*arrays)
    return point, bootstrap(arrays, stat, n_boot=n_boot, seed=seed)


def point_slope(
    x: np.ndarray, y: np.ndarray, n_boot: int = 1000, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """Slope of log10(y) on log10(x) over paired points, with a bootstrap over the pairs."""
    pairs = np.stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)], axis=1)
    point = slope(pairs[:, 0], pairs[:, 1])
    return point, bootstrap(pairs, lambda p: slope(p[:, 0], p[:, 1]), n_boot=n_boot, seed=seed)


def rate(flags: np.ndarray) -> tuple[float, tuple[float, float], int, int]:
    """A proportion of True with its Wilson interval: ``(p, (lo, hi), k, n)``."""
    f = np.asarray(flags, dtype=bool)
    k, n = int(f.sum()), int(f.size)
    lo, hi = wilson(k, n)
    # Wilson's bound at k = 0 (or n) is 0 (or 1) up to round-off; print it as such.
    lo, hi = (0.0 if k == 0 else lo), (1.0 if k == n else hi)
    return (k / n if n else math.nan), (lo, hi), k, n


def fmt_ci(value: float, ci: tuple[float, float], digits: int = 3) -> str:
    """``value [lo, hi]`` in ``digits`` significant figures."""
    return f"{value:.{digits}g} [{ci[0]:.{digits}g}, {ci[1]:.{digits}g}]"
