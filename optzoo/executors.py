"""Where cells run: on this machine (``local``, the default: one worker process per core, or this
process alone) or as tasks on a Ray cluster (``ray``).

Either way the driver receives finished cells and writes each to the store atomically, so resume
and regeneration do not care which executor produced a result. An executor yields
``(task, CellResult)`` or ``(task, exception)`` per cell; a failed cell is recorded as failed and
the others still finish.

On Ray, each cell is a task; a cell with more than ``chunk_runs`` runs is split into chunks of
runs that can go to different machines. Batch invariance makes the merged chunks equal to the
unsplit cell. A worker that dies is retried by Ray (``max_retries``); a cell whose task keeps
failing comes back as an exception.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from typing import NamedTuple

from optzoo import _pool, runtime
from optzoo.config import OptimizerSpec, ProblemSpec, Suite
from optzoo.errors import ConfigError
from optzoo.harness import CellResult, add_basin_map, merge_chunks, run_cell
from optzoo.problems.base import Problem

EXECUTORS = ("local", "ray")
DEFAULT_CHUNK_RUNS = 1024


class Task(NamedTuple):
    """One cell to run: its store name, problem, optimizer, and whether it carries the grid."""

    cell: str
    problem: ProblemSpec | Problem
    optimizer: OptimizerSpec
    landscape: bool


class CellFailure(Exception):
    """A cell that could not be run; ``detail`` holds the error as the worker saw it."""

    def __init__(self, cell: str, detail: str) -> None:
        super().__init__(f"{cell}: {detail.strip().splitlines()[-1] if detail.strip() else '?'}")
        self.cell = cell
        self.detail = detail


def n_runs(suite: Suite, task: Task) -> int:
    """How many runs a cell has before any widening: combinations x (reported + tuning starts)
    x seeds."""
    return len(task.optimizer.grid()) * (suite.starts + 1 + suite.tune_starts) * suite.seeds


def require_ray() -> None:
    """Refuse ``--executor ray`` up front, as a user error, when Ray is not installed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray, which is not installed; install it with: "
            'pip install -e ".[ray]"'
        ) from None


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at ``address`` (default ``$RAY_ADDRESS``; ``auto`` finds the one
    started on this machine by ``ray start --head``), or start a local instance.

    A cluster that cannot be reached is the user's error, refused in one line before anything is
    written.
    """
    require_ray()
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ConfigError(
            f"cannot reach a Ray cluster at {address!r} ({type(e).__name__}); on the head node "
            "use RAY_ADDRESS=auto after `ray start --head`, or unset it for a local instance"
        ) from None


def _picklable(obj: object) -> bool:
    import pickle

    try:
        pickle.dumps(obj)
    except Exception:
        return False
    return True


def _local_cell(suite: Suite, task: Task) -> CellResult | CellFailure | ConfigError:
    """One cell in a worker process: its result, a CellFailure, or the ConfigError it raised."""
    try:
        return run_cell(suite, task.problem, task.optimizer, landscape=task.landscape)
    except ConfigError as e:
        return e
    except Exception:
        return CellFailure(task.cell, traceback.format_exc())


def _one_thread() -> None:
    # One core per worker. run_cell runs its batches on one thread anyway; this also covers what
    # runs before them (building a problem's data), so a forked worker never enters the OpenMP
    # pool it inherited from the driver.
    runtime.one_thread()


def run_local(suite: Suite, tasks: list[Task], workers: int = 1) -> Iterator[tuple[Task, object]]:
    """Run cells on this machine: in this process (``workers=1``) or in ``workers`` processes.

    Each cell runs on one thread (see ``runtime.one_thread``), so a cell's numbers are the same
    in any process; with two cores, two workers finish a suite in about half the time. Cells come
    back as they finish. A custom problem that cannot be sent to another process (a lambda, say)
    runs in this process.
    """
    workers = max(1, min(workers, len(tasks)))
    if workers > 1 and suite.device != "cpu":
        workers = 1  # one process owns the GPU
    distinct = {id(t.problem): t.problem for t in tasks}.values()  # a custom loss: one object
    if workers > 1 and not all(_picklable(p) for p in distinct):
        workers = 1
    if workers == 1:
        return _run_in_process(suite, tasks)
    return _run_in_pool(suite, tasks, workers)


def _run_in_process(suite: Suite, tasks: list[Task]) -> Iterator[tuple[Task, object]]:
    for task in tasks:
        res = _local_cell(suite, task)
        if isinstance(res, ConfigError):
            raise res
        yield task, res


def _run_in_pool(suite: Suite, tasks: list[Task], workers: int) -> Iterator[tuple[Task, object]]:
    from concurrent.futures import as_completed

    pool = _pool.start(workers, _one_thread)
    # Submitted now, not when the caller first iterates: the workers are forked before the
    # caller starts threads of its own (a progress bar's monitor, say).
    futures = {pool.submit(_local_cell, suite, task): task for task in tasks}

    def stream() -> Iterator[tuple[Task, object]]:
        finished = False
        try:
            for fut in as_completed(futures):
                task = futures[fut]
                try:
                    res = fut.result()
                except Exception as e:  # a worker died (BrokenProcessPool), or pickling failed
                    res = CellFailure(task.cell, f"{type(e).__name__}: {e}")
                if isinstance(res, ConfigError):
                    raise res
                yield task, res
            finished = True
        finally:
            _pool.stop(pool, finished)

    return stream()


def _remote_cell(suite: Suite, task: Task, only: list[int] | None, landscape: bool) -> CellResult:
    """The body of a Ray task: one chunk of one cell, on one thread."""
    # Tasks share the machine's cores: one thread each avoids oversubscription.
    runtime.one_thread()
    runtime.keep_freed_memory()
    return run_cell(suite, task.problem, task.optimizer, landscape=landscape, only=only)


def run_ray(
    suite: Suite,
    tasks: list[Task],
    address: str | None = None,
    chunk_runs: int = DEFAULT_CHUNK_RUNS,
    max_retries: int = 3,
) -> Iterator[tuple[Task, object]]:
    """Run cells as Ray tasks (chunked where large); yield each cell when all its chunks are in.

    ``address`` defaults to the ``RAY_ADDRESS`` environment variable, else a local Ray instance
    is started for this process.
    """
    connect(address)
    import ray

    remote = ray.remote(max_retries=max_retries, num_cpus=1)(_remote_cell)

    pending: dict = {}  # future -> (task index, chunk index)
    parts: dict[int, dict[int, object]] = {}
    n_chunks: dict[int, int] = {}
    for i, task in enumerate(tasks):
        n = n_runs(suite, task)
        bounds = list(range(0, n, chunk_runs)) if n > chunk_runs else [0]
        n_chunks[i] = len(bounds)
        parts[i] = {}
        for j, lo in enumerate(bounds):
            only = list(range(lo, min(lo + chunk_runs, n))) if len(bounds) > 1 else None
            fut = remote.remote(suite, task, only, task.landscape and j == 0)
            pending[fut] = (i, j)
    failed: set[int] = set()
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        fut = done[0]
        i, j = pending.pop(fut)
        if i in failed:
            continue
        try:
            parts[i][j] = ray.get(fut)
        except Exception as e:  # RayTaskError, WorkerCrashedError after retries, ...
            failed.add(i)
            for f in [f for f, (k, _) in pending.items() if k == i]:
                ray.cancel(f)
                pending.pop(f)
            yield tasks[i], CellFailure(tasks[i].cell, f"{type(e).__name__}: {e}")
            continue
        if len(parts[i]) == n_chunks[i]:
            chunks = [parts[i][k] for k in range(n_chunks[i])]
            if len(chunks) == 1:
                yield tasks[i], chunks[0]
            else:
                whole = merge_chunks(chunks)
                t = tasks[i]
                yield t, add_basin_map(suite, t.problem, t.optimizer, None, whole)
            del parts[i]
