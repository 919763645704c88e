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
STEPS = 8  # first-order steps per trajectory; L-BFGS takes LBFGS_STEPS closure steps
LBFGS_STEPS = 3


pytestmark = pytest.mark.usefixtures("one_thread")


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

    Measured (20 steps, float32; the test takes STEPS): up to 6.0e-8 between fused and for-loop (Adagrad, lr 0.1),
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
        float((trajectory(cls, {**base, **v}, dtype, two)[0] - ref).abs().max()) for v in variants
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


# -- 3. complex parameters -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "case", [c for c in CASES if not any(c[2].get(f) for f in FLAGS)], ids=case_id
)
def test_complex_matches_torch(case):
    name, _, kwargs = case
    gen = torch.Generator().manual_seed(3)
    params = [torch.randn(*s, generator=gen, dtype=torch.complex128) for s in [(3, 2), (2,)]]
    runs = []
    for cls in (INFO[name].optim_cls, ours_of(name)):
        copies = copy.deepcopy(params)
        runs.append(trajectory(cls, kwargs, torch.complex128, params=copies, steps=5)[0])
    assert_steps_close(runs[1], runs[0], rtol=1e-7, atol=1e-12)


# -- 4. sparse gradients (SGD and Adagrad, optim_db's sparse settings) -----------------------------
@pytest.mark.parametrize("name", [n for n in NAMES if INFO[n].supports_sparse])
def test_sparse_gradients_match_torch(name):
    kwargs, _ = INFO[name].metadata_for_sparse
    gen = torch.Generator().manual_seed(4)
    x0 = torch.randn(6, generator=gen, dtype=torch.float64)
    grads = []
    for _ in range(6):
        idx = torch.randperm(6, generator=gen)[:3].sort().values
        vals = torch.randn(3, generator=gen, dtype=torch.float64)
        grads.append(torch.sparse_coo_tensor(idx[None], vals, (6,)))
    runs = []
    for cls in (INFO[name].optim_cls, ours_of(name)):
        x = x0.clone()
        opt = cls([x], **kwargs)
        out = []
        for g in grads:
            x.grad = g.clone()
            opt.step()
            out.append(x.clone())
        runs.append(torch.stack(out))
    assert_steps_close(runs[1], runs[0], rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_sparse_refusals_are_torchs(name):
    """Where torch refuses a sparse gradient, optzoo does too, with torch's exception type."""
    kw = {"weight_decay": 0.1} if name == "Adagrad" else {}
    outcome = []
    for cls in (INFO[name].optim_cls, ours_of(name)):
        x = torch.zeros(4, dtype=torch.float64)
        opt = cls([x], **kw)
        grad = torch.sparse_coo_tensor(
            [[1, 3]], torch.tensor([1.0, -2.0], dtype=torch.float64), (4,)
        )
        try:
            x.grad = grad
            opt.step(lambda: torch.tensor(0.0)) if name == "LBFGS" else opt.step()
            outcome.append(None)
        except Exception as e:  # noqa: BLE001 - the type is what is compared
            outcome.append(type(e))
    assert outcome[1] == outcome[0]


# -- 5. differentiable steps: meta-gradients --------------------------------------------------------
DIFF = {  # settings whose every tensor hyperparameter torch differentiates through
    "SGD": {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1, "nesterov": True},
    "Adagrad": {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.1},
    "RMSprop": {"lr": 0.01, "centered": True, "momentum": 0.5, "weight_decay": 0.1},
    "Adam": {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1},
    "AdamW": {"lr": 0.01, "weight_decay": 0.1, "maximize": True},
    "Adadelta": {"lr": 0.5, "weight_decay": 0.1},
}


@pytest.fixture
def float64_default():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_differentiable_meta_gradient_matches_torch(name, float64_default):
    """d(loss after a step) / d(initial parameters), through the step: optzoo's equals torch's.

    One step, as torch's own gradcheck tests: its for-loop updates centered RMSprop's and Adam's
    averages in place, so its graph breaks at a second. The default dtype is float64 so that
    torch's differentiable Adam counts steps in float64 (in float32 its 1 - beta2 is off by
    relative 1.3e-5)."""
    X, Y, (W0, b0) = problem(torch.float64)
    results = []
    for cls in (INFO[name].optim_cls, ours_of(name)):
        starts = [W0.clone().requires_grad_(), b0.clone().requires_grad_()]
        params = [s.clone() for s in starts]  # non-leaf, so steps may write them in place
        opt = cls(params, **DIFF[name], differentiable=True)
        grads = torch.autograd.grad(loss_of(X, Y, *params), params, create_graph=True)
        for p, g in zip(params, grads, strict=True):
            p.grad = g  # with its graph: the meta-gradient runs through the gradient too
        opt.step()
        results.append(torch.autograd.grad(loss_of(X, Y, *params), starts))
    for theirs, ours in zip(*results, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-7, atol=1e-12)


# -- 6. schedulers: optim_db's, and OneCycleLR cycling the momentum or the betas ------------------
def _schedulers(name):
    out = [(f"db{i}", fs) for i, fs in enumerate(INFO[name].scheduler_inputs)]
    if "momentum" in HEAVY[name] or "betas" in INFO[name].optim_cls([torch.zeros(1)]).defaults:
        cycle = [lambda o: OneCycleLR(o, max_lr=0.05, total_steps=STEPS, cycle_momentum=True)]
        out.append(("one_cycle", cycle))
    return out


SCHEDULED = [(n, i, fs) for n in FIRST_ORDER for i, fs in _schedulers(n)]


@pytest.mark.parametrize("name,label,makers", SCHEDULED, ids=[f"{n}-{i}" for n, i, _ in SCHEDULED])
def test_schedulers_match_torch(name, label, makers):
    runs = []
    for cls in (INFO[name].optim_cls, ours_of(name)):
        _, _, params = problem(torch.float64)
        opt = cls(params, **HEAVY[name])
        sched = [make(opt) for make in makers]
        runs.append(
            trajectory(cls, HEAVY[name], torch.float64, params=params, opt=opt, sched=sched)[0]
        )
    assert_steps_close(runs[1], runs[0], rtol=1e-7, atol=1e-12)


# -- 7. every error input of optim_db, and the flag refusals ---------------------------------------
ERRORS = [
    (name, e)
    for name in NAMES
    for e in INFO[name].optim_error_inputs_func(device="cpu", dtype=torch.float64)
]


def _attempt(cls, inp):
    params = inp.params
    if params is None:
        params = [torch.nn.Parameter(torch.randn(2, 2, dtype=torch.float64))]
    opt = cls(params, **inp.kwargs)
    return opt


@pytest.mark.parametrize(
    "name,error", ERRORS, ids=[f"{n}-{e.optimizer_error_input.desc}" for n, e in ERRORS]
)
def test_error_input_refused_as_torch(name, error):
    """torch's exception type; torch's words, or optzoo's naming the argument and its value."""
    inp = error.optimizer_error_input
    if issubclass(error.error_type, Warning):
        with pytest.warns(error.error_type, match=error.error_regex):
            _attempt(ours_of(name), inp)
        return
    with pytest.raises(error.error_type) as raised:
        _attempt(ours_of(name), inp)
    message = str(raised.value)
    if re.search(error.error_regex, message):
        return
    key, value = re.fullmatch(
        r"Invalid (.+?)(?: value| parameter at index (\d))?: (.+)",
        error.error_regex.replace("\\", ""),
    ).group(1, 3)
    key = f"betas[{error.error_regex[-6]}]" if "beta" in key else key
    assert f"invalid {key}" in message and str(float(value)) in message, message


REFUSALS = [  # the list: flag combinations torch refuses
    ("Adam", {"fused": True, "foreach": True}),
    ("AdamW", {"fused": True, "differentiable": True}),
    ("SGD", {"fused": True, "differentiable": True}),
    ("Adagrad", {"fused": True, "foreach": True}),
    ("Adam", {"betas": (torch.tensor(0.9), torch.tensor(0.99)), "foreach": True}),
    ("Adam", {"capturable": True}),
    ("AdamW", {"capturable": True}),
    ("RMSprop", {"capturable": True}),
    ("Adadelta", {"capturable": True}),
    ("SGD", {"lr": torch.tensor([1e-3, 1e-3])}),
]


@pytest.mark.parametrize("name,kwargs", REFUSALS, ids=[f"{n}-{sorted(k)}" for n, k in REFUSALS])
def test_flag_refusals_are_torchs(name, kwargs):
    """Refused by both, with the same exception type, at construction or at the first step."""
    types = []
    for cls in (INFO[name].optim_cls, ours_of(name)):
        x = torch.zeros(2, dtype=torch.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                opt = cls([x], **kwargs)
                x.grad = torch.ones(2, dtype=torch.float64)
                opt.step()
                types.append(None)
            except Exception as e:  # noqa: BLE001 - the type is what is compared
                types.append(type(e))
    assert types[0] is not None and types[1] is types[0]


def test_lbfgs_second_group_refused_at_step_as_torch():
    outcome = []
    for cls in (torch.optim.LBFGS, optzoo.optim.LBFGS):
        opt = cls([torch.zeros(2)])
        opt.add_param_group({"params": [torch.zeros(1)]})
        with pytest.raises(AssertionError) as raised:
            opt.step(lambda: torch.tensor(0.0))
        outcome.append(raised.type)
    assert outcome[0] is outcome[1]


def test_newton_without_closure_says_what_to_pass():
    with pytest.raises(TypeError, match="needs a closure"):
        optzoo.optim.Newton([torch.zeros(2)]).step()


def test_torch_names():
    assert optzoo.optim.Adadelta is optzoo.optim.AdaDelta
    for name in NAMES:
        assert issubclass(ours_of(name), torch.optim.Optimizer)
