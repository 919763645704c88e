"""Study: critical points of 2-D functions, found from a grid of starts and told apart.

Claim (Hung-yi Lee, ML 2021, "When gradient is small"): at every critical point the gradient
vanishes, so the gradient cannot tell a minimum from a saddle or a maximum; the Hessian's
eigenvalues can. By Taylor, f(x* + v) = f(x*) + v^T H v / 2 + O(|v|^3) at a critical point x*,
so all eigenvalues positive means a minimum, all negative a maximum, mixed signs a saddle, and a
zero eigenvalue leaves the second-order test undecided (degenerate).

Design. Plain Newton, x <- x - H^-1 g, jumps to the critical point of the local quadratic model
whatever its kind (Nocedal & Wright 2006, sec. 3.3), so from a dense grid of starts it finds
saddles and maxima as well as minima. On Himmelblau's function (9 isolated critical points of
known kind: Himmelblau 1972), the monkey saddle x^3 - 3xy^2 and the two-neuron loss
(1 - w1 w2)^2, every end point that passes :func:`optzoo.analysis.classify_batch`'s
critical-point test is kept, duplicates merged, and each is classified by its eigenvalues.
"""

from __future__ import annotations

import pandas as pd
import torch

from optzoo import optimizers, problems
from optzoo.analysis import classify_batch
from optzoo.stats import wilson
from optzoo.studies.base import Outcome, Study, Summary
from optzoo.studies.figures import KIND_STYLE, contour, figure
from optzoo.studies.runs import distinct, grid_starts, run_starts

CLAIM = (
    "The gradient vanishes at every critical point; only the Hessian's eigenvalues tell a "
    "minimum, a saddle and a maximum apart."
)
# Himmelblau's critical points besides its four minima (published to 6 digits): one maximum and
# four saddles. Himmelblau (1972), Applied Nonlinear Programming; Wikipedia's table.
HIMMELBLAU_KNOWN = {
    (3.0, 2.0): "minimum",
    (-2.805118, 3.131312): "minimum",
    (-3.779310, -3.283186): "minimum",
    (3.584428, -1.848126): "minimum",
    (-0.270845, -0.923039): "maximum",
    (0.086677, 2.884254): "saddle",
    (-3.073026, -0.081353): "saddle",
    (3.385154, 0.073852): "saddle",
    (-0.127961, -1.953715): "saddle",
}
PROBLEMS = ("himmelblau", "monkey_saddle", "two_neuron")
MERGE_TOL = 1e-4  # end points closer than this are one critical point


def find_critical_points(problem, n_grid: int, steps: int) -> pd.DataFrame:
    """Newton from an ``n_grid x n_grid`` grid; one row per distinct critical point found.

    Columns: x, y, f, grad_norm, eig_min, eig_max, kind, starts (how many grid starts ended
    there).
    """
    starts = grid_starts(problem, n_grid, margin=0.01)
    tr = run_starts(problem, optimizers.get("newton"), starts, steps)
    c = classify_batch(problem, tr.x_final)
    crit = torch.tensor([k != "not_critical" for k in c["kind"]]) & ~tr.diverged
    idx = crit.nonzero().squeeze(1)
    pts = tr.x_final[idx]
    keep = distinct(pts, MERGE_TOL)
    near = torch.cdist(pts, pts[keep]).argmin(1)  # which kept point each end point joined
    counts = torch.bincount(near, minlength=len(keep))
    rows = []
    for j, i in enumerate(idx[keep].tolist()):
        rows.append(
            {
                "problem": problem.name,
                "x": float(tr.x_final[i, 0]),
                "y": float(tr.x_final[i, 1]),
                "f": float(c["f"][i]),
                "grad_norm": float(c["grad_norm"][i]),
                "eig_min": float(c["eig_min"][i]),
                "eig_max": float(c["eig_max"][i]),
                "kind": c["kind"][i],
                "starts": int(counts[j]),
            }
        )
    df = pd.DataFrame(rows)
    df.attrs["n_starts"] = len(starts)
    df.attrs["n_critical"] = int(crit.sum())
    return df


def himmelblau_matches(df: pd.DataFrame) -> tuple[int, list[str]]:
    """How many of Himmelblau's 9 known critical points were found with their known kind."""
    h = df[df["problem"] == "himmelblau"]
    found, notes = 0, []
    for (x, y), kind in HIMMELBLAU_KNOWN.items():
        d = ((h["x"] - x) ** 2 + (h["y"] - y) ** 2) ** 0.5
        hit = h[d < 1e-5]
        if len(hit) and hit["kind"].iloc[0] == kind:
            found += 1
        else:
            notes.append(f"({x}, {y}) {kind}: " + ("missed" if not len(hit) else "misclassified"))
    return found, notes


def _figure(found: pd.DataFrame, probs: dict):
    fig, axes = figure(len(probs))
    for ax, (name, p) in zip(axes, probs.items(), strict=True):
        contour(ax, p)
        sub = found[found["problem"] == name]
        for kind, (colour, marker) in KIND_STYLE.items():
            k = sub[sub["kind"] == kind]
            if len(k):
                ax.scatter(k["x"], k["y"], c=colour, marker=marker, s=40, label=kind, zorder=3)
        ax.legend(loc="lower left", fontsize=7)
    return fig


def run(reduced: bool) -> Outcome:
    n_grid, steps = (15, 40) if reduced else (60, 60)
    probs = {name: problems.get(name) for name in PROBLEMS}
    frames = [find_critical_points(p, n_grid, steps) for p in probs.values()]
    found = pd.concat(frames, ignore_index=True)
    k, notes = himmelblau_matches(found)
    lo, hi = wilson(k, len(HIMMELBLAU_KNOWN))
    by_kind = (
        found.groupby(["problem", "kind"])
        .agg(
            points=("x", "size"),
            max_grad_norm=("grad_norm", "max"),
            eig_min_lo=("eig_min", "min"),
            eig_min_hi=("eig_min", "max"),
            eig_max_lo=("eig_max", "min"),
            eig_max_hi=("eig_max", "max"),
        )
        .reset_index()
    )
    gmax = float(found["grad_norm"].max())
    ok = k == len(HIMMELBLAU_KNOWN)
    verdict = "confirmed" if ok and gmax < 1e-6 else "partly"
    per_problem = ", ".join(
        f"{f.attrs['n_critical']} of {f.attrs['n_starts']} starts on {n} ended at a critical point"
        for n, f in zip(PROBLEMS, frames, strict=True)
    )
    monkey = found[found["problem"] == "monkey_saddle"].iloc[0]
    mdist = float((monkey["x"] ** 2 + monkey["y"] ** 2) ** 0.5)
    meig = f"{monkey['eig_min']:.1e} and {monkey['eig_max']:.1e}"
    mkind = monkey["kind"]
    table = by_kind.to_markdown(index=False, floatfmt=".3g")
    findings = f"""
**Design.** Plain Newton (`newton`, lr 1, no damping) from a {n_grid} x {n_grid} grid over each
box, {steps} steps: Newton jumps to the critical point of its quadratic model whatever its kind,
so the grid finds saddles and maxima as well as minima. End points that pass
`optzoo.analysis.classify_batch`'s critical-point test are kept, those within {MERGE_TOL:g} of
each other merged, and each is classified by the signs of its Hessian eigenvalues. {per_problem}.
Himmelblau's nine critical points are known (4 minima, 4 saddles, 1 maximum), so this checks the
classification against an outside reference.

**Measured.** {k} of Himmelblau's 9 known critical points found with their known kind
(Wilson 95% interval [{lo:.2f}, {hi:.2f}]). The largest |g| at any critical point found is
{gmax:.1e}, at minima, saddles and maxima alike; the eigenvalues separate them:

{table}

A rule that sees only the gradient cannot separate these points: |g| is at round-off at all of
them. Called "minimum" wherever |g| is small (the belief that training stalls at local minima),
it would be right at 4 of Himmelblau's 9 (the baseline).
{"Not found or misclassified: " + "; ".join(notes) if notes else ""}

**Caveats.** Where an eigenvalue is zero the second-order test is undecided, and the study
has two such cases. The monkey saddle's only critical point, the origin, has a zero Hessian:
Newton reaches it only linearly (halving the distance each step), and at its end point,
{mdist:.1e} from the origin, the eigenvalues {meig} are zero in absolute terms though not
relative to their own scale, so the test reads `{mkind}`; that it is a saddle comes from the
cubic term, not from the Hessian. The two-neuron loss's global minima form a valley w1 w2 = 1
along which the Hessian has a zero eigenvalue: its points read `degenerate`, and they are
global minima by their value (f = 0 = f*), not by their eigenvalues. The two-neuron origin is the
strict saddle of the lecture's example (eigenvalues -2, 2).

**Verdict: {verdict}.** The gradient is zero to round-off at every critical point, and the
eigenvalues' signs classify every non-degenerate one correctly.
"""
    summary = Summary(
        claim=CLAIM,
        metric="share of Himmelblau's 9 known critical points found and classified right",
        value=k / len(HIMMELBLAU_KNOWN),
        ci=(lo, hi),
        baseline=4 / 9,
        verdict=verdict,
    )
    return Outcome(
        summary,
        findings,
        {"critical_points": _figure(found, probs)},
        {
            "critical_points": found,
            "by_kind": by_kind,
        },
    )


STUDY = Study(
    "critical-points", "Critical points: small gradients, told apart by the Hessian", CLAIM, run
)
