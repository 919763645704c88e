"""A cell's runs: hyperparameter combinations x starts x seeds, and their per-run values.

Runs are ordered hyperparameter-major, then start, then seed. Start 0 is the problem's x0, starts
``1 .. suite.starts`` are the reported samples from its box, and the ``suite.tune_starts`` after
them are held out for tuning, drawn from a stream of their own with seeds of their own.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from optzoo import problems
from optzoo.config import ProblemSpec, Suite
from optzoo.problems.base import Problem

Row = tuple[int, int, int]  # (hp_id, start_id, seed_id) of one run


def stable_seed(*parts: Any) -> int:
    """A seed from the parts' text: the same in every process and on every machine."""
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF


def trace_steps(steps: int) -> list[int]:
    """Log-spaced steps 0, 1, 2, ... up to ``steps``, about 10 per decade."""
    pts = {0, steps}
    pts.update(
        int(round(v))
        for v in np.logspace(
            0, np.log10(max(steps, 1)), 10 * max(1, int(np.log10(max(steps, 1))) + 1)
        )
    )
    return sorted(p for p in pts if 0 <= p <= steps)


def make_problem(spec: ProblemSpec | Problem) -> Problem:
    """The problem a spec names (a Problem is its own)."""
    if isinstance(spec, Problem):
        return spec
    return problems.get(spec.name, **spec.params)


def problem_key(spec: ProblemSpec | Problem) -> str:
    """The problem's key in the records and the store's cell names."""
    return spec.key if isinstance(spec, ProblemSpec) else spec.name


def cell_starts(suite: Suite, problem: Problem, pkey: str) -> Tensor:
    """The cell's start points: x0, ``suite.starts`` reported samples, then ``suite.tune_starts``
    held-out samples from a separate seeded stream (so adding tuning starts moves no other)."""
    parts = [
        problem.x0.reshape(1, -1),
        problem.sample_starts(suite.starts, seed=stable_seed(suite.seed, pkey)),
    ]
    if suite.tune_starts:
        seed = stable_seed(suite.seed, pkey, "tune")
        parts.append(problem.sample_starts(suite.tune_starts, seed=seed))
    return torch.cat(parts)


def rows(suite: Suite, hp_ids: Sequence[int]) -> list[Row]:
    """Runs ``(hp_id, start, seed)``: hyperparameter-major, then start, then seed. Tuning runs
    (starts after ``suite.starts``) draw seeds ``suite.seeds ..``, disjoint from the reported."""
    n_s = 1 + suite.starts + suite.tune_starts
    return [
        (h, s, e + (suite.seeds if s > suite.starts else 0))
        for h in hp_ids
        for s in range(n_s)
        for e in range(suite.seeds)
    ]


def batched_hp(combos: list[dict], flags: frozenset[str], dtype: torch.dtype) -> dict:
    """Stack a list of hyperparameter dicts into per-run tensors (numbers) or one value (flags)."""
    out: dict[str, Any] = {}
    for k in combos[0]:
        vals = [c[k] for c in combos]
        if k in flags or isinstance(vals[0], str | bool) or vals[0] is None:
            out[k] = vals[0]
        elif isinstance(vals[0], tuple):
            out[k] = tuple(_column([v[i] for v in vals], dtype) for i in range(len(vals[0])))
        else:
            out[k] = _column(vals, dtype)
    return out


def _column(vals: list, dtype: torch.dtype) -> float | Tensor:
    # Equal floats still become a tensor (of one value): torch rounds `number / tensor` as a
    # reciprocal times the number, `tensor / tensor` as one division, so a batch whose lrs are
    # all equal would round differently from a mixed one. Zeros and whole numbers stay Python
    # values: the rules skip a zero term exactly as a per-run zero does, and counts are exact.
    first = vals[0]
    if all(v == first for v in vals):
        if isinstance(first, int) or first == 0:
            return first
        return torch.tensor([first], dtype=dtype)
    return torch.tensor(vals, dtype=dtype)


def same_value(a: Any, b: Any) -> bool:
    """Equal hyperparameter values, a tuple equal to a list of the same numbers."""
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return a == b
