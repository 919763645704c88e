"""A step-size-free oscillation measure: the mean cosine between a run's successive steps.

Path efficiency (net displacement over path length) is confounded with step size: a run that
crawls along a ravine's floor scores as straight as one that strides along it. The direction of
the steps is not. With s_t = x_(t+1) - x_t, a run's **step cosine** is

    mean over t of  cos(s_(t-1), s_t) = s_(t-1) . s_t / (|s_(t-1)| |s_t|),

over the pairs of successive steps the run took, a pair with a zero step left out (its direction
is undefined). It is +1 for a straight path, near -1 for a path that reverses each step, and
NaN for a run with fewer than two steps. Gradient descent x <- x - eta H x on a quadratic
multiplies the top eigenvector's component by (1 - eta L) each step, so in 1-D the cosine is
sign(1 - eta L): -1 for eta in (1/L, 2/L) (Goh 2017, "Why momentum really works", Distill).

:func:`step_cosine` is the one definition, shared by the suite (:class:`StepCosine`, fed by the
harness's step loop) and the ravine studies (``optzoo.studies.zigzag.ZigzagMeter``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from optzoo.linalg import row_sum


def step_cosine(
    s: Tensor, prev: Tensor, norm: Tensor | None = None, prev_norm: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Cosine between successive steps ``prev`` and ``s`` (both ``(R, d)``), per run.

    ``norm`` and ``prev_norm`` are their norms ``(R,)``, computed here unless the caller has
    them. Returns ``(cos, defined)``, each ``(R,)``: ``defined`` is False where either step is
    zero, and ``cos`` is then 0 (not NaN), so that a masked sum needs no second ``where``.
    """
    if norm is None:
        norm = torch.linalg.vector_norm(s, dim=-1)
    if prev_norm is None:
        prev_norm = torch.linalg.vector_norm(prev, dim=-1)
    defined = (norm > 0) & (prev_norm > 0)
    cos = row_sum(s * prev) / (norm * prev_norm).clamp(min=1e-300)
    return torch.where(defined, cos, 0.0), defined


class StepCosine:
    """Per-run mean cosine between successive steps, accumulated one batched step at a time.

    ``update(step, active)`` takes the step ``x_new - x`` of every run ``(R, d)`` and the runs
    that took it ``(R,)``; a run outside ``active`` adds nothing and keeps its previous step, so a
    frozen run stops accumulating. No Python loop over runs and no host sync: each update is a
    few tensor operations, and ``result()`` gives the ``(R,)`` float64 mean (NaN where no pair of
    non-zero successive steps was seen, e.g. a run with fewer than two steps).
    """

    def __init__(self, R: int, d: int, device: torch.device | str = "cpu") -> None:
        kw = {"dtype": torch.float64, "device": device}
        self.prev = torch.zeros(R, d, **kw)  # the last step each run took (zero before its first)
        self.prev_norm = torch.zeros(R, **kw)
        self.cos_sum = torch.zeros(R, **kw)
        self.pairs = torch.zeros(R, **kw)

    def update(self, step: Tensor, active: Tensor, norm: Tensor | None = None) -> None:
        """Add the pair (previous step, ``step``) of each run in ``active``.

        ``norm``: the step's norms ``(R,)`` in float64 when the caller has them (the harness
        does, for the path length), saving one reduction per step.
        """
        s = step.to(torch.float64)
        if norm is None:
            norm = torch.linalg.vector_norm(s, dim=-1)
        cos, defined = step_cosine(s, self.prev, norm, self.prev_norm)
        counted = active & defined
        self.cos_sum += torch.where(counted, cos, 0.0)
        self.pairs += counted
        torch.where(active[:, None], s, self.prev, out=self.prev)
        torch.where(active, norm, self.prev_norm, out=self.prev_norm)

    def result(self) -> Tensor:
        """Mean cosine per run ``(R,)``; NaN where no pair was counted."""
        return torch.where(self.pairs > 0, self.cos_sum / self.pairs.clamp(min=1), math.nan)
