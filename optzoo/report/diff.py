"""``python -m optzoo.report.diff A B``: what differs between two stored runs of one suite.

Meant for the same suite run twice: on two machines (another CPU rounds otherwise), with two
torch versions, before and after a change. It reads both stores and writes nothing. Runs are
matched by what defines them (problem, optimizer, setting, split, start and seed), so a grid
widened differently in the two leaves some runs unmatched rather than misaligned.

It prints three parts:

- runs: how many have a bit-identical final f, a different evaluation count, or a different
  outcome (met the success target in one store and not in the other), per problem;
- chosen settings: the (problem, optimizer) pairs whose setting chosen on the held-out starts
  differs, with the reported success counts of each;
- headline: the per-category success rates (best setting per problem) that differ, and whether
  each lies inside the other store's 95% Wilson interval.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from optzoo import _pool, stats
from optzoo.errors import ConfigError
from optzoo.report.data import ReportData

RUN_KEYS = ["problem", "optimizer", "hp", "split", "start_id", "seed_id"]


def run_changes(a: ReportData, b: ReportData) -> tuple[pd.DataFrame, int]:
    """Per problem: matched runs, final f bit-identical, evaluations differing, outcomes
    differing; and the number of runs found in only one of the two stores."""
    cols = [*RUN_KEYS, "f_final", "evals", "solved"]
    m = a.runs[cols].merge(b.runs[cols], on=RUN_KEYS, suffixes=("_a", "_b"), validate="1:1")
    fa, fb = m["f_final_a"].to_numpy(), m["f_final_b"].to_numpy()
    m["bit_equal"] = (fa == fb) | (np.isnan(fa) & np.isnan(fb))
    m["evals_differ"] = m["evals_a"] != m["evals_b"]
    m["outcome_differs"] = m["solved_a"] != m["solved_b"]
    per = (
        m.groupby("problem", sort=True)
        .agg(
            runs=("bit_equal", "size"),
            bit_equal=("bit_equal", "sum"),
            evals_differ=("evals_differ", "sum"),
            outcome_differs=("outcome_differs", "sum"),
        )
        .reset_index()
    )
    unmatched = len(a.runs) + len(b.runs) - 2 * len(m)
    return per, unmatched


def setting_changes(a: ReportData, b: ReportData) -> pd.DataFrame:
    """The (problem, optimizer) pairs whose chosen setting differs, with reported successes."""
    cols = ["problem", "optimizer", "hp", "successes", "runs"]
    m = a.best[cols].merge(b.best[cols], on=["problem", "optimizer"], suffixes=("_a", "_b"))
    m = m[m["hp_a"] != m["hp_b"]].reset_index(drop=True)
    # Only the hyperparameters that differ: the settings share the rest.
    pairs = [_differing(x, y) for x, y in zip(m["hp_a"], m["hp_b"], strict=True)]
    m["hp_a"], m["hp_b"] = [p[0] for p in pairs], [p[1] for p in pairs]
    return m


def _differing(a: str, b: str) -> tuple[str, str]:
    x, y = json.loads(a), json.loads(b)
    keys = sorted(k for k in x.keys() | y.keys() if x.get(k) != y.get(k))
    return tuple(", ".join(f"{k}={d.get(k)}" for k in keys) for d in (x, y))


def headline_changes(a: ReportData, b: ReportData) -> pd.DataFrame:
    """Per (category, optimizer) whose success count at the best setting per problem differs:
    both rates, and whether each lies inside the other's 95% Wilson interval."""

    def counts(d: ReportData) -> pd.DataFrame:
        return d.best.groupby(["category", "optimizer"], sort=True)[["successes", "runs"]].sum()

    m = counts(a).merge(counts(b), left_index=True, right_index=True, suffixes=("_a", "_b"))
    m = m.reset_index()
    m = m[(m["successes_a"] != m["successes_b"]) | (m["runs_a"] != m["runs_b"])].copy()
    for s, o in (("a", "b"), ("b", "a")):
        rate = m[f"successes_{s}"] / m[f"runs_{s}"]
        pairs = zip(m[f"successes_{o}"], m[f"runs_{o}"], strict=True)
        ci = np.array([stats.wilson(int(k), int(n)) for k, n in pairs], dtype=float)
        lo, hi = ci.reshape(-1, 2).T
        m[f"rate_{s}"] = rate
        m[f"{s}_inside_{o}"] = (rate >= lo - 1e-12) & (rate <= hi + 1e-12)
    return m.reset_index(drop=True)


def summary(a: ReportData, b: ReportData) -> str:
    """The three parts as plain text."""
    per, unmatched = run_changes(a, b)
    n = int(per["runs"].sum())
    lines = [
        f"A: {a.root}",
        f"B: {b.root}",
        "",
        f"runs matched: {n:,} ({unmatched:,} in one store only); final f bit-identical: "
        f"{int(per['bit_equal'].sum()):,}; evaluations differ: {int(per['evals_differ'].sum()):,}; "
        f"outcome differs: {int(per['outcome_differs'].sum()):,}",
    ]
    moved = per[(per["bit_equal"] < per["runs"])]
    if not moved.empty:
        lines += ["", "per problem (runs whose final f is not bit-identical):", _text(moved)]
    chosen = setting_changes(a, b)
    lines += ["", f"chosen settings that differ: {len(chosen)} of {len(a.best)}"]
    if not chosen.empty:
        lines.append(_text(chosen))
    head = headline_changes(a, b)
    lines += ["", f"headline success counts that differ (category, optimizer): {len(head)}"]
    if not head.empty:
        cols = ["category", "optimizer", "successes_a", "runs_a", "successes_b", "runs_b",
                "a_inside_b", "b_inside_a"]  # fmt: skip
        lines.append(_text(head[cols]))
    return "\n".join(lines) + "\n"


def _text(df: pd.DataFrame) -> str:
    return df.to_string(index=False)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return _pool.run_command("optzoo.report.diff", lambda: _main(argv), debug="--debug" in argv)


def _main(argv: list[str]) -> int:
    from optzoo.report import _Parser

    p = _Parser(
        prog="python -m optzoo.report.diff",
        description="Compare two stored runs of one suite (e.g. on two machines); writes nothing.",
    )
    p.add_argument("a", help="results directory")
    p.add_argument("b", help="results directory of the same suite")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = p.parse_args(argv)
    a, b = ReportData(Path(args.a)), ReportData(Path(args.b))
    if a.manifest.get("digest") != b.manifest.get("digest"):
        raise ConfigError(f"{args.a} and {args.b} hold different suites (their digests differ)")
    print(summary(a, b), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
