"""The results tables: numbers as DataFrames (for the CSVs and ``Comparison.table``), and their
Markdown and LaTeX renderings.

Written files::

    tables/convergence.{csv,md,tex}   one row per problem x optimizer
    tables/targets.{md,tex}           COCO-style aRT per delta_f target, per problem
    tables/categories.{csv,md,tex}    per category x optimizer: success, aRT ratio, rank
    tables/landscape.{csv,md}         zigzag, step cosine, plateau steps, largest step, escape
    tables/timing.csv                 wall time per cell (the only place it appears)

Tuning, disclosed: unless a table says otherwise, each optimizer is shown at its best
hyperparameters on each problem (``tuning.best_per_problem``); ``categories.md`` also gives the
success at the default hyperparameters and at one learning rate per category.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from optzoo import metrics, stats, tuning
from optzoo.report.data import ReportData, load
from optzoo.report.formatting import (
    ci,
    csv,
    delta_label,
    fmt,
    fmt_art,
    fmt_q,
    latex,
    markdown,
    pct,
    setting,
    tex_escape,
)
from optzoo.store import write_text

TABLES = "tables"


def convergence_table(data: ReportData | str | Path) -> pd.DataFrame:
    """One row per problem x optimizer at its best hyperparameters (numbers, for the CSV)."""
    an = load(data)
    b = an.best
    cols = [
        "problem", "category", "optimizer", "tuning", "lr", "hp", "target", "runs", "successes",
        "success_rate", "art",
        "steps_q25", "steps_q50", "steps_q75", "evals_q25", "evals_q50", "evals_q75",
        "f_best_q25", "f_best_q50", "f_best_q75", "f_final_q25", "f_final_q50", "f_final_q75",
        "diverged", "endpoints",
    ]  # fmt: skip
    cols[9:11] = ["success_rate", "success_lo", "success_hi", "art", "art_lo", "art_hi"]
    cols[4:4] = ["at_grid_edge"]
    if b.empty:
        return pd.DataFrame(columns=cols)
    out = b.assign(
        tuning=f"best setting per problem, {tuning.tuning_split(an.stats)} runs",
        target=b["problem"].map(an.target_label),
        at_grid_edge=tuning.at_grid_edge(an.stats, b),
    )
    art_ci = [stats.art_interval(v[:, 0], v[:, 1] > 0) for v in an.run_outcomes(out).values()]
    out["art_lo"], out["art_hi"] = [c[0] for c in art_ci], [c[1] for c in art_ci]
    return out[cols].reset_index(drop=True)


def _convergence_display(t: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "problem": t["problem"],
            "category": t["category"],
            "optimizer": t["optimizer"],
            "setting": [setting(h, e) for h, e in zip(t["hp"], t["at_grid_edge"], strict=True)],
            "success [95% CI]": [
                f"{s}/{n} {ci(lo, hi)}"
                for s, n, lo, hi in zip(
                    t["successes"], t["runs"], t["success_lo"], t["success_hi"], strict=True
                )
            ],
            "aRT [95% CI]": [
                f"{fmt_art(a)} [{fmt_art(lo)}, {fmt_art(hi)}]" if np.isfinite(a) else fmt_art(a)
                for a, lo, hi in zip(t["art"], t["art_lo"], t["art_hi"], strict=True)
            ],
            "steps to target": [
                fmt_q(a, m, c)
                for a, m, c in zip(t["steps_q25"], t["steps_q50"], t["steps_q75"], strict=True)
            ],
            "evals to target": [
                fmt_q(a, m, c)
                for a, m, c in zip(t["evals_q25"], t["evals_q50"], t["evals_q75"], strict=True)
            ],
            "f best": [
                fmt_q(a, m, c, 3)
                for a, m, c in zip(t["f_best_q25"], t["f_best_q50"], t["f_best_q75"], strict=True)
            ],
            "f final": [
                fmt_q(a, m, c, 3)
                for a, m, c in zip(
                    t["f_final_q25"], t["f_final_q50"], t["f_final_q75"], strict=True
                )
            ],
            "diverged": [str(int(v)) for v in t["diverged"]],
            "ended": t["endpoints"],
        }
    )


_CONV_RIGHT = ("success [95% CI]", "aRT [95% CI]", "diverged")


def _convergence_md(an: ReportData, t: pd.DataFrame) -> str:
    head = (
        "# Convergence\n\n"
        f"Each optimizer at its best setting per problem (tuning mode b: lowest aRT at the "
        f"success target, aRTs within {tuning.ART_TIE:.0%} of it tied; ties: higher success, "
        f"then the grid's order; lower median final f where nothing succeeds); "
        f"{an.protocol_caption()}. {an.success_caption()}. success: runs that reached the "
        "target, with a 95% Wilson interval; aRT: COCO's average runtime in gradient "
        "evaluations (sum of runtimes over all runs / successes; ∞: none) with a 95% bootstrap "
        "interval; setting: the tuned values (edge: at the end of its grid after widening, the "
        "optimum may lie beyond); steps and evals to target: median [q25, q75] over successful "
        "runs; f best and f final: median [q25, q75] over all runs; ended: where runs stopped.\n"
        + _notes_md(an)
        + "\n"
    )
    return head + markdown(_convergence_display(t), right=_CONV_RIGHT)


def _notes_md(an: ReportData) -> str:
    """Disclosed notes (variants that change the objective), one line each."""
    return "".join(f"\n† {o}: {n}.\n" for o, n in an.notes.items())


def targets_tables(data: ReportData | str | Path) -> dict[str, tuple[pd.DataFrame, set]]:
    """Per problem a COCO-style frame (rows: optimizers) and the (row, column) cells to bold."""
    an = load(data)
    out = {}
    for p in an.problems:
        h = an.hits[p]
        b = an.best[an.best["problem"] == p]
        if b.empty:
            continue
        if h.kind == "escape":
            cols = {"aRT escape": b["art"].to_numpy()}  # fmt: skip
        else:
            cols = {delta_label(t): b[f"art_{t:g}"].to_numpy() for t in metrics.TABLE_TARGETS}
        df = pd.DataFrame(
            {"optimizer": b["optimizer"].to_numpy(), "lr": [fmt(v, 3) for v in b["lr"]]}
        )
        bold = set()
        opts = b["optimizer"].tolist()
        eligible = [i for i, o in enumerate(opts) if o not in an.notes]
        for c, v in cols.items():
            v = np.asarray(v, dtype=float)
            df[c] = [fmt_art(x) for x in v]
            col = h.final if h.kind == "escape" else h.column(float(c)) if c[0].isdigit() else None
            if col is None or col > h.final or not np.isfinite(v).any():
                continue
            # Bold only where a rank-sum test on runtimes (unreached: inf) separates the best.
            rts = {}
            for i in eligible:
                br = an.best_runs(p, opts[i])
                hit = h.evals[br["row"].to_numpy(), col]
                rts[i] = np.where(hit >= 0, hit, np.inf)
            win = stats.best_is_significant(rts, higher_is_better=False)
            if win is not None and np.isfinite(v[win]):
                bold.add((win, c))
        succ_col = (
            "#succ" if h.kind == "escape" else f"#succ {delta_label(metrics.LADDER[h.final])}"
        )
        df[succ_col] = [f"{s}/{n}" for s, n in zip(b["successes"], b["runs"], strict=True)]
        succ = {i: stats.binary(b["successes"].iloc[i], b["runs"].iloc[i]) for i in eligible}
        win = stats.best_is_significant(succ)
        if win is not None:
            bold.add((win, succ_col))
        df["optimizer"] = [o + ("†" if o in an.notes else "") for o in opts]
        out[p] = (df, bold)
    return out


def _problem_heading(an: ReportData, p: str) -> str:
    info = an.infos[p]
    h = an.hits[p]
    if h.kind == "f_star":
        ref = f"f* = {fmt(info['f_star'], 6)}"
    elif h.kind == "escape":
        fs = fmt(info.get("f_saddle"), 6)
        ref = f"unbounded below; success = escape from the saddle at f = {fs}"
    else:
        ref = f"f* unknown; targets relative to f_ref = {fmt(h.f_ref, 8)}, the lowest f found"
    return f"{p} ({info['category']}, d = {info['dim']}; {ref})"


def _targets_md(an: ReportData, tables: dict) -> str:
    parts = [
        "# aRT per target\n\n"
        "COCO-style: aRT (average runtime in gradient evaluations) to reach f - f* <= delta_f, "
        "each optimizer at its best setting on the problem; ∞: no run reached it; —: finer "
        "than the problem's success target. #succ: runs that reached the success target. Bold: "
        "the best of a column where a two-sided rank-sum test (runtimes, unreached = ∞; success "
        "counts), Bonferroni-corrected over the others, separates it from every other optimizer "
        "at the 5% level; no bold: no significant best. † not compared (see its note).\n"
        + _notes_md(an)
    ]
    for p, (df, bold) in tables.items():
        shown = df.copy()
        for i, c in bold:
            shown.loc[i, c] = f"**{shown.loc[i, c]}**"
        parts.append(f"\n## {_problem_heading(an, p)}\n\n")
        parts.append(markdown(shown, right=[c for c in df.columns if c != "optimizer"]))
    return "".join(parts)


def _targets_tex(an: ReportData, tables: dict) -> str:
    parts = ["% aRT per target (COCO style); generated by optzoo.report\n"]
    for p, (df, bold) in tables.items():
        parts.append(f"% {tex_escape(_problem_heading(an, p))}\n")
        parts.append(r"\paragraph{" + tex_escape(p) + "}\n")
        parts.append(latex(df, right=[c for c in df.columns if c != "optimizer"], bold=bold))
    return "".join(parts)


def categories_table(data: ReportData | str | Path) -> pd.DataFrame:
    """Per category x optimizer: success in the three tuning modes, aRT ratio, rank (numbers).

    ``art_ratio`` is the median over the category's problems of aRT / best aRT of any optimizer
    on that problem (both at their best lr per problem, success target); problems that no
    optimizer solves are left out; inf when the optimizer fails more than half of the rest.
    ``rank`` orders by success at the best lr per problem, then by ``art_ratio`` (ties share).
    """
    an = load(data)
    b = an.best
    best_art = b.groupby("problem")["art"].transform("min")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(np.isfinite(best_art), b["art"] / best_art, np.nan)
    b = b.assign(_ratio=ratio)

    def rate(df: pd.DataFrame) -> pd.Series:
        g = df.groupby(["category", "optimizer"])[["successes", "runs"]].sum()
        return g["successes"] / g["runs"]

    rows = []
    r_def, r_best, r_cat = rate(an.default), rate(b), rate(an.per_category)
    cat_lr = an.per_category.groupby(["category", "optimizer"])["cat_lr"].first()
    for c in an.categories:
        for o in an.optimizers:
            sub = b[(b["category"] == c) & (b["optimizer"] == o)]
            if sub.empty:
                continue
            r = sub["_ratio"].to_numpy(dtype=float)
            r = r[~np.isnan(r)]
            rows.append(
                {
                    "category": c,
                    "optimizer": o,
                    "problems": len(sub),
                    "success_default": r_def.get((c, o), math.nan),
                    "success_best_lr": r_best.get((c, o), math.nan),
                    "success_category_lr": r_cat.get((c, o), math.nan),
                    "category_lr": cat_lr.get((c, o), math.nan),
                    "art_ratio": float(np.median(r)) if r.size else math.nan,
                }
            )
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    counts = b.groupby(["category", "optimizer"])[["successes", "runs"]].sum()
    lo_hi = [
        stats.wilson(*counts.loc[(c, o)])
        for c, o in zip(df["category"], df["optimizer"], strict=True)
    ]
    df["success_lo"], df["success_hi"] = [x[0] for x in lo_hi], [x[1] for x in lo_hi]
    # Rank: 1 + the optimizers whose category success (lr per problem) is significantly higher
    # (rank-sum on the runs' outcomes, Bonferroni over the category's pairs): ties are shared
    # wherever the data cannot tell two optimizers apart.
    ranks = []
    for c, o in zip(df["category"], df["optimizer"], strict=True):
        mine = stats.binary(*counts.loc[(c, o)])
        others = [o2 for o2 in counts.loc[c].index if o2 != o]
        pairs = max(1, len(others) * (len(others) + 1) // 2)
        better = sum(
            1
            for o2 in others
            if (theirs := stats.binary(*counts.loc[(c, o2)])).mean() > mine.mean()
            and stats.significantly_different(theirs, mine, pairs)
        )
        ranks.append(1 + better)
    df["rank"] = ranks
    return df


def _categories_display(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "category": df["category"],
            "optimizer": df["optimizer"],
            "problems": df["problems"].astype(str),
            "success (default)": [pct(v) for v in df["success_default"]],
            "success (lr per problem) [95% CI]": [
                f"{pct(v)} {ci(lo, hi)}"
                for v, lo, hi in zip(
                    df["success_best_lr"], df["success_lo"], df["success_hi"], strict=True
                )
            ],
            "success (lr per category)": [pct(v) for v in df["success_category_lr"]],
            "category lr": [fmt(v, 3) for v in df["category_lr"]],
            "aRT / best": [fmt(v, 3) for v in df["art_ratio"]],
            "rank": df["rank"].astype(str),
        }
    )


def landscape_table(data: ReportData | str | Path) -> pd.DataFrame:
    """Landscape metrics per problem x optimizer at the best hyperparameters (numbers)."""
    an = load(data)
    b = an.best
    cols = [
        "problem", "category", "optimizer", "lr", "efficiency_q25", "efficiency_q50",
        "efficiency_q75", "zigzag_q50", "step_cos_q50", "flat_steps_q50", "max_step_q50",
        "diverged", "runs", "escape_step_q50",
    ]  # fmt: skip
    return b[cols].reset_index(drop=True) if not b.empty else pd.DataFrame(columns=cols)


def _landscape_display(t: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "problem": t["problem"],
            "category": t["category"],
            "optimizer": t["optimizer"],
            "lr": [fmt(v, 3) for v in t["lr"]],
            "path efficiency": [
                fmt_q(a, m, c, 3)
                for a, m, c in zip(
                    t["efficiency_q25"], t["efficiency_q50"], t["efficiency_q75"], strict=True
                )
            ],
            "zigzag": [fmt(v, 3) for v in t["zigzag_q50"]],
            "step cosine": [fmt(v, 2) for v in t["step_cos_q50"]],
            "plateau steps": [fmt(v, 4) for v in t["flat_steps_q50"]],
            "largest step": [fmt(v, 3) for v in t["max_step_q50"]],
            "diverged": [f"{d}/{n}" for d, n in zip(t["diverged"], t["runs"], strict=True)],
            "steps to escape": [fmt(v, 4) for v in t["escape_step_q50"]],
        }
    )


def timing_table(data: ReportData | str | Path) -> pd.DataFrame:
    """Wall time per cell from ``done.json`` (the only place wall time is reported)."""
    an = load(data)
    t = an.store.timings()
    cols = ["cell", "problem", "optimizer", "runs", "wall_s", "point_steps", "point_steps_per_s"]
    if t.empty:
        return pd.DataFrame(columns=cols)
    for c in cols:
        if c not in t:
            t[c] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        t["point_steps_per_s"] = t["point_steps"] / t["wall_s"]
    return t[cols].sort_values("cell").reset_index(drop=True)


def write_tables(an: ReportData) -> list[Path]:
    d = an.root / TABLES
    written: list[Path] = []

    def put(name: str, text: str) -> None:
        write_text(d / name, text)
        written.append(d / name)

    conv = convergence_table(an)
    put("convergence.csv", csv(conv))
    put("convergence.md", _convergence_md(an, conv))
    show = _convergence_display(conv).drop(columns=["category", "f best"])
    put(
        "convergence.tex",
        "% Convergence at the best lr per problem; generated by optzoo.report\n"
        + latex(show, right=_CONV_RIGHT),
    )
    tt = targets_tables(an)
    put("targets.md", _targets_md(an, tt))
    put("targets.tex", _targets_tex(an, tt))
    cat = categories_table(an)
    put("categories.csv", csv(cat))
    cat_show = _categories_display(cat) if not cat.empty else cat
    put(
        "categories.md",
        "# Categories\n\n"
        "Success: share of runs reaching the success target over the category's problems, at the "
        "default hyperparameters, at the best lr per problem, and at one lr per category "
        f"(highest category success; ties: lowest mean log aRT ratio, within {tuning.ART_TIE:.0%} "
        "tied, then the grid's order), each chosen on the "
        "held-out runs and reported on the others, with a 95% Wilson interval. aRT / best: "
        "median over the category's problems of the optimizer's aRT over the best optimizer's "
        "(lr per problem). Rank: 1 + the optimizers with significantly higher success (lr per "
        "problem; rank-sum, Bonferroni over the category's pairs, 5%): equal ranks are not "
        "told apart by the data.\n"
        + _notes_md(an)
        + "\n"
        + markdown(
            cat_show, right=[c for c in cat_show.columns if c not in ("category", "optimizer")]
        ),
    )
    put(
        "categories.tex",
        "% Categories; generated by optzoo.report\n"
        + latex(
            cat_show, right=[c for c in cat_show.columns if c not in ("category", "optimizer")]
        ),
    )
    land = landscape_table(an)
    put("landscape.csv", csv(land))
    put(
        "landscape.md",
        "# Landscape metrics\n\n"
        "At the best lr per problem, median [q25, q75] over runs. Path efficiency: |x_T - x_0| / "
        "path length (ravines: low means zigzag, but a crawling run also scores as straight); "
        "zigzag: its inverse (median); step cosine: median over runs of the mean cosine between "
        "successive steps (+1 straight, below 0 a zigzag; independent of step size); plateau "
        "steps: steps with |g| below the suite's plateau_grad; largest step: median over runs of "
        "the largest step norm (cliffs); steps to escape: median over runs that left the "
        "saddle.\n\n"
        + markdown(
            _landscape_display(land),
            right=("lr", "zigzag", "step cosine", "plateau steps", "largest step", "diverged"),
        ),
    )
    put("timing.csv", csv(timing_table(an)))
    return written
