"""The oracle protocol: how an optimizer sees a loss, and how each evaluation is counted.

An optimizer asks an oracle for f, g, Hessian-vector products and Hessians at iterates
``x (R, d)``, and never sees the loss otherwise (DESIGN, principle 3). :class:`CountedOracle` is
that interface; :class:`OracleBase` is the one implementation of its counting, which every oracle
shares: the harness's :class:`optzoo.problems.oracle.Oracle` over a problem, the ``torch.optim``
drop-ins' :class:`optzoo.optim.second_order.ClosureOracle` over a closure, and the views that
optimizers put in front of them (the saddle escape's already-paid gradient).

Counting, per run: ``nf`` function values, ``ng`` gradients, ``nhvp`` Hessian-vector products and
``nh`` Hessians. The cost in gradient evaluations, stated once (:func:`weight`)::

    grad_evals = nf + ng + 2 nhvp + 2d nh

a function value is charged as much as a gradient, an HVP as two (a forward and a backward pass
more), a Hessian as d HVPs (``HESSIAN_PER_DIM = 2`` per dimension). Only runs in ``active``
(and in the mask a call passes) are counted; every run is computed, so a step stays one tensor
program with no branch on tensor values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

# Gradient evaluations per count: an HVP costs two, a Hessian d HVPs of two each.
HVP_COST = 2
HESSIAN_PER_DIM = 2


class Counts(NamedTuple):
    """Per-run evaluation counts, each ``(R,)`` int64."""

    nf: Tensor
    ng: Tensor
    nhvp: Tensor
    nh: Tensor


def weight(field: str, d: int) -> int:
    """Gradient evaluations one count of ``field`` (``nf``, ``ng``, ``nhvp``, ``nh``) costs."""
    return {"nhvp": HVP_COST, "nh": HESSIAN_PER_DIM * d}.get(field, 1)


@runtime_checkable
class CountedOracle(Protocol):
    """What an optimizer may ask of a loss for a batch of R runs in d dimensions.

    Each method takes an optional ``active`` mask ``(R,)``: the runs to count (within
    :attr:`active`). ``active`` is the set of runs still going (None: all); a frozen run is
    computed but neither counted nor advanced. :meth:`restricted` narrows it for a block of code.
    """

    R: int
    d: int
    active: Tensor | None
    counts: Counts

    @property
    def grad_evals(self) -> Tensor:
        """Cost per run in gradient evaluations, ``(R,)``."""
        ...

    def restricted(self, runs: Tensor) -> contextlib.AbstractContextManager[None]:
        """Count (and let optimizers advance) only ``runs`` within :attr:`active`, inside a
        ``with`` block; :attr:`active` is restored on exit."""
        ...

    def value(self, x: Tensor, active: Tensor | None = None) -> Tensor:
        """f(x), ``(R,)``."""
        ...

    def value_and_grad(self, x: Tensor, active: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """f(x) ``(R,)`` and the gradient ``(R, d)``."""
        ...

    def hvp(self, x: Tensor, v: Tensor, active: Tensor | None = None) -> Tensor:
        """Hessian-vector products ``H(x_r) v_r``, ``(R, d)``."""
        ...

    def hessian(self, x: Tensor, active: Tensor | None = None) -> Tensor:
        """Hessians ``(R, d, d)``."""
        ...


class OracleBase:
    """The counting every oracle shares: per-run :class:`Counts`, the running cost, ``active``.

    Subclasses evaluate the loss and call :meth:`_count` once per evaluation.
    """

    def __init__(self, R: int, d: int, device: torch.device | str | None = None) -> None:
        self.R = int(R)
        self.d = int(d)
        dev = torch.device(device) if device is not None else torch.device("cpu")
        self.device = dev
        z = torch.zeros(self.R, dtype=torch.int64, device=dev)
        self.counts = Counts(z.clone(), z.clone(), z.clone(), z.clone())
        # grad_evals as a running total (the harness reads it twice a step). It is replaced, never
        # written in place, so a value read earlier keeps its numbers.
        self._evals = z.clone()
        # The runs still going (None: all); frozen runs are computed but not counted.
        self.active: Tensor | None = None

    def _count(self, field: str, active: Tensor | None) -> None:
        if active is None:
            active = self.active
        elif self.active is not None:
            active = active & self.active
        c = getattr(self.counts, field)
        step = 1 if active is None else active.to(torch.int64)
        c += step
        w = weight(field, self.d)
        self._evals = self._evals + (step if w == 1 else w * step)

    @property
    def grad_evals(self) -> Tensor:
        """Cost per run in gradient evaluations, ``(R,)``: ``nf + ng + 2 nhvp + 2d nh``."""
        return self._evals

    def restore_evals(self, evals: Tensor) -> None:
        """Set the running cost after the harness refunds a step it did not take (budget)."""
        self._evals = evals

    @contextlib.contextmanager
    def restricted(self, runs: Tensor) -> Iterator[None]:
        """Within the block :attr:`active` is ``active & runs``; restored on exit, also on error."""
        saved = self.active
        self.active = runs if saved is None else saved & runs
        try:
            yield
        finally:
            self.active = saved


def live_runs(oracle: CountedOracle, x: Tensor) -> Tensor:
    """The runs an optimizer must advance, ``(R,)`` bool: all but those the harness froze."""
    ones = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    return ones if oracle.active is None else ones & oracle.active
