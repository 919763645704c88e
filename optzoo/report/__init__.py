"""Tables and figures from a results directory: ``python -m optzoo.report DIR``.

The report reads the stored files only (``optzoo.store``); it never imports an optimizer or a
problem and never runs anything, so the tables of a directory can be regenerated anywhere. The
convergence tables hold no wall times and use fixed float formats: regenerated from the same
stored runs they are byte-identical. Wall time appears only in ``tables/timing.csv``.

Parts::

    data.py        ReportData: a results directory read back and reduced to statistics
    formatting.py  numbers and frames as text (Markdown, LaTeX, CSV)
    tables.py      the tables (``tables/*.csv, *.md, *.tex``)
    style.py       sizes, palette, legends, axes, saving (one PNG per figure)
    figures/       the drawing functions, by kind of figure
    registry.py    every figure described once (``FIGURES``); ``draw`` and ``render``
    readme.py      the results README: headline and index

Entry points: :func:`write` (everything), :func:`draw` (some figures into a directory),
:func:`render` (one figure's matplotlib Figures, nothing written), :func:`main` (the command).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

from optzoo import _pool
from optzoo.errors import ConfigError
from optzoo.report.data import CATEGORY_ORDER, ReportData, load
from optzoo.report.figures.points import critical_points_size as _critical_points_size
from optzoo.report.formatting import fmt, fmt_art, fmt_q, tex_escape
from optzoo.report.readme import TABLE_INFO, index_markdown, readme_markdown, summary
from optzoo.report.registry import FIGURES, FigureSpec, Job, draw, render, spec
from optzoo.report.style import (
    DPI,
    FIGURES_DIR,
    STYLE,
    base_names,
    family,
    figure_size,
    save,
    slug,
    styles,
)
from optzoo.report.tables import (
    TABLES,
    categories_table,
    convergence_table,
    landscape_table,
    targets_tables,
    timing_table,
    write_tables,
)
from optzoo.store import Store, locked, write_text

# Looked up here when ``write`` runs, so that a caller can replace it (the tests interrupt it).
_write_tables = write_tables


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
    an = ReportData(root)
    written: list[Path] = []

    def tables() -> None:
        written.extend(_write_tables(an))

    if figures:  # the tables are written while other processes start drawing
        drawn = draw(an, compare=compare, workers=workers, meanwhile=tables)
        written += drawn
    else:
        tables()
    readme = Path(root) / "README.md"
    write_text(readme, readme_markdown(an))
    return [*written, readme]


# -- the names of the single-module report, until every caller uses the ones above -----------
SIZES = {s.name: s.size for s in FIGURES.values() if s.size is not None}


def critical_points_size(n_problems: int, n_optimizers: int) -> tuple[float, float]:
    """Size in inches of the critical-points figure for this many problems and optimizers."""
    return _critical_points_size(SIZES["critical_points"], n_problems, n_optimizers)


def _save(fig, outdir: Path, name: str) -> list[Path]:
    return [save(fig, outdir, name)]


def _figure_function(name: str):
    """``figure_<name>(data, outdir=None, problems=None)``: draw and save through ``_save``."""

    def figure_function(data, outdir=None, problems=None, other=None) -> list[Path]:
        an = load(data)
        s = spec(name)
        wanted = s.per_problem(an) if s.per_problem is not None else [None]
        if problems is not None:
            wanted = [p for p in wanted if p in set(problems)]
        out = Path(outdir) if outdir is not None else an.root / FIGURES_DIR
        written = []
        for job in (Job(s, p, Path(other) if other is not None else None) for p in wanted):
            with matplotlib.rc_context(STYLE):  # ticks are made when the figure is saved
                fig = job.spec.draw(an, job)
                if fig is not None:
                    written += _save(fig, out, job.stem)
        return written

    figure_function.__name__ = figure_function.__qualname__ = "figure_" + (
        "contours" if name == "contour" else name
    )
    return figure_function


figure_contours = _figure_function("contour")
figure_convergence = _figure_function("convergence")
figure_ecdf = _figure_function("ecdf")
figure_profile = _figure_function("profile")
figure_basins = _figure_function("basins")
figure_lr_sensitivity = _figure_function("lr_sensitivity")
figure_critical_points = _figure_function("critical_points")
_figure_cliff = _figure_function("cliff")


def figure_cliff(data, other=None, outdir=None) -> list[Path]:
    """Cliffs, beside ``other`` (a second results directory) when given."""
    return _figure_cliff(data, outdir=outdir, other=other)


FIGURE_FUNCTIONS = (
    figure_contours,
    figure_convergence,
    figure_ecdf,
    figure_profile,
    figure_basins,
    figure_lr_sensitivity,
    figure_critical_points,
)


# -- the command ------------------------------------------------------------------------------
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


__all__ = [
    "CATEGORY_ORDER",
    "DPI",
    "FIGURES",
    "TABLES",
    "TABLE_INFO",
    "FigureSpec",
    "Job",
    "ReportData",
    "base_names",
    "categories_table",
    "convergence_table",
    "draw",
    "family",
    "figure_size",
    "fmt",
    "fmt_art",
    "fmt_q",
    "index_markdown",
    "landscape_table",
    "load",
    "main",
    "readme_markdown",
    "render",
    "slug",
    "styles",
    "summary",
    "targets_tables",
    "tex_escape",
    "timing_table",
    "write",
    "write_tables",
]
