"""Batch invariance on any x86-64 CPU: padding for every vector width, and a run's record
independent of its batch's size, its position in it and its batch's composition.

The oracle is the run itself elsewhere: the same run alone (padded as the harness pads), inside
chunks whose sizes are not multiples of 32 or 64 (so AVX2's and AVX-512's vector tails both fall
on real runs if the padding is wrong), and in a batch whose learning rates are all equal instead
of mixed. Every record must agree bit for bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from optzoo import optimizers
from optzoo.config import ProblemSpec, Suite, optimizer_spec
from optzoo.harness import padded_size, run_cell

CPU = torch.device("cpu")
RECORD = [
    "x_final", "f_final", "f_best", "status", "steps", "evals", "nf", "ng", "steps_to",
    "path_length", "max_step", "flat_steps", "grad_norm_final", "escape_step",
]  # fmt: skip
# A second learning rate per optimizer, so that a grid mixes two values.
OTHER_LR = {"lbfgs": 0.5, "newton": 0.5, "adadelta": 0.5}


@pytest.mark.parametrize(
    "capability,f64,f32",
    # Register bytes per capability (Intel/Arm manuals): AVX-512 64, AVX2 32, SSE/NEON 16; four
    # registers' worth of runs per padding block. An unknown capability gets the widest.
    [("AVX512", 32, 64), ("AVX2", 16, 32), ("DEFAULT", 8, 16), ("SOMETHING NEW", 32, 64)],
)
def test_padding_covers_four_vectors_of_the_cpus_width(monkeypatch, capability, f64, f32):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    for dtype, block in ((torch.float64, f64), (torch.float32, f32)):
        for n in (1, block - 1, block, block + 1, 1000):
            R = padded_size(n, dtype, CPU)
            assert R % block == 0 and n <= R < n + block, (capability, dtype, n, R)


def records(runs: pd.DataFrame) -> pd.DataFrame:
    out = runs.set_index("run")[RECORD].copy()
    for c in ("x_final", "steps_to"):
        out[c] = out[c].map(lambda a: tuple(np.asarray(a).tolist()))
    return out.sort_index()


def assert_same_records(a: pd.DataFrame, b: pd.DataFrame, what: str) -> None:
    a, b = records(a), records(b)
    for c in RECORD:
        x, y = a[c].to_numpy(), b[c].to_numpy()
        same = [(u == v) or (u != u and v != v) for u, v in zip(x, y, strict=True)]
        assert all(same), f"{what}: {c} differs at runs {list(a.index[~np.array(same)])}"


def suite(dtype: str, starts: int) -> Suite:
    return Suite(name="inv", problems=(), optimizers=(), steps=20, starts=starts, dtype=dtype)


@pytest.mark.parametrize("problem,dtype", [("rnn_cliff", "float64"), ("rosenbrock", "float32")])
def test_equal_and_mixed_learning_rates_give_the_same_runs(problem, dtype):
    # A batch whose lrs are all equal must take the same code path as a mixed one: Adam's record
    # used to differ in the last bits (a Python number divided by a tensor rounds differently).
    s = suite(dtype, starts=4)
    for name in optimizers.names():
        default = optimizers.get_class(name).defaults["lr"]
        alone = run_cell(s, ProblemSpec(problem), optimizer_spec(name, {})).runs
        mixed = run_cell(
            s, ProblemSpec(problem), optimizer_spec(name, {"lr": [OTHER_LR.get(name, 1e-2)]})
        ).runs
        mixed = mixed[mixed["lr"] == default].copy()
        mixed["run"] = range(len(mixed))
        assert_same_records(alone, mixed, f"{name} on {problem} ({dtype})")


def test_a_zero_in_a_mixed_grid_equals_an_all_zero_batch():
    # Zeros stay Python numbers (the rules skip the term); a per-run zero must give the same run.
    s = suite("float64", starts=3)
    for name, key, other in (("sgd", "momentum", 0.9), ("adam", "weight_decay", 0.1)):
        zero = run_cell(s, ProblemSpec("rosenbrock"), optimizer_spec(name, {key: 0.0})).runs
        grid = optimizer_spec(name, {key: [0.0, other]})
        mixed = run_cell(s, ProblemSpec("rosenbrock"), grid).runs
        mixed = mixed[mixed["hp"].str.contains(f'"{key}": 0.0')].copy()
        mixed["run"] = range(len(mixed))
        assert_same_records(zero, mixed, f"{name} {key}=0")


@pytest.mark.parametrize(
    "problem,dtype,names",
    [("rnn_cliff", "float32", ("adam", "lbfgs")), ("teacher_student", "float64", ("adam",))],
)
def test_a_run_is_the_same_alone_and_in_chunks_of_any_size(problem, dtype, names):
    # 1, 33 and 65 runs: not multiples of 32 or 64, so an unpadded batch would put real runs in
    # the scalar tail of AVX2 (16 or 32 per block) and AVX-512 (32 or 64) loops.
    s = suite(dtype, starts=33)
    for name in names:
        spec = optimizer_spec(name, {"lr": [OTHER_LR.get(name, 1e-2)]})
        whole = run_cell(s, ProblemSpec(problem), spec).runs
        n = len(whole)
        for only in ([n - 1], list(range(7, 40)), list(range(n - 65, n))):
            part = run_cell(s, ProblemSpec(problem), spec, only=only).runs
            assert_same_records(whole[whole["run"].isin(only)], part, f"{name} {len(only)} runs")
