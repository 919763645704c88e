"""Basin maps: the grid, the labels, provable basins, the chosen setting, and the figure."""

from __future__ import annotations

import math
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest

from optzoo import metrics, optimizers, problems, tuning
from optzoo.config import OptimizerSpec, Suite
from optzoo.harness import add_basin_map, merge_chunks, run_cell
from optzoo.harness.basins import (
    basin_labels,
    basin_map,
    cell_basin_map,
    chosen_hp_id,
    start_grid,
    wants_basin_map,
)
from optzoo.problems.base import Problem
from optzoo.report.figures.basin_map import figure_basin_map, label_image, panels

matplotlib.use("Agg")


def double_well() -> Problem:
    """f = (x^2 - 1)^2 + y^2: minima (+-1, 0), a saddle at the origin, separable."""
    return Problem(
        lambda x: (x[..., 0] ** 2 - 1) ** 2 + x[..., 1] ** 2,
        x0=[0.5, 0.5],
        name="double_well",
        category="multimodal",
        bounds=(-2.0, 2.0),
        f_star=0.0,
        minimizers=[[1.0, 0.0], [-1.0, 0.0]],
        saddles=[[0.0, 0.0]],
    )


def suite_for(problem: Problem, lrs: list[float], **kw) -> Suite:
    return Suite(
        "basins",
        (problem,),
        (OptimizerSpec("sgd", {"lr": lrs}),),
        **{"steps": 500, "evals": 500, "starts": 4, **kw},
    )


def test_start_grid_is_the_cell_centres_x_fastest():
    g = start_grid([[-2.0, 0.0], [2.0, 1.0]], 4)
    assert g.shape == (16, 2)
    assert g[:4, 0].tolist() == [-1.5, -0.5, 0.5, 1.5]
    assert g[:4, 1].tolist() == [0.125] * 4
    assert g[::4, 1].tolist() == [0.125, 0.375, 0.625, 0.875]
    assert not (start_grid([[-1.0, -1.0], [1.0, 1.0]], 40) == 0).any()  # no start on a saddle


def test_labels_by_the_rules():
    info = {
        "bounds": [[-2.0, -2.0], [2.0, 2.0]],  # radius 0.05 * sqrt(32) = 0.283
        "minimizers": [[1.0, 0.0], [-1.0, 0.0]],
        "saddles": [[0.0, 0.0]],
        "f_star": None,
    }
    ends = [(0.9, 0.1), (-1.2, 0.0), (0.1, 0.1), (0.1, 0.1), (1.5, 1.5), (1.5, 1.5), (1.0, 0.0)]
    status = "budget solved solved budget solved budget diverged budget".split()
    x_final = [list(e) for e in ends] + [[math.inf, 0.0]]
    runs = pd.DataFrame({"x_final": x_final, "status": status})
    got = basin_labels(info, runs)
    assert got == ["min 1", "min 2", "saddle", "saddle", "escaped", "other", "diverged", "diverged"]
    # Where f* is known, being solved is no escape.
    assert basin_labels({**info, "f_star": 0.0}, runs)[4] == "other"


def test_double_well_gradient_descent_keeps_each_half_plane_in_its_basin():
    # x' = x (1 - 4 lr (x^2 - 1)) keeps the sign of x while 4 lr (x^2 - 1) < 1 (|x| <= 2 and
    # lr < 1/12), and y' = (1 - 2 lr) y: every start with x > 0 ends at (1, 0), x < 0 at (-1, 0).
    p = double_well()
    m = basin_map(suite_for(p, [0.02]), p, optimizers.get_class("sgd"), {"lr": 0.02}, n=40)
    assert len(m) == 1600 and list(m.columns) == ["x0_1", "x0_2", "label", "status"]
    right = m["x0_1"] > 0
    assert (m.loc[right, "label"] == "min 1").all()
    assert (m.loc[~right, "label"] == "min 2").all()
    assert (m["status"] == "solved").all()


def test_himmelblau_starts_near_a_minimizer_end_there_at_a_small_step():
    # Within 0.3 of each minimizer the Hessian is positive definite (largest eigenvalue L < 120),
    # and gradient descent with lr = 0.005 < 1/L descends there without leaving the basin.
    p = problems.get("himmelblau")
    m = basin_map(suite_for(p, [0.005]), p, optimizers.get_class("sgd"), {"lr": 0.005}, n=40)
    x0 = m[["x0_1", "x0_2"]].to_numpy()
    for k, mn in enumerate(p.minimizers):
        near = np.linalg.norm(x0 - np.asarray(mn), axis=1) < 0.3
        assert near.any()
        assert (m.loc[near, "label"] == f"min {k + 1}").all()
    assert set(m["label"]) == {"min 1", "min 2", "min 3", "min 4"}


def test_chosen_setting_is_the_tables_choice_on_held_out_starts():
    p = double_well()
    suite = suite_for(p, [1e-3, 0.02, 0.3], tune_starts=4)
    cell = run_cell(suite, p, suite.optimizers[0])
    runs = cell.runs.assign(row=np.arange(len(cell.runs)))
    info = {**p.info(), "f_saddle": p.f_saddle()}
    hits = {"double_well": metrics.problem_hits(runs, info)}
    best = tuning.best_per_problem(metrics.hp_stats(runs, hits))
    assert chosen_hp_id(cell.runs, info) == int(best["hp_id"].iloc[0]) == 1
    m = cell_basin_map(suite, p, optimizers.get_class("sgd"), suite.optimizers[0].grid(),
                       cell.runs, n=8)  # fmt: skip
    assert list(m.columns[:4]) == ["problem", "optimizer", "hp_id", "hp"]
    assert (m["hp_id"] == 1).all() and m["hp"].iloc[0] == '{"lr": 0.02}'
    assert len(m) == 64


def test_only_two_d_multimodal_and_saddle_problems_are_mapped():
    assert wants_basin_map(problems.get("himmelblau"))
    assert wants_basin_map(problems.get("two_neuron"))
    assert not wants_basin_map(problems.get("rosenbrock"))
    assert not wants_basin_map(problems.get("deep_linear"))
    with pytest.raises(ValueError, match="not 2-D"):
        basin_map(suite_for(p := problems.get("deep_linear"), [0.1]), p,
                  optimizers.get_class("sgd"), {"lr": 0.1})  # fmt: skip


def _maps() -> pd.DataFrame:
    g = start_grid([[-2.0, -2.0], [2.0, 2.0]], 6).numpy()
    right = np.where(g[:, 0] > 0, "min 1", "min 2").astype(object)
    odd = right.copy()
    odd[0] = "diverged"
    frames = [
        pd.DataFrame({"optimizer": o, "x0_1": g[:, 0], "x0_2": g[:, 1], "label": lab})
        for o, lab in (("sgd", right), ("adam", right), ("newton", odd))
    ]
    return pd.concat(frames, ignore_index=True)


def test_identical_maps_share_a_panel():
    assert panels(_maps()) == [["sgd", "adam"], ["newton"]]


def test_the_image_holds_each_start_label_at_its_place():
    m = _maps()
    order = ["min 1", "min 2", "diverged"]
    img, extent = label_image(m[m["optimizer"] == "newton"], order)
    assert img.shape == (6, 6) and extent == pytest.approx((-2.0, 2.0, -2.0, 2.0))
    assert img[0, 0] == 2  # the first start (lowest x and y) diverged
    assert (img[:, 3:] == 0).all() and (img[1:, :3] == 1).all()


def test_figure_has_one_image_per_panel_and_its_legend_outside_the_panels():
    info = double_well().info()
    fig = figure_basin_map(_maps(), info)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 2
    assert all(len(ax.images) == 1 for ax in shown)
    fig.draw_without_rendering()  # a bare Figure: lay it out as saving would
    (legend,) = fig.legends
    box = legend.get_window_extent()
    for ax in shown:
        assert not box.overlaps(ax.get_window_extent())
    texts = [t.get_text() for t in legend.get_texts()]
    assert "diverged" in texts and "ends at minimum (1, 0)" in texts


def test_a_solved_run_away_from_the_listed_minimizers_is_not_called_stalled():
    # two_neuron's minima are the curve w1 w2 = 1 but only (1, 1) and (-1, -1) are listed: a run
    # that met the success target elsewhere on the curve must not read "budget / stalled".
    g = start_grid([[-2.0, -2.0], [2.0, 2.0]], 4)
    maps = pd.DataFrame(
        {
            "optimizer": "sgd",
            "x0_1": g[:, 0],
            "x0_2": g[:, 1],
            "label": ["other"] * 8 + ["min 1"] * 8,
            "status": ["solved"] * 4 + ["budget"] * 4 + ["solved"] * 8,
        }
    )
    fig = figure_basin_map(maps, problems.get("two_neuron").info())
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "solved, away from the listed minimizers" in texts
    assert "ends elsewhere (budget / stalled)" in texts


def test_a_cell_split_into_chunks_gets_the_basin_map_of_the_whole_cell():
    # A distributed executor runs a cell in chunks (run_cell(only=...)), merges them and only then
    # adds the map, from the merged tuning runs: the same map as the unsplit cell's.
    p = problems.get("himmelblau")
    suite = suite_for(p, [1e-3, 0.01], tune_starts=3, basin_grid=6)
    ospec = suite.optimizers[0]
    whole = run_cell(suite, p, ospec)
    n = len(whole.runs)
    chunks = [run_cell(suite, p, ospec, only=list(r)) for r in (range(0, 7), range(7, n))]
    assert all(c.basins is None for c in chunks)
    merged = add_basin_map(suite, p, ospec, None, merge_chunks(chunks))
    assert len(whole.basins) == 36
    pd.testing.assert_frame_equal(merged.basins, whole.basins)


def test_an_end_point_beyond_the_float_range_is_labelled_quietly():
    """A run that ran off to 1e300 is far from every minimizer and saddle: labelled, no warning
    (the suite's command printed numpy's overflow warning for such runs)."""
    info = {"bounds": [[-2, -2], [2, 2]], "minimizers": [[1, 1]], "saddles": [[0, 0]], "f_star": 0}
    ends = [[1e300, -1e300], [1.0, 1.0], [0.0, 0.0], [math.nan, 1.0]]
    runs = pd.DataFrame(
        {"x_final": [np.array(e) for e in ends], "status": ["budget", "solved", "budget", "x"]}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert basin_labels(info, runs) == ["other", "min 1", "saddle", "diverged"]
