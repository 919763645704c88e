"""Cliff landscapes: a narrow band where the gradient is orders of magnitude larger than around it.

A gradient step taken on the band is thrown far away; clipping the gradient norm tames it
(Pascanu, Mikolov & Bengio 2013).
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor

from optzoo.errors import ConfigError
from optzoo.problems.base import Problem

_RNN_X0 = 0.5  # initial state x_0
_RNN_TARGET = 0.7  # target for sigmoid(x_T)


def _rnn_cliff(p: Tensor, T: int) -> Tensor:
    w, b = p[..., 0], p[..., 1]
    x = torch.full_like(w, _RNN_X0)
    for _ in range(T):
        x = w * torch.sigmoid(x) + b
    return (torch.sigmoid(x) - _RNN_TARGET) ** 2


def _rnn_cliff_value_and_grad(p: Tensor, T: int) -> tuple[Tensor, Tensor]:
    """f and its gradient in one forward pass and a backward pass vectorised over time.

    With s_t = sigmoid(x_t), x_t = w s_(t-1) + b and lam_t = df/dx_t: lam_T = 2 (s_T - 0.7)
    s_T (1 - s_T) and lam_(t-1) = lam_t D_(t-1) with D_t = w s_t (1 - s_t), so every lam_t is lam_T
    times a suffix product of D (one cumprod), and df/dw = sum_t lam_t s_(t-1), df/db = sum_t
    lam_t. About 150 small ops against autograd's 150 forward and 150 backward nodes; f is the
    same ops as ``_rnn_cliff`` (bit-identical), g agrees with autograd to round-off.
    """
    w, b = p[..., 0], p[..., 1]
    S = p.new_empty((T + 1, *w.shape))  # s_0 .. s_T
    x = torch.full_like(w, _RNN_X0)
    for t in range(T):
        s = torch.sigmoid(x, out=S[t])
        x = w * s + b
    s_T = torch.sigmoid(x, out=S[T])
    r = s_T - _RNN_TARGET
    f = r**2
    lam_T = 2.0 * r * (s_T * (1.0 - s_T))
    prev = S[:T].flip(0)  # s_(T-1), ..., s_0: the s_(t-1) of t = T, ..., 1
    D = w * (prev[:-1] * (1.0 - prev[:-1]))  # D_(T-1), ..., D_1
    lam = torch.cat([lam_T.unsqueeze(0), lam_T * D.cumprod(0)])  # lam_T, ..., lam_1
    g = torch.stack([(lam * prev).sum(0), lam.sum(0)], dim=-1)
    return f, g


def _cliff(p: Tensor, height: float, steepness: float, wall: float, quartic: float) -> Tensor:
    u, v = p[..., 0], p[..., 1]
    r2 = u * u + v * v
    step = 0.5 * height * (1.0 + torch.tanh(steepness * (u - wall)))
    return 0.5 * r2 + quartic * (r2 * r2) + step


def rnn_cliff(T: int = 50) -> Problem:
    """The one-unit recurrent network of Pascanu, Mikolov & Bengio (2013), sec. 2.3 and Fig. 6.

    x_t = w sigmoid(x_{t-1}) + b for t = 1..T from x_0 = 0.5, and the loss
    f(w, b) = (sigmoid(x_T) - 0.7)^2 (the paper's E_50 for T = 50). For w > 4 the map is
    bistable; where x_0 changes basin of attraction (near b = -w/2) sigmoid(x_T) jumps, a wall
    next to the valley f = 0: at w = 5, T = 50 the gradient peaks ~7e3 near b = -2.61 while it is
    ~1e-3 to 1e-1 elsewhere. f* = 0, reached e.g. at w = 0, b = logit(0.7). Start (5, -3.5),
    whose descent runs into the wall; box w in [0, 8], b in [-6, 2]. Reference: Pascanu, Mikolov
    & Bengio (2013), "On the difficulty of training recurrent neural networks", ICML.
    """
    if not 1 <= T <= 1000:
        raise ConfigError(f"problem 'rnn_cliff': param T must be in [1, 1000], got {T}")
    logit = math.log(_RNN_TARGET / (1.0 - _RNN_TARGET))
    return Problem(
        fn=partial(_rnn_cliff, T=T),
        value_and_grad=partial(_rnn_cliff_value_and_grad, T=T),
        x0=(5.0, -3.5),
        name="rnn_cliff",
        category="cliff",
        bounds=[(0.0, 8.0), (-6.0, 2.0)],
        f_star=0.0,
        minimizers=[(0.0, logit)],
        description=(
            f"f(w, b) = (sigmoid(x_T) - 0.7)^2, x_t = w sigmoid(x_(t-1)) + b, x_0 = 0.5, T = {T}; "
            "f* = 0; wall where x_0 changes basin (near b = -w/2, w > 4)"
        ),
        params={"T": T},
    )


def cliff(
    height: float = 1000.0, steepness: float = 10.0, wall: float = 2.0, quartic: float = 0.002
) -> Problem:
    """A bowl with a step that every path from the start must come down:
    f(x, y) = r^2 / 2 + q r^4 + h (1 + tanh(k (x - a))) / 2, r^2 = x^2 + y^2.

    The step (h = ``height``, k = ``steepness``) raises f by h for x > a (a = ``wall``) across a
    band of width ~1/k, where the gradient reaches h k / 2 (5e3 by default) against <= 10 elsewhere
    in the box. The start (a + 3, 1) is on the high side and the minimum on the low side, so a
    descent path crosses the wall; one that lands on it is thrown by ~lr h k / 2 towards -x. The
    quartic term q r^4 (q = ``quartic``) makes the bowl steeper far out, as loss surfaces are:
    a run thrown beyond |x| ~ sqrt((2 / lr - 1) / (12 q)) is then unstable and diverges to
    Inf/NaN, while the bowl alone is stable for lr < 2 / (1 + 12 q r^2) inside the box
    (Pascanu, Mikolov & Bengio 2013, ICML, sec. 3 and Fig. 6: the cliff and its catapult).
    f* = 0 at the origin, up to the step's tail h exp(-2 k a) < 1e-13 for the allowed params
    (k a >= 20). Box x in [-2, a + 4], y in [-3, 3].
    """
    # The bounds keep the origin a minimizer to 1e-13: the step's tail there is ~h exp(-2 k a).
    if not 0.0 < height <= 1e4:
        raise ConfigError(f"problem 'cliff': param height must be in (0, 1e4], got {height}")
    if not 0.5 <= wall <= 10.0:
        raise ConfigError(f"problem 'cliff': param wall must be in [0.5, 10], got {wall}")
    if not (20.0 <= steepness * wall and steepness <= 1e6):
        raise ConfigError(
            f"problem 'cliff': param steepness must be in [20 / wall, 1e6] = "
            f"[{20.0 / wall:g}, 1e6], got {steepness}"
        )
    if not 0.0 <= quartic <= 1.0:
        raise ConfigError(f"problem 'cliff': param quartic must be in [0, 1], got {quartic}")
    return Problem(
        fn=partial(_cliff, height=height, steepness=steepness, wall=wall, quartic=quartic),
        x0=(wall + 3.0, 1.0),
        name="cliff",
        category="cliff",
        bounds=[(-2.0, wall + 4.0), (-3.0, 3.0)],
        f_star=0.0,
        minimizers=[(0.0, 0.0)],
        description=(
            f"f(x, y) = r^2/2 + {quartic:g} r^4 + {height:g} (1 + tanh({steepness:g} "
            f"(x - {wall:g})))/2; wall at x = {wall:g}, start on its high side; f* ~ 0 at (0, 0)"
        ),
        params={"height": height, "steepness": steepness, "wall": wall, "quartic": quartic},
    )
