"""The report: every table and figure from a tiny real results directory, byte-identical tables
on regeneration, and no optimizer imported."""

from __future__ import annotations

import math
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from optzoo import report
from optzoo.config import OptimizerSpec, Suite
from optzoo.errors import ConfigError
from optzoo.harness import run_cell
from optzoo.problems.base import Problem
from optzoo.store import Store, write_frame

ROOT = Path(__file__).resolve().parents[1]


def quad(x):
    return 0.5 * (x[..., 0] ** 2 + 10 * x[..., 1] ** 2)


def rosen(x):
    return (1 - x[..., 0]) ** 2 + 100 * (x[..., 1] - x[..., 0] ** 2) ** 2


def saddle(x):
    return x[..., 0] ** 2 - x[..., 1] ** 2


def steep(x):
    # A steep wall at x1 = 1: large learning rates are thrown off it.
    return (
        x[..., 0] ** 2 + x[..., 1] ** 2 + 1e3 * torch.nn.functional.softplus(20 * (x[..., 0] - 1))
    )


def bowl(x):
    return torch.log1p(x[..., 0] ** 2 + x[..., 1] ** 2)


PROBLEMS = [
    Problem(quad, x0=[1.0, 1.0], name="quad", category="ravine", f_star=0.0,
            minimizers=[[0.0, 0.0]], bounds=[-2.0, 2.0]),
    Problem(rosen, x0=[-1.2, 1.0], name="rosen", category="multimodal", f_star=0.0,
            minimizers=[[1.0, 1.0]], bounds=[-2.0, 2.0]),
    Problem(saddle, x0=[0.5, 1e-3], name="saddle", category="saddle", saddles=[[0.0, 0.0]],
            bounds=[-1.0, 1.0], escape_radius=1.5),
    Problem(steep, x0=[0.5, 0.5], name="steep", category="cliff", f_star=0.0,
            minimizers=[[0.0, 0.0]], bounds=[-1.0, 1.0]),
    Problem(bowl, x0=[1.0, -1.0], name="bowl", category="plateau", bounds=[-2.0, 2.0]),
]  # fmt: skip
OPTIMIZERS = (
    OptimizerSpec("sgd", {"lr": [1e-3, 1e-2, 1e-1]}),
    OptimizerSpec("momentum", {"lr": [1e-3, 1e-2, 1e-1]}),
)
WITH_GRID = {"quad", "saddle"}  # the others exercise the report without a stored landscape


def landscape(problem: Problem, n: int = 41) -> pd.DataFrame:
    lo, hi = problem.bounds.tolist()
    xs = torch.linspace(lo[0], hi[0], n, dtype=torch.float64)
    ys = torch.linspace(lo[1], hi[1], n, dtype=torch.float64)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    f = problem.fn(torch.stack([X.reshape(-1), Y.reshape(-1)], -1)).detach()
    return pd.DataFrame({"x": X.reshape(-1).numpy(), "y": Y.reshape(-1).numpy(), "f": f.numpy()})


def build(root: Path, problems: list[Problem], **kw) -> Path:
    suite = Suite(name="tiny", problems=(), optimizers=OPTIMIZERS, steps=60, starts=3, **kw)
    store = Store(root)
    store.open(suite.to_dict(), suite.digest())
    for p in problems:
        for o in OPTIMIZERS:
            res = run_cell(suite, p, o)
            frames = {"runs": res.runs, "traces": res.traces, "paths": res.paths}
            grid = getattr(res, "landscape", None)
            if grid is not None:
                frames["landscape"] = grid
            store.write_cell(res.cell, frames, res.problem, res.meta)
            if grid is None and p.name in WITH_GRID:
                write_frame(store.cells_dir / f"{res.cell}.landscape.parquet", landscape(p))
    return root


PROBE = """
import runpy, sys
sys.argv = ["optzoo.report", {root!r}]
try:
    runpy.run_module("optzoo.report", run_name="__main__", alter_sys=True)
except SystemExit as e:
    assert not e.code, e.code
bad = [m for m in ("optzoo.optimizers", "optzoo.harness", "optzoo.analysis") if m in sys.modules]
assert not bad, bad
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """A tiny real results directory; its tables written here, then deleted and regenerated
    with every figure by ``python -m optzoo.report DIR`` in a fresh process that must not import
    an optimizer or the harness."""
    root = build(tmp_path_factory.mktemp("res") / "tiny", PROBLEMS)
    report.write(root, figures=False)
    first = {p.name: p.read_bytes() for p in (root / "tables").iterdir()}
    shutil.rmtree(root / "tables")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(root=str(root))],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return root, first


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


# Expected sizes, written out here rather than taken from the report: 120 dpi; a panel grid is
# at most 3 panels wide, 4.0 x 3.2 inches a panel, with 0.6 inches of margin across and 0.7 for
# the legend below; fixed figures are 8.2 x 4.4 (profile) and 10 x 4.2 (cliff, critical points).
def grid_px(n_panels: int) -> tuple[int, int]:
    cols, rows = min(3, n_panels), math.ceil(n_panels / 3)
    return (round((4.0 * cols + 0.6) * 120), round((3.2 * rows + 0.7) * 120))


PROFILE_PX, CLIFF_PX = (984, 528), (1200, 504)


def critical_points_px(n_problems: int, n_optimizers: int) -> tuple[int, int]:
    """10 x 4.2 inches, and a 0.7-inch legend row per six keys below the panels when colour
    names the problem and marker the optimizer."""
    rows = math.ceil((n_problems + n_optimizers) / 6) if n_problems > 1 and n_optimizers > 1 else 0
    return (1200, round((4.2 + 0.7 * rows) * 120))


def test_every_table_is_written(results):
    results, _ = results
    tables = sorted(p.name for p in (results / "tables").iterdir())
    assert tables == sorted(
        [
            "convergence.csv", "convergence.md", "convergence.tex", "targets.md", "targets.tex",
            "categories.csv", "categories.md", "categories.tex", "landscape.csv", "landscape.md",
            "timing.csv",
        ]
    )  # fmt: skip
    conv = pd.read_csv(results / "tables" / "convergence.csv")
    assert len(conv) == len(PROBLEMS) * len(OPTIMIZERS)
    # No held-out starts in this suite: the tables say the settings were chosen on test runs.
    assert set(conv["tuning"]) == {"best setting per problem, test runs"}
    assert (conv["success_lo"] <= conv["success_rate"]).all()
    assert (conv["success_rate"] <= conv["success_hi"]).all()
    solved = np.isfinite(conv["art"])
    assert (conv.loc[solved, "art_lo"] <= conv.loc[solved, "art"]).all()
    assert (conv.loc[solved, "art"] <= conv.loc[solved, "art_hi"]).all()
    assert (conv["successes"] <= conv["runs"]).all()
    assert conv.loc[conv["problem"] == "saddle", "target"].eq("escape").all()
    assert conv.loc[conv["problem"] == "bowl", "target"].str.startswith("f_ref").all()
    # Wall time appears in timing.csv only.
    for p in (results / "tables").iterdir():
        if p.name != "timing.csv":
            assert "wall_s" not in p.read_text()
    timing = pd.read_csv(results / "tables" / "timing.csv")
    assert len(timing) == len(PROBLEMS) * len(OPTIMIZERS)
    assert (timing["point_steps_per_s"] > 0).all()
    md = (results / "tables" / "targets.md").read_text()
    assert "## quad" in md and "aRT escape" in md and "rank-sum" in md
    tex = (results / "tables" / "targets.tex").read_text()
    assert r"\toprule" in tex and "**" not in tex


def test_every_figure_has_its_size(results):
    results, _ = results
    fig = results / "figures"
    n_probs, n_opts = len(PROBLEMS), len(OPTIMIZERS)
    n_cats = len({p.category for p in PROBLEMS})
    expect = {
        "convergence": grid_px(n_probs),
        "ecdf": grid_px(n_cats),
        "lr_sensitivity": grid_px(n_cats),
        "profile": PROFILE_PX,
    }
    assert expect["convergence"] == (1512, 852)  # 5 problems: two rows of three panels
    # sgd and momentum are two families: one contour panel each.
    for p in PROBLEMS:
        expect[f"contour_{p.name}"] = grid_px(2)
    # Basins: one panel per distinct outcome pattern, one or two here.
    basins = {grid_px(k) for k in range(1, n_opts + 1)}
    if "min_ratio" in pd.read_parquet(next((results / "cells").glob("*.runs.parquet"))).columns:
        # The harness stores it. Shown: non-diverged end points, those above 2-D if any.
        runs = pd.concat(pd.read_parquet(f) for f in (results / "cells").glob("*.runs.parquet"))
        shown = runs[(runs["status"] != "diverged") & np.isfinite(runs["min_ratio"])]
        dims = shown["x_final"].map(len)
        shown = shown[dims > 2] if (dims > 2).any() else shown
        n_p, n_o = shown["problem"].nunique(), shown["optimizer"].nunique()
        expect["critical_points"] = critical_points_px(n_p, n_o)
    names = sorted(p.stem for p in fig.glob("*.png"))
    assert names == sorted([*expect, "basins_rosen", "basins_saddle"])
    assert not list(fig.glob("*.svg"))  # one format per figure
    for name, size in expect.items():
        assert png_size(fig / f"{name}.png") == size, name
    for name in ("basins_rosen", "basins_saddle"):
        assert png_size(fig / f"{name}.png") in basins, name
    assert not list(fig.glob("*.tmp")) and not list(fig.glob(".*"))


def test_index_lists_every_file(results):
    results, _ = results
    text = report.index_markdown(results)
    for p in list((results / "tables").iterdir()) + list((results / "figures").glob("*.png")):
        assert p.name in text


def test_summary(results):
    results, _ = results
    text = report.summary(results)
    lines = text.splitlines()
    assert any(line.startswith("sgd") for line in lines)
    assert any(line.startswith("momentum") for line in lines)
    assert "ravine" in text and "saddle" in text


def test_tables_regenerate_byte_identical_without_importing_optimizers(results):
    root, first = results  # the fixture's subprocess checked the imports
    again = {p.name: p.read_bytes() for p in (root / "tables").iterdir()}
    assert again.keys() == first.keys()
    for name in first:
        if name != "timing.csv":  # wall times are the same data, but their floats need not be
            assert again[name] == first[name], name


def test_command_line_refuses_a_non_results_dir(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a results directory" in err and "Traceback" not in err
    assert not (tmp_path / "tables").exists()


def test_cliff_figure_compares_two_result_sets(results, tmp_path):
    results, _ = results
    clipped = build(tmp_path / "clipped", [PROBLEMS[3]], clip_norm=1.0)
    files = report.figure_cliff(results, clipped, outdir=tmp_path / "fig")
    assert [p.name for p in files] == ["cliff.png"]
    assert png_size(files[0]) == CLIFF_PX


def _rewrite_runs(root: Path, change) -> None:
    for p in (root / "cells").glob("*.runs.parquet"):
        write_frame(p, change(pd.read_parquet(p)))


def test_critical_points_drawn_only_with_the_analysis_columns(results, tmp_path):
    results, _ = results
    bare = tmp_path / "bare"
    shutil.copytree(results, bare)
    _rewrite_runs(
        bare, lambda r: r.drop(columns=["min_ratio", "n_neg", "eigenvalues"], errors="ignore")
    )
    assert report.figure_critical_points(bare, outdir=tmp_path / "none") == []

    def spectra(r: pd.DataFrame) -> pd.DataFrame:
        rng = np.random.default_rng(0)
        r["eigenvalues"] = [list(rng.normal(size=2)) for _ in range(len(r))]
        r["min_ratio"] = [float(np.mean(np.asarray(e) > 0)) for e in r["eigenvalues"]]
        r["n_neg"] = [int(np.sum(np.asarray(e) < 0)) for e in r["eigenvalues"]]
        return r

    for name, change in (
        ("index", lambda r: spectra(r).drop(columns="eigenvalues")),
        ("eig", spectra),
    ):
        root = tmp_path / name
        shutil.copytree(bare, root)
        _rewrite_runs(root, change)
        files = report.figure_critical_points(root, outdir=tmp_path / f"{name}_fig")
        assert [p.name for p in files] == ["critical_points.png"]
        runs = pd.concat(pd.read_parquet(f) for f in (root / "cells").glob("*.runs.parquet"))
        shown = runs[runs["status"] != "diverged"]
        size = critical_points_px(shown["problem"].nunique(), shown["optimizer"].nunique())
        assert png_size(files[0]) == size


# -- figures that read ---------------------------------------------------------------------------
def test_palette_gives_families_one_hue_and_members_distinct_styles():
    names = ["sgd", "sgd+escape", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta",
             "adam", "adamw", "newton", "lbfgs", "bfgs", "dfp", "my_rule"]  # fmt: skip
    specs = [{"name": n} for n in names] + [
        {"name": "sgd", "label": "sgd+clip"},
        {"name": "newton", "label": "newton-sf"},
    ]
    an = SimpleNamespace(
        manifest={"suite": {"optimizers": specs}},
        optimizers=[s.get("label") or s["name"] for s in specs],
    )
    st = report.styles(an)
    pairs = [(v["color"], str(v["ls"])) for v in st.values()]
    assert len(set(pairs)) == len(pairs) == 16
    assert st["lbfgs"]["color"] == st["bfgs"]["color"] == st["dfp"]["color"]
    assert st["newton"]["color"] == st["newton-sf"]["color"] != st["lbfgs"]["color"]
    assert st["sgd"]["color"] == st["sgd+clip"]["color"] != st["adam"]["color"]


def _drawn(name: str, results: Path) -> list:
    """The matplotlib figures of one kind, drawn and not saved."""
    return report.render(results, name)


def test_convergence_panels_have_data_and_log_axes_where_values_span_decades(results):
    results, _ = results
    (fig,) = _drawn("convergence", results)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(panels) == len(PROBLEMS)
    for ax in panels:
        ys = [np.asarray(ln.get_ydata(), float) for ln in ax.get_lines() if len(ln.get_xdata()) > 1]
        assert ys, ax.get_title()  # no empty panel
        y = np.concatenate(ys)
        y = np.abs(y[np.isfinite(y) & (y != 0)])
        if y.size and y.max() / y.min() > 1e3:
            assert ax.get_yscale() in ("log", "symlog"), ax.get_title()
    saddle = next(ax for ax in panels if ax.get_title().startswith("saddle"))
    assert saddle.get_yscale() == "symlog" and "escape" in saddle.get_title()


def test_legends_sit_outside_the_panels(results):
    results, _ = results
    for name in ("convergence", "ecdf", "profile"):
        (fig,) = _drawn(name, results)
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig).draw()
        legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        assert legends, name
        for leg in legends:
            box = leg.get_window_extent()
            for ax in fig.axes:
                if ax.get_visible() and ax.get_title():
                    assert not box.overlaps(ax.get_window_extent()), name


def test_a_family_larger_than_the_line_styles_still_tells_its_members_apart():
    # Nine optimizers the palette does not know: one family ("other"), more than six members.
    specs = [{"name": f"torch.optim:Rule{k}"} for k in range(9)]
    an = SimpleNamespace(manifest={"suite": {"optimizers": specs}},
                         optimizers=[s["name"] for s in specs])  # fmt: skip
    st = report.styles(an)
    pairs = [(v["color"], str(v["ls"])) for v in st.values()]
    assert len(set(pairs)) == len(pairs) == 9


def _panels(fig) -> list:
    """The data panels of a figure (visible axes with a title; colorbars have none)."""
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]


def _has_data(ax) -> bool:
    lines = [ln for ln in ax.get_lines() if len(np.atleast_1d(ln.get_xdata())) > 1]
    scatters = [c for c in ax.collections if len(getattr(c, "get_offsets", list)()) > 0]
    return bool(lines or scatters or ax.patches)


@pytest.mark.parametrize("name", ["convergence", "ecdf", "lr_sensitivity", "basins"])
def test_no_panel_is_empty(results, name):
    results, _ = results
    for fig in _drawn(name, results):
        panels = _panels(fig)
        assert panels, name
        for ax in panels:
            assert _has_data(ax), (name, ax.get_title())


def test_contour_panels_hold_at_most_six_paths_and_say_why_one_looks_empty(results):
    results, _ = results
    figs = _drawn("contour", results)
    assert len(figs) == len(PROBLEMS)  # every problem here is 2-D
    for fig in figs:
        for ax in _panels(fig):
            paths = [ln for ln in ax.get_lines() if len(np.atleast_1d(ln.get_xdata())) > 1]
            assert len(paths) <= 6, ax.get_title()
            # A path shorter than 0.5% of the box cannot be seen; the panel must say so.
            lo_x, hi_x = ax.get_xlim()
            lo_y, hi_y = ax.get_ylim()
            diag = math.hypot(hi_x - lo_x, hi_y - lo_y)
            for ln in paths:
                xy = np.column_stack([ln.get_xdata(), ln.get_ydata()]).astype(float)
                if np.linalg.norm(xy - xy[0], axis=1).max() <= 0.005 * diag:
                    assert any("too short to see" in t.get_text() for t in ax.texts)


@pytest.mark.parametrize("name", ["convergence", "ecdf", "lr_sensitivity", "profile"])
def test_an_axis_whose_data_spans_more_than_three_decades_is_logarithmic(results, name):
    results, _ = results
    (fig,) = _drawn(name, results)
    for ax in _panels(fig):
        for axis, get in (("x", "get_xdata"), ("y", "get_ydata")):
            vals = [np.asarray(getattr(ln, get)(), float) for ln in ax.get_lines()]
            v = np.abs(np.concatenate(vals)) if vals else np.zeros(0)
            v = v[np.isfinite(v) & (v > 0)]
            if v.size and v.max() / v.min() > 1e3:
                scale = ax.get_xscale() if axis == "x" else ax.get_yscale()
                assert scale in ("log", "symlog"), (name, ax.get_title(), axis)


@pytest.mark.parametrize("name", ["contour", "basins", "lr_sensitivity", "critical_points"])
def test_legends_of_every_figure_sit_outside_the_data(results, name):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    results, _ = results
    for fig in _drawn(name, results):
        FigureCanvasAgg(fig).draw()
        legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        assert legends, name
        for leg in legends:
            for ax in _panels(fig):
                assert not leg.get_window_extent().overlaps(ax.get_window_extent()), name


def test_registry_names_each_figure_once_with_a_function_and_a_caption():
    assert set(report.FIGURES) == {
        "contour", "convergence", "ecdf", "profile", "basins", "lr_sensitivity", "cliff",
        "critical_points",
    }  # fmt: skip
    for name, spec in report.FIGURES.items():
        assert spec.name == name and callable(spec.draw) and spec.caption.endswith(".")
    with pytest.raises(ConfigError, match="allowed: basins, cliff"):
        report.render(".", "nope")


def test_draw_writes_the_chosen_figures_in_one_or_two_processes_alike(results, tmp_path):
    results, _ = results
    one = report.draw(results, ["profile", "contour"], outdir=tmp_path / "one", workers=1)
    two = report.draw(results, ["profile", "contour"], outdir=tmp_path / "two", workers=2)
    assert [p.name for p in one] == [p.name for p in two]
    assert [p.name for p in one][0] == "profile.png" and len(one) == 1 + len(PROBLEMS)
    for a, b in zip(one, two, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_contour_groups_hold_at_most_six_optimizers():
    from optzoo.report.figures.landscape import _by_family

    names = [f"adam{k}" for k in range(8)] + ["sgd"]
    specs = [{"name": "adam", "label": n} for n in names[:-1]] + [{"name": "sgd"}]
    an = SimpleNamespace(manifest={"suite": {"optimizers": specs}}, optimizers=names)
    groups = _by_family(an, names)
    assert [len(g) for g in groups.values()] == [6, 2, 1]
    assert sorted(o for g in groups.values() for o in g) == sorted(names)


def test_a_long_symlog_axis_has_no_tick_at_plus_or_minus_one_beside_zero():
    # Over 56 decades the linear band around 0 is a hair wide: ticks at 0 and +-1 overprint.
    from matplotlib.figure import Figure

    from optzoo.report.style import symlog_ticks

    ax = Figure().subplots()
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylim(-1e28, 1e28)
    symlog_ticks(ax)
    ticks = list(ax.get_yticks())
    assert 0.0 in ticks and 1.0 not in ticks and -1.0 not in ticks
    assert 5 <= len(ticks) <= 11 and ticks == sorted(ticks)


def test_two_decades_of_log_axis_get_no_minor_labels():
    # 1 to 60 gradient evaluations: labels at 2, 3, ..., 9, 20, ..., 60 would overprint.
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    from optzoo.report.style import decades

    ax = Figure().subplots()
    ax.set_xscale("log")
    ax.set_xlim(1, 60)
    decades(ax)
    assert isinstance(ax.xaxis.get_minor_formatter(), NullFormatter)
