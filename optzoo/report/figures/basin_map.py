"""The basin-map figure: each start of a dense grid coloured by where its run ended.

Reads stored basin frames (``optzoo.harness.basins.cell_basin_map``: one row per start and
optimizer, columns ``optimizer, x0_1, x0_2, label``) and the problem's facts; runs nothing.
Optimizers whose maps are identical share one panel (identical panels say nothing); the legend
sits outside the panels, below them.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd

from optzoo.report.style import legend

CAPTION = (
    "Basins of attraction on a {n} x {n} grid of starts over the box: each start coloured by "
    "the minimizer its run ended near (or saddle, escaped, solved elsewhere, diverged, other), "
    "each optimizer at its chosen setting; stars: minimizers, crosses: saddles. Optimizers "
    "with identical maps share a panel."
)
FIXED_COLOURS = {
    "saddle": "0.35",
    "escaped": "tab:cyan",
    "solved": "khaki",
    "other": "0.85",
    "diverged": "black",
}
LEGEND_TEXT = {
    "saddle": "ends at the saddle",
    "escaped": "escaped the saddle",
    "solved": "solved, away from the listed minimizers",
    "other": "ends elsewhere (budget / stalled)",
    "diverged": "diverged",
}
PANEL_INCHES = 2.8
MAX_COLS = 4


def label_colours(n_minimizers: int) -> dict[str, object]:
    """Colour per label: minimizer k takes tab10's k-th colour, then the fixed ones."""
    import matplotlib

    palette = matplotlib.colormaps["tab10"]
    return {f"min {k + 1}": palette(k % 10) for k in range(n_minimizers)} | FIXED_COLOURS


def label_image(frame: pd.DataFrame, order: Sequence[str]) -> tuple[np.ndarray, tuple]:
    """Label codes (index into ``order``) as an ``(n_y, n_x)`` image, rows by ascending x0_2,
    and its extent ``(left, right, bottom, top)``: the cells the grid's centres stand for."""
    xs = np.unique(frame["x0_1"].to_numpy(float))
    ys = np.unique(frame["x0_2"].to_numpy(float))
    code = {lab: i for i, lab in enumerate(order)}
    img = np.full((len(ys), len(xs)), np.nan)
    ix = np.searchsorted(xs, frame["x0_1"].to_numpy(float))
    iy = np.searchsorted(ys, frame["x0_2"].to_numpy(float))
    img[iy, ix] = [code[lab] for lab in frame["label"]]
    hx = (xs[-1] - xs[0]) / (2 * (len(xs) - 1)) if len(xs) > 1 else 0.5
    hy = (ys[-1] - ys[0]) / (2 * (len(ys) - 1)) if len(ys) > 1 else 0.5
    return img, (xs[0] - hx, xs[-1] + hx, ys[0] - hy, ys[-1] + hy)


def panels(maps: pd.DataFrame, optimizers: Sequence[str] | None = None) -> list[list[str]]:
    """Optimizers grouped by identical maps (same starts, same labels), in ``optimizers`` order."""
    names = list(optimizers) if optimizers is not None else list(dict.fromkeys(maps["optimizer"]))
    groups: dict[tuple, list[str]] = {}
    for o in names:
        m = maps[maps["optimizer"] == o].sort_values(["x0_2", "x0_1"], kind="stable")
        if m.empty:
            continue
        key = (tuple(m["x0_1"]), tuple(m["x0_2"]), tuple(m["label"]))
        groups.setdefault(key, []).append(o)
    return list(groups.values())


def figure_basin_map(
    maps: pd.DataFrame, info: dict, optimizers: Sequence[str] | None = None, title: str = ""
):
    """One problem's basin maps as images, one panel per group of identical maps.

    ``maps``: the problem's stored basin frames (any number of optimizers); ``info``: its facts
    (bounds, minimizers, saddles). Returns the matplotlib Figure (the caller saves it).
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if "status" in maps:
        # A run labelled "other" that met the success target ended at a minimum the problem does
        # not list (two_neuron's minima are the curve w1 w2 = 1): not "budget / stalled".
        solved = (maps["label"] == "other") & (maps["status"] == "solved")
        maps = maps.assign(label=maps["label"].where(~solved, "solved"))
    mins = [tuple(m) for m in info.get("minimizers") or []]
    sads = [tuple(s) for s in info.get("saddles") or []]
    colours = label_colours(len(mins))
    order = list(colours)
    cmap = ListedColormap([colours[k] for k in order])
    groups = panels(maps, optimizers)
    ncols = max(1, min(MAX_COLS, len(groups)))
    nrows = max(1, math.ceil(len(groups) / ncols))
    fig = Figure(
        figsize=(PANEL_INCHES * ncols + 0.8, PANEL_INCHES * nrows + 1.2), layout="constrained"
    )
    axes = fig.subplots(nrows, ncols, squeeze=False)
    used: set[str] = set()
    for ax in axes.flat[len(groups) :]:
        ax.set_visible(False)
    for ax, names in zip(axes.flat, groups, strict=False):
        m = maps[maps["optimizer"] == names[0]]
        used |= set(m["label"])
        img, extent = label_image(m, order)
        ax.imshow(img, origin="lower", extent=extent, cmap=cmap, vmin=-0.5,
                  vmax=len(order) - 0.5, interpolation="nearest", aspect="auto")  # fmt: skip
        # White stars: a star in its basin's own colour would vanish into that basin.
        for p in mins:
            ax.plot(p[0], p[1], "*", color="white", mec="k", mew=0.8, ms=12)
        for s in sads:
            ax.plot(s[0], s[1], "X", color="red", mec="k", ms=9)
        lo, hi = info["bounds"]
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_xlabel("$x_1$ of the start")
        ax.set_ylabel("$x_2$ of the start")
        head = ", ".join(names) if len(names) <= 3 else f"{len(names)} optimizers alike"
        ax.set_title(head, fontsize=9)
        if len(names) > 3:
            ax.text(0.5, -0.3, ", ".join(names), transform=ax.transAxes, ha="center",
                    va="top", fontsize=6, wrap=True)  # fmt: skip
    handles: list = []
    texts: list[str] = []
    for lab in order:
        if lab not in used:
            continue
        handles.append(Patch(facecolor=colours[lab], edgecolor="k", linewidth=0.4))
        if lab.startswith("min "):
            p = mins[int(lab.split()[1]) - 1]
            texts.append(f"ends at minimum ({p[0]:.3g}, {p[1]:.3g})")
        else:
            texts.append(LEGEND_TEXT[lab])
    if mins:
        handles.append(Line2D([], [], marker="*", ls="", color="w", mec="k", ms=10))
        texts.append("minimizer")
    if sads:
        handles.append(Line2D([], [], marker="X", ls="", color="red", mec="k", ms=8))
        texts.append("saddle")
    legend(fig, handles, texts, ncols=max(2, ncols))  # long entries: two per panel width
    n = len(np.unique(maps["x0_1"])) if len(maps) else 0
    title = title or (
        f"basins of attraction: {info.get('key', info.get('name', ''))} ({n} x {n} starts)"
    )
    # Wrapped to the figure's width (about 14 characters per inch at this size).
    width = int(fig.get_figwidth() * 14)
    fig.suptitle(textwrap.fill(title, width), fontsize=10)
    return fig
