"""optzoo against the batched peers: JAX + optax, jaxopt, NumPy and scipy, in one run.

    python benchmarks/peers.py            # every case, a few minutes on 2 cores
    python benchmarks/peers.py --tiny     # seconds: the smallest configuration (CI, no JAX needed)

Writes ``results/benchmarks.md`` (``--out``): the machine and load, the command, the targets of
issue 20 with measured ratios and verdicts, and one table per family. Without JAX installed
(``pip install -e ".[bench]"``) the JAX and jaxopt columns are skipped with a note.

Method. Every timing is repeated ``reps`` times, the implementations interleaved within each
repetition (so a burst of load on the shared machine hits all of them), and the median is
reported. JAX's compile time (``jit(...).lower(...).compile()``) is reported apart and is not
in its throughput. Everything runs on one thread (torch's intra-op pool and XLA's Eigen pool),
in float64, from the same starts; the final iterates of the implementations are compared.

- Adam (lr 1e-2), 2-D Rosenbrock at R = 1e2, 1e4, 1e5 and a 100-D rotated quadratic (condition
  1e3, optzoo's ``ellipsoid``) at R = 1e3: optzoo's bare step (``opt.step`` through the counted
  oracle), optzoo's harness (``run_cell`` whole: bookkeeping, records, end points), JAX
  (``jit(vmap(lax.scan(optax.adam step)))`` with ``jax.grad``), NumPy (Adam in place with the
  analytic gradient). Unit: million point-steps per second (runs x steps / s).
- Newton (plain, lr 1): the same problems; JAX with ``jax.hessian`` and ``jnp.linalg.solve``.
- L-BFGS (history 10, strong Wolfe), 2-D Rosenbrock, R = 1e4 from the box: optzoo's harness with
  the suite's settings (``configs/default.toml``) run to |g| <= 1e-7, jaxopt's ``LBFGS``
  (zoom line search, tol 1e-7) under ``vmap``, and scipy's L-BFGS-B per run (a sample, scaled).
  Unit: runs per second, and the share of runs that end with |g| <= 1e-7.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import tomllib

# One thread for XLA too; set before jax is imported anywhere.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "benchmarks"):  # runnable from a fresh clone, without installing
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import peers_jax  # noqa: E402  (after sys.path; it imports jax lazily)
import torch  # noqa: E402
from _timing import bare_steps, fused_steps, interleaved, numpy_adam  # noqa: E402
from speed import _load, log, machine, md_table, write_report  # noqa: E402

from optzoo import _pool, problems  # noqa: E402
from optzoo.config import OptimizerSpec, Suite  # noqa: E402
from optzoo.harness import run_cell  # noqa: E402


@dataclass(frozen=True)
class Case:
    """One benchmark case: a problem at a batch size, and how many steps a timing takes."""

    label: str
    problem: str
    params: dict
    R: int
    steps: int  # first-order steps per timing (0: not run)
    newton_steps: int  # Newton steps per timing (0: not run)


# Sized to finish in about 10 minutes on the shared 2-core machine; every compile (optzoo's fused
# programs, JAX's, jaxopt's: seconds to a minute each under load) is outside the timings.
FULL = {
    "reps": 3,
    "cases": (
        Case("2-D Rosenbrock", "rosenbrock", {"dim": 2}, 100, 1000, 50),
        Case("2-D Rosenbrock", "rosenbrock", {"dim": 2}, 10_000, 100, 20),
        Case("2-D Rosenbrock", "rosenbrock", {"dim": 2}, 100_000, 20, 0),
        Case("100-D rotated quadratic", "ellipsoid", {"dim": 100, "cond": 1e3}, 1_000, 10, 0),
        Case("100-D rotated quadratic", "ellipsoid", {"dim": 100, "cond": 1e3}, 100, 0, 5),
    ),
    "fused_K": (1, 10),
    "lbfgs_R": 10_000,
    "lbfgs_steps": 100,
    "lbfgs_reps": 3,
    "scipy_sample": 50,
}
TINY = {
    "reps": 2,
    "cases": (
        Case("2-D Rosenbrock", "rosenbrock", {"dim": 2}, 100, 20, 5),
        Case("10-D rotated quadratic", "ellipsoid", {"dim": 10, "cond": 1e3}, 16, 5, 3),
    ),
    "fused_K": (5,),
    "lbfgs_R": 64,
    "lbfgs_steps": 100,
    "lbfgs_reps": 1,
    "scipy_sample": 8,
}
ADAM_LR = 1e-2
# Every run takes every step: the throughput is runs x steps.
NO_STOP = {"stop_on_success": False, "evals": 0}
GTOL = 1e-7
# optzoo's L-BFGS runs take every step (as jaxopt's under vmap, whose loop runs until its slowest
# run stops): the harness's stall test (grad_tol) reads the last gradient the oracle computed,
# which for L-BFGS is at the new point, and then freezes the run at the old one.


def suite_lbfgs() -> dict:
    """The ``lbfgs`` settings of the published suite (configs/default.toml), its fixed ones: a
    tuned axis (the suite's lr grid) is left at the optimizer's default."""
    cfg = tomllib.loads((ROOT / "configs" / "default.toml").read_text())
    spec = next(o for o in cfg["optimizers"] if o["name"] == "lbfgs")
    return {k: v for k, v in spec.items() if k != "name" and not isinstance(v, dict | list)}


def starts(problem, R: int) -> torch.Tensor:
    """x0 then seeded samples from the box: the harness's own starts for a cell of R runs."""
    from optzoo.harness import stable_seed

    rest = problem.sample_starts(R - 1, seed=stable_seed(0, problem.name))
    return torch.cat([problem.x0.reshape(1, -1), rest])


# -- optzoo ------------------------------------------------------------------------------------
def optzoo_harness(name: str, hp: dict, problem, R: int, steps: int, **suite_kw):
    """Seconds for ``run_cell`` on R runs (the harness's starts), and its run records."""
    suite = Suite(name="peers", problems=(), optimizers=(), steps=steps, starts=R - 1, **suite_kw)
    spec = OptimizerSpec(name, {k: [v] for k, v in hp.items()})
    t0 = time.perf_counter()
    res = run_cell(suite, problem, spec)
    return time.perf_counter() - t0, res.runs


# -- NumPy -------------------------------------------------------------------------------------
def numpy_fg(problem) -> Callable[[np.ndarray], np.ndarray]:
    """The analytic gradient in NumPy (BLAS for the rotation)."""
    if problem.name == "rosenbrock":

        def g_rosen(x: np.ndarray) -> np.ndarray:
            a, b = x[:, :-1], x[:, 1:]
            u = b - a * a
            g = np.zeros_like(x)
            g[:, :-1] = -400.0 * a * u - 2.0 * (1.0 - a)
            g[:, 1:] += 200.0 * u
            return g

        return g_rosen
    Q, lam = ellipsoid_parts(problem)
    A = (Q * lam) @ Q.T  # the Hessian: grad = x A

    return lambda x: x @ A


def ellipsoid_parts(problem) -> tuple[np.ndarray, np.ndarray]:
    """Q and lambda of optzoo's ellipsoid (f = 1/2 sum lambda_i (x Q)_i^2), rebuilt as it does."""
    kw = problem.fn.keywords
    return kw["Q"].numpy(), kw["lam"].numpy()


# -- timing ------------------------------------------------------------------------------------
def max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


def first_order(cfg: dict, jx, log) -> pd.DataFrame:
    rows = []
    for c in cfg["cases"]:
        if not c.steps:
            continue
        problem = problems.get(c.problem, **c.params)
        x0 = starts(problem, c.R).to(torch.float64)
        log(f"adam: {c.label}, R={c.R:,}, {c.steps} steps")
        # The harness hands a rule its float hyperparameters as tensors (equal values as one
        # element) so that a batch rounds alike whatever its composition; the bare step does the
        # same, so the two compute the same runs and differ only by the harness's bookkeeping.
        lr = torch.tensor([ADAM_LR], dtype=torch.float64)
        fns = {
            "bare": partial(bare_steps, "adam", {"lr": lr}, problem, x0, c.steps),
            "harness": partial(
                optzoo_harness, "adam", {"lr": ADAM_LR}, problem, c.R, c.steps, **NO_STOP
            ),
            "numpy": partial(numpy_adam, numpy_fg(problem), x0.numpy(), c.steps, ADAM_LR),
        }
        fused_compile = {}
        for K in cfg["fused_K"]:
            t0 = time.perf_counter()
            fused_steps("adam", {"lr": lr}, problem, x0, K, K)  # compiles
            fused_compile[K] = time.perf_counter() - t0
            fns[f"fused K={K}"] = partial(fused_steps, "adam", {"lr": lr}, problem, x0, c.steps, K)
        compile_s = float("nan")
        if jx is not None:
            run, compile_s = jx.adam(problem, x0.numpy(), c.steps, ADAM_LR)
            fns["jax"] = run
        res = interleaved(fns, cfg["reps"])
        ps = c.R * c.steps / 1e6
        x_bare = res["bare"][1]
        x_harness = np.stack(res["harness"][1]["x_final"].to_numpy())
        row = {
            "case": f"{c.label}, R={c.R:,}",
            "steps": c.steps,
            "bare Mpt/s": ps / res["bare"][0],
            **{f"fused K={K} Mpt/s": ps / res[f"fused K={K}"][0] for K in cfg["fused_K"]},
            "harness Mpt/s": ps / res["harness"][0],
            "NumPy Mpt/s": ps / res["numpy"][0],
            "JAX Mpt/s": ps / res["jax"][0] if "jax" in res else float("nan"),
            "JAX compile s": compile_s,
            "fused compile s": max(fused_compile.values()),
            "x diff harness-bare": max_diff(x_harness, x_bare),
            "x diff fused": max(max_diff(res[f"fused K={K}"][1], x_bare) for K in cfg["fused_K"]),
            "x diff NumPy": max_diff(res["numpy"][1], x_bare),
            "x diff JAX": max_diff(res["jax"][1], x_bare) if "jax" in res else float("nan"),
        }
        rows.append(row)
    return pd.DataFrame(rows)


def newton(cfg: dict, jx, log) -> pd.DataFrame:
    rows = []
    for c in cfg["cases"]:
        if not c.newton_steps:
            continue
        problem = problems.get(c.problem, **c.params)
        x0 = starts(problem, c.R).to(torch.float64)
        log(f"newton: {c.label}, R={c.R:,}, {c.newton_steps} steps")
        fns = {"bare": partial(bare_steps, "newton", {}, problem, x0, c.newton_steps)}
        compile_s = float("nan")
        if jx is not None:
            run, compile_s = jx.newton(problem, x0.numpy(), c.newton_steps)
            fns["jax"] = run
        res = interleaved(fns, cfg["reps"])
        ps = c.R * c.newton_steps / 1e6
        x_bare = res["bare"][1]
        # Compare where both are finite: plain Newton can leave the box from a wild start.
        ok = np.isfinite(x_bare).all(1)
        rows.append(
            {
                "case": f"{c.label}, R={c.R:,}",
                "steps": c.newton_steps,
                "bare Mpt/s": ps / res["bare"][0],
                "JAX Mpt/s": ps / res["jax"][0] if "jax" in res else float("nan"),
                "JAX compile s": compile_s,
                "x diff JAX": (
                    max_diff(res["jax"][1][ok], x_bare[ok]) if "jax" in res else float("nan")
                ),
            }
        )
    return pd.DataFrame(rows)


def lbfgs(cfg: dict, jx, log) -> tuple[pd.DataFrame, dict]:
    """L-BFGS on 2-D Rosenbrock: runs/s and share of runs at |g| <= 1e-7."""
    from scipy.optimize import minimize, rosen, rosen_der

    problem = problems.get("rosenbrock", dim=2)
    R, steps = cfg["lbfgs_R"], cfg["lbfgs_steps"]
    x0 = starts(problem, R).to(torch.float64)
    hp = suite_lbfgs()
    log(f"lbfgs: 2-D Rosenbrock, R={R:,}, suite settings {hp}")
    sample = np.linspace(0, R - 1, cfg["scipy_sample"]).round().astype(int)

    def scipy_runs():
        gn = []
        t0 = time.perf_counter()
        for i in sample:
            r = minimize(
                rosen,
                x0[i].numpy(),
                jac=rosen_der,
                method="L-BFGS-B",
                options={"maxcor": 10, "gtol": GTOL, "ftol": 0.0, "maxiter": steps},
            )
            gn.append(np.linalg.norm(rosen_der(r.x)))
        return (time.perf_counter() - t0) * R / len(sample), np.array(gn)

    fns = {
        "optzoo": lambda: optzoo_harness(
            "lbfgs", hp, problem, R, steps, stop_on_success=False, grad_tol=0.0, evals=0
        ),
        "scipy": scipy_runs,
    }
    compile_s = float("nan")
    if jx is not None:
        run, compile_s = jx.lbfgs(problem, x0.numpy(), steps, GTOL)
        fns["jaxopt"] = run
    res = interleaved(fns, cfg["lbfgs_reps"])
    # Share at |g| <= GTOL, each by its own final gradient (optzoo: the true g at x_final).
    runs = res["optzoo"][1]
    x_fin = torch.tensor(np.stack(runs["x_final"].to_numpy()))
    gn = {"optzoo": torch.linalg.vector_norm(problem.grad(x_fin), dim=-1).numpy()}
    gn["scipy"] = res["scipy"][1]
    if "jaxopt" in res:
        gn["jaxopt"] = res["jaxopt"][1]
    rows = [
        {
            "implementation": k,
            "runs": R if k != "scipy" else f"{len(sample)} (scaled to {R:,})",
            "runs/s": R / res[k][0],
            "share norm(g) <= 1e-7": float((gn[k] <= GTOL).mean()),
            "median norm(g)": float(np.median(gn[k])),
            "compile s": compile_s if k == "jaxopt" else float("nan"),
        }
        for k in fns
    ]
    return pd.DataFrame(rows), hp


# -- targets and the report --------------------------------------------------------------------
def _ratio(num: float, den: float) -> float:
    return num / den if den and np.isfinite(den) else float("nan")


def best_fused(row: pd.Series) -> float:
    """The fastest fused column of a row (over K)."""
    return max(v for k, v in row.items() if k.startswith("fused K="))


def verdicts(adam: pd.DataFrame, newt: pd.DataFrame, lb: pd.DataFrame) -> pd.DataFrame:
    """Issue 20's targets: each as the measured ratio and whether it is met."""
    rows = []

    def add(target: str, ratio: float, ok: bool, how: str) -> None:
        met = "no JAX" if not np.isfinite(ratio) else ("yes" if ok else "no")
        rows.append({"target": target, "measured": how, "met": met})

    for _, r in adam.iterrows():
        R = int(r["case"].rsplit("R=", 1)[1].replace(",", ""))
        q = _ratio(r["harness Mpt/s"], r["JAX Mpt/s"])
        b = _ratio(r["JAX Mpt/s"], r["bare Mpt/s"])
        if r["case"].startswith("2-D Rosenbrock") and R >= 10_000:
            add(f"Adam harness >= 1/2 of JAX ({r['case']})", q, q >= 0.5, f"1/{1 / q:.1f}")
            add(f"Adam bare step within 1.5x of JAX ({r['case']})", b, b <= 1.5, f"{b:.2f}x")
            fz = _ratio(r["JAX Mpt/s"], best_fused(r))
            add(f"Adam fused step within 1.5x of JAX ({r['case']})", fz, fz <= 1.5, f"{fz:.2f}x")
        elif r["case"].startswith("2-D Rosenbrock"):
            add(f"Adam harness >= 1/10 of JAX ({r['case']})", q, q >= 0.1, f"1/{1 / q:.1f}")
            fz = _ratio(best_fused(r), r["JAX Mpt/s"])
            add(f"Adam fused step >= 1/10 of JAX ({r['case']})", fz, fz >= 0.1, f"1/{1 / fz:.1f}")
        elif R >= 1_000:
            add(
                f"Adam within 3x of JAX ({r['case']})",
                b,
                b <= 3,
                f"bare {b:.1f}x, fused {_ratio(r['JAX Mpt/s'], best_fused(r)):.1f}x, "
                f"harness {1 / q:.1f}x",
            )
    for _, r in newt.iterrows():
        if "quadratic" in r["case"]:
            b = _ratio(r["JAX Mpt/s"], r["bare Mpt/s"])
            add(f"Newton within 5x of JAX ({r['case']})", b, b <= 5, f"{b:.1f}x")
    by = lb.set_index("implementation")
    if "jaxopt" in by.index:
        q = _ratio(by.loc["optzoo", "runs/s"], by.loc["jaxopt", "runs/s"])
    else:
        q = float("nan")
    share = by.loc["optzoo", "share norm(g) <= 1e-7"]
    add(
        "L-BFGS >= jaxopt's runs/s, >= 99% of runs at norm(g) <= 1e-7",
        q,
        q >= 1 and share >= 0.99,
        f"{q:.2f}x jaxopt, {100 * share:.1f}% of runs",
    )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python benchmarks/peers.py", description=__doc__.split("\n")[0]
    )
    p.add_argument("--tiny", action="store_true", help="the smallest configuration, in seconds")
    p.add_argument("--no-jax", action="store_true", help="skip the JAX columns even if installed")
    p.add_argument(
        "--out",
        default=str(ROOT / "results" / "benchmarks.md"),
        help="Markdown file (or a directory for benchmarks.md)",
    )
    args = p.parse_args(argv)
    cfg = TINY if args.tiny else FULL
    torch.set_num_threads(1)
    _pool.keep_freed_memory()
    out = Path(args.out)
    if out.suffix != ".md":
        out = out / "benchmarks.md"
    argv_used = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "benchmarks/peers.py", *argv_used])

    jx, why = (None, "--no-jax") if args.no_jax else peers_jax.load()
    info = machine(1)
    load_start = os.getloadavg()[0]
    info["jax"] = jx.versions() if jx is not None else f"not used ({why})"
    t_start = time.perf_counter()
    adam = first_order(cfg, jx, log)
    newt = newton(cfg, jx, log)
    lb, lb_hp = lbfgs(cfg, jx, log)
    info["load average at end"] = _load()
    info["benchmark wall time"] = f"{time.perf_counter() - t_start:.0f} s"

    note = (
        ""
        if jx is not None
        else f"JAX columns skipped ({why}): they are empty. "
        '`pip install -e ".[bench]"` adds JAX, optax and jaxopt.\n'
    )
    parts = ["# optzoo against JAX, NumPy and scipy", "", f"Command: `{command}`", ""]
    parts += [f"- {k}: {v}" for k, v in info.items()]
    if max(load_start, os.getloadavg()[0]) > (os.cpu_count() or 1):
        note += BUSY.format(cores=os.cpu_count()) + "\n"
    parts += ["", note, "## Targets (issue 20)", "", md_table(verdicts(adam, newt, lb)), ""]
    parts += [PROFILE_NOTES, ""]
    parts += ["## Adam", "", ADAM_NOTE.format(reps=cfg["reps"]), "", md_table(adam), ""]
    parts += ["## Newton (plain, lr 1)", "", NEWTON_NOTE, "", md_table(newt), ""]
    parts += [
        "## L-BFGS, 2-D Rosenbrock",
        "",
        LBFGS_NOTE.format(hp=lb_hp, steps=cfg["lbfgs_steps"]),
        "",
        md_table(lb),
        "",
    ]
    write_report(parts, out)
    return 0


BUSY = (
    "The machine was busy (load average above its {cores} cores): every process got a slice of a "
    "core, so absolute rates are several times below a quiet machine's, and many small ops "
    "(optzoo at small R) suffer more than one fused program. Read the ratios as indicative and "
    "re-run on a quiet machine."
)
ADAM_NOTE = (
    "Million point-steps per second (runs x steps / s), median of {reps} interleaved "
    "repetitions, one thread, float64. bare: optzoo's `opt.step` through the counted oracle; "
    "harness: `run_cell` whole (every record, trace and end-point classification), runs not "
    "stopped on success; JAX: `jit(vmap(scan(optax.adam)))`, compile time apart; NumPy: Adam in "
    "place with the analytic gradient (BLAS `x @ A` for the quadratic). 'x diff' columns: the "
    "largest final-iterate difference from optzoo's bare step."
)
NEWTON_NOTE = (
    "optzoo's Newton step (one gradient, one Hessian, a solve) against JAX's `jax.hessian` and "
    "`jnp.linalg.solve` in `jit(vmap(scan(...)))`. 'x diff JAX' over the runs that stayed finite."
)
LBFGS_NOTE = (
    "optzoo: `run_cell` with the suite's settings {hp} (configs/default.toml), at most {steps} "
    "steps, runs not stopped on success; L-BFGS's own tolerance_grad (1e-9) ends its progress. "
    "jaxopt: "
    "`LBFGS(history_size=10, linesearch='zoom', tol=1e-7, maxiter={steps})` under `vmap`. "
    "scipy: L-BFGS-B (maxcor 10, gtol 1e-7, ftol 0) per run on a sample, scaled to all runs. "
    "|g| is each run's true gradient norm at its final iterate."
)
PROFILE_NOTES = """Where the time goes, for the targets not met, and what was tried.

- **Adam, the bare step and the harness against JAX.** JAX compiles the whole step loop into one
  fused XLA program: one pass over memory per step at large R, no dispatch at small R. optzoo's
  eager step is 41 torch ops, and the harness's step 136 (torch.profiler, top-level ops, Adam
  at R = 1e2): about 95 of bookkeeping (finiteness and stop tests, target ladder, best f, step
  statistics, traces, paths). At R = 1e2 each op costs its dispatch, several us on this
  machine: about 1 ms per harness step for 100 runs, where JAX takes 3 us. At R >= 1e4 each op
  is a full pass over the (R, d) arrays where XLA makes one.
- **The harness beyond its steps** (cProfile of `run_cell`, Adam, one thread). A run's records
  cost about the same whatever its number of steps, so at R = 1e5 with 20 steps they dominate:
  of about 2.0 s, the step loop is 0.6 s (the optimizer's steps 0.16 s of it), the first hits
  of the 51 targets 0.32 s, the end-point classification 0.25 s (a batched 2 x 2 `eigh`,
  0.13 s), the traces 0.31 s and building the runs table 0.3 s. Removed, every stored number
  unchanged (quick suite: every cell's Parquet file byte-identical; the default suite checked
  with `optzoo.report.diff`):
  - the runs table's per-run arrays (start, end point, first hits, spectrum) are NumPy rows of
    one array each, no longer Python lists made by `ndarray.tolist` (48% of `run_cell` at
    R = 1e5). The store writes the same Parquet bytes from them (tested), and a worker
    process's result is pickled with each such column packed as one 2-D array: build, pickle
    and unpickle at R = 1e5 went from 4.5 s to 1.3 s;
  - a quadratic's end points are classified from one Hessian and one `eigh` instead of one per
    run: its Hessian, and autograd's, is the same matrix at every point (tested bit for bit
    against the per-run path). On the 100-D quadratic this was over 90% of the harness: the
    harness went from 103x JAX's time to 9-12x;
  - earlier: a `json.dumps` per run, the re-sort of a single batch's frames, a 2-long reduction
    per step for the step cosine, and a second Hessian and an SVD per end point that only
    critical points read.
- **Tried: the fused step** (`optzoo.fused.fused_steps`, the "fused K=" columns): the rule plus
  the problem's gradient, K steps per call, compiled by torch.compile (inductor, C++ on CPU).
  - Where it pays: at small R, where dispatch dominates: at R = 1e2 a K = 10 call replaces
    ~400 dispatches with one, 5-13x the bare step over the runs of this benchmark, which puts
    it at 1/9-1/32 of JAX: short of the R = 1e2 target for the fused step, far for the harness.
    At R >= 1e4 it does not pay: 0.4-1.4x the bare step (K = 10; the quieter the machine, the
    lower), the 100-D quadratic 0.9-1.5x. K = 1 loses nearly everywhere: each call converts x
    and the state to the layout below and back (six extra passes per step) and pays the
    compiled graph's entry (guards, ~0.1 ms).
  - Why not more at large R (inductor's generated C++, read from `TORCH_LOGS=output_code`): the
    Rosenbrock gradient's slices and zero-pads (`x[:, :-1]`, `x[:, 1:]`, `pad`) make inductor
    vectorise over d = 2 with masked two-element vectors and scalar gathers, and inline the
    gradient into each consumer (four copies per step). Storing the (R, d) iterate and state
    column-major for the call ((d, R) in memory) turns its loops to run over R: measured 1.7x
    over row-major at K = 10, R = 1e4, and it is what fused_steps does. Longer unrolled loops
    make kernels of thousands of lines (K = 10: 4,800 lines of C++) without getting faster
    (issue 20's prototype saw the same fall-off at K = 50). What would close the gap: a
    gradient written for the compiler (per-coordinate columns rather than slices and pads, as
    issue 20's 92 M point-steps/s prototype did), which changes the problems' code and their
    bits; not done here.
  - Numbers: not byte-identical to the eager step: inductor's C++ rounds some ops otherwise
    than ATen's kernels (its lerp is a separate multiply and add, `m + (g - m) * 0.1`, where
    ATen's vectorised lerp kernel does its own arithmetic); a third of the runs differ in the
    last bits after 100 steps, final iterates agree to ~1e-14 ("x diff fused"). Batch
    invariant when padded as the harness pads (tests/test_fused.py: a run alone and at any
    position of a padded batch, bit for bit). So it is an opt-in, not the harness's default.
  - Compile time ("fused compile s", the slower K's first call): 1-25 s per (rule, problem, K,
    batch shape), up to 2 minutes for the first compile of a process or on a cold inductor
    cache; a suite cell would pay it once per shape.
  - Not done: the harness's bookkeeping inside the compiled loop (the hook for it is
    `fused_steps(opt, problem, x, state, K, lr_scale) -> (x, state, f (K, R), grad)`; the
    bookkeeping is `optzoo/harness/loop.py`). It would have to reproduce the eager records bit
    for bit, which the compiled rule itself does not.
- **The 100-D rotated quadratic.** x Q is one small GEMM per point (`bmm` of (1, d) rows by a
  broadcast Q), batch invariant to the bit (tested). The gap is BLAS-2 against BLAS-3: JAX's
  `x @ Q` is one GEMM over all runs, which blocks over the runs and so rounds a run differently
  in different batches. Compiling does not change that (the bmm stays an extern call).
- **Met this round: Newton on the 100-D quadratic** (18.9x JAX's time before, 2.4-26.5x over
  earlier runs). A quadratic's analytic Hessian is one matrix viewed by every run; Newton now
  factors it once (Cholesky, and the inverse factor) when the damping is one value for all
  runs, and applies it per run. Identical matrices give identical factors, so no run's numbers
  change (tested against the same matrix copied per run: definite, indefinite and singular,
  every variant). What is left per step is the gradient (a bmm per point) and two matrix-vector
  products per run. On 2-D Rosenbrock, where each run has its own Hessian, Newton stays at
  3-18x JAX's time (not a target).
- **Met this round: L-BFGS** (1.30-1.38x jaxopt's runs/s over this round's runs; 0.42-1.03x
  before). Every number unchanged (the quick suite's Parquet files byte-identical; L-BFGS, BFGS
  and DFP compared bit for bit before and after on seven problems and a dozen settings). The
  changes:
  2-long row sums and dot products written out as `(p1 + p0) + 0.0` instead of a reduction
  over a 2-long axis (the same bits, tested, NaN signs aside); an iteration's start skipped in
  a pass where no run starts one (every pass with the suite's `max_iter = 1`) and a step
  returned after its first evaluation where no run iterates (once runs have converged); ring
  buffer reads and writes by `index_select`/`index_copy_` on a flat view, a 2-long row moved
  as one complex element (a copy either way); the line search's bracket as one tensor per end
  instead of `b[rows, pos]` gathers. Where its time goes now (cProfile, R = 1e4, 100 steps):
  the iteration start 43% (history gathers, the per-step copy of the (R, 10, 2) ring buffers
  that keeps the caller's state intact, the two-loop recursion), the line search's passes 30%,
  `where` over every run 20%."""


if __name__ == "__main__":
    sys.exit(main())
