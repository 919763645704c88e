"""Line searches: torch's strong-Wolfe search run by run, the Wolfe and Armijo conditions, closed
forms for backtracking and the exact step, scipy's scalar minimizer."""

from __future__ import annotations

import math

import pytest
import scipy.optimize
import torch
from losses import rosenbrock
from torch.optim.lbfgs import _cubic_interpolate, _strong_wolfe

from optzoo.optimizers.linesearch import (
    C1,
    C2,
    Backtracking,
    StrongWolfe,
    cubic_interpolate,
    exact_step,
)
from optzoo.problems import Oracle, Problem

f64 = torch.float64


def grad(fn, x):
    x = x.detach().requires_grad_(True)
    f = fn(x)
    (g,) = torch.autograd.grad(f.sum(), x)
    return f.detach(), g


def search(kind, fn, x, d, t0, max_ls, **hp):
    """Run the batched search to its end; returns it and the evaluations each run made."""
    f, g = grad(fn, x)
    gtd = (g * d).sum(-1)
    s = kind(x, **hp)
    running = s.start(torch.ones(x.shape[0], dtype=torch.bool), t0, f, g, gtd, d, max_ls)
    calls = torch.zeros(x.shape[0], dtype=torch.int64)
    while running.any():
        f_new, g_new = grad(fn, x + s.t[:, None] * d)
        calls += running
        running = running & ~s.advance(running, f_new, g_new, (g_new * d).sum(-1))
    return s, calls, f, gtd


def starts(n: int, seed: int) -> torch.Tensor:
    return 1.5 * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=f64)


@pytest.mark.parametrize("max_ls", [25, 3, 1])
def test_strong_wolfe_follows_torch_run_by_run(max_ls):
    """Each run's t, f, g and evaluations equal torch's _strong_wolfe on that run alone."""
    x = starts(12, seed=0)
    _, g = grad(rosenbrock, x)
    d = -g
    t0 = torch.logspace(-4, 1, 12, dtype=f64)  # short, unit and long first trials
    s, calls, f, gtd = search(StrongWolfe, rosenbrock, x, d, t0, torch.full((12,), max_ls))
    assert len(set(calls.tolist())) > 1  # each run spent its own number of evaluations
    for r in range(12):

        def obj(x_, t, d_):
            f_, g_ = grad(rosenbrock, (x_ + t * d_)[None])
            return float(f_[0]), g_[0]

        f_ref, g_ref, t_ref, n_ref = _strong_wolfe(
            obj, x[r], float(t0[r]), d[r], float(f[r]), g[r], gtd[r], max_ls=max_ls
        )
        assert float(s.t[r]) == pytest.approx(float(t_ref), rel=1e-12, abs=0)
        assert float(s.f[r]) == pytest.approx(f_ref, rel=1e-12, abs=1e-300)
        torch.testing.assert_close(s.g[r], g_ref, rtol=1e-12, atol=1e-300)
        assert int(s.evals[r]) == n_ref == int(calls[r])


def test_strong_wolfe_result_satisfies_both_conditions():
    """With a budget to spare, every result meets sufficient decrease and strong curvature."""
    x = starts(64, seed=1)
    _, g = grad(rosenbrock, x)
    d = -g / torch.linalg.vector_norm(g, dim=-1, keepdim=True)
    t0 = torch.full((64,), 1.0, dtype=f64)
    s, calls, f, gtd = search(StrongWolfe, rosenbrock, x, d, t0, torch.full((64,), 50))
    assert (calls < 50).all()
    assert (s.f <= f + C1 * s.t * gtd).all()
    assert ((s.g * d).sum(-1).abs() <= C2 * gtd.abs()).all()


def test_strong_wolfe_takes_per_run_constants():
    """Two runs from one point, c2 = 0.9 and 0.01: each result meets its own curvature test,
    and the loose run's would fail the tight one's, so the constant reached each run."""
    x = torch.tensor([[-1.2, 1.0], [-1.2, 1.0]], dtype=f64)
    _, g = grad(rosenbrock, x)
    d = -g / torch.linalg.vector_norm(g, dim=-1, keepdim=True)
    c2 = torch.tensor([0.9, 0.01], dtype=f64)
    s, _, _, gtd = search(StrongWolfe, rosenbrock, x, d, torch.ones(2, dtype=f64), 25, c2=c2)
    slope = (s.g * d).sum(-1).abs()
    assert (slope <= c2 * gtd.abs()).all()
    assert float(slope[0]) > 0.01 * abs(float(gtd[0]))


def test_backtracking_accepts_the_first_armijo_trial_of_the_closed_form():
    """On phi(t) = f + t g.d + a t^2 / 2 Armijo holds iff t <= 2 (1 - c1) |g.d| / a, so the
    accepted step is t0 rho^k with the smallest such k; past the budget it is t = 0."""
    a = torch.tensor([0.5, 2.0, 10.0, 1e3, 1e5, 1e8], dtype=f64)
    R = a.numel()

    def fn(x):  # each run a parabola along d = 1 from x = 0: slope -1, curvature a
        return -x[..., 0] + 0.5 * a * x[..., 0] ** 2

    x = torch.zeros(R, 1, dtype=f64)
    d = torch.ones(R, 1, dtype=f64)
    t0, rho, budget = 1.0, 0.5, 20
    s, calls, f, gtd = search(
        Backtracking, fn, x, d, torch.full((R,), t0, dtype=f64), torch.full((R,), budget), rho=rho
    )
    for r in range(R):
        bound = 2 * (1 - C1) * abs(float(gtd[r])) / float(a[r])
        k = max(0, math.ceil(math.log(bound / t0) / math.log(rho)))
        if k < budget:
            assert float(s.t[r]) == t0 * rho**k
            assert int(calls[r]) == k + 1
        else:
            assert float(s.t[r]) == 0.0 and float(s.f[r]) == float(f[r])
            assert int(calls[r]) == budget
    assert float(s.t[-1]) == 0.0  # a = 1e8 needs 26 halvings: over the budget


def test_exact_step_is_the_minimizer_along_d_on_a_quadratic():
    gen = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=f64))
    A = q @ torch.diag(torch.tensor([1.0, 10.0, 100.0, 1e3], dtype=f64)) @ q.T
    b = torch.randn(4, generator=gen, dtype=f64)
    problem = Problem(fn=lambda x: 0.5 * ((x @ A) * x).sum(-1) - (x * b).sum(-1), x0=b)
    x = torch.randn(5, 4, generator=gen, dtype=f64)
    d = torch.randn(5, 4, generator=gen, dtype=f64)
    oracle = Oracle(problem, 5)
    _, g = oracle.value_and_grad(x)
    gtd = (g * d).sum(-1)
    t = exact_step(oracle, x, d, gtd, torch.ones(5, dtype=torch.bool), torch.ones(5, dtype=f64))
    assert oracle.counts.nhvp.tolist() == [1] * 5
    for r in range(5):

        def phi(s, r=r):
            return float(problem.fn((x[r] + s * d[r])[None])[0])

        ref = scipy.optimize.minimize_scalar(phi, tol=1e-12).x
        assert float(t[r]) == pytest.approx(ref, rel=1e-6)


def test_exact_step_falls_back_where_there_is_no_minimizer_along_d():
    problem = Problem(fn=lambda x: x[..., 0] ** 2 - x[..., 1] ** 2, x0=[0.0, 0.0])
    x = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=f64)
    d = torch.tensor([[-1.0, 0.0], [0.0, 1.0]], dtype=f64)  # positive, then negative curvature
    oracle = Oracle(problem, 2)
    _, g = oracle.value_and_grad(x)
    t = exact_step(oracle, x, d, (g * d).sum(-1), torch.ones(2, dtype=torch.bool), 0.25)
    assert t.tolist() == [1.0, 0.25]


def test_cubic_interpolation_is_torchs():
    gen = torch.Generator().manual_seed(5)
    for _ in range(200):
        x1, x2 = (torch.rand(2, generator=gen, dtype=f64) * 4 - 1).tolist()
        f1, f2, g1, g2 = torch.randn(4, generator=gen, dtype=f64).tolist()
        lo, hi = min(x1, x2) - 0.5, max(x1, x2) + 0.5
        t = [torch.tensor(v, dtype=f64) for v in (x1, f1, g1, x2, f2, g2, lo, hi)]
        ref = _cubic_interpolate(*t[:6], bounds=(lo, hi))
        assert float(cubic_interpolate(*t)) == pytest.approx(float(ref), rel=1e-13)
