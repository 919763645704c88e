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
    """Bootstrap interval of COCO's average runtime, ``sum(RT) / #successes``, over runs.

    The same resamples and percentiles as :func:`bootstrap` with the same seed, drawn as one
    ``(n_boot, runs)`` index array (a table of hundreds of intervals takes milliseconds).
    """
    rt = np.asarray(runtimes, dtype=float)
    ok = np.asarray(solved, dtype=bool)
    if rt.size == 0:
        return (math.nan, math.nan)
    idx = np.random.default_rng(seed).integers(0, rt.size, (n_boot, rt.size))
    k = ok[idx].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = np.where(k > 0, rt[idx].sum(axis=1) / np.maximum(k, 1), math.inf)
    return _percentiles(reps, 0.95)


def ecdf_band(
    hits: Sequence[np.ndarray], budgets: np.ndarray, n_boot: int = 200, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile-bootstrap band of a runtime ECDF (``metrics.runtime_ecdf``'s definition).

    Each problem's runs (rows of its hit matrix) are resampled independently, as COCO does for
    its ECDF bands; returns ``(lo, hi)`` at each budget.
    """
    budgets = np.asarray(budgets, dtype=float)
    mats = [np.asarray(h) for h in hits if np.asarray(h).size]
    if not mats:
        z = np.zeros_like(budgets)
        return z, z
    rng = np.random.default_rng(seed)
    reps = np.zeros((n_boot, budgets.size))
    for h in mats:
        cost = np.where(h >= 0, h, np.inf).astype(float)
        for b in range(n_boot):
            v = np.sort(cost[rng.integers(0, len(h), len(h))].ravel())
            reps[b] += np.searchsorted(v, budgets, side="right") / h.size
    reps /= len(mats)
    alpha = 0.025
    lo = np.quantile(reps, alpha, axis=0, method="lower")
    hi = np.quantile(reps, 1 - alpha, axis=0, method="higher")
    return lo, hi


def _percentiles(reps: np.ndarray, level: float) -> tuple[float, float]:
    """Outer order statistics (no interpolation: a replicate may be inf, and inf - inf is nan)."""
    reps = np.sort(reps)
    n = len(reps)
    alpha = (1 - level) / 2
    return (float(reps[math.floor(alpha * (n - 1))]), float(reps[math.ceil((1 - alpha) * (n - 1))]))


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


def best_is_significant(
    samples: dict[str, np.ndarray], higher_is_better: bool = True, alpha: float = 0.05
) -> str | None:
    """The key whose sample has the best mean, if a rank-sum test, Bonferroni-corrected over the
    other keys, tells it from every one of them (COCO's rule for a bold "best"); else None."""
    keys = [k for k, v in samples.items() if len(v)]
    if len(keys) < 2:
        return None
    sign = 1.0 if higher_is_better else -1.0
    best = max(keys, key=lambda k: sign * float(np.mean(samples[k])))
    others = [k for k in keys if k != best]
    ok = all(
        sign * np.mean(samples[best]) > sign * np.mean(samples[k])
        and significantly_different(samples[best], samples[k], len(others), alpha)
        for k in others
    )
    return best if ok else None


def binary(successes: int, n: int) -> np.ndarray:
    """``n`` outcomes with ``successes`` ones: rank tests on success need only the counts."""
    return np.r_[np.ones(int(successes)), np.zeros(int(n) - int(successes))]
