"""Saddle escape along negative curvature, wrapped around any batched optimizer.

Per run and step, with g the gradient the optimizer sees and t = ``escape_step``::

    if |g| < escape_eps and no check in the last escape_wait steps:     (second-order check)
        H <- Hessian at x;  lambda, u <- its smallest eigenpair
        if lambda < -tol * max|lambda_i|:                                (negative curvature)
            x+ <- argmin of f over {x + t u, x - t u}
            if f(x+) < f(x):  x <- x+ and skip the inner step             (escape)
        else wait escape_wait steps before the next check
    otherwise: the inner optimizer's step

Along u, f(x + t u) = f(x) + t g.u + t^2 lambda / 2 + O(t^3): at a strict saddle the quadratic
term lowers f whatever the sign, and trying both signs at the step's own length lets the
gradient and third-order terms pick one. This is the deterministic negative-curvature step of
Dauphin et al. 2014 ("Identifying and attacking the saddle point problem") and of Hung-yi Lee's
lecture on critical points; Ge et al. 2015 ("Escaping from saddle points") and Jin et al. 2017
("How to escape saddle points efficiently") reach the same points with a random perturbation of
radius r when |g| <= eps, waiting t_thres steps between perturbations, as ``escape_wait`` does
here between Hessian checks. The step length is fixed (like Jin et al.'s radius r) and not scaled
by the learning-rate schedule: with a rho-Lipschitz Hessian it lowers f when t < 3 |lambda| / rho,
and a step that would raise f is refused rather than shortened.

Costs, counted by the oracle for exactly the runs that incur them: one gradient per step (shared
with the inner optimizer, which gets it from the cache below rather than paying twice); one
Hessian (d gradient evaluations) per check; two function values per run with negative curvature.
The inner step of a run that escapes is computed but not charged, as for a frozen run.

The one host sync: ``if need.any()`` skips the Hessian when no run needs it. Every run's numbers
are the same either way (a run that needs no check is masked out), so it never changes results;
it only saves d gradient evaluations' worth of work per run on most steps.
"""

from __future__ import annotations

import contextlib
import functools
from collections import namedtuple
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from optzoo.errors import ConfigError
from optzoo.linalg import negative_curvature
from optzoo.optimizers.base import Hyper, Optimizer, where_state
from optzoo.optimizers.sgd import SGD, Momentum
from optzoo.oracle import CountedOracle, Counts, live_runs

ESCAPE_DEFAULTS: dict[str, Any] = {
    "escape_eps": 1e-4,  # check the curvature where |g| < escape_eps
    "escape_step": 0.1,  # length of an escape step along the eigenvector
    "escape_wait": 10,  # steps between two checks of a run that found no way down
}


class SaddleEscape(Optimizer):
    """An optimizer that steps along negative curvature where its gradient is small.

    ``SaddleEscape(inner, escape_eps=..., escape_step=..., escape_wait=...)`` wraps an optimizer
    instance (this is what ``optimizers.get(name, escape=...)`` does);
    ``escaping(cls)`` makes a class with every hyperparameter of ``cls`` plus these three, for the
    harness, which builds optimizers from a class and per-run hyperparameters. The escape settings
    may be per-run tensors ``(R,)`` like any numeric hyperparameter. The state is the inner
    optimizer's state with one more field, ``escape_wait`` ``(R,)``: steps left before a run may
    be checked again.
    """

    name: ClassVar[str] = "escape"
    defaults: ClassVar[dict[str, Any]] = dict(ESCAPE_DEFAULTS)
    inner_class: ClassVar[type[Optimizer] | None] = None

    def __init__(self, inner: Optimizer | None = None, /, **hp: Any) -> None:
        if inner is None:
            if self.inner_class is None:
                raise ConfigError("SaddleEscape needs an optimizer to wrap")
            unknown = sorted(set(hp) - set(self.defaults))
            if unknown:
                raise ConfigError(
                    f"optimizer {self.name!r}: unknown hyperparameter {unknown[0]!r}; "
                    f"allowed: {', '.join(sorted(self.defaults))}"
                )
            inner = self.inner_class(**{k: v for k, v in hp.items() if k not in ESCAPE_DEFAULTS})
            hp = {k: v for k, v in hp.items() if k in ESCAPE_DEFAULTS}
        else:
            if not isinstance(inner, Optimizer):
                raise ConfigError(
                    f"SaddleEscape wraps a batched optimizer, got {type(inner).__name__}"
                )
            self.name = f"{inner.name}+escape"
            self.defaults = {**inner.defaults, **ESCAPE_DEFAULTS}
            self.flags = inner.flags
            unknown = sorted(set(hp) - set(ESCAPE_DEFAULTS))
            if unknown:
                raise ConfigError(
                    f"optimizer {self.name!r}: unknown escape setting {unknown[0]!r}; "
                    f"allowed: {', '.join(sorted(ESCAPE_DEFAULTS))}"
                )
        escape = {**ESCAPE_DEFAULTS, **hp}
        for k, v in escape.items():
            if isinstance(v, list | tuple):
                escape[k] = torch.tensor(v, dtype=torch.float64)
        self.check(escape)
        self.inner = inner
        self.escape_hp = escape
        self.hp = {**inner.hp, **escape}

    def __repr__(self) -> str:
        if type(self) is not SaddleEscape:
            return super().__repr__()
        changed = [
            f", {k}={v!r}"
            for k, v in self.escape_hp.items()
            if isinstance(v, Tensor) or v != ESCAPE_DEFAULTS[k]
        ]
        return f"SaddleEscape({self.inner!r}{''.join(changed)})"

    def check(self, hp: Mapping[str, Any]) -> None:
        self.require("escape_eps", hp["escape_eps"], lambda v: v >= 0, "escape_eps >= 0")
        self.require("escape_step", hp["escape_step"], lambda v: v > 0, "escape_step > 0")
        self.require(
            "escape_wait",
            hp["escape_wait"],
            lambda v: v >= 0 and v == int(v),
            "a whole number of steps >= 0",
        )

    def init(self, x: Tensor) -> NamedTuple:
        inner = self.inner.init(x)
        return _state_type(type(inner))(*inner, x.new_zeros(x.shape[0]))

    def step(self, x: Tensor, state: NamedTuple, oracle: CountedOracle, lr_scale: Hyper = 1.0):
        inner_state, wait = type(state).inner_type(*state[:-1]), state[-1]
        hp = self.per_run(x, keys=ESCAPE_DEFAULTS)
        eps, length, every = hp["escape_eps"], hp["escape_step"], hp["escape_wait"]
        f, g = oracle.value_and_grad(x)
        live = live_runs(oracle, x)
        need = live & (torch.linalg.vector_norm(g, dim=-1) < eps) & (wait <= 0)
        escaped = torch.zeros_like(need)
        x_escape = x
        if bool(need.any()):  # the one host sync: skip d gradients' work when nobody needs it
            nc = negative_curvature(oracle.hessian(x, active=need))
            down = need & nc.negative
            step = length[:, None] * nc.vector
            f_plus = oracle.value(x + step, active=down)
            f_minus = oracle.value(x - step, active=down)
            plus = f_plus <= f_minus
            x_escape = torch.where(plus[:, None], x + step, x - step)
            escaped = down & (torch.where(plus, f_plus, f_minus) < f)
        # The inner step reuses the gradient just paid for; escaping runs are not charged for it.
        with oracle.restricted(~escaped):
            x_inner, inner_new, _ = self.inner.step(
                x, inner_state, _PaidGradient(oracle, x, f, g), lr_scale
            )
        x_new = torch.where(escaped[:, None], x_escape, x_inner)
        inner_new = where_state(~escaped, inner_new, inner_state)
        wait = torch.where(need & ~escaped, every, wait - 1).clamp(min=0)
        return x_new, type(state)(*inner_new, wait), f


@functools.cache
def _state_type(inner: type) -> type:
    """The inner state's NamedTuple with an ``escape_wait`` field appended (one type per inner)."""
    fields = (*getattr(inner, "_fields", ()), "escape_wait")
    cls = namedtuple(f"{inner.__name__}Escape", fields)
    cls.inner_type = inner
    return cls


class _PaidGradient:
    """The oracle (a :class:`~optzoo.oracle.CountedOracle`), with f and g at ``x`` already
    evaluated (and counted) once.

    The first ``value_and_grad`` at the very same ``x`` tensor returns them without counting;
    every other call, and all counting, goes to the oracle.
    """

    def __init__(self, oracle: CountedOracle, x: Tensor, f: Tensor, g: Tensor) -> None:
        self._oracle = oracle
        self._x = x
        self._fg: tuple[Tensor, Tensor] | None = (f, g)

    @property
    def R(self) -> int:
        return self._oracle.R

    @property
    def d(self) -> int:
        return self._oracle.d

    @property
    def active(self) -> Tensor | None:
        return self._oracle.active

    @property
    def counts(self) -> Counts:
        return self._oracle.counts

    @property
    def grad_evals(self) -> Tensor:
        return self._oracle.grad_evals

    def restricted(self, runs: Tensor) -> contextlib.AbstractContextManager[None]:
        return self._oracle.restricted(runs)

    def value(self, x: Tensor, active: Tensor | None = None) -> Tensor:
        return self._oracle.value(x, active)

    def value_and_grad(self, x: Tensor, active: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x is self._x and self._fg is not None:
            fg, self._fg = self._fg, None
            return fg
        return self._oracle.value_and_grad(x, active)

    def hvp(self, x: Tensor, v: Tensor, active: Tensor | None = None) -> Tensor:
        return self._oracle.hvp(x, v, active)

    def hessian(self, x: Tensor, active: Tensor | None = None) -> Tensor:
        return self._oracle.hessian(x, active)


@functools.cache
def escaping(inner: type[Optimizer]) -> type[SaddleEscape]:
    """The class of ``inner`` wrapped in :class:`SaddleEscape`: name ``"<inner>+escape"``."""
    return type(
        f"{inner.__name__}Escape",
        (SaddleEscape,),
        {
            "name": f"{inner.name}+escape",
            "defaults": {**inner.defaults, **ESCAPE_DEFAULTS},
            "flags": inner.flags,
            "inner_class": inner,
            "__doc__": f"{inner.__name__} with the saddle escape of :class:`SaddleEscape`.",
            "__module__": __name__,
        },
    )


SGDEscape = escaping(SGD)
MomentumEscape = escaping(Momentum)
