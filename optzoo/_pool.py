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


_MALLOC_TUNED = False


def keep_freed_memory() -> None:
    """Let glibc's malloc reuse freed large blocks instead of returning them to the system.

    Every tensor op allocates its result. Above malloc's mmap threshold (at most 32 MB by
    default) each result is a fresh mapping whose pages fault in on first touch, and is unmapped
    when freed: at R = 1e5 runs of a 100-D problem (80 MB tensors) that made an Adam step 3x
    slower (measured). Raising the mmap and trim thresholds to 1 GiB keeps freed blocks in the
    heap for the next op. The process's memory then shrinks only at exit. A no-op where the C
    library is not glibc. Called by the command line, its workers and the speed benchmark;
    library use leaves the process's malloc alone.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
        libc.mallopt(m_mmap_threshold, 1 << 30)
        libc.mallopt(m_trim_threshold, 1 << 30)
    except (OSError, AttributeError):
        pass


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
