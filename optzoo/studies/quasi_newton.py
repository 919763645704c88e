"""Study: orders of convergence of GD, Newton, BFGS, DFP and L-BFGS, and what an iteration costs.

Claim (Nocedal & Wright 2006, Theorems 3.4, 3.5 and 6.6; Dennis & More 1977): near a minimizer
x* with a positive-definite Hessian, gradient descent converges linearly, e_{k+1} ~ r e_k with
r < 1; quasi-Newton methods (BFGS, DFP) superlinearly, e_{k+1} / e_k -> 0; Newton
quadratically, e_{k+1} ~ C e_k^2 (e_k = |x_k - x*|). L-BFGS, with a few curvature pairs, is
linear in theory but fast in practice. BFGS corrects a poor Hessian approximation far better
than DFP, which shows with an inexact line search (N&W sec. 6.1).

Design. Rosenbrock's function in 2-D (x* = (1, 1)) and a rotated 10-D quadratic with condition
number 100 (x* = 0), from seeded random starts; every iterate recorded. The order q of a run is
the median of q_k = log(e_{k+1} / e_k) / log(e_k / e_{k-1}) over its iterates with
1e-11 < e_k < 1e-1 (the asymptotic window, above round-off): q = 1 for a linear rate, 2 for a
quadratic one, and in between for a superlinear run measured over a finite window.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from optzoo import optimizers, problems
from optzoo.problems.oracle import HESSIAN_PER_DIM
from optzoo.stats import bootstrap, ranksum_p
from optzoo.studies.base import Outcome, Study, Summary
from optzoo.studies.figures import figure
from optzoo.studies.runs import run_starts

CLAIM = (
    "Near a minimum GD converges linearly, BFGS and DFP superlinearly and Newton quadratically; "
    "BFGS is more robust than DFP with an inexact line search."
)
WINDOW = (1e-11, 1e-1)
TIGHT = {"tolerance_grad": 1e-14}  # so that no run stops before round-off
LBFGS = {"max_iter": 1, "max_eval": 25, "line_search_fn": "strong_wolfe", "tolerance_change": 1e-30}
LBFGS.update(TIGHT)


def methods(problem_name: str) -> dict[str, tuple[str, dict, int]]:
    """label -> (optimizer, hyperparameters, iterations). BFGS and DFP where registered."""
    gd_lr, gd_steps = (5e-4, 20000) if problem_name == "rosenbrock" else (0.01, 3000)
    out = {"gd": ("sgd", {"lr": gd_lr}, gd_steps), "newton": ("newton", {}, 40)}
    if {"bfgs", "dfp"} <= set(optimizers.names()):
        out["bfgs"] = ("bfgs", dict(TIGHT), 200)
        out["dfp"] = ("dfp", dict(TIGHT), 200)
    out["lbfgs-3"] = ("lbfgs", {**LBFGS, "history_size": 3}, 300)
    out["lbfgs-10"] = ("lbfgs", {**LBFGS, "history_size": 10}, 300)
    return out


def setups(n_starts: int) -> dict:
    """name -> (problem, x*, starts)."""
    gen = torch.Generator().manual_seed(5)
    rosen = problems.get("rosenbrock", dim=2)
    quad = problems.get("ellipsoid", dim=10, cond=100.0)
    r_starts = 3.0 * torch.rand(n_starts, 2, generator=gen, dtype=torch.float64) - 1.5
    return {
        "rosenbrock": (rosen, torch.ones(2, dtype=torch.float64), r_starts),
        "quadratic": (quad, torch.zeros(10, dtype=torch.float64), quad.sample_starts(n_starts, 5)),
    }


def order(e: np.ndarray) -> float:
    """Median over the window of q_k = log(e_(k+1) / e_k) / log(e_k / e_(k-1)).

    q_k -> 1 for a linear rate, -> 2 for a quadratic one, and lies in between (rising as the
    ratio e_(k+1) / e_k falls to 0) for a superlinear one (Nocedal & Wright 2006, sec. 2.2).
    Used: e_(k-1) and e_k inside the window, e_(k+1) above round-off (1e-14) and every ratio
    below 1. NaN where no k qualifies.
    """
    a, b, c = e[:-2], e[1:-1], e[2:]
    inside = (a > WINDOW[0]) & (a < WINDOW[1]) & (b > WINDOW[0]) & (b < WINDOW[1])
    use = inside & (c > 1e-14) & (b < a) & (c < b)
    if not use.any():
        return math.nan
    return float(np.median(np.log(c[use] / b[use]) / np.log(b[use] / a[use])))


def converge(problem_name: str, n_starts: int, reduced: bool = False) -> tuple[pd.DataFrame, dict]:
    """Run every method from every start; per run its order, iterations and cost; curves."""
    p, xs, x0 = setups(n_starts)[problem_name]
    rows, curves = [], {}
    for label, (opt, hp, steps) in methods(problem_name).items():
        if reduced:  # enough for Newton and the quasi-Newton methods to reach round-off
            steps = 300 if opt == "sgd" else 60
        tr = run_starts(p, optimizers.get(opt, **hp), x0, steps, keep_x=True)
        e = torch.linalg.vector_norm(tr.x - xs, dim=-1).numpy()  # (T + 1, R)
        curves[label] = (e, tr.grad_norm.numpy())
        # Iterations to e <= 1e-8, and cost per iteration up to there.
        hit = (e <= 1e-8).argmax(0)
        done = (e <= 1e-8).any(0)
        k = np.where(done, hit, steps)
        evals = tr.evals.numpy()[k, np.arange(len(k))]
        for r in range(e.shape[1]):
            rows.append(
                {
                    "problem": problem_name,
                    "method": label,
                    "start": r,
                    "order": order(e[:, r]),
                    "iterations_to_1e-8": int(k[r]) if done[r] else -1,
                    "evals_per_iteration": evals[r] / max(int(k[r]), 1),
                    "seconds_per_iteration": tr.seconds / steps,
                    "e_final": float(e[-1, r]),
                }
            )
    return pd.DataFrame(rows), curves


def _median(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(np.median(a)) if len(a) else math.nan


def orders(runs: pd.DataFrame) -> pd.DataFrame:
    """Per problem and method: median order (bootstrap interval), iterations and costs."""
    rows = []
    for (prob, meth), g in runs.groupby(["problem", "method"], sort=False):
        q = g["order"].to_numpy(float)
        q = q[np.isfinite(q)]
        lo, hi = bootstrap(q, _median, n_boot=1000) if len(q) else (math.nan, math.nan)
        it = g["iterations_to_1e-8"]
        rows.append(
            {
                "problem": prob,
                "method": meth,
                "order": _median(q),
                "lo": lo,
                "hi": hi,
                "runs_with_order": len(q),
                "reached_1e-8": int((it >= 0).sum()),
                "median_iterations": float(it[it >= 0].median()) if (it >= 0).any() else math.nan,
                "evals_per_iteration": float(g["evals_per_iteration"].median()),
                "ms_per_iteration": 1e3 * float(g["seconds_per_iteration"].iloc[0]),
            }
        )
    return pd.DataFrame(rows)


def dfp_vs_bfgs(n_starts: int, steps: int) -> pd.DataFrame | None:
    """Iterations to |x - x*| <= 1e-8 on Rosenbrock with a backtracking (inexact) line search."""
    if not {"bfgs", "dfp"} <= set(optimizers.names()):
        return None
    p, xs, x0 = setups(n_starts)["rosenbrock"]
    rows = []
    for name in ("bfgs", "dfp"):
        hp = {**TIGHT, "line_search_fn": "backtracking"}
        tr = run_starts(p, optimizers.get(name, **hp), x0, steps, keep_x=True)
        e = torch.linalg.vector_norm(tr.x - xs, dim=-1).numpy()
        done = (e <= 1e-8).any(0)
        k = np.where(done, (e <= 1e-8).argmax(0), steps)  # censored at the budget
        rows += [
            {"method": name, "start": r, "iterations": int(k[r]), "reached": bool(done[r])}
            for r in range(len(k))
        ]
    return pd.DataFrame(rows)


def _figure(curves: dict):
    fig, axes = figure(2, 4.8, 3.8)
    for ax, (prob, c) in zip(axes, curves.items(), strict=True):
        for label, (e, _) in c.items():
            k = np.arange(1, e.shape[0] + 1)
            ax.plot(k, np.maximum(e[:, 0], 1e-17), label=label, lw=1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("iteration + 1")
        ax.set_ylabel("|x_k - x*| (first start)")
        ax.set_title(prob)
        ax.legend(fontsize=7)
    return fig


def run(reduced: bool) -> Outcome:
    n_starts = 4 if reduced else 16
    parts = [converge(name, n_starts, reduced) for name in ("rosenbrock", "quadratic")]
    runs = pd.concat([r for r, _ in parts], ignore_index=True)
    curves = {"rosenbrock": parts[0][1], "quadratic": parts[1][1]}
    table = orders(runs)
    get = table.set_index(["problem", "method"])
    newton = get.loc[("rosenbrock", "newton")]
    gd = get.loc[("quadratic", "gd")]
    qn = [m for m in ("bfgs", "dfp") if ("rosenbrock", m) in get.index]
    superlinear = all(get.loc[("rosenbrock", m), "lo"] > 1.05 for m in qn)
    quadratic = newton["lo"] > 1.5 and abs(newton["order"] - 2) < 0.3
    linear = 0.95 <= gd["lo"] and gd["hi"] <= 1.05
    ok = quadratic and linear and superlinear and bool(qn)
    verdict = "confirmed" if ok else "partly"
    checks = " ".join(
        [
            f"GD linear (q within 0.05 of 1 on the quadratic): {'yes' if linear else 'no'}.",
            "BFGS and DFP superlinear (q's interval above 1.05 on Rosenbrock): "
            + ("yes." if superlinear and qn else "no." if qn else "not measured (not in the zoo)."),
            f"Newton quadratic (q within 0.3 of 2, interval above 1.5): "
            f"{'yes' if quadratic else 'no'}; its q is {newton['order']:.2f}. Over a window that "
            "starts at e = 0.1, Newton's first iterates on Rosenbrock are not yet in the "
            "asymptotic regime where e_(k+1) = C e_k^2 makes q_k exactly 2.",
        ]
    )
    duel = dfp_vs_bfgs(n_starts, 200 if reduced else 2000)
    if duel is None:
        duel_md = "BFGS and DFP are not in this build of the zoo; the comparison is left out."
    else:
        b = duel[duel["method"] == "bfgs"]["iterations"].to_numpy()
        d = duel[duel["method"] == "dfp"]["iterations"].to_numpy()
        pval = ranksum_p(b, d)
        reached = duel.groupby("method")["reached"].sum().to_dict()
        duel_md = (
            f"With a backtracking (Armijo-only) line search on Rosenbrock, {n_starts} starts: "
            f"BFGS reaches |x - x*| <= 1e-8 in a median {np.median(b):.0f} iterations "
            f"({reached['bfgs']} of {n_starts} within the budget), DFP in {np.median(d):.0f} "
            f"({reached['dfp']} of {n_starts}); rank-sum p = {pval:.2g}."
        )
    quad_newton = get.loc[("quadratic", "newton"), "median_iterations"]
    findings = f"""
**Design.** Rosenbrock 2-D (x* = (1, 1)) from {n_starts} seeded starts in [-1.5, 1.5]^2, and a
rotated 10-D quadratic (condition number 100, x* = 0) from {n_starts} starts in [-5, 5]^10.
Methods: GD (lr 5e-4 on Rosenbrock, 1/L = 0.01 on the quadratic), plain Newton,
{"BFGS and DFP (H0 = I, strong-Wolfe line search), " if qn else ""}L-BFGS with m = 3 and
m = 10 (one iteration per step, strong Wolfe), all with stopping tolerances at round-off. Order
q: per run the median of q_k = log(e_(k+1) / e_k) / log(e_k / e_(k-1)) over 1e-11 < e_k < 1e-1;
the median over runs with a bootstrap 95% interval.
{"" if qn else "BFGS and DFP were not registered in the zoo when this ran: they are left out."}

**Measured.**

{table.to_markdown(index=False, floatfmt=".3g")}

Newton's order on Rosenbrock: **{newton["order"]:.2f}** [{newton["lo"]:.2f}, {newton["hi"]:.2f}]
(baseline 1, a linear rate). GD's on the quadratic: {gd["order"]:.3f} [{gd["lo"]:.3f},
{gd["hi"]:.3f}]. On the quadratic Newton lands on x* in {quad_newton:.0f} iteration(s), so it has
no order to measure there. Evaluations per iteration follow the oracle's cost model: a Hessian
is d Hessian-vector products of {HESSIAN_PER_DIM} gradient evaluations each ({HESSIAN_PER_DIM * 2}
on Rosenbrock, {HESSIAN_PER_DIM * 10} on the quadratic); a line search's extra evaluations count
one each.

**DFP against BFGS, inexact line search.** {duel_md}

**Caveats.** An order fitted over a finite window is a summary, not the limit: a superlinear
method's slope lies between 1 and 2 and depends on the window. L-BFGS keeps only m pairs and is
linear in theory; the table shows how close to superlinear it is here. On the quadratic, BFGS
and DFP end in about d = 10 iterations (near-finite termination with a good line search), so
their q there is dominated by one final jump and is not an order. Times are per iteration
of the whole batch of {n_starts} runs on one thread, on a shared machine.

**Verdict: {verdict}.** {checks}
"""
    summary = Summary(
        claim=CLAIM,
        metric="Newton's order of convergence on Rosenbrock (median over starts)",
        value=float(newton["order"]),
        ci=(float(newton["lo"]), float(newton["hi"])),
        baseline=1.0,
        verdict=verdict,
    )
    tables = {"orders": table, "runs": runs}
    if duel is not None:
        tables["dfp_vs_bfgs"] = duel
    return Outcome(summary, findings, {"convergence": _figure(curves)}, tables)


STUDY = Study("quasi-newton", "Orders of convergence: GD, quasi-Newton, Newton", CLAIM, run)
