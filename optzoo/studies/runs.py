"""Running a batch of starts for a study: per-step records of R runs of one optimizer.

The harness (:func:`optzoo.harness.run_cell`) records each run's summary; a study often needs
the whole trajectory instead (escape times, orders of convergence, where Newton landed). Here
one optimizer advances the iterates ``(R, d)`` of R starts together through the counted
:class:`~optzoo.problems.oracle.Oracle`, exactly as the harness steps them, and every step's f,
raw |g|, cost and (optionally) iterate is kept. A run whose iterate turns non-finite is frozen
at its last finite iterate and flagged ``diverged`` (DESIGN.md, principle 5).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from optzoo.optimizers.base import Optimizer
from optzoo.problems.base import Problem
from optzoo.problems.oracle import Oracle


@dataclass
class Trajectories:
    """Per-step records of R runs; row t is the iterate before step t (row 0 the start)."""

    f: Tensor  # (T + 1, R) f(x_t); the last row is evaluated after the loop, uncounted
    grad_norm: Tensor  # (T + 1, R) raw |g(x_t)|
    evals: Tensor  # (T + 1, R) gradient evaluations spent before x_t was reached
    x: Tensor | None  # (T + 1, R, d) iterates, when asked for
    x_final: Tensor  # (R, d) last finite iterate
    diverged: Tensor  # (R,) bool
    seconds: float  # wall time of the step loop
    at: dict[int, Tensor] = field(default_factory=dict)  # step -> (R, d) iterates asked for


def run_starts(
    problem: Problem,
    optimizer: Optimizer,
    starts: Tensor,
    steps: int,
    *,
    noise_std: float = 0.0,
    seeds: Tensor | None = None,
    keep_x: bool = False,
    snapshots: tuple[int, ...] = (),
) -> Trajectories:
    """Run ``optimizer`` from every row of ``starts (R, d)`` for ``steps`` steps, batched.

    ``noise_std`` adds the oracle's seeded Gaussian gradient noise (per run ``seeds``); the
    recorded |g| is the raw gradient's. ``snapshots`` names steps whose iterates are kept in
    ``Trajectories.at`` (without keeping them all). One intra-op thread, as in the harness: the
    machine's
    cores are shared and small tensor programs gain nothing from a second thread.
    """
    x = starts.to(torch.float64).clone()
    R, d = x.shape
    oracle = Oracle(problem, R, seeds=seeds, noise_std=noise_std)
    state = optimizer.init(x)
    f_rec = torch.full((steps + 1, R), float("nan"), dtype=torch.float64)
    g_rec = torch.full_like(f_rec, float("nan"))
    e_rec = torch.zeros((steps + 1, R), dtype=torch.int64)
    x_rec = torch.empty((steps + 1, R, d), dtype=torch.float64) if keep_x else None
    live = torch.ones(R, dtype=torch.bool)
    wanted, at = set(snapshots), {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    try:
        with torch.no_grad():
            for t in range(steps):
                oracle.active = live
                e_rec[t] = oracle.grad_evals
                if x_rec is not None:
                    x_rec[t] = x
                if t in wanted:
                    at[t] = x.clone()
                x_new, state, f = optimizer.step(x, state, oracle)
                f_rec[t] = torch.where(live, f, f_rec[t - 1] if t else f)
                g_rec[t] = torch.where(live, oracle.last_grad_norm, g_rec[t - 1] if t else 0.0)
                ok = torch.isfinite(x_new).all(-1) & torch.isfinite(f)
                live = live & ok
                x = torch.where(live[:, None], x_new, x)
        seconds = time.perf_counter() - t0
        e_rec[steps] = oracle.grad_evals
        if x_rec is not None:
            x_rec[steps] = x
        if steps in wanted:
            at[steps] = x.clone()
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            f_end = problem.fn(xr)
            (g_end,) = torch.autograd.grad(f_end.sum(), xr)
        f_rec[steps] = f_end.detach()
        g_rec[steps] = torch.linalg.vector_norm(g_end, dim=-1)
    finally:
        torch.set_num_threads(threads)
    return Trajectories(f_rec, g_rec, e_rec, x_rec, x, ~live, seconds, at)


def grid_starts(problem: Problem, n: int, margin: float = 0.0) -> Tensor:
    """An ``n x n`` grid of starts over a 2-D problem's box, ``(n * n, 2)``, x fastest.

    ``margin`` shrinks the box by that fraction on each side, so that no start sits on its edge.
    """
    lo, hi = problem.bounds
    span = hi - lo
    lo, hi = lo + margin * span, hi - margin * span
    xs = torch.linspace(float(lo[0]), float(hi[0]), n, dtype=torch.float64)
    ys = torch.linspace(float(lo[1]), float(hi[1]), n, dtype=torch.float64)
    Y, X = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([X.reshape(-1), Y.reshape(-1)], dim=-1)


def distinct(points: Tensor, tol: float) -> Tensor:
    """Indices of the first of each cluster of rows of ``points (n, d)`` closer than ``tol``.

    A row is kept when no earlier kept row lies within ``tol`` (Euclidean): a greedy
    deduplication of critical points found from many starts.
    """
    if points.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64)
    dist = torch.cdist(points, points)
    keep: list[int] = []
    for i in range(points.shape[0]):
        if not keep or bool((dist[i, keep] >= tol).all()):
            keep.append(i)
    return torch.tensor(keep, dtype=torch.int64)
