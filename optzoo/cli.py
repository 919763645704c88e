"""The command line: ``python -m optzoo.bench`` (its ``main``; ``optzoo/bench.py`` only starts it).

With no arguments it runs the default suite (configs/default.toml) into runs/default/ under the
working directory, writes the tables and figures there, and prints a summary. Exit codes: 0
success; 2 a user or environment error (bad input, a directory in use, a damaged store, a
read-only directory, a full disk): one line on stderr, and for bad input nothing written; 1 a
failed cell or an internal error; 130 Ctrl-C; 143 SIGTERM. ``--debug`` adds the traceback.

``--problem module:attr`` imports that module, which runs its code, before anything else is
checked: give it only code you trust.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from optzoo.errors import ConfigError

EXIT_OK, EXIT_INTERNAL, EXIT_USER = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM
MAX_STEPS = 10**9  # steps per run: counts and trace positions stay far inside int64
MAX_COUNT = 10**7  # starts or seeds


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other user error
        raise ConfigError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m optzoo.bench",
        description="Run every optimizer of a suite on every problem and write tables and figures.",
        epilog="--problem imports the module you name, which runs its code: use only code you "
        "trust. Results go to runs/<name>/ under the working directory unless --out is given.",
    )
    p.add_argument("--config", help="suite file (TOML); default: configs/default.toml")
    p.add_argument(
        "--out",
        help="results directory; default: runs/<suite or --name> (git-ignored); "
        "--out results/default rewrites the published copy",
    )
    p.add_argument(
        "--name", help="name of an --expr or --problem run (its directory under runs/ and tables)"
    )
    p.add_argument(
        "--optimizers",
        help="comma-separated optimizers to keep (or add): zoo names, name[key=value,...] "
        "(a [list] is a grid), or any torch.optim.Optimizer as package.module:Class",
    )
    p.add_argument(
        "--problems", help="comma-separated problems to keep (or add), e.g. rosenbrock[dim=10]"
    )
    p.add_argument(
        "--problem",
        metavar="MODULE:ATTR",
        help="a custom loss, module:attr or path/to/file.py:attr: a Problem, a loss or a factory "
        "(imports and runs that code)",
    )
    p.add_argument(
        "--list", action="store_true", help="list optimizers, problems and suites, and exit"
    )
    p.add_argument("--x0", help="start point for a bare callable, e.g. 1.0,-0.5")
    p.add_argument("--f-star", dest="f_star", help="the custom loss's minimum value, if known")
    p.add_argument("--bounds", help="box for starts and plots, every coordinate: lo,hi")
    p.add_argument(
        "--expr",
        help='a loss as an expression, e.g. "(1-x)**2 + 100*(y-x**2)**2": numbers, + - * / **, '
        "abs cos exp log sin sqrt tanh, pi; the other names are the variables, coordinate i "
        "being the i-th in natural order (x, y; x1, x2, ..., x10); --x0 gives them in that order",
    )
    p.add_argument(
        "--steps", help="step budget per run; alone, it replaces the suite's evaluation budget"
    )
    p.add_argument("--evals", help="gradient-evaluation budget per run (0: none)")
    p.add_argument("--starts", help="random starts per problem, besides its x0")
    p.add_argument("--seeds", help="seeds per start")
    p.add_argument("--device", help="cpu or cuda")
    p.add_argument("--dtype", help="float32 or float64")
    p.add_argument(
        "--force", action="store_true", help="replace results of a different suite in --out"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    p.add_argument("--executor", default="local", help="local (default) or ray")
    p.add_argument(
        "--ray-address", dest="ray_address", help="Ray address; default: $RAY_ADDRESS, else local"
    )
    p.add_argument(
        "--chunk-runs", dest="chunk_runs", help="with ray: split cells with more runs than this"
    )
    p.add_argument(
        "--workers",
        help="processes running cells and drawing figures (default: one per core; 1 = none)",
    )
    p.add_argument(
        "--no-report", dest="report", action="store_false", help="skip tables and figures"
    )
    p.add_argument(
        "--max-memory",
        dest="max_memory",
        help="refuse a cell estimated to need more memory than this, e.g. 4G "
        "(default: the memory available now)",
    )
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return p


def _whole(flag: str, v: str | None, lo: int, hi: int = MAX_COUNT) -> int | None:
    if v is None:
        return None
    try:
        n = int(v)
    except ValueError:
        n = None
    if n is None or not lo <= n <= hi:
        raise ConfigError(f"{flag} must be a whole number from {lo} to {hi:,}, got {v[:40]!r}")
    return n


def _floats(flag: str, v: str, n: int | None = None) -> list[float]:
    """Comma-separated finite numbers (exactly ``n`` of them when given)."""
    try:
        vals = [float(a) for a in v.split(",")]
    except ValueError:
        vals = []
    if not vals or not all(math.isfinite(a) for a in vals):
        raise ConfigError(f"{flag} must be comma-separated finite numbers, got {v[:40]!r}")
    if n is not None and len(vals) != n:
        want = "one number" if n == 1 else f"{n} numbers"
        raise ConfigError(f"{flag} takes {want}, got {len(vals)}: {v[:40]!r}")
    return vals


def prepare(args: argparse.Namespace):
    """Everything a run needs, validated; nothing is written. Returns (suite, custom, out)."""
    from optzoo import catalog, config, runtime, store

    path = Path(args.config) if args.config else config.configs_dir() / "default.toml"
    if (
        args.config
        and not path.exists()
        and (config.configs_dir() / f"{args.config}.toml").exists()
    ):
        path = config.configs_dir() / f"{args.config}.toml"  # a shipped suite by its name
    suite = config.load(path)
    changed = {}
    budget_suite, note = catalog.budget(
        suite,
        _whole("--steps", args.steps, 1, MAX_STEPS),
        _whole("--evals", args.evals, 0, MAX_STEPS),
    )
    if budget_suite is not suite:
        changed.update(steps=budget_suite.steps, evals=budget_suite.evals)
    args.budget_note = note
    for flag, key, lo in (("--starts", "starts", 0), ("--seeds", "seeds", 1)):
        n = _whole(flag, getattr(args, key), lo, MAX_COUNT)
        if n is not None:
            changed[key] = n
    if args.device is not None:
        config.check_device("--device", args.device)
        changed["device"] = args.device
    if args.dtype is not None:
        if args.dtype not in config.DTYPES:
            raise ConfigError(
                f"--dtype: unknown {args.dtype!r}; allowed: {', '.join(config.DTYPES)}"
            )
        changed["dtype"] = args.dtype
    if args.optimizers is not None:
        changed["optimizers"] = catalog.optimizer_specs(args.optimizers, suite)
    if args.problems is not None:
        changed["problems"] = catalog.problem_specs(args.problems, suite)
    if changed:
        suite = suite.replace(**changed)

    custom = _custom_problem(args)
    run_name = None
    if custom is not None:
        # The suite is what runs: its manifest and README then describe the custom loss alone.
        run_name = args.name or f"custom-{store.short_name(args.problem or args.expr)}"
        suite = suite.replace(problems=(custom,), name=store.safe_name(run_name))

    from optzoo import executors

    if args.executor not in executors.EXECUTORS:
        raise ConfigError(
            f"--executor: unknown {args.executor!r}; allowed: {', '.join(executors.EXECUTORS)}"
        )
    if args.executor == "ray":
        executors.require_ray()
    elif args.ray_address or args.chunk_runs:
        raise ConfigError("--ray-address and --chunk-runs go with --executor ray")
    if args.executor == "ray" and args.workers is not None:
        raise ConfigError("--workers goes with the local executor (Ray places its own tasks)")
    args.chunk_runs = _whole("--chunk-runs", args.chunk_runs, 1)
    args.workers = _whole("--workers", args.workers, 1)

    args.max_memory = None if args.max_memory is None else runtime.parse_bytes(args.max_memory)
    _check_sizes(suite, custom, args.max_memory)

    # Runs go to runs/ (git-ignored); results/ holds only what is published with --out.
    if args.out is not None:
        if not args.out.strip() or "\0" in args.out:
            raise ConfigError(f"--out must name a directory, got {args.out!r}")
        out = Path(args.out)
    elif custom is not None:
        out = store.default_out(run_name)
    elif changed:
        # A modified suite never lands on the results of the unmodified one.
        out = store.default_out(f"{suite.name}-{suite.digest()[:8]}")
    else:
        out = store.default_out(suite.name)
    return suite, custom, out


def _custom_problem(args: argparse.Namespace):
    """The --problem or --expr loss with --x0, --f-star, --bounds and --name, or None."""
    from optzoo import problems

    if args.problem is not None and args.expr is not None:
        raise ConfigError("give either --problem or --expr, not both")
    kw = {}
    if args.x0 is not None:
        kw["x0"] = _floats("--x0", args.x0)
    if args.f_star is not None:
        kw["f_star"] = _floats("--f-star", args.f_star, n=1)[0]
    if args.bounds is not None:
        lo, hi = _floats("--bounds", args.bounds, n=2)
        if not lo < hi:
            raise ConfigError(f"--bounds takes lo,hi with lo < hi, got {args.bounds!r}")
        kw["bounds"] = [lo, hi]
    if args.name is not None:
        if not args.name.strip() or not args.name.isprintable() or len(args.name) > 200:
            raise ConfigError(
                f"--name must be 1 to 200 printable characters, got {args.name[:40]!r}"
            )
        kw["name"] = args.name
    if args.problem is not None:
        return problems.load(args.problem, **kw)
    if args.expr is not None:
        return problems.from_expression(args.expr, **kw)
    if kw:
        raise ConfigError("--x0, --f-star, --bounds and --name go with --problem or --expr")
    return None


def _check_sizes(suite, custom, limit: int | None) -> None:
    """Refuse, before anything is allocated, a cell that is too large (see optzoo.runtime)."""
    import torch

    from optzoo import optimizers, runtime
    from optzoo.harness import make_problem, problem_key, trace_steps
    from optzoo.optimizers.escape import SaddleEscape
    from optzoo.optimizers.newton import Newton

    probs = [custom] if custom is not None else list(suite.problems)
    dims = {problem_key(p): make_problem(p).dim for p in probs}
    points = len(trace_steps(suite.steps))
    for o in suite.optimizers:
        combos = runtime.grid_size(o.hp)
        runs = combos * (suite.starts + 1) * suite.seeds
        runtime.check_runs(f"optimizer {o.key}", runs)
        cls = optimizers.get_class(o.name)
        R = runtime.padded_size(runs, getattr(torch, suite.dtype), torch.device("cpu"))
        first = {k: v[0] for k, v in o.hp.items()}
        for key, d in dims.items():
            paths = combos * min(suite.paths, suite.starts + 1) * (d == 2)
            size = runtime.CellSize(R, d, suite.steps, paths, 4 if suite.dtype == "float32" else 8)
            need = runtime.peak_bytes(
                size,
                runtime.state_bytes(cls, first, R, d, suite.dtype),
                hessians=issubclass(cls, Newton | SaddleEscape),
                trace_points=points,
            )
            runtime.check_fits(f"cell {key} x {o.key} ({runs:,} runs, {d:,}-D)", need, limit)


NUMERIC_FLAGS = ("--x0", "--bounds", "--f-star")


def _glue_negative_values(argv: list[str]) -> list[str]:
    """Let ``--x0 -1.2,1`` mean ``--x0=-1.2,1``: argparse takes '-1.2,1' for an option."""
    out: list[str] = []
    it = iter(range(len(argv)))
    for i in it:
        a = argv[i]
        if (
            a in NUMERIC_FLAGS
            and i + 1 < len(argv)
            and argv[i + 1][:1] == "-"
            and argv[i + 1][1:2] in "0123456789."
        ):
            out.append(f"{a}={argv[i + 1]}")
            next(it, None)
        else:
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns its exit code (see the module docstring)."""
    from optzoo import _pool

    argv = _glue_negative_values(list(sys.argv[1:] if argv is None else argv))
    return _pool.run_command("optzoo.bench", lambda: _main(argv), debug="--debug" in argv)


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from optzoo import catalog

    if args.list:
        print(catalog.listing())
        return EXIT_OK
    suite, custom, out = prepare(args)
    if args.budget_note and not args.quiet:
        print(f"optzoo: {args.budget_note}", file=sys.stderr)
    from optzoo import runtime

    runtime.keep_freed_memory()  # workers are forked from here and inherit it
    from optzoo.runner import cells, run_suite

    t0 = time.perf_counter()
    n = len(cells(suite, custom))
    if not args.quiet:
        print(f"optzoo: suite {suite.name!r}: {n} cells -> {out}", file=sys.stderr)
    # Claiming the directory (its lock, then the manifest) is the first write; the Store holds
    # the lock until the report is written too.
    store = run_suite(
        suite,
        out,
        custom=custom,
        force=args.force,
        progress=not args.quiet,
        executor=args.executor,
        ray_address=args.ray_address,
        chunk_runs=args.chunk_runs,
        workers=args.workers,
    )
    wall = time.perf_counter() - t0
    catalog.record_command(out, argv)
    t_report = 0.0
    if args.report and store.finished_cells():
        from optzoo import report

        t_report = time.perf_counter()
        if not args.quiet:
            print(f"optzoo: writing tables and figures into {out} ...", file=sys.stderr)
        report.write(out, workers=args.workers)
        t_report = time.perf_counter() - t_report
        if not args.quiet:
            print(report.summary(out))
    store.close()
    failed = store.failed_cells()
    for cell, detail in failed.items():
        last = detail.strip().splitlines()[-1] if detail.strip() else "?"
        print(f"optzoo.bench: cell {cell} failed: {last}", file=sys.stderr)
    if failed:
        print(
            f"optzoo.bench: {len(failed)} cell(s) failed (errors in "
            f"{out / 'cells'}/*.failed.json); the others are stored; rerun to retry",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    if not args.quiet:
        took = f"{wall:.1f}s running cells"
        if args.report:
            took += f", {t_report:.1f}s writing tables and figures"
        print(f"optzoo: done: {took}; tables in {out / 'tables'}", file=sys.stderr)
    return EXIT_OK
