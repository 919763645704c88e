"""Uncertainty for published numbers: Wilson intervals, seeded bootstrap, rank-sum tests.

Every success rate the suite or a study publishes carries a Wilson score interval; every mean
runtime, aRT or effect size a percentile-bootstrap interval from a fixed seed (so the same data
give the same interval); a "best" or a difference is called only where a two-sided rank-sum test,
Bonferroni-corrected for the number of comparisons, rejects equality (as COCO's tables do).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / n``.

    ``(p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` (Wilson 1927; Brown, Cai &
    DasGupta 2001). ``(nan, nan)`` when ``n == 0``.
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson needs 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    denom = 1 + z2 / n
    return (max(0.0, (centre - half) / denom), min(1.0, (centre + half) / denom))


def bootstrap(
    samples: Sequence[np.ndarray] | np.ndarray,
    statistic: Callable[..., float],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` (Efron & Tibshirani 1993, ch. 13).

    ``samples`` is one array, or a sequence of arrays resampled independently (for a statistic of
    two groups, such as a difference of means). Resampling uses a seeded generator, so the same
    data always give the same interval. Non-finite replicates (an aRT with no success in the
    resample) are kept: a percentile may then be ``inf``.
    """
    if isinstance(samples, np.ndarray):
        groups = [samples]
    else:
        groups = [np.asarray(s) for s in samples]
    if any(len(g) == 0 for g in groups):
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for b in range(n_boot):
        reps[b] = statistic(*(g[rng.integers(0, len(g), len(g))] for g in groups))
    # Outer order statistics rather than interpolation: a replicate may be inf (inf - inf is nan).
    reps.sort()
    alpha = (1 - level) / 2
    lo = reps[math.floor(alpha * (n_boot - 1))]
    hi = reps[math.ceil((1 - alpha) * (n_boot - 1))]
    return (float(lo), float(hi))


def art_interval(
    runtimes: np.ndarray, solved: np.ndarray, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Bootstrap interval of COCO's average runtime, ``sum(RT) / #successes``, over runs."""
    rt = np.asarray(runtimes, dtype=float)
    ok = np.asarray(solved, dtype=bool)

    def art(idx_rt: np.ndarray, idx_ok: np.ndarray) -> float:
        k = idx_ok.sum()
        return float(idx_rt.sum() / k) if k else math.inf

    pairs = np.stack([rt, ok.astype(float)], axis=1)
    return bootstrap(pairs, lambda p: art(p[:, 0], p[:, 1] > 0), n_boot=n_boot, seed=seed)


def ranksum_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of the Wilcoxon rank-sum (Mann-Whitney U) test of ``a`` against ``b``."""
    from scipy.stats import mannwhitneyu

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        return math.nan
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


def significantly_different(
    a: np.ndarray, b: np.ndarray, comparisons: int = 1, alpha: float = 0.05
) -> bool:
    """Whether the rank-sum test rejects equality at ``alpha``, Bonferroni-corrected."""
    p = ranksum_p(a, b)
    return bool(p == p and p < alpha / max(1, comparisons))
