"""Intervals and tests against closed forms and published values."""

import math

import numpy as np
import pytest

from optzoo import stats


@pytest.mark.parametrize(
    "k,n,lo,hi",
    [
        # Brown, Cai & DasGupta (2001) and the closed form evaluated by hand with z = 1.95996.
        (7, 9, 0.4526, 0.9368),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (15, 30, 0.3315, 0.6685),
    ],
)
def test_wilson_matches_hand_computed_values(k, n, lo, hi):
    got = stats.wilson(k, n)
    assert got == pytest.approx((lo, hi), abs=5e-4)


def test_wilson_is_symmetric_and_refuses_nonsense():
    lo, hi = stats.wilson(3, 20)
    lo2, hi2 = stats.wilson(17, 20)
    assert lo == pytest.approx(1 - hi2) and hi == pytest.approx(1 - lo2)
    assert all(math.isnan(v) for v in stats.wilson(0, 0))
    with pytest.raises(ValueError):
        stats.wilson(5, 3)


def test_bootstrap_mean_interval_covers_normal_theory_interval():
    # For n = 400 normal draws the percentile bootstrap of the mean approaches mean +- 1.96 s/sqrt(n).
    x = np.random.default_rng(1).normal(3.0, 2.0, 400)
    lo, hi = stats.bootstrap(x, np.mean, n_boot=4000, seed=3)
    half = 1.959964 * x.std(ddof=1) / math.sqrt(len(x))
    assert lo == pytest.approx(x.mean() - half, abs=0.15 * half)
    assert hi == pytest.approx(x.mean() + half, abs=0.15 * half)
    assert stats.bootstrap(x, np.mean, seed=3) == stats.bootstrap(x, np.mean, seed=3)


def test_art_interval_brackets_art_and_is_infinite_without_successes():
    rt = np.array([10.0, 20.0, 30.0, 100.0, 100.0])
    ok = np.array([True, True, True, False, False])
    lo, hi = stats.art_interval(rt, ok, seed=0)
    assert lo <= rt.sum() / ok.sum() <= hi
    assert stats.art_interval(rt, np.zeros(5, bool))[0] == math.inf


def test_ranksum_against_scipy_exact_case():
    # Two fully separated samples of 5 and 5: exact two-sided p = 2 / C(10, 5) = 0.00794.
    p = stats.ranksum_p(np.arange(5.0), np.arange(5.0) + 10)
    assert p == pytest.approx(2 / math.comb(10, 5), rel=1e-9)
    assert stats.significantly_different(np.arange(5.0), np.arange(5.0) + 10)
    assert not stats.significantly_different(np.arange(5.0), np.arange(5.0) + 10, comparisons=10)
