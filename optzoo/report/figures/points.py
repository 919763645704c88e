"""Figures of end points: largest steps and divergence on cliffs (two result sets side by side),
and the critical points the runs ended on."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator

from optzoo import metrics
from optzoo.report.data import ReportData, load
from optzoo.report.formatting import fmt, pct
from optzoo.report.style import LEGEND_H, decades, figure, legend, plain_log_labels, styles

if TYPE_CHECKING:
    from optzoo.report.registry import Job

CRITICAL_KINDS = ("minimum", "saddle", "maximum", "degenerate")


def critical_points_size(
    base: tuple[float, float], n_problems: int, n_optimizers: int
) -> tuple[float, float]:
    """Size in inches of the critical-points figure: ``base``, and a legend row per six keys
    below the panels when it shows several problems and several optimizers."""
    w, h = base
    if n_problems > 1 and n_optimizers > 1:
        h += LEGEND_H * math.ceil((n_problems + n_optimizers) / 6)
    return (w, h)


def _clip_label(manifest: dict) -> str:
    s = manifest.get("suite", {})
    if s.get("clip_norm") is not None:
        return f"clip_norm = {fmt(s['clip_norm'], 3)}"
    if s.get("clip_value") is not None:
        return f"clip_value = {fmt(s['clip_value'], 3)}"
    return "no clipping"


def cliff(an: ReportData, job: Job) -> Figure | None:
    """Cliffs: median largest step and divergence rate per optimizer over the whole lr grid.

    With ``job.other`` (a second results directory, e.g. the same suite with gradient clipping)
    the two are drawn side by side, labelled by their clipping settings.
    """
    sets = [an] + ([load(job.other)] if job.other is not None else [])
    an = sets[0]
    cliff = [[p for p in a.problems if a.infos[p]["category"] == "cliff"] for a in sets]
    if not any(cliff):
        return None
    opts = list(an.optimizers) + [
        o for a in sets[1:] for o in a.optimizers if o not in an.optimizers
    ]
    labels = [_clip_label(a.manifest) for a in sets]
    if len(labels) == 2 and labels[0] == labels[1]:
        labels = [f"{lab} ({a.root.name})" for lab, a in zip(labels, sets, strict=True)]
    fig = figure(job.spec.size)
    ax1, ax2 = fig.subplots(1, 2)
    width = 0.8 / len(sets)
    hatch = ["", "//"]
    for k, (a, probs) in enumerate(zip(sets, cliff, strict=True)):
        r = a.runs[a.runs["problem"].isin(probs)]
        step, div = [], []
        for o in opts:
            g = r[r["optimizer"] == o]
            step.append(metrics.quartiles(g["max_step"].to_numpy())[1] if len(g) else np.nan)
            div.append(metrics.divergence_rate(g["status"].to_numpy()) if len(g) else np.nan)
        x = np.arange(len(opts)) + (k - (len(sets) - 1) / 2) * width
        style = {"label": labels[k], "color": f"C{k}", "hatch": hatch[k % 2], "edgecolor": "k"}
        ax1.bar(x, step, width, lw=0.4, **style)
        bars = ax2.bar(x, div, width, lw=0.4, **style)
        ax2.bar_label(bars, labels=[pct(v) for v in div], fontsize=7, padding=1)
    for ax in (ax1, ax2):
        ax.set_xticks(np.arange(len(opts)), opts, rotation=30 if len(opts) > 5 else 0)
        ax.set_xlabel("optimizer")
    ax1.set_yscale("log")
    ax1.set_ylabel("largest step norm (median over runs)")
    ax1.set_title("largest step on cliff problems (all learning rates)")
    ax2.set_ylim(0, 1.02)
    ax2.set_ylabel("share of runs that diverged")
    ax2.set_title("divergence rate on cliff problems (all learning rates)")
    ax2.legend(loc="upper right")
    return fig


def critical_points(an: ReportData, job: Job) -> Figure | None:
    """Final loss against minimum ratio at the critical points the runs ended on, and one
    typical end point's Hessian eigenvalues.

    Drawn only when the runs table has a ``min_ratio`` column (the analysis adds it). The points
    are every run, at any learning rate, whose end point is a critical point (``endpoint`` is
    minimum, saddle, maximum or degenerate), on the problems of more than two dimensions when
    there are any. The right panel is the eigenvalue histogram of the run with the median final
    loss on the largest problem when an ``eigenvalues`` column is stored, else the histogram of
    the end points' index (``n_neg``, the number of negative eigenvalues).
    """
    r = an.runs
    if "min_ratio" not in r.columns:
        return None
    b = r[(r["status"] != "diverged") & np.isfinite(r["min_ratio"].to_numpy(dtype=float))]
    dims = b["problem"].map(lambda p: int(an.infos[p].get("dim", 0)))
    if (dims > 2).any():
        b, dims = b[dims > 2], dims[dims > 2]
    if b.empty:
        return None
    crit = b[b["endpoint"].isin(CRITICAL_KINDS)]
    sty = styles(an)
    probs = [p for p in an.problems if p in set(b["problem"])]
    # Colour by problem when several are shown (the minimum-ratio study), else by optimizer.
    by_problem = len(probs) > 1
    # Several problems and optimizers: colour names the problem and marker the optimizer, in a
    # legend below the panels (one entry per pair would not fit).
    keyed = by_problem and len(set(b["optimizer"])) > 1
    opts = [o for o in an.optimizers if o in set(b["optimizer"])]
    fig = figure(critical_points_size(job.spec.size, len(probs), len(opts)))
    ax1, ax2 = fig.subplots(1, 2)
    for k, p in enumerate(probs):
        for o in an.optimizers:
            g = b[(b["problem"] == p) & (b["optimizer"] == o)]
            if g.empty:
                continue
            color = f"C{k % 10}" if by_problem else sty[o]["color"]
            label = None if keyed else (p if by_problem else o)
            # Filled: the run ended on a critical point; hollow: it did not (budget, target).
            is_crit = g["endpoint"].isin(CRITICAL_KINDS).to_numpy()
            for mask, face in ((is_crit, color), (~is_crit, "none")):
                if mask.any():
                    ax1.scatter(g["min_ratio"][mask], g["f_final"][mask], s=24,
                                facecolors=face, edgecolors=color, marker=sty[o]["marker"],
                                label=label if face != "none" or not is_crit.any() else None,
                                alpha=0.8, linewidths=0.8)  # fmt: skip
    f = b["f_final"].to_numpy(dtype=float)
    above = 0
    if (f[np.isfinite(f)] > 0).all():
        ax1.set_yscale("log")
        # A few runs that blew up without overflowing (f ~ 1e180) would stretch the axis over
        # hundreds of decades: the axis stops two decades above the 99th percentile (or at the
        # highest critical point, if higher), and the points above it are counted in the title.
        fc = crit["f_final"].to_numpy(dtype=float)
        fin = f[np.isfinite(f)]
        if fin.size:
            hi = min(
                fin.max(), max(100 * np.percentile(fin, 99), fc[np.isfinite(fc)].max(initial=0.0))
            )
            above = int((fin > hi).sum())
            ax1.set_ylim(fin.min() / 3, hi * 3)
        decades(ax1, "y")
    ax1.set_xlim(-0.03, 1.03)
    ax1.set_xlabel("minimum ratio (share of positive Hessian eigenvalues)")
    ax1.set_ylabel("final training loss f")
    note = f"; {above} above the axis, not drawn" if above else ""
    ax1.set_title(f"{len(b)} end points; filled: on a critical point ({len(crit)}){note}")
    if keyed:
        handles = [Line2D([], [], ls="", marker="o", color=f"C{k % 10}") for k in range(len(probs))]
        handles += [
            Line2D([], [], ls="", marker=sty[o]["marker"], color="0.3", mfc="none") for o in opts
        ]
        legend(fig, handles, [f"problem: {p}" for p in probs] + list(opts), ncols=6)
    else:  # below the panels, outside the data
        legend(fig, *ax1.get_legend_handles_labels())
    big = b[dims == dims.max()].sort_values(
        ["f_final", "problem", "optimizer", "run"], kind="stable"
    )
    typ = big.iloc[(len(big) - 1) // 2]
    ev = np.asarray(typ["eigenvalues"] if "eigenvalues" in b.columns else [], float)
    ev = ev[np.isfinite(ev)]
    # Spectra are stored up to 64 dimensions only: a larger network falls back to the index.
    if ev.size:
        # Eigenvalues span decades on both sides of zero: a symmetric log axis shows them all.
        lim = max(float(np.abs(ev).max()), 1e-12)
        thresh = max(lim * 1e-6, 1e-12)
        edges = np.concatenate(
            [-np.geomspace(lim, thresh, 13), [0.0], np.geomspace(thresh, lim, 13)]
        )
        edges = np.unique(edges)
        ax2.hist(ev, bins=edges, color="0.4")
        ax2.set_xscale("symlog", linthresh=thresh)
        # Zero and two decades a side, three apart: ticks next to zero would overprint it.
        top = math.floor(math.log10(lim))
        ticks = [10.0**top, 10.0 ** (top - 3)]
        ax2.xaxis.set_major_locator(FixedLocator([-t for t in ticks] + [0.0] + ticks[::-1]))
        ax2.xaxis.set_minor_locator(NullLocator())
        plain_log_labels(ax2.xaxis)
        ax2.axvline(0, color="r", lw=0.8)
        ax2.set_xlabel("Hessian eigenvalue (symmetric log scale)")
        ax2.set_ylabel("count")
        ax2.set_title(
            f"{typ['problem']}:\nmedian-loss end point, min ratio {fmt(typ['min_ratio'], 3)}"
        )
    elif "n_neg" in b.columns:
        n = b["n_neg"].to_numpy()
        n = n[n >= 0]
        vals, counts = np.unique(n, return_counts=True)
        ax2.bar(vals, counts, width=0.8, color="0.4")
        ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax2.set_xlabel("index: number of negative Hessian eigenvalues")
        ax2.set_ylabel("end points")
        ax2.set_title("index of the end points (0: minimum)")
    else:
        ax2.set_visible(False)
    return fig
