"""minibatch-noise: a mini-batch gradient is noisy, and SGD's loss floor rises like lr / B.

A mini-batch of B examples drawn with replacement gives an unbiased gradient whose noise
covariance is Sigma / B (Sigma: the per-example gradients' covariance), so E|g_B - g|^2 =
tr(Sigma) / B. Near a minimum with Hessian H, SGD at a fixed lr settles into a stationary spread
whose excess loss is ~ lr tr(H Sigma) / (4 B): it scales like lr / B (Mandt, Hoffman & Blei 2017;
Robbins & Monro 1951 for why decay is then needed). The gradient-descent source text names
sampling as the source of the noise that makes convergence "tortuous".

Design: SGD at one fixed lr from the problem's start, full batch and B in {256, 64, 16, 4}
(the oracle's seeded mini-batches, a different stream per seed), on two problems:

- ``teacher_student`` with a student narrower than its teacher (width 3 < 6), so the data cannot
  be fitted and the per-example gradients do not vanish at the minimum (with a realizable teacher
  they would, and the noise with them);
- ``digits_mlp`` (cross-entropy on scikit-learn's digits).

The floor is the full-data loss averaged over the last 40% of the steps; its excess over the
full-batch run and the slope of log(excess) on log(1/B) (theory: 1), with a bootstrap interval
over seeds. The gradient-noise variance is measured at the full-batch run's last iterate from
many mini-batch draws; its slope against 1/B is 1 by construction of with-replacement sampling,
a check that the noise is what the theory assumes.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from optzoo import optimizers, problems  # noqa: E402
from optzoo.problems.oracle import Oracle  # noqa: E402
from optzoo.studies.base import Outcome, Study, Summary  # noqa: E402
from optzoo.studies.fits import fmt_ci, group_slope, point_slope  # noqa: E402
from optzoo.studies.rollout import Step, rollout  # noqa: E402

FULL_BATCH = 0  # stands for "the whole data set, no sampling" in tables


@dataclass(frozen=True)
class Setting:
    name: str
    params: dict
    lr: float
    steps: int
    seeds: int


@dataclass(frozen=True)
class Plan:
    settings: tuple[Setting, ...]
    batches: tuple[int, ...]
    every: int  # measure the full loss every this many steps
    noise_draws: int


TS = {"width": 3, "teacher_width": 6}
FULL = Plan(
    settings=(
        Setting("teacher_student", TS, lr=0.4, steps=1500, seeds=6),
        Setting("digits_mlp", {}, lr=0.5, steps=800, seeds=4),
    ),
    batches=(256, 64, 16, 4),
    every=25,
    noise_draws=128,
)
REDUCED = Plan(
    settings=(Setting("teacher_student", TS, lr=0.4, steps=300, seeds=3),),
    batches=(64, 4),
    every=10,
    noise_draws=32,
)


class FloorMeter:
    """The full-data loss every ``every`` steps over the last 40% of the run, per run."""

    def __init__(self, problem, steps: int, every: int) -> None:
        self.problem, self.start, self.every = problem, int(0.6 * steps), every
        self.values: list[torch.Tensor] = []
        self.curve: list[tuple[int, torch.Tensor]] = []

    def __call__(self, st: Step) -> bool:
        if st.t % self.every == self.every - 1:
            f = self.problem.fn(st.x_new)
            self.curve.append((st.t + 1, f))
            if st.t >= self.start:
                self.values.append(f)
        return False


def floors(s: Setting, plan: Plan) -> tuple[pd.DataFrame, pd.DataFrame, torch.Tensor]:
    """Per (batch size, seed): floor and its fluctuation; learning curves; the full-batch end."""
    p = problems.get(s.name, **s.params)
    rows, curves, x_end = [], [], None
    for B in (FULL_BATCH, *plan.batches):
        R = 1 if B == FULL_BATCH else s.seeds  # the full batch is deterministic: one run
        x0 = p.x0.expand(R, -1).clone()
        meter = FloorMeter(p, s.steps, plan.every)
        kw = {} if B == FULL_BATCH else {"batch_size": B}
        res = rollout(p, optimizers.get("sgd", lr=s.lr), x0, s.steps, watch=meter,
                      seeds=torch.arange(R) + 1000 * B, **kw)  # fmt: skip
        tail = torch.stack(meter.values).numpy()  # (n, R)
        for r in range(R):
            rows.append({"problem": s.name, "batch": B, "seed": r, "floor": tail[:, r].mean(),
                         "fluctuation": tail[:, r].std()})  # fmt: skip
        for t, f in meter.curve:
            curves.append({"problem": s.name, "batch": B, "step": t, "f": float(f.mean())})
        if B == FULL_BATCH:
            x_end = res.x
    return pd.DataFrame(rows), pd.DataFrame(curves), x_end


def noise_variance(s: Setting, plan: Plan, x: torch.Tensor) -> pd.DataFrame:
    """E|g_B - g|^2 at x from ``noise_draws`` mini-batches per B (one oracle call each)."""
    p = problems.get(s.name, **s.params)
    n = plan.noise_draws
    xs = x.expand(n, -1).clone()
    _, g = Oracle(p, n).value_and_grad(xs)  # full batch
    rows = []
    for B in plan.batches:
        _, gb = Oracle(p, n, seeds=torch.arange(n), batch_size=B).value_and_grad(xs)
        sq = ((gb - g) ** 2).sum(-1).numpy()
        rows.append({"problem": s.name, "batch": B, "variance": sq.mean(),
                     "variance_se": sq.std(ddof=1) / np.sqrt(n)})  # fmt: skip
    return pd.DataFrame(rows)


def analyse(fl: pd.DataFrame, var: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """Excess-floor and noise-variance slopes against 1/B, with bootstrap intervals."""
    rows = []
    for prob, g in fl.groupby("problem", sort=False):
        full = float(g[g.batch == FULL_BATCH].floor.iloc[0])
        groups = [(g[g.batch == B].floor - full).to_numpy() for B in plan.batches]
        s, ci = group_slope([1.0 / B for B in plan.batches], groups)
        large = [i for i, B in enumerate(plan.batches) if B >= 16]
        ls, lci = (
            group_slope([1.0 / plan.batches[i] for i in large], [groups[i] for i in large])
            if len(large) >= 2
            else (np.nan, (np.nan, np.nan))
        )
        v = var[var.problem == prob]
        vs, vci = point_slope(1.0 / v.batch.to_numpy(), v.variance.to_numpy())
        rows.append({"problem": prob, "floor_full": full, "excess_slope": s, "lo": ci[0],
                     "hi": ci[1], "slope_B16": ls, "slope_B16_lo": lci[0],
                     "slope_B16_hi": lci[1], "variance_slope": vs, "variance_lo": vci[0],
                     "variance_hi": vci[1]})  # fmt: skip
    return pd.DataFrame(rows)


def _figure(fl: pd.DataFrame, curves: pd.DataFrame, var: pd.DataFrame):
    probs = list(dict.fromkeys(fl.problem))
    fig, axes = plt.subplots(3, len(probs), figsize=(5.5 * len(probs), 11), squeeze=False)
    for j, prob in enumerate(probs):
        c = curves[curves.problem == prob]
        for B, g in c.groupby("batch"):
            axes[0, j].semilogy(g.step, g.f, label="full" if B == FULL_BATCH else f"B={B}")
        axes[0, j].set_title(f"{prob}: full-data loss (mean over seeds)", fontsize=9)
        axes[0, j].set_xlabel("step")
        axes[0, j].legend(fontsize=7)
        f = fl[(fl.problem == prob) & (fl.batch != FULL_BATCH)]
        full = float(fl[(fl.problem == prob) & (fl.batch == FULL_BATCH)].floor.iloc[0])
        st = f.groupby("batch").agg(m=("floor", "mean"), s=("floor", "std"),
                                    fl=("fluctuation", "median"))  # fmt: skip
        axes[1, j].errorbar(1 / st.index, st.m - full, yerr=st.s, fmt="o-", label="excess floor")
        axes[1, j].plot(1 / st.index, st.fl, "s--", label="fluctuation in time (median)")
        axes[1, j].set_xscale("log")
        axes[1, j].set_yscale("log")
        axes[1, j].set_xlabel("1 / B")
        axes[1, j].set_title("floor above the full-batch run, spread over seeds", fontsize=9)
        axes[1, j].legend(fontsize=7)
        v = var[var.problem == prob]
        axes[2, j].errorbar(1 / v.batch, v.variance, yerr=2 * v.variance_se, fmt="o-")
        axes[2, j].set_xscale("log")
        axes[2, j].set_yscale("log")
        axes[2, j].set_xlabel("1 / B")
        axes[2, j].set_title("gradient-noise variance E|g_B - g|^2", fontsize=9)
    fig.tight_layout()
    return fig


def run(reduced: bool) -> Outcome:
    plan = REDUCED if reduced else FULL
    fls, curves, vars_ = [], [], []
    for s in plan.settings:
        fl, cv, x_end = floors(s, plan)
        fls.append(fl)
        curves.append(cv)
        vars_.append(noise_variance(s, plan, x_end))
    fl, cv, var = (pd.concat(v, ignore_index=True) for v in (fls, curves, vars_))
    fits = analyse(fl, var, plan)
    return Outcome(
        _summary(fits), _findings(plan, fl, var, fits), {"noise_floor": _figure(fl, cv, var)},
        {"floors": fl, "noise_variance": var, "slopes": fits, "curves": cv},
    )  # fmt: skip


def _summary(fits: pd.DataFrame) -> Summary:
    f = fits.iloc[0]
    near = abs(f.excess_slope - 1.0) <= 0.25
    rising = f.lo > 0
    verdict = "confirmed" if near and f.lo <= 1.0 <= f.hi else ("partly" if rising else "refuted")
    return Summary(
        claim="mini-batch noise leaves a loss floor that scales like lr / B",
        metric=f"log-log slope of the excess loss floor against 1/B ({f.problem}, fixed lr)",
        value=float(f.excess_slope),
        ci=(float(f.lo), float(f.hi)),
        baseline=0.0,
        verdict=verdict,
    )


def _findings(plan: Plan, fl: pd.DataFrame, var: pd.DataFrame, fits: pd.DataFrame) -> str:
    lines = ["## Design"]
    for s in plan.settings:
        lines.append(f"- `{s.name}` {s.params or ''}: SGD lr = {s.lr}, {s.steps} steps, "
                     f"{s.seeds} seeds per batch size.")  # fmt: skip
    lines += [
        f"Batch sizes: full and {list(plan.batches)} (drawn with replacement). Floor: the "
        f"full-data loss every {plan.every} steps over the last 40% of the run, averaged; "
        "fluctuation: its standard deviation in time. Slopes: least squares on log10 of the "
        "median excess per B; 95% intervals bootstrap the seeds (1000 resamples). Noise "
        f"variance from {plan.noise_draws} draws per B at the full-batch run's last iterate.",
        "",
        "## Result",
        "| problem | full-batch floor | excess-floor slope vs 1/B | same, B >= 16 only "
        "| noise-variance slope vs 1/B |",
        "|---|---|---|---|---|",
    ]
    for f in fits.itertuples():
        lines.append(f"| {f.problem} | {f.floor_full:.4g} | {fmt_ci(f.excess_slope, (f.lo, f.hi))}"
                     f" | {fmt_ci(f.slope_B16, (f.slope_B16_lo, f.slope_B16_hi))}"
                     f" | {fmt_ci(f.variance_slope, (f.variance_lo, f.variance_hi))} |"
                     )  # fmt: skip
    tab = fl.groupby(["problem", "batch"]).agg(
        floor=("floor", "mean"), spread=("floor", "std"), fluctuation=("fluctuation", "median")
    )
    lines += ["", "Floor per batch size (batch 0 = full; spread = std over seeds):", "", "```",
              tab.to_string(float_format=lambda v: f"{v:.4g}"), "```", "",
              "## Verdict",
              "Theory: slope 1 for both (the floor ~ lr / B, the variance ~ 1 / B). Rule: "
              "confirmed if the first problem's slope interval holds 1 and its estimate is within "
              "0.25 of it; partly if the floor at least rises as B falls (interval above 0). The "
              "lr half of lr / B is not varied here; `lr-decay` varies it in time.",
              "",
              "The lr / B law is a small-noise (linear-response) result: it holds where the "
              "stationary spread stays inside the quadratic basin. At the smallest batches the "
              "excess is no longer small against the full-batch floor and the iterate samples "
              "the loss's non-quadratic walls, so the slope over the whole range can exceed 1; "
              "the 'B >= 16 only' column is the slope where the noise is smaller."]  # fmt: skip
    return "\n".join(lines)


STUDY = Study(
    name="minibatch-noise",
    title="Mini-batch noise: the gradient's variance ~ 1/B and SGD's loss floor ~ lr/B",
    claim="with a fixed lr, SGD on mini-batches of size B stalls at a loss floor above the "
    "full-batch run's that grows like 1/B, as the gradient-noise variance does",
    run=run,
)
