"""Every figure of the report, described once: name, drawing function, caption, size, cost and
whether it is drawn once per problem. Adding a figure is one entry in ``FIGURES``.

:func:`draw` writes a set of figures for a results directory, in worker processes when there
are several cores; :func:`render` returns them as matplotlib Figures without writing anything.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from optzoo import _pool
from optzoo.errors import ConfigError
from optzoo.report.data import ReportData, load
from optzoo.report.figures import curves, landscape, points
from optzoo.report.style import FIGURES_DIR, STYLE, save, slug


@dataclass(frozen=True)
class FigureSpec:
    """One figure of the report.

    ``draw(data, job)`` returns the Figure, or None when the data has nothing to show.
    ``size`` (inches) is for single-panel layouts; panel grids take theirs from
    ``style.figure_size``. ``cost``: seconds to draw one file on the quick suite (measured), to
    start the longest first. ``per_problem``: the problems that get a file each
    (``<name>_<problem>.png``); None for one file. ``compared``: drawn only beside a second
    results directory.
    """

    name: str
    draw: Callable[[ReportData, Job], Figure | None]
    caption: str
    cost: float
    size: tuple[float, float] | None = None
    per_problem: Callable[[ReportData], list[str]] | None = None
    compared: bool = False


@dataclass(frozen=True)
class Job:
    """One file to draw: a figure, for one problem where it has a file per problem, beside a
    second results directory where it compares two."""

    spec: FigureSpec
    problem: str | None = None
    other: Path | None = None

    @property
    def stem(self) -> str:
        """The file name without its extension."""
        return self.spec.name if self.problem is None else f"{self.spec.name}_{slug(self.problem)}"


FIGURES: dict[str, FigureSpec] = {
    s.name: s
    for s in (
        FigureSpec(
            "contour",
            landscape.contours,
            "Contours of a 2-D problem (log-spaced levels of f - min f; plateaus: of max f - f; "
            "saddle problems: linear levels of f) with each optimizer's trajectory from the "
            "default start at its best setting, one panel per optimizer family; stars: minima, "
            "crosses: saddles.",
            cost=1.5,
            per_problem=landscape.two_d,
        ),
        FigureSpec(
            "convergence",
            curves.convergence,
            "f - f* (or f) against gradient evaluations: median over starts with the "
            "interquartile band, each optimizer at its best learning rate per problem.",
            cost=3.5,
        ),
        FigureSpec(
            "ecdf",
            curves.ecdf,
            "Runtime ECDF per category (COCO): the share of (run, target) pairs reached within a "
            "budget of gradient evaluations, at the best learning rate per problem; x: largest "
            "budget.",
            cost=1.8,
        ),
        FigureSpec(
            "profile",
            curves.profile,
            "Dolan-More performance profile over all problems: the share of problems an "
            "optimizer solves within a factor tau of the best aRT.",
            cost=0.5,
            size=(8.2, 4.4),
        ),
        FigureSpec(
            "basins",
            landscape.basins,
            "Basins of attraction: each start of a grid over the box (the suite's basin_grid "
            "squared; else the reported starts) coloured by the minimizer its run ended near "
            "(or saddle, escaped, solved elsewhere, diverged, other), each optimizer at its "
            "chosen setting; "
            "optimizers with identical maps share a panel.",
            cost=1.3,
            per_problem=landscape.basin_problems,
        ),
        FigureSpec(
            "lr_sensitivity",
            curves.lr_sensitivity,
            "Success rate against learning rate per optimizer, one panel per category; the "
            "hollow marker is the default learning rate.",
            cost=2.2,
        ),
        FigureSpec(
            "cliff",
            points.cliff,
            "Cliffs (with --compare): median largest step and divergence rate per optimizer "
            "over the whole learning-rate grid, with and without gradient clipping.",
            cost=1.0,
            size=(10.0, 4.2),
            compared=True,
        ),
        FigureSpec(
            "critical_points",
            points.critical_points,
            "Critical points found: final loss against the minimum ratio (share of positive "
            "Hessian eigenvalues), and the eigenvalue histogram of a typical end point.",
            cost=1.0,
            size=(10.0, 4.2),
        ),
    )
}


def spec(name: str) -> FigureSpec:
    """The figure called ``name``; an unknown name is a ConfigError listing the known ones."""
    if name not in FIGURES:
        raise ConfigError(f"unknown figure {name!r}; allowed: {', '.join(sorted(FIGURES))}")
    return FIGURES[name]


def jobs(
    an: ReportData, names: Sequence[str] | None = None, compare: str | Path | None = None
) -> list[Job]:
    """The files to draw for ``names`` (default: every figure), in registry order. A compared
    figure is drawn only with ``compare``, a second results directory."""
    out = []
    for name in FIGURES if names is None else names:
        s = spec(name)
        if s.compared and compare is None:
            continue
        other = Path(compare) if s.compared else None
        problems = [None] if s.per_problem is None else s.per_problem(an)
        out += [Job(s, p, other) for p in problems]
    return out


def draw_job(an: ReportData, job: Job) -> Figure | None:
    """Draw one job under the report's matplotlib style; None when there is nothing to show."""
    with matplotlib.rc_context(STYLE):
        return job.spec.draw(an, job)


def render(data: ReportData | str | Path, name: str) -> list[Figure]:
    """Every matplotlib Figure of the figure ``name`` (one per problem where it has one per
    problem) for a results directory, drawn and not written; empty when there is nothing to
    show. A compared figure (cliff) is drawn for this directory alone."""
    s = spec(name)
    an = load(data)
    problems = [None] if s.per_problem is None else s.per_problem(an)
    figs = (draw_job(an, Job(s, p)) for p in problems)
    return [f for f in figs if f is not None]


def _draw_one(an: ReportData, job: Job, outdir: Path) -> list[Path]:
    with matplotlib.rc_context(STYLE):  # ticks are made when the figure is saved
        fig = job.spec.draw(an, job)
        return [] if fig is None else [save(fig, outdir, job.stem)]


def draw(
    data: ReportData | str | Path,
    names: Sequence[str] | None = None,
    outdir: str | Path | None = None,
    compare: str | Path | None = None,
    workers: int | None = None,
    meanwhile: Callable[[], object] | None = None,
) -> list[Path]:
    """Draw the figures ``names`` (default: all) of a results directory into ``outdir``
    (default: its ``figures/``); returns the files written, in registry order.

    With ``workers`` > 1 (default: one per core) this process and ``workers - 1`` forked ones
    draw, each taking the next file, longest first; the forked ones start with the loaded runs
    and statistics in memory. ``meanwhile`` is other work for this process (the report writes
    its tables) done while the others start drawing. The files are the same either way.
    """
    an = load(data)
    out = Path(outdir) if outdir is not None else an.root / FIGURES_DIR
    todo = jobs(an, names, compare)
    workers = min(_pool.cores() if workers is None else workers, len(todo))
    if workers < 2 or "fork" not in mp.get_all_start_methods():
        if meanwhile is not None:
            meanwhile()
        return [p for j in todo for p in _draw_one(an, j, out)]
    _ = (an.traces, an.paths, an.stats, an.best)  # computed once here, inherited by the workers
    return _draw_forked(an, todo, out, workers, meanwhile)


def _draw_forked(
    an: ReportData,
    todo: list[Job],
    outdir: Path,
    workers: int,
    meanwhile: Callable[[], object] | None,
) -> list[Path]:
    """Draw ``todo`` here and in ``workers - 1`` forked processes, which take the next job from
    a shared counter and inherit ``an`` through the fork (nothing big is pickled)."""
    ctx = mp.get_context("fork")
    order = sorted(range(len(todo)), key=lambda i: -todo[i].spec.cost)
    claimed = ctx.Value("i", 0)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(an, todo, order, outdir, claimed, results, os.getpid()),
            daemon=True,
        )
        for _ in range(workers - 1)
    ]
    done: dict[int, list[Path]] = {}
    try:
        for p in procs:
            p.start()
        if meanwhile is not None:
            meanwhile()
        for i in _claim(claimed, order):
            done[i] = _draw_one(an, todo[i], outdir)
        while len(done) < len(todo):
            try:
                i, paths, error = results.get(timeout=0.5)
            except queue.Empty:
                if not any(p.is_alive() for p in procs) and results.empty():
                    raise RuntimeError("a figure worker stopped before its work was done") from None
                continue
            if error is not None:
                raise RuntimeError(f"drawing {todo[i].stem} failed: {error}")
            done[i] = [Path(p) for p in paths]
    finally:
        for p in procs:
            if p.is_alive() and len(done) < len(todo):
                p.terminate()
            p.join()
    return [p for i in range(len(todo)) for p in done[i]]


def _claim(claimed, order: list[int]) -> Iterator[int]:
    """The jobs, in ``order``, that this process takes from the counter shared by all."""
    while True:
        with claimed.get_lock():
            k = claimed.value
            claimed.value += 1
        if k >= len(order):
            return
        yield order[k]


def _worker(an, todo, order, outdir, claimed, results, parent) -> None:
    """Draw jobs until none is left, reporting ``(job, paths, error)`` for each."""
    # As the pool's workers do: Ctrl-C is the parent's to handle, SIGTERM ends us, the parent's
    # death (even by SIGKILL) too, and the parent's store locks are not ours.
    _pool.init_worker(None, parent)
    for i in _claim(claimed, order):
        try:
            results.put((i, [str(p) for p in _draw_one(an, todo[i], outdir)], None))
        except Exception as e:  # reported to the parent, which raises it
            results.put((i, [], f"{type(e).__name__}: {e}"))
            return
