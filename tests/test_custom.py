"""Custom losses: callables, load("module:attr"), expressions, nn.Modules, and their validation."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
import torch
from losses import rosenbrock
from torch import nn

import optzoo.problems as P
from optzoo.errors import ConfigError
from optzoo.problems import Problem, from_expression, from_module, load
from optzoo.problems.oracle import Oracle, hessian

F64 = torch.float64


def value_and_grad(fn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().clone().requires_grad_(True)
    v = fn(x)
    (g,) = torch.autograd.grad(v.sum(), x)
    return v.detach(), g


POINTS = torch.tensor([[-1.2, 1.0], [0.3, -0.7], [1.0, 1.0], [2.0, 3.5]], dtype=F64)


# -- plain callables -------------------------------------------------------------------------------


def test_batched_and_one_point_callables_agree():
    batched = Problem(fn=rosenbrock, x0=[-1.2, 1.0])
    single = Problem(
        fn=lambda z: (1 - z[0]) ** 2 + 100 * (z[1] - z[0] ** 2) ** 2, x0=[-1.2, 1.0], batched=False
    )
    for p in (batched, single):
        v, g = value_and_grad(p, POINTS)
        v_ref, g_ref = value_and_grad(rosenbrock, POINTS)
        torch.testing.assert_close(v, v_ref, rtol=0, atol=0)
        torch.testing.assert_close(g, g_ref, rtol=1e-15, atol=0)
        assert hessian(p.fn, POINTS).shape == (4, 2, 2)


# -- load("module:attr") ---------------------------------------------------------------------------

MODULE = """
import torch
from optzoo.problems import Problem

def bowl(x):
    return (x ** 2).sum(-1)

def bowl_one(x):
    return (x ** 2).sum()

def make():
    return Problem(fn=bowl, x0=[1.0, 2.0], name="made", f_star=0.0)

def make_wrong():
    return 42

def make_broken():
    raise RuntimeError("no\\nway")

PROBLEM = Problem(fn=bowl, x0=[3.0], name="ready")

class Holder:
    loss = staticmethod(bowl)

NUMBER = 3
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_losses.py").write_text(textwrap.dedent(MODULE))
    (tmp_path / "broken_losses.py").write_text("raise ImportError('missing dependency foo')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_losses"


def test_load_each_attribute_kind(user_module):
    ready = load("my_losses:PROBLEM")
    assert ready.name == "ready" and ready.x0.tolist() == [3.0]
    made = load("my_losses:make")
    assert made.name == "made" and made.f_star == 0.0 and made.x0.tolist() == [1.0, 2.0]
    loss = load("my_losses:bowl", x0=[1.0, -2.0, 0.5])
    assert loss.name == "bowl" and float(loss(loss.x0[None])[0]) == pytest.approx(5.25)
    one = load("my_losses:bowl_one", x0=[1.0, 2.0], batched=False)
    torch.testing.assert_close(one(POINTS), (POINTS**2).sum(-1))
    dotted = load("my_losses:Holder.loss", x0=[2.0])
    assert float(dotted(dotted.x0[None])[0]) == 4.0
    moved = load("my_losses:make", x0=[0.5, 0.5], f_star=None)
    assert moved.x0.tolist() == [0.5, 0.5] and moved.f_star is None


@pytest.mark.parametrize(
    "spec,kwargs,needle",
    [
        ("no_such_module_xyz:f", {}, "cannot import 'no_such_module_xyz'"),
        ("broken_losses:f", {}, "ImportError: missing dependency foo"),
        ("my_losses:nope", {}, "has no attribute 'nope'"),
        ("my_losses:Holder.nope", {}, "has no attribute 'Holder.nope'"),
        ("my_losses", {}, "must look like 'package.module:attr'"),
        ("my_losses:", {}, "must look like 'package.module:attr'"),
        ("my_losses:bowl", {}, "is a loss function: give its start"),
        ("my_losses:NUMBER", {}, "is a int; expected a Problem"),
        ("my_losses:make_wrong", {}, "returned a int, expected a Problem"),
        ("my_losses:make_broken", {}, "RuntimeError: no way"),
        ("my_losses:bowl_one", {"x0": [1.0, 2.0]}, "must map a batch (R, 2) to shape (R,)"),
        ("my_losses:bowl", {"x0": [1.0], "colour": "red"}, "colour"),
        ("my_losses:PROBLEM", {"colour": "red"}, "colour"),
    ],
)
def test_load_errors_are_one_line(user_module, spec, kwargs, needle):
    with pytest.raises(ConfigError) as e:
        load(spec, **kwargs)
    assert needle in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


# -- from_expression -------------------------------------------------------------------------------


def test_expression_matches_hand_written_torch():
    p = from_expression("(1-x)**2 + 100*(y-x**2)**2")
    assert p.params["variables"] == ["x", "y"] and p.x0.tolist() == [1.0, 1.0]
    v, g = value_and_grad(p, POINTS)
    v_ref, g_ref = value_and_grad(rosenbrock, POINTS)
    torch.testing.assert_close(v, v_ref, rtol=1e-15, atol=0)
    torch.testing.assert_close(g, g_ref, rtol=1e-14, atol=1e-14)
    assert "f(x, y) = (1-x)**2" in p.description


def test_expression_functions_and_constants():
    p = from_expression(
        "exp(-a) + log(b) * sin(pi*a) - cos(b) / tanh(a) + sqrt(abs(b)) + +a**-2 - -b",
        x0=[0.7, 2.0],
    )

    def ref(z):
        a, b = z[..., 0], z[..., 1]
        return (
            torch.exp(-a)
            + torch.log(b) * torch.sin(math.pi * a)
            - torch.cos(b) / torch.tanh(a)
            + torch.sqrt(torch.abs(b))
            + a**-2
            + b
        )

    x = torch.tensor([[0.7, 2.0], [1.3, 0.4], [-0.5, 3.0]], dtype=F64)
    v, g = value_and_grad(p, x)
    v_ref, g_ref = value_and_grad(ref, x)
    torch.testing.assert_close(v, v_ref, rtol=1e-14, atol=0)
    torch.testing.assert_close(g, g_ref, rtol=1e-13, atol=1e-14)
    assert hessian(p.fn, x).shape == (3, 2, 2)
    assert p(x.float()).dtype == torch.float32


def test_expression_variable_order_and_start():
    p = from_expression("x10 + 2*x2 + 3*x1", x0={"x1": 1.0, "x2": 2.0, "x10": 3.0})
    assert p.params["variables"] == ["x1", "x2", "x10"]
    assert p.x0.tolist() == [1.0, 2.0, 3.0] and float(p(p.x0[None])[0]) == 3 + 4 + 3
    with pytest.raises(ConfigError, match="x0 has 3 values, the expression has 2 variables"):
        from_expression("x*y", x0=[1.0, 2.0, 3.0])
    with pytest.raises(ConfigError, match="exactly the variables x, y"):
        from_expression("x*y", x0={"x": 1.0})


@pytest.mark.parametrize(
    "text,needle",
    [
        ("__import__('os')", "unknown function '__import__'"),
        ("__import__('os').system('echo hacked')", "attribute access"),
        ("x.real + 1", "attribute access 'x.real'"),
        ("foo(x)", "unknown function 'foo'; allowed: abs, cos, exp, log, sin, sqrt, tanh"),
        ("exp(x, y)", "exp() takes exactly one argument"),
        ("exp(x=1)", "exp() takes exactly one argument"),
        ("exp + x", "'exp' is a function"),
        ("x[0]", "'x[0]' is not allowed"),
        ("lambda: x", "'lambda: x' is not allowed"),
        ("x if y else 1", "'x if y else 1' is not allowed"),
        ("x // 2", "'x // 2' is not allowed"),
        ("x % 2", "'x % 2' is not allowed"),
        ("x < y", "'x < y' is not allowed"),
        ("not x", "'not x' is not allowed"),
        ("'a' * x", "the constant \"'a'\" is not allowed"),
        ("True + x", "the constant 'True' is not allowed"),
        ("1j * x", "the constant '1j' is not allowed"),
        ("(x)(y)", "unknown function 'x'"),
        ("exp(x)(y)", "the call 'exp(x)(y)' is not allowed"),
        ("1 + 2", "uses no variables"),
        ("x = 1", "is not valid"),
        ("x +", "is not valid"),
        ("", "non-empty string"),
        ("-" * 200_000 + "x", "characters long"),
    ],
)
def test_disallowed_expressions(text, needle):
    with pytest.raises(ConfigError) as e:
        from_expression(text)
    assert needle in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_expression_is_never_evaluated(monkeypatch):
    import builtins

    def boom(*args, **kwargs):
        raise AssertionError("eval/exec was called")

    monkeypatch.setattr(builtins, "eval", boom)
    monkeypatch.setattr(builtins, "exec", boom)
    p = from_expression("x**2 + y**2 + 2*pi")
    assert float(p(torch.zeros(1, 2, dtype=F64))[0]) == pytest.approx(2 * math.pi)


def test_huge_constants_do_not_hang():
    # Constants are floats, never Python big ints: 9**9**9 overflows to inf at once.
    with pytest.raises(ConfigError, match="not finite at x0"):
        from_expression("x + 9**9**9", x0=[0.0])


# -- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make,needle",
    [
        (
            lambda: Problem(fn=lambda x: torch.stack([x.sum(-1)] * 2, -1), x0=[1.0]),
            "got shape (1, 2)",
        ),
        (lambda: Problem(fn=lambda x: 3.0, x0=[1.0]), "must return a torch.Tensor, got float"),
        (lambda: Problem(fn=lambda x: np.zeros(len(x)), x0=[1.0]), "got ndarray"),
        (lambda: Problem(fn=lambda x: x.sum(-1) * torch.nan, x0=[1.0]), "not finite at x0"),
        (lambda: from_expression("log(x)", x0=[-1.0]), "not finite at x0"),
        (lambda: from_expression("sqrt(x)", x0=[0.0]), "gradient at x0 is missing or not finite"),
        (lambda: Problem(fn=lambda x: x.detach().sum(-1), x0=[1.0]), "not differentiable"),
        (lambda: Problem(fn=lambda x: (x > 0).sum(-1).double(), x0=[1.0]), "not differentiable"),
        (lambda: Problem(fn=lambda x: 1 / 0, x0=[1.0]), "ZeroDivisionError"),
        (lambda: Problem(fn=lambda x: x.sum(-1), x0=[]), "x0 must be a non-empty vector"),
        (lambda: Problem(fn=lambda x: x.sum(-1), x0=[math.inf]), "x0 must be a non-empty vector"),
    ],
)
def test_validation_errors(make, needle):
    with pytest.raises(ConfigError) as e:
        make()
    assert needle in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


# -- from_module -----------------------------------------------------------------------------------


def regression_data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, generator=g, dtype=F64)
    Y = torch.sin(X.sum(-1, keepdim=True))
    return X, Y


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1)).double()


def test_module_loss_matches_the_module():
    X, Y = regression_data()
    model = small_net()
    p = from_module(model, nn.MSELoss(), (X, Y), name="net")
    assert p.dim == sum(q.numel() for q in model.parameters())
    torch.testing.assert_close(
        p.x0, torch.cat([q.detach().reshape(-1) for q in model.parameters()])
    )
    loss = nn.MSELoss()(model(X), Y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    v, g = value_and_grad(p, p.x0[None])
    torch.testing.assert_close(v[0], loss.detach(), rtol=1e-15, atol=0)
    torch.testing.assert_close(
        g[0], torch.cat([q.reshape(-1) for q in grads]), rtol=1e-13, atol=1e-15
    )
    # Another point: load it into the module and compare.
    theta = p.x0 + 0.1
    torch.nn.utils.vector_to_parameters(theta, model.parameters())
    expected = float(nn.MSELoss()(model(X), Y).detach())
    assert float(p(theta[None])[0]) == pytest.approx(expected, rel=1e-14)
    assert p(theta[None].float()).dtype == torch.float32
    assert hessian(p.fn, theta[None]).shape == (1, p.dim, p.dim)


def test_module_with_labels_and_minibatch():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(60, 4, generator=g, dtype=F64)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()
    torch.manual_seed(0)
    model = nn.Linear(4, 3).double()
    p = from_module(model, nn.CrossEntropyLoss(), (X, y), batch_size=8)
    assert p.stochastic and p.minibatch.n_data == 60 and p.minibatch.batch_size == 8
    torch.testing.assert_close(p(p.x0[None])[0], nn.CrossEntropyLoss()(model(X), y).detach())
    idx = torch.tensor([[0, 5, 7, 9, 11, 13, 17, 59]])
    part = nn.CrossEntropyLoss()(model(X[idx[0]]), y[idx[0]]).detach()
    torch.testing.assert_close(p.minibatch.fn(p.x0[None], idx)[0], part, rtol=1e-15, atol=0)
    # Oracle mini-batches: per seed, reproducible, and batch invariant.
    x = p.x0.expand(3, -1).clone()
    _, g3 = Oracle(p, 3, seeds=torch.tensor([0, 1, 2]), batch_size=8).value_and_grad(x)
    assert (g3[0] - g3[1]).abs().max() > 0 and (g3[1] - g3[2]).abs().max() > 0
    _, g1 = Oracle(p, 1, seeds=torch.tensor([1]), batch_size=8).value_and_grad(x[:1])
    assert torch.equal(g1[0], g3[1])
    _, again = Oracle(p, 3, seeds=torch.tensor([0, 1, 2]), batch_size=8).value_and_grad(x)
    assert torch.equal(again, g3)


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"model": "not a module"}, "model must be a torch.nn.Module"),
        ({"loss_fn": 3}, "loss_fn must be callable"),
        ({"data": (torch.zeros(4, 3), torch.zeros(5, 1))}, "same number of rows"),
        ({"data": torch.zeros(4, 3)}, "data must be a pair (X, Y)"),
        ({"batch_size": 100}, "batch_size must be an integer in [1, 40]"),
        ({"batch_size": 0}, "batch_size must be an integer in [1, 40]"),
        ({"loss_fn": nn.MSELoss(reduction="none")}, "must return the mean loss as a scalar"),
        ({"model": nn.Sequential(nn.ReLU())}, "no parameters"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_module_errors(kwargs, needle):
    X, Y = regression_data()
    args = {"model": small_net(), "loss_fn": nn.MSELoss(), "data": (X, Y)} | kwargs
    with pytest.raises(ConfigError) as e:
        from_module(**args)
    assert needle in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_custom_routes_are_exported():
    assert P.load is load and P.from_expression is from_expression and P.from_module is from_module
    assert P.Problem is Problem and P.Oracle is Oracle


def test_a_hand_made_minibatch_feeds_the_oracle_per_run():
    """A Problem with a MiniBatch: with a batch size the oracle evaluates ``minibatch.fn`` on
    ``batch_size`` rows per run, drawn in [0, n_data), new at every evaluation, the same for the
    same seed; without one it evaluates the full loss. Data: f(x) = mean_i (x - a_i)^2."""
    a = torch.arange(10, dtype=F64)  # row i holds the number i, so a batch shows in the loss
    drawn = []

    def batch_loss(x, idx):
        drawn.append(idx.clone())
        return ((x - a[idx]) ** 2).mean(-1)

    mb = P.MiniBatch(fn=batch_loss, n_data=10, batch_size=4)
    p = Problem(fn=lambda x: ((x - a) ** 2).mean(-1), x0=[0.5], minibatch=mb)
    assert p.stochastic and p.minibatch is mb
    x = torch.tensor([[0.5], [2.0], [0.5]], dtype=F64)
    oracle = Oracle(p, 3, seeds=torch.tensor([7, 8, 7]), batch_size=4)
    f, g = oracle.value_and_grad(x)
    idx = drawn[-1]
    assert idx.shape == (3, 4) and idx.dtype == torch.int64
    assert ((0 <= idx) & (idx < 10)).all()
    assert torch.equal(idx[0], idx[2]) and not torch.equal(idx[0], idx[1])  # per seed
    rows = a[idx]
    torch.testing.assert_close(f, ((x - rows) ** 2).mean(-1), rtol=0, atol=0)
    torch.testing.assert_close(g, 2 * (x - rows.mean(-1, keepdim=True)), rtol=1e-15, atol=1e-15)
    oracle.value_and_grad(x)
    assert not torch.equal(drawn[-1], idx)  # the next evaluation draws a new batch
    # Without a batch size: the full loss, and the mini-batch function is never called.
    calls = len(drawn)
    _, g_full = Oracle(p, 3, batch_size=None).value_and_grad(x)
    assert len(drawn) == calls
    torch.testing.assert_close(g_full, 2 * (x - a.mean()), rtol=1e-15, atol=1e-15)
