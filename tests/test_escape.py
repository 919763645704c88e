"""The saddle-escape wrapper: it leaves saddles that gradient descent cannot, and pays for it."""

from __future__ import annotations

import pytest
import torch

from optzoo import optimizers
from optzoo.errors import ConfigError
from optzoo.optimizers.escape import MomentumEscape, SaddleEscape, SGDEscape, escaping
from optzoo.optimizers.sgd import SGD, Momentum
from optzoo.problems.base import Problem
from optzoo.problems.oracle import Oracle

# The two-neuron loss (1 - w1*w2)^2: a saddle at 0 (f = 1, eigenvalues -2, 2), minima on w1*w2 = 1.
TWO_NEURON = Problem(
    fn=lambda w: (1 - w[..., 0] * w[..., 1]) ** 2,
    x0=[0.0, 0.0],
    name="two_neuron",
    category="saddle",
    saddles=[[0.0, 0.0]],
)


def run(opt, problem, x, steps, active=None):
    x = torch.as_tensor(x, dtype=torch.float64).reshape(-1, problem.dim).clone()
    oracle = Oracle(problem, x.shape[0])
    oracle.active = active
    state = opt.init(x)
    for _ in range(steps):
        x, state, _ = opt.step(x, state, oracle)
    return x, state, oracle


def test_gradient_descent_stays_on_the_saddle():
    x, _, oracle = run(optimizers.get("sgd", lr=0.1), TWO_NEURON, [0.0, 0.0], 200)
    assert x.tolist() == [[0.0, 0.0]]
    assert oracle.last_grad_norm.tolist() == [0.0]
    assert TWO_NEURON(x).item() == 1.0


@pytest.mark.parametrize(
    "make",
    [
        lambda: optimizers.get("sgd", escape=True, lr=0.1),
        lambda: SGDEscape(lr=0.1),
        lambda: optimizers.get("momentum", escape={"escape_step": 0.3}, lr=0.05),
    ],
    ids=["get-escape", "class", "momentum"],
)
def test_escape_reaches_a_minimum(make):
    x, _, oracle = run(make(), TWO_NEURON, [0.0, 0.0], 200)
    assert TWO_NEURON(x).item() < 1e-6
    assert (x[0, 0] * x[0, 1]).item() == pytest.approx(1.0, abs=1e-3)
    assert oracle.counts.nh.item() >= 1


def test_escape_work_is_counted():
    d = TWO_NEURON.dim
    opt = optimizers.get("sgd", escape=True, lr=0.1)
    # Run 0 sits on the saddle, run 1 on a slope: only run 0 checks curvature and escapes.
    x, _, oracle = run(opt, TWO_NEURON, [[0.0, 0.0], [0.5, 0.5]], 1)
    c = oracle.counts
    assert c.nh.tolist() == [1, 0] and c.nf.tolist() == [2, 0] and c.ng.tolist() == [1, 1]
    assert oracle.grad_evals.tolist() == [1 + 2 + 2 * d, 1]
    assert c.nhvp.tolist() == [0, 0]
    # The escape step has length escape_step along the eigenvector (1, 1) / sqrt(2).
    torch.testing.assert_close(x[0].abs(), torch.full((2,), 0.1 / 2**0.5, dtype=torch.float64))
    # A frozen run (oracle.active False) is computed but never charged.
    _, _, oracle = run(opt, TWO_NEURON, [[0.0, 0.0], [0.0, 0.0]], 1, torch.tensor([False, True]))
    assert oracle.counts.nh.tolist() == [0, 1] and oracle.counts.nf.tolist() == [0, 2]
    assert oracle.counts.ng.tolist() == [0, 1]


def test_checks_wait_between_them():
    # At a minimum with g = 0 exactly the check finds no way down and waits escape_wait steps.
    bowl = Problem(fn=lambda x: (x**2).sum(-1), x0=[0.0, 0.0])
    opt = optimizers.get("sgd", escape={"escape_wait": 10}, lr=0.1)
    x, state, oracle = run(opt, bowl, [0.0, 0.0], 25)
    assert oracle.counts.nh.tolist() == [3]  # steps 0, 11, 22
    assert oracle.counts.ng.tolist() == [25] and x.tolist() == [[0.0, 0.0]]
    assert state.escape_wait.tolist() == [8.0]  # set to 10 at step 22, then steps 23, 24


def test_a_step_that_would_raise_f_is_refused():
    # f = -x^2/2 + x^4 has its wells at +-1/2: from 0 a step of 10 overshoots, 0.5 lands in one.
    well = Problem(fn=lambda x: -0.5 * x[..., 0] ** 2 + x[..., 0] ** 4, x0=[0.0])
    x, _, oracle = run(SGDEscape(lr=0.01, escape_step=[10.0, 0.5]), well, [[0.0], [0.0]], 1)
    assert x[:, 0].abs().tolist() == [0.0, 0.5]
    assert oracle.counts.nh.tolist() == [1, 1] and oracle.counts.nf.tolist() == [2, 2]


def test_batch_invariance():
    opt = SGDEscape(lr=0.1)
    starts = [[0.0, 0.0], [0.5, 0.5], [1e-9, -1e-9], [2.0, 0.0]]
    xb, _, ob = run(opt, TWO_NEURON, starts, 30)
    for i, s in enumerate(starts):
        x1, _, o1 = run(opt, TWO_NEURON, [s], 30)
        assert torch.equal(x1[0], xb[i])
        assert o1.grad_evals.item() == ob.grad_evals[i].item()


def test_inner_state_skips_the_escape_step():
    opt = MomentumEscape(lr=0.1)
    _, state, _ = run(opt, TWO_NEURON, [[0.0, 0.0], [0.5, 0.5]], 1)
    # The run that escaped kept its momentum state untouched: no step counted, empty buffer.
    assert state.step[:, 0].tolist() == [0.0, 1.0]
    assert state.buf[0].tolist() == [0.0, 0.0] and state.buf[1].abs().sum() > 0


def test_names_defaults_and_validation():
    opt = optimizers.get("sgd", escape=True)
    assert opt.name == "sgd+escape" and opt.flags == SGD.flags
    assert SGDEscape.name == "sgd+escape" and SGDEscape.flags == SGD.flags
    assert set(SGDEscape.defaults) == set(SGD.defaults) | {
        "escape_eps",
        "escape_step",
        "escape_wait",
    }
    assert escaping(Momentum) is MomentumEscape
    assert SGDEscape(lr=[0.1, 0.2], escape_eps=[1e-3, 1e-5]).hp["escape_eps"].shape == (2,)
    with pytest.raises(ConfigError, match="escape_step"):
        SGDEscape(escape_step=0.0)
    with pytest.raises(ConfigError, match="unknown hyperparameter 'foo'"):
        SGDEscape(foo=1)
    with pytest.raises(ConfigError, match="unknown escape setting 'lr'"):
        optimizers.get("sgd", escape={"lr": 0.1})
    with pytest.raises(ConfigError, match="whole number"):
        SaddleEscape(SGD(), escape_wait=1.5)
