"""K steps of a first-order rule and the problem's gradient, compiled together into one program.

The eager step is a chain of some 40 small torch ops, each a full pass over the (R, d) iterates
(at large R) or a dispatch of 1-3 us (at small R). :func:`fused_steps` hands ``torch.compile``
(inductor's C++ backend on CPU) the whole loop body, ``K`` times unrolled::

    for k in range(K):
        f[k], g = problem.value_and_grad(x)
        x, state = rule.update(x, g, state, hp)

so that inductor fuses the rule, the gradient and the loss value into a few loops over the runs.

Numbers. The compiled program is *not* bit-identical to the eager step: inductor's generated
C++ rounds some ops otherwise than ATen's kernels (its lerp is a separate multiply and add), so
a third of the runs differ in the last bits after 100 Adam steps on Rosenbrock. The trajectories
agree to round-off (tests/test_fused.py bounds the difference), and a run's numbers do not depend
on its position in the batch as long as the batch is padded as the harness pads it
(``harness.padded_size``): inductor's kernels, like ATen's, take a vector main loop and a scalar
tail, and the test checks the tail bit for bit. So the fused path is an opt-in (``fused=True``
where a caller offers it), documented as not byte-identical to the eager one.

Layout. The (R, d) iterate and state are stored column-major ((d, R) in memory) for the call:
inductor then vectorises over the runs rather than over d, which at d = 2 it does with masked
two-element vectors (measured 1.7x at K = 10, R = 1e4). It pays at small R, where the eager
step is dispatch-bound (5-13x the bare step at R = 1e2, K = 10), and not at R >= 1e4 (0.4-1.4x;
see results/benchmarks.md).

Only problems whose loss and gradient are plain tensor code without data-dependent Python
(the analytic ``value_and_grad``/``grad`` of the ravine, saddle and multimodal families, and any
``fn`` autograd can differentiate inside the compiled graph) compile; :func:`fused_steps` falls
back to the eager loop, unchanged, for anything torch.compile refuses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from optzoo.optimizers.base import FirstOrder
from optzoo.problems.base import Problem


class FusedResult(NamedTuple):
    x: Tensor  # (R, d) the iterate after K steps
    state: NamedTuple  # the rule's state after K steps
    f: Tensor  # (K, R) the loss at each step's starting iterate
    grad: Tensor  # (R, d) the gradient of the last step (at the iterate before it)


def _value_and_grad(problem: Problem) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    if problem.value_and_grad is not None:
        return problem.value_and_grad
    if problem.grad is not None:
        fn, grad = problem.fn, problem.grad
        return lambda x: (fn(x), grad(x))
    fn = problem.fn

    def autograd(x: Tensor) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            f = fn(xr)
            (g,) = torch.autograd.grad(f.sum(), xr)
        return f.detach(), g

    return autograd


def loop(update: Callable, value_and_grad: Callable, K: int) -> Callable:
    """The plain K-step loop: what is compiled, and the eager reference it is checked against."""

    def run(x: Tensor, state: NamedTuple, hp: Mapping[str, Any]):
        fs = []
        g = x
        for _ in range(K):
            f, g = value_and_grad(x)
            fs.append(f)
            x, state = update(x, g, state, hp)
        return x, state, torch.stack(fs), g

    return run


def _column_major(t: Any) -> Any:
    """An (R, d) tensor stored as (d, R): inductor then vectorises over the runs, not over d
    (at d = 2 it otherwise emits masked two-element vectors and scalar gathers; measured 2x
    slower than eager at K = 10, R = 1e4)."""
    if isinstance(t, Tensor) and t.ndim == 2 and t.shape[0] > 1 and t.shape[1] > 1:
        return t.t().contiguous().t()
    return t


def _row_major(t: Any) -> Any:
    return t.contiguous() if isinstance(t, Tensor) else t


_CACHE: dict[tuple, Callable] = {}
# Seconds spent in the first call of each compiled program (tracing and compiling it), per key.
COMPILE_SECONDS: dict[tuple, float] = {}
# Keys torch.compile refused: they run the eager loop.
EAGER: set[tuple] = set()


def compiled_loop(rule: type[FirstOrder], problem: Problem, K: int) -> Callable:
    """The compiled K-step loop of ``rule`` on ``problem`` (cached per rule, problem and K)."""
    key = (rule, id(problem), K)
    if key not in _CACHE:
        body = loop(rule.update, _value_and_grad(problem), K)
        _CACHE[key] = torch.compile(body, dynamic=False, fullgraph=True)
    return _CACHE[key]


def fused_steps(
    opt: FirstOrder,
    problem: Problem,
    x: Tensor,
    state: NamedTuple,
    K: int,
    lr_scale: float | Tensor = 1.0,
) -> FusedResult:
    """K steps of ``opt`` on ``problem`` from ``(x, state)`` as one compiled program.

    ``opt`` is a first-order rule (its whole math is ``update``); its hyperparameters are numbers
    or per-run tensors as the harness gives them, and ``lr_scale`` is held for the K steps (a
    schedule is applied between calls). The first call for a (rule, problem, K, shapes) compiles,
    which takes seconds (:data:`COMPILE_SECONDS`); later calls reuse the program. A loss that
    torch.compile cannot trace runs the same loop eagerly. Not bit-identical to the eager step
    (see the module's docstring).
    """
    if not isinstance(opt, FirstOrder):
        raise TypeError(f"fused_steps needs a first-order rule, got {type(opt).__name__}")
    if K < 1:
        raise ValueError(f"fused_steps: K must be >= 1, got {K}")
    hp = opt.resolved(x, lr_scale)
    key = (type(opt), id(problem), K, tuple(x.shape), x.dtype)
    with torch.no_grad():
        if key in EAGER:
            out = loop(type(opt).update, _value_and_grad(problem), K)(x, state, hp)
            return FusedResult(*out)
        fn = compiled_loop(type(opt), problem, K)
        xc = _column_major(x)
        sc = type(state)(*(_column_major(t) for t in state))
        t0 = time.perf_counter()
        try:
            out = fn(xc, sc, hp)
        except torch._dynamo.exc.TorchDynamoException:
            EAGER.add(key)
            return fused_steps(opt, problem, x, state, K, lr_scale)
        COMPILE_SECONDS.setdefault(key, time.perf_counter() - t0)
    x, state, f, g = out
    state = type(state)(*(_row_major(t) for t in state))
    return FusedResult(_row_major(x), state, f, _row_major(g))
