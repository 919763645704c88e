"""Figures on a 2-D problem's plane: contours with each optimizer's path, and basins of
attraction (start points coloured by where their runs ended).

Contour plots draw f from ``cells/<cell>.landscape.parquet`` (columns x, y, f on a regular grid
over the problem's box) when the harness stored one; without it they show the trajectories on
the bare box.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from optzoo.report.data import ReportData
from optzoo.report.figures.basin_map import figure_basin_map
from optzoo.report.formatting import fmt
from optzoo.report.style import (
    base_names,
    family,
    grid,
    label_outer,
    legend,
    plain_log_labels,
    styles,
)
from optzoo.schema import BASIN_CATEGORIES
from optzoo.store import cell_name

if TYPE_CHECKING:
    from optzoo.report.registry import Job

CONTOUR_PATHS = 6  # paths per panel: more cannot be told apart on one landscape


def two_d(an: ReportData) -> list[str]:
    """The 2-D problems, in report order: one contour figure each."""
    return [p for p in an.problems if int(an.infos[p].get("dim", 0)) == 2]


def basin_problems(an: ReportData) -> list[str]:
    """The 2-D problems with several minima or a saddle: one basin figure each."""
    return [p for p in two_d(an) if an.infos[p]["category"] in BASIN_CATEGORIES]


def _landscape_grid(an: ReportData, problem: str):
    """``(xs, ys, F)`` from a stored ``landscape`` frame (columns x, y, f on a regular grid) of
    any cell of the problem, or None when none is stored."""
    for o in an.optimizers:
        g = an.store.read("landscape", [cell_name(problem, o)])
        if g.empty:
            continue
        xs = np.unique(g["x"].to_numpy())
        ys = np.unique(g["y"].to_numpy())
        if len(g) != len(xs) * len(ys):
            return None
        g = g.sort_values(["y", "x"], kind="stable")
        return xs, ys, g["f"].to_numpy(dtype=float).reshape(len(ys), len(xs))
    return None


def _draw_landscape(
    fig, ax, info: dict, xs: np.ndarray, ys: np.ndarray, F: np.ndarray, colorbar: bool = True
) -> None:
    """Filled contours of a stored landscape grid, with a colorbar.

    Problems with a minimum: log-spaced levels of f - min f (two per decade, lines at decades,
    at most 8 decades). Plateaus: the same for max f - f, the depth below the plateau. Saddle
    problems, unbounded below: linear levels of f, diverging around f at the saddle (white), so
    both descending and ascending directions show.
    """
    ok = np.isfinite(F)
    if not ok.any():
        return
    if info.get("f_star") is None and info.get("saddles") and info.get("f_saddle") is not None:
        fs = float(info["f_saddle"])
        lo_v, hi_v = float(F[ok].min()), float(F[ok].max())
        if not lo_v < fs < hi_v:
            lo_v, hi_v = min(lo_v, fs - 1e-9), max(hi_v, fs + 1e-9)
        levels = np.unique(np.concatenate([np.linspace(lo_v, fs, 11), np.linspace(fs, hi_v, 11)]))
        Fc = np.where(ok, F, np.nan)
        cf = _raster(ax, xs, ys, Fc, norm=TwoSlopeNorm(fs, lo_v, hi_v), cmap="RdBu_r")
        ax.contour(xs, ys, Fc, levels=levels[::2], colors="0.35", linewidths=0.4)
        ax.contour(xs, ys, Fc, levels=[fs], colors="0.3", linewidths=0.8, linestyles="--")
        if colorbar:
            cb = fig.colorbar(cf, ax=ax, shrink=0.9)
            cb.set_label("f (dashed: f at the saddle)")
        return
    if info.get("category") == "plateau":
        # A plateau is flat in f - min f; its exponentially small slope shows as depth below it.
        G = np.where(ok, float(F[ok].max()) - F, np.nan)
        label = "max f - f: depth below the plateau (log scale)"
        cmap = "Greys"  # deeper is darker, as low f is elsewhere
    else:
        fmin = float(F[ok].min())
        if info.get("f_star") is not None:
            fmin = min(fmin, float(info["f_star"]))
        G = np.where(ok, F - fmin, np.nan)
        label = "f - min f (log scale)"
        cmap = "Greys_r"
    pos = G[np.isfinite(G) & (G > 0)]
    if not pos.size:
        return
    b = math.ceil(math.log10(pos.max()))
    a = max(math.floor(math.log10(pos.min())), b - 8)
    if b <= a:
        b = a + 1
    levels = np.logspace(a, b, 2 * (b - a) + 1)
    Gc = np.clip(np.where(np.isfinite(G), G, 10.0**b), 10.0**a, 10.0**b)
    cf = _raster(ax, xs, ys, Gc, norm=LogNorm(10.0**a, 10.0**b), cmap=cmap)
    ax.contour(xs, ys, Gc, levels=levels[::2], colors="0.35", linewidths=0.5)
    if not colorbar:
        return
    cb = fig.colorbar(cf, ax=ax, shrink=0.9)
    cb.set_label(label)
    cb.set_ticks([10.0**k for k in range(a, b + 1)])
    cb.minorticks_off()
    plain_log_labels(cb.ax.yaxis)


def _by_family(an: ReportData, opts: Sequence[str]) -> dict[str, list[str]]:
    """Optimizers grouped by family, in suite order, at most ``CONTOUR_PATHS`` per group."""
    names = base_names(an)
    groups: dict[str, list[str]] = {}
    for o in opts:
        fam = family(names.get(o, o))
        if len(groups.get(fam, [])) == CONTOUR_PATHS:
            fam = f"{fam} (more)"
        groups.setdefault(fam, []).append(o)
    return groups


CONTOUR_PATHS = 6  # paths per panel: more cannot be told apart on one landscape


def _raster(ax, xs: np.ndarray, ys: np.ndarray, F: np.ndarray, **kw):
    """The landscape as an image under its contour lines: filled contours cost most of a contour
    figure's drawing time, an image of the stored grid a fraction of it."""
    dx, dy = (xs[1] - xs[0]) / 2, (ys[1] - ys[0]) / 2
    extent = (xs[0] - dx, xs[-1] + dx, ys[0] - dy, ys[-1] + dy)
    return ax.imshow(F, extent=extent, origin="lower", aspect="auto", interpolation="nearest",
                     alpha=0.6, **kw)  # fmt: skip


def contours(an: ReportData, job: Job) -> Figure | None:
    """Contours of f on one 2-D problem with each optimizer's path from the default start at its
    best setting, one panel per optimizer family (small multiples, at most 6 paths each)."""
    p = job.problem
    sty = styles(an)
    paths_all = an.paths
    info = an.infos[p]
    lo, hi = np.asarray(info["bounds"][0], float), np.asarray(info["bounds"][1], float)
    tracks = {}
    for o in an.optimizers:
        br = an.best_runs(p, o)
        br = br[(br["start_id"] == 0) & (br["seed_id"] == 0)]
        if br.empty or paths_all.empty:
            continue
        tr = paths_all[
            (paths_all["problem"] == p)
            & (paths_all["optimizer"] == o)
            & (paths_all["run"] == int(br["run"].iloc[0]))
        ].sort_values("step")
        if not tr.empty:
            tracks[o] = tr
    groups = _by_family(an, list(tracks))
    if not groups:
        return None
    fig, axes = grid(len(groups), share=True)
    land = _landscape_grid(an, p)
    tiny = 0.005 * float(np.linalg.norm(hi - lo))  # a path shorter than this is not seen
    handles, labels = [], []
    for k, (ax, (fam, opts)) in enumerate(zip(axes, groups.items(), strict=True)):
        if land is not None:
            _draw_landscape(fig, ax, info, *land, colorbar=k == len(groups) - 1)
        unseen = []
        for o in opts:
            tr, st = tracks[o], sty[o]
            xy = tr[["x", "y"]].to_numpy(dtype=float)
            moved = float(np.nanmax(np.linalg.norm(xy - xy[0], axis=1))) if len(xy) else 0.0
            if not moved > tiny:
                unseen.append(f"{o} moved {fmt(moved, 2)}")
            (ln,) = ax.plot(tr["x"], tr["y"], color=st["color"], ls=st["ls"], lw=1.3)
            ax.plot(tr["x"].iloc[-1], tr["y"].iloc[-1], st["marker"], color=st["color"],
                    ms=5, mec="k", mew=0.5)  # fmt: skip
            handles.append(ln)
            n = len(tr) - 1
            labels.append(f"{o} ({n} step{'' if n == 1 else 's'})")
        x0 = info.get("x0")
        if x0 is not None:
            ax.plot(x0[0], x0[1], "s", color="white", mec="k", ms=7, zorder=5)
        for m in info.get("minimizers", []):
            ax.plot(m[0], m[1], "*", color="gold", mec="k", ms=12, zorder=6)
        for sd in info.get("saddles", []):
            ax.plot(sd[0], sd[1], "X", color="red", mec="k", ms=9, zorder=6)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
        ax.set_title(fam)
        if unseen:  # a panel that looks empty says why
            ax.text(0.02, 0.02, "too short to see: " + ", ".join(unseen), fontsize=6,
                    transform=ax.transAxes, va="bottom", wrap=True,
                    bbox={"fc": "white", "ec": "none", "alpha": 0.8})  # fmt: skip
    label_outer(axes)
    marks = [("s", "white", "start"), ("*", "gold", "minimum"), ("X", "red", "saddle")]
    for mk, col, lab in marks:
        if lab == "start" or info.get({"minimum": "minimizers", "saddle": "saddles"}[lab]
                                       if lab != "start" else "x0"):  # fmt: skip
            handles.append(Line2D([], [], marker=mk, ls="", color=col, mec="k"))
            labels.append(lab)
    legend(fig, handles, labels, ncols=5)
    fig.suptitle(f"{p} ({info['category']}): paths from x0, best setting", fontsize=9)
    return fig


def _basin_labels(info: dict, runs: pd.DataFrame) -> list[str]:
    lo, hi = np.asarray(info["bounds"][0], float), np.asarray(info["bounds"][1], float)
    radius = 0.05 * float(np.linalg.norm(hi - lo))
    mins = np.asarray(info.get("minimizers") or np.zeros((0, 2)), float).reshape(-1, 2)
    sads = np.asarray(info.get("saddles") or np.zeros((0, 2)), float).reshape(-1, 2)
    out = []
    for xf, st in zip(runs["x_final"], runs["status"], strict=True):
        x = np.asarray(xf, float)
        if st == "diverged" or not np.isfinite(x).all():
            out.append("diverged")
            continue
        if len(mins):
            d = np.linalg.norm(mins - x, axis=1)
            k = int(np.argmin(d))
            if d[k] <= radius:
                out.append(f"min {k + 1}")
                continue
        if len(sads) and np.linalg.norm(sads - x, axis=1).min() <= radius:
            out.append("saddle")
        elif st == "solved" and info.get("f_star") is None:
            out.append("escaped")
        else:
            out.append("other")
    return out


def basins(an: ReportData, job: Job) -> Figure | None:
    """Basins of attraction on one 2-D problem: each start point coloured by where its run
    ended, one panel per optimizer at its best setting (optimizers alike share a panel)."""
    p = job.problem
    info = an.infos[p]
    opts = [o for o in an.optimizers if not an.best_runs(p, o).empty]
    if not opts:
        return None
    maps = an.store.read("basins", [cell_name(p, o) for o in opts])
    if not maps.empty:  # the suite's dense grid of starts (basin_grid); else the cell's starts
        n = round(math.sqrt(len(maps) / maps["optimizer"].nunique()))
        title = (
            f"basins of attraction: {p} ({n} x {n} starts, each optimizer at its chosen setting)"
        )
        return figure_basin_map(maps, info, optimizers=opts, title=title)
    mins = info.get("minimizers") or []
    palette = matplotlib.colormaps["tab10"]
    style = {f"min {k + 1}": (palette(k % 10), "o") for k in range(len(mins))}
    style |= {
        "saddle": ("black", "s"),
        "escaped": ("tab:cyan", "o"),
        "other": ("0.6", "o"),
        "diverged": ("black", "x"),
    }
    # Optimizers whose starts all end alike share one panel: identical panels say nothing.
    panels: dict[tuple, list[str]] = {}
    for o in opts:
        br = an.best_runs(p, o)
        key = (tuple(_basin_labels(info, br)), tuple(map(tuple, br["x0"].tolist())))
        panels.setdefault(key, []).append(o)
    fig, axes = grid(len(panels), share=True, title_lines=2)
    used: set[str] = set()
    lo, hi = info["bounds"]
    for ax, ((labels, starts), names) in zip(axes, panels.items(), strict=True):
        x0 = np.asarray(starts, float)
        for lab in style:
            m = np.array([s == lab for s in labels])
            if not m.any():
                continue
            used.add(lab)
            col, mk = style[lab]
            ax.scatter(
                x0[m, 0],
                x0[m, 1],
                color=col,
                marker=mk,
                s=22,
                edgecolors="k" if mk != "x" else None,
                linewidths=0.3,
            )
        for k, mnm in enumerate(mins):
            ax.plot(mnm[0], mnm[1], "*", color=palette(k % 10), mec="k", ms=12)
        for s in info.get("saddles", []):
            ax.plot(s[0], s[1], "X", color="red", mec="k", ms=9)
        pad = 0.03 * (np.asarray(hi, float) - np.asarray(lo, float))
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_xlabel("x₁ of the start")
        ax.set_ylabel("x₂ of the start")
        title = ", ".join(names)
        if len(names) > 3:  # alike: the names on a second line, cut to the panel's width
            title = textwrap.shorten(title, 60, placeholder=", ...")
            title = f"{len(names)} optimizers alike ({len(labels)} starts)\n{title}"
        else:
            title = f"{title} ({len(labels)} starts)"
        ax.set_title(title, fontsize=8)
    label_outer(axes)
    handles, labs = [], []
    for lab, (col, mk) in style.items():
        if lab in used:
            k = lab.split()[-1]
            text = lab
            if lab.startswith("min "):
                m = mins[int(k) - 1]
                text = f"ends at minimum ({fmt(m[0], 3)}, {fmt(m[1], 3)})"
            elif lab == "other":
                text = "ends elsewhere (budget / stalled)"
            else:
                text = {
                    "saddle": "ends at the saddle",
                    "escaped": "escaped the saddle",
                    "diverged": "diverged",
                }[lab]
            handles.append(
                Line2D([], [], marker=mk, ls="", color=col, mec="k" if mk != "x" else col)
            )
            labs.append(text)
    legend(fig, handles, labs, ncols=min(len(labs), 3))
    fig.suptitle(f"basins of attraction: {p} (start points coloured by where the run ended)")
    return fig
