"""Where runs ended (the critical-point kind of each last iterate), and f over a 2-D box."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from optzoo import analysis
from optzoo.config import Suite
from optzoo.problems.base import Problem
from optzoo.runtime import padded_size

EIGENVALUES_KEPT = 64  # store every run's end-point spectrum up to this dimension


def endpoints(problem: Problem, x: Tensor, status: np.ndarray, suite: Suite) -> dict:
    """Where each run ended: diverged, or the critical-point kind of its last iterate.

    Returns the ``endpoint`` label per run, plus ``min_ratio`` and ``n_neg`` (the Hessian's share
    of positive eigenvalues and count of negative ones at the last iterate; NaN/-1 when unknown),
    and the spectra as one ``(R, k)`` array, ``k = d`` up to ``EIGENVALUES_KEPT`` dimensions (else
    0), whose rows count where ``has_eigenvalues`` is True (the records list the others empty).
    """
    R = len(status)
    k = problem.dim if problem.dim <= EIGENVALUES_KEPT else 0
    out = {
        "endpoint": status.copy(),
        "min_ratio": np.full(R, np.nan),
        "n_neg": np.full(R, -1),
        "eigenvalues": np.full((R, k), np.nan),
        "has_eigenvalues": np.zeros(R, dtype=bool),
    }
    ok = status != "diverged"
    if not ok.any():
        return out
    # Dense spectra up to a few hundred dimensions; beyond, Lanczos gives the extremes only.
    xs = x[torch.as_tensor(ok)]
    n = xs.shape[0]
    pad = padded_size(n, x.dtype, x.device) - n  # padded as a batch is, for the same reason
    xs = torch.cat([xs, xs[:1].expand(pad, -1)]) if pad else xs
    res = analysis.classify_batch(problem, xs, dense_max=256)
    res = {k: (v[:n] if v is not None and len(v) == n + pad else v) for k, v in res.items()}
    kinds = np.asarray(res["kind"], dtype=object)
    gnorm = np.asarray(res["grad_norm"], dtype=np.float64)
    # Not critical: a tiny gradient means a plateau; else where success was declared, or budget.
    moving = np.where(status[ok] == "solved", "solved", "budget")
    plateau = gnorm < max(suite.plateau_grad, 1e-6)
    out["endpoint"][ok] = np.where(
        kinds == "not_critical", np.where(plateau, "plateau", moving), kinds
    )
    out["min_ratio"][ok] = np.asarray(res["min_ratio"], dtype=np.float64)
    out["n_neg"][ok] = np.asarray(res["n_neg"], dtype=np.int64)
    # The whole spectrum is kept for small problems (the minimum-ratio study draws it).
    if res.get("eigenvalues") is not None and k:
        out["eigenvalues"][ok] = np.asarray(res["eigenvalues"], dtype=np.float64)
        out["has_eigenvalues"][ok] = True
    return out


def landscape_grid(problem: Problem, n: int = 101) -> pd.DataFrame | None:
    """f on an n x n grid over a 2-D problem's box (columns x, y, f), for contour plots."""
    if problem.dim != 2:
        return None
    lo, hi = problem.bounds[0].tolist(), problem.bounds[1].tolist()
    xs = torch.linspace(lo[0], hi[0], n, dtype=torch.float64)
    ys = torch.linspace(lo[1], hi[1], n, dtype=torch.float64)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    with torch.no_grad():
        f = problem.fn(torch.stack([X.reshape(-1), Y.reshape(-1)], dim=-1))
    return pd.DataFrame(
        {
            "x": X.reshape(-1).numpy(),
            "y": Y.reshape(-1).numpy(),
            "f": f.detach().to(torch.float64).reshape(-1).cpu().numpy(),
        }
    )
