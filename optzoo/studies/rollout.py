"""Step a zoo optimizer on R runs through the counted oracle, letting a study watch every step.

The harness (:func:`optzoo.harness.run_cell`) records a fixed set of per-run numbers. Some studies
need what it does not keep: the step's component along a Hessian eigenvector, the cosine between
successive steps, AdaGrad's accumulator, the full-data loss every k steps of a mini-batch run, or
a learning-rate schedule that differs per run. :func:`rollout` runs the same thing the harness
runs (the zoo's batched rule, ``opt.step(x, state, oracle, lr_scale)``, the oracle's clipping,
noise and mini-batches, one batch axis, one thread) and calls ``watch`` after each step.

As in the harness, a run whose loss or next iterate is NaN/Inf is marked diverged at that step and
frozen at its last finite iterate; the other runs go on (DESIGN, principle 5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from optzoo.harness import _OneThread
from optzoo.optimizers.base import Optimizer
from optzoo.problems.base import Problem
from optzoo.problems.oracle import Oracle


class Step(NamedTuple):
    """What ``watch`` sees after step t (0-based) of every run."""

    t: int
    x: Tensor  # (R, d) iterate before the step
    x_new: Tensor  # (R, d) iterate after it (x where the run is frozen)
    f: Tensor  # (R,) loss at x as the optimizer saw it (a mini-batch estimate if batched)
    state: NamedTuple  # the optimizer's state after the step
    oracle: Oracle
    moving: Tensor  # (R,) bool: the runs that took this step


@dataclass
class Rollout:
    """The end of a rollout: last finite iterates, state, divergence and the oracle's counts."""

    x: Tensor  # (R, d)
    state: NamedTuple
    diverged: Tensor  # (R,) bool
    diverged_at: Tensor  # (R,) int64, the step a run diverged at, -1 if never
    oracle: Oracle


def rollout(
    problem: Problem,
    opt: Optimizer,
    x0: Tensor,
    steps: int,
    *,
    lr_scale: Callable[[int], float | Tensor] | None = None,
    watch: Callable[[Step], Any] | None = None,
    seeds: Tensor | None = None,
    **oracle_kw: Any,
) -> Rollout:
    """Run ``opt`` from ``x0 (R, d)`` for ``steps`` steps; ``watch(Step)`` after each one.

    ``lr_scale(t)`` is the learning-rate multiplier at step t: a number (a schedule, e.g.
    ``Suite.lr_factor``) or a per-run tensor ``(R,)``. ``oracle_kw`` goes to :class:`Oracle`
    (``clip_norm``, ``clip_value``, ``noise_std``, ``batch_size``). A ``watch`` that returns True
    ends the rollout after that step (e.g. once every run has reached its target).
    """
    x = x0.clone()
    R = x.shape[0]
    oracle = Oracle(problem, R, seeds=seeds, device=x.device, **oracle_kw)
    state = opt.init(x)
    active = torch.ones(R, dtype=torch.bool, device=x.device)
    diverged_at = torch.full((R,), -1, dtype=torch.int64, device=x.device)
    with torch.no_grad(), _OneThread():
        for t in range(steps):
            oracle.active = active
            scale = 1.0 if lr_scale is None else lr_scale(t)
            x_new, new_state, f = opt.step(x, state, oracle, lr_scale=scale)
            bad = ~torch.isfinite(f) | ~torch.isfinite(x_new).all(dim=-1)
            diverged_at = torch.where(active & bad & (diverged_at < 0), t, diverged_at)
            moving = active & ~bad
            x_new = torch.where(moving[:, None], x_new, x)
            done = watch is not None and watch(Step(t, x, x_new, f, new_state, oracle, moving))
            x, state, active = x_new, new_state, moving
            if done:
                break
    return Rollout(x, state, diverged_at >= 0, diverged_at, oracle)


def sphere_starts(
    n: int, dim: int, radius: float | Tensor, seed: int, centre: Tensor | None = None
) -> Tensor:
    """``n`` points at ``radius`` (a number or ``(n,)``) in seeded uniform directions: (n, d)."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    u = u / torch.linalg.vector_norm(u, dim=-1, keepdim=True)
    r = torch.as_tensor(radius, dtype=torch.float64).reshape(-1, 1)
    x = r * u
    return x if centre is None else x + centre


def box_starts(n: int, lo: list[float], hi: list[float], seed: int) -> Tensor:
    """``n`` seeded uniform points in the box ``[lo, hi]``, ``(n, d)``."""
    gen = torch.Generator().manual_seed(seed)
    lo_t = torch.tensor(lo, dtype=torch.float64)
    hi_t = torch.tensor(hi, dtype=torch.float64)
    return lo_t + torch.rand(n, len(lo), generator=gen, dtype=torch.float64) * (hi_t - lo_t)


class FirstHit:
    """A ``watch`` that records each run's first step with f <= target, and stops once all have.

    ``steps_to()`` gives that step per run (iterations to target), ``steps + 1`` where never.
    Checking costs one host sync every 64 steps.
    """

    def __init__(self, target: Tensor) -> None:
        self.target = target
        self.hit = torch.full(target.shape, -1, dtype=torch.int64)

    def __call__(self, st: Step) -> bool:
        arrived = (st.f <= self.target) & (self.hit < 0) & st.moving
        self.hit = torch.where(arrived, st.t, self.hit)
        return st.t % 64 == 63 and bool((self.hit >= 0).all())

    def steps_to(self, steps: int) -> Tensor:
        return torch.where(self.hit >= 0, self.hit, steps + 1).double()
