"""Adam and AdamW: steps from bias-corrected running moments of the gradient.

torch.optim.Adam's rule (for-loop path), per run, with t the step number from 1::

    g <- -g if maximize
    if decoupled_weight_decay:  x <- x * (1 - lr * weight_decay)
    else:                       g <- g + weight_decay * x
    m <- m + (1 - beta1) * (g - m)                   (lerp)
    v <- beta2 * v + (1 - beta2) * g * g
    v_hat <- max(v_hat, v) if amsgrad else v
    x <- x - lr / (1 - beta1^t) * m / (sqrt(v_hat) / sqrt(1 - beta2^t) + eps)

AdamW is Adam with decoupled_weight_decay=True and weight_decay=1e-2. ``hp`` may carry
``beta_powers = (beta1^t, beta2^t)`` for the new t (the drop-ins pass torch's); otherwise they are
running products kept in the state.

Kingma & Ba 2015, "Adam: a method for stochastic optimization", ICLR. AMSGrad: Reddi, Kale &
Kumar 2018, "On the convergence of Adam and beyond", ICLR. AdamW: Loshchilov & Hutter 2019,
"Decoupled weight decay regularization", ICLR.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from optzoo.optimizers.base import FirstOrder, add_scaled


class AdamState(NamedTuple):
    step: Tensor  # (R, 1) steps taken so far; (1, 1), shared, where the betas are numbers
    exp_avg: Tensor  # (R, d) first moment
    exp_avg_sq: Tensor  # (R, d) second moment
    max_exp_avg_sq: Tensor  # (R, d) running max of the second moment if amsgrad, else (R, 0)
    beta1_power: Tensor  # beta1^t, shaped as step
    beta2_power: Tensor  # beta2^t, shaped as step


class Adam(FirstOrder):
    """Adam with AMSGrad, L2 or decoupled weight decay, and maximize."""

    name = "adam"
    defaults = {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": False,
        "maximize": False,
        "decoupled_weight_decay": False,
    }
    flags = frozenset({"amsgrad", "maximize", "decoupled_weight_decay"})

    def check(self, hp: Mapping[str, Any]) -> None:
        self.require("lr", hp["lr"], lambda v: v >= 0, "lr >= 0")
        self.require("eps", hp["eps"], lambda v: v >= 0, "eps >= 0")
        for i, beta in enumerate(hp["betas"]):
            self.require(f"betas[{i}]", beta, lambda v: 0 <= v < 1, f"0 <= betas[{i}] < 1")
        self.require("weight_decay", hp["weight_decay"], lambda v: v >= 0, "weight_decay >= 0")

    def init(self, x: Tensor) -> AdamState:
        R = x.shape[0]
        # Runs step together, so with the same betas they share the step count and the bias
        # corrections: (1, 1) tensors instead of (R, 1) columns, which cost as much per step as
        # the moments themselves at d = 2 (measured: a quarter of the step at R = 1e5).
        # where_state makes them per run if runs ever step apart.
        per_run = any(isinstance(b, Tensor) and b.numel() > 1 for b in self.hp["betas"])
        n = R if per_run else 1
        return AdamState(
            step=x.new_zeros(n, 1),
            exp_avg=torch.zeros_like(x),
            exp_avg_sq=torch.zeros_like(x),
            # Empty unless used: the drop-in holds whole networks.
            max_exp_avg_sq=torch.zeros_like(x) if self.hp["amsgrad"] else x.new_zeros(R, 0),
            beta1_power=x.new_ones(n, 1),
            beta2_power=x.new_ones(n, 1),
        )

    @staticmethod
    def update(x: Tensor, g: Tensor, state: AdamState, hp: Mapping[str, Any]):
        if hp["maximize"]:
            g = -g
        step = state.step + 1
        lr, wd = hp["lr"], hp["weight_decay"]
        if not (isinstance(wd, float | int) and wd == 0):
            if hp["decoupled_weight_decay"]:
                x = x * (1 - lr * wd)
            else:
                g = add_scaled(g, x, wd)
        beta1, beta2 = hp["betas"]
        exp_avg = torch.lerp(state.exp_avg, g, 1 - beta1)
        # addcmul, as torch: its kernel rounds the product differently than mul then add.
        exp_avg_sq = torch.addcmul(beta2 * state.exp_avg_sq, (1 - beta2) * g, g)
        max_sq = state.max_exp_avg_sq
        if hp["amsgrad"]:
            max_sq = torch.maximum(max_sq, exp_avg_sq)
            second = max_sq
        else:
            second = exp_avg_sq
        if "beta_powers" in hp:
            # The drop-ins pass torch's beta^t: Python doubles from the current betas, so a
            # scheduler that changes the betas (OneCycleLR) corrects as torch does.
            beta1_power, beta2_power = hp["beta_powers"]
        else:
            # beta^t as a running product, not ``beta**step``: torch's CPU pow kernel rounds the
            # last elements of a tensor on a different code path than the rest, so a run's bias
            # correction (and every later iterate) would depend on its position in the batch. A
            # product of t correctly rounded factors stays within t/2 ulp of beta^t.
            beta1_power = state.beta1_power * beta1
            beta2_power = state.beta2_power * beta2
        step_size = lr / (1 - beta1_power)
        correction2 = 1 - beta2_power
        correction2 = correction2**0.5 if isinstance(correction2, float) else correction2.sqrt()
        denom = second.sqrt() / correction2 + hp["eps"]
        x = x - step_size * (exp_avg / denom)
        return x, AdamState(step, exp_avg, exp_avg_sq, max_sq, beta1_power, beta2_power)


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay, 1e-2 by default."""

    name = "adamw"
    defaults = {**Adam.defaults, "weight_decay": 1e-2, "decoupled_weight_decay": True}
