"""Figures of cost against progress: convergence curves, runtime ECDFs (COCO), the Dolan-More
performance profile, and success against learning rate."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from optzoo import metrics, stats
from optzoo.report.data import ReportData
from optzoo.report.style import decades, figure, grid, legend, styles, symlog_ticks

if TYPE_CHECKING:
    from optzoo.report.registry import Job

LOG_FLOOR = 1e-12  # f - f* below this is drawn at this value on log axes
PROFILE_TAU_MAX = 100.0  # beyond a factor of 100 in cost, the profile says only "solved"


def _curve(evals: np.ndarray, f: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """f of one run at each budget in ``budgets``: the last point with evals <= budget."""
    i = np.searchsorted(evals, budgets, side="right") - 1
    return np.where(i >= 0, f[np.maximum(i, 0)], np.nan)


def _run_curves(traces: pd.DataFrame, runs: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per run ``(evals, f)`` from its trace, closed by its final point from the runs table.

    Traces are kept at log-spaced steps, so a run frozen between two of them (solved, stalled)
    would otherwise end at its last logged step, short of the value it stopped at.
    """
    out = []
    by_run = {int(r): g for r, g in traces.groupby("run", sort=True)}
    for r, e_end, f_end in zip(runs["run"], runs["evals"], runs["f_final"], strict=True):
        g = by_run.get(int(r))
        e = g["evals"].to_numpy(dtype=float) if g is not None else np.zeros(0)
        f = g["f"].to_numpy(dtype=float) if g is not None else np.zeros(0)
        if np.isfinite(f_end) and (e.size == 0 or e_end >= e[-1]):
            e, f = np.append(e, float(e_end)), np.append(f, float(f_end))
        if e.size:
            out.append((e, f))
    return out


def convergence(an: ReportData, job: Job) -> Figure | None:
    """f - f* against gradient evaluations per problem: median and quartile band over runs.

    Diverged runs are left out of the median and band (their f would stretch the axis over
    hundreds of decades) and counted in the panel's note. Problems unbounded below (saddles)
    plot f on a symmetric log axis, since an escaped run's f falls by decades.
    """
    sty = styles(an)
    traces = an.traces
    by_cell = {} if traces.empty else dict(iter(traces.groupby(["problem", "optimizer"])))
    band = max(0.05, 0.3 / math.sqrt(len(an.optimizers)))
    probs = [p for p in an.problems if not an.best[an.best["problem"] == p].empty]
    fig, axes = grid(len(probs), head_lines=2)
    seen: dict[str, object] = {}
    for ax, p in zip(axes, probs, strict=True):
        off = an.f_offset(p)
        info = an.infos[p]
        diverged = []
        for o in an.optimizers:
            br = an.best_runs(p, o)
            n_div = int((br["status"] == "diverged").sum())
            if n_div:
                diverged.append(f"{o} {n_div}/{len(br)}")
            br = br[br["status"] != "diverged"]
            t = by_cell.get((p, o))
            if br.empty or t is None:
                continue
            t = t[t["run"].isin(br["run"])].sort_values(["run", "step"])
            curves = _run_curves(t, br)
            if not curves:
                continue
            budgets = np.unique(np.concatenate([e for e, _ in curves]))
            vals = np.stack([_curve(e, f, budgets) for e, f in curves])
            with np.errstate(all="ignore"):
                if off is not None:
                    vals = np.maximum(vals - off, LOG_FLOOR)
                vals = np.where(np.isfinite(vals), vals, np.nan)
                keep = ~np.isnan(vals).all(axis=0)
                budgets, vals = budgets[keep], vals[:, keep]
                if budgets.size == 0:
                    continue
                q = np.nanpercentile(vals, [25, 50, 75], axis=0)
            st = sty[o]
            (ln,) = ax.plot(budgets, q[1], color=st["color"], ls=st["ls"], lw=1.4,
                            drawstyle="steps-post", marker=st["marker"], ms=3.5,
                            markevery=max(1, budgets.size // 6))  # fmt: skip
            ax.fill_between(budgets, q[0], q[2], color=st["color"], alpha=band, lw=0, step="post")
            seen.setdefault(o, ln)
        ax.set_xscale("log")
        if off is not None:
            ax.set_yscale("log")
            h = an.hits[p]
            ax.axhline(metrics.LADDER[h.final], color="k", ls=":", lw=0.8)
            ax.set_ylabel("f - f*" if h.kind == "f_star" else "f - f_ref")
        else:
            if info.get("f_saddle") is not None:
                ax.axhline(float(info["f_saddle"]), color="r", ls=":", lw=0.8)
            ax.set_yscale("symlog", linthresh=1.0)
            symlog_ticks(ax)
            ax.set_ylabel("f (symlog; dotted: at the saddle)")
        decades(ax)
        ax.set_xlabel("gradient evaluations")
        ax.set_title(f"{p} ({info['category']}; target {an.target_label(p)})")
        if diverged:
            ax.text(0.02, 0.02, "diverged, not drawn: " + ", ".join(diverged), fontsize=6,
                    transform=ax.transAxes, va="bottom", wrap=True)  # fmt: skip
    legend(fig, list(seen.values()), list(seen))
    fig.suptitle(
        "median and interquartile band over the reported starts, best setting per problem\n"
        "dotted: success target; diverged runs left out and counted (tables/convergence.md)",
        fontsize=9,
    )
    return fig


def _category_hits(an: ReportData, category: str, optimizer: str) -> tuple[list[np.ndarray], int]:
    """Hit matrices (success-target columns and coarser) of one optimizer on a category."""
    mats, max_evals = [], 0
    for p in an.problems:
        if an.infos[p]["category"] != category:
            continue
        br = an.best_runs(p, optimizer)
        if br.empty:
            continue
        h = an.hits[p]
        mats.append(h.evals[br["row"].to_numpy(), : h.final + 1])
        max_evals = max(max_evals, int(br["evals"].max()))
    return mats, max_evals


def ecdf(an: ReportData, job: Job) -> Figure | None:
    """Runtime ECDF per category (COCO) against log10 of gradient evaluations, with a 95%
    bootstrap band (runs resampled per problem) and the suite's budget marked."""
    sty = styles(an)
    fig, axes = grid(len(an.categories))
    seen = {}
    budget = an.manifest.get("suite", {}).get("evals") or int(an.runs["evals"].max())
    top = max(1.0, math.log10(max(1, int(an.runs["evals"].max()), budget)))
    xs = np.linspace(0, top + 0.1, 300)
    for ax, c in zip(axes, an.categories, strict=True):
        n_prob = 0
        for o in an.optimizers:
            mats, _ = _category_hits(an, c, o)
            if not mats:
                continue
            n_prob = max(n_prob, len(mats))
            st = sty[o]
            y = metrics.runtime_ecdf(mats, 10.0**xs)
            lo, hi = stats.ecdf_band(mats, 10.0**xs, n_boot=100)
            ax.fill_between(xs, lo, hi, color=st["color"], alpha=0.12, lw=0, step="post")
            (ln,) = ax.plot(xs, y, color=st["color"], ls=st["ls"], lw=1.4, drawstyle="steps-post")
            seen.setdefault(o, ln)
        ax.axvline(math.log10(budget), color="k", lw=0.8, ls=":")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(0, top + 0.1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("log10(gradient evaluations); dotted: budget")
        ax.set_ylabel("fraction of (run, target) pairs")
        ax.set_title(f"{c} ({n_prob} problem{'s' if n_prob != 1 else ''})")
    legend(fig, list(seen.values()), list(seen))
    fig.suptitle(
        "runtime ECDF per category at the best setting per problem: share of (run, target) "
        "pairs reached\nband: 95% bootstrap interval (runs resampled per problem); dotted: "
        "the evaluation budget",
        fontsize=9,
    )
    return fig


def profile(an: ReportData, job: Job) -> Figure | None:
    """Dolan-More performance profile over all problems; cost: aRT at the success target."""
    sty = styles(an)
    cost = an.best.pivot(index="problem", columns="optimizer", values="art")
    cost = cost.reindex(index=an.problems, columns=[o for o in an.optimizers if o in cost.columns])
    c = cost.to_numpy(dtype=float)
    fc = np.where(np.isfinite(c), c, np.inf)
    best = fc.min(axis=1) if c.size else np.zeros(0)
    with np.errstate(all="ignore"):
        r = np.where(np.isfinite(fc) & np.isfinite(best[:, None]), fc / best[:, None], np.inf)
    fin = r[np.isfinite(r)]
    tmax = min(PROFILE_TAU_MAX, max(2.0, float(fin.max()) * 1.5)) if fin.size else 2.0
    taus = np.unique(np.concatenate([np.logspace(0, math.log2(tmax), 400, base=2.0), fin]))
    taus = taus[taus <= tmax]
    rho = metrics.performance_profile(cost, taus)
    fig = figure(job.spec.size)
    ax = fig.subplots()
    for o in rho.columns:
        st = sty[o]
        ax.plot(taus, rho[o].to_numpy(), color=st["color"], ls=st["ls"], lw=1.5,
                drawstyle="steps-post", label=o)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlim(1, tmax)
    ax.xaxis.set_major_locator(LogLocator(base=2, numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"tau (aRT within a factor tau of the best; log2 scale, cut at {tmax:.3g})")
    ax.set_ylabel("share of problems with aRT <= tau x best aRT")
    solved = int(np.isfinite(best).sum())
    ax.set_title(
        f"performance profile over {len(an.problems)} problems ({solved} solved by some optimizer)"
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def lr_sensitivity(an: ReportData, job: Job) -> Figure | None:
    """Success rate against learning rate, per optimizer, one panel per category."""
    sty = styles(an)
    s = an.stats
    if "split" in s:
        s = s[s["split"] == "test"]
    agg = (
        s.groupby(["category", "optimizer", "hp"], sort=True)
        .agg(
            succ=("successes", "sum"),
            n=("runs", "sum"),
            lr=("lr", "first"),
            default=("hp_default", "any"),
        )
        .reset_index()
    )
    agg["rate"] = agg["succ"] / agg["n"]
    fig, axes = grid(len(an.categories))
    seen = {}
    for ax, c in zip(axes, an.categories, strict=True):
        for o in an.optimizers:
            g = agg[(agg["category"] == c) & (agg["optimizer"] == o) & agg["lr"].notna()]
            if g.empty:
                continue
            # Other hyperparameter axes, if any: the best setting at each lr.
            per_lr = g.groupby("lr", sort=True).agg(
                rate=("rate", "max"), default=("default", "any")
            )
            st = sty[o]
            (ln,) = ax.plot(per_lr.index, per_lr["rate"], ls=st["ls"], marker=st["marker"],
                            color=st["color"], ms=4.5, lw=1.2, alpha=0.85)  # fmt: skip
            d = per_lr[per_lr["default"]]
            ax.plot(d.index, d["rate"], "o", ms=11, mfc="none", mec=st["color"], mew=1.3)
            seen.setdefault(o, ln)
        ax.set_xscale("log")
        decades(ax)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("success rate")
        ax.set_title(c)
    default = Line2D([], [], marker="o", ls="", ms=11, mfc="none", mec="k", mew=1.3)
    legend(fig, [*seen.values(), default], [*seen, "default lr"])
    fig.suptitle(
        "success rate on the reported runs at each learning rate (other hyperparameters at "
        "their best)\nper category; hollow circle: the default learning rate",
        fontsize=9,
    )
    return fig
