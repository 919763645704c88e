"""The step loop: one flag group of a cell's runs advanced together, and its per-run records.

Frozen runs keep computing (a batch is one tensor program) but their iterate is held by a mask
and the oracle does not count them; their optimizer state is never read again. A run is frozen
when it is solved (with ``stop_on_success``), when its loss or next iterate turns NaN/Inf
(diverged), when its gradient falls below ``grad_tol`` (stalled), or when its budget is spent.
The batch runs on one intra-op thread (see :func:`optzoo.runtime.one_thread`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from optzoo.config import Suite
from optzoo.harness.endpoints import endpoints
from optzoo.harness.grid import Row, batched_hp, trace_steps
from optzoo.harness.targets import Targets
from optzoo.optimizers.base import Optimizer
from optzoo.oscillation import StepCosine
from optzoo.problems.base import Problem
from optzoo.problems.oracle import Oracle
from optzoo.runtime import OneThread, padded_size


@dataclass(frozen=True)
class Batch:
    """What one batch runs: the runs ``idx`` of a cell (indices into ``rows``)."""

    suite: Suite
    problem: Problem
    cls: type[Optimizer]
    combos: Sequence[dict]  # the cell's hyperparameter combinations
    rows: Sequence[Row]  # the cell's runs
    idx: Sequence[int]  # this batch's runs
    starts: Tensor  # the cell's start points, (starts, d)
    dtype: torch.dtype
    device: torch.device
    on_step: Callable[[int], None] | None = None  # called with 1 after every step


@dataclass
class Status:
    """Per-run flags and step counts, ``(R,)`` each."""

    active: Tensor  # still moving
    solved: Tensor
    diverged: Tensor
    stalled: Tensor  # |g| < grad_tol
    overspent: Tensor  # its next step would have overspent the budget
    steps: Tensor  # steps taken

    @classmethod
    def start(cls, R: int, n_real: int, device: torch.device) -> Status:
        active = torch.arange(R, device=device) < n_real  # the padding is frozen from the start
        flags = [torch.zeros_like(active) for _ in range(4)]
        return cls(active, *flags, torch.zeros(R, dtype=torch.int64, device=device))


class Recorder:
    """What is recorded along the way: best f, step statistics, escape, traces and paths.

    ``observe`` takes every iterate a run reaches (with the cost spent when it was known);
    ``finish`` the last one, measured after the loop.
    """

    def __init__(self, batch: Batch, sel: list[Row], n_real: int) -> None:
        suite, problem, device = batch.suite, batch.problem, batch.device
        R = len(sel)
        f64 = {"dtype": torch.float64, "device": device}
        i64 = {"dtype": torch.int64, "device": device}
        self.problem = problem
        self.f_best = torch.full((R,), float("inf"), **f64)
        self.path_length = torch.zeros(R, **f64)
        self.max_step = torch.zeros(R, **f64)
        self.step_cos = StepCosine(R, problem.dim, device)
        self.flat_steps = torch.zeros(R, **i64)
        self.grad_norm = torch.full((R,), float("nan"), **f64)
        self.escape_step = torch.full((R,), -1, **i64)
        self.saddle = (
            torch.tensor(problem.saddles[0], dtype=batch.dtype, device=device)
            if problem.saddles
            else None
        )
        self.f_saddle = problem.f_saddle() if self.saddle is not None else None
        self.tsteps = trace_steps(suite.steps)
        self.tpos = {t: i for i, t in enumerate(self.tsteps)}
        self.trace_f = torch.full((len(self.tsteps), R), float("nan"), **f64)
        self.trace_e = torch.zeros((len(self.tsteps), R), **i64)
        runs = [j for j, (_, s, e) in enumerate(sel[:n_real]) if s < suite.paths and e == 0]
        self.path_runs = runs if problem.dim == 2 else []
        self.path_idx = torch.tensor(self.path_runs, **i64)
        self.path_buf = (
            torch.full((suite.steps + 1, len(self.path_runs), 3), float("nan"), **f64)
            if self.path_runs
            else None
        )

    def observe(self, t: int, xt: Tensor, f64: Tensor, evals_at: Tensor, mask: Tensor) -> None:
        """Best f, escape, traces and paths for iterate t of the runs in mask."""
        torch.where(mask & (f64 < self.f_best), f64, self.f_best, out=self.f_best)
        if self.saddle is not None:
            p = self.problem
            away = torch.linalg.vector_norm(xt - self.saddle, dim=-1) > p.escape_radius
            esc = mask & (away | (f64 < self.f_saddle - p.escape_drop)) & (self.escape_step < 0)
            self.escape_step.masked_fill_(esc, t)
        if t in self.tpos:
            k = self.tpos[t]
            self.trace_f[k] = torch.where(mask, f64, self.trace_f[k])
            self.trace_e[k] = torch.where(mask, evals_at, self.trace_e[k])
        if self.path_buf is not None:
            buf, m = self.path_buf, mask[self.path_idx]
            buf[t, :, :2] = torch.where(
                m[:, None], xt[self.path_idx].to(torch.float64), buf[t, :, :2]
            )
            buf[t, :, 2] = torch.where(m, f64[self.path_idx], buf[t, :, 2])

    def gradient(self, gn: Tensor, active: Tensor, plateau_grad: float) -> None:
        """The step's raw gradient norms: the last one per run, and the flat steps."""
        torch.where(active, gn, self.grad_norm, out=self.grad_norm)
        self.flat_steps += active & (gn < plateau_grad)

    def moved(self, step: Tensor, go: Tensor) -> None:
        """The step ``x_new - x`` of every run; only the runs in ``go`` take it."""
        s = step.to(torch.float64)
        norm = torch.linalg.vector_norm(s, dim=-1)
        self.step_cos.update(s, go, norm)
        dx = norm * go
        self.path_length += dx
        torch.maximum(self.max_step, dx, out=self.max_step)

    def finish(
        self, x: Tensor, f_end: Tensor, last: Tensor, steps: Tensor, grad_evals: Tensor
    ) -> None:
        """The last iterate of the runs in ``last``, reached after ``steps`` steps."""
        torch.where(last & (f_end < self.f_best), f_end, self.f_best, out=self.f_best)
        for t, k in self.tpos.items():
            fill = last & (steps == t)
            self.trace_f[k] = torch.where(fill, f_end, self.trace_f[k])
            self.trace_e[k] = torch.where(fill, grad_evals, self.trace_e[k])
        if self.path_buf is not None:
            n = steps[self.path_idx]
            m = last[self.path_idx]
            cols = torch.arange(len(self.path_runs), device=x.device)
            xe = torch.cat([x[self.path_idx].to(torch.float64), f_end[self.path_idx, None]], dim=1)
            self.path_buf[n, cols] = torch.where(m[:, None], xe, self.path_buf[n, cols])

    def trace(self, run_ids: np.ndarray) -> pd.DataFrame:
        """One row per (run, trace step) that the run reached."""
        n = len(run_ids)
        tf, te = self.trace_f[:, :n].cpu().numpy(), self.trace_e[:, :n].cpu().numpy()
        T = np.array(self.tsteps)
        ri, ti = np.nonzero(~np.isnan(tf.T))  # run-major, as the cell's frame is ordered
        return pd.DataFrame(
            {"run": run_ids[ri], "step": T[ti], "evals": te[ti, ri], "f": tf[ti, ri]}
        )

    def path(self, run_ids: np.ndarray) -> pd.DataFrame | None:
        """The kept trajectories, one row per (run, step)."""
        if self.path_buf is None:
            return None
        pb = self.path_buf.cpu().numpy()
        ji, ti = np.nonzero(~np.isnan(pb[:, :, 0].T))  # run-major
        return pd.DataFrame(
            {
                "run": run_ids[np.asarray(self.path_runs)[ji]],
                "step": ti,
                "x": pb[ti, ji, 0],
                "y": pb[ti, ji, 1],
                "f": pb[ti, ji, 2],
            }
        )


class _StallOracle(Oracle):
    """The counted oracle, also keeping per run the raw |g| measured at the step's own iterate.

    The small-gradient stop (``grad_tol``) freezes a run at the iterate the step started from,
    so it must read the gradient there. The last gradient of a step may belong to another point
    (L-BFGS ends a step with its line search's trial points); the first one measured at that
    iterate, for every optimizer that evaluates there, is the one. NaN where none was.
    """

    def begin_step(self, x: Tensor) -> None:
        self.step_x = x
        self.grad_norm_at_x = torch.full(
            (self.R,), float("nan"), dtype=torch.float64, device=self.device
        )

    def value_and_grad(self, x: Tensor, active: Tensor | None = None) -> tuple[Tensor, Tensor]:
        f, g = super().value_and_grad(x, active)
        at_x = self.grad_norm_at_x.isnan() & (x == self.step_x).all(-1)
        gn = self.last_grad_norm.to(torch.float64)
        torch.where(at_x, gn, self.grad_norm_at_x, out=self.grad_norm_at_x)
        return f, g


def run_batch(batch: Batch) -> dict:
    """Advance one flag group of a cell's runs together; return per-run numpy records, and the
    batch's ``trace`` and ``path`` frames.

    The batch is padded (see :func:`optzoo.runtime.padded_size`) with copies of its first run,
    frozen from the start and dropped at the end: torch's vectorised CPU kernels (exp, sigmoid,
    tanh, ...) compute a tensor's last elements on a scalar path that rounds differently, so
    without padding a run's numbers would depend on its position in the batch and its size.
    """
    suite, problem, device = batch.suite, batch.problem, batch.device
    n_real = len(batch.idx)
    R = padded_size(n_real, batch.dtype, device)
    sel = [batch.rows[i] for i in batch.idx] + [batch.rows[batch.idx[0]]] * (R - n_real)
    hp = batched_hp([batch.combos[h] for h, _, _ in sel], batch.cls.flags, batch.dtype)
    opt = batch.cls(**{k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in hp.items()})
    x = batch.starts[[s for _, s, _ in sel]].to(dtype=batch.dtype, device=device)
    x_start = x.clone()
    seeds = torch.tensor([suite.seed * 1_000_003 + e for _, _, e in sel], dtype=torch.int64)
    # Only a run that can stall needs the gradient at its own iterate kept apart.
    oracle = (_StallOracle if suite.grad_tol > 0 else Oracle)(
        problem,
        R,
        seeds=seeds,
        clip_norm=suite.clip_norm,
        clip_value=suite.clip_value,
        noise_std=suite.noise_std,
        batch_size=suite.batch_size,
        device=device,
    )
    state = opt.init(x)
    status = Status.start(R, n_real, device)
    rec = Recorder(batch, sel, n_real)
    targets = Targets(R, problem.f_star, device)
    with torch.no_grad(), OneThread():
        x = _steps(batch, opt, state, oracle, x, status, rec, targets)
        # The last iterate of the runs that used their whole budget: measured, not charged.
        f_end = problem.fn(x).to(torch.float64)
        status.active |= status.overspent
        last = status.active & torch.isfinite(f_end)
        status.diverged |= status.active & ~torch.isfinite(f_end)
        targets.observe(f_end, torch.zeros(R, dtype=torch.int64, device=device), last)
        status.solved |= last & problem.solved(x, f_end.to(x.dtype))
        rec.finish(x, f_end, last, status.steps, oracle.grad_evals)
        steps_to, evals_to = targets.first_hits(status.steps, last)
    return _records(
        batch, x[:n_real], x_start[:n_real], f_end, status, rec, oracle, steps_to, evals_to
    )


def _steps(
    batch: Batch,
    opt: Optimizer,
    state: object,
    oracle: Oracle,
    x: Tensor,
    st: Status,
    rec: Recorder,
    targets: Targets,
) -> Tensor:
    """Take up to ``suite.steps`` steps from ``x`` (optimizer state ``state``); return the last
    iterates (frozen runs held)."""
    suite, problem = batch.suite, batch.problem
    for t in range(suite.steps):
        oracle.active = st.active
        if suite.grad_tol > 0:
            oracle.begin_step(x)
        evals_before = oracle.grad_evals
        counts_before = [c.clone() for c in oracle.counts] if suite.evals > 0 else None
        x_new, state, f = opt.step(x, state, oracle, lr_scale=suite.lr_factor(t))
        if oracle.batch_size is not None:
            f = problem.fn(x)  # measured on the full data, not charged to the optimizer
        f64 = f.to(torch.float64)
        ok_f = torch.isfinite(f64)
        if counts_before is not None:
            # A step that overspends the budget is not taken and not charged: the run ends
            # before it, its last iterate measured after the loop like any at the budget.
            over = st.active & (oracle.grad_evals > suite.evals)
            _refund(oracle, over, counts_before, evals_before)
            st.overspent |= over
            st.active = st.active & ~over
        evals_after = oracle.grad_evals
        seen = st.active & ok_f
        targets.observe(f64, evals_after - evals_before, seen)
        rec.observe(t, x, f64, evals_before + 1, seen)
        # x * 0 is NaN exactly where x is inf or NaN, and amax keeps a NaN: the same test as
        # ~isfinite(x).all(-1) at a third of its cost (the row reductions dominate for small d).
        stop = ~ok_f | (x_new * 0).amax(dim=-1).isnan()
        done_here = problem.solved(x, f) & ok_f
        st.solved |= st.active & done_here
        st.diverged |= st.active & ~done_here & stop
        if suite.stop_on_success:
            stop |= done_here
        if oracle.last_grad_norm is not None:
            gn = oracle.last_grad_norm.to(torch.float64)
            rec.gradient(gn, st.active, suite.plateau_grad)
            if suite.grad_tol > 0:
                small = st.active & ~stop & (oracle.grad_norm_at_x < suite.grad_tol)
                st.stalled |= small
                stop |= small
        if suite.evals > 0:
            stop |= evals_after >= suite.evals
        go = st.active & ~stop
        rec.moved(x_new - x, go)
        st.steps += go  # a bool adds as 0/1 in place
        x = torch.where(go[:, None], x_new, x)
        st.active = go
        if batch.on_step is not None:
            batch.on_step(1)
        # One host sync every 16 steps to stop early once every run is frozen.
        if t % 16 == 15 and not bool(st.active.any()):
            break
    return x


def _refund(oracle: Oracle, over: Tensor, counts_before: list[Tensor], evals_before: Tensor):
    """Restore the counts of the runs in ``over`` to before this step (the step is not taken)."""
    for c, b in zip(oracle.counts, counts_before, strict=True):
        torch.where(over, b, c, out=c)
    oracle.restore_evals(torch.where(over, evals_before, oracle.grad_evals))


def _records(
    batch: Batch,
    x: Tensor,
    x_start: Tensor,
    f_end: Tensor,
    st: Status,
    rec: Recorder,
    oracle: Oracle,
    steps_to: Tensor,
    evals_to: Tensor,
) -> dict:
    """The real runs' records as numpy arrays (the padding dropped), keyed by run column."""
    n = len(batch.idx)
    flags = {f.name: getattr(st, f.name)[:n].cpu().numpy() for f in fields(Status)}
    # Why the run stopped; whether it met the success rule is its own column.
    status = np.select(
        [flags["diverged"], flags["stalled"], flags["solved"]],
        ["diverged", "stalled", "solved"],
        "budget",
    ).astype(object)
    c = oracle.counts
    run_ids = np.asarray(batch.idx, dtype=np.int64)
    out = {
        "run": run_ids,
        "x_final": x.to(torch.float64).cpu().numpy(),
        "f_final": f_end[:n].cpu().numpy(),
        "f_best": rec.f_best[:n].cpu().numpy(),
        "status": status,
        "solved": flags["solved"],
        "steps": flags["steps"],
        "evals": oracle.grad_evals[:n].cpu().numpy(),
        **{k: getattr(c, k)[:n].cpu().numpy() for k in ("nf", "ng", "nhvp", "nh")},
        "steps_to": steps_to[:n].cpu().numpy(),
        "evals_to": evals_to[:n].cpu().numpy(),
        "path_length": rec.path_length[:n].cpu().numpy(),
        "displacement": torch.linalg.vector_norm((x - x_start).to(torch.float64), dim=-1)
        .cpu()
        .numpy(),
        "max_step": rec.max_step[:n].cpu().numpy(),
        "step_cos": rec.step_cos.result()[:n].cpu().numpy(),
        "flat_steps": rec.flat_steps[:n].cpu().numpy(),
        "grad_norm_final": rec.grad_norm[:n].cpu().numpy(),
        "escape_step": rec.escape_step[:n].cpu().numpy(),
    }
    with OneThread():
        out.update(endpoints(batch.problem, x, status, batch.suite))
    return {**out, "trace": rec.trace(run_ids), "path": rec.path(run_ids)}
