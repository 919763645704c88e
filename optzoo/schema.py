"""The run record and the target ladder: what every stored run holds, named once.

A cell's ``runs`` table has one row per run and the columns of ``RUN``, in that order. The
harness builds its records from this list, the store's readers and the metrics rely on it, and
``RUN_COLUMNS`` documents it. ``dtype`` is the pandas dtype as stored; ``float64[]`` and
``int64[]`` are one array per run (a point, or one entry per ladder target).

Targets follow COCO: a run reaches target ``delta_f`` when ``f - f* <= delta_f``, for ``delta_f``
on ``LADDER``, 51 values from 1e2 down to 1e-8 in steps of 10^0.2 (Hansen et al., "COCO: a
platform for comparing continuous optimizers in a black-box setting", 2021).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# The problem categories, in the order the tables list them ("custom": a user's own loss).
CATEGORIES = ("saddle", "ravine", "plateau", "cliff", "multimodal", "neural", "custom")
# The categories whose 2-D problems get basin maps (several minima, or a saddle to escape).
BASIN_CATEGORIES = ("multimodal", "saddle")

# delta_f targets, 10^(2 - i/5) for i = 0..50: 1e2 ... 1e-8.
LADDER = np.array([10.0 ** (2 - 0.2 * i) for i in range(51)])


class Column(NamedTuple):
    """One column of the run record."""

    name: str
    dtype: str
    meaning: str


RUN: tuple[Column, ...] = (
    Column("problem", "str", "problem key, e.g. rosenbrock[dim=2]"),
    Column("category", "str", "problem category"),
    Column("optimizer", "str", "optimizer name"),
    Column("run", "int64", "run index within the cell"),
    Column("hp_id", "int64", "index of the hyperparameter combination"),
    Column("start_id", "int64", "0 is the problem's x0; 1.. are seeded samples from its box"),
    Column(
        "seed_id",
        "int64",
        "seed index (mini-batches, gradient noise); tuning runs have their own seeds",
    ),
    Column(
        "split",
        "str",
        "tune (held-out starts and seeds that choose hyperparameters) | test (reported)",
    ),
    Column("lr", "float64", "learning rate of the run"),
    Column("hp", "str", "JSON of the run's hyperparameters"),
    Column("hp_default", "bool", "True when every hyperparameter is the optimizer's default"),
    Column("x0", "float64[]", "start point"),
    Column("x_final", "float64[]", "last finite iterate"),
    Column("f_final", "float64", "f at x_final (full loss)"),
    Column("f_best", "float64", "lowest f seen"),
    Column(
        "status",
        "str",
        "why it stopped: diverged | stalled (|g| < options.grad_tol) | solved | budget",
    ),
    Column(
        "solved",
        "bool",
        "whether it met the problem's success rule (reached the target, or escaped)",
    ),
    Column("steps", "int64", "steps taken"),
    Column(
        "evals",
        "int64",
        "gradient evaluations spent (f and g: 1, HVP: 2, Hessian: 2d), at most the budget",
    ),
    Column("nf", "int64", "oracle count: function values"),
    Column("ng", "int64", "oracle count: gradients"),
    Column("nhvp", "int64", "oracle count: Hessian-vector products"),
    Column("nh", "int64", "oracle count: Hessians"),
    Column(
        "steps_to", "int64[]", "per ladder target: first step with f - f* <= target, -1 if never"
    ),
    Column(
        "evals_to",
        "int64[]",
        "per ladder target: gradient evaluations when first reached, -1 if never",
    ),
    Column("path_length", "float64", "sum of step norms"),
    Column("displacement", "float64", "|x_final - x0|"),
    Column("max_step", "float64", "largest step norm"),
    Column(
        "step_cos",
        "float64",
        "mean cosine between successive steps (+1 straight, < 0 zigzag; pairs with a zero step "
        "left out; NaN with fewer than two steps)",
    ),
    Column("flat_steps", "int64", "steps with raw |g| below options.plateau_grad"),
    Column("grad_norm_final", "float64", "raw |g| at the last gradient evaluation"),
    Column(
        "escape_step",
        "int64",
        "first step that left the first known saddle (escape rule), -1 if never",
    ),
    Column(
        "endpoint",
        "str",
        "where it ended: minimum, saddle, maximum, degenerate, plateau, diverged, budget",
    ),
    Column(
        "min_ratio", "float64", "share of positive Hessian eigenvalues at x_final (NaN: unknown)"
    ),
    Column("n_neg", "int64", "number of negative Hessian eigenvalues at x_final (-1: unknown)"),
    Column(
        "eigenvalues",
        "float64[]",
        "Hessian eigenvalues at x_final, ascending (problems up to 64-D; else empty)",
    ),
)

RUN_NAMES: tuple[str, ...] = tuple(c.name for c in RUN)
RUN_COLUMNS: dict[str, str] = {c.name: c.meaning for c in RUN}
