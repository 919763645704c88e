"""AdaDelta: steps scaled by the ratio of running RMS of past steps to that of gradients.

torch.optim.Adadelta's rule (for-loop path), per run::

    g <- -g if maximize
    g <- g + weight_decay * x
    v <- rho * v + (1 - rho) * g * g
    delta <- sqrt(u + eps) / sqrt(v + eps) * g
    u <- rho * u + (1 - rho) * delta * delta
    x <- x - lr * delta

Zeiler 2012, "ADADELTA: an adaptive learning rate method", arXiv:1212.5701.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from optzoo.optimizers.base import FirstOrder, add_scaled


class AdaDeltaState(NamedTuple):
    step: Tensor  # (R, 1) steps taken so far
    square_avg: Tensor  # (R, d) running mean of g * g
    acc_delta: Tensor  # (R, d) running mean of delta * delta


class AdaDelta(FirstOrder):
    """AdaDelta with weight decay and maximize; lr scales the AdaDelta step (1.0 is the paper's)."""

    name = "adadelta"
    defaults = {
        "lr": 1.0,
        "rho": 0.9,
        "eps": 1e-6,
        "weight_decay": 0.0,
        "maximize": False,
    }
    flags = frozenset({"maximize"})

    def check(self, hp: Mapping[str, Any]) -> None:
        self.require("lr", hp["lr"], lambda v: v >= 0, "lr >= 0")
        self.require("rho", hp["rho"], lambda v: 0 <= v <= 1, "0 <= rho <= 1")
        self.require("eps", hp["eps"], lambda v: v >= 0, "eps >= 0")
        self.require("weight_decay", hp["weight_decay"], lambda v: v >= 0, "weight_decay >= 0")

    def init(self, x: Tensor) -> AdaDeltaState:
        return AdaDeltaState(
            step=x.new_zeros(x.shape[0], 1),
            square_avg=torch.zeros_like(x),
            acc_delta=torch.zeros_like(x),
        )

    @staticmethod
    def update(x: Tensor, g: Tensor, state: AdaDeltaState, hp: Mapping[str, Any]):
        if hp["maximize"]:
            g = -g
        wd = hp["weight_decay"]
        if not (isinstance(wd, float | int) and wd == 0):
            g = add_scaled(g, x, wd)
        rho, eps = hp["rho"], hp["eps"]
        # addcmul, as torch: its kernel rounds the product differently than mul then add.
        square_avg = torch.addcmul(rho * state.square_avg, (1 - rho) * g, g)
        delta = (state.acc_delta + eps).sqrt() / (square_avg + eps).sqrt() * g
        acc_delta = torch.addcmul(rho * state.acc_delta, (1 - rho) * delta, delta)
        return add_scaled(x, delta, -hp["lr"]), AdaDeltaState(state.step + 1, square_avg, acc_delta)
