"""BFGS and DFP: the batched rule and its drop-ins against theory, scipy and themselves in a batch.

Oracles: conjugate gradient and A^-1 on quadratics (quadratic termination, Nocedal & Wright
Theorem 6.4 and section 6.4); the secant equation; the direct (B) forms of both updates, which
the inverse forms must invert (N&W eqs. 6.13 and 6.19); scipy.optimize.minimize(method="BFGS");
the same runs one by one.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import scipy.optimize
import torch

from optzoo import optimizers, problems
from optzoo.config import OptimizerSpec, Suite
from optzoo.errors import ConfigError
from optzoo.harness import run_cell
from optzoo.optim import BFGS, DFP
from optzoo.problems import Oracle, Problem

f64 = torch.float64
UPDATES = ["bfgs", "dfp"]


pytestmark = pytest.mark.usefixtures("one_thread")


def spd(d: int, cond: float, seed: int) -> torch.Tensor:
    """A random SPD matrix with eigenvalues log-spaced over [1, cond]."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=f64))
    return q @ torch.diag(torch.logspace(0, math.log10(cond), d, dtype=f64)) @ q.T


def quadratic(A: torch.Tensor, b: torch.Tensor) -> Problem:
    """f(x) = 1/2 x'Ax - b'x, batched."""
    return Problem(
        fn=lambda x: 0.5 * ((x @ A) * x).sum(-1) - (x * b).sum(-1), x0=torch.zeros_like(b)
    )


def cg_iterates(A: torch.Tensor, b: torch.Tensor, x: torch.Tensor, k: int) -> list[torch.Tensor]:
    """Conjugate gradient's first k iterates from x, by their defining property.

    x_j minimizes f over x + span{r, Ar, ..., A^(j-1) r}, r = b - Ax (Nocedal & Wright Theorem
    5.2). Computed on an orthonormal basis of that Krylov space (Gram-Schmidt applied twice),
    which stays accurate where CG's own recurrences lose conjugacy in floating point.
    """
    r = b - A @ x
    basis = [r / torch.linalg.vector_norm(r)]
    for _ in range(k - 1):
        w = A @ basis[-1]
        for _ in range(2):
            for u in basis:
                w = w - (u @ w) * u
        basis.append(w / torch.linalg.vector_norm(w))
    out = []
    for j in range(1, k + 1):
        V = torch.stack(basis[:j], dim=1)
        out.append(x + V @ torch.linalg.solve(V.T @ A @ V, V.T @ r))
    return out


def trajectory(opt, problem: Problem, x: torch.Tensor, steps: int):
    """Iterates (steps + 1, R, d), states after each step, and evaluations per run."""
    state, oracle = opt.init(x), Oracle(problem, x.shape[0])
    xs, states = [x], []
    for _ in range(steps):
        x, state, _ = opt.step(x, state, oracle)
        xs.append(x)
        states.append(state)
    return torch.stack(xs), states, oracle.grad_evals


# -- 1. theory -------------------------------------------------------------------------------------
@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize("d,cond", [(2, 10.0), (3, 1e4), (5, 1e2), (7, 1e3), (10, 1e4)])
def test_quadratic_termination_with_exact_line_search(update, d, cond):
    """d iterations reach the minimizer, H_d = A^-1, and every iterate is conjugate gradient's."""
    A = spd(d, cond, seed=d)
    gen = torch.Generator().manual_seed(100 + d)
    b = torch.randn(d, generator=gen, dtype=f64)
    x0 = torch.randn(3, d, generator=gen, dtype=f64)  # three starts in one batch
    opt = optimizers.get(update, line_search_fn="exact", tolerance_grad=0.0)
    xs, states, _ = trajectory(opt, quadratic(A, b), x0, d)
    x_star = torch.linalg.solve(A, b)
    scale = (x0 - x_star).abs().max()
    for r in range(3):
        for k, x_cg in enumerate(cg_iterates(A, b, x0[r], d), start=1):
            torch.testing.assert_close(xs[k, r], x_cg, rtol=0, atol=1e-8 * scale)
    torch.testing.assert_close(xs[d], x_star.expand(3, d), rtol=0, atol=1e-8 * scale)
    H_d = states[-1].H
    assert int(states[-1].skips.sum()) == 0
    torch.testing.assert_close(H_d, torch.linalg.inv(A).expand(3, d, d), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize("name", ["rosenbrock", "beale", "ellipsoid", "himmelblau"])
def test_secant_equation_and_positive_definiteness_under_wolfe(update, name):
    problem = problems.get(name)
    x = torch.cat([problem.x0.reshape(1, -1), problem.sample_starts(7, seed=0)]).to(f64)
    # Runs stop at max|g| <= 1e-9, short of the round-off floor where searches fail.
    opt = optimizers.get(update, tolerance_grad=1e-9)
    state, oracle = opt.init(x), Oracle(problem, x.shape[0])
    checked = 0
    for _ in range(25):
        x_new, new, _ = opt.step(x, state, oracle)
        s, y = new.x - state.x, new.g - state.g
        updated = (new.n_updates == state.n_updates + 1) & (state.n_iter > 0)
        Hy = (new.H @ y[:, :, None])[..., 0]
        # s is read back as x+ - x, which carries round-off of order eps |x|.
        bound = 1e-9 * s.abs().amax(-1) + 1e-15 * new.x.abs().amax(-1)
        err = (Hy - s).abs().amax(-1)
        assert (err <= bound)[updated].all(), (err / bound)[updated].max()
        assert torch.equal(new.H, new.H.transpose(-1, -2))
        assert (torch.linalg.eigvalsh(new.H) > 0).all()
        checked += int(updated.sum())
        x, state = x_new, new
    assert checked >= 50
    assert int(state.resets.sum()) == 0  # Wolfe steps keep H positive definite: no resets


def test_scaled_h0_then_the_product_form_of_the_issue():
    """With scale_h0 the first update starts from (y.s / y.y) I (N&W eq. 6.20), and BFGS's
    H+ = (I - rho s y^T) H (I - rho y s^T) + rho s s^T (N&W eq. 6.17), evaluated here as
    that product."""
    A, b = spd(4, 100.0, seed=4), torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=f64)
    x = torch.zeros(1, 4, dtype=f64)  # from 0, s is x+ itself, with no round-off
    opt = optimizers.get("bfgs", scale_h0=True)
    state = opt.init(x)
    x1, state1, _ = opt.step(x, state, Oracle(quadratic(A, b), 1))
    s, y = x1[0], state1.g[0] - (-b)
    rho, eye = 1 / (y @ s), torch.eye(4, dtype=f64)
    H0 = (y @ s) / (y @ y) * eye
    expect = (eye - rho * torch.outer(s, y)) @ H0 @ (eye - rho * torch.outer(y, s))
    expect = expect + rho * torch.outer(s, s)
    torch.testing.assert_close(state1.H[0], expect, rtol=1e-12, atol=1e-14)


def test_the_update_is_skipped_where_curvature_is_negative():
    """cos is concave on (-pi/2, pi/2): an Armijo step from 0.5 to the right gives y.s < 0."""
    problem = Problem(fn=lambda x: torch.cos(x[..., 0]), x0=[0.5])
    x = torch.tensor([[0.5]], dtype=f64)
    opt = optimizers.get("bfgs", line_search_fn="backtracking")
    x1, state, _ = opt.step(x, opt.init(x), Oracle(problem, 1))
    assert 0.5 < float(x1[0, 0]) < math.pi / 2
    assert state.skips.tolist() == [1] and state.n_updates.tolist() == [0]
    assert torch.equal(state.H, torch.eye(1, dtype=f64)[None])


@pytest.mark.parametrize("update", UPDATES)
def test_inverse_updates_invert_the_direct_updates(update):
    """inv(H+) is the direct update of B = inv(H): BFGS's N&W eq. 6.19, DFP's eq. 6.13."""
    gen = torch.Generator().manual_seed(7)
    R, d = 6, 5
    H = torch.stack([spd(d, 50.0, seed=i) for i in range(R)])
    s = torch.randn(R, d, generator=gen, dtype=f64)
    y = s + 0.3 * torch.randn(R, d, generator=gen, dtype=f64)
    ys = (y * s).sum(-1)
    assert (ys > 0).all()
    opt = optimizers.get(update)
    H_new = opt._update(H, s, y, ys, torch.zeros(R, dtype=torch.bool))
    B = torch.linalg.inv(H)
    for r in range(R):
        Br, sr, yr, rho = B[r], s[r], y[r], 1 / ys[r]
        if update == "bfgs":
            Bs = Br @ sr
            expect = Br - torch.outer(Bs, Bs) / (sr @ Bs) + rho * torch.outer(yr, yr)
        else:
            left = torch.eye(d, dtype=f64) - rho * torch.outer(yr, sr)
            expect = left @ Br @ left.T + rho * torch.outer(yr, yr)
        torch.testing.assert_close(torch.linalg.inv(H_new[r]), expect, rtol=1e-9, atol=1e-9)


# -- 2. scipy ----------------------------------------------------------------------------------------
def scipy_bfgs(problem: Problem, x0: torch.Tensor, gtol: float):
    oracle = Oracle(problem, 1)

    def fun(z):
        f, g = oracle.value_and_grad(torch.tensor(z, dtype=f64)[None])
        return float(f[0]), g[0].numpy().copy()

    res = scipy.optimize.minimize(fun, x0.numpy(), jac=True, method="BFGS", options={"gtol": gtol})
    return res.x, res.nit


def until_stuck(name: str, problem: Problem, x: torch.Tensor, gtol: float, cap: int = 400):
    """Run to max|g| <= gtol, or until no run moves twice in a row; iterations that moved x."""
    opt = optimizers.get(name, tolerance_grad=gtol)
    state, oracle = opt.init(x), Oracle(problem, x.shape[0])
    moves = torch.zeros(x.shape[0], dtype=torch.int64)
    still = 0
    for _ in range(cap):
        x_new, state, _ = opt.step(x, state, oracle)
        moved = (x_new != x).any(-1)
        moves += moved
        still = 0 if moved.any() else still + 1
        x = x_new
        if still == 2:
            break
    return x, moves


ROSEN10 = problems.get("rosenbrock", dim=10)
SCIPY_CASES = {
    "rosenbrock 2-D from (-1.2, 1)": (problems.get("rosenbrock"), None),
    # From (-1.2, 1, ..., -1.2, 1) scipy's line search leads to the local minimizer near
    # (-1, 1, ..., 1) and bfgs's to the global one (see benchmarks/quasi_newton_vs_scipy.py),
    # so 10-D is compared from seeded starts in the box.
    "rosenbrock 10-D": (ROSEN10, ROSEN10.sample_starts(4, seed=3)[1:]),
    "beale": (problems.get("beale"), None),
    "ellipsoid 10-D": (problems.get("ellipsoid", dim=10), None),
}


@pytest.mark.parametrize("case", list(SCIPY_CASES))
def test_bfgs_reaches_scipys_minimizer_within_1_5x_its_iterations(case):
    problem, starts = SCIPY_CASES[case]
    x0 = (problem.x0.reshape(1, -1) if starts is None else starts).to(f64)
    gtol = 1e-8
    x, moves = until_stuck("bfgs", problem, x0, gtol)
    for r in range(x0.shape[0]):
        x_ref, nit = scipy_bfgs(problem, x0[r], gtol)
        assert np.abs(x[r].numpy() - x_ref).max() < 1e-6
        assert int(moves[r]) <= 1.5 * nit, (int(moves[r]), nit)


# -- 3. DFP against BFGS with backtracking ----------------------------------------------------------
def iterations_to(name: str, problem: Problem, x: torch.Tensor, gtol: float, cap: int):
    """Iterations each run takes to max|g| <= gtol with Armijo backtracking (cap if never)."""
    opt = optimizers.get(name, line_search_fn="backtracking", tolerance_grad=gtol)
    state, oracle = opt.init(x), Oracle(problem, x.shape[0])
    for _ in range(cap):
        x, state, _ = opt.step(x, state, oracle)
    done = state.g.abs().amax(-1) <= gtol
    return torch.where(done, state.n_iter, cap)


def test_dfp_degrades_with_backtracking_on_rosenbrock_but_not_on_the_ellipsoid():
    """DFP's weakness with inexact line searches (Nocedal & Wright section 6.1), measured.

    On Rosenbrock 2-D from its start and 7 box samples, BFGS with backtracking needs a median of
    about 30 iterations to max|g| <= 1e-6 and DFP several times more (most runs still short of
    it after 150). On the 10-D ellipsoid (a quadratic, condition 1e3) we measured no
    degradation: both need about 17 iterations, so that is what is asserted there.
    """
    rosen = problems.get("rosenbrock")
    x = torch.cat([rosen.x0.reshape(1, -1), rosen.sample_starts(7, seed=1)]).to(f64)
    bfgs = iterations_to("bfgs", rosen, x, 1e-6, cap=150)
    dfp = iterations_to("dfp", rosen, x, 1e-6, cap=150)
    assert int(bfgs.max()) < 150  # BFGS solves every start
    assert float(dfp.median()) > 2 * float(bfgs.median()), (bfgs.tolist(), dfp.tolist())

    ell = problems.get("ellipsoid", dim=10)
    x = torch.cat([ell.x0.reshape(1, -1), ell.sample_starts(7, seed=1)]).to(f64)
    bfgs = iterations_to("bfgs", ell, x, 1e-6, cap=60)
    dfp = iterations_to("dfp", ell, x, 1e-6, cap=60)
    assert int(bfgs.max()) < 60 and int(dfp.max()) < 60
    assert abs(float(dfp.median()) - float(bfgs.median())) <= 3, (bfgs.tolist(), dfp.tolist())


# -- 4. batches, frozen runs, resets ----------------------------------------------------------------
@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize("line_search_fn", ["strong_wolfe", "backtracking", "exact"])
def test_batch_invariance(update, line_search_fn):
    problem = problems.get("rosenbrock", dim=4)
    R = 5
    x = problem.sample_starts(R, seed=2).to(f64)
    lr = torch.tensor([1.0, 0.5, 0.8, 1.0, 0.3], dtype=f64)
    flags = {"line_search_fn": line_search_fn, "scale_h0": line_search_fn == "backtracking"}
    batch, _, evals = trajectory(optimizers.get(update, lr=lr, **flags), problem, x, 12)
    assert torch.isfinite(batch).all()
    if line_search_fn != "exact":  # there every iteration costs one HVP and one gradient
        assert len(set(evals.tolist())) > 1  # runs spent their own numbers of evaluations
    for r in range(R):
        opt = optimizers.get(update, lr=lr[r : r + 1], **flags)
        alone, _, n = trajectory(opt, problem, x[r : r + 1], 12)
        assert torch.equal(alone[:, 0], batch[:, r])
        assert int(n[0]) == int(evals[r])


def test_frozen_and_converged_runs_cost_nothing():
    problem = problems.get("rosenbrock")
    x = torch.tensor([[-1.2, 1.0], [0.0, 0.0], [1.0, 1.0]], dtype=f64)  # the last at x*
    opt = optimizers.get("bfgs")
    state, oracle = opt.init(x), Oracle(problem, 3)
    oracle.active = torch.tensor([True, False, True])
    for _ in range(3):
        x_new, state, _ = opt.step(x, state, oracle)
        assert torch.equal(x_new[1:], x[1:])
        x = x_new
    assert oracle.counts.ng.tolist()[1] == 0
    assert oracle.counts.ng.tolist()[2] == 1  # one evaluation at the start, then it stays


@pytest.mark.parametrize("broken", [-1.0, float("nan")])
def test_a_broken_inverse_hessian_is_reset_to_h0_and_counted(broken):
    """A run whose H is indefinite or NaN takes the step a fresh run takes, and counts a reset."""
    problem = problems.get("beale")
    x = problem.x0.reshape(1, -1).to(f64)
    opt = optimizers.get("bfgs")
    fresh_x, fresh, _ = opt.step(x, opt.init(x), Oracle(problem, 1))
    state = opt.init(x)._replace(H=broken * torch.eye(2, dtype=f64)[None], n_updates=fresh.n_iter)
    x_new, new, _ = opt.step(x, state, Oracle(problem, 1))
    assert torch.equal(x_new, fresh_x)
    assert new.resets.tolist() == [1]
    assert torch.isfinite(new.H).all()


def test_runs_in_the_harness_also_with_the_saddle_escape():
    suite = Suite(name="t", problems=(), optimizers=(), steps=60, starts=3)
    for name in UPDATES:
        runs = run_cell(suite, problems.get("rosenbrock"), OptimizerSpec(name, {})).runs
        assert (runs["status"] == "solved").sum() >= 3, runs[["status", "f_final"]]
    runs = run_cell(suite, problems.get("saddle"), OptimizerSpec("bfgs", {})).runs
    assert (runs["status"] != "diverged").all()
    opt = optimizers.get("bfgs", escape=True)
    x = torch.tensor([[1e-9, 1e-9]], dtype=f64)
    x_new, _, _ = opt.step(x, opt.init(x), Oracle(problems.get("two_neuron"), 1))
    assert torch.linalg.vector_norm(x_new) > 1e-3  # stepped off the saddle


@pytest.mark.parametrize(
    "hp,key",
    [
        ({"lr": 0.0}, "lr"),
        ({"c1": 0.95}, "c1"),
        ({"c2": 1.0}, "c2"),
        ({"max_ls": 2.5}, "max_ls"),
        ({"backtrack": 1.0}, "backtrack"),
        ({"line_search_fn": "wolfe"}, "line_search_fn"),
        ({"update": "sr1"}, "update"),
        ({"scale_h0": 1}, "scale_h0"),
        ({"history_size": 5}, "history_size"),
    ],
)
def test_bad_hyperparameters_are_refused_in_one_line(hp, key):
    with pytest.raises(ConfigError, match=key) as err:
        optimizers.get("bfgs", **hp)
    assert "\n" not in str(err.value)


# -- 5. drop-ins -----------------------------------------------------------------------------------
def mlp_and_data(seed: int = 0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))
    net = net.to(f64)
    data = torch.randn(32, 3, dtype=f64)
    return net, data, torch.sin(data.sum(-1, keepdim=True))


@pytest.mark.parametrize("cls", [BFGS, DFP])
def test_drop_in_trains_an_mlp_and_round_trips_state_dict(cls):
    net, data, target = mlp_and_data()
    opt = cls(net.parameters())

    def closure():
        opt.zero_grad()
        loss = ((net(data) - target) ** 2).mean()
        loss.backward()
        return loss

    start = float(closure())
    for _ in range(10):
        opt.step(closure)
    saved_net, saved_opt = copy.deepcopy(net.state_dict()), copy.deepcopy(opt.state_dict())
    for _ in range(10):
        last = opt.step(closure)
    assert float(closure()) < 0.2 * start
    assert float(last) < start

    net2, _, _ = mlp_and_data(seed=1)
    net2.load_state_dict(saved_net)
    opt2 = cls(net2.parameters())
    opt2.load_state_dict(saved_opt)

    def closure2():
        opt2.zero_grad()
        loss = ((net2(data) - target) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(10):
        opt2.step(closure2)
    for p, q in zip(net.parameters(), net2.parameters(), strict=True):
        assert torch.equal(p, q)


def test_drop_in_follows_the_batched_rule():
    net, data, target = mlp_and_data()
    params = list(net.parameters())
    x0 = torch.cat([p.detach().reshape(-1) for p in params]).clone()
    sizes = [p.numel() for p in params]
    shapes = [p.shape for p in params]

    def flat_loss(x):
        parts = zip(x.split(sizes, -1), shapes, strict=True)
        w1, b1, w2, b2 = (t.reshape(*x.shape[:-1], *s) for t, s in parts)
        h = torch.tanh(torch.einsum("...ij,nj->...ni", w1, data) + b1[..., None, :])
        out = torch.einsum("...ij,...nj->...ni", w2, h) + b2[..., None, :]
        return ((out - target) ** 2).mean((-1, -2))

    opt = DFP(params)

    def closure():
        opt.zero_grad()
        loss = ((net(data) - target) ** 2).mean()
        loss.backward()
        return loss

    rule = optimizers.get("dfp")
    x = x0[None]
    state, oracle = rule.init(x), Oracle(Problem(fn=flat_loss, x0=x0), 1)
    for _ in range(8):
        opt.step(closure)
        x, state, _ = rule.step(x, state, oracle)
    torch.testing.assert_close(torch.cat([p.detach().reshape(-1) for p in params]), x[0])


def test_drop_in_refuses_a_model_too_big_for_a_dense_matrix():
    big = torch.nn.Linear(200, 100, dtype=f64)  # 20,100 parameters: 3.0 GiB for H
    with pytest.raises(ConfigError, match=r"20,100 parameters .* 3\.0 GiB") as err:
        BFGS(big.parameters())
    assert "\n" not in str(err.value)
    BFGS(torch.nn.Linear(10, 10).parameters())  # 110 parameters are fine


def test_the_rule_refuses_a_batch_too_big_for_dense_matrices():
    with pytest.raises(ConfigError, match="GiB"):
        optimizers.get("dfp").init(torch.zeros(4, 10_000, dtype=f64))


def test_drop_in_with_exact_line_search_ends_on_a_quadratics_minimizer_in_d_steps():
    A, b = spd(3, 100.0, seed=9), torch.tensor([1.0, 1.0, 1.0], dtype=f64)
    w = torch.nn.Parameter(torch.tensor([2.0, -1.0, 0.5], dtype=f64))
    opt = BFGS([w], line_search_fn="exact", tolerance_grad=0.0)

    def closure():
        opt.zero_grad()
        loss = 0.5 * w @ A @ w - b @ w
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    torch.testing.assert_close(w.detach(), torch.linalg.solve(A, b), rtol=1e-10, atol=1e-12)
