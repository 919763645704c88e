"""Tables and figures from a results directory: ``python -m optzoo.report DIR``.

The report reads the stored files only (``optzoo.store``); it never imports an optimizer or a
problem and never runs anything, so the tables of a directory can be regenerated anywhere. The
convergence tables hold no wall times and use fixed float formats: regenerated from the same
stored runs they are byte-identical. Wall time appears only in ``tables/timing.csv``.

Tuning, disclosed: unless a table says otherwise, each optimizer is shown at its best
hyperparameters on each problem (``metrics.best_per_problem``); ``categories.md`` also gives the
success at the default hyperparameters and at one learning rate per category.

Written files::

    tables/convergence.{csv,md,tex}   one row per problem x optimizer
    tables/targets.{md,tex}           COCO-style aRT per delta_f target, per problem
    tables/categories.{csv,md,tex}    per category x optimizer: success, aRT ratio, rank
    tables/landscape.{csv,md}         zigzag, plateau steps, largest step, escape steps
    tables/timing.csv                 wall time per cell (the only place it appears)
    figures/*.png, *.svg              see ``FIGURES``

Contour plots draw f from ``cells/<cell>.landscape.parquet`` (columns x, y, f on a regular grid
over the problem's box) when the harness stored one; without it they show the trajectories on
the bare box.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from optzoo import metrics, stats
from optzoo.errors import ConfigError
from optzoo.store import Store, atomic_path, cell_name, locked, write_text

CATEGORY_ORDER = ("saddle", "ravine", "plateau", "cliff", "multimodal", "neural", "custom")
TABLES, FIGURES_DIR = "tables", "figures"
DPI = 120
PANEL_W, PANEL_H, LEGEND_H = 4.0, 3.2, 0.7  # inches
MAX_COLS = 3
LOG_FLOOR = 1e-12  # f - f* below this is drawn at this value on log axes
FIG_FORMATS = ("png",)  # one format: SVGs of contours and scatters were large and slow
# Sizes in inches of the single-panel figures; panel grids use ``figure_size``.
SIZES = {
    "contour": (6.4, 5.6),
    "profile": (6.4, 4.4),
    "cliff": (10.0, 4.2),
    "critical_points": (10.0, 4.2),
}

# Figure name (or prefix) -> one sentence for the index.
FIGURES = {
    "contour": "Contours of a 2-D problem (log-spaced levels of f - min f; plateaus: of max f - f; "
    "saddle problems: linear levels of f) with each optimizer's trajectory from the default "
    "start at its best setting, one panel per optimizer family; stars: minima, crosses: saddles.",
    "convergence": "f - f* (or f) against gradient evaluations: median over starts with the "
    "interquartile band, each optimizer at its best learning rate per problem.",
    "ecdf": "Runtime ECDF per category (COCO): the share of (run, target) pairs reached within a "
    "budget of gradient evaluations, at the best learning rate per problem; x: largest budget.",
    "profile": "Dolan-More performance profile over all problems: the share of problems an "
    "optimizer solves within a factor tau of the best aRT.",
    "basins": "Basins of attraction: each start point coloured by the minimizer its run ended "
    "nearest to (or saddle, escaped, diverged, other), one panel per optimizer at its best lr.",
    "lr_sensitivity": "Success rate against learning rate per optimizer, one panel per category; "
    "the hollow marker is the default learning rate.",
    "cliff": "Cliffs (with --compare): median largest step and divergence rate per optimizer "
    "over the whole learning-rate grid, with and without gradient clipping.",
    "critical_points": "Critical points found: final loss against the minimum ratio (share of "
    "positive Hessian eigenvalues), and the eigenvalue histogram of a typical end point.",
}
TABLE_INFO = {
    "convergence": "One row per problem and optimizer at its best learning rate: success, aRT, "
    "steps and evaluations to the success target, best and final f, divergences, end points.",
    "targets": "COCO-style table per problem: aRT to each delta_f target and the number of "
    "successful runs, best of each column in bold.",
    "categories": "Per category and optimizer: success at default, per-problem and per-category "
    "learning rates, aRT relative to the best optimizer, and rank.",
    "landscape": "Landscape metrics at the best learning rate: path efficiency (ravines), plateau "
    "steps, largest step and divergences (cliffs), steps to escape (saddles).",
    "timing": "Wall time per cell and run-steps per second (the only table with timings).",
}


# -- loading ----------------------------------------------------------------------------------
class Analysis:
    """A results directory read back and reduced to the statistics the report shows."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.store = Store(self.root)
        manifest = self.store.manifest()
        if manifest is None:
            raise ConfigError(f"{self.root} is not a results directory (no manifest.json)")
        self.manifest = manifest
        if not self.store.finished_cells():
            raise ConfigError(f"{self.root} holds no finished cells; run the suite first")
        runs = self.store.read("runs")
        runs = runs.sort_values(["problem", "optimizer", "run"], kind="stable")
        runs = runs.reset_index(drop=True)
        runs["row"] = runs.groupby("problem", sort=False).cumcount()
        self.runs = runs
        self.infos = self.store.problems()

    @cached_property
    def traces(self) -> pd.DataFrame:
        return self.store.read("traces")

    @cached_property
    def paths(self) -> pd.DataFrame:
        return self.store.read("paths")

    @cached_property
    def problems(self) -> list[str]:
        """Problem keys in category order, then by key."""
        keys = sorted(self.runs["problem"].unique().tolist())
        return sorted(keys, key=lambda k: (_category_rank(self.infos[k]["category"]), k))

    @cached_property
    def optimizers(self) -> list[str]:
        """Optimizer names in the suite's order (sorted when the manifest has none)."""
        have = set(self.runs["optimizer"].unique().tolist())
        specs = self.manifest.get("suite", {}).get("optimizers", [])
        listed = [o.get("label") or o.get("name") for o in specs]
        order = [o for o in listed if o in have]
        return order + sorted(have - set(order))

    @cached_property
    def categories(self) -> list[str]:
        cats = {self.infos[p]["category"] for p in self.problems}
        return sorted(cats, key=lambda c: (_category_rank(c), c))

    @cached_property
    def hits(self) -> dict[str, metrics.Hits]:
        out = {}
        for p, g in self.runs.groupby("problem", sort=True):
            info = self.infos[p]
            tr = None
            if info.get("f_star") is None and not info.get("saddles"):
                t = self.traces
                tr = t[t["problem"] == p] if not t.empty else t
            out[p] = metrics.problem_hits(g, info, tr)
        return out

    @cached_property
    def stats(self) -> pd.DataFrame:
        return metrics.hp_stats(self.runs, self.hits)

    @cached_property
    def best(self) -> pd.DataFrame:
        return self._ordered(metrics.best_per_problem(self.stats))

    @cached_property
    def default(self) -> pd.DataFrame:
        return self._ordered(metrics.default_hp(self.stats))

    @cached_property
    def per_category(self) -> pd.DataFrame:
        return self._ordered(metrics.per_category(self.stats))

    def _ordered(self, df: pd.DataFrame) -> pd.DataFrame:
        if df.empty:
            return df
        pr = {p: i for i, p in enumerate(self.problems)}
        orr = {o: i for i, o in enumerate(self.optimizers)}
        key = df["problem"].map(pr) * 10_000 + df["optimizer"].map(orr)
        return (
            df.assign(_k=key)
            .sort_values("_k", kind="stable")
            .drop(columns="_k")
            .reset_index(drop=True)
        )

    def best_runs(self, problem: str, optimizer: str) -> pd.DataFrame:
        """The runs of one optimizer on one problem at its best hyperparameters."""
        b = self.best
        row = b[(b["problem"] == problem) & (b["optimizer"] == optimizer)]
        if row.empty:
            return self.runs.iloc[:0]
        key = (problem, optimizer, int(row["hp_id"].iloc[0]), "test")
        return self.runs.iloc[self._groups.get(key, [])]

    @cached_property
    def _groups(self) -> dict[tuple, np.ndarray]:
        """(problem, optimizer, hp_id, split) -> the positions of those runs."""
        r = self.runs if "split" in self.runs else self.runs.assign(split="test")
        return r.groupby(["problem", "optimizer", "hp_id", "split"], sort=False).indices

    @cached_property
    def notes(self) -> dict[str, str]:
        """Optimizer -> its disclosed note (e.g. a different objective) from the suite file."""
        specs = self.manifest.get("suite", {}).get("optimizers", [])
        return {(o.get("label") or o["name"]): o["note"] for o in specs if o.get("note")}

    def success_caption(self) -> str:
        """The success targets of the problems shown, from the data: the common one, then the
        problems whose own target differs."""
        labels = {p: self.target_label(p) for p in self.problems}
        common = pd.Series(list(labels.values())).mode()
        main = common.iloc[0] if len(common) else ""
        odd = [f"{p}: {t}" for p, t in labels.items() if t != main]
        return f"success: {main}" + (f" ({'; '.join(odd)})" if odd else "")

    def protocol_caption(self) -> str:
        """How settings were chosen and how many runs each number rests on, from the data."""
        r = self.runs
        test = r[r["split"] == "test"] if "split" in r else r
        n = test.groupby(["problem", "optimizer", "hp_id"]).size()
        runs = f"{n.min()}" if n.min() == n.max() else f"{n.min()}-{n.max()}"
        if metrics.tuning_split(self.stats) == "tune":
            tune = r[r["split"] == "tune"].groupby(["problem", "optimizer", "hp_id"]).size()
            how = f"chosen on {tune.min()} held-out runs per setting"
        else:
            how = "chosen on the reported runs themselves (no held-out starts)"
        return f"settings {how}; {runs} reported runs per problem and optimizer"

    def run_outcomes(self, rows: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
        """(problem, optimizer) -> per reported run of the chosen setting: RT to the success
        target and whether it was reached, as an (n, 2) array."""
        out = {}
        for p, o in zip(rows["problem"], rows["optimizer"], strict=True):
            br = self.best_runs(p, o)
            h = self.hits[p]
            hit = h.evals[br["row"].to_numpy(), h.final]
            rt = metrics.runtime(hit, br["evals"].to_numpy())
            out[(p, o)] = np.stack([rt, hit >= 0], axis=1)
        return out

    def target_label(self, problem: str) -> str:
        h = self.hits[problem]
        if h.kind == "escape":
            return "escape"
        t = f"{metrics.LADDER[h.final]:.0e}".replace("e-0", "e-").replace("e+0", "e")
        return f"f* + {t}" if h.kind == "f_star" else f"f_ref + {t}"

    def f_offset(self, problem: str) -> float | None:
        """The value subtracted from f on log plots: f*, f_ref, or None (saddles: plot f)."""
        info = self.infos[problem]
        if info.get("f_star") is not None:
            return float(info["f_star"])
        return self.hits[problem].f_ref


def _category_rank(c: str) -> int:
    return CATEGORY_ORDER.index(c) if c in CATEGORY_ORDER else len(CATEGORY_ORDER)


# The Analysis that ``write`` is using, so the README's summary does not read and reduce the
# runs a second time (cleared when ``write`` returns).
_OPEN: dict[Path, Analysis] = {}


def _analysis(data: Analysis | str | Path) -> Analysis:
    if isinstance(data, Analysis):
        return data
    return _OPEN.get(Path(data).resolve()) or Analysis(data)


# -- formatting -------------------------------------------------------------------------------
def fmt(x: float | int | None, digits: int = 4, inf: str = "∞", nan: str = "—") -> str:
    """A number for a table: ``%.<digits>g``, with fixed spellings for inf and NaN."""
    if x is None:
        return nan
    x = float(x)
    if math.isnan(x):
        return nan
    if math.isinf(x):
        return inf if x > 0 else "-" + inf
    return f"{x:.{digits}g}"


def fmt_art(x: float | None) -> str:
    """An aRT (gradient evaluations): 3 significant digits below 100, whole numbers up to 1e6."""
    if x is None or math.isnan(float(x)) or math.isinf(float(x)) or not 100 <= abs(float(x)) < 1e6:
        return fmt(x, 3)
    return f"{float(x):.0f}"


def fmt_q(q25: float, q50: float, q75: float, digits: int = 4, **kw: str) -> str:
    """``median [q25, q75]``."""
    if isinstance(q50, float) and math.isnan(q50):
        return kw.get("nan", "—")
    return f"{fmt(q50, digits, **kw)} [{fmt(q25, digits, **kw)}, {fmt(q75, digits, **kw)}]"


def _markdown(df: pd.DataFrame, right: Sequence[str] = ()) -> str:
    from tabulate import tabulate

    align = ["right" if c in right else "left" for c in df.columns]
    return (
        tabulate(
            df.to_numpy().tolist(),
            headers=list(df.columns),
            tablefmt="pipe",
            disable_numparse=True,
            colalign=align,
        )
        + "\n"
    )


_TEX_ESC = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(s: str) -> str:
    """Escape LaTeX's special characters; ∞ and — become math/text commands."""
    out = "".join(_TEX_ESC.get(c, c) for c in str(s))
    return out.replace("∞", r"$\infty$").replace("—", "--")


def _latex(
    df: pd.DataFrame, right: Sequence[str] = (), bold: set[tuple[int, str]] = frozenset()
) -> str:
    """A booktabs tabular (no jinja2 needed). ``bold`` holds (row, column) cells to embolden."""
    cols = list(df.columns)
    spec = "".join("r" if c in right else "l" for c in cols)
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    lines.append(" & ".join(tex_escape(c) for c in cols) + r" \\")
    lines.append(r"\midrule")
    for i, row in enumerate(df.itertuples(index=False)):
        cells = []
        for c, v in zip(cols, row, strict=True):
            t = tex_escape(v)
            cells.append(rf"\textbf{{{t}}}" if (i, c) in bold else t)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def _csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, float_format="%.6g", lineterminator="\n")


# -- tables -----------------------------------------------------------------------------------
def convergence_table(data: Analysis | str | Path) -> pd.DataFrame:
    """One row per problem x optimizer at its best hyperparameters (numbers, for the CSV)."""
    an = _analysis(data)
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
        tuning=f"best setting per problem, {metrics.tuning_split(an.stats)} runs",
        target=b["problem"].map(an.target_label),
        at_grid_edge=metrics.at_grid_edge(an.stats, b),
    )
    ci = [stats.art_interval(v[:, 0], v[:, 1] > 0) for v in an.run_outcomes(out).values()]
    out["art_lo"], out["art_hi"] = [c[0] for c in ci], [c[1] for c in ci]
    return out[cols].reset_index(drop=True)


def _convergence_display(t: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "problem": t["problem"],
            "category": t["category"],
            "optimizer": t["optimizer"],
            "setting": [_setting(h, e) for h, e in zip(t["hp"], t["at_grid_edge"], strict=True)],
            "success [95% CI]": [
                f"{s}/{n} {_ci(lo, hi)}"
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


def _convergence_md(an: Analysis, t: pd.DataFrame) -> str:
    head = (
        "# Convergence\n\n"
        f"Each optimizer at its best setting per problem (tuning mode b: lowest aRT at the "
        f"success target; ties: higher success, then lower median final f); "
        f"{an.protocol_caption()}. {an.success_caption()}. success: runs that reached the "
        "target, with a 95% Wilson interval; aRT: COCO's average runtime in gradient "
        "evaluations (sum of runtimes over all runs / successes; ∞: none) with a 95% bootstrap "
        "interval; setting: the tuned values (edge: at the end of its grid after widening, the "
        "optimum may lie beyond); steps and evals to target: median [q25, q75] over successful "
        "runs; f best and f final: median [q25, q75] over all runs; ended: where runs stopped.\n"
        + _notes_md(an)
        + "\n"
    )
    return head + _markdown(_convergence_display(t), right=_CONV_RIGHT)


def _notes_md(an: Analysis) -> str:
    """Disclosed notes (variants that change the objective), one line each."""
    return "".join(f"\n† {o}: {n}.\n" for o, n in an.notes.items())


def _ci(lo: float, hi: float) -> str:
    """A Wilson interval in percent, ``[lo, hi]``."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return ""
    return f"[{100 * lo:.0f}, {100 * hi:.0f}]"


def _setting(hp: str, edge: bool) -> str:
    """The tuned hyperparameters of a row, compactly; "(edge)" when one sits at its grid's end."""
    import json

    vals = json.loads(hp)
    shown = [f"{k} {fmt(v, 3)}" for k, v in sorted(vals.items()) if k in ("lr", "damping")]
    return ", ".join(shown) + (" (edge)" if edge else "")


def _delta_label(t: float) -> str:
    return f"{t:.0e}".replace("e-0", "e-").replace("e+0", "e")


def targets_tables(data: Analysis | str | Path) -> dict[str, tuple[pd.DataFrame, set]]:
    """Per problem a COCO-style frame (rows: optimizers) and the (row, column) cells to bold."""
    an = _analysis(data)
    out = {}
    for p in an.problems:
        h = an.hits[p]
        b = an.best[an.best["problem"] == p]
        if b.empty:
            continue
        if h.kind == "escape":
            cols = {"aRT escape": b["art"].to_numpy()}  # fmt: skip
        else:
            cols = {_delta_label(t): b[f"art_{t:g}"].to_numpy() for t in metrics.TABLE_TARGETS}
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
            "#succ" if h.kind == "escape" else f"#succ {_delta_label(metrics.LADDER[h.final])}"
        )
        df[succ_col] = [f"{s}/{n}" for s, n in zip(b["successes"], b["runs"], strict=True)]
        succ = {i: stats.binary(b["successes"].iloc[i], b["runs"].iloc[i]) for i in eligible}
        win = stats.best_is_significant(succ)
        if win is not None:
            bold.add((win, succ_col))
        df["optimizer"] = [o + ("†" if o in an.notes else "") for o in opts]
        out[p] = (df, bold)
    return out


def _problem_heading(an: Analysis, p: str) -> str:
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


def _targets_md(an: Analysis, tables: dict) -> str:
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
        parts.append(_markdown(shown, right=[c for c in df.columns if c != "optimizer"]))
    return "".join(parts)


def _targets_tex(an: Analysis, tables: dict) -> str:
    parts = ["% aRT per target (COCO style); generated by optzoo.report\n"]
    for p, (df, bold) in tables.items():
        parts.append(f"% {tex_escape(_problem_heading(an, p))}\n")
        parts.append(r"\paragraph{" + tex_escape(p) + "}\n")
        parts.append(_latex(df, right=[c for c in df.columns if c != "optimizer"], bold=bold))
    return "".join(parts)


def categories_table(data: Analysis | str | Path) -> pd.DataFrame:
    """Per category x optimizer: success in the three tuning modes, aRT ratio, rank (numbers).

    ``art_ratio`` is the median over the category's problems of aRT / best aRT of any optimizer
    on that problem (both at their best lr per problem, success target); problems that no
    optimizer solves are left out; inf when the optimizer fails more than half of the rest.
    ``rank`` orders by success at the best lr per problem, then by ``art_ratio`` (ties share).
    """
    an = _analysis(data)
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


def _pct(x: float) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f}%"


def _categories_display(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "category": df["category"],
            "optimizer": df["optimizer"],
            "problems": df["problems"].astype(str),
            "success (default)": [_pct(v) for v in df["success_default"]],
            "success (lr per problem) [95% CI]": [
                f"{_pct(v)} {_ci(lo, hi)}"
                for v, lo, hi in zip(
                    df["success_best_lr"], df["success_lo"], df["success_hi"], strict=True
                )
            ],
            "success (lr per category)": [_pct(v) for v in df["success_category_lr"]],
            "category lr": [fmt(v, 3) for v in df["category_lr"]],
            "aRT / best": [fmt(v, 3) for v in df["art_ratio"]],
            "rank": df["rank"].astype(str),
        }
    )


def landscape_table(data: Analysis | str | Path) -> pd.DataFrame:
    """Landscape metrics per problem x optimizer at the best hyperparameters (numbers)."""
    an = _analysis(data)
    b = an.best
    cols = [
        "problem", "category", "optimizer", "lr", "efficiency_q25", "efficiency_q50",
        "efficiency_q75", "zigzag_q50", "flat_steps_q50", "max_step_q50", "diverged", "runs",
        "escape_step_q50",
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
            "plateau steps": [fmt(v, 4) for v in t["flat_steps_q50"]],
            "largest step": [fmt(v, 3) for v in t["max_step_q50"]],
            "diverged": [f"{d}/{n}" for d, n in zip(t["diverged"], t["runs"], strict=True)],
            "steps to escape": [fmt(v, 4) for v in t["escape_step_q50"]],
        }
    )


def timing_table(data: Analysis | str | Path) -> pd.DataFrame:
    """Wall time per cell from ``done.json`` (the only place wall time is reported)."""
    an = _analysis(data)
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


def _write_tables(an: Analysis) -> list[Path]:
    d = an.root / TABLES
    written: list[Path] = []

    def put(name: str, text: str) -> None:
        write_text(d / name, text)
        written.append(d / name)

    conv = convergence_table(an)
    put("convergence.csv", _csv(conv))
    put("convergence.md", _convergence_md(an, conv))
    show = _convergence_display(conv).drop(columns=["category", "f best"])
    put(
        "convergence.tex",
        "% Convergence at the best lr per problem; generated by optzoo.report\n"
        + _latex(show, right=_CONV_RIGHT),
    )
    tt = targets_tables(an)
    put("targets.md", _targets_md(an, tt))
    put("targets.tex", _targets_tex(an, tt))
    cat = categories_table(an)
    put("categories.csv", _csv(cat))
    cat_show = _categories_display(cat) if not cat.empty else cat
    put(
        "categories.md",
        "# Categories\n\n"
        "Success: share of runs reaching the success target over the category's problems, at the "
        "default hyperparameters, at the best lr per problem, and at one lr per category "
        "(highest category success; ties: lowest mean log aRT ratio), each chosen on the "
        "held-out runs and reported on the others, with a 95% Wilson interval. aRT / best: "
        "median over the category's problems of the optimizer's aRT over the best optimizer's "
        "(lr per problem). Rank: 1 + the optimizers with significantly higher success (lr per "
        "problem; rank-sum, Bonferroni over the category's pairs, 5%): equal ranks are not "
        "told apart by the data.\n"
        + _notes_md(an)
        + "\n"
        + _markdown(
            cat_show, right=[c for c in cat_show.columns if c not in ("category", "optimizer")]
        ),
    )
    put(
        "categories.tex",
        "% Categories; generated by optzoo.report\n"
        + _latex(
            cat_show, right=[c for c in cat_show.columns if c not in ("category", "optimizer")]
        ),
    )
    land = landscape_table(an)
    put("landscape.csv", _csv(land))
    put(
        "landscape.md",
        "# Landscape metrics\n\n"
        "At the best lr per problem, median [q25, q75] over runs. Path efficiency: |x_T - x_0| / "
        "path length (ravines: low means zigzag); zigzag: its inverse (median); plateau steps: "
        "steps with |g| below the suite's plateau_grad; largest step: median over runs of the "
        "largest step norm (cliffs); steps to escape: median over runs that left the saddle.\n\n"
        + _markdown(
            _landscape_display(land),
            right=("lr", "zigzag", "plateau steps", "largest step", "diverged"),
        ),
    )
    put("timing.csv", _csv(timing_table(an)))
    return written


# -- summary and index ------------------------------------------------------------------------
def summary(root: str | Path) -> str:
    """A compact text table: per optimizer, success rate per category at its best setting per
    problem (chosen on held-out runs), with 95% Wilson intervals; * marks a category's best where
    it is significantly better than every other optimizer."""
    from tabulate import tabulate

    an = _analysis(root)
    b = an.best
    counts = b.groupby(["category", "optimizer"])[["successes", "runs"]].sum()
    best_of = {}
    for c in an.categories:
        samples = {
            o: stats.binary(*counts.loc[(c, o)])
            for o in an.optimizers
            if (c, o) in counts.index and o not in an.notes
        }
        best_of[c] = stats.best_is_significant(samples)
    rows = []
    for o in an.optimizers:
        sub = b[b["optimizer"] == o]
        row = [o + ("†" if o in an.notes else "")]
        for c in an.categories:
            s = sub[sub["category"] == c]
            k, n = int(s["successes"].sum()), int(s["runs"].sum())
            mark = "*" if best_of[c] == o else ""
            row.append(f"{_pct(k / n)}{mark} {_ci(*stats.wilson(k, n))}" if n else "—")
        k, n = int(sub["successes"].sum()), int(sub["runs"].sum())
        row.append(f"{_pct(k / n)} {_ci(*stats.wilson(k, n))}" if n else "—")
        solved = int(np.isfinite(sub["art"].to_numpy(dtype=float)).sum())
        row.append(f"{solved}/{len(sub)}")
        rows.append(row)
    head = ["optimizer", *an.categories, "all", "problems solved"]
    table = tabulate(
        rows,
        headers=head,
        tablefmt="simple",
        disable_numparse=True,
        colalign=["left"] + ["right"] * (len(head) - 1),
    )
    first = (
        "success rate [95% Wilson interval] at the best setting per problem; "
        f"{an.protocol_caption()}\n{an.success_caption()}; * a category's best, significantly "
        "better than every other optimizer (rank-sum, Bonferroni, 5%)"
    )
    notes = "".join(f"\n† {o}: {n}" for o, n in an.notes.items())
    return first + "\n" + table + notes


def index_markdown(root: str | Path) -> str:
    """A Markdown list of the tables and figures present in ``root``, one sentence each."""
    root = Path(root)
    lines = ["## Tables", ""]
    tdir = root / TABLES
    for stem, text in TABLE_INFO.items():
        files = sorted(p.name for p in tdir.glob(f"{stem}.*")) if tdir.is_dir() else []
        if files:
            links = ", ".join(f"[{f}]({TABLES}/{f})" for f in files)
            lines.append(f"- {links}: {text}")
    lines += ["", "## Figures", ""]
    fdir = root / FIGURES_DIR
    pngs = sorted(p.stem for p in fdir.glob("*.png")) if fdir.is_dir() else []
    for stem, text in FIGURES.items():
        names = [n for n in pngs if n == stem or n.startswith(stem + "_")]
        if not names:
            continue
        links = []
        for n in names:
            label = n[len(stem) + 1 :] or n
            svg = f" ([svg]({FIGURES_DIR}/{n}.svg))" if (fdir / f"{n}.svg").is_file() else ""
            links.append(f"[{label}]({FIGURES_DIR}/{n}.png){svg}")
        lines.append(f"- {text} {', '.join(links)}")
    return "\n".join(lines) + "\n"


# -- figures ----------------------------------------------------------------------------------
def figure_size(n_panels: int, legend: bool = True) -> tuple[float, float]:
    """Figure size in inches for ``n_panels`` panels in a grid of at most ``MAX_COLS`` columns."""
    ncols = max(1, min(MAX_COLS, n_panels))
    nrows = max(1, math.ceil(n_panels / ncols))
    return (PANEL_W * ncols + 0.6, PANEL_H * nrows + (LEGEND_H if legend else 0.0))


STYLE = {
    "svg.hashsalt": "optzoo",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def _styled(func: Callable[..., list[Path]]) -> Callable[..., list[Path]]:
    """Run a figure function under the report's matplotlib style (no global state changed)."""
    import functools

    @functools.wraps(func)
    def inner(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return func(*args, **kwargs)

    return inner


def _figure(figsize: tuple[float, float], constrained: bool = True):
    """A bare Figure rendered by Agg on save: no pyplot, no backend switch, no global state.

    Constrained layout measures every text on an extra draw pass: worth it for one panel, but
    half the drawing time of a panel grid, which ``_grid`` lays out with fixed margins instead.
    """
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained" if constrained else None)


# Fixed margins of a panel grid, in inches: tick labels and axis label on the left, the title
# (suptitle) on top, the legend rows and the x label below.
GRID_LEFT, GRID_RIGHT, GRID_TOP, GRID_BOTTOM = 0.8, 0.3, 0.8, 0.55
LEGEND_ROW = 0.19  # inches per legend row at legend.fontsize 8


def _grid(n: int):
    ncols = max(1, min(MAX_COLS, n))
    nrows = max(1, math.ceil(n / ncols))
    w, h = figure_size(n)
    fig = _figure((w, h), constrained=False)
    fig.subplots_adjust(
        left=GRID_LEFT / w,
        right=1 - GRID_RIGHT / w,
        top=1 - GRID_TOP / h,
        bottom=(GRID_BOTTOM + LEGEND_H) / h,
        wspace=0.45,
        hspace=0.75 / (PANEL_H - 0.75),
    )
    axes = fig.subplots(nrows, ncols, squeeze=False)
    flat = axes.ravel().tolist()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


# Families share a hue and their members differ in line style and marker: 15+ optimizers stay
# apart, and related methods read as related. Keys are optimizer names (a label's base name).
FAMILIES = {
    "sgd": "gd", "sgd+escape": "gd",
    "momentum": "momentum", "nesterov": "momentum", "momentum+escape": "momentum",
    "adagrad": "adaptive", "rmsprop": "adaptive", "adadelta": "adaptive",
    "adam": "adam", "adamw": "adam",
    "newton": "newton",
    "lbfgs": "quasi-newton", "bfgs": "quasi-newton", "dfp": "quasi-newton",
}  # fmt: skip
FAMILY_COLORS = {
    "gd": "#1f77b4",
    "momentum": "#2ca02c",
    "adaptive": "#ff7f0e",
    "adam": "#d62728",
    "newton": "#9467bd",
    "quasi-newton": "#8c564b",
    "other": "#7f7f7f",
}
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "h", "p", "*")


def base_names(an: Analysis) -> dict[str, str]:
    """Each optimizer's name in the tables (its label) -> the optimizer it runs."""
    specs = an.manifest.get("suite", {}).get("optimizers", [])
    named = {o.get("label") or o.get("name"): o.get("name") for o in specs}
    return {o: named.get(o, o) for o in an.optimizers}


def family(name: str) -> str:
    """An optimizer's family for the palette ("other" when unknown)."""
    return FAMILIES.get(name, FAMILIES.get(name.split("+")[0], "other"))


def styles(an: Analysis) -> dict[str, dict]:
    """Per optimizer: colour (its family's hue), line style and marker (its place in the family),
    so that no two optimizers share both colour and line style."""
    seen: dict[str, int] = {}
    out = {}
    for o, name in base_names(an).items():
        fam = family(name)
        k = seen.get(fam, 0)
        seen[fam] = k + 1
        out[o] = {
            "color": FAMILY_COLORS[fam],
            "ls": LINESTYLES[k % len(LINESTYLES)],
            "marker": MARKERS[k % len(MARKERS)],
        }
    return out


def _colors(an: Analysis) -> dict[str, str]:
    return {o: st["color"] for o, st in styles(an).items()}


def _markers(an: Analysis) -> dict[str, str]:
    """One marker per optimizer within a family, so that lines on top of each other stay apart."""
    return {o: st["marker"] for o, st in styles(an).items()}


def _save(fig, outdir: Path, name: str) -> list[Path]:
    """Save PNG and SVG atomically (temporary file in the same directory, then rename)."""
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in FIG_FORMATS:
        final = outdir / f"{name}.{ext}"
        with atomic_path(final) as tmp:
            meta = {"Date": None} if ext == "svg" else {"Software": None}
            fig.savefig(tmp, format=ext, dpi=DPI, metadata=meta)
            # The layout is settled by the first save; the second format reuses it.
            fig.set_layout_engine("none")
        paths.append(final)
    return paths


def critical_points_size(n_problems: int, n_optimizers: int) -> tuple[float, float]:
    """Size in inches of the critical-points figure: a legend row per six keys below the panels
    when it shows several problems and several optimizers."""
    w, h = SIZES["critical_points"]
    if n_problems > 1 and n_optimizers > 1:
        h += LEGEND_H * math.ceil((n_problems + n_optimizers) / 6)
    return (w, h)


def _legend(fig, handles, labels, ncols: int | None = None) -> None:
    """One legend below the panels, outside the data; as many columns as the figure's width
    holds (a wider legend would be cut at both sides). In a fixed-margin grid the panels move up
    to make room for the legend's rows."""
    if not handles:
        return
    fits = max(1, int(fig.get_figwidth() / 1.9))
    ncols = min(ncols or 6, fits, len(labels))
    if fig.get_layout_engine() is not None:
        fig.legend(handles, labels, loc="outside lower center", ncols=ncols, frameon=False)
        return
    rows = math.ceil(len(labels) / ncols)
    h = fig.get_figheight()
    fig.subplots_adjust(bottom=(GRID_BOTTOM + 0.1 + rows * LEGEND_ROW) / h)
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.005), ncols=ncols,
               frameon=False)  # fmt: skip


def slug(key: str) -> str:
    """A file-name-safe form of a problem key: ``rosenbrock[dim=2]`` -> ``rosenbrock_dim2``."""
    s = re.sub(r"[=\[\]]", lambda m: "_" if m.group() == "[" else "", key)
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", s)
    return s.strip("_") or "problem"


def _two_d(an: Analysis, only: Sequence[str] | None = None) -> list[str]:
    """The 2-D problems (those in ``only``, if given), in report order."""
    keep = an.problems if only is None else [p for p in an.problems if p in set(only)]
    return [p for p in keep if int(an.infos[p].get("dim", 0)) == 2]


def _landscape_grid(an: Analysis, problem: str):
    """``(xs, ys, F)`` from a stored ``landscape`` frame (columns x, y, f on a regular grid) of
    any cell of the problem, or None when none is stored."""
    for o in an.optimizers:
        g = an.store.read("landscape", [cell_name(problem, o)])
        if g.empty:
            continue
        xs = np.unique(g["x"].to_numpy())
        ys = np.unique(g["y"].to_numpy())
        if len(g) != len(xs) * len(ys):
            return None
        g = g.sort_values(["y", "x"], kind="stable")
        return xs, ys, g["f"].to_numpy(dtype=float).reshape(len(ys), len(xs))
    return None


def _draw_landscape(
    fig, ax, info: dict, xs: np.ndarray, ys: np.ndarray, F: np.ndarray, colorbar: bool = True
) -> None:
    """Filled contours of a stored landscape grid, with a colorbar.

    Problems with a minimum: log-spaced levels of f - min f (two per decade, lines at decades,
    at most 8 decades). Plateaus: the same for max f - f, the depth below the plateau. Saddle
    problems, unbounded below: linear levels of f, diverging around f at the saddle (white), so
    both descending and ascending directions show.
    """
    from matplotlib.colors import LogNorm, TwoSlopeNorm

    ok = np.isfinite(F)
    if not ok.any():
        return
    if info.get("f_star") is None and info.get("saddles") and info.get("f_saddle") is not None:
        fs = float(info["f_saddle"])
        lo_v, hi_v = float(F[ok].min()), float(F[ok].max())
        if not lo_v < fs < hi_v:
            lo_v, hi_v = min(lo_v, fs - 1e-9), max(hi_v, fs + 1e-9)
        levels = np.unique(np.concatenate([np.linspace(lo_v, fs, 11), np.linspace(fs, hi_v, 11)]))
        Fc = np.where(ok, F, np.nan)
        cf = _raster(ax, xs, ys, Fc, norm=TwoSlopeNorm(fs, lo_v, hi_v), cmap="RdBu_r")
        ax.contour(xs, ys, Fc, levels=levels[::2], colors="0.35", linewidths=0.4)
        ax.contour(xs, ys, Fc, levels=[fs], colors="0.3", linewidths=0.8, linestyles="--")
        if colorbar:
            cb = fig.colorbar(cf, ax=ax, shrink=0.9)
            cb.set_label("f (dashed: f at the saddle)")
        return
    if info.get("category") == "plateau":
        # A plateau is flat in f - min f; its exponentially small slope shows as depth below it.
        G = np.where(ok, float(F[ok].max()) - F, np.nan)
        label = "max f - f: depth below the plateau (log scale)"
        cmap = "Greys"  # deeper is darker, as low f is elsewhere
    else:
        fmin = float(F[ok].min())
        if info.get("f_star") is not None:
            fmin = min(fmin, float(info["f_star"]))
        G = np.where(ok, F - fmin, np.nan)
        label = "f - min f (log scale)"
        cmap = "Greys_r"
    pos = G[np.isfinite(G) & (G > 0)]
    if not pos.size:
        return
    b = math.ceil(math.log10(pos.max()))
    a = max(math.floor(math.log10(pos.min())), b - 8)
    if b <= a:
        b = a + 1
    levels = np.logspace(a, b, 2 * (b - a) + 1)
    Gc = np.clip(np.where(np.isfinite(G), G, 10.0**b), 10.0**a, 10.0**b)
    cf = _raster(ax, xs, ys, Gc, norm=LogNorm(10.0**a, 10.0**b), cmap=cmap)
    ax.contour(xs, ys, Gc, levels=levels[::2], colors="0.35", linewidths=0.5)
    if not colorbar:
        return
    cb = fig.colorbar(cf, ax=ax, shrink=0.9)
    cb.set_label(label)
    cb.set_ticks([10.0**k for k in range(a, b + 1)])
    cb.minorticks_off()


def _by_family(an: Analysis, opts: Sequence[str]) -> dict[str, list[str]]:
    """Optimizers grouped by family, in suite order, at most ``CONTOUR_PATHS`` per group."""
    names = base_names(an)
    groups: dict[str, list[str]] = {}
    for o in opts:
        fam = family(names.get(o, o))
        if len(groups.get(fam, [])) == CONTOUR_PATHS:
            fam = f"{fam} (more)"
        groups.setdefault(fam, []).append(o)
    return groups


CONTOUR_PATHS = 6  # paths per panel: more cannot be told apart on one landscape


def _raster(ax, xs: np.ndarray, ys: np.ndarray, F: np.ndarray, **kw):
    """The landscape as an image under its contour lines: filled contours cost most of a contour
    figure's drawing time, an image of the stored grid a fraction of it."""
    dx, dy = (xs[1] - xs[0]) / 2, (ys[1] - ys[0]) / 2
    extent = (xs[0] - dx, xs[-1] + dx, ys[0] - dy, ys[-1] + dy)
    return ax.imshow(F, extent=extent, origin="lower", aspect="auto", interpolation="nearest",
                     alpha=0.6, **kw)  # fmt: skip


@_styled
def figure_contours(
    data: Analysis | str | Path, outdir: Path | None = None, problems: Sequence[str] | None = None
) -> list[Path]:
    """Per 2-D problem: contours of f with each optimizer's path from the default start at its
    best setting, one panel per optimizer family (small multiples, at most 6 paths each)."""
    an = _analysis(data)
    outdir = outdir or an.root / FIGURES_DIR
    from matplotlib.lines import Line2D

    sty = styles(an)
    paths_all = an.paths
    written = []
    for p in _two_d(an, problems):
        info = an.infos[p]
        lo, hi = np.asarray(info["bounds"][0], float), np.asarray(info["bounds"][1], float)
        tracks = {}
        for o in an.optimizers:
            br = an.best_runs(p, o)
            br = br[(br["start_id"] == 0) & (br["seed_id"] == 0)]
            if br.empty or paths_all.empty:
                continue
            tr = paths_all[
                (paths_all["problem"] == p)
                & (paths_all["optimizer"] == o)
                & (paths_all["run"] == int(br["run"].iloc[0]))
            ].sort_values("step")
            if not tr.empty:
                tracks[o] = tr
        groups = _by_family(an, list(tracks))
        if not groups:
            continue
        fig, axes = _grid(len(groups))
        grid = _landscape_grid(an, p)
        handles, labels = [], []
        for k, (ax, (fam, opts)) in enumerate(zip(axes, groups.items(), strict=True)):
            if grid is not None:
                _draw_landscape(fig, ax, info, *grid, colorbar=k == len(groups) - 1)
            for o in opts:
                tr, st = tracks[o], sty[o]
                (ln,) = ax.plot(tr["x"], tr["y"], color=st["color"], ls=st["ls"], lw=1.3)
                ax.plot(tr["x"].iloc[-1], tr["y"].iloc[-1], st["marker"], color=st["color"],
                        ms=5, mec="k", mew=0.5)  # fmt: skip
                handles.append(ln)
                n = len(tr) - 1
                labels.append(f"{o} ({n} step{'' if n == 1 else 's'})")
            x0 = info.get("x0")
            if x0 is not None:
                ax.plot(x0[0], x0[1], "s", color="white", mec="k", ms=7, zorder=5)
            for m in info.get("minimizers", []):
                ax.plot(m[0], m[1], "*", color="gold", mec="k", ms=12, zorder=6)
            for sd in info.get("saddles", []):
                ax.plot(sd[0], sd[1], "X", color="red", mec="k", ms=9, zorder=6)
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
            ax.set_xlabel("$x_1$")
            ax.set_ylabel("$x_2$")
            ax.set_title(fam)
        marks = [("s", "white", "start"), ("*", "gold", "minimum"), ("X", "red", "saddle")]
        for mk, col, lab in marks:
            if lab == "start" or info.get({"minimum": "minimizers", "saddle": "saddles"}[lab]
                                           if lab != "start" else "x0"):  # fmt: skip
                handles.append(Line2D([], [], marker=mk, ls="", color=col, mec="k"))
                labels.append(lab)
        _legend(fig, handles, labels, ncols=5)
        fig.suptitle(f"{p} ({info['category']}): paths from x0, best setting", fontsize=9)
        written += _save(fig, outdir, f"contour_{slug(p)}")
    return written


def _curve(evals: np.ndarray, f: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """f of one run at each budget in ``grid``: the last point with evals <= budget."""
    i = np.searchsorted(evals, grid, side="right") - 1
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


def _decades(ax, which: str = "both") -> None:
    """Label only the decades of log axes that span two decades or more (no minor labels)."""
    from matplotlib.ticker import LogLocator, NullFormatter

    for axis, scale in (("x", ax.get_xscale()), ("y", ax.get_yscale())):
        if scale != "log" or which not in ("both", axis):
            continue
        lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
        if lo <= 0 or math.log10(hi / lo) < 2:
            continue  # matplotlib's default then labels a few minor ticks, which reads better
        a = ax.xaxis if axis == "x" else ax.yaxis
        a.set_major_locator(LogLocator(base=10, numticks=8))
        a.set_minor_formatter(NullFormatter())


@_styled
def figure_convergence(data: Analysis | str | Path, outdir: Path | None = None) -> list[Path]:
    """f - f* against gradient evaluations per problem: median and quartile band over runs.

    Diverged runs are left out of the median and band (their f would stretch the axis over
    hundreds of decades) and counted in the panel's note. Problems unbounded below (saddles)
    plot f on a symmetric log axis, since an escaped run's f falls by decades.
    """
    an = _analysis(data)
    outdir = outdir or an.root / FIGURES_DIR
    sty = styles(an)
    traces = an.traces
    band = max(0.05, 0.3 / math.sqrt(len(an.optimizers)))
    probs = [p for p in an.problems if not an.best[an.best["problem"] == p].empty]
    fig, axes = _grid(len(probs))
    seen: dict[str, object] = {}
    for ax, p in zip(axes, probs, strict=True):
        off = an.f_offset(p)
        info = an.infos[p]
        tp = traces[traces["problem"] == p] if not traces.empty else traces
        diverged = []
        for o in an.optimizers:
            br = an.best_runs(p, o)
            n_div = int((br["status"] == "diverged").sum())
            if n_div:
                diverged.append(f"{o} {n_div}/{len(br)}")
            br = br[br["status"] != "diverged"]
            if br.empty or tp.empty:
                continue
            t = tp[(tp["optimizer"] == o) & tp["run"].isin(br["run"])].sort_values(["run", "step"])
            curves = _run_curves(t, br)
            if not curves:
                continue
            grid = np.unique(np.concatenate([e for e, _ in curves]))
            vals = np.stack([_curve(e, f, grid) for e, f in curves])
            with np.errstate(all="ignore"):
                if off is not None:
                    vals = np.maximum(vals - off, LOG_FLOOR)
                vals = np.where(np.isfinite(vals), vals, np.nan)
                keep = ~np.isnan(vals).all(axis=0)
                grid, vals = grid[keep], vals[:, keep]
                if grid.size == 0:
                    continue
                q = np.nanpercentile(vals, [25, 50, 75], axis=0)
            st = sty[o]
            (ln,) = ax.plot(grid, q[1], color=st["color"], ls=st["ls"], lw=1.4,
                            drawstyle="steps-post", marker=st["marker"], ms=3.5,
                            markevery=max(1, grid.size // 6))  # fmt: skip
            ax.fill_between(grid, q[0], q[2], color=st["color"], alpha=band, lw=0, step="post")
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
            _symlog_ticks(ax)
            ax.set_ylabel("f (symlog; dotted: at the saddle)")
        _decades(ax)
        ax.set_xlabel("gradient evaluations")
        ax.set_title(f"{p} ({info['category']}; target {an.target_label(p)})")
        if diverged:
            ax.text(0.02, 0.02, "diverged, not drawn: " + ", ".join(diverged), fontsize=6,
                    transform=ax.transAxes, va="bottom", wrap=True)  # fmt: skip
    _legend(fig, list(seen.values()), list(seen))
    fig.suptitle(
        "median and interquartile band over the reported starts, best setting per problem\n"
        "dotted: success target; diverged runs left out and counted (tables/convergence.md)",
        fontsize=9,
    )
    return _save(fig, outdir, "convergence")


def _symlog_ticks(ax) -> None:
    """At most about five labelled ticks per side of a symmetric log axis (one per decade would
    crowd an axis spanning 30 decades)."""
    from matplotlib.ticker import NullFormatter, SymmetricalLogLocator

    lo, hi = ax.get_ylim()
    decades = math.log10(max(abs(lo), abs(hi), 10.0))
    base = 10.0 ** max(1, math.ceil(decades / 5))
    ax.yaxis.set_major_locator(SymmetricalLogLocator(base=base, linthresh=1.0))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _category_hits(an: Analysis, category: str, optimizer: str) -> tuple[list[np.ndarray], int]:
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


@_styled
def figure_ecdf(data: Analysis | str | Path, outdir: Path | None = None) -> list[Path]:
    """Runtime ECDF per category (COCO) against log10 of gradient evaluations, with a 95%
    bootstrap band (runs resampled per problem) and the suite's budget marked."""
    an = _analysis(data)
    outdir = outdir or an.root / FIGURES_DIR
    from matplotlib.ticker import MaxNLocator

    sty = styles(an)
    fig, axes = _grid(len(an.categories))
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
    _legend(fig, list(seen.values()), list(seen))
    return _save(fig, outdir, "ecdf")


PROFILE_TAU_MAX = 100.0  # beyond a factor of 100 in cost, the profile says only "solved"


@_styled
def figure_profile(data: Analysis | str | Path, outdir: Path | None = None) -> list[Path]:
    """Dolan-More performance profile over all problems; cost: aRT at the success target."""
    an = _analysis(data)
    outdir = outdir or an.root / FIGURES_DIR
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
    w, h = SIZES["profile"]
    fig = _figure((w + 1.8, h))
    ax = fig.subplots()
    for o in rho.columns:
        st = sty[o]
        ax.plot(taus, rho[o].to_numpy(), color=st["color"], ls=st["ls"], lw=1.5,
                drawstyle="steps-post", label=o)  # fmt: skip
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log", base=2)
    ax.set_xlim(1, tmax)
    ax.xaxis.set_major_locator(LogLocator(base=2, numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"tau (aRT within a factor tau of the best; log2 scale, cut at {tmax:g})")
    ax.set_ylabel("share of problems with aRT <= tau x best aRT")
    solved = int(np.isfinite(best).sum())
    ax.set_title(
        f"performance profile over {len(an.problems)} problems ({solved} solved by some optimizer)"
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, outdir, "profile")


def _basin_labels(info: dict, runs: pd.DataFrame) -> list[str]:
    lo, hi = np.asarray(info["bounds"][0], float), np.asarray(info["bounds"][1], float)
    radius = 0.05 * float(np.linalg.norm(hi - lo))
    mins = np.asarray(info.get("minimizers") or np.zeros((0, 2)), float).reshape(-1, 2)
    sads = np.asarray(info.get("saddles") or np.zeros((0, 2)), float).reshape(-1, 2)
    out = []
    for xf, st in zip(runs["x_final"], runs["status"], strict=True):
        x = np.asarray(xf, float)
        if st == "diverged" or not np.isfinite(x).all():
            out.append("diverged")
            continue
        if len(mins):
            d = np.linalg.norm(mins - x, axis=1)
            k = int(np.argmin(d))
            if d[k] <= radius:
                out.append(f"min {k + 1}")
                continue
        if len(sads) and np.linalg.norm(sads - x, axis=1).min() <= radius:
            out.append("saddle")
        elif st == "solved" and info.get("f_star") is None:
            out.append("escaped")
        else:
            out.append("other")
    return out


@_styled
def figure_basins(
    data: Analysis | str | Path, outdir: Path | None = None, problems: Sequence[str] | None = None
) -> list[Path]:
    """Basins of attraction for 2-D multimodal and saddle problems, one panel per optimizer."""
    an = _analysis(data)
    outdir = outdir or an.root / FIGURES_DIR
    import matplotlib
    from matplotlib.lines import Line2D

    written = []
    for p in _two_d(an, problems):
        info = an.infos[p]
        if info["category"] not in ("multimodal", "saddle"):
            continue
        opts = [o for o in an.optimizers if not an.best_runs(p, o).empty]
        if not opts:
            continue
        mins = info.get("minimizers") or []
        palette = matplotlib.colormaps["tab10"]
        style = {f"min {k + 1}": (palette(k % 10), "o") for k in range(len(mins))}
        style |= {
            "saddle": ("black", "s"),
            "escaped": ("tab:cyan", "o"),
            "other": ("0.6", "o"),
            "diverged": ("black", "x"),
        }
        # Optimizers whose starts all end alike share one panel: identical panels say nothing.
        panels: dict[tuple, list[str]] = {}
        for o in opts:
            br = an.best_runs(p, o)
            key = (tuple(_basin_labels(info, br)), tuple(map(tuple, br["x0"].tolist())))
            panels.setdefault(key, []).append(o)
        fig, axes = _grid(len(panels))
        used: set[str] = set()
        lo, hi = info["bounds"]
        for ax, ((labels, starts), names) in zip(axes, panels.items(), strict=True):
            x0 = np.asarray(starts, float)
            for lab in style:
                m = np.array([s == lab for s in labels])
                if not m.any():
                    continue
                used.add(lab)
                col, mk = style[lab]
                ax.scatter(
                    x0[m, 0],
                    x0[m, 1],
                    color=col,
                    marker=mk,
                    s=22,
                    edgecolors="k" if mk != "x" else None,
                    linewidths=0.3,
                )
            for k, mnm in enumerate(mins):
                ax.plot(mnm[0], mnm[1], "*", color=palette(k % 10), mec="k", ms=12)
            for s in info.get("saddles", []):
                ax.plot(s[0], s[1], "X", color="red", mec="k", ms=9)
            pad = 0.03 * (np.asarray(hi, float) - np.asarray(lo, float))
            ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
            ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
            ax.set_xlabel("$x_1$ of the start")
            ax.set_ylabel("$x_2$ of the start")
            title = ", ".join(names) if len(names) <= 3 else f"{len(names)} optimizers alike"
            ax.set_title(f"{title} ({len(labels)} starts)")
            if len(names) > 3:
                ax.text(0.5, -0.22, ", ".join(names), transform=ax.transAxes, ha="center",
                        va="top", fontsize=6, wrap=True)  # fmt: skip
        handles, labs = [], []
        for lab, (col, mk) in style.items():
            if lab in used:
                k = lab.split()[-1]
                text = lab
                if lab.startswith("min "):
                    m = mins[int(k) - 1]
                    text = f"ends at minimum ({fmt(m[0], 3)}, {fmt(m[1], 3)})"
                elif lab == "other":
                    text = "ends elsewhere (budget / stalled)"
                else:
                    text = {
                        "saddle": "ends at the saddle",
                        "escaped": "escaped the saddle",
                        "diverged": "diverged",
                    }[lab]
                handles.append(
                    Line2D([], [], marker=mk, ls="", color=col, mec="k" if mk != "x" else col)
                )
                labs.append(text)
        _legend(fig, handles, labs, ncols=min(len(labs), 3))
        fig.suptitle(f"basins of attraction: {p} (start points coloured by where the run ended)")
        written += _save(fig, outdir, f"basins_{slug(p)}")
    return written


@_styled
def figure_lr_sensitivity(data: Analysis | str | Path, outdir: Path | None = None) -> list[Path]:
    """Success rate against learning rate, per optimizer, one panel per category."""
    an = _analysis(data)
    outdir = outdir or an.root / FIGURES_DIR
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
    fig, axes = _grid(len(an.categories))
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
        _decades(ax)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("success rate")
        ax.set_title(c)
    from matplotlib.lines import Line2D

    default = Line2D([], [], marker="o", ls="", ms=11, mfc="none", mec="k", mew=1.3)
    _legend(fig, [*seen.values(), default], [*seen, "default lr"])
    return _save(fig, outdir, "lr_sensitivity")


def _clip_label(manifest: dict) -> str:
    s = manifest.get("suite", {})
    if s.get("clip_norm") is not None:
        return f"clip_norm = {fmt(s['clip_norm'], 3)}"
    if s.get("clip_value") is not None:
        return f"clip_value = {fmt(s['clip_value'], 3)}"
    return "no clipping"


@_styled
def figure_cliff(
    data: Analysis | str | Path,
    other: Analysis | str | Path | None = None,
    outdir: Path | None = None,
) -> list[Path]:
    """Cliffs: median largest step and divergence rate per optimizer over the whole lr grid.

    With ``other`` (a second results directory, e.g. the same suite with gradient clipping) the
    two are drawn side by side, labelled by their clipping settings.
    """
    sets = [_analysis(data)] + ([_analysis(other)] if other is not None else [])
    an = sets[0]
    cliff = [[p for p in a.problems if a.infos[p]["category"] == "cliff"] for a in sets]
    if not any(cliff):
        return []
    outdir = outdir or an.root / FIGURES_DIR
    opts = list(an.optimizers) + [
        o for a in sets[1:] for o in a.optimizers if o not in an.optimizers
    ]
    labels = [_clip_label(a.manifest) for a in sets]
    if len(labels) == 2 and labels[0] == labels[1]:
        labels = [f"{lab} ({a.root.name})" for lab, a in zip(labels, sets, strict=True)]
    fig = _figure(SIZES["cliff"])
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
        ax2.bar_label(bars, labels=[_pct(v) for v in div], fontsize=7, padding=1)
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
    return _save(fig, outdir, "cliff")


CRITICAL_KINDS = ("minimum", "saddle", "maximum", "degenerate")


@_styled
def figure_critical_points(data: Analysis | str | Path, outdir: Path | None = None) -> list[Path]:
    """Final loss against minimum ratio at the critical points the runs ended on, and one
    typical end point's Hessian eigenvalues.

    Drawn only when the runs table has a ``min_ratio`` column (the analysis adds it). The points
    are every run, at any learning rate, whose end point is a critical point (``endpoint`` is
    minimum, saddle, maximum or degenerate), on the problems of more than two dimensions when
    there are any. The right panel is the eigenvalue histogram of the run with the median final
    loss on the largest problem when an ``eigenvalues`` column is stored, else the histogram of
    the end points' index (``n_neg``, the number of negative eigenvalues).
    """
    from matplotlib.ticker import MaxNLocator

    an = _analysis(data)
    r = an.runs
    if "min_ratio" not in r.columns:
        return []
    b = r[(r["status"] != "diverged") & np.isfinite(r["min_ratio"].to_numpy(dtype=float))]
    dims = b["problem"].map(lambda p: int(an.infos[p].get("dim", 0)))
    if (dims > 2).any():
        b, dims = b[dims > 2], dims[dims > 2]
    if b.empty:
        return []
    crit = b[b["endpoint"].isin(CRITICAL_KINDS)]
    outdir = outdir or an.root / FIGURES_DIR
    colors, markers = _colors(an), _markers(an)
    probs = [p for p in an.problems if p in set(b["problem"])]
    # Colour by problem when several are shown (the minimum-ratio study), else by optimizer.
    by_problem = len(probs) > 1
    # Several problems and optimizers: colour names the problem and marker the optimizer, in a
    # legend below the panels (one entry per pair would not fit).
    keyed = by_problem and len(set(b["optimizer"])) > 1
    opts = [o for o in an.optimizers if o in set(b["optimizer"])]
    fig = _figure(critical_points_size(len(probs), len(opts)))
    ax1, ax2 = fig.subplots(1, 2)
    for k, p in enumerate(probs):
        for o in an.optimizers:
            g = b[(b["problem"] == p) & (b["optimizer"] == o)]
            if g.empty:
                continue
            color = f"C{k % 10}" if by_problem else colors[o]
            label = None if keyed else (p if by_problem else o)
            # Filled: the run ended on a critical point; hollow: it did not (budget, target).
            is_crit = g["endpoint"].isin(CRITICAL_KINDS).to_numpy()
            for mask, face in ((is_crit, color), (~is_crit, "none")):
                if mask.any():
                    ax1.scatter(g["min_ratio"][mask], g["f_final"][mask], s=24,
                                facecolors=face, edgecolors=color, marker=markers[o],
                                label=label if face != "none" or not is_crit.any() else None,
                                alpha=0.8, linewidths=0.8)  # fmt: skip
    f = b["f_final"].to_numpy(dtype=float)
    if (f[np.isfinite(f)] > 0).all():
        ax1.set_yscale("log")
        _decades(ax1, "y")
    ax1.set_xlim(-0.03, 1.03)
    ax1.set_xlabel("minimum ratio (share of positive Hessian eigenvalues)")
    ax1.set_ylabel("final training loss f")
    ax1.set_title(f"{len(b)} end points; filled: on a critical point ({len(crit)})")
    if keyed:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], ls="", marker="o", color=f"C{k % 10}") for k in range(len(probs))]
        handles += [Line2D([], [], ls="", marker=markers[o], color="0.3", mfc="none") for o in opts]
        _legend(fig, handles, [f"problem: {p}" for p in probs] + list(opts), ncols=6)
    else:
        ax1.legend(loc="best", fontsize=7)
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
        from matplotlib.ticker import SymmetricalLogLocator

        ax2.xaxis.set_major_locator(SymmetricalLogLocator(base=1000, linthresh=thresh))
        ax2.axvline(0, color="r", lw=0.8)
        ax2.set_xlabel("Hessian eigenvalue (symmetric log scale)")
        ax2.set_ylabel("count")
        ax2.set_title(
            f"{typ['problem']}: median-loss end point, min ratio {fmt(typ['min_ratio'], 3)}"
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
    return _save(fig, outdir, "critical_points")


FIGURE_FUNCTIONS: tuple[Callable[..., list[Path]], ...] = (
    figure_contours,
    figure_convergence,
    figure_ecdf,
    figure_profile,
    figure_basins,
    figure_lr_sensitivity,
    figure_critical_points,
)


# -- entry points -----------------------------------------------------------------------------
# Figure jobs by how long one takes (quick suite, measured; contours and basins are one job per
# problem), longest first, so that a pool of workers ends together.
_BY_COST = (
    "figure_convergence",
    "figure_basins",
    "figure_lr_sensitivity",
    "figure_ecdf",
    "figure_contours",
    "figure_critical_points",
    "figure_cliff",
    "figure_profile",
)
_JOBS: list[Callable[[], list[Path]]] = []  # read by forked workers


def _run_job(i: int) -> list[Path]:
    return _JOBS[i]()


def _draw_figures(an: Analysis, compare: str | Path | None, workers: int | None) -> list[Path]:
    """Every figure, drawn by one worker process per core (matplotlib draws on one thread).

    Workers are forked after the runs are loaded and the shared statistics computed, so each
    starts with them in memory. Returns the files in a fixed order whatever the schedule.
    """
    import functools

    from optzoo import _pool

    jobs = []
    for f in FIGURE_FUNCTIONS:
        if f in (figure_contours, figure_basins):  # one file per 2-D problem: one job each
            jobs += [functools.partial(f, an, problems=[p]) for p in _two_d(an)]
        else:
            jobs.append(functools.partial(f, an))
    # Clipping at cliffs is a study (optzoo.studies); the figure here compares two result sets.
    if compare is not None:
        jobs.append(functools.partial(figure_cliff, an, compare))
    names = [j.func.__name__ for j in jobs]
    rank = {name: i for i, name in enumerate(_BY_COST)}  # a figure not listed goes last
    order = sorted(range(len(jobs)), key=lambda i: rank.get(names[i], len(rank)))
    workers = min(_pool.cores() if workers is None else workers, len(jobs))
    if workers < 2:
        return [p for j in jobs for p in j()]
    _ = (an.traces, an.paths, an.stats, an.best)  # read once here, inherited by every worker
    _JOBS[:] = jobs
    pool = _pool.start(workers)
    finished = False
    try:
        futures = {i: pool.submit(_run_job, i) for i in order}
        out = [futures[i].result() for i in range(len(jobs))]
        finished = True
    finally:
        _JOBS.clear()
        _pool.stop(pool, finished)
    return [p for paths in out for p in paths]


def write(
    root: str | Path,
    compare: str | Path | None = None,
    figures: bool = True,
    workers: int | None = None,
) -> list[Path]:
    """Write every table and figure of a results directory; returns the files written.

    ``compare`` is an optional second results directory (e.g. the same suite with gradient
    clipping) drawn beside this one in the cliff figure. Figures are drawn by ``workers``
    processes (default: one per core; the files are the same either way).
    """
    an = Analysis(root)
    _OPEN[Path(root).resolve()] = an
    try:
        written = _write_tables(an)
        if figures:
            written += _draw_figures(an, compare, workers)
        readme = Path(root) / "README.md"
        write_text(readme, readme_markdown(root))
    finally:
        _OPEN.clear()
    return [*written, readme]


def readme_markdown(root: str | Path) -> str:
    """The results directory's README: what ran, how to regenerate it, the headline, an index.

    Deterministic (no wall times), so regenerating it from the same runs gives the same bytes.
    """
    store = Store(root)
    m = store.manifest() or {}
    suite = m.get("suite", {})
    name = suite.get("name", Path(root).name)
    machine = m.get("machine", {})
    an = _analysis(root)
    probs, opts = an.problems, an.optimizers  # what ran, not what the suite file lists
    what = (
        f"{len(probs)} problems x {len(opts)} optimizers"
        if len(probs) > 3 or len(opts) > 6
        else f"{', '.join(probs)} x {', '.join(opts)}"
    )
    lines = [
        f"# Results: the `{name}` suite",
        "",
        f"{what}; budget {suite.get('steps')} steps"
        + (f" / {suite.get('evals')} gradient evaluations" if suite.get("evals") else "")
        + f" per run; {suite.get('starts')} random starts besides each problem's x0,"
        f" {suite.get('seeds')} seed(s). Produced by optzoo {m.get('optzoo')} (commit"
        f" `{(m.get('git_commit') or 'unknown')[:10]}`), torch {m.get('torch')}, numpy"
        f" {m.get('numpy')}, Python {m.get('python')} on {machine.get('cpus')} CPUs"
        f" ({machine.get('platform')}).",
        "",
        f"Regenerate: {_rerun_command(m)}"
        f"`python -m optzoo.report {Path(root).as_posix()}` rewrites the tables and figures from"
        " the stored runs alone, where they are kept (`cells/`; a published copy leaves them out"
        " of git: the same suite and seed give the same tables). Wall times are only in"
        " `tables/timing.csv`.",
        "",
        "## Headline",
        "",
        "```",
        summary(root),
        "```",
        "",
        index_markdown(root),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _rerun_command(manifest: dict) -> str:
    """How these results were produced: the command line the bench recorded, if any."""
    command = manifest.get("command")
    if not command:
        return "the suite that ran (built in Python) is recorded in `manifest.json`; "
    return f"`{command}` runs the suite and writes everything here; "


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2, like every other user error
        raise ConfigError(f"{message} (see --help)")


def main(argv: list[str] | None = None) -> int:
    """Regenerate a results directory's tables and figures; returns the exit code.

    0 done; 2 a user or environment error (no such directory, a damaged or incomplete store,
    the directory in use, OSError), one line on stderr; 130 Ctrl-C, 143 SIGTERM (the figure
    workers are stopped, temporary files removed); 1 an internal error. ``--debug`` adds the
    traceback.
    """
    from optzoo import _pool

    argv = list(sys.argv[1:] if argv is None else argv)
    return _pool.run_command("optzoo.report", lambda: _main(argv), debug="--debug" in argv)


def _main(argv: list[str]) -> int:
    p = _Parser(
        prog="python -m optzoo.report",
        description="Regenerate the tables and figures of a results directory from its runs.",
    )
    p.add_argument("dir", help="results directory (holds manifest.json and cells/)")
    p.add_argument(
        "--compare", help="a second results directory for the cliff figure (e.g. clipped)"
    )
    p.add_argument("--no-figures", dest="figures", action="store_false", help="tables only")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = p.parse_args(argv)
    root = Path(args.dir)
    if not (root / "manifest.json").is_file():
        raise ConfigError(f"{root} is not a results directory (no manifest.json)")
    with locked(root):
        store = Store(root)
        store.clean_temporary()
        store.check()  # a damaged or unfinished cell: one line, rather than a table without it
        files = write(root, compare=args.compare, figures=args.figures)
    print(f"optzoo.report: wrote {len(files)} files under {root} ({TABLES}/, {FIGURES_DIR}/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
