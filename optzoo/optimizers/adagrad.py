"""AdaGrad: per-coordinate steps scaled by the root of the summed squared gradients.

torch.optim.Adagrad's rule (for-loop path), per run, with t the step number from 1::

    g <- -g if maximize
    g <- g + weight_decay * x
    clr <- lr / (1 + (t - 1) * lr_decay)
    s <- s + g * g                                   s starts at initial_accumulator_value
    x <- x - clr * g / (sqrt(s) + eps)

Duchi, Hazan & Singer 2011, "Adaptive subgradient methods for online learning and stochastic
optimization", JMLR 12.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from optzoo.optimizers.base import FirstOrder, add_scaled, as_column


class AdagradState(NamedTuple):
    step: Tensor  # (R, 1) steps taken so far
    sum: Tensor  # (R, d) sum of squared gradients


class Adagrad(FirstOrder):
    """AdaGrad with learning-rate decay, weight decay, an initial accumulator and maximize."""

    name = "adagrad"
    defaults = {
        "lr": 1e-2,
        "lr_decay": 0.0,
        "weight_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "eps": 1e-10,
        "maximize": False,
    }
    flags = frozenset({"maximize"})

    def check(self, hp: Mapping[str, Any]) -> None:
        for key in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            self.require(key, hp[key], lambda v: v >= 0, f"{key} >= 0")

    def init(self, x: Tensor) -> AdagradState:
        start = as_column(self.hp["initial_accumulator_value"], x)
        return AdagradState(step=x.new_zeros(x.shape[0], 1), sum=torch.zeros_like(x) + start)

    @staticmethod
    def update(x: Tensor, g: Tensor, state: AdagradState, hp: Mapping[str, Any]):
        if hp["maximize"]:
            g = -g
        step = state.step + 1
        wd = hp["weight_decay"]
        if not (isinstance(wd, float | int) and wd == 0):
            g = add_scaled(g, x, wd)
        clr = hp["lr"] / (1 + (step - 1) * hp["lr_decay"])
        total = torch.addcmul(state.sum, g, g)  # as torch: addcmul rounds as one op
        std = total.sqrt() + hp["eps"]
        return x - (clr * g) / std, AdagradState(step, total)
