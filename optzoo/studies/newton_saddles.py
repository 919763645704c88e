"""Study: where Newton's method and its variants end, over a grid of starts (basin maps).

Claim (Dauphin et al. 2014; Nocedal & Wright 2006, sec. 3.3): plain Newton, x <- x - H^-1 g,
jumps to the critical point of the local quadratic model, which is a saddle or a maximum where H
is indefinite or negative definite, so a share of starts ends there. Damping that demands a
decrease (Levenberg-Marquardt), saddle-free Newton (|H| in place of H) and quasi-Newton methods,
whose curvature model is positive definite (BFGS keeps y.s > 0 by its line search), are descent
methods: they end at minima.

Design. A 40 x 40 (or finer) grid of starts over the box of Himmelblau's function (4 minima, 4
saddles, 1 maximum), the two-neuron loss (a saddle at 0, a valley of minima) and Beale's
function (a saddle at (0, 1)). Each method runs from every start; each end point is classified by
:func:`optzoo.analysis.classify_batch` (a point at f* counts as a minimum even where the valley
makes its Hessian singular, as on the two-neuron loss).
"""

from __future__ import annotations

import pandas as pd
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from optzoo import optimizers, problems
from optzoo.analysis import classify_batch
from optzoo.stats import bootstrap, wilson
from optzoo.studies.base import Outcome, Study, Summary
from optzoo.studies.figures import KIND_STYLE
from optzoo.studies.runs import grid_starts, run_starts

CLAIM = (
    "Plain Newton ends at saddles and maxima from a sizeable share of starts; damped, "
    "saddle-free and quasi-Newton methods end at minima."
)
PROBLEMS = ("himmelblau", "two_neuron", "beale")
ENDS = ("minimum", "saddle", "maximum", "degenerate", "not_critical", "diverged")


def methods() -> dict[str, tuple[str, dict]]:
    """label -> (optimizer, hyperparameters). BFGS where registered, L-BFGS always."""
    out = {
        "newton": ("newton", {}),
        "newton-lm": ("newton", {"adaptive": True, "damping": 1.0}),
        "newton-sf": ("newton", {"saddle_free": True}),
    }
    if "bfgs" in optimizers.names():
        out["bfgs"] = ("bfgs", {})
    # One L-BFGS iteration per step, torch's strong-Wolfe line search.
    # Tolerances far below torch's defaults, so that runs are not frozen short of the point.
    out["lbfgs"] = (
        "lbfgs",
        {
            "max_iter": 1,
            "max_eval": 25,  # torch's default, 5 max_iter // 4, would starve the line search
            "line_search_fn": "strong_wolfe",
            "history_size": 10,
            "tolerance_grad": 1e-12,
            "tolerance_change": 1e-14,
        },
    )
    return out


def end_kinds(problem, x: torch.Tensor, diverged: torch.Tensor) -> list[str]:
    """Where each run ended (one of ENDS)."""
    c = classify_batch(problem, x)
    at_min = torch.zeros(len(x), dtype=torch.bool)
    if problem.f_star is not None:
        at_min = c["f"] <= problem.f_star + 1e-8
    kinds = []
    for i, k in enumerate(c["kind"]):
        if bool(diverged[i]):
            kinds.append("diverged")
        elif bool(at_min[i]) and k != "not_critical" or k == "minimum":
            kinds.append("minimum")
        else:
            kinds.append(k)
    return kinds


def basin_maps(n_grid: int, steps: int) -> pd.DataFrame:
    """One row per (problem, method, start): the start, where it ended, f there."""
    rows = []
    for name in PROBLEMS:
        p = problems.get(name)
        x0 = grid_starts(p, n_grid, margin=0.005)
        for label, (opt, hp) in methods().items():
            tr = run_starts(p, optimizers.get(opt, **hp), x0, steps)
            rows.append(
                pd.DataFrame(
                    {
                        "problem": name,
                        "method": label,
                        "x0": x0[:, 0].numpy(),
                        "y0": x0[:, 1].numpy(),
                        "end": end_kinds(p, tr.x_final, tr.diverged),
                        "f_end": tr.f[-1].numpy(),
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def shares(maps: pd.DataFrame) -> pd.DataFrame:
    """Per problem and method: share of starts ending at a saddle or maximum, Wilson interval."""
    rows = []
    for (prob, meth), g in maps.groupby(["problem", "method"], sort=False):
        bad = g["end"].isin(["saddle", "maximum"])
        lo, hi = wilson(int(bad.sum()), len(g))
        counts = {e: int((g["end"] == e).sum()) for e in ENDS}
        rows.append(
            {
                "problem": prob,
                "method": meth,
                "saddle_or_max": bad.mean(),
                "lo": lo,
                "hi": hi,
                **counts,
            }
        )
    return pd.DataFrame(rows)


def _figure(maps: pd.DataFrame, n_grid: int):
    meths = list(maps["method"].unique())
    fig = Figure(figsize=(2.6 * len(meths), 2.7 * len(PROBLEMS)), layout="constrained")
    axes = fig.subplots(len(PROBLEMS), len(meths), squeeze=False)
    cmap = ListedColormap([KIND_STYLE[e][0] for e in ENDS])
    for i, prob in enumerate(PROBLEMS):
        box = problems.get(prob).bounds
        for j, meth in enumerate(meths):
            g = maps[(maps["problem"] == prob) & (maps["method"] == meth)]
            code = g["end"].map({e: k for k, e in enumerate(ENDS)}).to_numpy()
            ax = axes[i, j]
            ax.imshow(
                code.reshape(n_grid, n_grid),
                origin="lower",
                cmap=cmap,
                vmin=0,
                vmax=len(ENDS) - 1,
                interpolation="nearest",
                extent=(box[0, 0], box[1, 0], box[0, 1], box[1, 1]),
            )
            ax.set_title(f"{prob}: {meth}", fontsize=8)
            ax.tick_params(labelsize=6)
    handles = [Patch(color=KIND_STYLE[e][0], label=e) for e in ENDS]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(ENDS), fontsize=8)
    return fig


def run(reduced: bool) -> Outcome:
    n_grid, steps = (8, 30) if reduced else (40, 100)
    maps = basin_maps(n_grid, steps)
    table = shares(maps)
    bad = maps["end"].isin(["saddle", "maximum"]).to_numpy(float)
    newton = bad[(maps["method"] == "newton").to_numpy()]
    sf = bad[(maps["method"] == "newton-sf").to_numpy()]
    value = float(newton.mean() - sf.mean())
    lo, hi = bootstrap([newton, sf], lambda a, b: float(a.mean() - b.mean()), n_boot=1000)
    # Starts exactly on the two-neuron saddle's stable line w1 = -w2 are the measure-zero
    # exception: every method that follows the gradient's span converges to the saddle from them.
    generic = maps[~((maps["problem"] == "two_neuron") & (maps["x0"] + maps["y0"]).abs().lt(1e-12))]
    gen_share = generic.groupby("method", sort=False)["end"].apply(
        lambda e: float(e.isin(["saddle", "maximum"]).mean())
    )
    diag = int(
        ((maps["problem"] == "two_neuron") & (maps["x0"] + maps["y0"]).abs().lt(1e-12)).sum()
    )
    diag //= maps["method"].nunique()
    per = n_grid * n_grid
    stray = {m: v for m, v in gen_share.items() if m != "newton" and v > 0.01}
    descent_clean = not stray
    pulled = (
        "Off that line, no descent method ends at a saddle or maximum from more than 1% of starts."
        if descent_clean
        else "Off the measure-zero line below, these descent methods still end at a saddle or "
        "maximum: "
        + ", ".join(f"{m} from {v:.1%} of starts" for m, v in stray.items())
        + ". Levenberg-Marquardt accepts any step that lowers f and shrinks its damping after "
        "each one, so it becomes plain Newton; approaching a saddle along its attracting "
        "directions lowers f all the way, and it lands there."
    )
    rest = (
        "The descent methods avoid them."
        if descent_clean
        else "Not every method that demands descent avoids them: see above."
    )
    verdict = "confirmed" if lo > 0 and descent_clean else ("partly" if lo > 0 else "refuted")
    qn = "BFGS and L-BFGS" if "bfgs" in methods() else "L-BFGS (BFGS not yet in the zoo)"
    md = table.to_markdown(index=False, floatfmt=".3g")
    findings = f"""
**Design.** A {n_grid} x {n_grid} grid of starts over each box ({len(maps) // len(table)}
starts per problem and method) on {", ".join(PROBLEMS)}; {steps} steps of plain Newton, damped
Newton (Levenberg-Marquardt, lambda from 1, a step only where f falls), saddle-free Newton and
{qn} (one iteration per step, strong-Wolfe line search, 10 pairs). End points classified by their
Hessian eigenvalues (`optzoo.analysis.classify_batch`); a point at f* is a minimum even where a
valley makes the Hessian singular.

**Measured.** Share of starts that end at a saddle or a maximum (Wilson 95% intervals), and the
count of each end kind:

{md}

Pooled over the three problems, plain Newton ends at a saddle or maximum from
{newton.mean():.1%} of the starts and saddle-free Newton from {sf.mean():.1%}: a difference of
**{value:.3f}** (bootstrap 95% interval [{lo:.3f}, {hi:.3f}]); without Newton's pull the
difference would be 0.

**Where the descent methods end at saddles.** {pulled}

**Caveats.** The grids are the problems' sampling boxes; the shares depend on the box, since
each saddle's basin under Newton is a region of the plane, not a set of measure zero. A
symmetric grid puts starts exactly on the two-neuron saddle's attracting line w1 = -w2 ({diag} of
the {per} starts): there the gradient has no component along the escape direction, so every
method, saddle-free Newton included, converges to the saddle; those starts are kept, as the
one exception the theory allows (a measure-zero set). `not_critical` counts runs still moving
at the end of the budget, `degenerate` critical points with a singular Hessian (on Beale's
function, the flat valley towards u = 0 with v large).

**Verdict: {verdict}.** Plain Newton is pulled onto saddles and maxima from a sizeable share of
starts, far more than saddle-free Newton. {rest}
"""
    summary = Summary(
        claim=CLAIM,
        metric="share of starts ending at a saddle or maximum: Newton minus saddle-free Newton",
        value=value,
        ci=(lo, hi),
        baseline=0.0,
        verdict=verdict,
    )
    return Outcome(
        summary, findings, {"basins": _figure(maps, n_grid)}, {"ends": table, "basins": maps}
    )


STUDY = Study("newton-saddles", "Newton's pull to saddles: basin maps by method", CLAIM, run)
