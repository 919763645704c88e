"""The local executor's worker processes: stopping a pool ends its own workers and nothing else."""

from __future__ import annotations

import multiprocessing as mp
import time

import torch

from optzoo import _pool, executors, runtime


def _context() -> mp.context.BaseContext:
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def _wait(cond, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_stop_ends_the_pools_workers_and_no_other_child():
    other = _context().Process(target=time.sleep, args=(120,))
    other.start()
    pool = None
    try:
        before = set(mp.active_children())
        pool = _pool.start(2)
        futures = [pool.submit(time.sleep, 120) for _ in range(2)]
        assert _wait(lambda: all(f.running() for f in futures)), "the workers never started"
        workers = set(mp.active_children()) - before
        assert len(workers) == 2 and other not in workers
        _pool.stop(pool, finished=False)  # returns once they have exited
        assert not [w for w in workers if w.is_alive()], "a worker of the stopped pool still runs"
        assert other.is_alive(), "stopping the pool stopped a process that is not its worker"
    finally:
        other.terminate()
        other.join(timeout=30)


def test_a_finished_pool_is_waited_for():
    before = set(mp.active_children())
    pool = _pool.start(1)
    assert pool.submit(sum, [1, 2, 3]).result(timeout=60) == 6
    workers = set(mp.active_children()) - before
    _pool.stop(pool, finished=True)  # returns once its worker has exited
    assert workers and not any(w.is_alive() for w in workers)


def test_a_local_worker_runs_on_one_thread():
    pool = _pool.start(1, executors._one_thread)
    try:
        assert pool.submit(torch.get_num_threads).result(timeout=60) == 1
    finally:
        _pool.stop(pool, finished=True)


def test_one_thread_restores_the_callers_setting():
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with runtime.OneThread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)


def test_no_test_hook_in_the_executors():
    # A worker dying mid-task is the tests' to cause (tests/test_ray.py wraps the task body).
    assert not [name for name in vars(executors) if "KILL" in name.upper()]
