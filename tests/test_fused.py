"""optzoo.fused: K compiled steps agree with the eager loop to round-off, are batch invariant
once padded as the harness pads, and a loss torch.compile refuses runs eagerly."""

from __future__ import annotations

import pytest
import torch

from optzoo import optimizers, problems
from optzoo.fused import EAGER, _value_and_grad, fused_steps, loop
from optzoo.harness import padded_size
from optzoo.problems.base import Problem

# torch.compile builds C++ for each case: seconds warm, up to minutes cold, so these run with
# the slow tests (.ci/run runs them in a step of their own).
pytestmark = pytest.mark.slow

# Each case compiles once per batch shape (seconds each): few cases, one K, shared shapes.
CASES = [
    ("adam", {"lr": 1e-2}, "rosenbrock", {"dim": 2}),
    ("momentum", {"lr": 1e-3}, "ellipsoid", {"dim": 10, "cond": 1e2}),
]
K = 5


def _eager(opt, problem, x, state, K):
    with torch.no_grad():
        return loop(type(opt).update, _value_and_grad(problem), K)(x, state, opt.resolved(x))


@pytest.mark.parametrize(("name", "hp", "pname", "params"), CASES)
def test_fused_matches_eager_to_round_off(name, hp, pname, params):
    problem = problems.get(pname, **params)
    R = padded_size(40, torch.float64, torch.device("cpu"))
    x = problem.sample_starts(R, seed=3).to(torch.float64)
    # A per-run learning rate, as the harness passes a grid.
    lr = hp["lr"] * torch.linspace(0.5, 1.0, R, dtype=torch.float64)
    opt = optimizers.get(name, **{**hp, "lr": lr})
    xe, se = x, opt.init(x)
    xf, sf = x, opt.init(x)
    for _ in range(2):  # two calls: the state carries over between calls
        xe, se, fe, ge = _eager(opt, problem, xe, se, K)
        xf, sf, ff, gf = fused_steps(opt, problem, xf, sf, K)
        assert ff.shape == (K, R) and gf.shape == x.shape
    torch.testing.assert_close(xf, xe, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ff, fe, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gf, ge, rtol=1e-10, atol=1e-10)
    for a, b in zip(sf, se, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("name", "hp", "pname", "params"), CASES[:1])
def test_fused_is_batch_invariant_when_padded(name, hp, pname, params):
    """A run's bits are the same alone (padded) and at any position of a larger padded batch,
    the vector tails of the generated kernels included."""
    problem = problems.get(pname, **params)
    cpu = torch.device("cpu")
    big = problem.sample_starts(padded_size(40, torch.float64, cpu), seed=5).to(torch.float64)
    opt = optimizers.get(name, **hp)
    xb, sb = big, opt.init(big)
    xb, sb, fb, _ = fused_steps(opt, problem, xb, sb, K)
    for j in (0, 17, 36, big.shape[0] - 1):
        alone = big[j : j + 1].expand(padded_size(1, torch.float64, cpu), -1).contiguous()
        xa, sa, fa, _ = fused_steps(opt, problem, alone, opt.init(alone), K)
        assert torch.equal(xa[0], xb[j]), j
        assert torch.equal(fa[:, 0], fb[:, j]), j


def test_a_loss_compile_refuses_runs_eagerly():
    def branchy(x):
        # A Python branch on a tensor value: torch.compile(fullgraph=True) cannot trace it.
        return (x * x).sum(-1) * (2.0 if float(x.sum()) > 0 else 1.0)

    problem = Problem(fn=branchy, x0=[1.0, 2.0])
    x = torch.tensor([[1.0, 2.0], [0.5, -1.0]], dtype=torch.float64)
    opt = optimizers.get("sgd", lr=0.1)
    out = fused_steps(opt, problem, x, opt.init(x), 3)
    ref = _eager(opt, problem, x, opt.init(x), 3)
    assert torch.equal(out.x, ref[0])
    assert any(key[1] == id(problem) for key in EAGER)
