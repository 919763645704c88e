"""Any torch.optim.Optimizer in the harness: every run equals a plain per-run loop, bit for bit.

The oracle is the plainest loop there is: one parameter tensor, one optimizer instance built with
the run's hyperparameters, autograd for the gradient, ``opt.step()`` (or ``opt.step(closure)``
for L-BFGS, counting closure calls). The harness's recorded path of every run (all starts are
recorded) must equal the loop's iterates exactly, in float64, and its gradient count must equal
the loop's closure calls.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from losses import rosenbrock

from optzoo import optimizers
from optzoo.config import Suite, optimizer_spec
from optzoo.errors import ConfigError
from optzoo.harness import run_cell
from optzoo.optimizers import external
from optzoo.problems import Problem

F64 = torch.float64
STEPS = 12
STARTS = 3  # besides x0: 4 starts x the lr grid per cell


PROBLEM = Problem(fn=rosenbrock, x0=[-1.2, 1.0], bounds=[-2.0, 2.0], name="rosen")
SUITE = Suite(
    name="ext", problems=(), optimizers=(), steps=STEPS, starts=STARTS, paths=STARTS + 1,
    stop_on_success=False,
)  # fmt: skip


class SignSGD(torch.optim.Optimizer):
    """x <- x - lr * sign(g), written here as any user would."""

    def __init__(self, params, lr: float = 1e-3) -> None:
        if lr <= 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-group["lr"])
        return loss


CASES = [
    ("torch.optim:NAdam", {"lr": [1e-2, 3e-2], "momentum_decay": [4e-3, 1e-2]}),
    ("torch.optim:RAdam", {"lr": [3e-3, 1e-2], "betas": [[0.9, 0.999], [0.8, 0.99]]}),
    ("torch.optim:Adamax", {"lr": [1e-2, 1e-1], "weight_decay": [0.0, 1e-2]}),
    ("torch.optim:ASGD", {"lr": [1e-4, 3e-4], "t0": [2.0, 5.0]}),
    ("torch.optim:Rprop", {"lr": [1e-3, 1e-2], "etas": [[0.5, 1.2], [0.4, 1.3]]}),
    (SignSGD, {"lr": [1e-3, 1e-2]}),
    ("torch.optim:LBFGS", {"lr": [0.5, 1.0], "history_size": [3, 10]}),
]


def plain_loop(cls: type, hp: dict, x0: list[float], steps: int):
    """One run alone: the iterates after each step and the number of loss evaluations."""
    p = torch.tensor(x0, dtype=F64, requires_grad=True)
    opt = cls([p], **hp)
    calls = 0

    def closure():
        nonlocal calls
        calls += 1
        opt.zero_grad()
        loss = rosenbrock(p)
        loss.backward()
        return loss

    path = [p.detach().clone()]
    for _ in range(steps):
        if isinstance(opt, torch.optim.LBFGS):
            opt.step(closure)
        else:
            closure()
            opt.step()
        path.append(p.detach().clone())
    return torch.stack(path), calls


def _hp(text: str, cls: type) -> dict:
    hp = json.loads(text)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in hp.items()}


def check_cell(target, grid: dict) -> str:
    """Run the cell; compare every run with its plain loop. Returns the layout the probe chose."""
    spec = optimizer_spec(target, grid)
    res = run_cell(SUITE, PROBLEM, spec)
    cls = external._import(spec.name)
    assert len(res.runs) == len(spec.grid()) * (STARTS + 1)
    for row in res.runs.itertuples():
        # A diverged run stops at its last finite iterate, having paid for one more step.
        n = row.steps
        path, calls = plain_loop(cls, _hp(row.hp, cls), row.x0, n + (row.status != "budget"))
        got = res.paths[res.paths["run"] == row.run].sort_values("step")
        xy = torch.tensor(got[["x", "y"]].to_numpy(), dtype=F64)
        assert row.status == "diverged" or n == STEPS, (row.hp, row.status)
        # The path holds the iterates whose f was finite: all n + 1, or n where f overflowed.
        assert len(xy) in (n, n + 1) and (len(xy) == n + 1 or row.status == "diverged")
        assert torch.equal(xy, path[: len(xy)]), (spec.name, row.hp)
        assert torch.equal(torch.tensor(row.x_final, dtype=F64), path[n])
        assert row.ng == calls and row.nf == 0, (row.hp, row.ng, calls)
    assert (res.runs["status"] == "budget").mean() > 0.5
    return optimizers.get_class(spec.name).layout or ""


@pytest.mark.parametrize("target,grid", CASES, ids=lambda c: getattr(c, "__name__", str(c)))
def test_batched_cell_equals_plain_loop(target, grid):
    check_cell(target, grid)


def test_third_party_lion_equals_plain_loop():
    lion = pytest.importorskip("lion_pytorch")
    check_cell(lion.Lion, {"lr": [1e-3, 1e-2], "weight_decay": [0.0, 0.1]})


@pytest.mark.parametrize("layout", external.LAYOUTS)
def test_every_layout_is_exact_for_an_elementwise_rule(layout, monkeypatch):
    """The probe may pick any layout for NAdam; each one on its own must still be exact."""
    cls = optimizers.get_class("torch.optim:NAdam")
    monkeypatch.setattr(cls, "layout", layout)
    check_cell("torch.optim:NAdam", {"lr": [1e-2, 3e-2]})


def test_probe_keeps_lbfgs_isolated_and_lets_adam_share():
    """L-BFGS flattens an instance's parameters into one vector: only per-run instances are exact.
    Adam treats each coordinate on its own: a shared layout passes the probe."""
    x = torch.zeros(16, 3, dtype=F64)
    plan_l = [({"lr": 1.0}, list(range(16)))]
    assert external.choose_layout(torch.optim.LBFGS, plan_l, x) == "isolated"
    plan_a = [({"lr": 1e-2}, list(range(8))), ({"lr": 1e-1}, list(range(8, 16)))]
    assert external.choose_layout(torch.optim.Adam, plan_a, x) in ("fast", "shared")


def test_user_batched_rule_runs_as_it_is():
    from optzoo.optimizers.sgd import SGD

    class Halved(SGD):
        name = "halved"

    assert optimizers.get_class(Halved) is Halved
    spec = optimizer_spec(Halved, {"lr": [1e-3]})
    res = run_cell(SUITE, PROBLEM, spec)
    ref = run_cell(SUITE, PROBLEM, optimizer_spec("sgd", {"lr": [1e-3]}))
    assert np.array_equal(np.stack(res.runs["x_final"]), np.stack(ref.runs["x_final"]))


@pytest.mark.parametrize(
    "target,hp,match",
    [
        ("torch.optim:NoSuch", {}, "has no 'NoSuch'"),
        ("no_such_module_xyz:Opt", {}, "cannot import 'no_such_module_xyz'"),
        ("torch.nn:Linear", {}, "not an optimizer class"),
        ("torch.optim:Adam", {"lr": -1.0}, "Invalid learning rate"),
        ("torch.optim:Adam", {"nope": 1.0}, "unknown hyperparameter 'nope'"),
        (3, {}, "an optimizer must be a name"),
    ],
)
def test_bad_optimizers_are_one_config_error(target, hp, match):
    with pytest.raises(ConfigError, match=match):
        optimizer_spec(target, hp)
