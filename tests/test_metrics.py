"""Metrics against hand-computed values: runtimes, aRT, ECDF, performance profiles, tuning."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from optzoo import metrics, tuning
from optzoo.config import OptimizerSpec, Suite
from optzoo.harness import run_cell
from optzoo.problems import Problem


def test_ladder_is_cocos():
    """delta_f = 10^(2 - i/5) for i = 0 .. 50: 10^2 down to 10^-8 in steps of 10^0.2 (COCO)."""
    expected = [10.0 ** (2 - i / 5) for i in range(51)]
    np.testing.assert_allclose(metrics.LADDER, expected, rtol=1e-14, atol=0)
    ratios = metrics.LADDER[:-1] / metrics.LADDER[1:]
    np.testing.assert_allclose(ratios, 10**0.2, rtol=1e-13)
    # The targets the tables show sit on whole decades: 1e1 .. 1e-8 at every fifth rung.
    for i, delta in [
        (5, 1e1),
        (10, 1e0),
        (15, 1e-1),
        (20, 1e-2),
        (25, 1e-3),
        (35, 1e-5),
        (45, 1e-7),
        (50, 1e-8),
    ]:
        assert metrics.ladder_index(delta) == i
        assert metrics.LADDER[i] == pytest.approx(delta, rel=1e-14)
    # Between rungs, the nearest one (on the log scale); outside the ladder, its ends.
    assert metrics.ladder_index(10**-0.88) == 14 and metrics.ladder_index(10**-0.92) == 15
    assert metrics.ladder_index(1e9) == 0 and metrics.ladder_index(1e-12) == 50


def test_the_harness_records_first_hits_on_the_same_ladder():
    """SGD with lr 0.5 on 0.5|x|^2 has f_k = 0.5 |x0|^2 / 4^k, so the first step at which each
    rung 10^(2 - i/5) is reached is known in closed form, run by run."""
    bowl = Problem(
        fn=lambda x: 0.5 * (x**2).sum(-1), x0=[4.0, -8.0], f_star=0.0, bounds=[-9.0, 9.0]
    )
    suite = Suite(name="ladder", problems=(), optimizers=(), steps=40, starts=4)
    runs = run_cell(suite, bowl, OptimizerSpec("sgd", {"lr": [0.5]})).runs
    for x0, steps_to in zip(runs["x0"], runs["steps_to"], strict=True):
        f0 = 0.5 * float(np.sum(np.square(x0)))
        expected = [
            max(0, math.ceil(math.log(10.0 ** (2 - i / 5) / f0) / math.log(0.25)))
            for i in range(51)
        ]
        assert list(steps_to) == expected


def test_runtime_uses_total_evals_for_unreached_targets():
    hits = np.array([[5, -1], [3, 7]])
    total = np.array([40, 9])
    assert metrics.runtime(hits, total).tolist() == [[5.0, 40.0], [3.0, 7.0]]
    assert metrics.runtime(np.array([-1, 4]), np.array([12, 4])).tolist() == [12.0, 4.0]


def test_art_is_infinite_when_every_run_fails():
    assert metrics.art(np.array([-1, -1, -1]), np.array([100, 50, 70])) == math.inf


def test_art_with_mixed_success():
    # Two successes at 10 and 20 evaluations, one failure after 100: (10 + 20 + 100) / 2.
    assert metrics.art(np.array([10, 20, -1]), np.array([10, 20, 100])) == 65.0
    # Per target: target 0 reached by both, target 1 by none.
    out = metrics.art(np.array([[2, -1], [4, -1]]), np.array([8, 6]))
    assert out.tolist() == [3.0, math.inf]


def test_success_rate_and_divergence_and_endpoints():
    assert metrics.success_rate(np.array([3, -1, 5, -1])) == 0.5
    assert metrics.divergence_count(["budget", "diverged", "solved", "diverged"]) == 2
    ends = ["saddle"] * 37 + ["minimum"] * 27
    assert metrics.endpoint_counts(ends) == "saddle 37/64, minimum 27/64"
    # Equal counts are ordered by name, so the text is deterministic.
    assert metrics.endpoint_counts(["b", "a"]) == "a 1/2, b 1/2"


def test_quartiles():
    assert metrics.quartiles([1, 2, 3, 4]) == (1.75, 2.5, 3.25)
    assert all(math.isnan(v) for v in metrics.quartiles([]))
    # Infinities (diverged runs) order last instead of turning the quantiles into NaN.
    assert metrics.quartiles([1.0, math.inf, math.inf]) == (math.inf, math.inf, math.inf)
    assert metrics.quartiles([1.0, 3.0, math.inf])[:2] == (2.0, 3.0)
    assert metrics.to_target_quartiles(np.array([-1, 10, 20, -1, 30])) == (15.0, 20.0, 25.0)


def test_runtime_ecdf_by_hand():
    p1 = np.array([[1, 10], [-1, -1]])  # 2 runs x 2 targets; the second run fails both
    p2 = np.array([[5]])  # 1 run x 1 target
    budgets = np.array([0, 1, 5, 10, 100])
    # p1: 0, 1/4, 1/4, 2/4, 2/4; p2: 0, 0, 1, 1, 1; each problem weighs 1/2.
    expect = [0.0, 0.125, 0.625, 0.75, 0.75]
    assert metrics.runtime_ecdf([p1, p2], budgets) == pytest.approx(expect)
    assert metrics.runtime_ecdf([], budgets).tolist() == [0.0] * 5


def test_performance_profile_by_hand():
    cost = pd.DataFrame(
        {"A": [10.0, 20.0, math.inf], "B": [20.0, 10.0, 30.0]}, index=["p1", "p2", "p3"]
    )
    rho = metrics.performance_profile(cost, np.array([1.0, 1.5, 2.0, 100.0]))
    # A: ratio 1 on p1, 2 on p2, unsolved p3. B: 2 on p1, 1 on p2, 1 on p3.
    assert rho["A"].tolist() == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert rho["B"].tolist() == pytest.approx([2 / 3, 2 / 3, 1.0, 1.0])
    # A problem no solver solves counts for none.
    both = pd.DataFrame({"A": [1.0, math.inf], "B": [2.0, np.nan]})
    assert metrics.performance_profile(both, np.array([10.0]))["A"].tolist() == [0.5]


def _stats(rows):
    cols = ["problem", "category", "optimizer", "hp_id", "hp", "lr", "art", "success_rate",
            "successes", "runs", "f_final_q50"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def test_best_lr_per_problem():
    s = _stats(
        [
            # p: aRT 50 twice; the tie goes to the higher success rate (hp 2).
            ("p", "c", "o", 0, "a", 0.1, 100.0, 0.5, 2, 4, 1.0),
            ("p", "c", "o", 1, "b", 0.01, 50.0, 0.5, 2, 4, 1.0),
            ("p", "c", "o", 2, "c", 0.001, 50.0, 1.0, 4, 4, 1.0),
            # q: nobody succeeds; the lowest median final f wins (hp 1).
            ("q", "c", "o", 0, "a", 0.1, math.inf, 0.0, 0, 4, 3.0),
            ("q", "c", "o", 1, "b", 0.01, math.inf, 0.0, 0, 4, 1.0),
            ("q", "c", "o", 2, "c", 0.001, math.inf, 0.0, 0, 4, 2.0),
        ]
    )
    best = tuning.best_per_problem(s).set_index("problem")
    assert best.loc["p", "hp_id"] == 2
    assert best.loc["q", "hp_id"] == 1


def test_near_tied_arts_go_to_the_lower_hp_id():
    s = _stats(
        [
            # p: 100.5 lies within 1% of 100, so the grid's order decides (hp 1), not round-off.
            ("p", "c", "o", 1, "a", 0.1, 100.5, 1.0, 4, 4, 1e-20),
            ("p", "c", "o", 3, "b", 0.01, 100.0, 1.0, 4, 4, 1e-9),
            # q: 102 is 2% slower than 100: a real difference, the faster setting wins (hp 3).
            ("q", "c", "o", 1, "a", 0.1, 102.0, 1.0, 4, 4, 1e-20),
            ("q", "c", "o", 3, "b", 0.01, 100.0, 1.0, 4, 4, 1e-9),
            # r: equal aRTs, both solved: final f 1e-26 against 3e-26 is round-off, not a reason.
            ("r", "c", "o", 0, "a", 0.1, 31.0, 1.0, 4, 4, 3e-26),
            ("r", "c", "o", 1, "b", 0.01, 31.0, 1.0, 4, 4, 1e-26),
            # t: within the band the higher success rate (a count) comes first.
            ("t", "c", "o", 0, "a", 0.1, 100.4, 0.5, 2, 4, 0.0),
            ("t", "c", "o", 1, "b", 0.01, 100.0, 0.25, 1, 4, 0.0),
        ]
    )
    best = tuning.best_per_problem(s).set_index("problem")["hp_id"].to_dict()
    assert best == {"p": 1, "q": 3, "r": 0, "t": 0}


def test_round_off_in_the_arts_does_not_change_the_choice():
    # Another CPU's kernels round otherwise, which can move a run's evaluation count by one: an
    # aRT of a few hundred by a few tenths of a percent. Unless a setting's aRT sits that close
    # to the tie band's edge, the chosen setting must not move.
    rng = np.random.default_rng(0)
    eps, checked = 2e-3, 0
    for _ in range(2000):
        n = int(rng.integers(2, 8))
        art = 50.0 * (1.0 + rng.choice([0.0, 0.002, 0.005, 0.03, 0.5], n) * rng.random(n))
        art[rng.random(n) < 0.2] = math.inf
        rate = rng.integers(1, 5, n) / 4.0
        f50, hp = rng.random(n), rng.permutation(n)
        best = art.min()
        edge = best * (1 + tuning.ART_TIE)
        if not np.isfinite(best) or np.any(np.abs(art / edge - 1) < 4 * eps):
            continue
        moved = art * (1 + eps * rng.uniform(-1, 1, n))
        assert tuning.pick_setting(art, rate, f50, hp) == tuning.pick_setting(moved, rate, f50, hp)
        checked += 1
    assert checked > 800  # the old rule (strict lowest aRT) moves on about a quarter of these


def test_near_tied_category_ratios_go_to_the_lower_hp_id():
    # Equal success; mean log10 aRT ratios 0 and log10(1.004) lie within log10(1.01): a tie, so
    # the lower hp_id, whatever the final-f gaps say. The default, 2% slower on both, loses.
    s = _stats(
        [
            ("p", "c", "o", 0, "a", 0.1, 100.4, 1.0, 4, 4, 0.0),
            ("p", "c", "o", 1, "b", 0.01, 100.0, 1.0, 4, 4, 1.0),
            ("q", "c", "o", 0, "a", 0.1, 50.2, 1.0, 4, 4, 0.0),
            ("q", "c", "o", 1, "b", 0.01, 50.0, 1.0, 4, 4, 1.0),
            ("r", "d", "o", 0, "a", 0.1, 102.0, 1.0, 4, 4, 0.0),
            ("r", "d", "o", 1, "b", 0.01, 100.0, 1.0, 4, 4, 1.0),
        ]
    )
    chosen = tuning.per_category(s).groupby("category")["cat_lr"].first().to_dict()
    assert chosen == {"c": 0.1, "d": 0.01}


def test_one_lr_per_category():
    s = _stats(
        [
            # Setting "a" solves both problems but slowly on p; "b" is fast on p, fails q.
            ("p", "c", "o", 0, "a", 0.1, 400.0, 1.0, 4, 4, 0.0),
            ("p", "c", "o", 1, "b", 0.01, 100.0, 1.0, 4, 4, 0.0),
            ("q", "c", "o", 0, "a", 0.1, 200.0, 1.0, 4, 4, 0.0),
            ("q", "c", "o", 1, "b", 0.01, math.inf, 0.0, 0, 4, 5.0),
            # Category d: equal success; "b" has the lower aRT ratio (log10(1) vs log10(2)).
            ("r", "d", "o", 0, "a", 0.1, 200.0, 1.0, 4, 4, 0.0),
            ("r", "d", "o", 1, "b", 0.01, 100.0, 1.0, 4, 4, 0.0),
        ]
    )
    out = tuning.per_category(s)
    chosen = out.groupby("category")["cat_lr"].first().to_dict()
    assert chosen == {"c": 0.1, "d": 0.01}
    assert sorted(out[out["category"] == "c"]["problem"]) == ["p", "q"]


def test_problem_hits_escape_and_reference_value():
    runs = pd.DataFrame(
        {
            "optimizer": ["o", "o", "o"],
            "run": [0, 1, 2],
            "status": ["solved", "budget", "solved"],
            "evals": [12, 50, 3],
            "steps": [11, 50, 2],
        }
    )
    h = metrics.problem_hits(runs, {"f_star": None, "saddles": [[0.0, 0.0]]})
    assert h.kind == "escape"
    assert h.evals[:, 0].tolist() == [12, -1, 3]
    assert h.success.tolist() == [True, False, True]

    # Neither f* nor a saddle: targets relative to the lowest f in the traces (here 1.0).
    traces = pd.DataFrame(
        {
            "optimizer": ["o"] * 6,
            "run": [0, 0, 0, 1, 1, 1],
            "step": [0, 1, 2, 0, 1, 2],
            "evals": [1, 2, 3, 1, 2, 3],
            "f": [102.0, 11.0, 1.0, 50.0, 30.0, 40.0],
        }
    )
    h = metrics.problem_hits(runs.iloc[:2], {"f_star": None, "saddles": []}, traces)
    assert h.kind == "f_ref" and h.f_ref == 1.0
    col = {t: metrics.ladder_index(t) for t in (1e2, 1e1, 1e-8)}
    assert h.evals[0, col[1e2]] == 2  # f - f_ref = 10 <= 100 at evals 2
    assert h.evals[0, col[1e1]] == 2
    assert h.evals[0, col[1e-8]] == 3
    assert h.evals[1, col[1e2]] == 1  # 49 <= 100 at once
    assert h.evals[1, col[1e1]] == -1  # never within 10 of f_ref
    assert h.steps[0, col[1e-8]] == 2
    # A run that stopped between two logged steps: its last iterate closes its trace.
    ended = runs.iloc[:2].assign(f_final=[1.0, 6.0], evals=[3, 7], steps=[2, 6])
    h = metrics.problem_hits(ended, {"f_star": None, "saddles": []}, traces)
    assert h.evals[1, col[1e1]] == 7 and h.steps[1, col[1e1]] == 6
    assert h.evals[1, col[1e-8]] == -1


def test_landscape_metrics():
    assert metrics.zigzag(np.array([10.0, 3.0, 0.0]), np.array([2.0, 3.0, 0.0]))[:2].tolist() == [
        5.0,
        1.0,
    ]
    assert math.isnan(metrics.zigzag(np.array([0.0]), np.array([0.0]))[0])
    assert metrics.path_efficiency(np.array([10.0]), np.array([2.0])).tolist() == [0.2]
    assert metrics.flat_fraction(np.array([5]), np.array([20])).tolist() == [0.25]
    assert metrics.divergence_rate(["diverged", "budget", "solved", "diverged"]) == 0.5
    assert metrics.escape_steps(np.array([-1, 4, 0, -1])).tolist() == [4.0, 0.0]
