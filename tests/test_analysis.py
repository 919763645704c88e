"""Critical-point analysis against closed forms: kinds, spectra, Lanczos, escape directions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from losses import rosenbrock

from optzoo import analysis
from optzoo.analysis import classify, classify_batch, escape_direction, lanczos
from optzoo.problems.base import Problem


def saddle(x):
    return x[..., 0] ** 2 - x[..., 1] ** 2


def two_neuron(w):
    return (1 - w[..., 0] * w[..., 1]) ** 2


def peak(x):
    return -(x[..., 0] ** 2) - x[..., 1] ** 2


def monkey(x):
    return x[..., 0] ** 3 - 3 * x[..., 0] * x[..., 1] ** 2


def rosen_grad(x, y):
    return np.array([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)])


def easom(x):
    d = (x[..., 0] - math.pi) ** 2 + (x[..., 1] - math.pi) ** 2
    return -torch.cos(x[..., 0]) * torch.cos(x[..., 1]) * torch.exp(-d)


ZERO = [0.0, 0.0]


@pytest.mark.parametrize("fn", [saddle, two_neuron], ids=["x2-y2", "two_neuron"])
def test_saddles_at_origin(fn):
    c = classify(fn, ZERO)
    assert c.kind == "saddle"
    torch.testing.assert_close(c.eigenvalues, torch.tensor([-2.0, 2.0], dtype=torch.float64))
    assert (c.n_neg, c.n_zero, c.min_ratio, c.grad_norm) == (1, 0, 0.5, 0.0)
    assert c.f == fn(torch.zeros(2, dtype=torch.float64)).item()


def test_maximum():
    c = classify(peak, ZERO)
    assert c.kind == "maximum"
    assert c.eigenvalues.tolist() == [-2.0, -2.0]
    assert (c.min_ratio, c.n_neg) == (0.0, 2)


def test_rosenbrock_minimum_matches_closed_form_hessian():
    c = classify(rosenbrock, [1.0, 1.0])
    expected = np.linalg.eigvalsh(np.array([[802.0, -400.0], [-400.0, 200.0]]))
    np.testing.assert_allclose(c.eigenvalues.numpy(), expected, rtol=1e-12)
    assert c.eigenvalues.dtype == torch.float64
    assert (c.kind, c.min_ratio, c.n_neg, c.grad_norm) == ("minimum", 1.0, 0, 0.0)


def test_monkey_saddle_is_degenerate():
    c = classify(monkey, ZERO)
    assert c.kind == "degenerate"
    assert (c.n_zero, c.n_neg, c.min_ratio) == (2, 0, 0.0)


def test_two_neuron_minimum_valley_is_degenerate():
    # The minima form the curve w1*w2 = 1: the Hessian 2 (w2, w1)(w2, w1)^T has a zero eigenvalue.
    c = classify(two_neuron, [2.0, 0.5])
    assert c.kind == "degenerate"
    assert c.n_zero == 1 and c.eig_max == pytest.approx(2 * (0.5**2 + 2.0**2))


def test_near_a_valley_of_minima_is_degenerate_not_saddle():
    # 1e-6 off w1*w2 = 1 the Hessian has eigenvalues 4 - 2r and 2r with r = 1 - w1*w2: of either
    # sign, yet the point is within 1e-6 of a (degenerate) minimum.
    for r in (1e-6, -1e-6):
        a = math.sqrt(1 - r)
        c = classify(two_neuron, [a, a])
        assert c.eig_min == pytest.approx(min(2 * r, 4 - 2 * r), rel=1e-6)
        assert c.kind == "degenerate" and c.n_zero == 1


def test_non_critical_point():
    c = classify(rosenbrock, [-1.2, 1.0])
    assert c.kind == "not_critical"
    assert c.grad_norm == pytest.approx(np.linalg.norm(rosen_grad(-1.2, 1.0)), rel=1e-12)
    assert c.f == pytest.approx(24.2, rel=1e-12)


def test_tolerances_follow_the_point_scale():
    # Easom's plateau: |g| ~ 2e-8, but the curvature is tinier still: not a critical point.
    c = classify(easom, ZERO)
    assert c.grad_norm < 1e-7 and c.kind == "not_critical"
    # 1e-6 from a saddle counts as the saddle, 0.1 away does not; scaling f changes neither.
    for scale in (1e-6, 1.0, 1e6):
        kinds = classify_batch(lambda x, s=scale: s * saddle(x), [[1e-6, 0.0], [0.1, 0.0]])["kind"]
        assert kinds == ["saddle", "not_critical"]
    # A non-critical point far from the origin: the distance test is relative to |x|.
    assert classify(saddle, [1e6, 1e6]).kind == "not_critical"


def test_float32_uses_a_looser_tolerance():
    c = classify(rosenbrock, torch.tensor([1.0, 1.0]))
    assert c.kind == "minimum"
    x = torch.tensor([1e-3, 0.0])  # within 10 sqrt(eps32) = 3.5e-3 of the saddle, not 1e-4
    assert classify(saddle, x).kind == "saddle"
    assert classify(saddle, x.double()).kind == "not_critical"


def test_callable_forms_agree():
    X = torch.tensor([[0.0, 0.0], [0.3, -0.2]], dtype=torch.float64)
    problem = Problem(fn=two_neuron, x0=ZERO, name="two_neuron", category="saddle")
    ref = classify_batch(problem, X)
    for form in (two_neuron, lambda w: (1 - w[0] * w[1]) ** 2):
        res = classify_batch(form, X)
        assert res["kind"] == ref["kind"]
        torch.testing.assert_close(res["eigenvalues"], ref["eigenvalues"], rtol=0, atol=0)


def test_batch_equals_single_and_chunking():
    X = torch.tensor(
        [[0.0, 0.0], [1.0, 1.0], [-1.2, 1.0], [0.5, 0.25], [1e-7, 2e-7]], dtype=torch.float64
    )
    batch = classify_batch(rosenbrock, X)
    tiny = classify_batch(rosenbrock, X, memory=1.0)  # one point per chunk
    for i, x in enumerate(X):
        one = classify(rosenbrock, x)
        assert one.kind == batch["kind"][i] == tiny["kind"][i]
        assert torch.equal(one.eigenvalues, batch["eigenvalues"][i])
        assert torch.equal(tiny["eigenvalues"][i], batch["eigenvalues"][i])
        assert one.grad_norm == batch["grad_norm"][i].item()
        assert one.min_ratio == batch["min_ratio"][i].item()


@pytest.mark.parametrize(
    "name, params", [("ellipsoid", {"dim": 100, "cond": 1e3}), ("ellipsoid", {}), ("saddle", {})]
)
def test_a_quadratic_shares_one_hessian_bit_for_bit(name, params, monkeypatch):
    """A quadratic's end points are classified from one Hessian and one eigh; every number must be
    what the general path (a Hessian and an eigh per row) gives, including rows that overflow or
    are NaN and rows at the critical point."""
    from dataclasses import replace

    from optzoo import problems

    hess = analysis.hessian
    quad = problems.get(name, **params)
    general = replace(quad, hessian=None, bounds=quad.bounds.T)
    assert quad.hessian_is_constant and not general.hessian_is_constant
    rows: list[int] = []
    monkeypatch.setattr(analysis, "hessian", lambda fn, x: rows.append(len(x)) or hess(fn, x))
    for R in (1, 5, 70):
        X = quad.sample_starts(R, seed=R)
        X[0] = torch.as_tensor(quad.minimizers[0] if quad.minimizers else quad.saddles[0])
        if R > 3:
            X[1], X[2] = 1e200, float("nan")
        rows.clear()
        fast = classify_batch(quad, X)
        assert rows == [1]  # one Hessian, at one point
        ref = classify_batch(general, X)
        assert rows[1] == R  # the general path: one per row (and again for the drift bound)
        assert fast["kind"] == ref["kind"] and fast["kind"][0] in ("minimum", "saddle")
        for key, val in ref.items():
            if key != "kind":
                assert torch.equal(fast[key].nan_to_num(7.0), val.nan_to_num(7.0)), key
                assert torch.equal(fast[key].isnan(), val.isnan()), key


def test_non_finite_points_are_not_critical():
    res = classify_batch(lambda x: torch.log(x[..., 0]) + x[..., 1] ** 2, [[1.0, 0.0], [-1.0, 0.0]])
    assert res["kind"] == ["not_critical", "not_critical"]
    assert math.isnan(res["eig_min"][1].item()) and res["n_neg"][1].item() == -1


def test_empty_batch():
    res = classify_batch(rosenbrock, torch.zeros(0, 2, dtype=torch.float64))
    assert res["kind"] == [] and res["eigenvalues"].shape == (0, 2)


def _random_symmetric(R: int, d: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    M = torch.randn(R, d, d, generator=gen, dtype=torch.float64)
    return (M + M.transpose(-1, -2)) / 2


def test_lanczos_matches_dense_spectrum():
    S = _random_symmetric(3, 200, seed=7)
    ev = torch.linalg.eigvalsh(S)
    lo, hi, v = lanczos(lambda V: (S @ V.unsqueeze(-1)).squeeze(-1), 200, R=3, vectors=True)
    torch.testing.assert_close(lo, ev[:, 0], rtol=1e-6, atol=0)
    torch.testing.assert_close(hi, ev[:, -1], rtol=1e-6, atol=0)
    residual = (S @ v.unsqueeze(-1)).squeeze(-1) - lo[:, None] * v
    assert residual.norm(dim=-1).max() < 1e-6 * ev.abs().max()


def test_lanczos_survives_an_exhausted_krylov_space():
    # A multiple of the identity: the first step already spans an invariant subspace.
    lo, hi = lanczos(lambda V: 3.0 * V, 5, R=2)
    torch.testing.assert_close(lo, torch.full((2,), 3.0, dtype=torch.float64))
    torch.testing.assert_close(hi, torch.full((2,), 3.0, dtype=torch.float64))


def test_lanczos_path_of_classify_batch():
    A = _random_symmetric(1, 200, seed=3)[0]
    ev = torch.linalg.eigvalsh(A)

    def quad(x):
        return 0.5 * ((x @ A) * x).sum(-1)

    X = torch.zeros(1, 200, dtype=torch.float64)
    res = classify_batch(quad, X, dense_max=100)
    assert res["eigenvalues"] is None and res["kind"] == ["saddle"]
    assert res["eig_min"].item() == pytest.approx(ev[0].item(), rel=1e-6)
    assert res["eig_max"].item() == pytest.approx(ev[-1].item(), rel=1e-6)
    assert math.isnan(res["min_ratio"].item()) and res["n_neg"].item() == -1
    # On small problems Lanczos reaches the same kinds as the dense path.
    P = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, 0.0]], dtype=torch.float64)
    for fn in (saddle, peak, rosenbrock, monkey):
        assert classify_batch(fn, P, dense_max=0)["kind"] == classify_batch(fn, P)["kind"]


def test_escape_direction_lowers_f():
    X = torch.tensor([[0.0, 0.0], [0.1, 0.05], [-0.2, 0.1]], dtype=torch.float64)
    for fn in (two_neuron, saddle):
        esc = escape_direction(fn, X)
        torch.testing.assert_close(esc.eigenvalue, analysis.classify_batch(fn, X)["eig_min"])
        torch.testing.assert_close(esc.direction.norm(dim=-1), torch.ones(3, dtype=torch.float64))
        for t in (1e-3, 1e-2, 1e-1):
            assert (fn(X + t * esc.direction) < fn(X)).all()
    # x^2 - y^2 off the saddle: the way down is along y, away from the axis.
    d = escape_direction(saddle, torch.tensor([0.1, 0.05], dtype=torch.float64)).direction
    torch.testing.assert_close(d, torch.tensor([0.0, 1.0], dtype=torch.float64))


def test_escape_direction_is_zero_without_negative_curvature():
    esc = escape_direction(rosenbrock, [1.0, 1.0])
    assert esc.direction.tolist() == [0.0, 0.0] and esc.eigenvalue.item() > 0
    assert escape_direction(monkey, ZERO).direction.tolist() == [0.0, 0.0]


def test_a_point_near_an_ill_conditioned_minimum_is_a_minimum():
    # Rosenbrock's minimum has eigenvalues 0.4 and 1001.6 (closed form); a run that stops a few
    # 1e-5 away must still read as a minimum, not as degenerate.
    for dx in (3e-5, -2e-5):
        c = analysis.classify(rosenbrock, torch.tensor([1 + dx, 1 + 2 * dx], dtype=torch.float64))
        assert c.kind == "minimum", (dx, c)
