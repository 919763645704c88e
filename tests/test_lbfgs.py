"""L-BFGS: the batched rule and its torch.optim drop-in against torch.optim.LBFGS, step for step.

A note on rounding. torch.optim.LBFGS takes each dot product with ``torch.dot`` (one BLAS call
per vector pair); the batched rule takes them row by row over the run axis, which must not
depend on the batch. The two sum in different orders and can differ in the last bit when d > 2,
and L-BFGS can amplify such a difference step after step (on the MLP with a 3-pair history, by
a factor of 10 to 1000 per step call). So the step-for-step comparison runs twice:

- the drop-in runs with the rule's dot replaced by ``torch.dot`` run by run (``_blas_dot``), and
  must then follow torch on every problem and configuration, closure calls included: this
  checks the algorithm (history, two-loop recursion, line search, stopping tests) apart from
  summation order;
- the batched rule runs with its own dot wherever a last-bit difference stays small: on
  Rosenbrock (d = 2, summed in one order anyway) and on the quadratic and the MLP with
  torch's default history; with the short history there, it too runs with ``_blas_dot``.
"""

from __future__ import annotations

import copy
import inspect
import io

import pytest
import torch
from losses import mlp, rosenbrock, rotated_quadratic

from optzoo import optimizers
from optzoo.errors import ConfigError
from optzoo.linalg import row_sum
from optzoo.optim import second_order
from optzoo.optimizers import lbfgs
from optzoo.problems import Oracle, Problem

f64 = torch.float64
STEPS = 50


pytestmark = pytest.mark.usefixtures("one_thread")


# -- problems: batched losses (..., d) -> (...), a start, and how the drop-in splits x ------------
_MLP, _MLP_X0, _MLP_SIZES = mlp()
# name -> (loss, start, sizes of the parameter tensors the drop-in gets)
PROBLEMS = {
    "rosenbrock": (rosenbrock, torch.tensor([-1.2, 1.0], dtype=f64), [1, 1]),
    "quadratic": (rotated_quadratic(5), torch.zeros(5, dtype=f64), [2, 3]),
    "mlp": (_MLP, _MLP_X0, _MLP_SIZES),
}

SW = {"line_search_fn": "strong_wolfe"}
BASE = [
    {},
    {"max_iter": 4, "history_size": 3},  # a short history wraps the ring buffer
    {"max_eval": 6},
    {"tolerance_grad": 1e-4, "tolerance_change": 1e-6},
    {"lr": 0.5},
]
CONFIGS = BASE + [{**c, **SW} for c in BASE]


def config_id(config: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in config.items()) or "defaults"


def _blas_dot(a, b):
    """The rule's dot products taken with torch.dot run by run, as torch.optim.LBFGS does."""
    return torch.stack([torch.dot(u, v) for u, v in zip(a, b, strict=True)])


# -- runners: (x after the step, closure calls in the step, loss returned) per step call --------
def run_torch_like(cls, problem, config, steps=STEPS):
    """Steps of a torch-style LBFGS (torch's or the drop-in) on the problem split into tensors."""
    fn, x0, sizes = PROBLEMS[problem]
    params = [p.clone().requires_grad_(True) for p in torch.split(x0, sizes)]
    opt = cls(params, **config)
    calls = 0

    def closure():
        nonlocal calls
        calls += 1
        opt.zero_grad()
        loss = fn(torch.cat(params)[None])[0]
        loss.backward()
        return loss

    out = []
    for _ in range(steps):
        before = calls
        loss = opt.step(closure)
        x = torch.cat([p.detach() for p in params]).clone()
        out.append((x, calls - before, float(loss)))
        if converged(out):
            break
    return out


def run_rule(problem, config, steps=STEPS):
    """The same steps of the batched rule with R = 1 and the counted oracle."""
    fn, x0, _ = PROBLEMS[problem]
    opt = optimizers.get("lbfgs", **config)
    x = x0[None].clone()
    state, oracle = opt.init(x), Oracle(Problem(fn=fn, x0=x0), 1)
    out = []
    for _ in range(steps):
        before = int(oracle.counts.ng[0])
        x, state, f = opt.step(x, state, oracle)
        assert int(oracle.counts.nf[0]) == 0
        out.append((x[0].clone(), int(oracle.counts.ng[0]) - before, float(f[0])))
        if converged(out):
            break
    return out


def converged(out) -> bool:
    """A step call that only evaluated the start and did not move: every later one repeats it."""
    return len(out) > 1 and out[-1][1] == 1 and torch.equal(out[-1][0], out[-2][0])


def assert_same_steps(ours, ref, what):
    assert len(ours) == len(ref), f"{what}: {len(ours)} step calls, torch {len(ref)}"
    for k, ((x, calls, loss), (x_ref, calls_ref, loss_ref)) in enumerate(
        zip(ours, ref, strict=True)
    ):
        assert calls == calls_ref, f"{what}: step {k}: {calls} evaluations, torch {calls_ref}"
        torch.testing.assert_close(x, x_ref, rtol=1e-7, atol=1e-10, msg=f"{what}: step {k}")
        assert loss == pytest.approx(loss_ref, rel=1e-7, abs=1e-14), f"{what}: step {k} loss"


# -- 1. step for step, closure calls included ---------------------------------------------------
def chaotic(problem: str, config: dict) -> bool:
    """Where a last-bit difference in a dot product grows past rtol 1e-7 within 50 step calls."""
    return problem != "rosenbrock" and config.get("history_size") == 3


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_drop_in_and_rule_follow_torch_step_for_step(problem, config, monkeypatch):
    ref = run_torch_like(torch.optim.LBFGS, problem, config)
    assert len(ref) >= STEPS or converged(ref)
    assert sum(c for _, c, _ in ref) > len(ref)  # it did iterate
    with monkeypatch.context() as patch:
        patch.setattr(lbfgs, "_dot", _blas_dot)
        assert_same_steps(run_torch_like(second_order.LBFGS, problem, config), ref, "drop-in")
        if chaotic(problem, config):
            assert_same_steps(run_rule(problem, config), ref, "batched rule, torch.dot")
    if not chaotic(problem, config):
        assert_same_steps(run_rule(problem, config), ref, "batched rule")


def test_drop_in_on_a_module_with_several_parameters(monkeypatch):
    monkeypatch.setattr(lbfgs, "_dot", _blas_dot)
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(32, 3, generator=gen, dtype=f64)
    target = torch.sin(data.sum(-1, keepdim=True))

    def train(cls, **config):
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1)
        ).double()
        opt = cls(net.parameters(), **config)
        calls, out = [0], []

        def closure():
            calls[0] += 1
            opt.zero_grad()
            loss = ((net(data) - target) ** 2).mean()
            loss.backward()
            return loss

        for _ in range(6):
            before = calls[0]
            loss = opt.step(closure)
            flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
            out.append((flat, calls[0] - before, loss.item()))
        return out

    for config in ({}, {"history_size": 5, **SW}):
        ref = train(torch.optim.LBFGS, **config)
        assert_same_steps(train(second_order.LBFGS, **config), ref, f"module {config}")


# -- 2. the drop-in's surface ---------------------------------------------------------------------
def test_drop_in_signature_is_torchs():
    ours = inspect.signature(second_order.LBFGS).parameters
    theirs = inspect.signature(torch.optim.LBFGS).parameters
    assert list(ours) == list(theirs)
    assert [p.default for p in ours.values()] == [p.default for p in theirs.values()]
    assert issubclass(second_order.LBFGS, torch.optim.Optimizer)


def test_rule_defaults_are_torchs():
    theirs = inspect.signature(torch.optim.LBFGS).parameters
    for key, value in lbfgs.LBFGS.defaults.items():
        assert value == theirs[key].default, key


def test_state_dict_round_trip():
    fn, x0, sizes = PROBLEMS["mlp"]

    def make(x):
        params = [p.clone().requires_grad_(True) for p in torch.split(x, sizes)]
        opt = second_order.LBFGS(params, history_size=4, max_iter=5, **SW)

        def closure():
            opt.zero_grad()
            loss = fn(torch.cat(params)[None])[0]
            loss.backward()
            return loss

        return params, opt, closure

    params, opt, closure = make(x0)
    for _ in range(3):
        opt.step(closure)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    params2, opt2, closure2 = make(torch.cat([p.detach() for p in params]))
    opt2.load_state_dict(torch.load(buffer))
    for _ in range(4):
        opt.step(closure)
        opt2.step(closure2)
    for p, q in zip(params, params2, strict=True):
        assert torch.equal(p, q)
    state = opt2.state[params2[0]]
    assert state["n_iter"] == opt.state[params[0]]["n_iter"] > 20
    assert len(state["old_dirs"]) == 4  # the history is full (torch's layout: a list)


def test_drop_in_refuses_what_torch_refuses():
    p = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="lr"):
        second_order.LBFGS([p], lr=-1.0)
    with pytest.raises(ValueError, match="parameter groups"):
        second_order.LBFGS([{"params": [p]}, {"params": [torch.zeros(2, requires_grad=True)]}])
    with pytest.raises(ValueError, match="line_search_fn"):
        second_order.LBFGS([p], line_search_fn="wolfe")


# -- 3. batch invariance --------------------------------------------------------------------------
def trajectory(opt, problem, x, steps):
    state, oracle = opt.init(x), Oracle(problem, x.shape[0])
    traj = [x]
    for _ in range(steps):
        x, state, _ = opt.step(x, state, oracle)
        traj.append(x)
    return torch.stack(traj), oracle.counts.ng


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_batch_invariance(line_search_fn):
    fn, x0, _ = PROBLEMS["mlp"]
    problem = Problem(fn=fn, x0=x0)
    gen = torch.Generator().manual_seed(0)
    R = 5
    x = x0 + 0.3 * torch.randn(R, x0.numel(), generator=gen, dtype=f64)
    per_run = {
        "lr": torch.tensor([1.0, 0.5, 0.8, 1.0, 0.3], dtype=f64),
        "max_iter": torch.tensor([20.0, 5.0, 7.0, 3.0, 12.0], dtype=f64),
    }
    flags = {"line_search_fn": line_search_fn, "history_size": 6}
    batch, evals = trajectory(optimizers.get("lbfgs", **per_run, **flags), problem, x, 5)
    assert torch.isfinite(batch).all()
    assert len(set(evals.tolist())) == R  # every run spent its own number of evaluations
    for r in range(R):
        alone = {k: v[r : r + 1] for k, v in per_run.items()}
        traj, n = trajectory(optimizers.get("lbfgs", **alone, **flags), problem, x[r : r + 1], 5)
        torch.testing.assert_close(traj[:, 0], batch[:, r], rtol=1e-12, atol=1e-12)
        assert int(n[0]) == int(evals[r])


def test_two_long_dot_is_vecdots_bit_for_bit():
    """For d = 2 the rule writes its row sums out (a 2-long reduction costs ~10x an elementwise
    op); they must be torch's bits, signed zeros included, in any memory layout. A NaN must be a
    NaN; its sign may follow the order in which a CPU's kernel adds the two terms, the one thing
    that order can change (adding two numbers is commutative), so it is not compared."""
    gen = torch.Generator().manual_seed(0)
    inf, nan = float("inf"), float("nan")
    special = torch.tensor([0.0, -0.0, inf, -inf, nan, 5e-324, 1e308, -1.0], dtype=f64)
    special = torch.cat([special, -special[4:5]])  # and a NaN with its sign bit set

    def draw(n):
        x = torch.randn(n, 2, generator=gen, dtype=f64)
        x = x * (20 * torch.randn(n, 2, generator=gen, dtype=f64)).exp()
        pick = torch.randint(0, 3, (n, 2), generator=gen) == 0
        return torch.where(pick, special[torch.randint(0, len(special), (n, 2), generator=gen)], x)

    def bits(t):
        nan = t.isnan()
        return nan, t.masked_fill(nan, 0.0).contiguous().view(torch.int64)

    def same(u, v):
        return all(torch.equal(p, q) for p, q in zip(bits(u), bits(v), strict=True))

    for n in (1, 3, 7, 1000, 4099):
        a, b = draw(n), draw(n)
        for a_, b_ in ((a, b), (a.T.contiguous().T, b), (torch.stack([b, a], 1)[:, 1], b)):
            assert same(lbfgs._dot(a_, b_), torch.linalg.vecdot(a_, b_))
            assert same(row_sum(a_.abs()), a_.abs().sum(-1))


def test_frozen_runs_are_not_advanced():
    fn, x0, _ = PROBLEMS["quadratic"]
    problem = Problem(fn=fn, x0=x0)
    x = torch.stack([x0, x0 + 1.0])
    opt = optimizers.get("lbfgs", **SW)
    oracle = Oracle(problem, 2)
    oracle.active = torch.tensor([True, False])
    x_new, _, _ = opt.step(x, opt.init(x), oracle)
    assert not torch.equal(x_new[0], x[0])
    assert torch.equal(x_new[1], x[1])
    assert oracle.counts.ng.tolist()[1] == 0


# -- 4. descent, validation, dtypes and devices ---------------------------------------------------
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_decreases_a_convex_quadratic_from_100_starts(line_search_fn):
    fn = rotated_quadratic(d=5, cond=1e3, seed=3)
    problem = Problem(fn=fn, x0=torch.zeros(5))
    x = 5 * torch.randn(100, 5, generator=torch.Generator().manual_seed(0), dtype=f64)
    opt = optimizers.get("lbfgs", line_search_fn=line_search_fn)
    x_new, _, f = opt.step(x, opt.init(x), Oracle(problem, 100))
    assert torch.equal(f, fn(x))
    assert (fn(x_new) < f).all()


@pytest.mark.parametrize(
    "hp,key",
    [
        ({"lr": -1.0}, "lr"),
        ({"lr": [0.1, -0.1]}, "lr"),
        ({"history_size": 0}, "history_size"),
        ({"history_size": 2.5}, "history_size"),
        ({"history_size": [3, 4]}, "history_size"),
        ({"max_iter": 0}, "max_iter"),
        ({"max_iter": 2.5}, "max_iter"),
        ({"max_eval": 0}, "max_eval"),
        ({"tolerance_grad": -1e-3}, "tolerance_grad"),
        ({"tolerance_change": float("nan")}, "tolerance_change"),
        ({"line_search_fn": "wolfe"}, "line_search_fn"),
        ({"momentum": 0.9}, "momentum"),
    ],
)
def test_bad_hyperparameters_are_refused(hp, key):
    with pytest.raises(ConfigError, match=key) as err:
        optimizers.get("lbfgs", **hp)
    assert "\n" not in str(err.value)


def test_float32_smoke():
    fn = rotated_quadratic(d=5, cond=1e2, seed=1)
    problem = Problem(fn=lambda x: fn(x.double()).to(x.dtype), x0=torch.zeros(5))
    x = torch.ones(3, 5, dtype=torch.float32) * torch.tensor([[1.0], [2.0], [-1.0]])
    for config in ({}, SW):
        opt = optimizers.get("lbfgs", **config)
        state, oracle = opt.init(x), Oracle(problem, 3)
        y = x
        for _ in range(3):
            y, state, _ = opt.step(y, state, oracle)
        assert y.dtype == torch.float32 and state.old_dirs.dtype == torch.float32
        assert torch.isfinite(y).all() and (problem(y) < problem(x)).all()

    net = torch.nn.Linear(4, 1)
    data, target = torch.randn(16, 4), torch.randn(16, 1)
    opt = second_order.LBFGS(net.parameters(), **SW)

    def closure():
        opt.zero_grad()
        loss = ((net(data) - target) ** 2).mean()
        loss.backward()
        return loss

    first = opt.step(closure).item()
    assert opt.step(closure).item() < first


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    fn, x0, _ = PROBLEMS["quadratic"]
    problem = Problem(fn=fn, x0=x0)
    x = x0 + torch.randn(4, x0.numel(), dtype=f64)
    opt = optimizers.get("lbfgs", **SW)
    cpu, _ = trajectory(opt, problem, x, 3)
    fn_cuda = rotated_quadratic(5)  # same seed: the same problem, its tensors moved per call
    cuda_problem = Problem(fn=lambda z: fn_cuda(z.cpu()).to(z.device), x0=x0, validate=False)
    state, oracle = opt.init(x.cuda()), Oracle(cuda_problem, 4, device="cuda")
    y = x.cuda()
    for _ in range(3):
        y, state, _ = opt.step(y, state, oracle)
    assert y.device.type == "cuda"
    torch.testing.assert_close(y.cpu(), cpu[-1], rtol=1e-8, atol=1e-10)


def test_registry_and_repr():
    assert "lbfgs" in optimizers.names()
    opt = optimizers.get("lbfgs", history_size=3)
    assert isinstance(opt, lbfgs.LBFGS) and "history_size=3" in repr(opt)
    assert copy.deepcopy(opt).hp == opt.hp
