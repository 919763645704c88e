"""First-order ``torch.optim`` drop-ins: torch's constructor arguments and defaults, optzoo's rules.

``differentiable=True`` makes the step part of the autograd graph, as in torch. ``foreach`` and
``fused`` select torch kernels; here they are checked as torch checks them and otherwise change
nothing (each rule has one implementation). ``capturable=True`` is refused off CUDA-like devices,
as torch refuses it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from optzoo.optim.base import RuleOptimizer, scalar_dtype
from optzoo.optimizers import adadelta, adagrad, adam, rmsprop, sgd


class SGD(RuleOptimizer):
    """torch.optim.SGD on the rule of :class:`optzoo.optimizers.sgd.SGD`."""

    rule = sgd.SGD
    # torch keeps only the buffer; its presence says whether the first step was taken.
    torch_keys = {"step": None, "buf": "momentum_buffer"}
    sparse = "dense"

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float | Tensor = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            foreach=foreach,
            differentiable=differentiable,
            fused=fused,
        )
        super().__init__(params, defaults)

    def _rule_state(self, stored: dict[str, Any], x: Tensor, group: dict[str, Any]) -> NamedTuple:
        state = super()._rule_state(stored, x, group)
        return state._replace(step=x.new_full((1, 1), float("momentum_buffer" in stored)))

    def _store(self, stored: dict[str, Any], state: NamedTuple, p: Tensor, group: dict) -> None:
        if group["momentum"] != 0:  # as torch: no state at all without momentum
            super()._store(stored, state, p, group)


class Momentum(SGD):
    """Heavy-ball momentum: SGD with momentum=0.9 by default."""

    rule = sgd.Momentum

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        momentum: float = 0.9,
        dampening: float = 0,
        weight_decay: float | Tensor = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            momentum,
            dampening,
            weight_decay,
            nesterov,
            maximize=maximize,
            foreach=foreach,
            differentiable=differentiable,
            fused=fused,
        )


class Nesterov(SGD):
    """Nesterov momentum: SGD with momentum=0.9 and nesterov=True by default."""

    rule = sgd.Nesterov

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        momentum: float = 0.9,
        dampening: float = 0,
        weight_decay: float | Tensor = 0,
        nesterov: bool = True,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            momentum,
            dampening,
            weight_decay,
            nesterov,
            maximize=maximize,
            foreach=foreach,
            differentiable=differentiable,
            fused=fused,
        )


class Adagrad(RuleOptimizer):
    """torch.optim.Adagrad on the rule of :class:`optzoo.optimizers.adagrad.Adagrad`.

    As torch, the state of the constructor's parameters is made at construction, with the
    constructor's ``initial_accumulator_value`` for every group. A param group added later (which
    torch cannot step) starts from its own ``initial_accumulator_value``.
    """

    rule = adagrad.Adagrad
    sparse = "masked"

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            fused=fused,
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                v = initial_accumulator_value
                self.state[p]["step"] = torch.tensor(0.0, dtype=scalar_dtype(group["fused"]))
                self.state[p]["sum"] = torch.full_like(p, complex(v, v) if p.is_complex() else v)

    def share_memory(self) -> None:
        """Move the accumulators to shared memory, as torch.optim.Adagrad does."""
        for state in self.state.values():
            state["sum"].share_memory_()


class RMSprop(RuleOptimizer):
    """torch.optim.RMSprop on the rule of :class:`optzoo.optimizers.rmsprop.RMSprop`."""

    rule = rmsprop.RMSprop

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            capturable=capturable,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
        )
        super().__init__(params, defaults)


class Adam(RuleOptimizer):
    """torch.optim.Adam on the rule of :class:`optzoo.optimizers.adam.Adam`."""

    rule = adam.Adam
    # torch derives beta^t from the step and the current betas; so do the drop-ins.
    torch_keys = {"beta1_power": None, "beta2_power": None}

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        _check_tensor_betas(lr, betas, foreach, capturable)
        super().__init__(params, defaults)

    def _hyper(self, group: dict[str, Any], state: NamedTuple, x: Tensor) -> dict[str, Any]:
        hp = super()._hyper(group, state, x)
        t = state.step + 1
        hp["beta_powers"] = tuple(b**t for b in hp["betas"])
        return hp


def _check_tensor_betas(lr: Any, betas: Any, foreach: bool | None, capturable: bool) -> None:
    """torch.optim.Adam's refusals of tensor lr and betas."""
    if isinstance(lr, Tensor) and foreach and not capturable:
        raise ValueError("lr as a Tensor is not supported for capturable=False and foreach=True")
    if isinstance(betas[0], Tensor) != isinstance(betas[1], Tensor):
        raise ValueError("betas must be either both floats or both Tensors")
    for i, b in enumerate(betas):
        if isinstance(b, Tensor):
            if foreach and not capturable:
                raise ValueError(
                    f"betas[{i}] as a Tensor is not supported for capturable=False and foreach=True"
                )
            if b.numel() != 1:
                raise ValueError(f"Tensor betas[{i}] must be 1-element")


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay, 1e-2 by default."""

    rule = adam.AdamW

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        # As torch.optim.AdamW: a loaded state cannot turn the decay back into L2.
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


class Adadelta(RuleOptimizer):
    """torch.optim.Adadelta on the rule of :class:`optzoo.optimizers.adadelta.AdaDelta`."""

    rule = adadelta.AdaDelta

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            rho=rho,
            eps=eps,
            weight_decay=weight_decay,
            foreach=foreach,
            capturable=capturable,
            maximize=maximize,
            differentiable=differentiable,
        )
        super().__init__(params, defaults)


AdaDelta = Adadelta  # optzoo's earlier name

__all__ = [
    "SGD",
    "AdaDelta",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Momentum",
    "Nesterov",
    "RMSprop",
]
