"""Stochastic gradient descent, heavy-ball momentum and Nesterov momentum.

torch.optim.SGD's rule (for-loop path), per run::

    g <- -g if maximize
    g <- g + weight_decay * x
    if momentum != 0:
        b <- g                                       on the first step
        b <- momentum * b + (1 - dampening) * g      after
        g <- g + momentum * b  if nesterov  else  b
    x <- x - lr * g

Heavy-ball momentum: Polyak 1964. Nesterov momentum in this form: Sutskever et al. 2013.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from optzoo.errors import ConfigError
from optzoo.optimizers.base import FirstOrder, add_scaled


class SGDState(NamedTuple):
    step: Tensor  # (R, 1) steps taken so far
    buf: Tensor  # (R, d) momentum buffer


class SGD(FirstOrder):
    """Gradient descent with optional momentum, dampening, Nesterov, weight decay and maximize."""

    name = "sgd"
    defaults = {
        "lr": 1e-3,
        "momentum": 0.0,
        "dampening": 0.0,
        "weight_decay": 0.0,
        "nesterov": False,
        "maximize": False,
    }
    flags = frozenset({"nesterov", "maximize"})

    def check(self, hp: Mapping[str, Any]) -> None:
        self.require("lr", hp["lr"], lambda v: v >= 0, "lr >= 0")
        self.require("momentum", hp["momentum"], lambda v: v >= 0, "momentum >= 0")
        self.require("dampening", hp["dampening"], lambda v: True, "any number")
        self.require("weight_decay", hp["weight_decay"], lambda v: v >= 0, "weight_decay >= 0")
        if hp["nesterov"]:
            m, d = hp["momentum"], hp["dampening"]
            pos = all(v > 0 for v in torch.as_tensor(m).reshape(-1).tolist())
            zero_d = all(v == 0 for v in torch.as_tensor(d).reshape(-1).tolist())
            if not (pos and zero_d):
                raise ConfigError(
                    f"optimizer {self.name!r}: nesterov requires momentum > 0 and dampening = 0"
                )

    def init(self, x: Tensor) -> SGDState:
        return SGDState(step=x.new_zeros(x.shape[0], 1), buf=torch.zeros_like(x))

    @staticmethod
    def update(x: Tensor, g: Tensor, state: SGDState, hp: Mapping[str, Any]):
        if hp["maximize"]:
            g = -g
        wd = hp["weight_decay"]
        if not (isinstance(wd, float | int) and wd == 0):
            g = add_scaled(g, x, wd)
        buf = state.buf
        mom = hp["momentum"]
        if not (isinstance(mom, float | int) and mom == 0):
            later = add_scaled(mom * buf, g, 1 - hp["dampening"])
            # torch starts the buffer from a detached copy of g: no meta-gradient flows through it.
            buf = torch.where(state.step == 0, g.detach(), later)
            stepped = add_scaled(g, buf, mom) if hp["nesterov"] else buf
            # A run with momentum 0 takes torch's plain step whatever its dampening.
            g = torch.where(mom == 0, g, stepped) if isinstance(mom, Tensor) else stepped
        return add_scaled(x, g, -hp["lr"]), SGDState(state.step + 1, buf)


class Momentum(SGD):
    """Heavy-ball momentum: SGD with momentum 0.9 by default."""

    name = "momentum"
    defaults = {**SGD.defaults, "lr": 1e-3, "momentum": 0.9}


class Nesterov(SGD):
    """Nesterov momentum: SGD with nesterov=True and momentum 0.9 by default."""

    name = "nesterov"
    defaults = {**SGD.defaults, "lr": 1e-3, "momentum": 0.9, "nesterov": True}
