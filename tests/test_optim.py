"""The torch.optim drop-ins of optzoo.optim against torch.optim itself, on nn.Modules."""

from __future__ import annotations

import copy
import inspect
import io
import math
import re

import pytest
import torch
from torch import nn

import optzoo.optim
from optzoo.optim.first_order import (
    SGD,
    AdaDelta,
    Adagrad,
    Adam,
    AdamW,
    Momentum,
    Nesterov,
    RMSprop,
)

f64 = torch.float64
STEPS = 50

# optzoo drop-in -> (the torch.optim class with the same rule, the arguments that make it so)
TORCH = {
    SGD: (torch.optim.SGD, {}),
    Momentum: (torch.optim.SGD, {"momentum": 0.9}),
    Nesterov: (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
    Adagrad: (torch.optim.Adagrad, {}),
    RMSprop: (torch.optim.RMSprop, {}),
    Adam: (torch.optim.Adam, {}),
    AdamW: (torch.optim.AdamW, {}),
    AdaDelta: (torch.optim.Adadelta, {}),
}
DROP_INS = list(TORCH)

# Every constructor argument of each optimizer, alone and combined. maximize runs on -loss, so
# that maximizing it descends the loss as the other configs do.
CONFIGS = [
    (SGD, {}),
    (SGD, {"lr": 5e-4, "momentum": 0.9}),
    (SGD, {"lr": 5e-4, "momentum": 0.9, "dampening": 0.3}),
    (SGD, {"lr": 5e-4, "momentum": 0.8, "nesterov": True}),
    (SGD, {"weight_decay": 0.5}),
    (SGD, {"lr": 5e-4, "momentum": 0.9, "dampening": 0.5, "weight_decay": 0.1, "maximize": True}),
    (Momentum, {"lr": 5e-4}),
    (Nesterov, {"lr": 5e-4, "weight_decay": 0.1}),
    (Adagrad, {}),
    (Adagrad, {"lr": 0.1, "lr_decay": 0.1}),
    (Adagrad, {"initial_accumulator_value": 0.5}),
    (Adagrad, {"eps": 1e-2}),
    (Adagrad, {"weight_decay": 0.3}),
    (
        Adagrad,
        {"lr_decay": 0.05, "initial_accumulator_value": 0.1, "weight_decay": 0.1, "maximize": True},
    ),
    (RMSprop, {"lr": 1e-3}),
    (RMSprop, {"lr": 1e-3, "alpha": 0.9}),
    (RMSprop, {"lr": 1e-3, "eps": 1e-2}),
    (RMSprop, {"lr": 1e-3, "centered": True}),
    (RMSprop, {"lr": 1e-4, "momentum": 0.9}),
    (RMSprop, {"lr": 1e-4, "centered": True, "momentum": 0.5, "weight_decay": 0.1}),
    (RMSprop, {"lr": 1e-3, "weight_decay": 0.3}),
    (RMSprop, {"lr": 1e-3, "alpha": 0.95, "maximize": True}),
    (Adam, {}),
    (Adam, {"lr": 1e-2, "betas": (0.8, 0.99)}),
    (Adam, {"lr": 1e-2, "eps": 1e-3}),
    (Adam, {"lr": 1e-2, "amsgrad": True}),
    (Adam, {"lr": 1e-2, "weight_decay": 0.3}),
    (Adam, {"lr": 1e-2, "weight_decay": 0.3, "decoupled_weight_decay": True}),
    (Adam, {"lr": 1e-2, "betas": (0.5, 0.9), "amsgrad": True, "maximize": True}),
    (AdamW, {}),
    (AdamW, {"lr": 1e-2, "weight_decay": 0.5, "amsgrad": True}),
    (AdamW, {"lr": 1e-2, "maximize": True}),
    (AdaDelta, {}),
    (AdaDelta, {"rho": 0.5}),
    (AdaDelta, {"lr": 0.5, "eps": 1e-3}),
    (AdaDelta, {"weight_decay": 0.3}),
    (AdaDelta, {"rho": 0.95, "weight_decay": 0.1, "maximize": True}),
]


pytestmark = pytest.mark.usefixtures("one_thread")


def config_id(config) -> str:
    cls, hp = config
    return cls.__name__ + "".join(f"-{k}={v}" for k, v in hp.items())


# -- problems: modules with a loss ---------------------------------------------------------------
class Rosenbrock(nn.Module):
    """(1 - a)^2 + 100 (b - a^2)^2 with a a 0-d parameter and b a 1-element vector."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(-1.2, dtype=f64))
        self.b = nn.Parameter(torch.tensor([1.0], dtype=f64))

    def loss(self):
        return (1 - self.a) ** 2 + 100 * (self.b[0] - self.a**2) ** 2


class Quadratic(nn.Module):
    """0.5 (w - c)' A (w - c) over a (2, 3) weight, A rotated with condition number 1e3."""

    def __init__(self, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=f64))
        self.register_buffer("A", q @ torch.diag(torch.logspace(0, 3, 6, dtype=f64)) @ q.T)
        self.register_buffer("c", torch.randn(6, generator=gen, dtype=f64))
        self.w = nn.Parameter(0.1 * torch.randn(2, 3, generator=gen, dtype=f64))

    def loss(self):
        z = self.w.reshape(-1) - self.c
        return 0.5 * z @ self.A @ z


class MLP(nn.Module):
    """A tanh network's mean squared error on fixed data; four parameter tensors."""

    def __init__(self, seed=1):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 1)).to(f64)
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("data", torch.randn(16, 3, generator=gen, dtype=f64))
        self.register_buffer("target", torch.sin(self.data.sum(-1, keepdim=True)))

    def loss(self):
        return ((self.net(self.data) - self.target) ** 2).mean()


PROBLEMS = {"rosenbrock": Rosenbrock, "quadratic": Quadratic, "mlp": MLP}


def flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def train(model, opt, steps, sign=1.0, scheduler=None) -> torch.Tensor:
    """Parameters after every step, ``(steps, n)``."""
    out = []
    for _ in range(steps):
        opt.zero_grad()
        (sign * model.loss()).backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()
        out.append(flat(model))
    return torch.stack(out)


def assert_same_trajectory(ours, theirs, rtol=1e-7, atol=1e-12):
    """Equal at every step; a failure names the first step that differs."""
    close = torch.isclose(ours, theirs, rtol=rtol, atol=atol).flatten(1).all(1)
    if not close.all():
        t = int((~close).nonzero()[0])
        torch.testing.assert_close(
            ours[t], theirs[t], rtol=rtol, atol=atol, msg=lambda m: f"step {t + 1}: {m}"
        )


# -- step-for-step agreement with torch.optim ----------------------------------------------------
@pytest.mark.parametrize("problem_name", list(PROBLEMS))
@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_drop_in_matches_torch(config, problem_name):
    cls, hp = config
    sign = -1.0 if hp.get("maximize") else 1.0
    model = PROBLEMS[problem_name]()
    reference = copy.deepcopy(model)
    torch_cls, extra = TORCH[cls]
    ours = train(model, cls(model.parameters(), **hp), STEPS, sign)
    theirs = train(
        reference, torch_cls(reference.parameters(), foreach=False, **extra, **hp), STEPS, sign
    )
    assert torch.isfinite(ours).all()
    assert not torch.equal(ours[-1], ours[0])
    assert_same_trajectory(ours, theirs)


# -- the public surface --------------------------------------------------------------------------
@pytest.mark.parametrize("cls", DROP_INS, ids=lambda c: c.__name__)
def test_signature_is_torchs(cls):
    torch_cls, extra = TORCH[cls]
    ours = inspect.signature(cls).parameters
    theirs = inspect.signature(torch_cls).parameters
    assert list(ours) == list(theirs)
    for name, p in theirs.items():
        assert ours[name].kind == p.kind, name
        assert ours[name].default == extra.get(name, p.default), name
    assert issubclass(cls, torch.optim.Optimizer)


def test_public_names():
    for name in ["SGD", "Momentum", "Nesterov", "Adagrad", "RMSprop", "Adam", "AdamW", "AdaDelta"]:
        assert getattr(optzoo.optim, name) is globals()[name]


# -- state_dict, param groups, schedulers, closures ----------------------------------------------
HEAVY = {  # settings that put every state field to use
    SGD: {"momentum": 0.9, "lr": 5e-4},
    Momentum: {"lr": 5e-4},
    Nesterov: {"lr": 5e-4},
    Adagrad: {"lr_decay": 0.1, "initial_accumulator_value": 0.1},
    RMSprop: {"lr": 1e-3, "centered": True, "momentum": 0.5},
    Adam: {"lr": 1e-2, "amsgrad": True},
    AdamW: {"lr": 1e-2, "amsgrad": True},
    AdaDelta: {},
}


@pytest.mark.parametrize("cls", DROP_INS, ids=lambda c: c.__name__)
def test_state_dict_round_trip(cls):
    model = MLP()
    opt = cls(model.parameters(), **HEAVY[cls])
    train(model, opt, 10)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    uninterrupted = train(model, opt, 10)

    buffer.seek(0)
    saved = torch.load(buffer)
    resumed_model = MLP(seed=7)
    resumed_model.load_state_dict(saved["model"])
    resumed_opt = cls(resumed_model.parameters(), **HEAVY[cls])
    resumed_opt.load_state_dict(saved["opt"])
    resumed = train(resumed_model, resumed_opt, 10)
    assert torch.equal(resumed, uninterrupted)


@pytest.mark.parametrize("cls", DROP_INS, ids=lambda c: c.__name__)
def test_param_groups_and_scheduler(cls):
    """Two groups with their own lr (and weight decay), under an lr scheduler, as torch does."""
    torch_cls, extra = TORCH[cls]
    lr = HEAVY[cls].get("lr", inspect.signature(cls).parameters["lr"].default)
    model = MLP()
    reference = copy.deepcopy(model)

    def groups(m):
        first, second = m.net[0], m.net[2]
        return [
            {"params": first.parameters(), "lr": 2 * lr, "weight_decay": 0.1},
            {"params": second.parameters()},
        ]

    ours = cls(groups(model), **HEAVY[cls])
    theirs = torch_cls(groups(reference), foreach=False, **{**extra, **HEAVY[cls]})
    decay = [torch.optim.lr_scheduler.StepLR(o, step_size=5, gamma=0.5) for o in (ours, theirs)]
    assert_same_trajectory(
        train(model, ours, 20, scheduler=decay[0]), train(reference, theirs, 20, scheduler=decay[1])
    )
    assert ours.param_groups[0]["lr"] == pytest.approx(2 * lr / 16)
    assert ours.param_groups[1]["lr"] == pytest.approx(lr / 16)


@pytest.mark.parametrize("cls", DROP_INS, ids=lambda c: c.__name__)
def test_closure_and_params_without_grad(cls):
    model = Rosenbrock()
    unused = nn.Parameter(torch.ones(3, dtype=f64))
    opt = cls([{"params": model.parameters()}, {"params": [unused]}])

    def closure():
        opt.zero_grad()
        loss = model.loss()
        loss.backward()
        return loss

    before = flat(model)
    loss = opt.step(closure)
    assert loss.item() == pytest.approx(24.2)
    assert not torch.equal(flat(model), before)
    assert torch.equal(unused, torch.ones(3, dtype=f64))
    # torch.optim.Adagrad makes every parameter's state at construction; the others lazily.
    assert (unused in opt.state) == (cls is Adagrad)


# -- validation ----------------------------------------------------------------------------------
BAD = [
    (SGD, {"lr": -1.0}, "lr"),
    (SGD, {"momentum": -0.5}, "momentum"),
    (SGD, {"nesterov": True}, "nesterov"),
    (Momentum, {"weight_decay": -1.0}, "weight_decay"),
    (Nesterov, {"dampening": 0.5}, "nesterov"),
    (Adagrad, {"lr_decay": -1.0}, "lr_decay"),
    (Adagrad, {"initial_accumulator_value": -1.0}, "initial_accumulator_value"),
    (RMSprop, {"alpha": -1.0}, "alpha"),
    (RMSprop, {"eps": -1.0}, "eps"),
    (Adam, {"betas": (0.9, 1.0)}, "betas[1]"),
    (Adam, {"betas": [1.5, 0.999]}, "betas[0]"),
    (AdamW, {"weight_decay": -1.0}, "weight_decay"),
    (AdaDelta, {"rho": 1.1}, "rho"),
]


@pytest.mark.parametrize("cls,hp,key", BAD, ids=lambda v: v if isinstance(v, str) else None)
def test_bad_argument_is_refused(cls, hp, key):
    with pytest.raises(ValueError, match=re.escape(key)):
        cls(Rosenbrock().parameters(), **hp)


@pytest.mark.parametrize("cls", DROP_INS, ids=lambda c: c.__name__)
def test_bad_param_group_is_refused(cls):
    model = Rosenbrock()
    with pytest.raises(ValueError, match="invalid lr"):
        cls([{"params": [model.a]}, {"params": [model.b], "lr": -1.0}])
    opt = cls([model.a])
    with pytest.raises(ValueError, match="invalid eps|invalid weight_decay"):
        key = "eps" if "eps" in opt.defaults else "weight_decay"
        opt.add_param_group({"params": [model.b], key: -1.0})


# -- other dtypes and devices --------------------------------------------------------------------
def _smoke(dtype, device):
    for cls in DROP_INS:
        model = MLP().to(dtype=dtype, device=device)
        opt = cls(model.parameters(), **HEAVY[cls])
        first = model.loss().item()
        train(model, opt, 5)
        assert all(p.dtype == dtype and p.device.type == device for p in model.parameters())
        assert all(t.dtype == dtype for s in opt.state.values() for t in s.values())
        assert math.isfinite(model.loss().item()) and model.loss().item() < first, cls.__name__


def test_float32():
    _smoke(torch.float32, "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda():
    _smoke(torch.float64, "cuda")
