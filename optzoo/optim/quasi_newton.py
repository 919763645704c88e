"""``torch.optim`` drop-ins for BFGS and DFP over :mod:`optzoo.optimizers.quasi_newton`.

Closure-based like ``torch.optim.LBFGS``: all parameters are flattened into one vector x of
shape ``(1, n)`` and each ``step(closure)`` is one iteration of the batched rule with R = 1 (a
search direction, a line search, an update of the dense n x n inverse Hessian). The closure
recomputes the loss, calls ``backward()`` and returns the loss; it is called once per
line-search trial, plus once at the start of the first step (f and g at the accepted point are
kept in the state for the next step). ``step`` returns the loss at the point it started from.

The dense inverse Hessian takes n^2 numbers: a model whose matrix would exceed
``optzoo.optimizers.quasi_newton.MAX_DENSE_BYTES`` is refused at construction, with the memory
it would take; ``LBFGS`` is the method for those.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from optzoo.errors import ConfigError
from optzoo.optim.second_order import ClosureOracle, _RuleDropIn
from optzoo.optimizers import quasi_newton
from optzoo.optimizers.quasi_newton import MAX_DENSE_BYTES, dense_bytes


class _QuasiNewtonDropIn(_RuleDropIn):
    """The shared constructor check and step of :class:`BFGS` and :class:`DFP`."""

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        super().__init__(params, defaults)
        n = sum(p.numel() for p in self._params)
        dtype = self._params[0].dtype
        need = dense_bytes(1, n, dtype)
        if need > MAX_DENSE_BYTES:
            largest = math.isqrt(MAX_DENSE_BYTES // dense_bytes(1, 1, dtype))
            raise ConfigError(
                f"{type(self).__name__}: {n:,} parameters need a dense {n:,} x {n:,} inverse "
                f"Hessian of {need / 2**30:.1f} GiB ({dtype}), over the "
                f"{MAX_DENSE_BYTES / 2**30:.0f} GiB allowed; allowed: up to {largest:,} "
                "parameters, or optzoo.optim.LBFGS"
            )

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> Tensor:  # type: ignore[override]
        """One iteration of the rule; returns the loss at the starting point."""
        if closure is None:
            raise RuntimeError(f"{type(self).__name__}.step needs a closure")
        rule = self._make_rule(self.param_groups[0])
        x = self._flat_params()
        oracle = ClosureOracle(self._params, closure)
        x_new, state, f = rule.step(x, self._load_state(rule, x), oracle)
        oracle.load(x_new)
        self._save_state(state)
        return f[0]


class BFGS(_QuasiNewtonDropIn):
    """BFGS (:class:`optzoo.optimizers.quasi_newton.BFGS`) as a torch optimizer, one iteration
    per ``step(closure)``; ``line_search_fn`` is "strong_wolfe", "backtracking" or "exact"."""

    rule = quasi_newton.BFGS

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        tolerance_grad: float = 1e-7,
        c1: float = 1e-4,
        c2: float = 0.9,
        curvature_eps: float = 1e-8,
        max_ls: int = 25,
        backtrack: float = 0.5,
        line_search_fn: str = "strong_wolfe",
        scale_h0: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            tolerance_grad=tolerance_grad,
            c1=c1,
            c2=c2,
            curvature_eps=curvature_eps,
            max_ls=max_ls,
            backtrack=backtrack,
            line_search_fn=line_search_fn,
            scale_h0=scale_h0,
        )
        super().__init__(params, defaults)


class DFP(BFGS):
    """DFP (:class:`optzoo.optimizers.quasi_newton.DFP`) as a torch optimizer; BFGS's arguments."""

    rule = quasi_newton.DFP
