"""Newton's method: closed forms, its flaw at saddles, the fixes, batch invariance, the drop-in."""

from __future__ import annotations

import inspect
import io
import math

import pytest
import torch
from losses import rosenbrock

from optzoo import optimizers
from optzoo.errors import ConfigError
from optzoo.optim import second_order
from optzoo.optimizers import newton
from optzoo.problems import Oracle, Problem

f64 = torch.float64
VARIANTS = [
    {},
    {"damping": 0.5},
    {"adaptive": True},
    {"line_search_fn": "backtracking"},
    {"saddle_free": True},
    {"saddle_free": True, "adaptive": True},
]


pytestmark = pytest.mark.usefixtures("one_thread")


def variant_id(hp: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in hp.items()) or "plain"


def saddle(x):
    return x[..., 0] ** 2 - x[..., 1] ** 2


def quadratic(d=6, seed=0):
    """0.5 x'Ax - b'x with A symmetric positive definite (condition ~1e3), and its minimizer."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=f64))
    a = q @ torch.diag(torch.logspace(0, 3, d, dtype=f64)) @ q.T
    b = torch.randn(d, generator=gen, dtype=f64)

    def fn(x):
        return 0.5 * ((x[..., :, None] * a).sum(-2) * x).sum(-1) - (x * b).sum(-1)

    return fn, a, b


def run(opt, fn, x, steps=1):
    """The trajectory ``(steps + 1, R, d)`` of a batched optimizer, its state and oracle."""
    x = torch.as_tensor(x, dtype=f64)
    oracle = Oracle(Problem(fn=fn, x0=x[0]), x.shape[0])
    state = opt.init(x)
    out = [x]
    for _ in range(steps):
        x, state, _ = opt.step(x, state, oracle)
        out.append(x)
    return torch.stack(out), state, oracle


# -- closed forms ---------------------------------------------------------------------------------
def test_one_step_solves_a_convex_quadratic():
    fn, a, b = quadratic()
    x0 = 3 * torch.randn(5, 6, generator=torch.Generator().manual_seed(1), dtype=f64)
    traj, _, oracle = run(optimizers.get("newton"), fn, x0)
    x_star = torch.linalg.solve(a, b)
    torch.testing.assert_close(traj[1], x_star.expand(5, -1), rtol=1e-10, atol=1e-12)
    # One gradient and one Hessian (2 x 6 gradient evaluations) per run, nothing else.
    assert oracle.counts.ng.tolist() == [1] * 5 and oracle.counts.nh.tolist() == [1] * 5
    assert oracle.grad_evals.tolist() == [13] * 5


def rosenbrock_newton_step(x, y):
    """x - H^-1 g with Rosenbrock's gradient and Hessian written out, H inverted in closed form."""
    g1 = -2 * (1 - x) - 400 * x * (y - x**2)
    g2 = 200 * (y - x**2)
    h11 = 2 - 400 * (y - x**2) + 800 * x**2
    h12 = -400 * x
    h22 = 200.0
    det = h11 * h22 - h12 * h12
    return x - (h22 * g1 - h12 * g2) / det, y - (-h12 * g1 + h11 * g2) / det


def test_plain_newton_on_rosenbrock_takes_the_closed_form_steps():
    traj, _, _ = run(optimizers.get("newton"), rosenbrock, torch.tensor([[-1.2, 1.0]]), 8)
    for k in range(8):
        x, y = (float(v) for v in traj[k, 0])
        expected = torch.tensor(rosenbrock_newton_step(x, y), dtype=f64)
        torch.testing.assert_close(traj[k + 1, 0], expected, rtol=1e-12, atol=1e-14)
    # Newton's known path: up in f at the second step, then quadratic convergence to (1, 1).
    assert rosenbrock(traj[2, 0]) > rosenbrock(traj[1, 0])
    torch.testing.assert_close(traj[-1, 0], torch.ones(2, dtype=f64), rtol=0, atol=1e-12)


def test_plain_newton_lands_on_the_saddle():
    traj, _, _ = run(optimizers.get("newton"), saddle, torch.tensor([[0.3, 0.2], [-0.1, 0.4]]))
    assert traj[1].abs().max() < 1e-12


def test_saddle_free_newton_moves_away_and_decreases_f():
    x0 = torch.tensor([[0.3, 0.2], [-0.1, 0.4], [0.5, 1e-3]], dtype=f64)
    traj, _, _ = run(optimizers.get("newton", saddle_free=True), saddle, x0, 3)
    # |H| = 2I: x goes to 0 along the positive curvature, y doubles along the negative one.
    torch.testing.assert_close(traj[1], x0 * torch.tensor([0.0, 2.0], dtype=f64))
    assert (saddle(traj[1:]) < saddle(traj[:-1])).all()
    assert (traj[-1, :, 1].abs() == 8 * x0[:, 1].abs()).all()


def test_levenberg_marquardt_goes_downhill_where_newton_goes_to_the_saddle():
    x0 = torch.tensor([[0.3, 0.4]], dtype=f64)
    traj, state, oracle = run(optimizers.get("newton", adaptive=True), saddle, x0, 6)
    f = saddle(traj[:, 0])
    assert (f[1:] < f[:-1]).all() and f[-1] < -0.159
    assert (traj[1:, 0, 1].abs() >= 0.4).all()  # never towards the saddle along y
    # The first step raised lambda from 0 through 1e-3, 1e-2, 0.1 to 1 (trial 5) before f fell;
    # each later one tries lambda = 0.1, fails, and succeeds at 1.
    assert oracle.counts.nf.tolist() == [5 + 2 * 5]
    assert state.damping.item() == pytest.approx(0.1)


SINGULAR = {  # a loss with a singular Hessian, and its flat direction
    "x^2+0y^2": (lambda x: x[..., 0] ** 2 + 0 * x[..., 1] ** 2, [0.0, 1.0]),
    "(x+y)^2": (lambda x: (x[..., 0] + x[..., 1]) ** 2, [1.0, -1.0]),
}


@pytest.mark.parametrize("hp", VARIANTS, ids=variant_id)
@pytest.mark.parametrize("loss", list(SINGULAR))
def test_singular_hessian_gives_no_nan(loss, hp):
    fn, flat = SINGULAR[loss]
    x0 = torch.tensor([[1.0, 2.0], [-0.5, 0.25], [0.0, 0.0]], dtype=f64)
    traj, state, _ = run(optimizers.get("newton", **hp), fn, x0, 3)
    assert torch.isfinite(traj).all() and torch.isfinite(state.damping).all()
    assert (fn(traj[-1]) <= fn(x0)).all()
    if hp in ({}, {"line_search_fn": "backtracking"}):
        # The pseudo-inverse step: onto the valley floor, and not at all along the flat line.
        assert fn(traj[1]).abs().max() < 1e-28
        along = torch.tensor(flat, dtype=f64)
        torch.testing.assert_close(traj[1] @ along, x0 @ along, rtol=0, atol=1e-15)


@pytest.mark.parametrize("hp", VARIANTS, ids=variant_id)
def test_a_non_finite_gradient_gives_a_nan_step_and_the_rest_go_on(hp):
    def fn(x):  # sqrt|x1| has no finite derivative at x1 = 0
        return (x**2).sum(-1) + x[..., 1].abs().sqrt()

    x0 = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=f64)
    traj, _, oracle = run(optimizers.get("newton", **hp), fn, x0)
    assert torch.isnan(traj[1, 1]).all()
    assert oracle.counts.nf[1] == 0  # no line-search or damping trials spent on it
    assert torch.isfinite(traj[1, 0]).all() and fn(traj[1, 0]) < fn(x0[0])


def test_backtracking_decreases_f_at_every_step():
    traj, _, oracle = run(
        optimizers.get("newton", line_search_fn="backtracking"), rosenbrock,
        torch.tensor([[-1.2, 1.0], [0.5, 2.0]]), 25,
    )  # fmt: skip
    f = rosenbrock(traj)
    assert (f[1:] <= f[:-1]).all()
    torch.testing.assert_close(traj[-1], torch.ones(2, 2, dtype=f64), rtol=0, atol=1e-8)
    assert (oracle.counts.nf >= 25).all()  # at least one trial value per step


@pytest.mark.parametrize("hp", VARIANTS, ids=variant_id)
def test_decreases_a_convex_quadratic_from_100_starts(hp):
    fn, _, _ = quadratic(d=5, seed=2)
    x0 = 5 * torch.randn(100, 5, generator=torch.Generator().manual_seed(0), dtype=f64)
    traj, _, _ = run(optimizers.get("newton", **hp), fn, x0)
    assert (fn(traj[1]) < fn(x0)).all()


# -- batch invariance -----------------------------------------------------------------------------
def _convex6(x):
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(6, 6, generator=gen, dtype=f64)
    a = a @ a.T / 6 + 0.1 * torch.eye(6, dtype=f64)
    return 0.5 * ((x[..., :, None] * a).sum(-2) * x).sum(-1) + torch.logsumexp(x, -1)


@pytest.mark.parametrize("hp", VARIANTS, ids=variant_id)
@pytest.mark.parametrize("problem", ["rosenbrock", "convex6"])
def test_batch_invariance(problem, hp):
    fn, x0 = (rosenbrock, [-1.2, 1.0]) if problem == "rosenbrock" else (_convex6, [1.0] * 6)
    R = 6
    gen = torch.Generator().manual_seed(3)
    x = torch.tensor(x0, dtype=f64) + 0.7 * torch.randn(R, len(x0), generator=gen, dtype=f64)
    per_run = {
        "lr": torch.tensor([1.0, 0.5, 0.8, 1.0, 0.3, 0.9], dtype=f64),
        "damping": torch.tensor([0.0, 0.1, 0.0, 1.0, 0.01, 0.0], dtype=f64) + hp.get("damping", 0),
    }
    flags = {k: v for k, v in hp.items() if k != "damping"}
    batch, _, oracle = run(optimizers.get("newton", **per_run, **flags), fn, x, 10)
    for r in range(R):
        alone = {k: v[r : r + 1] for k, v in per_run.items()}
        traj, _, o = run(optimizers.get("newton", **alone, **flags), fn, x[r : r + 1], 10)
        torch.testing.assert_close(traj[:, 0], batch[:, r], rtol=1e-12, atol=1e-12)
        assert o.grad_evals[0] == oracle.grad_evals[r]


@pytest.mark.parametrize("hp", VARIANTS, ids=variant_id)
@pytest.mark.parametrize("curvature", ["definite", "indefinite", "singular"])
def test_a_shared_hessian_is_factored_once_with_the_same_bits(curvature, hp):
    """A quadratic's analytic Hessian is one matrix viewed by every run, and Newton factors it
    once; each run must take exactly the steps that the same matrix, copied per run, gives."""
    from optzoo.problems.base import constant_hessian

    d = 7
    _, a, _ = quadratic(d, seed=4)
    if curvature != "definite":
        w, q = torch.linalg.eigh(a)
        w[:2] = -w[:2] if curvature == "indefinite" else 0.0  # LU, or the pseudo-inverse
        a = q @ torch.diag(w) @ q.T
    a = 0.5 * (a + a.T)

    def fn(x):
        return 0.5 * ((x[..., :, None] * a).sum(-2) * x).sum(-1) + 0.1 * x.sum(-1)

    shared = Problem(fn=fn, x0=[1.0] * d, hessian=constant_hessian(a))
    copied = Problem(fn=fn, x0=[1.0] * d, hessian=lambda x: shared.hessian(x).clone())
    assert shared.hessian(torch.zeros(3, d, dtype=f64)).stride(0) == 0
    x0 = torch.randn(9, d, generator=torch.Generator().manual_seed(1), dtype=f64)
    out = []
    for problem in (shared, copied):
        opt = optimizers.get("newton", **hp)
        x, state, oracle = x0, opt.init(x0), Oracle(problem, 9)
        for _ in range(4):
            x, state, _ = opt.step(x, state, oracle)
        out.append((x, oracle.grad_evals))
    assert torch.equal(out[0][0].nan_to_num(7.0), out[1][0].nan_to_num(7.0))
    assert torch.equal(out[0][1], out[1][1])


# -- validation -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "hp,key",
    [
        ({"lr": -1.0}, "lr"),
        ({"damping": -0.1}, "damping"),
        ({"damping": [0.1, -1.0]}, "damping"),
        ({"damping_factor": 1.0}, "damping_factor"),
        ({"c1": 1.5}, "c1"),
        ({"eig_floor": 0.0}, "eig_floor"),
        ({"max_trials": 0}, "max_trials"),
        ({"line_search_fn": "strong_wolfe"}, "line_search_fn"),
        ({"adaptive": True, "line_search_fn": "backtracking"}, "adaptive"),
        ({"saddle_free": "yes"}, "saddle_free"),
        ({"saddle_free": [True, False]}, "saddle_free"),
        ({"momentum": 0.9}, "momentum"),
    ],
)
def test_bad_hyperparameters_are_refused(hp, key):
    with pytest.raises(ConfigError, match=key) as err:
        optimizers.get("newton", **hp)
    assert "\n" not in str(err.value)


# -- the drop-in ----------------------------------------------------------------------------------
def _regression(seed=0):
    gen = torch.Generator().manual_seed(seed)
    data = torch.randn(40, 3, generator=gen, dtype=f64)
    target = data @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=f64) + 0.3
    target = target + 0.1 * torch.randn(40, 1, generator=gen, dtype=f64)
    return data, target


def test_drop_in_solves_least_squares_in_one_step():
    data, target = _regression()
    net = torch.nn.Linear(3, 1).double()
    opt = second_order.Newton(net.parameters())
    calls = [0]

    def closure():
        calls[0] += 1
        opt.zero_grad()
        loss = ((net(data) - target) ** 2).mean()
        loss.backward()
        return loss

    with torch.no_grad():
        start = ((net(data) - target) ** 2).mean().item()
    assert opt.step(closure).item() == start
    design = torch.cat([data, torch.ones(40, 1, dtype=f64)], 1)
    solution = torch.linalg.lstsq(design, target).solution.reshape(-1)
    got = torch.cat([net.weight.detach().reshape(-1), net.bias.detach()])
    torch.testing.assert_close(got, solution, rtol=1e-10, atol=1e-12)
    assert calls[0] == 2  # one call for the gradient, one for the Hessian


def test_closure_oracle_hessian_and_hvp_match_autograd():
    data, target = _regression(1)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    net = net.double()
    params = list(net.parameters())
    sizes = [p.numel() for p in params]
    flat = torch.cat([p.detach().reshape(-1) for p in params])

    def loss_of(x):
        chunks = [c.reshape(p.shape) for c, p in zip(torch.split(x, sizes), params, strict=True)]
        out = torch.func.functional_call(
            net, dict(zip([n for n, _ in net.named_parameters()], chunks, strict=True)), (data,)
        )
        return ((out - target) ** 2).mean()

    def closure():
        for p in params:
            p.grad = None
        loss = ((net(data) - target) ** 2).mean()
        loss.backward()
        return loss

    oracle = second_order.ClosureOracle(params, closure)
    x = flat[None].clone()
    H = oracle.hessian(x)[0]
    torch.testing.assert_close(H, torch.autograd.functional.hessian(loss_of, flat))
    v = torch.randn(1, flat.numel(), dtype=f64)
    torch.testing.assert_close(oracle.hvp(x, v)[0], H @ v[0])
    f, g = oracle.value_and_grad(x)
    torch.testing.assert_close(g[0], torch.func.grad(loss_of)(flat))
    assert oracle.counts.nh.item() == oracle.counts.nhvp.item() == oracle.counts.ng.item() == 1
    assert oracle.grad_evals.item() == 2 * flat.numel() + 2 + 1


@pytest.mark.parametrize("hp", VARIANTS[1:], ids=variant_id)
def test_drop_in_follows_the_batched_rule(hp):
    """The drop-in on a module takes the batched rule's steps on the same loss of a flat x."""
    fn, x0 = rosenbrock, torch.tensor([-1.2, 1.0], dtype=f64)
    traj, _, _ = run(optimizers.get("newton", **hp), fn, x0[None], 6)
    xy = [torch.nn.Parameter(x0[:1].clone()), torch.nn.Parameter(x0[1:].clone())]
    opt = second_order.Newton(xy, **hp)

    def closure():
        opt.zero_grad()
        loss = fn(torch.cat(xy))
        loss.backward()
        return loss

    for k in range(6):
        opt.step(closure)
        torch.testing.assert_close(torch.cat(xy).detach(), traj[k + 1, 0], rtol=1e-12, atol=0)


def test_drop_in_state_dict_round_trip():
    fn, x0 = saddle, torch.tensor([0.3, 0.4], dtype=f64)

    def make(x):
        p = torch.nn.Parameter(x.clone())
        opt = second_order.Newton([p], adaptive=True)

        def closure():
            opt.zero_grad()
            loss = fn(p)
            loss.backward()
            return loss

        return p, opt, closure

    p, opt, closure = make(x0)
    opt.step(closure)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    p2, opt2, closure2 = make(p.detach())
    opt2.load_state_dict(torch.load(buffer))
    assert opt2.state[p2]["damping"].item() == opt.state[p]["damping"].item() > 0
    for _ in range(2):
        opt.step(closure)
        opt2.step(closure2)
    assert torch.equal(p, p2)


def test_drop_in_surface():
    params = inspect.signature(second_order.Newton).parameters
    assert list(params)[:5] == ["params", "lr", "damping", "line_search_fn", "saddle_free"]
    assert params["lr"].default == 1.0 and params["damping"].default == 0.0
    assert issubclass(second_order.Newton, torch.optim.Optimizer)
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="lr"):
        second_order.Newton([p], lr=-1.0)
    with pytest.raises(ValueError, match="parameter groups"):
        second_order.Newton([{"params": [p]}, {"params": [torch.zeros(1, requires_grad=True)]}])
    opt = second_order.Newton([p])
    with pytest.raises(RuntimeError, match="graph"):
        opt.step(lambda: 1.0)


# -- dtypes and devices ---------------------------------------------------------------------------
@pytest.mark.parametrize("hp", VARIANTS, ids=variant_id)
def test_float32_smoke(hp):
    x = torch.tensor([[-1.2, 1.0], [0.3, 0.2]], dtype=torch.float32)
    problem = Problem(fn=rosenbrock, x0=[-1.2, 1.0])
    opt = optimizers.get("newton", **hp)
    state, oracle = opt.init(x), Oracle(problem, 2)
    y = x
    for _ in range(3):
        y, state, _ = opt.step(y, state, oracle)
    assert y.dtype == torch.float32 and state.damping.dtype == torch.float32
    assert torch.isfinite(y).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = torch.tensor([[-1.2, 1.0], [0.3, 0.2]], dtype=f64)
    for hp in VARIANTS:
        cpu, _, _ = run(optimizers.get("newton", **hp), rosenbrock, x, 4)
        opt = optimizers.get("newton", **hp)
        oracle = Oracle(Problem(fn=rosenbrock, x0=[-1.2, 1.0]), 2, device="cuda")
        y, state = x.cuda(), opt.init(x.cuda())
        for _ in range(4):
            y, state, _ = opt.step(y, state, oracle)
        torch.testing.assert_close(y.cpu(), cpu[-1], rtol=1e-9, atol=1e-12)


def test_registry():
    assert "newton" in optimizers.names()
    assert isinstance(optimizers.get("newton", saddle_free=True), newton.Newton)
    assert math.isclose(optimizers.get_class("newton").defaults["lr"], 1.0)


# -- analytic Hessians and the Cholesky solve -------------------------------------------------------
ANALYTIC = [
    ("rosenbrock", {"dim": 2}),
    ("rosenbrock", {"dim": 7}),
    ("ellipsoid", {"dim": 10, "cond": 1e3}),
    ("ellipsoid", {"dim": 5, "rotate": False}),
    ("saddle", {}),
    ("monkey_saddle", {}),
    ("two_neuron", {}),
    ("rastrigin", {"dim": 3}),
    ("himmelblau", {}),
    ("styblinski_tang", {"dim": 4}),
]


@pytest.mark.parametrize("name,params", ANALYTIC, ids=[f"{n}{p}" for n, p in ANALYTIC])
def test_analytic_hessians_match_autograd(name, params):
    from optzoo import problems
    from optzoo.problems.oracle import hessian

    p = problems.get(name, **params)
    assert p.hessian is not None
    x = p.sample_starts(37, seed=5)
    exact = p.hessian(x)
    auto = hessian(p.fn, x)  # d double-backward passes
    assert exact.shape == auto.shape == (37, p.dim, p.dim)
    assert torch.equal(exact, exact.transpose(-1, -2))
    scale = auto.abs().amax((-1, -2), keepdim=True).clamp(min=1.0)
    assert float(((exact - auto).abs() / scale).max()) < 1e-13
    # The oracle hands out the analytic Hessian, counted as before: 2d gradient evaluations.
    oracle = Oracle(p, 37)
    assert torch.equal(oracle.hessian(x), exact)
    assert oracle.grad_evals.tolist() == [2 * p.dim] * 37


def test_positive_definite_steps_skip_eigh_and_match_a_solve(monkeypatch):
    fn, a, b = quadratic(d=8, seed=4)
    gen = torch.Generator().manual_seed(2)
    x = 3 * torch.randn(9, 8, generator=gen, dtype=f64)
    damping = torch.linspace(0.0, 2.0, 9, dtype=f64)

    def no_eigh(*args, **kwargs):
        raise AssertionError("eigh called for a positive definite batch")

    monkeypatch.setattr(torch.linalg, "eigh", no_eigh)
    traj, _, _ = run(optimizers.get("newton", damping=damping), fn, x)
    g = (x[:, :, None] * a).sum(-2) - b
    expected = x - torch.linalg.solve(a + damping[:, None, None] * torch.eye(8, dtype=f64), g)
    torch.testing.assert_close(traj[1], expected, rtol=1e-11, atol=1e-12)


def test_mixed_batch_solves_indefinite_runs_as_before():
    """Runs near the saddle of x^2 - y^2 (indefinite H) and of a convex bowl share a batch: the
    indefinite ones still jump onto the saddle; the convex ones take the exact Newton step."""

    def fn(x):  # x^2 - y^2 where z < 0, x^2 + y^2 where z > 0 (z a third coordinate, fixed)
        sign = torch.where(x[..., 2] > 0, 1.0, -1.0)
        return x[..., 0] ** 2 + sign * x[..., 1] ** 2 + x[..., 2] ** 2

    x = torch.tensor([[0.3, 0.2, 1.0], [-0.1, 0.4, -1.0], [0.5, -0.5, 2.0]], dtype=f64)
    traj, _, _ = run(optimizers.get("newton"), fn, x)
    torch.testing.assert_close(traj[1], torch.zeros(3, 3, dtype=f64), rtol=0, atol=1e-15)


def test_cholesky_refuses_nearly_singular_matrices():
    """The safety bound sends a positive definite but numerically singular H to the pseudo-
    inverse path, which zeroes the step along the flat direction (as before Cholesky)."""
    H = torch.diag(torch.tensor([1.0, 1e-17], dtype=f64)).expand(2, 2, 2).clone()
    H[1] = torch.eye(2, dtype=f64)
    g = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=f64)
    p, ok = newton._cholesky_solve(H, g)
    assert ok.tolist() == [False, True]
    torch.testing.assert_close(p[1], g[1], rtol=0, atol=0)


@pytest.mark.parametrize("d", [2, 6, 30])
def test_cholesky_solve_is_batch_invariant_to_the_bit(d):
    """Unlike eigh, the Cholesky path gives a run the same bits alone as in any batch."""
    gen = torch.Generator().manual_seed(d)
    M = torch.randn(37, d, d, generator=gen, dtype=f64)
    A = M @ M.transpose(-1, -2) / d + torch.eye(d, dtype=f64)
    g = torch.randn(37, d, generator=gen, dtype=f64)
    p, ok = newton._cholesky_solve(A, g)
    assert bool(ok.all())
    for r in range(37):
        assert torch.equal(newton._cholesky_solve(A[r : r + 1].clone(), g[r : r + 1])[0][0], p[r])
    assert torch.equal(newton._cholesky_solve(A[3:20].clone(), g[3:20])[0], p[3:20])
