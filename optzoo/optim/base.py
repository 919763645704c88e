"""The adapter from a batched first-order rule to a ``torch.optim.Optimizer``.

Each parameter tensor is one run: it is viewed as ``(1, numel)`` and handed, with its gradient and
state, to the rule's static ``update(x, g, state, hp)``, where ``hp`` holds its param group's
current values (so lr schedulers and per-group settings work). The rule's state tuple is kept in
``self.state[p]`` field by field, per-coordinate fields in the parameter's shape, so
``state_dict`` and ``load_state_dict`` work as for any torch optimizer. The math lives only in
:mod:`optzoo.optimizers`.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from optzoo.optimizers.base import FirstOrder


@functools.cache
def _state_type(rule: type[FirstOrder]) -> type:
    """The NamedTuple a rule's ``init`` returns, read from its annotation."""
    return typing.get_type_hints(rule.init)["return"]


class RuleOptimizer(torch.optim.Optimizer):
    """A torch optimizer that applies the batched rule ``rule`` to each parameter as one run.

    Subclasses set ``rule`` and give ``__init__`` torch.optim's signature. Hyperparameters are
    validated by the rule, for the constructor's defaults and for every param group added.
    """

    rule: ClassVar[type[FirstOrder]]

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self._rule_for(defaults)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._rule_for(self.param_groups[-1])

    def _hyper(self, group: dict[str, Any]) -> dict[str, Any]:
        return {k: group[k] for k in self.rule.defaults}

    def _rule_for(self, group: dict[str, Any]) -> FirstOrder:
        """The batched rule with the group's values; making it validates them."""
        hp = self._hyper(group)
        if "betas" in hp:
            hp["betas"] = tuple(hp["betas"])
        return self.rule(**hp)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Step every parameter that has a gradient; return ``closure()``'s loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            hp = self._hyper(group)
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse or p.is_complex():
                    raise RuntimeError(
                        f"{type(self).__name__} supports dense real parameters and gradients only"
                    )
                x = p.reshape(1, -1)
                stored = self.state[p]
                if stored:
                    state = self._load(stored, x)
                else:
                    # Initial state may depend on the group (Adagrad's initial accumulator).
                    state = self._rule_for(group).init(x)
                x_new, state = self.rule.update(x, p.grad.reshape(1, -1), state, hp)
                p.copy_(x_new.reshape(p.shape))
                for name, t in state._asdict().items():
                    # Per-run fields (the step counter) become scalars, as in torch.optim.
                    stored[name] = t.reshape(p.shape) if t.shape == x.shape else t[0].squeeze(-1)
        return loss

    def _load(self, stored: dict[str, Any], x: Tensor) -> NamedTuple:
        fields = {}
        for name in _state_type(self.rule)._fields:
            t = stored[name]
            # load_state_dict keeps "step" in its saved dtype and device; the rule wants x's.
            if t.is_floating_point():
                t = t.to(dtype=x.dtype, device=x.device)
            fields[name] = t.reshape(1, -1)
        return _state_type(self.rule)(**fields)
