"""Worker processes on this machine, shared by the local executor and the report.

No torch here: the report must not import it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

# Where the report and the benchmarks found them; they live with the other process settings.
from optzoo.runtime import cores, keep_freed_memory  # noqa: F401


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so the same cleanup runs (exit 143)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def terminate_like_interrupt() -> None:
    """Handle SIGTERM as Ctrl-C is handled: raise :class:`Terminated` in the main thread.

    Workers are then stopped and temporary files removed by the same ``finally`` blocks, and
    the command prints one line and exits 143 (128 + SIGTERM). Called by the commands' main().
    """
    signal.signal(signal.SIGTERM, _raise_terminated)


def run_command(prog: str, body: Callable[[], int], debug: bool = False) -> int:
    """Run a command's body and turn what escapes it into one line on stderr and an exit code.

    ConfigError (bad input, a directory in use, a damaged store) and OSError (read-only, disk
    full, name too long) are the user's or the environment's: exit 2. Ctrl-C exits 130 and
    SIGTERM 143, after the body's ``finally`` blocks stopped the workers. Anything else is an
    internal error: exit 1. ``debug`` prints the traceback first.
    """
    import threading

    from optzoo.errors import ConfigError

    main_thread = threading.current_thread() is threading.main_thread()  # signals need it
    saved = signal.getsignal(signal.SIGTERM)
    if main_thread:
        terminate_like_interrupt()
    try:
        return body()
    except BaseException as e:
        if isinstance(e, SystemExit):
            raise
        if debug:
            traceback.print_exc()
        if isinstance(e, Terminated):
            line, code = "terminated; finished cells are kept, rerun to resume", 143
        elif isinstance(e, KeyboardInterrupt):
            line, code = "interrupted; finished cells are kept, rerun to resume", 130
        elif isinstance(e, ConfigError):
            line, code = f"error: {e}", 2
        elif isinstance(e, OSError):
            where = f": {e.filename}" if e.filename else ""
            line, code = f"error: {e.strerror or e}{where}", 2
        else:
            first = (str(e).strip().splitlines() or [""])[0][:200]
            hint = "" if debug else " (rerun with --debug for the traceback)"
            line, code = f"internal error: {type(e).__name__}: {first}{hint}", 1
        print(f"{prog}: {' '.join(line.split())}", file=sys.stderr)
        return code
    finally:
        if main_thread:  # main() may be called from a longer-lived program
            signal.signal(signal.SIGTERM, saved)


_PR_SET_PDEATHSIG = 1  # from linux/prctl.h


def _die_with(parent: int) -> None:
    """Make this worker die when ``parent`` does, however it dies (SIGKILL included).

    Linux: the kernel sends SIGKILL on the parent's death (prctl PR_SET_PDEATHSIG); a check of
    getppid() afterwards catches a parent that died before the call. Elsewhere a daemon thread
    polls getppid() twice a second.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):
        import threading
        import time

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:
        os._exit(1)


def init_worker(then: Callable[[], None] | None, parent: int) -> None:
    """Set up a forked worker of ``parent``: then run ``then``. Also for workers of other pools
    (the report's drawing processes)."""
    # Ctrl-C goes to the whole process group; only the parent handles it (and stops workers).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A forked worker inherits the parent's SIGTERM handler; the pool stops workers with
    # SIGTERM, which must end them, not raise inside a cell.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with(parent)
    from optzoo import store

    store.forget_inherited_locks()
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
        workers,
        mp_context=mp.get_context(method),
        initializer=init_worker,
        initargs=(initializer, os.getpid()),
    )


def stop(pool: ProcessPoolExecutor, finished: bool) -> None:
    """Wait for a pool whose work is done, or, after an error or Ctrl-C, stop its workers now."""
    if finished:
        pool.shutdown(wait=True)
        return
    # The pool's own workers only: other children of this process (another pool, a server the
    # caller started) are not ours to stop. The executor forgets them once shut down.
    workers = list((pool._processes or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        worker.terminate()
    # Return once they are gone, so the caller's cleanup does not race them.
    if not _reaped(workers, timeout=5.0):
        for worker in workers:
            if worker.exitcode is None:
                worker.kill()
        _reaped(workers, timeout=5.0)


def _reaped(workers: list, timeout: float) -> bool:
    """Wait until every worker has exited; False if some are still running after ``timeout``.

    The executor's own thread reaps the same processes, and a ``join`` that loses that race
    returns early with the worker already gone; the exit code is set by whichever thread reaped
    it, so wait on that instead.
    """
    deadline = time.monotonic() + timeout
    for worker in workers:
        while worker.exitcode is None and time.monotonic() < deadline:
            worker.join(0.05)
    return all(worker.exitcode is not None for worker in workers)
