"""Suites: expand a suite into cells, run them on an executor, write each into the store.

``run`` is the checked public entry (a :class:`~optzoo.config.Suite`, which may hold Problem
objects, a TOML path, or a shipped suite's name) and returns the :class:`Results`;
``run_suite`` is what the command line calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from optzoo import config, executors
from optzoo.config import OptimizerSpec, ProblemSpec, Suite
from optzoo.errors import ConfigError
from optzoo.harness import CellResult, problem_key, stable_seed
from optzoo.problems.base import Problem
from optzoo.runtime import cores
from optzoo.store import Store, cell_name, default_out


def cells(
    suite: Suite, custom: Problem | None = None
) -> list[tuple[ProblemSpec | Problem, OptimizerSpec]]:
    """The suite's cells, problem-major: every problem (or only ``custom``) x every optimizer."""
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
        stream = executors.run_local(suite, tasks, cores() if workers is None else workers)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), initial=len(todo) - len(tasks), unit="cell", dynamic_ncols=True)
    try:
        for task, res in stream:
            _write(store, task, res, log)
            if bar is not None:
                if not isinstance(res, executors.CellFailure):
                    rate = res.meta["point_steps"] / max(res.meta["wall_s"], 1e-9)
                    bar.set_postfix_str(f"{task.cell}: {rate:,.0f} run-steps/s")
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return store


def _write(
    store: Store,
    task: executors.Task,
    res: CellResult | executors.CellFailure,
    log: Callable[[str], None] | None,
) -> None:
    """Store a finished cell, or record its failure."""
    if isinstance(res, executors.CellFailure):
        store.write_failure(task.cell, res.detail)
        if log is not None:
            log(f"{task.cell}: FAILED: {res}")
        return
    frames = {
        "runs": res.runs,
        "traces": res.traces,
        "paths": res.paths,
        "landscape": res.landscape,
        "basins": res.basins,
    }
    store.write_cell(res.cell, frames, res.problem, res.meta)
    if log is not None:
        log(f"{res.cell}: {res.meta['runs']} runs in {res.meta['wall_s']:.2f}s")


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
    suite: Suite | str | Path,
    out: str | Path | None = None,
    *,
    force: bool = False,
    progress: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
) -> Results:
    """Run a suite into ``out`` (default ``runs/<suite name>``) and read the results back.

    ``suite`` is a :class:`Suite` (its problems may be Problem objects), a TOML path, or the
    name of a shipped suite (``"quick"``). Finished cells in ``out`` are kept (resume).
    ``workers``: processes for the local executor (default: one per core; 1 = this process).
    """
    if isinstance(suite, str | Path) and not isinstance(suite, Suite):
        shipped = config.configs_dir() / f"{suite}.toml"
        suite = config.load(shipped if not Path(suite).exists() and shipped.exists() else suite)
    if not isinstance(suite, Suite):
        raise ConfigError(
            f"run: suite must be a Suite, a TOML path or a shipped suite's name, got "
            f"{type(suite).__name__}"
        )
    if out is not None and not isinstance(out, str | Path):
        raise ConfigError(f"run: out must be a path, got {type(out).__name__}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise ConfigError(f"run: workers must be a whole number >= 1, got {workers!r}")
    if workers is not None and workers < 1:
        raise ConfigError(f"run: workers must be a whole number >= 1, got {workers!r}")
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
