"""How the report's figures look: sizes, the matplotlib style, panel grids, the palette (a hue
per optimizer family, a line style and marker per member), legends, log-axis ticks, and saving.

Figures are bare :class:`matplotlib.figure.Figure` objects rendered by Agg: no pyplot, no backend
switch, no global state.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    NullFormatter,
    NullLocator,
    SymmetricalLogLocator,
)

from optzoo.report.data import ReportData
from optzoo.store import write_bytes

FIGURES_DIR = "figures"
FORMAT = "png"  # one format per figure: the README and the results link PNGs
DPI = 120
PANEL_W, PANEL_H, LEGEND_H = 4.0, 3.2, 0.7  # inches
MAX_COLS = 3
STYLE = {
    # A fixed title height: matplotlib otherwise measures every axis's tick labels to place it.
    "axes.titley": 1.0,
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def figure_size(n_panels: int, legend: bool = True) -> tuple[float, float]:
    """Figure size in inches for ``n_panels`` panels in a grid of at most ``MAX_COLS`` columns."""
    ncols = max(1, min(MAX_COLS, n_panels))
    nrows = max(1, math.ceil(n_panels / ncols))
    return (PANEL_W * ncols + 0.6, PANEL_H * nrows + (LEGEND_H if legend else 0.0))


def figure(figsize: tuple[float, float], constrained: bool = True):
    """A bare Figure rendered by Agg on save: no pyplot, no backend switch, no global state.

    Constrained layout measures every text on an extra draw pass: worth it for one panel, but
    half the drawing time of a panel grid, which :func:`grid` lays out with fixed margins instead.
    """
    return Figure(figsize=figsize, layout="constrained" if constrained else None)


# Fixed margins of a panel grid, in inches: tick labels and axis label on the left, the title
# (suptitle) on top, the legend rows and the x label below.
GRID_LEFT, GRID_RIGHT, GRID_TOP, GRID_BOTTOM = 0.8, 0.3, 0.8, 0.55
LEGEND_ROW = 0.19  # inches per legend row at legend.fontsize 8


def grid(
    n: int, share: bool = False, title_lines: int = 1, head_lines: int = 1
) -> tuple[Figure, list]:
    """A figure of ``n`` panels, at most ``MAX_COLS`` per row, with fixed margins; unused cells of
    the last row are hidden. ``share``: the panels show the same plane (one problem's box), so
    they share their axes and only the outer ones are labelled (see :func:`label_outer`).
    ``title_lines``: room between rows for panel titles of that many lines; ``head_lines``: room
    above the first row for a figure title of that many lines."""
    ncols = max(1, min(MAX_COLS, n))
    nrows = max(1, math.ceil(n / ncols))
    w, h = figure_size(n)
    fig = figure((w, h), constrained=False)
    gap = 0.75 + 0.16 * (title_lines - 1)  # inches between rows
    fig.subplots_adjust(
        left=GRID_LEFT / w,
        right=1 - GRID_RIGHT / w,
        top=1 - (GRID_TOP + 0.16 * (title_lines - 1) + 0.16 * (head_lines - 1)) / h,
        bottom=(GRID_BOTTOM + LEGEND_H) / h,
        wspace=0.45,
        hspace=gap / (PANEL_H - gap),
    )
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=share, sharey=share)
    flat = axes.ravel().tolist()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def label_outer(axes: list) -> None:
    """In a grid of panels sharing their axes, keep tick labels and axis labels only where no
    panel lies below (x) or to the left (y): the same numbers once, and less text to draw."""
    n = len(axes)
    ncols = max(1, min(MAX_COLS, n))
    for k, ax in enumerate(axes):
        below, left = k + ncols < n, k % ncols > 0
        # Set both ways: shared axes hide the labels of every row but the grid's last one, which
        # may hold hidden cells.
        ax.tick_params(labelbottom=not below, labelleft=not left)
        if below:
            ax.set_xlabel("")
        if left:
            ax.set_ylabel("")


# Families share a hue and their members differ in line style and marker: 15+ optimizers stay
# apart, and related methods read as related. Keys are optimizer names (a label's base name).
FAMILIES = {
    "sgd": "gd", "sgd+escape": "gd",
    "momentum": "momentum", "nesterov": "momentum", "momentum+escape": "momentum",
    "adagrad": "adaptive", "rmsprop": "adaptive", "adadelta": "adaptive",
    "adam": "adam", "adamw": "adam",
    "newton": "newton",
    "lbfgs": "quasi-newton", "bfgs": "quasi-newton", "dfp": "quasi-newton",
}  # fmt: skip
FAMILY_COLORS = {
    "gd": "#1f77b4",
    "momentum": "#2ca02c",
    "adaptive": "#ff7f0e",
    "adam": "#d62728",
    "newton": "#9467bd",
    "quasi-newton": "#8c564b",
    "other": "#7f7f7f",
}
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "h", "p", "*")


def base_names(an: ReportData) -> dict[str, str]:
    """Each optimizer's name in the tables (its label) -> the optimizer it runs."""
    specs = an.manifest.get("suite", {}).get("optimizers", [])
    named = {o.get("label") or o.get("name"): o.get("name") for o in specs}
    return {o: named.get(o, o) for o in an.optimizers}


def family(name: str) -> str:
    """An optimizer's family for the palette ("other" when unknown)."""
    return FAMILIES.get(name, FAMILIES.get(name.split("+")[0], "other"))


def styles(an: ReportData) -> dict[str, dict]:
    """Per optimizer: colour (its family's hue), line style and marker (its place in the family),
    so that no two optimizers share both colour and line style."""
    seen: dict[str, int] = {}
    out = {}
    for o, name in base_names(an).items():
        fam = family(name)
        k = seen.get(fam, 0)
        seen[fam] = k + 1
        out[o] = {
            "color": _shade(FAMILY_COLORS[fam], k // len(LINESTYLES)),
            "ls": LINESTYLES[k % len(LINESTYLES)],
            "marker": MARKERS[k % len(MARKERS)],
        }
    return out


def _shade(color: str, step: int) -> str:
    """``color`` darkened (odd steps) or lightened (even steps) by 30% per pair of steps: a
    family with more members than line styles keeps its hue without repeating a style."""
    if step == 0:
        return color
    rgb = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    t = 0.3 * ((step + 1) // 2)
    mixed = [c * (1 - t) if step % 2 else c + (1 - c) * t for c in rgb]
    return "#" + "".join(f"{round(255 * min(1.0, max(0.0, c))):02x}" for c in mixed)


def colors(an: ReportData) -> dict[str, str]:
    """Per optimizer its colour (see :func:`styles`)."""
    return {o: st["color"] for o, st in styles(an).items()}


def markers(an: ReportData) -> dict[str, str]:
    """One marker per optimizer within a family, so that lines on top of each other stay apart."""
    return {o: st["marker"] for o, st in styles(an).items()}


def save(fig: Figure, outdir: Path, name: str) -> Path:
    """Write ``fig`` as ``outdir/<name>.png`` with the store's atomic writer.

    No creation software or date is embedded, so the same figure gives the same bytes.
    """
    buf = io.BytesIO()
    # zlib level 1: a third of the encoding time of the default 6, for files about 10% larger.
    fig.savefig(buf, format=FORMAT, dpi=DPI, metadata={"Software": None},
                pil_kwargs={"compress_level": 1})  # fmt: skip
    path = Path(outdir) / f"{name}.{FORMAT}"
    write_bytes(path, buf.getvalue())
    return path


def legend(fig, handles, labels, ncols: int | None = None) -> None:
    """One legend below the panels, outside the data; as many columns as the figure's width
    holds (a wider legend would be cut at both sides). In a fixed-margin grid the panels move up
    to make room for the legend's rows."""
    if not handles:
        return
    fits = max(1, int(fig.get_figwidth() / 1.9))
    ncols = min(ncols or 6, fits, len(labels))
    if fig.get_layout_engine() is not None:
        fig.legend(handles, labels, loc="outside lower center", ncols=ncols, frameon=False)
        return
    rows = math.ceil(len(labels) / ncols)
    h = fig.get_figheight()
    fig.subplots_adjust(bottom=(GRID_BOTTOM + 0.1 + rows * LEGEND_ROW) / h)
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.005), ncols=ncols,
               frameon=False)  # fmt: skip


def slug(key: str) -> str:
    """A file-name-safe form of a problem key: ``rosenbrock[dim=2]`` -> ``rosenbrock_dim2``."""
    s = re.sub(r"[=\[\]]", lambda m: "_" if m.group() == "[" else "", key)
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", s)
    return s.strip("_") or "problem"


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_label(v: float, _pos: object = None) -> str:
    """A tick label as plain text: 10⁻³ for a power of ten, else 3 significant digits.

    Matplotlib's default log labels are mathtext, which is parsed and laid out glyph by glyph:
    the largest share of a figure's drawing time. Unicode superscripts read the same.
    """
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else ""
    e = math.log10(abs(v))
    if abs(e - round(e)) > 1e-9:
        return f"{v:.3g}"
    return ("−" if v < 0 else "") + "10" + str(round(e)).translate(_SUPERSCRIPT)


def plain_log_labels(axis) -> None:
    """Label an axis's ticks with :func:`power_label` (major) and nothing (minor)."""
    axis.set_major_formatter(FuncFormatter(power_label))
    axis.set_minor_formatter(NullFormatter())


def decades(ax, which: str = "both") -> None:
    """Label the decades of log axes in plain text; over two decades or more only the decades
    (no minor labels), over six or more no minor ticks either."""
    for axis, scale in (("x", ax.get_xscale()), ("y", ax.get_yscale())):
        if scale != "log" or which not in ("both", axis):
            continue
        lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
        a = ax.xaxis if axis == "x" else ax.yaxis
        if lo <= 0 or math.log10(hi / lo) < 2:
            # A short axis: matplotlib's choice of ticks, labelled in plain text; the minor ones
            # only within one decade (2, 3, ... 9 of two decades overprint each other).
            a.set_major_formatter(FuncFormatter(power_label))
            short = lo > 0 and math.log10(hi / lo) < 1
            a.set_minor_formatter(FuncFormatter(power_label) if short else NullFormatter())
            continue
        a.set_major_locator(LogLocator(base=10, numticks=8))
        plain_log_labels(a)
        if math.log10(hi / lo) >= 6:  # minor ticks would only blur the decades (and cost time)
            a.set_minor_locator(NullLocator())


def symlog_ticks(ax) -> None:
    """At most about five labelled ticks per side of a symmetric log axis (one per decade would
    crowd an axis spanning 30 decades)."""
    lo, hi = ax.get_ylim()
    span = math.log10(max(abs(lo), abs(hi), 10.0))
    step = max(1, math.ceil(span / 5))
    if step == 1:
        ax.yaxis.set_major_locator(SymmetricalLogLocator(base=10.0, linthresh=1.0))
    else:
        # 0 and +-10^(k step), k >= 1: +-1 would sit on top of 0 on an axis this long.
        mags = [10.0 ** (k * step) for k in range(1, int(span // step) + 2)]
        ticks = [-m for m in reversed(mags) if -m >= lo] + [0.0] + [m for m in mags if m <= hi]
        ax.yaxis.set_major_locator(FixedLocator(ticks))
    plain_log_labels(ax.yaxis)
