"""The adapter from a batched first-order rule to a ``torch.optim.Optimizer``.

Each parameter tensor is one run: it is viewed as ``(1, numel)`` (a complex parameter through
its real view, as torch.optim does) and handed, with its gradient and state, to the rule's static
``update(x, g, state, hp)``, where ``hp`` holds its param group's current values (so lr schedulers
and per-group settings work). The math lives only in :mod:`optzoo.optimizers`.

What the adapter adds is torch's bookkeeping around the rule:

- ``self.state[p]`` holds torch.optim's own layout (keys, shapes, dtypes: ``step`` a 0-d tensor
  of torch's scalar dtype, buffers in the parameter's shape and dtype), so a state dict saved by
  either library loads into the other and continues identically;
- the step count reaches the rule as a Python number, so step-dependent scalars (Adagrad's decayed
  lr, Adam's bias corrections) are Python doubles, as in torch's for-loop path;
- ``differentiable=True`` runs the rule with autograd on, so the step is part of the graph;
- torch's refusals, with torch's exception types.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from optzoo.optimizers.base import FirstOrder

# Devices on which torch.optim accepts capturable=True (torch.optim.optimizer's list).
CAPTURABLE_DEVICES = ("cuda", "xpu", "hpu", "privateuseone", "xla")


@functools.cache
def _state_type(rule: type[FirstOrder]) -> type:
    """The NamedTuple a rule's ``init`` returns, read from its annotation."""
    return typing.get_type_hints(rule.init)["return"]


def scalar_dtype(fused: bool | None = None) -> torch.dtype:
    """The dtype torch.optim gives its ``step`` counters (float32 when fused)."""
    if fused:
        return torch.float32
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def real_view(t: Tensor) -> Tensor:
    """``t`` itself, or its real view ``(..., 2)`` when complex: torch's treatment of complex."""
    return torch.view_as_real(t) if t.is_complex() else t


def as_param(v: Tensor, p: Tensor) -> Tensor:
    """A rule's ``(1, numel)`` field in ``p``'s shape, complex again where ``p`` is."""
    if p.is_complex():
        return torch.view_as_complex(v.reshape(*p.shape, 2))
    return v.reshape(p.shape)


def hyper_value(v: Any, x: Tensor) -> Any:
    """A group's value as the rule takes it: a tensor that needs a gradient stays one (for
    differentiable steps), in x's dtype; another 1-element tensor becomes a Python number."""
    if isinstance(v, tuple | list):
        return tuple(hyper_value(b, x) for b in v)
    if isinstance(v, Tensor):
        return v.to(dtype=x.dtype).reshape(()) if v.requires_grad else v.item()
    return v


def check_torch_flags(name: str, defaults: dict[str, Any]) -> None:
    """torch.optim's constructor refusals shared by every first-order optimizer."""
    lr = defaults["lr"]
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    if defaults.get("fused"):
        if defaults.get("differentiable"):
            raise RuntimeError("`fused` does not support `differentiable`")
        if defaults.get("foreach"):
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")


class RuleOptimizer(torch.optim.Optimizer):
    """A torch optimizer that applies the batched rule ``rule`` to each parameter as one run.

    Subclasses set ``rule`` and give ``__init__`` torch.optim's signature. Hyperparameters are
    validated by the rule, for the constructor's defaults and for every param group added.
    ``torch_keys`` renames rule fields to torch's state keys; a field mapped to None is derived
    each step rather than stored. ``sparse`` says how a sparse gradient is taken: refused (None),
    as its dense equal ("dense", SGD), or densely on the coordinates it holds only ("masked",
    Adagrad, whose torch update touches no other coordinate).
    """

    rule: ClassVar[type[FirstOrder]]
    torch_keys: ClassVar[dict[str, str | None]] = {}
    sparse: ClassVar[str | None] = None

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        check_torch_flags(type(self).__name__, defaults)
        self._rule_for(defaults)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._rule_for(self.param_groups[-1])

    def _rule_for(self, group: dict[str, Any]) -> FirstOrder:
        """The batched rule with the group's values; making it validates them."""
        hp = {}
        for k in self.rule.defaults:
            v = group[k]
            if isinstance(v, Tensor) and v.numel() == 1:
                v = v.item()
            elif isinstance(v, tuple | list):
                v = tuple(b.item() if isinstance(b, Tensor) and b.numel() == 1 else b for b in v)
            hp[k] = v
        return self.rule(**hp)

    def _hyper(self, group: dict[str, Any], state: NamedTuple, x: Tensor) -> dict[str, Any]:
        """The hyperparameters ``update`` gets; subclasses add step-dependent scalars."""
        return {k: hyper_value(group[k], x) for k in self.rule.defaults}

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Step every parameter that has a gradient; return ``closure()``'s loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # As torch: autograd records the step only for differentiable=True.
        with torch.set_grad_enabled(bool(self.defaults.get("differentiable", False))):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        self._step_param(p, group)
        return loss

    def _step_param(self, p: Tensor, group: dict[str, Any]) -> None:
        name = type(self).__name__
        if group.get("capturable") and p.device.type not in CAPTURABLE_DEVICES:
            raise AssertionError(
                f"{name}: capturable=True needs parameters on a device that supports it "
                f"({', '.join(CAPTURABLE_DEVICES)}), got {p.device.type}"
            )
        grad, touched = p.grad, None
        if grad.is_sparse:
            grad, touched = self._densify(grad, group)
        x = real_view(p).reshape(1, -1)
        if torch.is_grad_enabled():
            x = x.clone()  # p is written in place below; the graph must keep the old value
        g = real_view(grad).reshape(1, -1)
        stored = self.state[p]
        state = self._rule_state(stored, x, group)
        x_new, state = self.rule.update(x, g, state, self._hyper(group, state, x))
        if touched is not None:
            if p.is_complex():
                touched = touched.unsqueeze(-1).expand(*touched.shape, 2)
            x_new = torch.where(touched.reshape(1, -1), x_new, x)
        if p.is_complex():
            torch.view_as_real(p).copy_(x_new.reshape(torch.view_as_real(p).shape))
        else:
            p.copy_(x_new.reshape(p.shape))
        self._store(stored, state, p, group)

    def _densify(self, grad: Tensor, group: dict[str, Any]) -> tuple[Tensor, Tensor | None]:
        """A sparse gradient as a dense one, and the coordinates it holds where that matters."""
        name = type(self).__name__
        if self.sparse is None:
            raise RuntimeError(f"{name} does not support sparse gradients")
        if self.sparse == "dense":
            return grad.to_dense(), None
        if group.get("weight_decay", 0) != 0:
            raise RuntimeError("weight_decay option is not compatible with sparse gradients")
        grad = grad.coalesce()
        ones = torch.ones_like(grad.values(), dtype=torch.bool)
        mask = torch.sparse_coo_tensor(grad.indices(), ones, grad.shape).to_dense()
        return grad.to_dense(), mask

    # -- torch's state layout <-> the rule's state tuple -----------------------------------------
    def _rule_state(self, stored: dict[str, Any], x: Tensor, group: dict[str, Any]) -> NamedTuple:
        """The rule's state from torch's layout: per-coordinate fields as ``(1, numel)`` real
        views, the step count as a Python float; fields not stored come from ``init``."""
        state_type = _state_type(self.rule)
        fresh = None
        fields = {}
        for name in state_type._fields:
            key = self.torch_keys.get(name, name)
            value = stored.get(key) if key is not None else None
            if name == "step":
                fields[name] = float(value) if value is not None else 0.0
            elif value is not None:
                fields[name] = real_view(value).reshape(1, -1).to(x.dtype)
            else:
                if fresh is None:
                    fresh = self._rule_for(group).init(x)
                fields[name] = getattr(fresh, name)
        return state_type(**fields)

    def _store(self, stored: dict[str, Any], state: NamedTuple, p: Tensor, group: dict) -> None:
        """The rule's state into torch's layout; empty (unused) buffers are not stored."""
        for name, v in state._asdict().items():
            key = self.torch_keys.get(name, name)
            if key is None:
                continue
            if name == "step":
                old = stored.get("step")
                dtype = old.dtype if isinstance(old, Tensor) else scalar_dtype(group.get("fused"))
                stored["step"] = torch.tensor(float(v), dtype=dtype)
            elif v.numel() > 0:
                stored[key] = as_param(v, p)
