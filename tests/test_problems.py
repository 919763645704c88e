"""The landscape library: published facts, batching, derivatives, landscape shapes, the registry."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
import scipy.optimize
import torch
from torch.autograd.functional import hessian as ag_hessian

import optzoo.problems as P
from optzoo.errors import ConfigError
from optzoo.optim.second_order import ClosureOracle
from optzoo.optimizers.escape import _PaidGradient
from optzoo.oracle import CountedOracle
from optzoo.problems.oracle import Oracle, hessian

F64 = torch.float64
NAMES = P.names()


@functools.cache
def problem(name: str, **params) -> P.Problem:
    return P.get(name, **params)


def f(p: P.Problem, *point: float) -> float:
    return float(p(torch.tensor([point], dtype=F64))[0])


def grad(p: P.Problem, x) -> torch.Tensor:
    """Autograd gradient of the batched loss at points ``x (R, d)``."""
    x = torch.as_tensor(x, dtype=F64).detach().reshape(-1, p.dim).requires_grad_(True)
    (g,) = torch.autograd.grad(p(x).sum(), x)
    return g


def point_hessian(p: P.Problem, point) -> torch.Tensor:
    """Hessian at one point by torch.autograd.functional, independent of the code under test."""
    return ag_hessian(lambda z: p(z[None])[0], torch.as_tensor(point, dtype=F64))


# -- published facts -----------------------------------------------------------------------------


def test_rosenbrock_2d_start_and_minimum():
    p = problem("rosenbrock")
    assert p.x0.tolist() == [-1.2, 1.0]
    assert f(p, -1.2, 1.0) == pytest.approx(24.2, abs=1e-12), f(p, -1.2, 1.0)
    assert f(p, 1.0, 1.0) == 0.0
    g = grad(p, [[1.0, 1.0]])
    assert g.abs().max() == 0.0, g


@pytest.mark.parametrize("dim", [2, 3, 5, 10])
def test_rosenbrock_matches_scipy_rosen_and_minimum_at_ones(dim):
    p = problem("rosenbrock", dim=dim)
    pts = torch.cat([p.x0[None], p.sample_starts(4, seed=dim)])
    ours = p(pts).numpy()
    ref = np.array([scipy.optimize.rosen(x) for x in pts.numpy()])
    np.testing.assert_allclose(ours, ref, rtol=1e-14, err_msg=f"ours {ours}, scipy {ref}")
    g = grad(p, pts).numpy()
    ref_g = np.stack([scipy.optimize.rosen_der(x) for x in pts.numpy()])
    np.testing.assert_allclose(g, ref_g, rtol=1e-12, atol=1e-12)
    ones = torch.ones(1, dim, dtype=F64)
    assert float(p(ones)[0]) == 0.0 and grad(p, ones).abs().max() == 0.0
    assert p.minimizers == ((1.0,) * dim,) and p.f_star == 0.0


def test_beale_minimum():
    p = problem("beale")
    assert f(p, 3.0, 0.5) == 0.0
    assert grad(p, [[3.0, 0.5]]).abs().max() == 0.0
    ev = torch.linalg.eigvalsh(point_hessian(p, [3.0, 0.5]))
    assert bool((ev > 0).all()), f"Hessian eigenvalues at (3, 0.5): {ev.tolist()}"


PUBLISHED_HIMMELBLAU = [
    (3.0, 2.0),
    (-2.805118, 3.131312),
    (-3.779310, -3.283186),
    (3.584428, -1.848126),
]


def test_himmelblau_four_minima():
    p = problem("himmelblau")
    for pub, listed in zip(PUBLISHED_HIMMELBLAU, p.minimizers, strict=True):
        val, g = f(p, *pub), grad(p, [pub]).norm().item()
        assert val < 1e-9 and g < 1e-3, f"f{pub} = {val}, |grad| = {g}"
        assert max(abs(a - b) for a, b in zip(pub, listed, strict=True)) < 1e-6, (pub, listed)
        ev = torch.linalg.eigvalsh(point_hessian(p, listed))
        assert bool((ev > 0).all()), f"Hessian eigenvalues at {listed}: {ev.tolist()}"


def test_easom_minimum_and_flat_origin():
    p = problem("easom")
    assert f(p, math.pi, math.pi) == -1.0
    assert grad(p, [[math.pi, math.pi]]).abs().max() < 1e-15
    g0 = grad(p, [[0.0, 0.0]])[0]
    expected = 2 * math.pi * math.exp(-2 * math.pi**2)  # d/dx at 0 of the formula, by hand
    assert g0.abs().tolist() == pytest.approx([expected] * 2, rel=1e-12), g0.tolist()
    assert abs(g0[0].item()) == pytest.approx(1.7e-8, rel=0.02), g0.tolist()


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_styblinski_tang_minimum(dim):
    p = problem("styblinski_tang", dim=dim)
    x = torch.full((1, dim), -2.903534, dtype=F64)
    val = float(p(x)[0])
    assert val == pytest.approx(-39.16616570 * dim, abs=1e-7 * dim), val
    assert p.f_star == pytest.approx(-39.16616570 * dim, abs=1e-7 * dim), p.f_star
    assert grad(p, x).abs().max() < 1e-4


def test_saddle_hessian_eigenvalues():
    p = problem("saddle")
    ev = torch.linalg.eigvalsh(point_hessian(p, [0.0, 0.0]))
    assert ev.tolist() == pytest.approx([-2.0, 2.0]), ev.tolist()
    assert p.f_star is None and p.saddles == ((0.0, 0.0),)


def test_two_neuron_saddle_and_minima():
    p = problem("two_neuron")
    assert f(p, 0.0, 0.0) == 1.0
    ev = torch.linalg.eigvalsh(point_hessian(p, [0.0, 0.0]))
    assert ev.tolist() == pytest.approx([-2.0, 2.0]), ev.tolist()
    for w in (0.5, 1.0, -2.0, 4.0):
        assert f(p, w, 1.0 / w) == pytest.approx(0.0, abs=1e-30)
        assert grad(p, [[w, 1.0 / w]]).abs().max() < 1e-15


def test_monkey_saddle_is_degenerate():
    p = problem("monkey_saddle")
    assert grad(p, [[0.0, 0.0]]).abs().max() == 0.0
    H = point_hessian(p, [0.0, 0.0])
    assert H.abs().max() == 0.0, H
    # Unbounded below along the three valleys at angles pi and +-pi/3.
    for angle in (math.pi, math.pi / 3, -math.pi / 3):
        assert f(p, 10 * math.cos(angle), 10 * math.sin(angle)) == pytest.approx(-1000.0)


@pytest.mark.parametrize("depth,width", [(3, 4), (2, 4), (3, 2)])
def test_deep_linear_f_star_is_the_optimum(depth, width):
    """f* (closed form) against L-BFGS from scipy, and the origin is a saddle."""
    p = problem("deep_linear", depth=depth, width=width)

    def fun(x):
        xt = torch.tensor(x[None], dtype=F64, requires_grad=True)
        v = p(xt)
        (g,) = torch.autograd.grad(v.sum(), xt)
        return float(v[0].detach()), g[0].numpy()

    res = scipy.optimize.minimize(
        fun, p.x0.numpy() * 5, jac=True, method="BFGS", options={"gtol": 1e-10}
    )
    assert res.fun == pytest.approx(p.f_star, abs=1e-9), (res.fun, p.f_star, res.message)
    assert f(p, *p.minimizers[0]) == pytest.approx(p.f_star, abs=1e-12)
    zero = torch.zeros(1, p.dim, dtype=F64)
    assert grad(p, zero).abs().max() == 0.0
    ev = torch.linalg.eigvalsh(point_hessian(p, zero[0]))
    if depth >= 3:
        assert ev.abs().max() == 0.0, f"depth {depth}: Hessian at 0 should vanish, {ev}"
    else:
        assert ev.min() < -1e-3, f"depth 2: no negative curvature at 0, {ev}"


@pytest.mark.parametrize("cond", [1.0, 1e3, 1e6])
def test_ellipsoid_spectrum(cond):
    p = problem("ellipsoid", dim=6, cond=cond)
    ev = torch.linalg.eigvalsh(point_hessian(p, p.x0))
    expected = torch.logspace(0, math.log10(cond), 6, dtype=F64)
    torch.testing.assert_close(ev, expected, rtol=1e-9, atol=0)
    assert (ev.max() / ev.min()).item() == pytest.approx(cond, rel=1e-9)


def test_rnn_cliff_matches_the_paper_recurrence():
    """Pascanu et al. (2013), sec. 2.3: x_t = w sigmoid(x_(t-1)) + b, (sigmoid(x_50) - 0.7)^2."""

    def sigmoid(z):
        return 1.0 / (1.0 + math.exp(-z))

    def paper(w, b, T=50):
        x = 0.5
        for _ in range(T):
            x = w * sigmoid(x) + b
        return (sigmoid(x) - 0.7) ** 2

    p = problem("rnn_cliff")
    for w, b in [(5.0, -3.5), (1.0, 0.2), (7.5, -3.6), (0.0, 0.0)]:
        assert f(p, w, b) == pytest.approx(paper(w, b), rel=1e-12, abs=1e-15)
    assert f(p, *p.minimizers[0]) < 1e-30
    assert f(problem("rnn_cliff", T=7), 2.0, -1.0) == pytest.approx(paper(2.0, -1.0, T=7))


@pytest.mark.parametrize("T", [1, 7, 50])
def test_rnn_cliff_gradient_against_autograd(T):
    # The hand-written backward pass (a cumprod over time) against autograd through the
    # recurrence, on random points and across the wall, where the gradient is large.
    p = problem("rnn_cliff", T=T)
    wall = torch.stack(
        [torch.full((401,), 5.0, dtype=F64), torch.linspace(-2.7, -2.5, 401, dtype=F64)], dim=1
    )  # across the wall at w = 5
    x = torch.cat([p.sample_starts(64, seed=2), wall])
    f, g = p.value_and_grad(x)
    xr = x.clone().requires_grad_(True)
    fa = p.fn(xr)
    (ga,) = torch.autograd.grad(fa.sum(), xr)
    assert torch.equal(f, fa.detach())  # the same forward ops
    torch.testing.assert_close(g, ga, rtol=1e-12, atol=1e-15)
    if T == 50:
        assert ga.abs().max() > 10  # the wall was sampled (elsewhere |g| < 1)


# -- every registered problem --------------------------------------------------------------------


def test_names_and_categories():
    assert NAMES == sorted(P.REGISTRY)
    by_cat = [n for c in P.CATEGORIES for n in P.names(c)]
    assert sorted(by_cat) == NAMES
    for c in P.CATEGORIES:
        for n in P.names(c):
            assert problem(n).category == c == P.category(n)
    for c in ("saddle", "ravine", "plateau", "cliff", "multimodal", "neural"):
        assert P.names(c), f"no problem in category {c}"


@pytest.mark.parametrize("name", NAMES)
def test_facts_are_well_formed(name):
    p = problem(name)
    assert p.name == name
    lo, hi = p.bounds
    assert bool((lo <= p.x0).all() and (p.x0 <= hi).all()), f"x0 outside the box: {p.x0}"
    assert "=" in p.description and "f" in p.description
    json.dumps(p.info())  # plain data
    if p.f_star is None:
        assert p.saddles or p.category == "neural", "no f* and no saddle: success undefined"
    if p.saddles and p.f_star is None:
        starts = torch.cat([p.x0[None], p.sample_starts(64, seed=0)])
        assert not bool(p.solved(starts, p(starts)).any()), "a start counts as already escaped"


@pytest.mark.parametrize("name", NAMES)
def test_batched_equals_pointwise(name):
    p = problem(name)
    x = torch.cat([p.x0[None], p.sample_starts(5, seed=1)])
    batched = p(x)
    single = torch.cat([p(x[i : i + 1]) for i in range(len(x))])
    assert batched.shape == (6,)
    assert torch.equal(batched, single), f"max diff {(batched - single).abs().max().item()}"
    grid = p(x.reshape(2, 3, p.dim))
    assert torch.equal(grid.reshape(-1), batched)


@pytest.mark.parametrize("name", NAMES)
def test_dtype_follows_input(name):
    p = problem(name)
    x32 = p.x0[None].to(torch.float32)
    out = p(x32)
    assert out.dtype == torch.float32 and bool(torch.isfinite(out).all())
    assert float(out[0]) == pytest.approx(float(p(p.x0[None])[0]), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_central_differences(name):
    p = problem(name)
    x = torch.cat([p.x0[None], p.sample_starts(2, seed=2)])
    g = grad(p, x)
    gen = torch.Generator().manual_seed(3)
    v = torch.randn(3, p.dim, generator=gen, dtype=F64)
    v = v / v.norm(dim=-1, keepdim=True)
    h = 1e-6
    for i in range(len(x)):
        plus, minus = p(x[i] + h * v), p(x[i] - h * v)
        fd = (plus - minus) / (2 * h)
        exact = v @ g[i]
        err = (fd - exact).abs().max().item()
        assert err <= 1e-6 * (1 + exact.abs().max().item()), (
            f"point {i}: directional derivatives {exact.tolist()} vs differences {fd.tolist()}"
        )


@pytest.mark.parametrize("name", NAMES)
def test_hessian_under_vmap(name):
    p = problem(name)
    x = p.x0[None]
    H = torch.func.vmap(torch.func.hessian(lambda z: p.fn(z[None])[0]))(x)
    assert H.shape == (1, p.dim, p.dim) and bool(torch.isfinite(H).all())
    if p.dim <= 64:
        torch.testing.assert_close(H[0], point_hessian(p, p.x0), rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(hessian(p.fn, x), H, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", [n for n in NAMES if problem(n).minimizers])
def test_minimizers_are_critical_points(name):
    p = problem(name)
    m = torch.tensor(p.minimizers, dtype=F64)
    g = grad(p, m).norm(dim=-1)
    assert g.max() < 1e-9, f"|grad| at the minimizers: {g.tolist()}"
    if p.f_star is not None:
        vals = p(m)
        assert (vals - p.f_star).abs().max() < 1e-9, (
            f"f at minimizers {vals.tolist()}, f* {p.f_star}"
        )


# -- landscapes are what they claim --------------------------------------------------------------

# A segment across each cliff problem's band (from its docstring).
CLIFF_BANDS = {
    "rnn_cliff": ((5.0, -3.0), (5.0, -2.2)),
    "cliff": ((1.8, 0.0), (2.2, 0.0)),
}


def grad_norms(p: P.Problem, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([grad(p, chunk).norm(dim=-1) for chunk in x.split(20_000)])


def box_grid(p: P.Problem, n: int) -> torch.Tensor:
    lo, hi = p.bounds
    axes = [torch.linspace(float(a), float(b), n, dtype=F64) for a, b in zip(lo, hi, strict=True)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, p.dim)


def test_every_cliff_problem_has_a_band():
    assert set(P.names("cliff")) == set(CLIFF_BANDS)


@pytest.mark.parametrize("name", P.names("cliff"))
def test_cliff_gradient_spikes_across_the_band(name):
    p = problem(name)
    a, b = (torch.tensor(e, dtype=F64) for e in CLIFF_BANDS[name])
    t = torch.linspace(0, 1, 40_001, dtype=F64)[:, None]
    peak = grad_norms(p, a + t * (b - a)).max().item()
    median = grad_norms(p, box_grid(p, 101)).median().item()
    assert peak >= 1e3 * median, f"{name}: peak |grad| {peak:.3g}, median on the box {median:.3g}"


@pytest.mark.parametrize("name", P.names("plateau"))
def test_plateau_gradient_vanishes_on_most_of_the_box(name):
    p = problem(name)
    share = (grad_norms(p, box_grid(p, 201)) < 1e-6).double().mean().item()
    g0 = grad(p, p.x0[None]).norm().item()
    assert share > 0.5, f"{name}: |grad| < 1e-6 on {share:.1%} of the box"
    assert g0 < 1e-6, f"{name}: the start is not on the plateau, |grad| = {g0:.3g}"


def test_cliff_geometry_in_closed_form():
    """f = r^2/2 + q r^4 + h (1 + tanh(k (x - a)))/2: the wall's height, its peak slope h k / 2, the
    start on the high side and the minimum on the low side, so a descent path must cross it."""
    h, k, a, q = 1000.0, 10.0, 2.0, 0.002
    p = problem("cliff")
    assert p.x0.tolist() == [a + 3.0, 1.0] and p.x0[0] > a > p.minimizers[0][0]
    assert f(p, a, 0.0) == pytest.approx(a**2 / 2 + q * a**4 + h / 2, rel=1e-15)
    assert f(p, 0.0, 0.0) < 1e-13  # the step's tail h exp(-2 k a) at the minimizer
    assert f(p, 4.0, 0.0) - f(p, 0.0, 0.0) == pytest.approx(8 + q * 256 + h, rel=1e-12)
    gx = grad(p, [[a, 0.0]])[0, 0].item()  # on the wall: h k / 2 plus the bowl's a + 4 q a^3
    assert gx == pytest.approx(h * k / 2 + a + 4 * q * a**3, rel=1e-12)


def test_gaussian_well_width_stretches_the_landscape():
    """f_w(x) = f_1(x / w); |grad f_w| = r / (2 w^2) exp(-r^2 / (4 w^2)) in closed form."""
    for w in (0.5, 1.0, 3.0):
        p = problem("gaussian_well", width=w)
        x = torch.tensor([[1.3 * w, -0.4 * w]], dtype=F64)
        assert p(x).item() == pytest.approx(problem("gaussian_well")(x / w).item(), rel=1e-14)
        r = x.norm().item()
        g = grad(p, x).norm().item()
        assert g == pytest.approx(r / (2 * w**2) * math.exp(-(r**2) / (4 * w**2)), rel=1e-12)
        assert p.x0.norm().item() == pytest.approx(8 * w)
    assert problem("gaussian_well").params == {"dim": 2}  # the default keeps its record


def test_sigmoid_plateau_gradient_is_tiny_but_not_zero():
    """2 r sigmoid'(r^2 - 4) ~ 2 r exp(4 - r^2): non-zero in float64 out to r ~ 26."""
    p = problem("sigmoid_plateau")
    for r in (5.0, 8.0, 10.0):
        x = torch.tensor([[r, 0.0]], dtype=F64)
        g = grad(p, x).norm().item()
        assert g == pytest.approx(2 * r * math.exp(4 - r * r), rel=1e-9)


# -- mini-batches ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", P.names("neural"))
def test_minibatch_gradients_are_per_run_and_reproducible(name):
    p = problem(name)
    assert p.stochastic
    B, R = 16, 4
    x = p.x0.expand(R, -1).clone()
    _, g = Oracle(p, R, seeds=torch.arange(R), batch_size=B).value_and_grad(x)
    diffs = [(g[i] - g[j]).abs().max().item() for i in range(R) for j in range(i)]
    assert min(diffs) > 0, f"runs with different seeds share a gradient: {diffs}"
    _, g_same = Oracle(p, 2, seeds=torch.tensor([7, 7]), batch_size=B).value_and_grad(x[:2])
    assert torch.equal(g_same[0], g_same[1])
    for r in range(R):
        _, alone = Oracle(p, 1, seeds=torch.tensor([r]), batch_size=B).value_and_grad(x[r : r + 1])
        assert torch.equal(alone[0], g[r]), f"run {r}: alone vs in a batch differ"
    # The mean over all rows as one mini-batch is the full-batch loss.
    mb = p.minibatch
    every = torch.arange(mb.n_data)[None]
    full = mb.fn(p.x0[None], every)
    torch.testing.assert_close(full, p(p.x0[None]), rtol=1e-12, atol=0)


def test_teacher_student_realizable():
    p = problem("teacher_student")
    assert p.f_star == 0.0 and f(p, *p.minimizers[0]) == 0.0
    narrow = problem("teacher_student", width=2)
    assert narrow.f_star is None and not narrow.minimizers


# -- the registry --------------------------------------------------------------------------------


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError) as e:
        P.get("rosenbrok")
    assert "rosenbrok" in str(e.value) and ", ".join(NAMES) in str(e.value)


@pytest.mark.parametrize(
    "name,params,needle",
    [
        ("rosenbrock", {"dimm": 3}, "'dimm'; allowed: dim=2"),
        ("rosenbrock", {"dim": 1}, "dim must be in [2"),
        ("rosenbrock", {"dim": 2.5}, "dim must be an integer"),
        ("rosenbrock", {"dim": "3"}, "dim must be an integer"),
        ("rosenbrock", {"dim": True}, "dim must be an integer"),
        ("ellipsoid", {"cond": 1e9}, "cond must be in [1, 1e6]"),
        ("ellipsoid", {"cond": float("nan")}, "cond must be a finite number"),
        ("beale", {"dim": 3}, "allowed: none"),
        ("cliff", {"steepness": 1.0}, "steepness must be in [20 / wall, 1e6] = [10, 1e6]"),
        ("gaussian_well", {"width": 0.0}, "width must be in [0.01, 100]"),
        ("rnn_cliff", {"T": 0}, "T must be in [1, 1000]"),
        ("teacher_student", {"batch_size": 1000}, "batch_size must be in [1, n_data=256]"),
        ("digits_mlp", {"hidden": 0}, "hidden must be in [1, 1024]"),
        ("deep_linear", {"depth": 1}, "depth must be in [2, 8]"),
    ],
)
def test_bad_params_are_refused(name, params, needle):
    with pytest.raises(ConfigError) as e:
        P.get(name, **params)
    assert needle in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_category():
    with pytest.raises(ConfigError, match="unknown category 'ravines'; allowed: saddle, ravine"):
        P.names("ravines")


def test_params_are_recorded():
    p = P.get("ellipsoid", dim=4, cond=10)
    assert p.dim == 4 and p.params == {"dim": 4, "cond": 10.0, "seed": 0}
    assert isinstance(p.params["cond"], float)


# -- the oracle protocol ---------------------------------------------------------------------------


def test_every_oracle_implements_the_one_protocol():
    oracle = Oracle(problem("rosenbrock"), 3)
    w = torch.zeros(2, dtype=F64, requires_grad=True)
    closure_oracle = ClosureOracle([w], lambda: (w * w).sum())
    x = torch.zeros(3, 2, dtype=F64)
    f, g = oracle.value_and_grad(x)
    paid = _PaidGradient(oracle, x, f, g)
    for o in (oracle, closure_oracle, paid):
        assert isinstance(o, CountedOracle), type(o).__name__


def test_restricted_narrows_the_counted_runs_and_restores_them():
    oracle = Oracle(problem("rosenbrock"), 3)
    x = torch.zeros(3, 2, dtype=F64)
    oracle.active = torch.tensor([True, True, False])
    with oracle.restricted(torch.tensor([False, True, True])):
        assert oracle.active.tolist() == [False, True, False]
        oracle.value_and_grad(x)
    assert oracle.active.tolist() == [True, True, False]
    with pytest.raises(RuntimeError), oracle.restricted(torch.tensor([True, False, False])):
        raise RuntimeError
    assert oracle.active.tolist() == [True, True, False]
    # f = g = 1, HVP = 2, Hessian = 2d: the one cost model.
    oracle.hvp(x, x)
    oracle.hessian(x)
    assert oracle.counts.ng.tolist() == [0, 1, 0]
    assert oracle.grad_evals.tolist() == [2 + 4, 1 + 2 + 4, 0]


def test_closure_oracle_keeps_the_graph_only_inside_its_own_call():
    backward = torch.autograd.backward
    w = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)

    def closure():
        loss = (w**3).sum()
        loss.backward()
        return loss

    oracle = ClosureOracle([w], closure)
    H = oracle.hessian(torch.tensor([[1.0, 2.0]], dtype=F64))
    torch.testing.assert_close(H[0], torch.diag(torch.tensor([6.0, 12.0], dtype=F64)))
    assert torch.autograd.backward is backward  # nothing process-wide was replaced
    loss = (w**3).sum()
    loss.backward()  # outside the oracle a backward frees its graph, as usual
    with pytest.raises(RuntimeError):
        loss.backward()
