"""The harness: batch invariance, divergence isolation, budgets, records against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from optzoo.config import OptimizerSpec, Suite
from optzoo.harness import LADDER, merge_chunks, run_cell, trace_steps
from optzoo.problems.base import Problem

RECORD = [
    "x_final",
    "f_final",
    "f_best",
    "status",
    "steps",
    "evals",
    "ng",
    "steps_to",
    "evals_to",
    "path_length",
    "displacement",
    "max_step",
    "flat_steps",
    "escape_step",
]


def rosen(x):
    return (1 - x[..., 0]) ** 2 + 100 * (x[..., 1] - x[..., 0] ** 2) ** 2


ROSEN = Problem(
    fn=rosen,
    x0=[-1.2, 1.0],
    name="rosen",
    category="ravine",
    f_star=0.0,
    minimizers=[[1.0, 1.0]],
    bounds=[[-2.0, 2.0], [-1.0, 3.0]],
)


def suite(**kw) -> Suite:
    base = {"name": "t", "problems": (), "optimizers": (), "steps": 300, "starts": 0}
    return Suite(**{**base, **kw})


def records(res, **where) -> pd.DataFrame:
    df = res.runs
    for k, v in where.items():
        df = df[np.isclose(df[k], v)] if isinstance(v, float) else df[df[k] == v]
    return df.reset_index(drop=True)


def assert_same_records(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert len(a) == len(b) and len(a) > 0
    for col in RECORD:
        for u, v in zip(a[col], b[col], strict=True):
            if isinstance(u, float) and math.isnan(u):
                assert math.isnan(v), col
            else:
                np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=col)


def test_run_alone_equals_run_in_a_large_grid():
    # 4 learning rates x 64 starts in one batch, against each run of the default start alone.
    big = run_cell(
        suite(starts=63), ROSEN, OptimizerSpec("momentum", {"lr": [1e-4, 3e-4, 1e-3, 2e-3]})
    )
    assert len(big.runs) == 4 * 64
    for lr in (1e-4, 2e-3):
        alone = run_cell(suite(), ROSEN, OptimizerSpec("momentum", {"lr": [lr]}))
        assert_same_records(records(alone), records(big, lr=lr, start_id=0))
    # A sampled start: the k-th sample does not depend on how many are drawn.
    few = run_cell(suite(starts=3), ROSEN, OptimizerSpec("momentum", {"lr": [1e-3]}))
    assert_same_records(records(few, start_id=3), records(big, lr=1e-3, start_id=3))


def test_an_exploding_lr_is_isolated():
    spec = {"lr": [1e-4, 1e-3]}
    calm = run_cell(suite(starts=7), ROSEN, OptimizerSpec("sgd", spec))
    wild = run_cell(suite(starts=7), ROSEN, OptimizerSpec("sgd", {"lr": [1e-4, 1e-3, 10.0]}))
    boom = records(wild, lr=10.0)
    assert (boom["status"] == "diverged").all(), boom["status"].tolist()
    # A diverged run keeps its last finite iterate.
    assert all(np.isfinite(v).all() for v in boom["x_final"])
    for lr in spec["lr"]:
        assert_same_records(records(calm, lr=lr), records(wild, lr=lr))


def test_targets_against_a_closed_form_gradient_descent():
    # f = x^2 / 2 from x0 = 1 with lr 0.5: x_t = 0.5^t, f_t = 0.5^(2t+1).
    quad = Problem(fn=lambda x: 0.5 * (x**2).sum(-1), x0=[1.0], name="q", f_star=0.0, target=1e-8)
    res = run_cell(suite(steps=40), quad, OptimizerSpec("sgd", {"lr": [0.5]}))
    r = records(res, hp_default=False).iloc[0]
    for i, target in enumerate(LADDER):
        t_star = max(0, math.ceil((math.log(target, 0.5) - 1) / 2 - 1e-12))
        assert r["steps_to"][i] == t_star, (i, target, r["steps_to"][i], t_star)
        assert r["evals_to"][i] == t_star + 1  # one gradient per step, f known after its first
    # Solved at the first iterate with f <= 1e-8 and frozen there.
    t_solved = math.ceil((math.log(1e-8, 0.5) - 1) / 2)
    assert r["status"] == "solved" and r["steps"] == t_solved
    assert r["f_final"] == pytest.approx(0.5 ** (2 * t_solved + 1), rel=1e-12)
    np.testing.assert_allclose(r["path_length"], 1 - 0.5**t_solved, rtol=1e-12)
    assert r["max_step"] == pytest.approx(0.5)


def test_budget_in_evaluations_and_steps():
    res = run_cell(suite(steps=500, evals=37), ROSEN, OptimizerSpec("sgd", {"lr": [1e-4]}))
    r = records(res, lr=1e-4).iloc[0]
    assert r["evals"] == 37 and r["status"] == "budget"
    res = run_cell(suite(steps=25), ROSEN, OptimizerSpec("sgd", {"lr": [1e-4]}))
    r = records(res, lr=1e-4).iloc[0]
    assert r["steps"] == 25 and r["evals"] == 25


def test_traces_and_paths():
    res = run_cell(suite(steps=200, starts=2, paths=1), ROSEN, OptimizerSpec("sgd", {"lr": [1e-3]}))
    tr = res.traces[res.traces.run == 0]
    assert tr["step"].tolist() == trace_steps(200)
    assert tr["f"].iloc[0] == pytest.approx(24.2)
    # Full trajectories only for the default start (paths=1), every step.
    assert set(res.paths["run"]) == set(res.runs[res.runs.start_id == 0]["run"])
    p = res.paths[res.paths.run == 0]
    assert len(p) == 201 and p[["x", "y"]].iloc[0].tolist() == [-1.2, 1.0]
    np.testing.assert_allclose(
        p["f"], rosen(torch.tensor(p[["x", "y"]].values)).numpy(), rtol=1e-12
    )


def test_gradient_noise_is_seeded_per_run():
    quad = Problem(fn=lambda x: 0.5 * (x**2).sum(-1), x0=[1.0, 1.0], name="q2", f_star=0.0)
    s = suite(steps=20, seeds=3, noise_std=0.1)
    a = run_cell(s, quad, OptimizerSpec("sgd", {"lr": [0.1]}))
    b = run_cell(s, quad, OptimizerSpec("sgd", {"lr": [0.1]}))
    finals = [tuple(v) for v in records(a, lr=0.1)["x_final"]]
    assert len(set(finals)) == 3  # seeds differ
    assert_same_records(records(a), records(b))  # and repeat exactly


def test_clipping_bounds_every_step():
    s = suite(steps=50, starts=15, clip_norm=0.5)
    res = run_cell(s, ROSEN, OptimizerSpec("sgd", {"lr": [0.1]}))
    assert (res.runs["max_step"] <= 0.1 * 0.5 + 1e-12).all(), res.runs["max_step"].max()


def test_schedules():
    s = suite(steps=100)
    assert s.replace(schedule={"kind": "exponential", "gamma": 0.9}).lr_factor(3) == pytest.approx(
        0.729
    )
    p = s.replace(schedule={"kind": "piecewise", "milestones": [10, 20], "gamma": 0.1})
    assert [p.lr_factor(t) for t in (9, 10, 20)] == pytest.approx([1, 0.1, 0.01])
    it = s.replace(schedule={"kind": "inverse_time", "decay": 0.5})
    assert it.lr_factor(4) == pytest.approx(1 / 3)
    cos = s.replace(schedule={"kind": "cosine", "eta_min": 0.0})
    assert [cos.lr_factor(t) for t in (0, 50, 100)] == pytest.approx([1, 0.5, 0])
    # Gradient descent on x^2/2 with a decayed lr: x_T = prod (1 - lr_t), closed form.
    quad = Problem(fn=lambda x: 0.5 * (x**2).sum(-1), x0=[1.0], name="q", f_star=None)
    sched = suite(steps=10, schedule={"kind": "exponential", "gamma": 0.5})
    res = run_cell(sched, quad, OptimizerSpec("sgd", {"lr": [0.5]}))
    expect = np.prod([1 - 0.5 * 0.5**t for t in range(10)])
    assert records(res, lr=0.5)["x_final"][0][0] == pytest.approx(expect, rel=1e-12)


def test_chunks_of_a_cell_merge_into_the_whole_cell():
    s = suite(steps=150, starts=9)
    spec = OptimizerSpec("adam", {"lr": [1e-2, 1e-1], "amsgrad": [False, True]})
    whole = run_cell(s, ROSEN, spec)
    n = len(whole.runs)
    chunks = [run_cell(s, ROSEN, spec, only=range(i, min(i + 7, n))) for i in range(0, n, 7)]
    merged = merge_chunks(chunks[::-1])
    pd.testing.assert_frame_equal(merged.runs, whole.runs)
    pd.testing.assert_frame_equal(merged.traces, whole.traces)
    pd.testing.assert_frame_equal(merged.paths, whole.paths)


def test_a_result_sent_between_processes_arrives_whole():
    """A worker's result is pickled with each per-run array column packed as one 2-D array; the
    receiver must get the same table back: columns in order, every array bit for bit."""
    import pickle

    res = run_cell(suite(steps=30, starts=5), ROSEN, OptimizerSpec("adam", {"lr": [1e-2, 1.0]}))
    back = pickle.loads(pickle.dumps(res))
    assert list(back.runs.columns) == list(res.runs.columns)
    assert back.runs.dtypes.equals(res.runs.dtypes)
    for col in res.runs.columns:
        for u, v in zip(res.runs[col], back.runs[col], strict=True):
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=col)
    pd.testing.assert_frame_equal(back.traces, res.traces)
    assert back.meta == res.meta


def test_per_optimizer_clipping_overrides_the_suite():
    from optzoo.config import parse

    s = parse(
        {
            "suite": {"steps": 40, "starts": 3},
            "problems": [{"name": "rosenbrock"}],
            "optimizers": [
                {"name": "sgd", "lr": [0.1]},
                {"name": "sgd", "label": "sgd+clip", "clip_norm": 0.5, "lr": [0.1]},
            ],
        }
    )
    plain, clipped = (run_cell(s, ROSEN, o) for o in s.optimizers)
    assert (clipped.runs["max_step"] <= 0.1 * 0.5 + 1e-12).all()
    assert (plain.runs["max_step"] > 0.1 * 0.5).any()
    assert set(clipped.runs["optimizer"]) == {"sgd+clip"}


ENDPOINT = ["endpoint", "min_ratio", "n_neg", "eigenvalues"]


@pytest.mark.parametrize(
    "problem_name,optimizer",
    [
        ("himmelblau", "adam"),  # Adam's bias correction
        ("rnn_cliff", "adam"),  # sigmoid
        ("sigmoid_plateau", "rmsprop"),
        ("teacher_student", "adam"),  # tanh, matrix products
    ],
)
def test_a_run_alone_is_bit_identical_to_the_same_run_in_an_odd_sized_batch(
    problem_name, optimizer
):
    # 37 runs: not a multiple of any SIMD width. Without padding, vectorised kernels compute the
    # last runs of a batch on a scalar path that rounds differently; Adam's bias correction once
    # went through such a kernel (pow). Each made a run's numbers depend on its batch.
    from optzoo import problems

    problem = problems.get(problem_name)
    s = suite(steps=40, starts=36)
    spec = OptimizerSpec(optimizer, {})
    whole = run_cell(s, problem, spec)
    for k in range(0, 37, 3):
        alone = run_cell(s, problem, spec, only=[k])
        a, b = alone.runs, whole.runs.iloc[[k]].reset_index(drop=True)
        assert_same_records(a, b)
        for col in ENDPOINT[:-1]:
            np.testing.assert_array_equal(np.asarray(a[col][0]), np.asarray(b[col][0]), col)
        # MKL's batched eigh rounds by each matrix's memory alignment in the batch: the spectrum
        # agrees to round-off, not to the bit (README, "How it works").
        ea, eb = np.asarray(a["eigenvalues"][0]), np.asarray(b["eigenvalues"][0])
        scale = max(1.0, float(np.abs(eb).max(initial=0.0)))
        np.testing.assert_allclose(ea, eb, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize(
    "name, hp",
    [
        ("lbfgs", {"lr": [1.0], "max_iter": [1], "line_search_fn": ["strong_wolfe"]}),
        ("bfgs", {}),
        ("newton", {}),
    ],
)
def test_a_stalled_run_is_frozen_where_its_gradient_was_small(name, hp):
    # grad_tol stops a run whose |g| fell below it; the run must end at the point whose gradient
    # was measured (L-BFGS's last gradient of a step belongs to a line-search trial point).
    tol = 1e-3
    res = run_cell(
        suite(steps=400, starts=15, grad_tol=tol, stop_on_success=False),
        ROSEN,
        OptimizerSpec(name, hp),
    )
    stalled = res.runs[res.runs["status"] == "stalled"]
    assert len(stalled) > 0
    x = torch.tensor(np.stack(stalled["x_final"].to_numpy()), dtype=torch.float64)
    x.requires_grad_(True)
    (g,) = torch.autograd.grad(rosen(x).sum(), x)
    gn = torch.linalg.vector_norm(g, dim=-1)
    assert (gn < tol).all(), gn[gn >= tol].tolist()
