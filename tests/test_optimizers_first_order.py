"""The batched first-order rules against torch.optim, run by run, and their batch invariance."""

from __future__ import annotations

import inspect
import re

import pytest
import torch
from losses import mlp, rosenbrock, rotated_quadratic

from optzoo import optimizers
from optzoo.problems import Oracle, Problem

f64 = torch.float64
STEPS = 50

# optzoo name -> (the torch.optim class with the same rule, the arguments that make it so)
TORCH = {
    "sgd": (torch.optim.SGD, {}),
    "momentum": (torch.optim.SGD, {"momentum": 0.9}),
    "nesterov": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
    "adagrad": (torch.optim.Adagrad, {}),
    "rmsprop": (torch.optim.RMSprop, {}),
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
    "adadelta": (torch.optim.Adadelta, {}),
}
FIRST_ORDER = list(TORCH)

# Every constructor argument of each rule, alone and combined. maximize runs on -f, so that
# maximizing it descends f as the other configs do.
CONFIGS = [
    ("sgd", {}),
    ("sgd", {"lr": 5e-4, "momentum": 0.9}),
    ("sgd", {"lr": 5e-4, "momentum": 0.9, "dampening": 0.3}),
    ("sgd", {"lr": 5e-4, "momentum": 0.8, "nesterov": True}),
    ("sgd", {"weight_decay": 0.5}),
    ("sgd", {"lr": 5e-4, "momentum": 0.9, "dampening": 0.5, "weight_decay": 0.1, "maximize": True}),
    ("momentum", {"lr": 5e-4}),
    ("nesterov", {"lr": 5e-4, "weight_decay": 0.1}),
    ("adagrad", {}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.1}),
    ("adagrad", {"initial_accumulator_value": 0.5}),
    ("adagrad", {"eps": 1e-2}),
    ("adagrad", {"weight_decay": 0.3}),
    (
        "adagrad",
        {"lr_decay": 0.05, "initial_accumulator_value": 0.1, "weight_decay": 0.1, "maximize": True},
    ),
    ("rmsprop", {"lr": 1e-3}),
    ("rmsprop", {"lr": 1e-3, "alpha": 0.9}),
    ("rmsprop", {"lr": 1e-3, "eps": 1e-2}),
    ("rmsprop", {"lr": 1e-3, "centered": True}),
    ("rmsprop", {"lr": 1e-4, "momentum": 0.9}),
    ("rmsprop", {"lr": 1e-4, "centered": True, "momentum": 0.5, "weight_decay": 0.1}),
    ("rmsprop", {"lr": 1e-3, "weight_decay": 0.3}),
    ("rmsprop", {"lr": 1e-3, "alpha": 0.95, "maximize": True}),
    ("adam", {}),
    ("adam", {"lr": 1e-2, "betas": (0.8, 0.99)}),
    ("adam", {"lr": 1e-2, "eps": 1e-3}),
    ("adam", {"lr": 1e-2, "amsgrad": True}),
    ("adam", {"lr": 1e-2, "weight_decay": 0.3}),
    ("adam", {"lr": 1e-2, "weight_decay": 0.3, "decoupled_weight_decay": True}),
    ("adam", {"lr": 1e-2, "betas": (0.5, 0.9), "amsgrad": True, "maximize": True}),
    ("adamw", {}),
    ("adamw", {"lr": 1e-2, "weight_decay": 0.5, "amsgrad": True}),
    ("adamw", {"lr": 1e-2, "maximize": True}),
    ("adadelta", {}),
    ("adadelta", {"rho": 0.5}),
    ("adadelta", {"lr": 0.5, "eps": 1e-3}),
    ("adadelta", {"weight_decay": 0.3}),
    ("adadelta", {"rho": 0.95, "weight_decay": 0.1, "maximize": True}),
]


pytestmark = pytest.mark.usefixtures("one_thread")


def config_id(config) -> str:
    name, hp = config
    return name + "".join(f"-{k}={v}" for k, v in hp.items())


# -- problems: batched losses (..., d) -> (...); these contract with einsum -------------------
_MLP, _MLP_X0, _ = mlp(einsum=True)
PROBLEMS = {
    "rosenbrock": (rosenbrock, torch.tensor([-1.2, 1.0], dtype=f64)),
    "quadratic": (rotated_quadratic(6, einsum=True), torch.zeros(6, dtype=f64)),
    "mlp": (_MLP, _MLP_X0),
}


def make_problem(name: str, sign: float = 1.0) -> tuple[Problem, torch.Tensor]:
    fn, x0 = PROBLEMS[name]
    return Problem(fn=lambda x: sign * fn(x), x0=x0, name=name, category="custom"), x0


def starts(x0: torch.Tensor, R: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return x0 + 0.1 * torch.randn(R, x0.numel(), generator=gen, dtype=f64)


def run_batched(opt, problem, x, steps):
    """The trajectory ``(steps + 1, R, d)`` of a batched optimizer."""
    state, oracle = opt.init(x), Oracle(problem, x.shape[0])
    traj = [x]
    for _ in range(steps):
        x, state, _ = opt.step(x, state, oracle)
        traj.append(x)
    return torch.stack(traj)


def assert_same_trajectory(ours, theirs, rtol=1e-7, atol=1e-12):
    """Equal at every step ``(steps + 1, ...)``; a failure names the first step that differs."""
    close = torch.isclose(ours, theirs, rtol=rtol, atol=atol).flatten(1).all(1)
    if not close.all():
        t = int((~close).nonzero()[0])
        torch.testing.assert_close(
            ours[t], theirs[t], rtol=rtol, atol=atol, msg=lambda m: f"step {t}: {m}"
        )


# -- 1. step-for-step agreement with torch.optim -------------------------------------------------
@pytest.mark.parametrize("problem_name", list(PROBLEMS))
@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_batched_rule_matches_torch_run_by_run(config, problem_name):
    name, hp = config
    sign = -1.0 if hp.get("maximize") else 1.0
    problem, x0 = make_problem(problem_name, sign)
    R = 3
    x = starts(x0, R)
    # Each run its own learning rate: a per-run tensor here, a param group on torch's side.
    lrs = hp.get("lr", optimizers.get_class(name).defaults["lr"]) * torch.tensor([1.0, 0.5, 0.25])
    ours = run_batched(optimizers.get(name, **{**hp, "lr": lrs}), problem, x, STEPS)
    assert torch.isfinite(ours).all()
    assert not torch.equal(ours[-1], ours[0])

    # One torch param per run: torch's for-loop path updates each param on its own.
    cls, extra = TORCH[name]
    params = [x[r].clone().requires_grad_(True) for r in range(R)]
    groups = [{"params": [p], "lr": float(lr)} for p, lr in zip(params, lrs, strict=True)]
    kwargs = {**extra, **{k: v for k, v in hp.items() if k != "lr"}}
    ref = cls(groups, foreach=False, **kwargs)
    theirs = [x]
    for _ in range(STEPS):
        ref.zero_grad()
        problem.fn(torch.stack(params)).sum().backward()
        ref.step()
        theirs.append(torch.stack(params).detach().clone())
    assert_same_trajectory(ours, torch.stack(theirs))


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_defaults_are_torchs(name):
    cls, extra = TORCH[name]
    sig = inspect.signature(cls).parameters
    for key, value in optimizers.get_class(name).defaults.items():
        if key in sig:
            assert value == extra.get(key, sig[key].default), key
    assert optimizers.get_class("adamw").defaults["decoupled_weight_decay"] is True


# -- 2. batch invariance -------------------------------------------------------------------------
PER_RUN = {
    "sgd": {
        "lr": [1e-3, 5e-4, 2e-4, 1e-4],
        "momentum": [0.0, 0.5, 0.9, 0.7],
        "dampening": [0.0, 0.1, 0.0, 0.3],
        "weight_decay": [0.0, 0.1, 0.2, 0.0],
    },
    "momentum": {"lr": [1e-3, 5e-4, 2e-4, 1e-4], "momentum": [0.1, 0.5, 0.9, 0.7]},
    "nesterov": {
        "lr": [1e-3, 5e-4, 2e-4, 1e-4],
        "momentum": [0.1, 0.5, 0.9, 0.7],
        "weight_decay": [0.0, 0.1, 0.2, 0.0],
    },
    "adagrad": {
        "lr": [0.1, 0.05, 0.2, 0.01],
        "lr_decay": [0.0, 0.1, 0.01, 0.5],
        "weight_decay": [0.0, 0.1, 0.2, 0.0],
        "eps": [1e-10, 1e-3, 1e-6, 0.0],
        "initial_accumulator_value": [0.0, 0.1, 1.0, 0.5],
    },
    "rmsprop": {
        "lr": [1e-3, 5e-4, 2e-4, 1e-4],
        "alpha": [0.99, 0.9, 0.5, 0.95],
        "eps": [1e-8, 1e-3, 1e-6, 0.0],
        "weight_decay": [0.0, 0.1, 0.2, 0.0],
        "momentum": [0.0, 0.5, 0.9, 0.0],
    },
    "adam": {
        "lr": [1e-2, 5e-3, 2e-2, 1e-3],
        "betas": ([0.9, 0.5, 0.0, 0.8], [0.999, 0.9, 0.5, 0.99]),
        "eps": [1e-8, 1e-3, 1e-6, 0.0],
        "weight_decay": [0.0, 0.1, 0.2, 0.0],
    },
    "adadelta": {
        "lr": [1.0, 0.5, 2.0, 0.1],
        "rho": [0.9, 0.5, 0.99, 0.0],
        "eps": [1e-6, 1e-3, 1e-8, 1e-4],
        "weight_decay": [0.0, 0.1, 0.2, 0.0],
    },
}
PER_RUN["adamw"] = PER_RUN["adam"]
INVARIANCE = [(name, {}) for name in FIRST_ORDER] + [
    ("sgd", {"nesterov": False, "maximize": True}),
    ("rmsprop", {"centered": True}),
    ("adam", {"amsgrad": True}),
    ("adam", {"decoupled_weight_decay": True, "maximize": True}),
]


def _one_run(per_run: dict, r: int) -> dict:
    """Run r's values of per-run hyperparameters, as plain numbers."""
    out = {}
    for k, v in per_run.items():
        out[k] = tuple(b[r] for b in v) if k == "betas" else v[r]
    return out


@pytest.mark.parametrize("problem_name", ["rosenbrock", "mlp"])
@pytest.mark.parametrize("config", INVARIANCE, ids=config_id)
def test_batch_invariance(config, problem_name):
    name, flags = config
    problem, x0 = make_problem(problem_name, -1.0 if flags.get("maximize") else 1.0)
    per_run = PER_RUN[name]
    R = 4
    x = starts(x0, R, seed=3)
    batched = run_batched(optimizers.get(name, **per_run, **flags), problem, x, 30)
    for r in range(R):
        alone = run_batched(
            optimizers.get(name, **_one_run(per_run, r), **flags), problem, x[r : r + 1], 30
        )
        torch.testing.assert_close(batched[:, r : r + 1], alone, rtol=1e-12, atol=1e-12)


# -- 3. every optimizer descends a convex quadratic at its defaults ------------------------------
@pytest.mark.parametrize("name", FIRST_ORDER)
def test_defaults_decrease_a_convex_quadratic(name):
    scales = torch.linspace(1.0, 10.0, 5, dtype=f64)
    problem = Problem(fn=lambda x: 0.5 * (scales * x * x).sum(-1), x0=[1.0] * 5, bounds=(-3, 3))
    x = problem.sample_starts(100, seed=0)
    opt = optimizers.get(name)
    state, oracle = opt.init(x), Oracle(problem, 100)
    f0 = problem(x)
    for _ in range(200):
        x, state, _ = opt.step(x, state, oracle)
    f = problem(x)
    assert torch.isfinite(f).all()
    assert (f < f0).all(), f"{name}: {int((f >= f0).sum())} of 100 runs did not decrease"


# -- 4. validation -------------------------------------------------------------------------------
BAD = (
    [
        ("sgd", {"momentum": -0.1}, "momentum"),
        ("sgd", {"weight_decay": -1.0}, "weight_decay"),
        ("nesterov", {"momentum": 0.0}, "nesterov"),
        ("nesterov", {"dampening": 0.1}, "nesterov"),
        ("adagrad", {"lr_decay": -1.0}, "lr_decay"),
        ("adagrad", {"initial_accumulator_value": -1.0}, "initial_accumulator_value"),
        ("adagrad", {"weight_decay": -1.0}, "weight_decay"),
        ("adagrad", {"eps": -1.0}, "eps"),
        ("rmsprop", {"alpha": -0.5}, "alpha"),
        ("rmsprop", {"eps": -1.0}, "eps"),
        ("rmsprop", {"momentum": -1.0}, "momentum"),
        ("rmsprop", {"weight_decay": -1.0}, "weight_decay"),
        ("adam", {"betas": (1.0, 0.999)}, "betas[0]"),
        ("adam", {"betas": (0.9, -0.1)}, "betas[1]"),
        ("adam", {"betas": ([0.9, 0.9], [0.999, 1.0])}, "betas[1]"),
        ("adam", {"betas": (0.9,)}, "betas"),
        ("adam", {"eps": -1.0}, "eps"),
        ("adam", {"eps": float("nan")}, "eps"),
        ("adam", {"weight_decay": -1.0}, "weight_decay"),
        ("adamw", {"weight_decay": -0.1}, "weight_decay"),
        ("adadelta", {"rho": 1.5}, "rho"),
        ("adadelta", {"eps": -1.0}, "eps"),
        ("adadelta", {"weight_decay": -1.0}, "weight_decay"),
    ]
    + [(name, {"lr": -1.0}, "lr") for name in FIRST_ORDER]
    + [(name, {"lr": [1e-3, -1e-3]}, "lr") for name in FIRST_ORDER]
)


@pytest.mark.parametrize("name,hp,key", BAD, ids=lambda v: v if isinstance(v, str) else None)
def test_bad_hyperparameter_is_refused(name, hp, key):
    with pytest.raises(ValueError, match=re.escape(key)):
        optimizers.get(name, **hp)


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_unknown_hyperparameter_and_batchwide_flags(name):
    with pytest.raises(ValueError, match="unknown hyperparameter 'nonsense'"):
        optimizers.get(name, nonsense=1.0)
    with pytest.raises(ValueError, match="maximize"):
        optimizers.get(name, maximize=[True, False])


def test_unknown_name_lists_the_names():
    with pytest.raises(ValueError) as err:
        optimizers.get("adamm")
    assert "adamm" in str(err.value)
    for name in optimizers.names():
        assert name in str(err.value)


# -- 6. other dtypes and devices -----------------------------------------------------------------
def _smoke(dtype, device):
    problem, x0 = make_problem("mlp")
    for name in FIRST_ORDER:
        x = starts(x0, 3).to(dtype=dtype, device=device)
        opt = optimizers.get(name, lr=[1e-3, 1e-2, 1e-4])
        state, oracle = opt.init(x), Oracle(problem, 3, device=device)
        f0 = problem(x)
        for _ in range(5):
            x, state, f = opt.step(x, state, oracle)
        assert x.dtype == dtype and x.device.type == torch.device(device).type, name
        assert all(t.dtype == dtype for t in state), name
        assert torch.isfinite(x).all() and problem(x).sum() < f0.sum(), name


def test_float32():
    _smoke(torch.float32, "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda():
    _smoke(torch.float64, "cuda")
