"""Worker processes on this machine, shared by the local executor and the report.

No torch here: the report must not import it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor


def cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _init(then: Callable[[], None] | None) -> None:
    # Ctrl-C goes to the whole process group; only the parent handles it (and stops workers).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if then is not None:
        then()


def start(workers: int, initializer: Callable[[], None] | None = None) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes, forked where the platform can fork.

    A forked worker starts with everything the parent imported and computed (torch, a loaded
    results directory), where a spawned one would import it all again. Callers submit work at
    once, before they start threads of their own.
    """
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(
        workers, mp_context=mp.get_context(method), initializer=_init, initargs=(initializer,)
    )


def stop(pool: ProcessPoolExecutor, finished: bool) -> None:
    """Wait for a pool whose work is done, or, after an error or Ctrl-C, stop its workers now."""
    if finished:
        pool.shutdown(wait=True)
        return
    pool.shutdown(wait=False, cancel_futures=True)
    for child in mp.active_children():
        child.terminate()
