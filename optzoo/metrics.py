"""Metrics: targets, runtimes, success, aRT, ECDFs, performance profiles, tuning, landscapes.

Pure functions on numpy arrays and pandas frames; nothing here runs an optimizer. The
definitions follow COCO (Hansen, Auger, Brockhoff, Tusar, Tusar: "COCO: performance assessment",
Optimization Methods and Software, 2022; arXiv:1605.03560) and the performance profiles of
Dolan & More, "Benchmarking optimization software with performance profiles", Math. Programming
91 (2002).

Conventions used throughout:

- A *hit matrix* ``H`` of shape ``(runs, targets)`` holds the gradient evaluations at which each
  run first reached each target, and -1 where it never did (the harness's ``evals_to``).
- A run's *total* cost is its ``evals`` column: every run is frozen once it is solved, so the
  total cost of a solved run is its runtime to the success target.
- Targets are ``f <= f* + delta_f`` for ``delta_f`` on ``LADDER``. A problem without ``f*`` but
  with a known saddle has one target, *escape* (the harness's ``status == "solved"``). A problem
  with neither uses ``f_ref``, the lowest f in its traces over every optimizer, in place of f*,
  and its hits are read off the log-spaced traces (so they are upper bounds).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from optzoo.schema import LADDER
from optzoo.stats import wilson

# The delta_f columns of the tables, and the success target.
TABLE_TARGETS = (1e1, 1e0, 1e-1, 1e-2, 1e-3, 1e-5, 1e-7)
FINAL_TARGET = 1e-8


def ladder_index(delta_f: float) -> int:
    """The position of ``delta_f`` on ``LADDER`` (the nearest rung, clipped to the ends)."""
    i = int(round((2.0 - math.log10(delta_f)) / 0.2))
    return min(max(i, 0), len(LADDER) - 1)


# -- runtimes and success ---------------------------------------------------------------------
def runtime(hits: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Runtime RT per run and target (COCO, Hansen et al. 2022, section 3).

    ``RT = hits`` where the target was reached, else the run's total evaluations (an unsuccessful
    run contributes its whole cost). ``hits`` is ``(runs,)`` or ``(runs, targets)``, ``total``
    is ``(runs,)``.
    """
    hits = np.asarray(hits)
    total = np.asarray(total)
    if hits.ndim == 2:
        total = total[:, None]
    return np.where(hits >= 0, hits, total).astype(np.float64)


def success(hits: np.ndarray) -> np.ndarray:
    """Whether each run reached each target: ``hits >= 0``."""
    return np.asarray(hits) >= 0


def success_rate(hits: np.ndarray) -> np.ndarray | float:
    """Share of runs that reached the target (per target for a 2-D ``hits``); NaN for no runs."""
    s = success(hits)
    if s.shape[0] == 0:
        return np.full(s.shape[1:], np.nan) if s.ndim == 2 else math.nan
    return s.mean(axis=0)


def art(hits: np.ndarray, total: np.ndarray) -> np.ndarray | float:
    """Average runtime aRT (COCO's ERT; Hansen et al. 2022, section 3.3).

    ``aRT = sum over all runs of RT / number of successful runs``, infinite when no run succeeds.
    Per target (a vector) for a 2-D ``hits``, a float for a 1-D one.
    """
    rt = runtime(hits, total)
    n_succ = success(hits).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(n_succ > 0, rt.sum(axis=0) / np.maximum(n_succ, 1), np.inf)
    return float(out) if np.ndim(out) == 0 else out


def quartiles(values: Iterable[float]) -> tuple[float, float, float]:
    """``(q25, median, q75)`` with linear interpolation; NaNs for an empty sample.

    NaNs are dropped; infinities are kept and ordered last (a quantile between a finite value
    and inf is inf), so a sample of diverged runs gives inf, not NaN.
    """
    v = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    v = np.sort(v[~np.isnan(v)])
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    out = []
    for q in (0.25, 0.5, 0.75):
        pos = q * (v.size - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        a, b = v[lo], v[hi]
        out.append(_lerp(float(a), float(b), pos - lo))
    return (out[0], out[1], out[2])


def _lerp(a: float, b: float, t: float) -> float:
    """``a + (b - a) t`` for sorted ``a <= b`` that may be infinite."""
    if a == b or t == 0:
        return a
    if a == -math.inf:
        return a
    if b == math.inf:
        return b
    return a + (b - a) * t


def to_target_quartiles(hits: np.ndarray) -> tuple[float, float, float]:
    """Quartiles of the cost (steps or evaluations) to a target over the runs that reached it."""
    h = np.asarray(hits)
    return quartiles(h[h >= 0])


def divergence_count(status: Sequence[str]) -> int:
    """Number of runs marked ``diverged`` (loss or iterate turned NaN/Inf)."""
    return int((np.asarray(status, dtype=object) == "diverged").sum())


def endpoint_counts(endpoints: Sequence[str]) -> str:
    """Where runs ended, most frequent first: e.g. ``"minimum 27/64, saddle 37/64"``.

    Ties are ordered by name, so the text is deterministic.
    """
    labels = [str(e) for e in np.asarray(endpoints, dtype=object)]
    n = len(labels)
    if n == 0:
        return ""
    items = sorted(Counter(labels).items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k} {v}/{n}" for k, v in items)


# -- hit matrices per problem -----------------------------------------------------------------
@dataclass(frozen=True)
class Hits:
    """Targets and first-hit costs of one problem's runs (rows aligned with its runs frame).

    ``kind`` is ``"f_star"`` (targets f* + delta_f), ``"f_ref"`` (targets f_ref + delta_f, read
    from the traces) or ``"escape"`` (one target: leaving the known saddle). ``final`` is the
    column of the success target.
    """

    kind: str
    targets: np.ndarray  # (k,) delta_f per column; NaN for escape
    evals: np.ndarray  # (runs, k) gradient evaluations at the first hit, -1 never
    steps: np.ndarray  # (runs, k) steps at the first hit, -1 never
    final: int
    f_ref: float | None = None

    @property
    def success(self) -> np.ndarray:
        """Per run: the success target was reached."""
        return self.evals[:, self.final] >= 0

    def column(self, delta_f: float) -> int | None:
        """The column for a table target, None when the problem has no such target."""
        if self.kind == "escape":
            return None
        return ladder_index(delta_f)


def _stack(col: pd.Series, k: int) -> np.ndarray:
    if len(col) == 0:
        return np.zeros((0, k), dtype=np.int64)
    return np.stack([np.asarray(v, dtype=np.int64) for v in col.to_numpy()])


def problem_hits(runs: pd.DataFrame, info: dict, traces: pd.DataFrame | None = None) -> Hits:
    """The hit matrices of one problem's runs, by the rules in the module docstring.

    ``info`` is the problem's facts (``problem.json``). The success target is the problem's own
    ``target`` (1e-8 unless the problem says otherwise; a run stops there, so no finer target
    could be reached). ``traces`` (of every optimizer on the problem) is needed only when the
    problem has neither f* nor a saddle.
    """
    final = ladder_index(float(info.get("target") or FINAL_TARGET))
    if info.get("f_star") is not None:
        ev = _stack(runs["evals_to"], len(LADDER))
        st = _stack(runs["steps_to"], len(LADDER))
        return Hits("f_star", LADDER.copy(), ev, st, final)
    if info.get("saddles"):
        ok = (runs["solved"] if "solved" in runs else runs["status"] == "solved").to_numpy(bool)
        ev = np.where(ok, runs["evals"].to_numpy(), -1).astype(np.int64)[:, None]
        st = np.where(ok, runs["steps"].to_numpy(), -1).astype(np.int64)[:, None]
        return Hits("escape", np.array([np.nan]), ev, st, 0)
    if traces is None or traces.empty:
        n = len(runs)
        empty = np.full((n, len(LADDER)), -1, dtype=np.int64)
        return Hits("f_ref", LADDER.copy(), empty, empty.copy(), final, None)
    tr = traces[np.isfinite(traces["f"].to_numpy())]
    f_end = runs["f_final"].to_numpy(dtype=float) if "f_final" in runs else np.zeros(0)
    f_end = f_end[np.isfinite(f_end)]
    f_ref = float(min(tr["f"].min(), f_end.min() if f_end.size else np.inf))
    ev, st = hits_from_traces(runs, tr, f_ref)
    return Hits("f_ref", LADDER.copy(), ev, st, final, f_ref)


def hits_from_traces(
    runs: pd.DataFrame, traces: pd.DataFrame, f_ref: float
) -> tuple[np.ndarray, np.ndarray]:
    """First trace point of each run with ``f - f_ref <= delta_f``, per ladder rung.

    Traces are log-spaced in steps, so these are upper bounds on the true first hits. A run's
    last iterate (``f_final`` at ``evals``/``steps`` in ``runs``, when given) closes its trace,
    since a run that stopped between two logged steps is not in the trace at its end.
    Returns ``(evals, steps)``, each ``(runs, len(LADDER))`` with -1 where never reached.
    """
    n = len(runs)
    ev = np.full((n, len(LADDER)), -1, dtype=np.int64)
    st = np.full((n, len(LADDER)), -1, dtype=np.int64)
    pos = {
        (o, r): i
        for i, (o, r) in enumerate(
            zip(runs["optimizer"].to_numpy(), runs["run"].to_numpy(), strict=True)
        )
    }
    tr = traces.sort_values(["optimizer", "run", "step"], kind="stable")
    for (o, r), g in tr.groupby(["optimizer", "run"], sort=False):
        i = pos.get((o, r))
        if i is None:
            continue
        gap = g["f"].to_numpy() - f_ref
        # Running minimum: the first point at or below each rung.
        best = np.minimum.accumulate(gap)
        first = np.searchsorted(-best, -LADDER, side="left")
        ok = first < len(best)
        ev[i, ok] = g["evals"].to_numpy()[first[ok]]
        st[i, ok] = g["step"].to_numpy()[first[ok]]
    if {"f_final", "evals", "steps"} <= set(runs.columns):
        gap = runs["f_final"].to_numpy(dtype=float) - f_ref
        late = (ev < 0) & (gap[:, None] <= LADDER[None, :])
        ev = np.where(late, runs["evals"].to_numpy()[:, None], ev)
        st = np.where(late, runs["steps"].to_numpy()[:, None], st)
    return ev, st


# -- per hyperparameter statistics ------------------------------------------------------------
def hp_stats(runs: pd.DataFrame, hits: dict[str, Hits]) -> pd.DataFrame:
    """One row per (problem, optimizer, hp_id): success, aRT, quantiles, landscape metrics.

    ``runs`` must carry a ``row`` column giving each run's row in ``hits[problem]``.
    Columns: problem, category, optimizer, hp_id, hp, lr, hp_default, runs, successes,
    success_rate, art (at the success target), art_<delta_f> for each table target (NaN when
    the problem has no such target), steps_q25/q50/q75 and evals_q25/q50/q75 (to the success
    target, successful runs only), f_best_q25/q50/q75, f_final_q25/q50/q75, diverged,
    endpoints, zigzag_q50, step_cos_q50, efficiency_q25/q50/q75, flat_steps_q50, max_step_q50,
    escape_step_q50.
    """
    rows = []
    if "split" not in runs:
        runs = runs.assign(split="test")
    if "step_cos" not in runs:  # stores written before the column existed
        runs = runs.assign(step_cos=np.nan)
    keys = ["problem", "optimizer", "hp_id", "split"]
    # Columns as plain numpy arrays once: a per-group pandas lookup costs more than its maths.
    names = ("category", "hp", "lr", "hp_default", "row", "evals", "f_best", "f_final", "status",
             "endpoint", "path_length", "displacement", "flat_steps", "max_step",
             "escape_step", "step_cos")  # fmt: skip
    col = {
        k: runs[k].to_numpy(dtype=object if k in ("status", "endpoint") else None) for k in names
    }
    for (prob, opt, hp_id, split), pos in runs.groupby(keys, sort=True).indices.items():
        g = {k: v[pos] for k, v in col.items()}
        h = hits[prob]
        idx = g["row"]
        ev, stp = h.evals[idx], h.steps[idx]
        total = g["evals"]
        fin = ev[:, h.final]
        rec = {
            "problem": prob,
            "category": g["category"][0],
            "optimizer": opt,
            "hp_id": int(hp_id),
            "split": split,
            "hp": g["hp"][0],
            "lr": float(g["lr"][0]),
            "hp_default": bool(g["hp_default"][0]),
            "runs": len(pos),
            "successes": int((fin >= 0).sum()),
            "success_rate": float(success_rate(fin)),
            "art": art(fin, total),
        }
        rec["success_lo"], rec["success_hi"] = wilson(rec["successes"], rec["runs"])
        for t in TABLE_TARGETS:
            c = h.column(t)
            rec[f"art_{t:g}"] = art(ev[:, c], total) if c is not None and c <= h.final else math.nan
        for name, q in (
            ("steps", to_target_quartiles(stp[:, h.final])),
            ("evals", to_target_quartiles(fin)),
            ("f_best", quartiles(g["f_best"])),
            ("f_final", quartiles(g["f_final"])),
        ):
            for lab, v in zip(("q25", "q50", "q75"), q, strict=True):
                rec[f"{name}_{lab}"] = v
        rec["diverged"] = divergence_count(g["status"])
        rec["endpoints"] = endpoint_counts(g["endpoint"])
        eff = path_efficiency(g["path_length"], g["displacement"])
        rec["efficiency_q25"], rec["efficiency_q50"], rec["efficiency_q75"] = quartiles(eff)
        rec["zigzag_q50"] = quartiles(zigzag(g["path_length"], g["displacement"]))[1]
        rec["step_cos_q50"] = quartiles(g["step_cos"])[1]  # NaN runs (< 2 steps) left out
        rec["flat_steps_q50"] = quartiles(g["flat_steps"])[1]
        rec["max_step_q50"] = quartiles(g["max_step"])[1]
        rec["escape_step_q50"] = quartiles(escape_steps(g["escape_step"]))[1]
        rows.append(rec)
    return pd.DataFrame(rows)


# -- aggregation over problems ----------------------------------------------------------------
def runtime_ecdf(hits: Sequence[np.ndarray], budgets: np.ndarray) -> np.ndarray:
    """Runtime ECDF (COCO, Hansen et al. 2022, section 5; "data profile" of More & Wild 2009).

    ``hits`` holds one ``(runs, targets)`` hit matrix per problem. The value at budget b is the
    fraction of (run, target) pairs with ``0 <= hits <= b``, each problem weighted equally
    (each pair of problem p weighs ``1 / (n_problems * runs_p * targets_p)``). Unsuccessful
    runs contribute nothing, and no restarts are simulated.
    """
    budgets = np.asarray(budgets, dtype=float)
    mats = [np.asarray(h) for h in hits if np.asarray(h).size]
    if not mats:
        return np.zeros_like(budgets)
    out = np.zeros_like(budgets)
    for h in mats:
        v = np.sort(h[h >= 0].astype(float))
        out += np.searchsorted(v, budgets, side="right") / h.size
    return out / len(mats)


def performance_profile(cost: pd.DataFrame, taus: np.ndarray) -> pd.DataFrame:
    """Dolan-More performance profile ``rho_s(tau)`` (Dolan & More 2002).

    ``cost`` is problems x solvers (inf or NaN: unsolved). With ``r_ps = cost_ps / min_s cost_ps``,
    ``rho_s(tau) = |{p : r_ps <= tau}| / n_problems``. A problem no solver solves counts for none.
    Returns taus x solvers.
    """
    c = cost.to_numpy(dtype=float)
    c = np.where(np.isnan(c), np.inf, c)
    best = c.min(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(np.isfinite(c) & np.isfinite(best), c / best, np.inf)
    taus = np.asarray(taus, dtype=float)
    n = max(c.shape[0], 1)
    rho = (r[None, :, :] <= taus[:, None, None]).sum(axis=1) / n
    return pd.DataFrame(rho, index=pd.Index(taus, name="tau"), columns=cost.columns)


# -- landscape metrics ------------------------------------------------------------------------
def zigzag(path_length: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """Zigzag factor ``path_length / |x_T - x_0|`` per run (1: a straight line; ravines: >> 1).

    NaN where the run did not move.
    """
    p = np.asarray(path_length, dtype=float)
    d = np.asarray(displacement, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, p / d, np.nan)


def path_efficiency(path_length: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """Path efficiency ``|x_T - x_0| / path_length`` in [0, 1], the inverse of the zigzag factor.

    NaN where the run did not move.
    """
    p = np.asarray(path_length, dtype=float)
    d = np.asarray(displacement, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, d / p, np.nan)


def flat_fraction(flat_steps: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Share of a run's steps spent on a plateau (raw |g| below the suite's ``plateau_grad``)."""
    f = np.asarray(flat_steps, dtype=float)
    s = np.asarray(steps, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s > 0, f / s, np.nan)


def divergence_rate(status: Sequence[str]) -> float:
    """Share of runs that diverged (cliffs: a gradient blow-up throws the iterate to Inf/NaN)."""
    s = np.asarray(status, dtype=object)
    return float((s == "diverged").mean()) if s.size else math.nan


def escape_steps(escape_step: np.ndarray) -> np.ndarray:
    """Steps to leave the known saddle, for the runs that did (the harness stores -1 for never)."""
    e = np.asarray(escape_step, dtype=float)
    return e[e >= 0]
