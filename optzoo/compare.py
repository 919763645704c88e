"""Compare optimizers on a loss in one call: ``optzoo.compare(loss, optimizers, ...)``.

``compare`` turns a loss (a :class:`~optzoo.problems.Problem`, a problem name such as
``"rosenbrock[dim=10]"``, ``"module:attr"`` or ``"file.py:attr"``, a batched callable, or an
``nn.Module`` with data) and optimizers (zoo names, ``torch.optim.Optimizer`` classes,
``"package.module:Class"``, each with hyperparameters or grids) into a one-problem suite, runs
it through the same harness and store as ``python -m optzoo.bench``, and returns a
:class:`Comparison`: the runs, COCO tables as DataFrames, and figures as matplotlib Figures.

``run`` is the checked public entry for a whole suite (a :class:`~optzoo.config.Suite`, which may
hold Problem objects, a TOML path, or a shipped suite's name); it is :func:`optzoo.runner.run`.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
import types
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from optzoo import catalog, config
from optzoo.config import OptimizerSpec, ProblemSpec, Suite
from optzoo.errors import ConfigError
from optzoo.runner import Results, run
from optzoo.store import safe_name

# Suite fields that compare() passes through as keyword options.
SUITE_OPTIONS = {f.name for f in dataclasses.fields(Suite)} - {
    "name",
    "problems",
    "optimizers",
    "steps",
    "evals",
    "starts",
    "seeds",
}
TABLES = ("convergence", "categories", "landscape", "timing")


def _problem(
    loss: Any,
    x0: Any,
    data: Any,
    loss_fn: Any,
    batch_size: int | None,
    fields: dict,
) -> Any:
    """The loss as a ProblemSpec (a registered problem) or a Problem."""
    import torch

    from optzoo import problems
    from optzoo.problems import Problem

    if isinstance(loss, Problem):
        changes = {**fields, **({"x0": x0} if x0 is not None else {})}
        return dataclasses.replace(loss, **changes) if changes else loss
    if isinstance(loss, str):
        if ":" in loss:
            return problems.load(loss, x0=x0, **fields)
        name, params = catalog.parse_item(loss)
        if x0 is not None or fields:
            return dataclasses.replace(problems.get(name, **params), **fields, x0=x0)
        spec = ProblemSpec(name, params)
        config._validate_problem(spec)
        return spec
    if isinstance(loss, torch.nn.Module):
        if data is None:
            raise ConfigError("compare: an nn.Module loss needs data=(X, Y)")
        fn = loss_fn if loss_fn is not None else torch.nn.functional.mse_loss
        return problems.from_module(loss, fn, data, batch_size=batch_size, **fields)
    if callable(loss):
        if x0 is None:
            raise ConfigError("compare: x0 is needed for a loss callable (its start point)")
        return Problem(fn=loss, x0=x0, **fields)
    raise ConfigError(
        f"compare: loss must be a Problem, a problem name, 'module:attr', a callable or an "
        f"nn.Module, got {type(loss).__name__}"
    )


def _optimizers(optimizers: Any) -> tuple[OptimizerSpec, ...]:
    if isinstance(optimizers, str | type):
        optimizers = {optimizers: {}}
    elif isinstance(optimizers, Sequence):
        optimizers = {o: {} for o in optimizers}
    if not isinstance(optimizers, Mapping) or not optimizers:
        raise ConfigError(
            "compare: optimizers must be a non-empty dict {name or class: hyperparameters}, a "
            f"list of names or classes, or one name, got {optimizers!r}"
        )
    specs = []
    for target, hp in optimizers.items():
        if hp is not None and not isinstance(hp, Mapping):
            raise ConfigError(
                f"compare: the hyperparameters of {target!r} must be a dict, got {hp!r}"
            )
        label = None
        if isinstance(target, str):
            item = target
            target, extra = catalog.parse_item(item)
            hp = {**extra, **(hp or {})}
            label = catalog.item_label(item) if extra else None  # as the command line does
        specs.append(config.optimizer_spec(target, dict(hp or {}), label=label))
    keys = [s.key for s in specs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"compare: optimizer {twice[0]} is given twice")
    return tuple(specs)


def compare(
    loss: Any,
    optimizers: Any,
    *,
    x0: Any = None,
    steps: int = 500,
    evals: int = 0,
    starts: int = 8,
    seeds: int = 1,
    out: str | Path | None = None,
    name: str | None = None,
    bounds: Any = None,
    f_star: float | None = None,
    data: Any = None,
    loss_fn: Any = None,
    batch_size: int | None = None,
    workers: int = 1,
    progress: bool = False,
    force: bool = False,
    **options: Any,
) -> Comparison:
    """Run every optimizer on ``loss`` from ``starts`` random starts besides x0; return the results.

    ``optimizers`` maps each optimizer (a zoo name, optionally ``name[key=value]``, a class, or
    ``"package.module:Class"``) to its hyperparameters; a list is a grid, and the default lr is
    always added to the lr grid. ``options`` are further :class:`Suite` fields (``clip_norm``,
    ``noise_std``, ``schedule``, ``grad_tol``, ...). ``out=None`` writes to a temporary directory
    removed with the returned object. An nn.Module loss takes ``data=(X, Y)`` and ``loss_fn``
    (default: mean squared error); ``batch_size`` gives it mini-batches.
    """
    unknown = sorted(set(options) - SUITE_OPTIONS)
    if unknown:
        raise ConfigError(
            f"compare: unknown argument {unknown[0]!r}; allowed: x0, steps, evals, starts, seeds, "
            f"out, name, bounds, f_star, data, loss_fn, batch_size, workers, progress, force, "
            f"{', '.join(sorted(SUITE_OPTIONS))}"
        )
    fields = {
        k: v for k, v in (("bounds", bounds), ("f_star", f_star)) if v is not None
    }  # fmt: skip
    if name is not None and not isinstance(loss, str | ProblemSpec):
        fields["name"] = name
    problem = _problem(loss, x0, data, loss_fn, batch_size, fields)
    specs = _optimizers(optimizers)
    key = problem.key if isinstance(problem, ProblemSpec) else problem.name
    suite = Suite(
        name=safe_name(name or key),
        problems=(problem,),
        optimizers=specs,
        steps=steps,
        evals=evals,
        starts=starts,
        seeds=seeds,
        **options,
    )
    tmp = out is None
    root = Path(tempfile.mkdtemp(prefix="optzoo-compare-")) if tmp else Path(out)
    try:
        res = run(suite, root, force=force, progress=progress, workers=workers)
    except BaseException:
        if tmp:
            shutil.rmtree(root, ignore_errors=True)
        raise
    cmp = Comparison(res.root)
    if tmp:
        weakref.finalize(cmp, shutil.rmtree, root, True)
    return cmp


class Comparison(Results):
    """The results of :func:`compare`: ``runs``, ``traces``, ``table()`` and ``plot()``."""

    def table(self, name: str = "convergence") -> pd.DataFrame:
        """A results table as a DataFrame; by default one row per problem x optimizer at its
        best hyperparameters, with COCO's columns (success rate, aRT, quartiles of steps,
        evaluations and f). ``name``: one of ``TABLES``."""
        from optzoo import report

        if name not in TABLES:
            raise ConfigError(f"table: unknown {name!r}; allowed: {', '.join(TABLES)}")
        return getattr(report, f"{name}_table")(self.root)

    def plot(self, kind: str = "convergence"):
        """A report figure as a matplotlib Figure (a list of them where there is one per problem).

        ``kind``: one of the report's figures (``optzoo.report.FIGURES``: convergence, contour or
        contours, ecdf, profile, basins, lr_sensitivity, cliff, critical_points). Nothing is
        written to disk.
        """
        from optzoo import report

        figs = report.render(self.root, {"contours": "contour"}.get(kind, kind))
        if not figs:
            raise ConfigError(f"plot: these results have no {kind!r} figure (e.g. not 2-D)")
        return figs[0] if len(figs) == 1 else figs

    def __repr__(self) -> str:
        t = self.table()
        cols = ["problem", "optimizer", "lr", "success_rate", "art", "f_best_q50"]
        return f"{super().__repr__()}\n{t[cols].to_string(index=False)}"


class _CallableModule(types.ModuleType):
    """``optzoo.compare(...)`` calls :func:`compare` even where ``optzoo.compare`` is this module
    (importing a submodule binds it on the package, over the lazily loaded function)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Comparison:
        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["TABLES", "Comparison", "compare", "run", "safe_name"]
