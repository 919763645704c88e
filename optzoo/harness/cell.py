"""One cell, one problem x one optimizer: its whole grid run as one batch per flag group.

A cell's runs are every hyperparameter combination x start x seed (see
:mod:`optzoo.harness.grid`). Combinations that differ in a flag such as ``amsgrad`` change the
program, so they run as separate batches of the same cell. Its records follow
:data:`optzoo.schema.RUN`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from optzoo import catalog, metrics, optimizers, tuning
from optzoo import config as config_mod
from optzoo.config import OptimizerSpec, ProblemSpec, Suite
from optzoo.errors import ConfigError
from optzoo.harness import basins, grid
from optzoo.harness.endpoints import landscape_grid
from optzoo.harness.grid import Row, cell_starts, make_problem, problem_key, same_value
from optzoo.harness.loop import Batch, run_batch
from optzoo.optimizers.base import Optimizer
from optzoo.problems.base import Problem
from optzoo.schema import RUN_NAMES
from optzoo.store import cell_name


@dataclass
class CellResult:
    cell: str
    runs: pd.DataFrame
    traces: pd.DataFrame
    paths: pd.DataFrame | None
    problem: dict
    meta: dict
    landscape: pd.DataFrame | None = None  # f on a grid over the box (2-D problems)
    basins: pd.DataFrame | None = None  # ends of a grid of starts at the chosen setting (2-D)

    # The runs table's per-run arrays (x0, x_final, ...) are NumPy rows, one object each; a
    # result sent from a worker process carries each such column as one 2-D array instead.
    def __getstate__(self) -> dict:
        runs, packed = _pack_rows(self.runs)
        return {**self.__dict__, "runs": runs, "_packed": packed}

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        runs, packed = state.pop("runs"), state.pop("_packed", {})
        if packed:
            runs = runs.copy(deep=False)
            for name, (at, arr) in sorted(packed.items(), key=lambda kv: kv[1][0]):
                runs.insert(at, name, list(arr))
        self.__dict__.update({**state, "runs": runs})


def _pack_rows(runs: pd.DataFrame | None) -> tuple[pd.DataFrame | None, dict]:
    """``runs`` without its columns of equal-shaped NumPy rows, and those columns as
    ``{name: (position, 2-D array)}``."""
    packed: dict = {}
    if runs is None or not len(runs):
        return runs, packed
    for at, name in enumerate(runs.columns):
        vals = runs[name].to_numpy()
        if vals.dtype != object or not isinstance(vals[0], np.ndarray):
            continue
        shape = vals[0].shape
        if all(isinstance(v, np.ndarray) and v.shape == shape for v in vals):
            packed[name] = (at, np.stack(vals))
    return (runs.drop(columns=list(packed)) if packed else runs), packed


def entry_suite(suite: Suite, ospec: OptimizerSpec) -> Suite:
    """The suite as one optimizer entry runs it: its own clipping, if it has any, replaces the
    suite's ``[options]`` clipping."""
    if ospec.clip_norm is None and ospec.clip_value is None:
        return suite
    return suite.replace(clip_norm=ospec.clip_norm, clip_value=ospec.clip_value)


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
    suite = entry_suite(suite, ospec)
    cls = optimizers.get_class(ospec.name)
    combos = ospec.grid()
    rows = grid.rows(suite, range(len(combos)))
    cell = _Cell(suite, problem, cls, combos, rows, cell_starts(suite, problem, pkey), on_step)
    t0 = time.perf_counter()
    parts = cell.run(range(len(rows)) if only is None else only)
    # Widening needs the whole cell's tuning runs: a chunk of a cell (only=...) is not widened.
    for _ in range(suite.widen if only is None else 0):
        new = _widen(suite, ospec, cls, combos, rows, parts, problem)
        if not new:
            break
        h0, r0 = len(combos), len(rows)
        combos += new
        rows += grid.rows(suite, range(h0, len(combos)))
        parts += cell.run(range(r0, len(rows)))
    wall = time.perf_counter() - t0
    recs = _joined(parts)
    runs = _runs_frame(suite, problem, pkey, ospec, cls, combos, rows, cell.starts, recs)
    traces = _frame([p["trace"] for p in parts], pkey, ospec.key)
    paths = _frame([p["path"] for p in parts if p["path"] is not None], pkey, ospec.key)
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
    lgrid = landscape_grid(problem) if landscape else None
    res = CellResult(cell_name(pkey, ospec.key), runs, traces, paths, info, meta, lgrid)
    # The basin map needs the whole cell's tuning runs: a chunk's is added after the merge.
    return add_basin_map(suite, problem, cls, combos, res) if only is None else res


def add_basin_map(
    suite: Suite,
    problem: Problem | ProblemSpec,
    cls: type[Optimizer] | OptimizerSpec,
    combos: Sequence[dict] | None,
    res: CellResult,
) -> CellResult:
    """``res`` with its basin map (``suite.basin_grid`` starts per axis, 2-D multimodal and
    saddle problems) at the setting its tuning runs chose; unchanged where none is drawn.

    Given specs (the merge of a distributed cell's chunks), the problem is built and the grid is
    the optimizer entry's own (a chunked cell is not widened). Its time is ``meta["basin_s"]``,
    apart from the cell's ``wall_s``.
    """
    if not suite.basin_grid:
        return res
    if isinstance(cls, OptimizerSpec):
        suite = entry_suite(suite, cls)
        combos, cls = cls.grid(), optimizers.get_class(cls.name)
    problem = make_problem(problem)
    if not basins.wants_basin_map(problem):
        return res
    t0 = time.perf_counter()
    res.basins = basins.cell_basin_map(suite, problem, cls, combos, res.runs, suite.basin_grid)
    res.meta["basin_s"] = time.perf_counter() - t0
    return res


@dataclass
class _Cell:
    """What every batch of a cell shares; ``combos`` and ``rows`` grow as the grid widens."""

    suite: Suite
    problem: Problem
    cls: type[Optimizer]
    combos: list[dict]
    rows: list[Row]
    starts: torch.Tensor
    on_step: Callable[[int], None] | None

    def run(self, keep: Sequence[int]) -> list[dict]:
        """Run the rows ``keep`` as one batch per flag group (a flag changes the program)."""
        # One flag key per combination, not per run.
        flags = sorted(self.cls.flags)
        keys = [json.dumps({k: c.get(k) for k in flags}, default=str) for c in self.combos]
        groups: dict[str, list[int]] = {}
        for i in keep:
            groups.setdefault(keys[self.rows[i][0]], []).append(i)
        dtype = getattr(torch, self.suite.dtype)
        device = torch.device(self.suite.device)
        return [
            run_batch(
                Batch(
                    self.suite,
                    self.problem,
                    self.cls,
                    self.combos,
                    self.rows,
                    idx,
                    self.starts,
                    dtype,
                    device,
                    self.on_step,
                )
            )
            for idx in groups.values()
        ]


def _joined(parts: list[dict]) -> dict[str, np.ndarray]:
    """The batches' records as one array per column, ordered by run (a single batch's runs are
    already in order: its arrays are used as they are)."""
    keys = [k for k in parts[0] if k not in ("trace", "path")]
    if len(parts) == 1:
        recs = {k: parts[0][k] for k in keys}
    else:
        recs = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    run = recs["run"]
    if len(run) < 2 or bool((run[1:] > run[:-1]).all()):
        return recs
    order = np.argsort(run, kind="stable")
    return {k: v[order] for k, v in recs.items()}


def _runs_frame(
    suite: Suite,
    problem: Problem,
    pkey: str,
    ospec: OptimizerSpec,
    cls: type[Optimizer],
    combos: list[dict],
    rows: list[Row],
    starts: torch.Tensor,
    recs: dict[str, np.ndarray],
) -> pd.DataFrame:
    """The cell's runs table, columns as :data:`optzoo.schema.RUN`, from the batches' records
    (ordered by run)."""
    # rows[run] = (hp_id, start_id, seed_id), converted once as a whole array.
    hp_id, start_id, seed_id = np.asarray(rows, dtype=np.int64).reshape(-1, 3)[recs["run"]].T
    # Per combination, then indexed per run: no Python per run.
    defaults = cls.defaults
    per_hp = pd.DataFrame(
        {
            "lr": [float(c.get("lr", np.nan)) for c in combos],
            "hp": [json.dumps(c, sort_keys=True, default=list) for c in combos],
            "hp_default": [
                all(same_value(v, defaults.get(k)) for k, v in c.items()) for c in combos
            ],
        }
    ).iloc[hp_id]
    # Per-run arrays as NumPy rows of one array each: what the store writes from them is the
    # same Parquet as from lists (tested), and reading it back gives NumPy rows again.
    eig = recs["eigenvalues"]
    eigenvalues = list(eig) if eig.shape[1] else [[] for _ in range(len(eig))]
    if not recs["has_eigenvalues"].all():
        eigenvalues = [
            e if h else [] for e, h in zip(eigenvalues, recs["has_eigenvalues"], strict=True)
        ]
    columns = {
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
        "x0": list(starts.to(torch.float64).numpy()[start_id]),
        "eigenvalues": eigenvalues,
    }
    for name in ("x_final", "steps_to", "evals_to"):  # one array per run
        columns[name] = list(recs[name])
    for name in RUN_NAMES:
        if name not in columns:
            columns[name] = recs[name]
    return pd.DataFrame({name: columns[name] for name in RUN_NAMES})


def _frame(parts: list[pd.DataFrame], pkey: str, okey: str) -> pd.DataFrame | None:
    """Batches' traces or paths as one frame of the cell, ordered by run and step."""
    if not parts:
        return None
    out = pd.concat(parts, ignore_index=True)
    out.insert(0, "optimizer", okey)
    out.insert(0, "problem", pkey)
    run, step = out["run"].to_numpy(), out["step"].to_numpy()
    after = (run[1:] > run[:-1]) | ((run[1:] == run[:-1]) & (step[1:] > step[:-1]))
    if after.all():  # already in order (one batch's frame is built run-major)
        return out
    return out.sort_values(["run", "step"], kind="stable").reset_index(drop=True)


def _widen(
    suite: Suite,
    ospec: OptimizerSpec,
    cls: type[Optimizer],
    combos: list[dict],
    rows: list[Row],
    parts: list[dict],
    problem: Problem,
) -> list[dict]:
    """New combinations one decade beyond each log axis whose best value, or a value tied with it
    (on the tuning runs, ``tuning.best_settings``), is the axis's first or last; [] when every
    such value is inside.
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
    tied = tuning.best_settings(
        np.array([rows[i][0] for i in tab["run"]]),
        hits.evals[:, hits.final],
        tab["evals"].to_numpy(),
        tab["f_final"].to_numpy(dtype=float),
    )
    new: list[dict] = []
    for axis, ratio in sorted(ospec.widen.items()):
        values = sorted({c[axis] for c in combos if axis in c})
        if len(values) < 2:
            continue
        at = {combos[h].get(axis) for h in tied}
        for v in (values[0], values[-1]):
            if v not in at:
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
