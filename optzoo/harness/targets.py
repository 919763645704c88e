"""COCO target accounting: the step and the cost at which each run first meets each target.

A run meets target ``delta_f`` when ``f - f* <= delta_f``, for ``delta_f`` on the ladder of
:mod:`optzoo.schema` (Hansen et al., COCO, 2021).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from optzoo.schema import LADDER


class Targets:
    """First hits of the target ladder, in O(R) work per step.

    A run's level is how many ladder targets its best f has reached. Each observed iterate adds
    one to a per-run histogram at its level, and the evaluations its step spent to a second one.
    Because the level never falls, the iterates before target i was first reached are exactly
    those counted at levels <= i: a cumulative sum at the end gives the step and the cost of every
    first hit, without an (R, 51) comparison at every step.

    Observations are buffered for ``WINDOW`` steps and counted in one go. A run that reached no
    new rung in the window stayed at its level throughout, so its counts all go to that one bin;
    only the runs that climbed get a level per observation. A step then costs three copies, and
    a window a few passes over its buffer and one host sync (at R = 1e5 about 1 ms a step, where
    a binary search and two scatters at every step took about 10). The counts are integers, so
    the order of the additions changes nothing.
    """

    WINDOW = 8

    def __init__(self, R: int, f_star: float | None, device: torch.device) -> None:
        self.f_star = f_star
        self.R = R
        n = len(LADDER)
        # rungs[c] = LADDER[c - 1], with +inf before the first rung and -inf after the last.
        self.rungs = torch.tensor([np.inf, *LADDER, -np.inf], dtype=torch.float64, device=device)
        self.level = torch.zeros(R, dtype=torch.int64, device=device)
        # Level-major, bin L of run r at [L, r]: runs at one level are adjacent in memory, so an
        # index_add_ over all runs walks a few rows (adds into (R, 52) rows miss the cache).
        self.h_steps = torch.zeros(n + 1, R, dtype=torch.int64, device=device)
        self.h_evals = torch.zeros(n + 1, R, dtype=torch.int64, device=device)
        self.run_ids = torch.arange(R, dtype=torch.int64, device=device)
        self.filled = 0
        if f_star is not None:
            self.gap = torch.empty(self.WINDOW, R, dtype=torch.float64, device=device)
            self.cost = torch.empty(self.WINDOW, R, dtype=torch.int64, device=device)
            self.mask = torch.empty(self.WINDOW, R, dtype=torch.bool, device=device)

    def reached(self, gap: Tensor) -> Tensor:
        """How many ladder targets ``gap`` meets, #{i : LADDER[i] >= gap}, elementwise.

        LADDER[i] = 10^(2 - i/5), so the count is floor(11 - 5 log10(gap)) but for rounding at
        the rungs; comparing with the rungs on either side of that guess makes it exact (equal to
        a binary search in the ladder, at a third of its cost on CPU).
        """
        guess = torch.floor(11.0 - 5.0 * torch.log10(gap.clamp(min=0.0))).clamp_(0, len(LADDER))
        c = guess.to(torch.int64)
        too_high = (self.rungs[c] < gap).to(torch.int64)
        too_low = (self.rungs[c + 1] >= gap).to(torch.int64)
        return c - too_high + too_low

    def observe(self, f64: Tensor, cost: Tensor, mask: Tensor) -> None:
        if self.f_star is None:
            return
        k = self.filled
        torch.sub(f64, self.f_star, out=self.gap[k]).nan_to_num_(nan=float("inf"))
        self.cost[k].copy_(cost)
        self.mask[k].copy_(mask)
        self.filled = k + 1
        if self.filled == self.WINDOW:
            self._count()

    def _count(self) -> None:
        """Add the buffered observations to the histograms."""
        k, self.filled = self.filled, 0
        if k == 0:
            return
        R = self.R
        gap, cost, mask = self.gap[:k], self.cost[:k], self.mask[:k]
        # A run climbs where LADDER[level] >= gap (rungs[level + 1] is LADDER[level]).
        climbs = ((gap <= self.rungs[self.level + 1]) & mask).any(0)
        stays = mask & ~climbs
        at = self.level * R + self.run_ids
        self.h_steps.view(-1).index_add_(0, at, stays.sum(0))
        self.h_evals.view(-1).index_add_(0, at, (cost * stays).sum(0))
        runs = climbs.nonzero().squeeze(1)  # the window's one host sync
        if runs.numel() == 0:
            return
        m = mask[:, runs]
        # The level after each observation: the most targets met so far (masked ones only).
        reached = torch.where(m, self.reached(gap[:, runs]), 0)
        level = torch.maximum(reached.cummax(0).values, self.level[runs])
        at = (level * R + runs).reshape(-1)
        m = m.to(torch.int64)
        self.h_steps.view(-1).index_add_(0, at, m.reshape(-1))
        self.h_evals.view(-1).index_add_(0, at, (cost[:, runs] * m).reshape(-1))
        self.level[runs] = level[-1]

    def first_hits(self, final_step: Tensor, final_measured: Tensor) -> tuple[Tensor, Tensor]:
        """steps_to, evals_to ``(R, 51)``, -1 where never reached.

        An iterate observed inside the loop was known once its step's first evaluation was spent
        (+1); the last iterate, measured after the budget, costs nothing more.
        """
        self._count()
        n = len(LADDER)
        # Target-major (n, R), as the histograms are, returned transposed: no strided passes.
        hit = torch.arange(n, device=self.level.device)[:, None] < self.level[None, :]
        steps_to = torch.where(hit, self.h_steps[:n].cumsum(0), -1)
        at_end = final_measured[None, :] & (steps_to == final_step[None, :])
        evals = self.h_evals[:n].cumsum(0)
        evals += ~at_end
        return steps_to.T, torch.where(hit, evals, -1).T
