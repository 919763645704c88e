"""The command line: ``python -m optzoo.bench``.

With no arguments it runs the default suite (configs/default.toml) into runs/default/, writes
the tables and figures there, and prints a summary. Exit codes: 0 success, 2 a user error (one
line on stderr, nothing written), 1 an internal error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from optzoo.errors import ConfigError

EXIT_OK, EXIT_INTERNAL, EXIT_USER = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other user error
        raise ConfigError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m optzoo.bench",
        description="Run every optimizer of a suite on every problem and write tables and figures.",
    )
    p.add_argument("--config", help="suite file (TOML); default: configs/default.toml")
    p.add_argument(
        "--out",
        help="results directory; default: runs/<suite name> (git-ignored); "
        "--out results/default rewrites the published copy",
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
        help="a custom loss, module:attr or path/to/file.py:attr: a Problem, a loss or a factory",
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
    return p


def _whole(flag: str, v: str | None, lo: int) -> int | None:
    if v is None:
        return None
    try:
        n = int(v)
    except ValueError:
        raise ConfigError(f"{flag} must be a whole number >= {lo}, got {v!r}") from None
    if n < lo:
        raise ConfigError(f"{flag} must be a whole number >= {lo}, got {v!r}")
    return n


def _floats(flag: str, v: str) -> list[float]:
    try:
        return [float(a) for a in v.split(",")]
    except ValueError:
        raise ConfigError(f"{flag} must be comma-separated numbers, got {v!r}") from None


def prepare(args: argparse.Namespace):
    """Everything a run needs, validated; nothing is written. Returns (suite, custom, out)."""
    import torch

    from optzoo import catalog, config, problems
    from optzoo.store import safe_name

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
        suite, _whole("--steps", args.steps, 1), _whole("--evals", args.evals, 0)
    )
    if budget_suite is not suite:
        changed.update(steps=budget_suite.steps, evals=budget_suite.evals)
    args.budget_note = note
    for flag, key, lo in (("--starts", "starts", 0), ("--seeds", "seeds", 1)):
        n = _whole(flag, getattr(args, key), lo)
        if n is not None:
            changed[key] = n
    if args.device is not None:
        if args.device not in config.DEVICES:
            raise ConfigError(
                f"--device: unknown {args.device!r}; allowed: {', '.join(config.DEVICES)}"
            )
        if args.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available here; use --device cpu")
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

    custom = None
    if args.problem and args.expr:
        raise ConfigError("give either --problem or --expr, not both")
    kw = {}
    if args.x0 is not None:
        kw["x0"] = _floats("--x0", args.x0)
    if args.f_star is not None:
        kw["f_star"] = _floats("--f-star", args.f_star)[0]
    if args.bounds is not None:
        b = _floats("--bounds", args.bounds)
        if len(b) != 2:
            raise ConfigError(f"--bounds takes lo,hi, got {args.bounds!r}")
        kw["bounds"] = b
    if args.problem:
        custom = problems.load(args.problem, **kw)
    elif args.expr:
        custom = problems.from_expression(args.expr, **kw)
    elif kw:
        raise ConfigError("--x0, --f-star and --bounds go with --problem or --expr")
    if custom is not None:
        # The suite is what runs: its manifest and README then describe the custom loss alone.
        suite = suite.replace(problems=(custom,), name=safe_name(f"custom-{custom.name}"))

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

    # Runs go to runs/ (git-ignored); results/ holds only what is published with --out.
    if args.out:
        out = Path(args.out)
    elif custom is not None:
        out = Path("runs") / safe_name(f"custom-{custom.name}")
    elif changed:
        # A modified suite never lands on the runs of the unmodified one.
        out = Path("runs") / safe_name(f"{suite.name}-{suite.digest()[:8]}")
    else:
        out = Path("runs") / safe_name(suite.name)
    return suite, custom, out


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
    parser = build_parser()
    argv = _glue_negative_values(list(sys.argv[1:] if argv is None else argv))
    try:
        args = parser.parse_args(argv)
        from optzoo import catalog

        if args.list:
            print(catalog.listing())
            return EXIT_OK
        suite, custom, out = prepare(args)
        if args.budget_note and not args.quiet:
            print(f"optzoo: {args.budget_note}", file=sys.stderr)
        from optzoo import _pool

        _pool.keep_freed_memory()  # workers are forked from here and inherit it
        from optzoo.harness import cells, run_suite

        # Claiming the directory is the first write; a refusal there is still a user error.
        t0 = time.perf_counter()
        n = len(cells(suite, custom))
        if not args.quiet:
            print(f"optzoo: suite {suite.name!r}: {n} cells -> {out}", file=sys.stderr)
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
    except ConfigError as e:
        print(f"optzoo.bench: error: {e}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print(
            "optzoo.bench: interrupted; finished cells are kept, rerun to resume", file=sys.stderr
        )
        return 130
    t_report = 0.0
    if args.report and store.finished_cells():
        from optzoo import report

        t_report = time.perf_counter()
        if not args.quiet:
            print(f"optzoo: writing tables and figures into {out} ...", file=sys.stderr)
        try:
            report.write(out, workers=args.workers)
            t_report = time.perf_counter() - t_report
            if not args.quiet:
                print(report.summary(out))
        except ConfigError as e:
            print(f"optzoo.bench: error: {e}", file=sys.stderr)
            return EXIT_USER
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


if __name__ == "__main__":
    sys.exit(main())
