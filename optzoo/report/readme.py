"""The results directory's README: what ran, how to regenerate it, the headline table and an
index of the tables and figures present, one sentence each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tabulate import tabulate

from optzoo import stats
from optzoo.report.data import ReportData, load
from optzoo.report.formatting import ci, pct
from optzoo.report.registry import FIGURES
from optzoo.report.style import FIGURES_DIR
from optzoo.report.tables import TABLES

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


def summary(data: ReportData | str | Path) -> str:
    """A compact text table: per optimizer, success rate per category at its best setting per
    problem (chosen on held-out runs), with 95% Wilson intervals; * marks a category's best where
    it is significantly better than every other optimizer."""
    an = load(data)
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
            row.append(f"{pct(k / n)}{mark} {ci(*stats.wilson(k, n))}" if n else "—")
        k, n = int(sub["successes"].sum()), int(sub["runs"].sum())
        row.append(f"{pct(k / n)} {ci(*stats.wilson(k, n))}" if n else "—")
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
    for stem, spec in FIGURES.items():
        names = [n for n in pngs if n == stem or n.startswith(stem + "_")]
        if not names:
            continue
        links = []
        for n in names:
            label = n[len(stem) + 1 :] or n
            links.append(f"[{label}]({FIGURES_DIR}/{n}.png)")
        lines.append(f"- {spec.caption} {', '.join(links)}")
    return "\n".join(lines) + "\n"


def readme_markdown(data: ReportData | str | Path) -> str:
    """The results directory's README: what ran, how to regenerate it, the headline, an index.

    Deterministic (no wall times), so regenerating it from the same runs gives the same bytes.
    """
    an = load(data)
    root = an.root
    m = an.manifest
    suite = m.get("suite", {})
    name = suite.get("name", root.name)
    machine = m.get("machine", {})
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
        f"`python -m optzoo.report {root.as_posix()}` rewrites the tables and figures from"
        " the stored runs alone, where they are kept (`cells/`; a published copy leaves them out"
        " of git: the same suite and seed give the same tables). Wall times are only in"
        " `tables/timing.csv`.",
        "",
        "## Headline",
        "",
        "```",
        summary(an),
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
