"""optzoo's ``bfgs`` and ``dfp`` against ``scipy.optimize.minimize(method="BFGS")``.

On Rosenbrock (2-D from (-1.2, 1); 10-D from (-1.2, 1, ..., -1.2, 1) and from three seeded
box samples), Beale from (1, 1) and the 10-D rotated ellipsoid (condition 1e3) from (1, ..., 1),
each method runs until max|g| <= GTOL (scipy's own test, gradient infinity norm, with
its ``gtol`` set to the same value). Printed per problem and method: iterations, function and
gradient evaluations, and the distance of the end point to scipy's (and to the known minimizer).
A second table counts the iterations BFGS and DFP need with Armijo backtracking instead of a
Wolfe search (Nocedal & Wright section 6.1: DFP degrades with inexact line searches).

    python benchmarks/quasi_newton_vs_scipy.py            # both tables, about a minute
    python benchmarks/quasi_newton_vs_scipy.py --gtol 1e-5

The rules differ from scipy's in the line search only: scipy calls MINPACK's dcsrch (More &
Thuente) with c1 = 1e-4, c2 = 0.9 and, after the first iteration, a first trial step
interpolated from the last decrease, min(1, 2.02 (f_k - f_{k-1}) / g.d); optzoo uses torch's
strong-Wolfe search (bracketing and zoom by cubic interpolation, the same c1 and c2) and tries
t = 1 first, as Nocedal & Wright advise for quasi-Newton methods. The first steps differ too:
scipy takes about 1.01 / |g|_2 on its first trial, optzoo min(1, 1 / |g|_1).
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import scipy.optimize
import torch

from optzoo import optimizers, problems
from optzoo.problems import Oracle

# label -> (problem, params, start): None is the problem's default start, i > 0 the i-th of
# four seeded samples from its box (seed 3), as tests/test_quasi_newton.py uses them.
CASES = {
    "rosenbrock 2-D": ("rosenbrock", {"dim": 2}, None),
    "rosenbrock 10-D": ("rosenbrock", {"dim": 10}, None),
    "rosenbrock 10-D, box start 1": ("rosenbrock", {"dim": 10}, 1),
    "rosenbrock 10-D, box start 2": ("rosenbrock", {"dim": 10}, 2),
    "rosenbrock 10-D, box start 3": ("rosenbrock", {"dim": 10}, 3),
    "beale": ("beale", {}, None),
    "ellipsoid 10-D": ("ellipsoid", {"dim": 10}, None),
}
# DFP against BFGS with Armijo backtracking: problems, starts (default + 7 box samples, seed 1)
# and the iteration cap.
BACKTRACKING_CASES = {
    "rosenbrock 2-D": ("rosenbrock", {"dim": 2}),
    "rosenbrock 10-D": ("rosenbrock", {"dim": 10}),
    "ellipsoid 10-D, cond 1e3": ("ellipsoid", {"dim": 10}),
    "ellipsoid 10-D, cond 1e6": ("ellipsoid", {"dim": 10, "cond": 1e6}),
}
BACKTRACKING_CAP = 1000
GTOL = 1e-8
MAX_ITER = 2000


def run_scipy(problem, gtol: float = GTOL) -> dict:
    """scipy's BFGS from the problem's default start; f and g from the same torch loss."""
    oracle = Oracle(problem, 1)

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = oracle.value_and_grad(torch.tensor(z, dtype=torch.float64)[None])
        return float(f[0]), g[0].numpy().copy()

    res = scipy.optimize.minimize(
        fun,
        problem.x0.to(torch.float64).numpy(),
        jac=True,
        method="BFGS",
        options={"gtol": gtol, "maxiter": MAX_ITER},
    )
    return {"x": res.x, "nit": res.nit, "nfev": res.nfev, "njev": res.njev, "f": res.fun}


def run_rule(name: str, problem, gtol: float = GTOL, **hp) -> dict:
    """optzoo's batched rule with R = 1 until max|g| <= gtol, or until it stops moving (two
    steps in a row without a step: at the round-off floor, where scipy reports precision loss).
    Iterations are the steps that moved x."""
    opt = optimizers.get(name, tolerance_grad=gtol, **hp)
    x = problem.x0.to(torch.float64).reshape(1, -1)
    state, oracle = opt.init(x), Oracle(problem, 1)
    moves = still = 0
    while moves < MAX_ITER and still < 2:
        x_new, state, _ = opt.step(x, state, oracle)
        moved = not torch.equal(x_new, x)
        moves, still = moves + moved, 0 if moved else still + 1
        x = x_new
    evals = int(oracle.counts.ng[0]) + int(oracle.counts.nf[0])
    return {"x": x[0].numpy(), "nit": moves, "nfev": evals, "njev": evals}


def table(gtol: float = GTOL) -> list[dict]:
    """One row per problem and method."""
    rows = []
    for label, (name, params, start) in CASES.items():
        problem = problems.get(name, **params)
        if start is not None:
            x0 = problem.sample_starts(4, seed=3)[start].to(torch.float64)
            problem = dataclasses.replace(problem, x0=x0)
        x_star = np.asarray(problem.minimizers[0], dtype=np.float64)
        ref = run_scipy(problem, gtol)
        for method, out in (
            ("scipy BFGS", ref),
            ("optzoo bfgs", run_rule("bfgs", problem, gtol)),
            ("optzoo dfp", run_rule("dfp", problem, gtol)),
        ):
            rows.append(
                {
                    "problem": label,
                    "method": method,
                    "iterations": out["nit"],
                    "f evals": out["nfev"],
                    "g evals": out["njev"],
                    "|x - x_scipy|": float(np.abs(out["x"] - ref["x"]).max()),
                    "|x - x*|": float(np.abs(out["x"] - x_star).max()),
                }
            )
    return rows


def backtracking_iterations(name: str, problem, gtol: float = 1e-6) -> torch.Tensor:
    """Iterations to max|g| <= gtol per start with Armijo backtracking (the cap if never)."""
    x = torch.cat([problem.x0.reshape(1, -1), problem.sample_starts(7, seed=1)]).to(torch.float64)
    opt = optimizers.get(name, line_search_fn="backtracking", tolerance_grad=gtol)
    state, oracle = opt.init(x), Oracle(problem, x.shape[0])
    for _ in range(BACKTRACKING_CAP):
        x, state, _ = opt.step(x, state, oracle)
        if not bool((state.g.abs().amax(-1) > gtol).any()):
            break
    return torch.where(state.g.abs().amax(-1) <= gtol, state.n_iter, BACKTRACKING_CAP)


def print_markdown(rows: list[dict]) -> None:
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [f"{v:.1e}" if isinstance(v, float) else str(v) for v in r.values()]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gtol", type=float, default=GTOL, help="stop at max|g| <= gtol")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"stop at max|g| <= {args.gtol:g}; one start per row")
    print_markdown(table(args.gtol))
    print()
    print(
        "DFP against BFGS with Armijo backtracking: iterations to max|g| <= 1e-6 from the "
        f"default start and 7 box samples (seed 1), capped at {BACKTRACKING_CAP}"
    )
    rows = []
    for label, (name, params) in BACKTRACKING_CASES.items():
        problem = problems.get(name, **params)
        for method in ("bfgs", "dfp"):
            n = backtracking_iterations(method, problem)
            rows.append(
                {
                    "problem": label,
                    "method": method,
                    "median": int(n.median()),  # the lower middle of the 8 starts
                    "per start": " ".join(str(v) for v in n.tolist()),
                    "capped": int((n == BACKTRACKING_CAP).sum()),
                }
            )
    print_markdown(rows)


if __name__ == "__main__":
    main()
