"""The timing loops benchmarks/peers.py and benchmarks/speed.py share: optzoo's bare step, its
fused step, NumPy's Adam, and interleaved repetitions with medians.

Each loop returns ``(seconds, final iterate)``; the clock covers the steps only (no set-up).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch

from optzoo import optimizers
from optzoo.problems.oracle import Oracle


def bare_steps(name: str, hp: dict, problem, x0: torch.Tensor, steps: int):
    """``steps`` bare steps (``opt.step`` through the counted oracle), no harness."""
    opt = optimizers.get(name, **hp)
    oracle = Oracle(problem, x0.shape[0])
    x = x0.clone()
    state = opt.init(x)
    with torch.no_grad():
        t0 = time.perf_counter()
        for _ in range(steps):
            x, state, _ = opt.step(x, state, oracle)
        return time.perf_counter() - t0, x.numpy()


def fused_steps(name: str, hp: dict, problem, x0: torch.Tensor, steps: int, K: int):
    """``steps`` steps as ``steps / K`` calls of :func:`optzoo.fused.fused_steps` (K steps each,
    compiled; the first call for a shape compiles, so warm up before timing)."""
    from optzoo.fused import fused_steps as fused

    opt = optimizers.get(name, **hp)
    x = x0.clone()
    state = opt.init(x)
    t0 = time.perf_counter()
    for _ in range(steps // K):
        x, state, _, _ = fused(opt, problem, x, state, K)
    return time.perf_counter() - t0, x.numpy()


def numpy_adam(grad: Callable[[np.ndarray], np.ndarray], x: np.ndarray, steps: int, lr: float):
    """Adam in NumPy, in place where it can be (torch.optim's update, eps after the root)."""
    b1, b2, eps = 0.9, 0.999, 1e-8
    x = x.copy()
    m, v, tmp = np.zeros_like(x), np.zeros_like(x), np.empty_like(x)
    t0 = time.perf_counter()
    for t in range(1, steps + 1):
        g = grad(x)
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - b2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp /= math.sqrt(1.0 - b2**t)
        tmp += eps
        np.divide(m, tmp, out=tmp)
        tmp *= lr / (1.0 - b1**t)
        x -= tmp
    return time.perf_counter() - t0, x


def interleaved(fns: dict[str, Callable[[], tuple]], reps: int) -> dict[str, tuple[float, object]]:
    """Median seconds of each function over ``reps`` interleaved repetitions (a burst of load on
    a shared machine hits all of them alike), with its last output."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    last: dict[str, object] = {}
    for _ in range(reps):
        for k, fn in fns.items():
            t, out = fn()
            times[k].append(t)
            last[k] = out
    return {k: (float(np.median(v)), last[k]) for k, v in times.items()}
