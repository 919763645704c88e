"""Basins of attraction: where each start of a dense grid over a 2-D problem's box ends.

A basin map runs one optimizer, at its chosen setting, from every point of an ``n x n`` grid of
starts (cell centres of the problem's box, x fastest) as one batch through the harness's step
loop: the suite's budget, stopping rules, clipping and padding, so a map's runs are the runs the
suite would make from those starts. Each run's end is labelled by :func:`basin_labels`:

- ``min k``: within 5% of the box's diagonal of known minimizer k (1-based, the nearest);
- ``saddle``: else within that radius of a known saddle;
- ``escaped``: else solved on a problem without f* (the saddle's escape rule);
- ``diverged``: its loss or iterate turned NaN/Inf;
- ``other``: anything else (budget spent or stalled elsewhere).

The setting is the one the tables report: chosen on the held-out ("tune") runs by
``tuning.best_setting``, the order ``tuning.best_per_problem`` ranks by (:func:`chosen_hp_id`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from optzoo import metrics, tuning
from optzoo.config import Suite
from optzoo.harness.loop import Batch, run_batch
from optzoo.problems.base import Problem
from optzoo.schema import BASIN_CATEGORIES

if TYPE_CHECKING:  # the class is passed in; this module runs no optimizer of its own choosing
    from optzoo.optimizers.base import Optimizer

GRID = 40  # starts per axis: 1,600 per map, enough to show a basin's shape
LABEL_RADIUS = 0.05  # a run ends at a point when within this share of the box's diagonal
COLUMNS = ("x0_1", "x0_2", "label", "status")


def wants_basin_map(problem: Problem) -> bool:
    """Whether the suite maps this problem's basins: 2-D, multimodal or saddle."""
    return problem.dim == 2 and problem.category in BASIN_CATEGORIES


def start_grid(bounds: Tensor | Sequence[Sequence[float]], n: int = GRID) -> Tensor:
    """The ``n x n`` cell centres of a 2-D box ``(lo, hi)``, ``(n * n, 2)`` float64, x fastest.

    Centres, not edges: an image of the labels then covers the box exactly, and no start sits
    on the box's centre line, where the suite's saddles are (a start on a saddle never moves).
    """
    b = torch.as_tensor(bounds, dtype=torch.float64)
    lo, hi = b[0], b[1]
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    xs, ys = lo[0] + u * (hi[0] - lo[0]), lo[1] + u * (hi[1] - lo[1])
    Y, X = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([X.reshape(-1), Y.reshape(-1)], dim=-1)


def basin_labels(info: dict, runs: pd.DataFrame) -> list[str]:
    """Where each run ended (``x_final``, ``status`` columns), as in the module docstring.

    ``info`` is the problem's facts (``Problem.info()``, ``problem.json``): bounds, minimizers,
    saddles and f*.
    """
    lo, hi = np.asarray(info["bounds"][0], float), np.asarray(info["bounds"][1], float)
    radius = LABEL_RADIUS * float(np.linalg.norm(hi - lo))
    mins = np.asarray(info.get("minimizers") or np.zeros((0, 2)), float).reshape(-1, 2)
    sads = np.asarray(info.get("saddles") or np.zeros((0, 2)), float).reshape(-1, 2)
    n = len(runs)
    x = np.asarray(list(runs["x_final"]), float).reshape(n, 2)
    status = runs["status"].to_numpy(dtype=object)
    out = np.full(n, "other", dtype=object)
    if info.get("f_star") is None:
        out[status == "solved"] = "escaped"
    # An end point out at 1e200 is infinitely far from every point of interest: say nothing.
    with np.errstate(over="ignore", invalid="ignore"):
        if len(sads):
            near = (np.linalg.norm(x[:, None, :] - sads[None], axis=-1) <= radius).any(axis=1)
            out[near] = "saddle"
        if len(mins):
            d = np.linalg.norm(x[:, None, :] - mins[None], axis=-1)
            k = np.argmin(d, axis=1)
            near = d[np.arange(n), k] <= radius
            out[near] = np.array([f"min {j + 1}" for j in range(len(mins))], dtype=object)[k[near]]
    out[(status == "diverged") | ~np.isfinite(x).all(axis=1)] = "diverged"
    return out.tolist()


def basin_map(
    suite: Suite, problem: Problem, optimizer: type[Optimizer], setting: dict, n: int = GRID
) -> pd.DataFrame:
    """Run ``optimizer(**setting)`` from the ``n x n`` start grid over ``problem``'s box.

    ``suite`` is the cell's suite as ``harness.run_cell`` runs it (budget ``steps``/``evals``,
    ``lr`` schedule, clipping of the optimizer's entry applied); ``setting`` one combination of
    its grid. All ``n * n`` runs advance as one batch through the harness's step loop, seed 0.
    Returns one row per start, in :func:`start_grid`'s order: ``x0_1, x0_2, label, status``.
    """
    if problem.dim != 2:
        raise ValueError(f"basin_map: problem {problem.name!r} is {problem.dim}-D, not 2-D")
    if n < 2:
        raise ValueError(f"basin_map: n must be at least 2, got {n}")
    starts = start_grid(problem.bounds, n)
    rows = [(0, i, 0) for i in range(n * n)]
    batch = Batch(
        suite.replace(paths=0),
        problem,
        optimizer,
        [dict(setting)],
        rows,
        list(range(n * n)),
        starts,
        getattr(torch, suite.dtype),
        torch.device(suite.device),
    )
    rec = run_batch(batch)
    ends = pd.DataFrame({"x_final": list(rec["x_final"]), "status": rec["status"]})
    info = {**problem.info(), "f_saddle": problem.f_saddle()}
    return pd.DataFrame(
        {
            "x0_1": starts[:, 0].numpy(),
            "x0_2": starts[:, 1].numpy(),
            "label": np.asarray(basin_labels(info, ends), dtype=object),
            "status": np.asarray(rec["status"], dtype=object),
        }
    )


def chosen_hp_id(runs: pd.DataFrame, info: dict) -> int | None:
    """The hp_id the tables report for one cell's runs: ranked first on the held-out runs
    (``split == "tune"``; all runs when there are none) by ``tuning.best_setting``.

    ``info``: the problem's facts with ``f_saddle``, as ``run_cell`` stores them.
    """
    split = "tune" if (runs["split"] == "tune").any() else "test"
    sel = runs[runs["split"] == split]
    if sel.empty:
        return None
    hits = metrics.problem_hits(sel, info)
    return tuning.best_setting(
        sel["hp_id"].to_numpy(),
        hits.evals[:, hits.final],
        sel["evals"].to_numpy(),
        sel["f_final"].to_numpy(dtype=float),
    )


def cell_basin_map(
    suite: Suite,
    problem: Problem,
    optimizer: type[Optimizer],
    combos: Sequence[dict],
    runs: pd.DataFrame,
    n: int = GRID,
) -> pd.DataFrame | None:
    """A finished cell's basin map at its chosen setting, or None where none is drawn.

    ``combos`` and ``runs`` are the cell's grid (widened) and its runs frame; the frame gains
    the cell's ``problem``, ``optimizer``, ``hp_id`` and ``hp`` (JSON) in front, so that the
    store's per-kind reader can concatenate cells.
    """
    if not wants_basin_map(problem) or runs.empty:
        return None
    info = {**problem.info(), "f_saddle": problem.f_saddle()}
    h = chosen_hp_id(runs, info)
    if h is None:
        return None
    out = basin_map(suite, problem, optimizer, combos[h], n)
    out.insert(0, "hp", json.dumps(combos[h], sort_keys=True, default=list))
    out.insert(0, "hp_id", np.int64(h))
    out.insert(0, "optimizer", runs["optimizer"].iloc[0])
    out.insert(0, "problem", runs["problem"].iloc[0])
    return out
