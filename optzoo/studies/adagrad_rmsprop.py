"""adagrad-rmsprop: AdaGrad's step decays too early on a non-convex loss; RMSProp's does not.

AdaGrad divides lr by the root of every squared gradient so far, s_t = sum_(i<=t) g_i^2
(Duchi, Hazan & Singer 2011): its effective lr, lr / (sqrt(s_t) + eps), only ever falls, and a
burst of large gradients early on (a steep wall) shrinks every later step. RMSProp keeps an
exponential average instead, v_t = alpha v_(t-1) + (1 - alpha) g_t^2 (Tieleman & Hinton 2012),
which forgets the burst: its effective lr, lr / (sqrt(v_t) + eps), follows the current gradient's
scale. The source text: on non-convex functions AdaGrad "may reduce the learning rate too early,
stalling before it reaches the extremum"; RMSProp "does not show a decaying trend".

Design: 2-D Rosenbrock from random starts in its box (steep walls first, then a long flat
valley), 5000 steps; each method's lr tuned on a log grid by the median final loss over tuning
starts, reported on held-out starts. The effective lr (geometric mean over coordinates, read from
the optimizer's own state) and f are recorded at log-spaced steps. Headline: the ratio of the
median final effective lr, AdaGrad over RMSProp, with a bootstrap interval over runs.

Second part (Nesterov 1983 against Polyak 1964): on the rotated-quadratic family of
``ravine-zigzag``, both tuned on the same kind of grid, iterations to target per kappa.
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
from optzoo.stats import bootstrap, ranksum_p  # noqa: E402
from optzoo.studies import ravine_zigzag  # noqa: E402
from optzoo.studies.base import Outcome, Study, Summary  # noqa: E402
from optzoo.studies.fits import fmt_ci  # noqa: E402
from optzoo.studies.rollout import Step, rollout  # noqa: E402

STATE = {"adagrad": "sum", "rmsprop": "square_avg"}  # the accumulator in each one's state


@dataclass(frozen=True)
class Plan:
    steps: int
    lrs: tuple[float, ...]
    tune: int
    held: int
    kappas: tuple[float, ...]
    quad: ravine_zigzag.Plan


FULL = Plan(
    steps=5000,
    # 1e-4 .. 10, 2 per decade: wide enough that neither method's best lr is at an end.
    lrs=tuple(float(v) for v in np.logspace(-4, 1, 11)),
    tune=16,
    held=48,
    kappas=(10.0, 100.0, 1e3, 1e4),
    quad=ravine_zigzag.FULL,
)
REDUCED = Plan(
    steps=400,
    lrs=(0.01, 0.1),
    tune=4,
    held=8,
    kappas=(10.0, 100.0),
    quad=ravine_zigzag.REDUCED,
)


class EffectiveLR:
    """Geometric mean over coordinates of lr / (sqrt(accumulator) + eps), and f, per run."""

    def __init__(self, name: str, lr: torch.Tensor, eps: float, steps: int, problem) -> None:
        self.name, self.lr, self.eps, self.problem = name, lr, eps, problem
        self.at = set(np.unique(np.geomspace(1, steps, 40).astype(int)).tolist())
        self.points: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def __call__(self, st: Step) -> bool:
        if st.t + 1 in self.at:
            acc = getattr(st.state, STATE[self.name])
            eff = self.lr[:, None] / (acc.sqrt() + self.eps)
            self.points.append((st.t + 1, eff.log().mean(-1).exp(), self.problem.fn(st.x_new)))
        return False


def run_method(name: str, plan: Plan, starts: torch.Tensor) -> pd.DataFrame:
    """All lrs x all starts in one batch; long format (run, step, effective lr, f)."""
    p = problems.get("rosenbrock", dim=2)
    n = starts.shape[0]
    lr = torch.tensor(plan.lrs, dtype=torch.float64).repeat_interleave(n)
    opt = optimizers.get(name, lr=lr)
    meter = EffectiveLR(name, lr, opt.hp["eps"], plan.steps, p)
    rollout(p, opt, starts.repeat(len(plan.lrs), 1), plan.steps, watch=meter)
    rows = []
    for t, eff, f in meter.points:
        rows.append(pd.DataFrame({"method": name, "lr": lr.numpy(), "start": np.arange(len(lr)) % n,
                                  "step": t, "eff_lr": eff.numpy(), "f": f.numpy()}))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def tuned(trace: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """Each method's held-out trace at the lr with the lowest median final f on tuning starts."""
    last = trace[trace.step == trace.step.max()]
    out = []
    for name, g in last.groupby("method", sort=False):
        med = g[g.start < plan.tune].groupby("lr").f.median()
        lr = float(med.idxmin())
        t = trace[(trace.method == name) & (trace.lr == lr) & (trace.start >= plan.tune)]
        out.append(t)
    return pd.concat(out, ignore_index=True)


def nesterov_vs_momentum(plan: Plan) -> pd.DataFrame:
    """Tuned heavy-ball and Nesterov iterations on ravine-zigzag's quadratics, per kappa."""
    rows = []
    for i, k in enumerate(plan.kappas):
        res = {m: ravine_zigzag.tuned_iterations(k, m, plan.quad, seed=500 + i)
               for m in ("momentum", "nesterov")}  # fmt: skip
        hb, nv = res["momentum"]["iterations"], res["nesterov"]["iterations"]
        ratio = float(np.median(nv) / np.median(hb))
        ci = bootstrap([nv, hb], lambda a, b: float(np.median(a) / np.median(b)), n_boot=1000)
        rows.append({"kappa": k, "momentum_median": float(np.median(hb)),
                     "nesterov_median": float(np.median(nv)), "ratio": ratio, "lo": ci[0],
                     "hi": ci[1], "p_ranksum": ranksum_p(nv, hb)})  # fmt: skip
    return pd.DataFrame(rows)


def _figure(tr: pd.DataFrame):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for name, g in tr.groupby("method", sort=False):
        lr = g.lr.iloc[0]
        for ax, col in zip(axes, ("eff_lr", "f"), strict=True):
            q = g.groupby("step")[col]
            ax.loglog(q.median().index, q.median().values, label=f"{name} (lr {lr:.3g})")
            ax.fill_between(q.median().index, q.quantile(0.25), q.quantile(0.75), alpha=0.2)
    axes[0].set_title("effective lr: lr / (sqrt(accumulator) + eps), geometric mean", fontsize=9)
    axes[1].set_title("f (Rosenbrock, held-out starts; median and quartiles)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def run(reduced: bool) -> Outcome:
    plan = REDUCED if reduced else FULL
    rosen = problems.get("rosenbrock", dim=2)
    starts = rosen.sample_starts(plan.tune + plan.held, seed=77)
    trace = pd.concat([run_method(m, plan, starts) for m in STATE], ignore_index=True)
    tr = tuned(trace, plan)
    end = tr[tr.step == tr.step.max()]
    ada = end[end.method == "adagrad"].set_index("start")
    rms = end[end.method == "rmsprop"].set_index("start")
    nm = nesterov_vs_momentum(plan)
    at10 = tr[tr.step == tr.step[tr.step >= 10].min()]
    early = at10.groupby("method").eff_lr.median().to_dict()
    return Outcome(
        _summary(ada, rms), _findings(plan, ada, rms, nm, early), {"effective_lr": _figure(tr)},
        {"final": end, "nesterov_vs_momentum": nm},
    )  # fmt: skip


def _ratio(ada: pd.DataFrame, rms: pd.DataFrame) -> tuple[float, tuple[float, float]]:
    def stat(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.median(a) / np.median(b))

    a, b = ada.eff_lr.to_numpy(), rms.eff_lr.to_numpy()
    return stat(a, b), bootstrap([a, b], stat, n_boot=1000)


def _summary(ada: pd.DataFrame, rms: pd.DataFrame) -> Summary:
    r, ci = _ratio(ada, rms)
    lower_f = (
        ranksum_p(ada.f.to_numpy(), rms.f.to_numpy()) < 0.05 and ada.f.median() > rms.f.median()
    )
    below = ci[1] < 1.0
    return Summary(
        claim="AdaGrad's effective lr decays below RMSProp's on a long non-convex run",
        metric="median final effective lr, AdaGrad / RMSProp (Rosenbrock, tuned lrs)",
        value=r,
        ci=ci,
        baseline=1.0,
        verdict="confirmed" if below and lower_f else ("partly" if below else "refuted"),
    )


def _findings(
    plan: Plan, ada: pd.DataFrame, rms: pd.DataFrame, nm: pd.DataFrame, early: dict
) -> str:
    r, ci = _ratio(ada, rms)
    p = ranksum_p(ada.f.to_numpy(), rms.f.to_numpy())
    lines = [
        "## Design",
        f"2-D Rosenbrock, {plan.tune} tuning + {plan.held} held-out starts drawn from its box, "
        f"{plan.steps} steps, lr in {[f'{v:.3g}' for v in plan.lrs]} (default eps, RMSProp "
        "alpha = 0.99). Intervals: bootstrap over held-out runs (1000 resamples).",
        "",
        "## Result",
        f"- Tuned lr: AdaGrad {ada.lr.iloc[0]:.3g}, RMSProp {rms.lr.iloc[0]:.3g}.",
        f"- Final effective lr (median): AdaGrad {ada.eff_lr.median():.3g}, RMSProp "
        f"{rms.eff_lr.median():.3g}; ratio {fmt_ci(r, ci)}.",
        f"- Effective lr at step 10 -> the end (median): AdaGrad {early['adagrad']:.3g} -> "
        f"{ada.eff_lr.median():.3g}, RMSProp {early['rmsprop']:.3g} -> {rms.eff_lr.median():.3g}. "
        "AdaGrad's falls within its first steps (the walls' large gradients fill its sum) and "
        "never recovers; RMSProp's forgets them and rises as the gradient shrinks in the "
        "valley."
        + (
            " Tuning compensates in part: AdaGrad's best lr is the larger one."
            if ada.lr.iloc[0] > rms.lr.iloc[0]
            else ""
        ),
        f"- Final f (median [quartiles]): AdaGrad {ada.f.median():.3g} "
        f"[{ada.f.quantile(0.25):.3g}, {ada.f.quantile(0.75):.3g}], RMSProp {rms.f.median():.3g} "
        f"[{rms.f.quantile(0.25):.3g}, {rms.f.quantile(0.75):.3g}]; rank-sum p = {p:.3g}.",
        "",
        "## Nesterov against heavy-ball momentum on the quadratics of `ravine-zigzag`",
        "Both tuned as in `ravine-zigzag` (held-out starts); ratio = Nesterov's median "
        "iterations over heavy-ball's, bootstrap 95% interval:",
        "",
        "| kappa | heavy-ball | Nesterov | ratio [95% CI] | rank-sum p |",
        "|---|---|---|---|---|",
    ]
    for row in nm.itertuples():
        lines.append(f"| {row.kappa:g} | {row.momentum_median:.4g} | {row.nesterov_median:.4g} | "
                     f"{fmt_ci(row.ratio, (row.lo, row.hi))} | {row.p_ranksum:.3g} |")  # fmt: skip
    lines += [
        "",
        f"Measured ratios: {nm.ratio.min():.2f} to {nm.ratio.max():.2f}. On a quadratic, "
        "Polyak's heavy-ball at its optimal setting contracts by (sqrt(kappa) - 1)/(sqrt(kappa) "
        "+ 1) a step, the best any fixed-step first-order method can do; tuned Nesterov "
        "contracts by about 1 - 1/sqrt(kappa): the same sqrt(kappa) scaling (both slopes are in "
        "`ravine-zigzag`) with a larger constant, up to grid resolution. The source text's "
        "'Nesterov converges faster' holds for general convex functions (where heavy-ball can "
        "fail to converge), not for tuned runs on quadratics.",
        "",
        "## Verdict",
        "Rule: confirmed if the effective-lr ratio's interval lies below 1 and AdaGrad ends at a "
        "higher loss (rank-sum p < 0.05); partly if only the first holds.",
    ]
    return "\n".join(lines)


STUDY = Study(
    name="adagrad-rmsprop",
    title="AdaGrad's effective lr decays too early; RMSProp's follows the gradient (and Nesterov "
    "against heavy-ball)",
    claim="on a long non-convex run AdaGrad's lr / sqrt(sum g^2) decays and stalls it while "
    "RMSProp's lr / sqrt(EMA g^2) does not",
    run=run,
)
