"""The counted oracle against hand-computed counts, closed-form derivatives and torch's clipping.

The cost model, as the oracle documents it: a function value and a gradient cost one gradient
evaluation each, a Hessian-vector product two, a Hessian d HVPs, so 2d. Counts are per run, and
only runs that are active (by the call's mask and the harness's) are counted.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from optzoo.config import OptimizerSpec, Suite
from optzoo.harness import run_cell
from optzoo.problems import Oracle, Problem

f64 = torch.float64
A = torch.tensor([[3.0, 1.0, 0.0], [1.0, 2.0, -0.5], [0.0, -0.5, 1.0]], dtype=f64)
B = torch.tensor([1.0, -1.0, 2.0], dtype=f64)


def quadratic(x: torch.Tensor) -> torch.Tensor:
    """0.5 x'Ax - b'x: gradient Ax - b, Hessian A."""
    return 0.5 * ((x @ A) * x).sum(-1) - (x * B).sum(-1)


QUAD = Problem(fn=quadratic, x0=[0.0, 0.0, 0.0], name="quad")
X = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0], [0.0, 0.0, 0.0], [2.0, -2.0, 1.0]], dtype=f64)
MASK = torch.tensor


def counts(oracle: Oracle) -> dict[str, list[int]]:
    c = oracle.counts
    return {"nf": c.nf.tolist(), "ng": c.ng.tolist(), "nhvp": c.nhvp.tolist(), "nh": c.nh.tolist()}


# -- what each call costs -------------------------------------------------------------------------
def test_each_kind_of_call_costs_what_the_cost_model_says():
    """f = 1, g = 1, HVP = 2, Hessian = 2d, one call each, on the 3-D quadratic: 1+1+2+6 = 10."""
    oracle = Oracle(QUAD, 4)
    assert counts(oracle) == {k: [0] * 4 for k in ("nf", "ng", "nhvp", "nh")}
    assert oracle.grad_evals.tolist() == [0] * 4
    oracle.value(X)
    assert oracle.grad_evals.tolist() == [1] * 4
    oracle.value_and_grad(X)
    assert oracle.grad_evals.tolist() == [2] * 4
    oracle.hvp(X, torch.ones_like(X))
    assert oracle.grad_evals.tolist() == [4] * 4
    oracle.hessian(X)
    assert oracle.grad_evals.tolist() == [10] * 4
    assert counts(oracle) == {k: [1] * 4 for k in ("nf", "ng", "nhvp", "nh")}


@pytest.mark.parametrize("d", [1, 2, 7])
def test_a_hessian_costs_two_d_gradient_evaluations(d):
    p = Problem(fn=lambda x: (x**4).sum(-1), x0=[0.5] * d)
    oracle = Oracle(p, 2)
    oracle.hessian(torch.ones(2, d, dtype=f64))
    oracle.hessian(torch.ones(2, d, dtype=f64))
    assert oracle.counts.nh.tolist() == [2, 2]
    assert oracle.grad_evals.tolist() == [2 * 2 * d] * 2


def test_an_analytic_hessian_costs_the_same():
    """The cost model charges a Hessian 2d however the problem computes it."""
    p = Problem(fn=quadratic, x0=[0.0] * 3, hessian=lambda x: A.expand(x.shape[0], 3, 3))
    oracle = Oracle(p, 4)
    H = oracle.hessian(X)
    assert torch.equal(H, A.expand(4, 3, 3))
    assert oracle.grad_evals.tolist() == [6] * 4


# -- per-run counts under masks -------------------------------------------------------------------
def test_per_run_counts_follow_each_calls_mask():
    oracle = Oracle(QUAD, 4)
    oracle.value(X)  # no mask: every run
    oracle.value_and_grad(X, active=MASK([True, False, True, False]))
    oracle.hvp(X, torch.ones_like(X), active=MASK([True, True, False, False]))
    oracle.hessian(X, active=MASK([False, False, False, True]))
    oracle.value(X, active=MASK([False, True, False, False]))
    assert counts(oracle) == {
        "nf": [1, 2, 1, 1],
        "ng": [1, 0, 1, 0],
        "nhvp": [1, 1, 0, 0],
        "nh": [0, 0, 0, 1],
    }
    # nf + ng + 2 nhvp + 6 nh, run by run.
    assert oracle.grad_evals.tolist() == [1 + 1 + 2, 2 + 2, 1 + 1, 1 + 6]


def test_the_harness_mask_and_a_calls_mask_both_apply():
    oracle = Oracle(QUAD, 4)
    oracle.active = MASK([True, True, True, False])  # the harness: run 3 has stopped
    oracle.value_and_grad(X)
    oracle.value_and_grad(X, active=MASK([True, False, True, True]))  # a line search's mask
    oracle.hessian(X, active=MASK([False, True, False, True]))
    assert counts(oracle)["ng"] == [2, 1, 2, 0]
    assert counts(oracle)["nh"] == [0, 1, 0, 0]
    assert oracle.grad_evals.tolist() == [2, 1 + 6, 2, 0]


def test_inactive_runs_are_computed_but_not_counted():
    """All runs are computed (one tensor program); the frozen ones are only not charged."""
    oracle = Oracle(QUAD, 4)
    off = MASK([False, False, False, False])
    f, g = oracle.value_and_grad(X, active=off)
    hv = oracle.hvp(X, X, active=off)
    H = oracle.hessian(X, active=off)
    torch.testing.assert_close(f, quadratic(X), rtol=0, atol=0)
    torch.testing.assert_close(g, X @ A - B, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(hv, X @ A, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(H, A.expand(4, 3, 3), rtol=1e-15, atol=1e-15)
    assert oracle.grad_evals.tolist() == [0] * 4


def test_a_cost_read_earlier_keeps_its_numbers():
    """The harness reads the cost before and after a step; the later call must not change the
    earlier value in place."""
    oracle = Oracle(QUAD, 4)
    oracle.value_and_grad(X)
    before = oracle.grad_evals
    oracle.hessian(X)
    assert before.tolist() == [1] * 4 and oracle.grad_evals.tolist() == [7] * 4
    oracle.restore_evals(before)  # the harness refunds a step it did not take
    assert oracle.grad_evals.tolist() == [1] * 4


def test_an_analytic_gradient_is_one_gradient_evaluation():
    calls = []

    def grad(x):
        calls.append(x.shape)
        return x @ A - B

    p = Problem(fn=quadratic, x0=[0.0] * 3, grad=grad)
    oracle = Oracle(p, 4)
    f, g = oracle.value_and_grad(X)
    assert calls == [(4, 3)]
    assert torch.equal(g, X @ A - B) and torch.equal(f, quadratic(X))
    assert counts(oracle)["nf"] == [0] * 4 and oracle.grad_evals.tolist() == [1] * 4


# -- counts of whole runs through the harness -----------------------------------------------------
def test_runs_of_one_cell_stop_paying_when_each_is_solved():
    """SGD with lr 0.5 on 0.5|x|^2 halves x each step: f_k = 0.5 |x0|^2 / 4^k. A run is solved
    at the first k with f_k <= 1e-8; it pays the gradient at x_0 .. x_k (the one at x_k finds it
    solved), k + 1 in all, while the runs around it go on."""
    bowl = Problem(
        fn=lambda x: 0.5 * (x**2).sum(-1), x0=[1.0, -2.0, 0.5], f_star=0.0, bounds=[-3.0, 3.0]
    )
    suite = Suite(name="counts", problems=(), optimizers=(), steps=40, starts=6)
    runs = run_cell(suite, bowl, OptimizerSpec("sgd", {"lr": [0.5]})).runs
    sq = torch.as_tensor(np.stack(runs["x0"]), dtype=f64).pow(2).sum(-1)
    solved_at = [math.ceil(math.log(2e-8 / s) / math.log(0.25)) for s in sq.tolist()]
    assert len(set(solved_at)) > 1  # the runs stop at different steps
    assert runs["steps"].tolist() == solved_at
    assert runs["ng"].tolist() == [k + 1 for k in solved_at]
    assert runs["evals"].tolist() == [k + 1 for k in solved_at]
    assert (runs["nf"] == 0).all() and (runs["nhvp"] == 0).all() and (runs["nh"] == 0).all()


def test_a_newton_run_is_charged_2d_per_hessian():
    """Newton pays one gradient and one Hessian per evaluation point: evals = ng + 2d nh."""
    suite = Suite(name="counts", problems=(), optimizers=(), steps=10, starts=3)
    f_star = float(-0.5 * B @ torch.linalg.solve(A, B))
    quad = Problem(fn=quadratic, x0=[0.0] * 3, f_star=f_star, bounds=[-3.0, 3.0])
    runs = run_cell(suite, quad, OptimizerSpec("newton", {})).runs
    assert (runs["steps"] == 1).all()  # a convex quadratic: one Newton step solves it
    assert (runs["ng"] == runs["nh"]).all() and (runs["nh"] >= 1).all()
    assert runs["evals"].tolist() == (runs["ng"] + 2 * 3 * runs["nh"]).tolist()


# -- gradient transforms --------------------------------------------------------------------------
def test_clipping_follows_torch():
    g = X @ A - B
    for max_norm in (0.5, 3.0, 100.0):
        _, ours = Oracle(QUAD, 4, clip_norm=max_norm).value_and_grad(X)
        for r in range(4):
            p = torch.zeros(3, dtype=f64, requires_grad=True)
            p.grad = g[r].clone()
            torch.nn.utils.clip_grad_norm_([p], max_norm)
            torch.testing.assert_close(ours[r], p.grad, rtol=1e-15, atol=0)
    _, clamped = Oracle(QUAD, 4, clip_value=1.5).value_and_grad(X)
    assert torch.equal(clamped, g.clamp(-1.5, 1.5))


def test_gradient_noise_is_per_run_and_batch_invariant():
    seeds = torch.tensor([3, 4, 3, 9])
    x = X.clone()
    x[2] = x[0]  # runs 0 and 2: the same point and seed
    _, noisy = Oracle(QUAD, 4, seeds=seeds, noise_std=0.1).value_and_grad(x)
    assert torch.equal(noisy[0], noisy[2])
    noise = noisy - (x @ A - B)
    assert (noise.abs() > 0).all() and noise.abs().max() < 1.0  # N(0, 0.1^2) per coordinate
    assert not torch.equal(noise[0], noise[1])
    for r in range(4):
        _, alone = Oracle(QUAD, 1, seeds=seeds[r : r + 1], noise_std=0.1).value_and_grad(
            x[r : r + 1]
        )
        assert torch.equal(alone[0], noisy[r])
    # The next evaluation draws new noise.
    oracle = Oracle(QUAD, 4, seeds=seeds, noise_std=0.1)
    _, first = oracle.value_and_grad(x)
    _, second = oracle.value_and_grad(x)
    assert torch.equal(first, noisy) and not torch.equal(first, second)
