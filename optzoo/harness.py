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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from optzoo import config as config_mod
from optzoo.config import OptimizerSpec, ProblemSpec, Suite
from optzoo.errors import ConfigError
from optzoo.optimizers.base import where_state
from optzoo.problems.base import Problem
from optzoo.problems.oracle import Oracle
from optzoo.store import Store, cell_name

# The COCO target ladder: f - f* <= 10^2 ... 10^-8, 51 values, step 10^0.2.
LADDER = np.array([10.0 ** (2 - 0.2 * i) for i in range(51)])

RUN_COLUMNS = {
    "problem": "problem key, e.g. rosenbrock[dim=2]",
    "category": "problem category",
    "optimizer": "optimizer name",
    "run": "run index within the cell",
    "hp_id": "index of the hyperparameter combination",
    "start_id": "0 is the problem's x0; 1.. are seeded samples from its box",
    "seed_id": "seed index (mini-batches, gradient noise)",
    "lr": "learning rate of the run",
    "hp": "JSON of the run's hyperparameters",
    "hp_default": "True when every hyperparameter is the optimizer's default",
    "x0": "start point",
    "x_final": "last finite iterate",
    "f_final": "f at x_final (full loss)",
    "f_best": "lowest f seen",
    "status": "solved | diverged | stalled (|g| < options.grad_tol) | budget",
    "steps": "steps taken",
    "evals": "gradient evaluations spent (f and g: 1, HVP: 2, Hessian: d)",
    "nf, ng, nhvp, nh": "oracle counts",
    "steps_to": "per ladder target: first step with f - f* <= target, -1 if never",
    "evals_to": "per ladder target: gradient evaluations when first reached, -1 if never",
    "path_length": "sum of step norms",
    "displacement": "|x_final - x0|",
    "max_step": "largest step norm",
    "flat_steps": "steps with raw |g| below options.plateau_grad",
    "grad_norm_final": "raw |g| at the last gradient evaluation",
    "escape_step": "first step that left the first known saddle (escape rule), -1 if never",
    "endpoint": "where the run ended: minimum, saddle, maximum, degenerate, plateau, diverged, budget",
}


def trace_steps(steps: int) -> list[int]:
    """Log-spaced steps 0, 1, 2, ... up to ``steps``, about 10 per decade."""
    pts = {0, steps}
    pts.update(int(round(v)) for v in np.logspace(0, np.log10(max(steps, 1)), 10 * max(1, int(np.log10(max(steps, 1))) + 1)))
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
            out[k] = tuple(
                _column([v[i] for v in vals], dtype) for i in range(len(vals[0]))
            )
        else:
            out[k] = _column(vals, dtype)
    return out


def _column(vals: list, dtype) -> float | Tensor:
    if all(v == vals[0] for v in vals):
        return vals[0]
    return torch.tensor(vals, dtype=dtype)


def run_cell(
    suite: Suite,
    pspec: ProblemSpec | Problem,
    ospec: OptimizerSpec,
    on_step: Callable[[int], None] | None = None,
) -> CellResult:
    """Run one problem x optimizer cell: the whole grid as one batch per flag group."""
    from optzoo import optimizers

    problem = make_problem(pspec)
    pkey = problem_key(pspec)
    dtype = getattr(torch, suite.dtype)
    device = torch.device(suite.device)
    cls = optimizers.get_class(ospec.name)

    combos = ospec.grid()
    starts = torch.cat(
        [
            problem.x0.reshape(1, -1),
            problem.sample_starts(suite.starts, seed=stable_seed(suite.seed, pkey)),
        ]
    )
    n_s, n_seed = starts.shape[0], suite.seeds
    # Runs: hyperparameter-major, then start, then seed.
    rows = [(h, s, e) for h in range(len(combos)) for s in range(n_s) for e in range(n_seed)]
    # Group runs by their flags: each group is one tensor program.
    groups: dict[str, list[int]] = {}
    for i, (h, _, _) in enumerate(rows):
        key = json.dumps({k: combos[h].get(k) for k in sorted(cls.flags)}, default=str)
        groups.setdefault(key, []).append(i)

    t0 = time.perf_counter()
    parts = []
    for idx in groups.values():
        parts.append(_run_batch(suite, problem, cls, combos, rows, idx, starts, dtype, device, on_step))
    wall = time.perf_counter() - t0
    recs = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k not in ("trace", "path")}
    order = np.argsort(recs["run"], kind="stable")
    recs = {k: v[order] for k, v in recs.items()}

    defaults = cls.defaults
    hp_json = [json.dumps(combos[h], sort_keys=True, default=list) for h, _, _ in rows]
    runs = pd.DataFrame(
        {
            "problem": pkey,
            "category": problem.category,
            "optimizer": ospec.name,
            "run": recs["run"].astype(np.int64),
            "hp_id": np.array([r[0] for r in rows], dtype=np.int64),
            "start_id": np.array([r[1] for r in rows], dtype=np.int64),
            "seed_id": np.array([r[2] for r in rows], dtype=np.int64),
            "lr": np.array([float(combos[h].get("lr", np.nan)) for h, _, _ in rows]),
            "hp": hp_json,
            "hp_default": [
                all(_same_value(v, defaults.get(k)) for k, v in combos[h].items()) for h, _, _ in rows
            ],
            "x0": [starts[s].tolist() for _, s, _ in rows],
            "x_final": list(recs["x_final"]),
            "f_final": recs["f_final"],
            "f_best": recs["f_best"],
            "status": recs["status"],
            "steps": recs["steps"],
            "evals": recs["evals"],
            "nf": recs["nf"],
            "ng": recs["ng"],
            "nhvp": recs["nhvp"],
            "nh": recs["nh"],
            "steps_to": list(recs["steps_to"]),
            "evals_to": list(recs["evals_to"]),
            "path_length": recs["path_length"],
            "displacement": recs["displacement"],
            "max_step": recs["max_step"],
            "flat_steps": recs["flat_steps"],
            "grad_norm_final": recs["grad_norm_final"],
            "escape_step": recs["escape_step"],
            "endpoint": recs["endpoint"],
        }
    )
    runs["x_final"] = runs["x_final"].map(lambda a: [float(v) for v in a])
    runs["steps_to"] = runs["steps_to"].map(lambda a: [int(v) for v in a])
    runs["evals_to"] = runs["evals_to"].map(lambda a: [int(v) for v in a])
    traces = pd.concat([p["trace"] for p in parts], ignore_index=True)
    traces.insert(0, "optimizer", ospec.name)
    traces.insert(0, "problem", pkey)
    traces = traces.sort_values(["run", "step"], kind="stable").reset_index(drop=True)
    path_parts = [p["path"] for p in parts if p["path"] is not None]
    paths = None
    if path_parts:
        paths = pd.concat(path_parts, ignore_index=True)
        paths.insert(0, "optimizer", ospec.name)
        paths.insert(0, "problem", pkey)
        paths = paths.sort_values(["run", "step"], kind="stable").reset_index(drop=True)
    info = {**problem.info(), "key": pkey, "f_saddle": problem.f_saddle()}
    meta = {
        "cell": cell_name(pkey, ospec.name),
        "problem": pkey,
        "category": problem.category,
        "optimizer": ospec.name,
        "runs": len(rows),
        "wall_s": wall,
        "point_steps": int(recs["steps"].sum()),
    }
    return CellResult(cell_name(pkey, ospec.name), runs, traces, paths, info, meta)


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _run_batch(suite, problem, cls, combos, rows, idx, starts, dtype, device, on_step):
    """Advance one flag group of a cell's runs together; return per-run numpy records."""
    R = len(idx)
    sel = [rows[i] for i in idx]
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
    f_star = problem.f_star
    ladder = torch.tensor(LADDER, dtype=torch.float64, device=device)
    ints = {"dtype": torch.int64, "device": device}
    steps_to = torch.full((R, len(LADDER)), -1, **ints)
    evals_to = torch.full((R, len(LADDER)), -1, **ints)
    active = torch.ones(R, dtype=torch.bool, device=device)
    solved = torch.zeros_like(active)
    diverged = torch.zeros_like(active)
    stalled = torch.zeros_like(active)
    steps_taken = torch.zeros(R, **ints)
    f_best = torch.full((R,), float("inf"), dtype=torch.float64, device=device)
    path_length = torch.zeros(R, dtype=torch.float64, device=device)
    max_step = torch.zeros_like(path_length)
    flat_steps = torch.zeros(R, **ints)
    grad_norm = torch.full((R,), float("nan"), dtype=torch.float64, device=device)
    escape_step = torch.full((R,), -1, **ints)
    saddle = (
        torch.tensor(problem.saddles[0], dtype=dtype, device=device) if problem.saddles else None
    )
    f_saddle = problem.f_saddle() if saddle is not None else None

    tsteps = trace_steps(suite.steps)
    tpos = {t: i for i, t in enumerate(tsteps)}
    trace_f = torch.full((len(tsteps), R), float("nan"), dtype=torch.float64, device=device)
    trace_e = torch.zeros((len(tsteps), R), **ints)
    path_runs = [j for j, (_, s, e) in enumerate(sel) if s < suite.paths and e == 0] if problem.dim == 2 else []
    path_buf = (
        torch.full((suite.steps + 1, len(path_runs), 3), float("nan"), dtype=torch.float64, device=device)
        if path_runs
        else None
    )
    path_idx = torch.tensor(path_runs, dtype=torch.int64, device=device)

    def observe(t: int, xt: Tensor, ft: Tensor, evals_at: Tensor, mask: Tensor) -> None:
        """Record iterate t of the runs in mask: targets, best f, escape, traces, paths."""
        f64 = ft.to(torch.float64)
        if f_star is not None:
            hit = mask[:, None] & ((f64 - f_star)[:, None] <= ladder[None, :]) & (steps_to < 0)
            steps_to.masked_fill_(hit, t)
            torch.where(hit, evals_at[:, None], evals_to, out=evals_to)
        torch.where(mask & (f64 < f_best), f64, f_best, out=f_best)
        if saddle is not None:
            esc = (f64 < f_saddle - problem.escape_drop) | (
                torch.linalg.vector_norm(xt - saddle, dim=-1) > problem.escape_radius
            )
            escape_step.masked_fill_(mask & esc & (escape_step < 0), t)
        if t in tpos:
            k = tpos[t]
            trace_f[k] = torch.where(mask, f64, trace_f[k])
            trace_e[k] = torch.where(mask, evals_at, trace_e[k])
        if path_buf is not None:
            path_buf[t, :, :2] = torch.where(mask[path_idx, None], xt[path_idx].to(torch.float64), path_buf[t, :, :2])
            path_buf[t, :, 2] = torch.where(mask[path_idx], f64[path_idx], path_buf[t, :, 2])

    with torch.no_grad():
        for t in range(suite.steps):
            oracle.active = active
            evals_before = oracle.grad_evals.clone()
            x_new, state_new, f = opt.step(x, state, oracle, lr_scale=suite.lr_factor(t))
            if problem.stochastic and oracle.batch_size is not None:
                f = problem.fn(x)  # measured on the full data, not charged to the optimizer
            small_g = torch.zeros_like(active)
            if oracle.last_grad_norm is not None:
                gn = oracle.last_grad_norm.to(torch.float64)
                torch.where(active, gn, grad_norm, out=grad_norm)
                flat_steps += (active & (gn < suite.plateau_grad)).to(torch.int64)
                if suite.grad_tol > 0:
                    small_g = gn < suite.grad_tol
            bad_f = ~torch.isfinite(f)
            observe(t, x, f, evals_before + 1, active & ~bad_f)
            done_here = problem.solved(x, f) & ~bad_f
            bad_x = ~torch.isfinite(x_new).all(dim=-1)
            go = active & ~bad_f & ~done_here & ~bad_x & ~small_g
            if suite.evals > 0:
                go &= oracle.grad_evals < suite.evals
            solved |= active & done_here
            stalled |= active & small_g & ~done_here & ~bad_f
            diverged |= active & ~done_here & (bad_f | bad_x)
            dx = torch.linalg.vector_norm((x_new - x).to(torch.float64), dim=-1)
            dx = torch.where(go, dx, torch.zeros_like(dx))
            path_length += dx
            torch.maximum(max_step, dx, out=max_step)
            steps_taken += go.to(torch.int64)
            x = torch.where(go[:, None], x_new, x)
            state = where_state(go, state_new, state)
            active = go
            if on_step is not None:
                on_step(1)
            if t % 16 == 15 and not bool(active.any()):
                break

        # The last iterate of the runs still going: measure, record, test for success.
        f_end = problem.fn(x)
        fin = torch.isfinite(f_end)
        last = active & fin
        # Each still-active run's last iterate is iterate `steps_taken[r]`.
        if f_star is not None:
            hit = last[:, None] & ((f_end.to(torch.float64) - f_star)[:, None] <= ladder[None, :]) & (steps_to < 0)
            steps_to = torch.where(hit, steps_taken[:, None], steps_to)
            evals_to = torch.where(hit, oracle.grad_evals[:, None], evals_to)
        torch.where(last & (f_end.to(torch.float64) < f_best), f_end.to(torch.float64), f_best, out=f_best)
        solved |= last & problem.solved(x, f_end)
        diverged |= active & ~fin
        for t, k in tpos.items():
            fill = last & (steps_taken == t)
            trace_f[k] = torch.where(fill, f_end.to(torch.float64), trace_f[k])
            trace_e[k] = torch.where(fill, oracle.grad_evals, trace_e[k])
        if path_buf is not None:
            # Trajectories are kept up to each run's last iterate.
            for j, r in enumerate(path_runs):
                n = int(steps_taken[r])
                path_buf[n, j, :2] = x[r].to(torch.float64)
                path_buf[n, j, 2] = f_end[r].to(torch.float64)

    status = np.select(
        [solved.cpu().numpy(), diverged.cpu().numpy(), stalled.cpu().numpy()],
        ["solved", "diverged", "stalled"],
        "budget",
    ).astype(object)
    c = oracle.counts
    run_ids = np.asarray(idx, dtype=np.int64)
    f_final = f_end.to(torch.float64).cpu().numpy()
    x_np = x.to(torch.float64).cpu().numpy()
    rec = {
        "run": run_ids,
        "x_final": np.array(list(x_np), dtype=object) if R else np.zeros(0, dtype=object),
        "f_final": f_final,
        "f_best": f_best.cpu().numpy(),
        "status": status,
        "steps": steps_taken.cpu().numpy(),
        "evals": oracle.grad_evals.cpu().numpy(),
        "nf": c.nf.cpu().numpy(),
        "ng": c.ng.cpu().numpy(),
        "nhvp": c.nhvp.cpu().numpy(),
        "nh": c.nh.cpu().numpy(),
        "steps_to": np.array(list(steps_to.cpu().numpy()), dtype=object),
        "evals_to": np.array(list(evals_to.cpu().numpy()), dtype=object),
        "path_length": path_length.cpu().numpy(),
        "displacement": torch.linalg.vector_norm((x - x_start).to(torch.float64), dim=-1).cpu().numpy(),
        "max_step": max_step.cpu().numpy(),
        "flat_steps": flat_steps.cpu().numpy(),
        "grad_norm_final": grad_norm.cpu().numpy(),
        "escape_step": escape_step.cpu().numpy(),
    }
    rec["endpoint"] = endpoints(problem, x, status, suite)
    # Traces: one row per (run, trace step) that the run reached.
    tf = trace_f.cpu().numpy()
    te = trace_e.cpu().numpy()
    T = np.array(tsteps)
    keep = ~np.isnan(tf)
    ti, ri = np.nonzero(keep)
    trace = pd.DataFrame({"run": run_ids[ri], "step": T[ti], "evals": te[ti, ri], "f": tf[ti, ri]})
    path = None
    if path_buf is not None:
        pb = path_buf.cpu().numpy()
        ti, ji = np.nonzero(~np.isnan(pb[:, :, 2]) | ~np.isnan(pb[:, :, 0]))
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


def endpoints(problem: Problem, x: Tensor, status: np.ndarray, suite: Suite) -> np.ndarray:
    """Where each run ended: diverged, or the critical-point kind of its last iterate."""
    out = status.copy()
    ok = status != "diverged"
    if not ok.any():
        return out
    try:
        from optzoo import analysis
    except ImportError:
        return out
    res = analysis.classify_batch(problem, x[torch.as_tensor(ok)])
    kinds = np.asarray(res["kind"], dtype=object)
    # A point that is not critical but has a tiny gradient is on a plateau; otherwise the budget
    # ran out (or, for a solved run, it is simply where success was declared).
    gnorm = np.asarray(res["grad_norm"])
    label = np.where(
        kinds == "not_critical",
        np.where(gnorm < max(suite.plateau_grad, 1e-6), "plateau", np.where(status[ok] == "solved", "solved", "budget")),
        kinds,
    )
    out[ok] = label
    return out


# -- suites ----------------------------------------------------------------------------------
def cells(suite: Suite, custom: Problem | None = None) -> list[tuple[ProblemSpec | Problem, OptimizerSpec]]:
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
) -> Store:
    """Run every unfinished cell of a suite into ``out``; finished cells are skipped (resume)."""
    store = Store(out)
    todo = cells(suite, custom)
    store.open(suite.to_dict() | ({"custom": custom.info()} if custom else {}), _digest(suite, custom), force=force)
    pending = [(p, o) for p, o in todo if not store.done(cell_name(problem_key(p), o.name))]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), initial=len(todo) - len(pending), unit="cell", dynamic_ncols=True)
    try:
        for p, o in pending:
            if bar is not None:
                bar.set_description(f"{problem_key(p)} x {o.name}")
            t0 = time.perf_counter()
            res = run_cell(suite, p, o)
            store.write_cell(res.cell, {"runs": res.runs, "traces": res.traces, "paths": res.paths}, res.problem, res.meta)
            if bar is not None:
                rate = res.meta["point_steps"] / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix_str(f"{rate:,.0f} run-steps/s")
                bar.update(1)
            elif log is not None:
                log(f"{res.cell}: {res.meta['runs']} runs in {res.meta['wall_s']:.2f}s")
    finally:
        if bar is not None:
            bar.close()
    return store


def _digest(suite: Suite, custom: Problem | None) -> str:
    if custom is None:
        return suite.digest()
    return suite.digest() + "-" + stable_seed(json.dumps(custom.info(), sort_keys=True, default=str)).__format__("x")


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
        return f"Results({str(self.root)!r}: {len(self.runs)} runs in {len(self.store.finished_cells())} cells)"


def run(suite_or_path: Suite | str | Path, out: str | Path | None = None, force: bool = False, progress: bool = False) -> Results:
    """Run a suite (a :class:`Suite` or a TOML path) into ``out`` and read the results back."""
    suite = suite_or_path if isinstance(suite_or_path, Suite) else config_mod.load(suite_or_path)
    out = Path(out) if out is not None else Path("results") / suite.name
    run_suite(suite, out, force=force, progress=progress)
    return Results(out)
