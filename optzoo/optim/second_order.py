"""``torch.optim`` drop-ins for the second-order rules: L-BFGS and Newton.

Both are thin adapters. All parameters are flattened into one vector x of shape ``(1, n)``
(as torch.optim.LBFGS does), and each ``step(closure)`` runs one step of the batched rule of
:mod:`optzoo.optimizers.lbfgs` or :mod:`optzoo.optimizers.newton` with R = 1, through a
:class:`ClosureOracle` that evaluates the loss at x by copying x into the parameters and
calling the closure. The math lives only in the batched rules; because their masked loops stop
as soon as no run is active, the L-BFGS drop-in calls the closure exactly as often, and at the
same points, as torch.optim.LBFGS.

The rule's state is kept in ``self.state[first parameter]`` (torch.optim.LBFGS's place for it),
tensors with the run axis of length 1 and counters as Python ints, so ``state_dict`` and
``load_state_dict`` work as for any torch optimizer.
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from optzoo.optimizers import lbfgs, newton
from optzoo.optimizers.base import Optimizer as Rule
from optzoo.problems.oracle import HESSIAN_PER_DIM, Counts


@contextlib.contextmanager
def _graph_kept() -> Iterator[None]:
    """Make every ``backward()`` keep its graph, so a closure that calls ``loss.backward()``
    still returns a loss that can be differentiated twice (for Hessians and HVPs).

    A closure is opaque, and the usual one frees its graph in ``loss.backward()``; wrapping
    ``torch.autograd.backward`` (which ``Tensor.backward`` calls) for the duration of that one
    closure call is the only way to keep it. The wrapper is removed on exit, also on error.
    """
    original = torch.autograd.backward

    def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, *a, **kw):
        return original(tensors, grad_tensors, True, create_graph, *a, **kw)

    torch.autograd.backward = backward
    try:
        yield
    finally:
        torch.autograd.backward = original


class ClosureOracle:
    """The counted-oracle interface (:class:`optzoo.problems.oracle.Oracle`) over a closure.

    ``x`` is ``(1, n)``: the parameters flattened in order. Each evaluation copies x into the
    parameters and calls the closure, which (as for torch.optim.LBFGS) recomputes the loss,
    calls ``backward()`` and returns the loss. Gradients are read from ``.grad`` (zeros where
    a parameter has none). Hessians and HVPs differentiate the returned loss twice, so for
    them the closure must return the loss tensor itself, with its graph.
    """

    def __init__(self, params: Sequence[Tensor], closure: Callable[[], Any]) -> None:
        self.params = list(params)
        self.closure = closure
        self.R = 1
        self.d = sum(p.numel() for p in self.params)
        p0 = self.params[0]
        z = torch.zeros(1, dtype=torch.int64, device=p0.device)
        self.counts = Counts(z.clone(), z.clone(), z.clone(), z.clone())
        self.first_loss: Any = None  # what the closure returned at the first evaluation
        self.active: Tensor | None = None  # as Oracle.active: runs to count (None: all)
        self.last_grad_norm: Tensor | None = None

    @property
    def grad_evals(self) -> Tensor:
        c = self.counts
        return c.nf + c.ng + 2 * c.nhvp + HESSIAN_PER_DIM * self.d * c.nh

    def _count(self, field: str, active: Tensor | None) -> None:
        if active is None:
            active = self.active
        elif self.active is not None:
            active = active & self.active
        c = getattr(self.counts, field)
        c += 1 if active is None else active.to(torch.int64)

    def _load(self, x: Tensor) -> None:
        with torch.no_grad():
            offset = 0
            for p in self.params:
                p.copy_(x[0, offset : offset + p.numel()].view_as(p))
                offset += p.numel()

    def _call(self, x: Tensor) -> Any:
        self._load(x)
        with torch.enable_grad():
            loss = self.closure()
        if self.first_loss is None:
            self.first_loss = loss
        return loss

    def _flat(self, grads: Sequence[Tensor | None]) -> Tensor:
        return torch.cat(
            [
                (torch.zeros_like(p) if g is None else g.to_dense()).reshape(-1)
                for p, g in zip(self.params, grads, strict=True)
            ]
        )

    def _loss_value(self, loss: Any, x: Tensor) -> Tensor:
        return torch.tensor([float(loss)], dtype=x.dtype, device=x.device)

    def value(self, x: Tensor, active: Tensor | None = None) -> Tensor:
        loss = self._call(x)
        self._count("nf", active)
        return self._loss_value(loss, x)

    def value_and_grad(self, x: Tensor, active: Tensor | None = None) -> tuple[Tensor, Tensor]:
        loss = self._call(x)
        g = self._flat([p.grad for p in self.params]).to(x.dtype).reshape(1, -1)
        self.last_grad_norm = torch.linalg.vector_norm(g, dim=-1)
        self._count("ng", active)
        return self._loss_value(loss, x), g

    def _differentiable_loss(self, x: Tensor) -> Tensor:
        with _graph_kept():
            loss = self._call(x)
        if not (isinstance(loss, Tensor) and loss.requires_grad):
            raise RuntimeError(
                "second derivatives need a closure that returns the loss tensor with its "
                "autograd graph (not a float, not detached)"
            )
        return loss

    def _grads_with_graph(self, loss: Tensor) -> Tensor:
        with torch.enable_grad():
            grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
        return self._flat(grads)

    def hvp(self, x: Tensor, v: Tensor, active: Tensor | None = None) -> Tensor:
        loss = self._differentiable_loss(x)
        with torch.enable_grad():
            g = self._grads_with_graph(loss)
            hv = self._hessian_row(g @ v[0].to(g.dtype), retain=False)
        self._count("nhvp", active)
        return hv.to(x.dtype).reshape(1, -1)

    def hessian(self, x: Tensor, active: Tensor | None = None) -> Tensor:
        loss = self._differentiable_loss(x)
        with torch.enable_grad():
            g = self._grads_with_graph(loss)
            rows = [self._hessian_row(g[i], retain=True) for i in range(self.d)]
        H = torch.stack(rows).to(x.dtype)
        self._count("nh", active)
        # Symmetrize as the Oracle does: autograd's two halves can differ in the last bit.
        return (0.5 * (H + H.T)).reshape(1, self.d, self.d)

    def _hessian_row(self, out: Tensor, retain: bool) -> Tensor:
        if not out.requires_grad:  # this gradient entry does not depend on the parameters
            return torch.zeros(self.d, dtype=out.dtype, device=out.device)
        grads = torch.autograd.grad(out, self.params, retain_graph=retain, allow_unused=True)
        return self._flat(grads).detach()


class _RuleDropIn(torch.optim.Optimizer):
    """A torch optimizer running one batched second-order rule on all parameters as one run."""

    rule: type[Rule]

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self._keys = list(defaults)  # torch adds keys of its own to self.defaults
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError(
                f"{type(self).__name__} doesn't support per-parameter options (parameter groups)"
            )
        self._params: list[Tensor] = self.param_groups[0]["params"]
        p0 = self._params[0]
        for p in self._params:
            if p.is_complex() or p.dtype != p0.dtype or p.device != p0.device:
                raise ValueError(
                    f"{type(self).__name__} needs real parameters of one dtype on one device"
                )
        self._make_rule(self.param_groups[0])  # validates the hyperparameters

    def _make_rule(self, group: dict[str, Any]) -> Rule:
        hp = {}
        for k in self._keys:
            v = group[k]
            hp[k] = float(v) if isinstance(v, Tensor) else v
        return self.rule(**hp)

    def _flat_params(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self._params]).reshape(1, -1)

    def _load_state(self, rule: Rule, x: Tensor) -> NamedTuple:
        stored = self.state[self._params[0]]
        if not stored:
            return rule.init(x)
        state_type = typing.get_type_hints(type(rule).init)["return"]
        fields = {}
        for name in state_type._fields:
            v = stored[name]
            if isinstance(v, int):
                fields[name] = torch.tensor([v], dtype=torch.int64, device=x.device)
            else:
                fields[name] = v.to(dtype=x.dtype, device=x.device)
        return state_type(**fields)

    def _save_state(self, state: NamedTuple) -> None:
        stored = self.state[self._params[0]]
        for name, t in state._asdict().items():
            # Counters as Python ints: load_state_dict casts tensors to the parameters' dtype.
            stored[name] = int(t[0]) if not t.is_floating_point() else t

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """One step of the rule; returns the closure's loss at the starting point."""
        if closure is None:
            raise RuntimeError(f"{type(self).__name__}.step needs a closure")
        rule = self._make_rule(self.param_groups[0])
        x = self._flat_params()
        oracle = ClosureOracle(self._params, closure)
        x_new, state, _ = rule.step(x, self._load_state(rule, x), oracle)
        oracle._load(x_new)
        self._save_state(state)
        return oracle.first_loss


class LBFGS(_RuleDropIn):
    """torch.optim.LBFGS on the batched rule of :class:`optzoo.optimizers.lbfgs.LBFGS`.

    Same arguments, defaults and step-for-step behaviour, closure calls included (see that
    module on dot products). Parameters must be real (torch also takes complex ones).
    """

    rule = lbfgs.LBFGS

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        if max_eval is None:
            max_eval = max_iter * 5 // 4  # as torch: fixed at construction
        defaults = dict(
            lr=lr,
            max_iter=max_iter,
            max_eval=max_eval,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            history_size=history_size,
            line_search_fn=line_search_fn,
        )
        super().__init__(params, defaults)


class Newton(_RuleDropIn):
    """Newton's method (:class:`optzoo.optimizers.newton.Newton`) as a torch optimizer.

    Each step evaluates the closure once for the gradient and once for the Hessian (d
    backward passes through the returned loss), plus once per line-search or
    Levenberg-Marquardt trial. The closure must return the loss tensor with its graph.
    """

    rule = newton.Newton

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1.0,
        damping: float = 0.0,
        line_search_fn: str | None = None,
        saddle_free: bool = False,
        adaptive: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            damping=damping,
            line_search_fn=line_search_fn,
            saddle_free=saddle_free,
            adaptive=adaptive,
        )
        super().__init__(params, defaults)
