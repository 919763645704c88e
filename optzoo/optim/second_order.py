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
``load_state_dict`` work as for any torch optimizer. L-BFGS keeps torch.optim.LBFGS's own layout
there (history as Python lists, oldest first), so its state dicts interchange with torch's.
Complex parameters are taken as their real views, as torch does.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from optzoo.optim.base import real_view
from optzoo.optimizers import lbfgs, newton
from optzoo.optimizers.base import Optimizer as Rule
from optzoo.oracle import OracleBase


class _KeepGraph(TorchFunctionMode):
    """Inside ``with _KeepGraph():``, every ``backward()`` keeps its graph, so a closure that
    calls ``loss.backward()`` still returns a loss that can be differentiated twice (for
    Hessians and HVPs).

    A closure is opaque, and the usual one frees its graph in ``loss.backward()``. This torch
    function mode sees that call (``Tensor.backward`` and ``torch.autograd.backward`` both
    dispatch through it) and passes ``retain_graph=True``; everything else goes through as it is.
    The mode is on this thread's mode stack for the one closure call only: nothing outside it
    (another thread, another optimizer) is affected.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is Tensor.backward or func is torch.autograd.backward:
            kwargs["retain_graph"] = True
        return func(*args, **kwargs)


class ClosureOracle(OracleBase):
    """The counted oracle (:class:`optzoo.oracle.CountedOracle`) over a closure.

    ``x`` is ``(1, n)``: the parameters flattened in order. Each evaluation copies x into the
    parameters and calls the closure, which (as for torch.optim.LBFGS) recomputes the loss,
    calls ``backward()`` and returns the loss. Gradients are read from ``.grad`` (zeros where
    a parameter has none). Hessians and HVPs differentiate the returned loss twice, so for
    them the closure must return the loss tensor itself, with its graph.
    """

    def __init__(self, params: Sequence[Tensor], closure: Callable[[], Any]) -> None:
        self.params = list(params)
        self.closure = closure
        super().__init__(1, sum(real_view(p).numel() for p in self.params), self.params[0].device)
        self.first_loss: Any = None  # what the closure returned at the first evaluation
        self.last_grad_norm: Tensor | None = None

    def load(self, x: Tensor) -> None:
        """Copy x ``(1, n)`` into the parameters."""
        with torch.no_grad():
            offset = 0
            for p in self.params:
                p = real_view(p)
                p.copy_(x[0, offset : offset + p.numel()].view_as(p))
                offset += p.numel()

    def _call(self, x: Tensor) -> Any:
        self.load(x)
        with torch.enable_grad():
            loss = self.closure()
        if self.first_loss is None:
            self.first_loss = loss
        return loss

    def _flat(self, grads: Sequence[Tensor | None]) -> Tensor:
        return torch.cat(
            [
                real_view(torch.zeros_like(p) if g is None else g.to_dense()).reshape(-1)
                for p, g in zip(self.params, grads, strict=True)
            ]
        )

    def _loss_value(self, loss: Any, x: Tensor) -> Tensor:
        value = loss.detach() if isinstance(loss, Tensor) else loss
        return torch.tensor([float(value)], dtype=x.dtype, device=x.device)

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
        with _KeepGraph():
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
        p0 = real_view(self._params[0])
        for p in self._params:
            if real_view(p).dtype != p0.dtype or p.device != p0.device:
                raise ValueError(
                    f"{type(self).__name__} needs parameters of one dtype (complex ones are "
                    "taken as real pairs) on one device"
                )
        self._make_rule(self.param_groups[0])  # validates the hyperparameters

    def _make_rule(self, group: dict[str, Any]) -> Rule:
        hp = {}
        for k in self._keys:
            v = group[k]
            hp[k] = float(v) if isinstance(v, Tensor) else v
        return self.rule(**hp)

    def _flat_params(self) -> Tensor:
        flat = [real_view(p.detach()).reshape(-1) for p in self._params]
        return torch.cat(flat).reshape(1, -1)

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
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One step of the rule; returns the closure's loss at the starting point."""
        name = type(self).__name__
        if closure is None:
            raise TypeError(
                f"{name}.step needs a closure: a function that recomputes the loss, calls "
                "loss.backward() and returns the loss, e.g. opt.step(closure)"
            )
        if len(self.param_groups) != 1:
            # As torch.optim.LBFGS: add_param_group is allowed, stepping two groups is not.
            raise AssertionError(
                f"{name} takes exactly one param group, got {len(self.param_groups)}: all "
                "parameters form one vector; put them in one group"
            )
        rule = self._make_rule(self.param_groups[0])
        x = self._flat_params()
        oracle = ClosureOracle(self._params, closure)
        x_new, state, _ = rule.step(x, self._load_state(rule, x), oracle)
        oracle.load(x_new)
        self._save_state(state)
        return oracle.first_loss


class LBFGS(_RuleDropIn):
    """torch.optim.LBFGS on the batched rule of :class:`optzoo.optimizers.lbfgs.LBFGS`.

    Same arguments, defaults and step-for-step behaviour, closure calls included (see that
    module on dot products), and torch's state layout: ``func_evals``, ``n_iter`` (ints), ``d``,
    ``t``, ``old_dirs``, ``old_stps``, ``ro`` (lists, oldest first), ``H_diag``,
    ``prev_flat_grad``, ``prev_loss``. The rule's ring buffer is rebuilt from the lists each
    step; the lists are read back from it, oldest first.
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
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
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

    def _load_state(self, rule: Rule, x: Tensor) -> NamedTuple:
        stored = self.state[self._params[0]]
        state = rule.init(x)

        def column(v: Any, dtype: torch.dtype = x.dtype) -> Tensor:
            return torch.tensor([float(v)], dtype=dtype, device=x.device)

        state = state._replace(
            n_iter=column(stored.get("n_iter", 0), torch.int64),
            func_evals=column(stored.get("func_evals", 0), torch.int64),
        )
        if stored.get("d") is None:  # no iteration taken yet
            return state
        m = state.old_dirs.shape[1]
        dirs, stps, ro = stored["old_dirs"][-m:], stored["old_stps"][-m:], stored["ro"][-m:]
        k = len(dirs)
        old_dirs, old_stps, ring_ro = state.old_dirs.clone(), state.old_stps.clone(), state.ro
        if k:
            old_dirs[0, :k] = torch.stack(dirs).to(x.dtype)
            old_stps[0, :k] = torch.stack(stps).to(x.dtype)
            ring_ro = ring_ro.clone()
            ring_ro[0, :k] = torch.stack([torch.as_tensor(r) for r in ro]).to(x.dtype)
        return state._replace(
            d=stored["d"].reshape(1, -1).to(x.dtype),
            t=column(stored["t"]),
            old_dirs=old_dirs,
            old_stps=old_stps,
            ro=ring_ro,
            count=column(k, torch.int64),
            H_diag=column(stored["H_diag"]),
            prev_flat_grad=stored["prev_flat_grad"].reshape(1, -1).to(x.dtype),
            prev_loss=column(stored["prev_loss"]),
        )

    def _save_state(self, state: NamedTuple) -> None:
        stored = self.state[self._params[0]]
        stored["func_evals"] = int(state.func_evals[0])
        stored["n_iter"] = int(state.n_iter[0])
        if stored["n_iter"] == 0:  # stopped before any iteration: torch keeps the counters only
            return
        m = state.old_dirs.shape[1]
        slots = [(int(state.start[0]) + j) % m for j in range(int(state.count[0]))]
        stored.update(
            d=state.d[0].clone(),
            t=state.t[0].clone(),  # torch's is a 0-d tensor after a line search, else a float
            old_dirs=[state.old_dirs[0, i].clone() for i in slots],
            old_stps=[state.old_stps[0, i].clone() for i in slots],
            ro=[state.ro[0, i].clone() for i in slots],
            H_diag=state.H_diag[0].clone(),
            prev_flat_grad=state.prev_flat_grad[0].clone(),
            prev_loss=float(state.prev_loss[0]),
        )


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
