"""RMSProp: steps scaled by a running root-mean-square of the gradients.

torch.optim.RMSprop's rule (for-loop path), per run::

    g <- -g if maximize
    g <- g + weight_decay * x
    v <- alpha * v + (1 - alpha) * g * g
    if centered:
        m <- m + (1 - alpha) * (g - m)               (lerp)
        den <- sqrt(v - m * m) + eps
    else:
        den <- sqrt(v) + eps
    if momentum != 0:
        b <- momentum * b + g / den                  b starts at 0
        x <- x - lr * b
    else:
        x <- x - lr * g / den

Tieleman & Hinton 2012, COURSERA Neural Networks for Machine Learning, lecture 6.5. Centered
form: Graves 2013, "Generating sequences with recurrent neural networks", arXiv:1308.0850.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from optzoo.optimizers.base import FirstOrder, add_scaled


class RMSpropState(NamedTuple):
    step: Tensor  # (R, 1) steps taken so far
    square_avg: Tensor  # (R, d) running mean of g * g
    momentum_buffer: Tensor  # (R, d), or (R, 0) when momentum is 0
    grad_avg: Tensor  # (R, d) running mean of g when centered, else (R, 0)


def _is_zero(v: Any) -> bool:
    return isinstance(v, float | int) and v == 0


class RMSprop(FirstOrder):
    """RMSProp with optional centering, momentum, weight decay and maximize."""

    name = "rmsprop"
    defaults = {
        "lr": 1e-2,
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum": 0.0,
        "centered": False,
        "maximize": False,
    }
    flags = frozenset({"centered", "maximize"})

    def check(self, hp: Mapping[str, Any]) -> None:
        # torch.optim.RMSprop's ranges; it accepts alpha > 1 and so do we.
        for key in ("lr", "alpha", "eps", "weight_decay", "momentum"):
            self.require(key, hp[key], lambda v: v >= 0, f"{key} >= 0")

    def init(self, x: Tensor) -> RMSpropState:
        # Buffers a setting does not use are empty: the drop-in holds whole networks.
        empty = x.new_zeros(x.shape[0], 0)
        return RMSpropState(
            step=x.new_zeros(x.shape[0], 1),
            square_avg=torch.zeros_like(x),
            momentum_buffer=empty if _is_zero(self.hp["momentum"]) else torch.zeros_like(x),
            grad_avg=torch.zeros_like(x) if self.hp["centered"] else empty,
        )

    @staticmethod
    def update(x: Tensor, g: Tensor, state: RMSpropState, hp: Mapping[str, Any]):
        if hp["maximize"]:
            g = -g
        wd = hp["weight_decay"]
        if not _is_zero(wd):
            g = add_scaled(g, x, wd)
        alpha = hp["alpha"]
        # addcmul, as torch: its kernel rounds the product differently than mul then add.
        square_avg = torch.addcmul(alpha * state.square_avg, (1 - alpha) * g, g)
        grad_avg = state.grad_avg
        if hp["centered"]:
            grad_avg = torch.lerp(grad_avg, g, 1 - alpha)
            avg = torch.addcmul(square_avg, grad_avg, grad_avg, value=-1).sqrt()
        else:
            avg = square_avg.sqrt()
        avg = avg + hp["eps"]
        buf = state.momentum_buffer
        mom = hp["momentum"]
        if _is_zero(mom):
            x = x - (hp["lr"] * g) / avg
        else:
            # A run whose per-run momentum is 0 gets buf = g / avg exactly: the same step.
            buf = mom * buf + g / avg
            x = add_scaled(x, buf, -hp["lr"])
        return x, RMSpropState(state.step + 1, square_avg, buf, grad_avg)
