"""Ravine landscapes: analytic gradients equal autograd's bit for bit; the axis-aligned ellipsoid."""

from __future__ import annotations

import math

import pytest
import torch

from optzoo import problems
from optzoo.problems.oracle import Oracle

CASES = [
    ("rosenbrock", {}),
    ("rosenbrock", {"dim": 7}),
    ("ellipsoid", {}),
    ("ellipsoid", {"dim": 5, "cond": 1e6, "seed": 3}),
    ("ellipsoid", {"dim": 100, "rotate": False}),
]


def autograd_grad(fn, x):
    xr = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(xr).sum(), xr)
    return g


def points(d: int, dtype: torch.dtype) -> torch.Tensor:
    """Points from 1e-300 to 1e300 in scale (subnormals, overflow), and inf, nan, +-0."""
    gen = torch.Generator().manual_seed(d)
    n = 4000
    scale = torch.logspace(-300, 300, n, dtype=torch.float64)[:, None]
    x = torch.randn(n, d, generator=gen, dtype=torch.float64) * scale
    special = torch.tensor([0.0, -0.0, 1.0, math.inf, math.nan], dtype=torch.float64)
    return torch.cat([x, special[:, None].expand(-1, d)]).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize(("name", "params"), CASES, ids=lambda v: str(v))
def test_analytic_gradient_is_autograds_bit_for_bit(name, params, dtype):
    p = problems.get(name, **params)
    assert p.grad is not None
    x = points(p.dim, dtype)
    want, got = autograd_grad(p.fn, x), p.grad(x)
    assert got.dtype == dtype and got.shape == x.shape
    same = (got == want) | (got.isnan() & want.isnan())
    assert bool(same.all()), f"{int((~same).sum())} coordinates differ"
    finite = ~want.isnan()
    assert bool((torch.signbit(got) == torch.signbit(want))[finite].all())
    if p.value_and_grad is not None:  # f and g from one pass: f is fn's, g is grad's, bit for bit
        f, g = p.value_and_grad(x)
        assert torch.equal(g.nan_to_num(), got.nan_to_num())
        assert bool(torch.signbit(g).eq(torch.signbit(got))[finite].all())
        fn = p.fn(x)
        assert bool(((f == fn) | (f.isnan() & fn.isnan())).all())


def test_the_oracle_returns_the_same_numbers_with_or_without_the_analytic_gradient():
    p = problems.get("rosenbrock", dim=3)
    bare = problems.Problem(fn=p.fn, x0=p.x0, name="bare", f_star=0.0)
    x = points(3, torch.float64)[::7]
    f1, g1 = Oracle(p, x.shape[0]).value_and_grad(x)
    f2, g2 = Oracle(bare, x.shape[0]).value_and_grad(x)
    torch.testing.assert_close(f1, f2, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(g1, g2, rtol=0, atol=0, equal_nan=True)


def test_the_axis_aligned_ellipsoid():
    p = problems.get("ellipsoid", dim=4, cond=1e3, rotate=False)
    x = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 2.0]], dtype=torch.float64)
    lam = torch.logspace(0, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(p.fn(x), 0.5 * (lam * x * x).sum(-1))
    assert p.params["rotate"] is False and "not rotated" in p.description
    # The rotated one keeps its numbers and its description.
    r = problems.get("ellipsoid", dim=4, cond=1e3)
    assert "random rotation" in r.description and "rotate" not in r.params
    assert float(r.fn(r.x0[None])[0]) != pytest.approx(float(p.fn(p.x0[None])[0]))


@pytest.mark.parametrize("dim", [10, 100])
def test_the_rotated_ellipsoid_is_batch_invariant_to_the_bit(dim):
    """f and g of a point are the same bits alone, in any batch, and against a closed form."""
    p = problems.get("ellipsoid", dim=dim, cond=1e3)
    x = p.sample_starts(53, seed=2)
    f, g = p.fn(x), p.grad(x)
    for lo, hi in [(0, 1), (7, 8), (3, 20), (5, 53), (0, 16)]:
        assert torch.equal(p.fn(x[lo:hi].clone()), f[lo:hi])
        assert torch.equal(p.grad(x[lo:hi].clone()), g[lo:hi])
    H = p.hessian(x[:1])[0]  # Q diag(lambda) Q^T
    torch.testing.assert_close(g, x @ H, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(f, 0.5 * ((x @ H) * x).sum(-1), rtol=1e-12, atol=0)
