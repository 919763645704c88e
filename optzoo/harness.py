"""The harness: expand a suite into cells, run each cell's whole grid as one batch, record.

A cell is one problem x one optimizer. Its runs are every hyperparameter combination x start x
seed, and they advance together: iterates ``(R, d)``, one oracle, one optimizer whose numeric
hyperparameters are per-run tensors. (Combinations that differ in a flag such as ``amsgrad``
change the program, so they run as separate batches of the same cell.) A run stops (is frozen)
when it is solved, when its loss or iterate turns NaN/Inf (diverged), or when its budget is spent;
the others go on unchanged.

Per run the harness records what ``RUN_COLUMNS`` lists; f and cost at log-spaced steps go to the
traces, and the full trajectories of the first ``suite.paths`` starts of 2-D problems to the paths.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from optzoo import catalog, metrics
from optzoo import config as config_mod
from optzoo.config import OptimizerSpec, ProblemSpec, Suite
from optzoo.errors import ConfigError
from optzoo.metrics import LADDER
from optzoo.problems.base import Problem
from optzoo.problems.oracle import Oracle
from optzoo.store import Store, cell_name, default_out

RUN_COLUMNS = {
    "problem": "problem key, e.g. rosenbrock[dim=2]",
    "category": "problem category",
    "optimizer": "optimizer name",
    "run": "run index within the cell",
    "hp_id": "index of the hyperparameter combination",
    "start_id": "0 is the problem's x0; 1.. are seeded samples from its box",
    "seed_id": "seed index (mini-batches, gradient noise); tuning runs have their own seeds",
    "split": "tune (held-out starts and seeds that choose hyperparameters) | test (reported)",
    "lr": "learning rate of the run",
    "hp": "JSON of the run's hyperparameters",
    "hp_default": "True when every hyperparameter is the optimizer's default",
    "x0": "start point",
    "x_final": "last finite iterate",
    "f_final": "f at x_final (full loss)",
    "f_best": "lowest f seen",
    "status": "why it stopped: diverged | stalled (|g| < options.grad_tol) | solved | budget",
    "solved": "whether it met the problem's success rule (reached the target, or escaped)",
    "steps": "steps taken",
    "evals": "gradient evaluations spent (f and g: 1, HVP: 2, Hessian: 2d), at most the budget",
    "nf, ng, nhvp, nh": "oracle counts",
    "steps_to": "per ladder target: first step with f - f* <= target, -1 if never",
    "evals_to": "per ladder target: gradient evaluations when first reached, -1 if never",
    "path_length": "sum of step norms",
    "displacement": "|x_final - x0|",
    "max_step": "largest step norm",
    "flat_steps": "steps with raw |g| below options.plateau_grad",
    "grad_norm_final": "raw |g| at the last gradient evaluation",
    "escape_step": "first step that left the first known saddle (escape rule), -1 if never",
    "endpoint": "where it ended: minimum, saddle, maximum, degenerate, plateau, diverged, budget",
    "min_ratio": "share of positive Hessian eigenvalues at x_final (NaN: unknown)",
    "n_neg": "number of negative Hessian eigenvalues at x_final (-1: unknown)",
    "eigenvalues": "Hessian eigenvalues at x_final, ascending (problems up to 64-D; else empty)",
}


def trace_steps(steps: int) -> list[int]:
    """Log-spaced steps 0, 1, 2, ... up to ``steps``, about 10 per decade."""
    pts = {0, steps}
    pts.update(
        int(round(v))
        for v in np.logspace(
            0, np.log10(max(steps, 1)), 10 * max(1, int(np.log10(max(steps, 1))) + 1)
        )
    )
    return sorted(p for p in pts if 0 <= p <= steps)


def stable_seed(*parts: Any) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF


@dataclass
class CellResult:
    cell: str
    runs: pd.DataFrame
    traces: pd.DataFrame
    paths: pd.DataFrame | None
    problem: dict
    meta: dict
    landscape: pd.DataFrame | None = None  # f on a grid over the box (2-D problems)


def make_problem(spec: ProblemSpec | Problem) -> Problem:
    if isinstance(spec, Problem):
        return spec
    from optzoo import problems

    return problems.get(spec.name, **spec.params)


def problem_key(spec: ProblemSpec | Problem) -> str:
    return spec.key if isinstance(spec, ProblemSpec) else spec.name


def _batched_hp(combos: list[dict], flags: frozenset[str], dtype) -> dict:
    """Stack a list of hyperparameter dicts into per-run tensors (numbers) or one value (flags)."""
    out: dict[str, Any] = {}
    for k in combos[0]:
        vals = [c[k] for c in combos]
        if k in flags or isinstance(vals[0], str | bool) or vals[0] is None:
            out[k] = vals[0]
        elif isinstance(vals[0], tuple):
            out[k] = tuple(_column([v[i] for v in vals], dtype) for i in range(len(vals[0])))
        else:
            out[k] = _column(vals, dtype)
    return out


def _column(vals: list, dtype) -> float | Tensor:
    # Equal floats still become a tensor (of one value): torch rounds `number / tensor` as a
    # reciprocal times the number, `tensor / tensor` as one division, so a batch whose lrs are
    # all equal would round differently from a mixed one. Zeros and whole numbers stay Python
    # values: the rules skip a zero term exactly as a per-run zero does, and counts are exact.
    first = vals[0]
    if all(v == first for v in vals):
        if isinstance(first, int) or first == 0:
            return first
        return torch.tensor([first], dtype=dtype)
    return torch.tensor(vals, dtype=dtype)


def run_cell(
    suite: Suite,
    pspec: ProblemSpec | Problem,
    ospec: OptimizerSpec,
    on_step: Callable[[int], None] | None = None,
    landscape: bool = False,
    only: Sequence[int] | None = None,
) -> CellResult:
    """Run one problem x optimizer cell: the whole grid as one batch per flag group.

    With ``landscape``, f is also sampled on a grid over a 2-D problem's box for the report's
    contour plots (the report never evaluates a loss itself); one cell per problem carries it.
    ``only`` restricts the cell to some of its runs (a chunk, for a distributed executor); since a
    run's record does not depend on its batch, :func:`merge_chunks` of the chunks equals the
    whole cell.
    """
    from optzoo import optimizers

    if not isinstance(suite, Suite):
        raise ConfigError(f"run_cell: suite must be a Suite, got {type(suite).__name__}")
    if isinstance(pspec, str):
        pspec = ProblemSpec(*catalog.parse_item(pspec))
    if not isinstance(pspec, ProblemSpec | Problem):
        raise ConfigError(f"run_cell: problem must be a Problem or a name, got {pspec!r}")
    if not isinstance(ospec, OptimizerSpec):
        raise ConfigError(f"run_cell: optimizer must be an OptimizerSpec, got {ospec!r}")
    problem = make_problem(pspec)
    pkey = problem_key(pspec)
    if ospec.clip_norm is not None or ospec.clip_value is not None:
        suite = suite.replace(clip_norm=ospec.clip_norm, clip_value=ospec.clip_value)
    dtype = getattr(torch, suite.dtype)
    device = torch.device(suite.device)
    cls = optimizers.get_class(ospec.name)

    combos = ospec.grid()
    starts = cell_starts(suite, problem, pkey)
    rows = _rows(suite, range(len(combos)))
    keep = range(len(rows)) if only is None else only
    t0 = time.perf_counter()
    parts = _run_rows(suite, problem, cls, combos, rows, keep, starts, dtype, device, on_step)
    # Widening needs the whole cell's tuning runs: a chunk of a cell (only=...) is not widened.
    for _ in range(suite.widen if only is None else 0):
        new = _widen(suite, ospec, cls, combos, rows, parts, problem)
        if not new:
            break
        h0, r0 = len(combos), len(rows)
        combos += new
        rows += _rows(suite, range(h0, len(combos)))
        parts += _run_rows(
            suite, problem, cls, combos, rows, range(r0, len(rows)), starts, dtype, device, on_step
        )
    wall = time.perf_counter() - t0
    recs = {
        k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k not in ("trace", "path")
    }
    order = np.argsort(recs["run"], kind="stable")
    recs = {k: v[order] for k, v in recs.items()}
    # rows[run] = (hp_id, start_id, seed_id), converted once as a whole array.
    hp_id, start_id, seed_id = np.asarray(rows, dtype=np.int64).reshape(-1, 3)[recs["run"]].T

    # Per combination, then indexed per run: no Python per run. tolist() turns a whole array
    # into the records' lists of Python floats and ints at once.
    defaults = cls.defaults
    per_hp = pd.DataFrame(
        {
            "lr": [float(c.get("lr", np.nan)) for c in combos],
            "hp": [json.dumps(c, sort_keys=True, default=list) for c in combos],
            "hp_default": [
                all(_same_value(v, defaults.get(k)) for k, v in c.items()) for c in combos
            ],
        }
    ).iloc[hp_id]
    eigenvalues = recs["eigenvalues"].tolist()
    if not recs["has_eigenvalues"].all():
        eigenvalues = [
            e if h else [] for e, h in zip(eigenvalues, recs["has_eigenvalues"], strict=True)
        ]
    runs = pd.DataFrame(
        {
            "problem": pkey,
            "category": problem.category,
            "optimizer": ospec.key,
            "run": recs["run"].astype(np.int64),
            "hp_id": hp_id,
            "start_id": start_id,
            "seed_id": seed_id,
            "split": np.where(start_id > suite.starts, "tune", "test").astype(object),
            "lr": per_hp["lr"].to_numpy(),
            "hp": per_hp["hp"].to_numpy(),
            "hp_default": per_hp["hp_default"].to_numpy(),
            "x0": starts.to(torch.float64).numpy()[start_id].tolist(),
            "x_final": recs["x_final"].tolist(),
            "f_final": recs["f_final"],
            "f_best": recs["f_best"],
            "status": recs["status"],
            "solved": recs["solved"],
            "steps": recs["steps"],
            "evals": recs["evals"],
            "nf": recs["nf"],
            "ng": recs["ng"],
            "nhvp": recs["nhvp"],
            "nh": recs["nh"],
            "steps_to": recs["steps_to"].tolist(),
            "evals_to": recs["evals_to"].tolist(),
            "path_length": recs["path_length"],
            "displacement": recs["displacement"],
            "max_step": recs["max_step"],
            "flat_steps": recs["flat_steps"],
            "grad_norm_final": recs["grad_norm_final"],
            "escape_step": recs["escape_step"],
            "endpoint": recs["endpoint"],
            "min_ratio": recs["min_ratio"],
            "n_neg": recs["n_neg"],
            "eigenvalues": eigenvalues,
        }
    )
    traces = pd.concat([p["trace"] for p in parts], ignore_index=True)
    traces.insert(0, "optimizer", ospec.key)
    traces.insert(0, "problem", pkey)
    traces = traces.sort_values(["run", "step"], kind="stable").reset_index(drop=True)
    path_parts = [p["path"] for p in parts if p["path"] is not None]
    paths = None
    if path_parts:
        paths = pd.concat(path_parts, ignore_index=True)
        paths.insert(0, "optimizer", ospec.key)
        paths.insert(0, "problem", pkey)
        paths = paths.sort_values(["run", "step"], kind="stable").reset_index(drop=True)
    info = {**problem.info(), "key": pkey, "f_saddle": problem.f_saddle()}
    meta = {
        "cell": cell_name(pkey, ospec.key),
        "problem": pkey,
        "category": problem.category,
        "optimizer": ospec.key,
        "runs": len(recs["run"]),
        "wall_s": wall,
        "point_steps": int(recs["steps"].sum()),
    }
    grid = landscape_grid(problem) if landscape else None
    return CellResult(cell_name(pkey, ospec.key), runs, traces, paths, info, meta, grid)


def cell_starts(suite: Suite, problem: Problem, pkey: str) -> Tensor:
    """The cell's start points: x0, ``suite.starts`` reported samples, then ``suite.tune_starts``
    held-out samples from a separate seeded stream (so adding tuning starts moves no other)."""
    parts = [
        problem.x0.reshape(1, -1),
        problem.sample_starts(suite.starts, seed=stable_seed(suite.seed, pkey)),
    ]
    if suite.tune_starts:
        seed = stable_seed(suite.seed, pkey, "tune")
        parts.append(problem.sample_starts(suite.tune_starts, seed=seed))
    return torch.cat(parts)


def _rows(suite: Suite, hp_ids: Sequence[int]) -> list[tuple[int, int, int]]:
    """Runs ``(hp_id, start, seed)``: hyperparameter-major, then start, then seed. Tuning runs
    (starts after ``suite.starts``) draw seeds ``suite.seeds ..``, disjoint from the reported."""
    n_s = 1 + suite.starts + suite.tune_starts
    return [
        (h, s, e + (suite.seeds if s > suite.starts else 0))
        for h in hp_ids
        for s in range(n_s)
        for e in range(suite.seeds)
    ]


def _run_rows(suite, problem, cls, combos, rows, keep, starts, dtype, device, on_step) -> list:
    """Run the rows ``keep`` as one batch per flag group (a flag changes the program)."""
    groups: dict[str, list[int]] = {}
    for i in keep:
        h = rows[i][0]
        key = json.dumps({k: combos[h].get(k) for k in sorted(cls.flags)}, default=str)
        groups.setdefault(key, []).append(i)
    return [
        _run_batch(suite, problem, cls, combos, rows, idx, starts, dtype, device, on_step)
        for idx in groups.values()
    ]


def _widen(suite: Suite, ospec: OptimizerSpec, cls, combos, rows, parts, problem) -> list[dict]:
    """New combinations one decade beyond each log axis whose best value (chosen on the tuning
    runs, by ``metrics.best_setting``) is the axis's first or last; [] when every best is inside.
    Values the optimizer refuses (e.g. beyond 1 for a rate in (0, 1)) are left out."""
    cols = ("run", "evals", "steps", "f_final", "status", "solved", "evals_to", "steps_to")
    joined = {k: np.concatenate([p[k] for p in parts]) for k in cols}
    # The first-hit columns are (runs, targets) arrays; a frame holds them as one row per run.
    tab = pd.DataFrame({k: list(v) if v.ndim > 1 else v for k, v in joined.items()})
    tab = tab[[rows[i][1] > suite.starts for i in tab["run"]]]
    if tab.empty:
        return []
    info = {**problem.info(), "f_saddle": problem.f_saddle()}
    hits = metrics.problem_hits(tab, info)
    best = metrics.best_setting(
        np.array([rows[i][0] for i in tab["run"]]),
        hits.evals[:, hits.final],
        tab["evals"].to_numpy(),
        tab["f_final"].to_numpy(dtype=float),
    )
    new: list[dict] = []
    for axis, ratio in sorted(ospec.widen.items()):
        values = sorted({c[axis] for c in combos if axis in c})
        v = combos[best].get(axis)
        if len(values) < 2 or v not in (values[0], values[-1]):
            continue
        for nv in config_mod.widened(values, ratio, upward=v == values[-1]):
            for c in combos:
                if c.get(axis) == v:
                    cand = {**c, axis: nv}
                    try:
                        cls(**cand)
                    except (ConfigError, ValueError, TypeError):
                        continue
                    if cand not in new and cand not in combos:
                        new.append(cand)
    return new


def merge_chunks(parts: Sequence[CellResult]) -> CellResult:
    """One cell from chunks of its runs (see ``run_cell(only=...)``), ordered by run."""

    def cat(frames: list, by: list[str]) -> pd.DataFrame | None:
        frames = [f for f in frames if f is not None]
        if not frames:
            return None
        out = pd.concat(frames, ignore_index=True)
        return out.sort_values(by, kind="stable").reset_index(drop=True)

    first = parts[0]
    meta = {
        **first.meta,
        "runs": sum(p.meta["runs"] for p in parts),
        "wall_s": sum(p.meta["wall_s"] for p in parts),
        "point_steps": sum(p.meta["point_steps"] for p in parts),
        "chunks": len(parts),
    }
    landscape = next((p.landscape for p in parts if p.landscape is not None), None)
    return CellResult(
        first.cell,
        cat([p.runs for p in parts], ["run"]),
        cat([p.traces for p in parts], ["run", "step"]),
        cat([p.paths for p in parts], ["run", "step"]),
        first.problem,
        meta,
        landscape,
    )


def landscape_grid(problem: Problem, n: int = 101) -> pd.DataFrame | None:
    """f on an n x n grid over a 2-D problem's box (columns x, y, f), for contour plots."""
    if problem.dim != 2:
        return None
    lo, hi = problem.bounds[0].tolist(), problem.bounds[1].tolist()
    xs = torch.linspace(lo[0], hi[0], n, dtype=torch.float64)
    ys = torch.linspace(lo[1], hi[1], n, dtype=torch.float64)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    with torch.no_grad():
        f = problem.fn(torch.stack([X.reshape(-1), Y.reshape(-1)], dim=-1))
    return pd.DataFrame(
        {
            "x": X.reshape(-1).numpy(),
            "y": Y.reshape(-1).numpy(),
            "f": f.detach().to(torch.float64).reshape(-1).cpu().numpy(),
        }
    )


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    return a == b


class _Targets:
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

    def __init__(self, R: int, f_star: float | None, device) -> None:
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
        hit = self.level[:, None] > torch.arange(n, device=self.level.device)[None, :]
        steps_to = torch.where(hit, self.h_steps[:n].cumsum(0).T, -1)
        at_end = final_measured[:, None] & (steps_to == final_step[:, None])
        evals_to = torch.where(hit, self.h_evals[:n].cumsum(0).T + (~at_end).to(torch.int64), -1)
        return steps_to, evals_to


class _OneThread:
    """Run a batch on one intra-op thread; the caller's setting is restored on exit.

    A batch is a long chain of small tensor ops (R x d elements, from a few to a few million).
    At that size a second OpenMP thread saves little, and when the cores are shared with other
    work each op waits for a descheduled thread: measured on a 2-core machine under load, 2
    threads made a 4,096-run Adam cell 9x slower and the quick suite 4x slower. One thread also
    makes a run's numbers independent of the machine's core count (MKL kernels such as the
    batched solves and matrix products of the neural problems may round differently with more
    threads). Parallelism across cells is the executors' job.
    """

    def __enter__(self) -> None:
        self.saved = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.saved)


def _run_batch(suite, problem, cls, combos, rows, idx, starts, dtype, device, on_step):
    """Advance one flag group of a cell's runs together; return per-run numpy records.

    Frozen runs keep computing (a batch is one tensor program) but their iterate is held by a
    mask and the oracle does not count them; their optimizer state is never read again. The
    batch runs on one intra-op thread (see :class:`_OneThread`).
    """
    # Pad the batch (see padded_size) with copies of its first run, frozen from the start and
    # dropped at the end: torch's vectorised CPU kernels (exp, sigmoid, tanh, ...) compute a
    # tensor's last elements on a scalar path that rounds differently, so without padding a
    # run's numbers would depend on its position in the batch and the batch's size.
    n_real = len(idx)
    R = padded_size(n_real, dtype, device)
    sel = [rows[i] for i in idx] + [rows[idx[0]]] * (R - n_real)
    hp = _batched_hp([combos[h] for h, _, _ in sel], cls.flags, dtype)
    hp = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in hp.items()}
    opt = cls(**hp)
    x = starts[[s for _, s, _ in sel]].to(dtype=dtype, device=device)
    x_start = x.clone()
    seeds = torch.tensor([suite.seed * 1_000_003 + e for _, _, e in sel], dtype=torch.int64)
    oracle = Oracle(
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
    f64_kw = {"dtype": torch.float64, "device": device}
    i64_kw = {"dtype": torch.int64, "device": device}
    targets = _Targets(R, problem.f_star, device)
    active = torch.arange(R, device=device) < n_real
    solved = torch.zeros_like(active)
    diverged = torch.zeros_like(active)
    stalled = torch.zeros_like(active)
    overspent = torch.zeros_like(active)
    steps_taken = torch.zeros(R, **i64_kw)
    f_best = torch.full((R,), float("inf"), **f64_kw)
    path_length = torch.zeros(R, **f64_kw)
    max_step = torch.zeros(R, **f64_kw)
    flat_steps = torch.zeros(R, **i64_kw)
    grad_norm = torch.full((R,), float("nan"), **f64_kw)
    escape_step = torch.full((R,), -1, **i64_kw)
    saddle = (
        torch.tensor(problem.saddles[0], dtype=dtype, device=device) if problem.saddles else None
    )
    f_saddle = problem.f_saddle() if saddle is not None else None

    tsteps = trace_steps(suite.steps)
    tpos = {t: i for i, t in enumerate(tsteps)}
    trace_f = torch.full((len(tsteps), R), float("nan"), **f64_kw)
    trace_e = torch.zeros((len(tsteps), R), **i64_kw)
    path_runs = [j for j, (_, s, e) in enumerate(sel[:n_real]) if s < suite.paths and e == 0]
    if problem.dim != 2:
        path_runs = []
    path_idx = torch.tensor(path_runs, **i64_kw)
    path_buf = (
        torch.full((suite.steps + 1, len(path_runs), 3), float("nan"), **f64_kw)
        if path_runs
        else None
    )

    def observe(t: int, xt: Tensor, f64: Tensor, evals_at: Tensor, mask: Tensor) -> None:
        """Best f, escape, traces and paths for iterate t of the runs in mask."""
        torch.where(mask & (f64 < f_best), f64, f_best, out=f_best)
        if saddle is not None:
            away = torch.linalg.vector_norm(xt - saddle, dim=-1) > problem.escape_radius
            esc = mask & (away | (f64 < f_saddle - problem.escape_drop)) & (escape_step < 0)
            escape_step.masked_fill_(esc, t)
        if t in tpos:
            k = tpos[t]
            trace_f[k] = torch.where(mask, f64, trace_f[k])
            trace_e[k] = torch.where(mask, evals_at, trace_e[k])
        if path_buf is not None:
            m = mask[path_idx]
            path_buf[t, :, :2] = torch.where(
                m[:, None], xt[path_idx].to(torch.float64), path_buf[t, :, :2]
            )
            path_buf[t, :, 2] = torch.where(m, f64[path_idx], path_buf[t, :, 2])

    with torch.no_grad(), _OneThread():
        for t in range(suite.steps):
            oracle.active = active
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
                over = active & (oracle.grad_evals > suite.evals)
                _refund(oracle, over, counts_before, evals_before)
                overspent |= over
                active = active & ~over
            evals_after = oracle.grad_evals
            targets.observe(f64, evals_after - evals_before, active & ok_f)
            observe(t, x, f64, evals_before + 1, active & ok_f)
            # x * 0 is NaN exactly where x is inf or NaN, and amax keeps a NaN: the same test as
            # ~isfinite(x).all(-1) at a third of its cost (the row reductions dominate for small d).
            stop = ~ok_f | (x_new * 0).amax(dim=-1).isnan()
            done_here = problem.solved(x, f) & ok_f
            solved |= active & done_here
            diverged |= active & ~done_here & stop
            if suite.stop_on_success:
                stop |= done_here
            if oracle.last_grad_norm is not None:
                gn = oracle.last_grad_norm.to(torch.float64)
                torch.where(active, gn, grad_norm, out=grad_norm)
                flat_steps += (active & (gn < suite.plateau_grad)).to(torch.int64)
                if suite.grad_tol > 0:
                    small = active & ~stop & (gn < suite.grad_tol)
                    stalled |= small
                    stop |= small
            if suite.evals > 0:
                stop |= evals_after >= suite.evals
            go = active & ~stop
            dx = torch.linalg.vector_norm((x_new - x).to(torch.float64), dim=-1) * go
            path_length += dx
            torch.maximum(max_step, dx, out=max_step)
            steps_taken += go.to(torch.int64)
            x = torch.where(go[:, None], x_new, x)
            active = go
            if on_step is not None:
                on_step(1)
            # One host sync every 16 steps to stop early once every run is frozen.
            if t % 16 == 15 and not bool(active.any()):
                break

        # The last iterate of the runs that used their whole budget: measured, not charged.
        f_end = problem.fn(x).to(torch.float64)
        active |= overspent
        last = active & torch.isfinite(f_end)
        diverged |= active & ~torch.isfinite(f_end)
        targets.observe(f_end, torch.zeros(R, **i64_kw), last)
        torch.where(last & (f_end < f_best), f_end, f_best, out=f_best)
        solved |= last & problem.solved(x, f_end.to(x.dtype))
        for t, k in tpos.items():
            fill = last & (steps_taken == t)
            trace_f[k] = torch.where(fill, f_end, trace_f[k])
            trace_e[k] = torch.where(fill, oracle.grad_evals, trace_e[k])
        if path_buf is not None:
            n = steps_taken[path_idx]
            m = last[path_idx]
            cols = torch.arange(len(path_runs), device=device)
            xe = torch.cat([x[path_idx].to(torch.float64), f_end[path_idx, None]], dim=1)
            path_buf[n, cols] = torch.where(m[:, None], xe, path_buf[n, cols])
        steps_to, evals_to = targets.first_hits(steps_taken, last)

    # Drop the padding.
    n = n_real
    x, x_start, f_end, f_best = x[:n], x_start[:n], f_end[:n], f_best[:n]
    solved, diverged, stalled = solved[:n], diverged[:n], stalled[:n]
    steps_taken, path_length, max_step = steps_taken[:n], path_length[:n], max_step[:n]
    flat_steps, grad_norm, escape_step = flat_steps[:n], grad_norm[:n], escape_step[:n]
    steps_to, evals_to = steps_to[:n], evals_to[:n]
    trace_f, trace_e = trace_f[:, :n], trace_e[:, :n]
    evals = oracle.grad_evals[:n]
    c = type(oracle.counts)(*(v[:n] for v in oracle.counts))
    # Why the run stopped; whether it met the success rule is its own column.
    status = np.select(
        [diverged.cpu().numpy(), stalled.cpu().numpy(), solved.cpu().numpy()],
        ["diverged", "stalled", "solved"],
        "budget",
    ).astype(object)
    x_np = x.to(torch.float64).cpu().numpy()
    run_ids = np.asarray(idx, dtype=np.int64)
    rec = {
        "run": run_ids,
        "x_final": x_np,
        "f_final": f_end.cpu().numpy(),
        "f_best": f_best.cpu().numpy(),
        "status": status,
        "solved": solved.cpu().numpy(),
        "steps": steps_taken.cpu().numpy(),
        "evals": evals.cpu().numpy(),
        "nf": c.nf.cpu().numpy(),
        "ng": c.ng.cpu().numpy(),
        "nhvp": c.nhvp.cpu().numpy(),
        "nh": c.nh.cpu().numpy(),
        "steps_to": steps_to.cpu().numpy(),
        "evals_to": evals_to.cpu().numpy(),
        "path_length": path_length.cpu().numpy(),
        "displacement": torch.linalg.vector_norm((x - x_start).to(torch.float64), dim=-1)
        .cpu()
        .numpy(),
        "max_step": max_step.cpu().numpy(),
        "flat_steps": flat_steps.cpu().numpy(),
        "grad_norm_final": grad_norm.cpu().numpy(),
        "escape_step": escape_step.cpu().numpy(),
    }
    with _OneThread():
        rec.update(endpoints(problem, x, status, suite))
    # Traces: one row per (run, trace step) that the run reached.
    tf, te, T = trace_f.cpu().numpy(), trace_e.cpu().numpy(), np.array(tsteps)
    ti, ri = np.nonzero(~np.isnan(tf))
    trace = pd.DataFrame({"run": run_ids[ri], "step": T[ti], "evals": te[ti, ri], "f": tf[ti, ri]})
    path = None
    if path_buf is not None:
        pb = path_buf.cpu().numpy()
        ti, ji = np.nonzero(~np.isnan(pb[:, :, 0]))
        path = pd.DataFrame(
            {
                "run": run_ids[np.asarray(path_runs)[ji]],
                "step": ti,
                "x": pb[ti, ji, 0],
                "y": pb[ti, ji, 1],
                "f": pb[ti, ji, 2],
            }
        )
    return {**rec, "trace": trace, "path": path}


def _refund(oracle: Oracle, over: Tensor, counts_before: list[Tensor], evals_before: Tensor):
    """Restore the counts of the runs in ``over`` to before this step (the step is not taken)."""
    for c, b in zip(oracle.counts, counts_before, strict=True):
        torch.where(over, b, c, out=c)
    oracle.restore_evals(torch.where(over, evals_before, oracle.grad_evals))


# Vector register width in bytes of each CPU capability torch dispatches to.
_VECTOR_BYTES = {"AVX512": 64, "AVX2": 32, "SVE256": 32, "DEFAULT": 16, "NO AVX": 16}


def padded_size(n: int, dtype: torch.dtype, device: torch.device) -> int:
    """How many runs a batch of ``n`` is padded to (see ``_run_batch``).

    torch's vectorised CPU loops take two vectors' worth of elements per iteration (reductions
    over an outer dimension take four) and leave the remainder to a scalar loop that rounds
    differently; a batch whose size is a multiple of four vectors never reaches it: 16 float64
    runs with AVX2, 32 with AVX-512 (twice that in float32). Measured: with multiples of 8
    float64 runs on AVX2, the time-summed gradient of ``rnn_cliff`` still depended on the batch.
    """
    if device.type != "cpu":
        return n
    width = _VECTOR_BYTES.get(torch.backends.cpu.get_cpu_capability(), 64)
    m = max(1, 4 * width // torch.empty(0, dtype=dtype).element_size())
    return -(-n // m) * m


EIGENVALUES_KEPT = 64  # store every run's end-point spectrum up to this dimension


def endpoints(problem: Problem, x: Tensor, status: np.ndarray, suite: Suite) -> dict:
    """Where each run ended: diverged, or the critical-point kind of its last iterate.

    Returns the ``endpoint`` label per run, plus ``min_ratio`` and ``n_neg`` (the Hessian's share
    of positive eigenvalues and count of negative ones at the last iterate; NaN/-1 when unknown),
    and the spectra as one ``(R, k)`` array, ``k = d`` up to ``EIGENVALUES_KEPT`` dimensions (else
    0), whose rows count where ``has_eigenvalues`` is True (the records list the others empty).
    """
    R = len(status)
    k = problem.dim if problem.dim <= EIGENVALUES_KEPT else 0
    out = {
        "endpoint": status.copy(),
        "min_ratio": np.full(R, np.nan),
        "n_neg": np.full(R, -1),
        "eigenvalues": np.full((R, k), np.nan),
        "has_eigenvalues": np.zeros(R, dtype=bool),
    }
    ok = status != "diverged"
    try:
        from optzoo import analysis
    except ImportError:
        return out
    if not ok.any():
        return out
    # Dense spectra up to a few hundred dimensions; beyond, Lanczos gives the extremes only.
    xs = x[torch.as_tensor(ok)]
    n = xs.shape[0]
    pad = padded_size(n, x.dtype, x.device) - n  # padded as in _run_batch, for the same reason
    xs = torch.cat([xs, xs[:1].expand(pad, -1)]) if pad else xs
    res = analysis.classify_batch(problem, xs, dense_max=256)
    res = {k: (v[:n] if v is not None and len(v) == n + pad else v) for k, v in res.items()}
    kinds = np.asarray(res["kind"], dtype=object)
    gnorm = np.asarray(res["grad_norm"], dtype=np.float64)
    # Not critical: a tiny gradient means a plateau; else where success was declared, or budget.
    moving = np.where(status[ok] == "solved", "solved", "budget")
    plateau = gnorm < max(suite.plateau_grad, 1e-6)
    out["endpoint"][ok] = np.where(
        kinds == "not_critical", np.where(plateau, "plateau", moving), kinds
    )
    out["min_ratio"][ok] = np.asarray(res["min_ratio"], dtype=np.float64)
    out["n_neg"][ok] = np.asarray(res["n_neg"], dtype=np.int64)
    # The whole spectrum is kept for small problems (the minimum-ratio study draws it).
    if res.get("eigenvalues") is not None and k:
        out["eigenvalues"][ok] = np.asarray(res["eigenvalues"], dtype=np.float64)
        out["has_eigenvalues"][ok] = True
    return out


# -- suites ----------------------------------------------------------------------------------
def cells(
    suite: Suite, custom: Problem | None = None
) -> list[tuple[ProblemSpec | Problem, OptimizerSpec]]:
    probs: list[ProblemSpec | Problem] = [custom] if custom is not None else list(suite.problems)
    return [(p, o) for p in probs for o in suite.optimizers]


def run_suite(
    suite: Suite,
    out: str | Path,
    *,
    custom: Problem | None = None,
    force: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    chunk_runs: int | None = None,
    workers: int | None = None,
) -> Store:
    """Run every unfinished cell of a suite into ``out``; finished cells are skipped (resume).

    ``executor`` is ``"local"`` (this machine, in ``workers`` processes: one per core by default;
    1 runs in this process) or ``"ray"`` (see :mod:`optzoo.executors`). Each
    finished cell is written atomically as it arrives. A cell that fails is recorded in
    ``cells/<cell>.failed.json`` with its error (see ``Store.failed_cells``) and the rest go on;
    rerunning retries it.
    """
    from optzoo import executors

    if executor not in executors.EXECUTORS:
        raise ConfigError(
            f"unknown executor {executor!r}; allowed: {', '.join(executors.EXECUTORS)}"
        )
    if executor == "ray":
        executors.connect(ray_address)  # a cluster out of reach is refused before any write
    store = Store(out)
    todo = cells(suite, custom)
    store.open(
        suite.to_dict() | ({"custom": custom.info()} if custom else {}),
        _digest(suite, custom),
        force=force,
    )
    first = suite.optimizers[0]
    tasks = [
        executors.Task(cell_name(problem_key(p), o.key), p, o, o is first)
        for p, o in todo
        if not store.done(cell_name(problem_key(p), o.key))
    ]
    if executor == "ray":
        stream = executors.run_ray(
            suite, tasks, ray_address, chunk_runs or executors.DEFAULT_CHUNK_RUNS
        )
    else:
        from optzoo import _pool

        stream = executors.run_local(suite, tasks, _pool.cores() if workers is None else workers)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), initial=len(todo) - len(tasks), unit="cell", dynamic_ncols=True)
    try:
        for task, res in stream:
            if isinstance(res, executors.CellFailure):
                store.write_failure(task.cell, res.detail)
                if log is not None:
                    log(f"{task.cell}: FAILED: {res}")
            else:
                store.write_cell(
                    res.cell,
                    {
                        "runs": res.runs,
                        "traces": res.traces,
                        "paths": res.paths,
                        "landscape": res.landscape,
                    },
                    res.problem,
                    res.meta,
                )
                if log is not None:
                    log(f"{res.cell}: {res.meta['runs']} runs in {res.meta['wall_s']:.2f}s")
            if bar is not None:
                if not isinstance(res, executors.CellFailure):
                    rate = res.meta["point_steps"] / max(res.meta["wall_s"], 1e-9)
                    bar.set_postfix_str(f"{task.cell}: {rate:,.0f} run-steps/s")
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return store


def _digest(suite: Suite, custom: Problem | None) -> str:
    if custom is None:
        return suite.digest()
    return (
        suite.digest()
        + "-"
        + stable_seed(json.dumps(custom.info(), sort_keys=True, default=str)).__format__("x")
    )


class Results:
    """A results directory read back: ``runs`` and ``traces`` DataFrames, the manifest."""

    def __init__(self, root: str | Path) -> None:
        self.store = Store(root)
        self.root = Path(root)
        manifest = self.store.manifest()
        if manifest is None:
            raise ConfigError(f"{root} is not a results directory (no manifest.json)")
        self.manifest = manifest
        self.runs = self.store.read("runs")
        self.traces = self.store.read("traces")

    @classmethod
    def load(cls, root: str | Path) -> Results:
        return cls(root)

    @property
    def paths(self) -> pd.DataFrame:
        return self.store.read("paths")

    def __repr__(self) -> str:
        n = len(self.store.finished_cells())
        return f"Results({str(self.root)!r}: {len(self.runs)} runs in {n} cells)"


def run(
    suite_or_path: Suite | str | Path,
    out: str | Path | None = None,
    force: bool = False,
    progress: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
) -> Results:
    """Run a suite (a :class:`Suite` or a TOML path) into ``out`` and read the results back.

    ``workers``: processes for the local executor (default: one per core; 1 = this process).
    """
    suite = suite_or_path if isinstance(suite_or_path, Suite) else config_mod.load(suite_or_path)
    out = Path(out) if out is not None else default_out(suite.name)
    run_suite(
        suite,
        out,
        force=force,
        progress=progress,
        executor=executor,
        ray_address=ray_address,
        workers=workers,
    )
    return Results(out)
