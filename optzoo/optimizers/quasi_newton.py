"""BFGS and DFP, batched: one quasi-Newton rule with a dense inverse Hessian ``(R, d, d)`` per run.

One step is one iteration, per run, with H the inverse-Hessian approximation (H0 = I)::

    d <- -H g;  if g.d >= 0 (H no longer positive definite in effect): H <- H0, d <- -g
    t0 <- lr min(1, 1 / |g|_1)  while H = H0 (torch's first L-BFGS step),  else lr
    t <- line search along d from t0:  strong Wolfe (default), backtracking (Armijo), or exact
    s <- t d,  y <- g(x + s) - g,  rho <- 1 / y.s;  x <- x + s
    if y.s > curvature_eps |s| |y|:                      (else the update is skipped)
        H <- (y.s / y.y) I                   first update with scale_h0 (N&W eq. 6.20)
        BFGS:  H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T                 (N&W eq. 6.17)
        DFP:   H <- H - (H y y^T H) / (y^T H y) + (s s^T) / (y^T s)                (N&W eq. 6.15)
    H <- H0 where H is not finite or not positive definite (Cholesky fails), or where the line
         search found no step (t = 0); each such reset of an updated H is counted in ``resets``

Both updates satisfy the secant equation H+ y = s and keep H symmetric positive definite when
y.s > 0, which the Wolfe curvature condition guarantees. BFGS's update is applied in its
expanded form H + P + P^T with P = s ((rho + rho^2 y^T H y) / 2 s - rho H y)^T (equal to the
product form above), DFP's as H + P + P^T with P = s s^T / (2 y.s) - H y (H y)^T / (2 y^T H y):
both are a few batched outer products, and P + P^T keeps H exactly symmetric.

The line searches are :mod:`optzoo.optimizers.linesearch`'s: ``"strong_wolfe"`` is L-BFGS's
(torch's bracketing and zoom with cubic interpolation, c1 = 1e-4, c2 = 0.9, at most ``max_ls``
evaluations); ``"backtracking"`` shrinks t by ``backtrack`` until the Armijo condition holds;
``"exact"`` takes t = -g.d / d'H d from one Hessian-vector product, the exact minimizer along d
on a quadratic, where BFGS and DFP then generate conjugate gradient's iterates and end on the
minimizer in at most d iterations with H_d = A^-1 (N&W Theorem 6.4 and section 6.4).

Evaluations. f and g at the new point come from the line search and are carried in the state,
so an iteration costs only its line-search evaluations (an exact search: one HVP and one
gradient). They are evaluated afresh only where x is not the point they belong to (the first
step, or x moved by someone else, e.g. the saddle escape); that test ``if stale.any()`` and the
early exit of the masked search loop are the only host syncs, and neither changes a result.
A run with max|g| <= tolerance_grad does not move and costs nothing.

Stepping a batch by hand (one iterate per step, e.g. to measure the order of convergence)::

    opt = optimizers.get("bfgs");  x = x0 (R, d);  state = opt.init(x);  oracle = Oracle(problem, R)
    for k in range(K):  x, state, f = opt.step(x, state, oracle)

References: Nocedal & Wright, Numerical Optimization (2nd ed., 2006), chapter 6 (eqs. 6.15,
6.17, 6.20, Algorithm 6.1, Theorem 6.4) and chapter 3 (line searches); Davidon 1959, Fletcher
& Powell 1963 (DFP); Broyden, Fletcher, Goldfarb and Shanno 1970 (BFGS).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from optzoo.errors import ConfigError
from optzoo.linalg import matvec
from optzoo.optimizers.base import Hyper, Optimizer
from optzoo.optimizers.linesearch import C1, C2, Backtracking, StrongWolfe, exact_step
from optzoo.oracle import CountedOracle, live_runs

LINE_SEARCHES = ("strong_wolfe", "backtracking", "exact")
UPDATES = ("bfgs", "dfp")
# The largest dense inverse Hessian a batch may hold (all runs together): 1 GiB, so
# d <= 11,585 in float64 for one run. The update needs about three times as much again.
MAX_DENSE_BYTES = 2**30


class QuasiNewtonState(NamedTuple):
    """Per-run state of BFGS and DFP."""

    H: Tensor  # (R, d, d) inverse-Hessian approximation
    x: Tensor  # (R, d) the point f and g belong to (NaN before the first evaluation)
    f: Tensor  # (R,) f(x)
    g: Tensor  # (R, d) grad f(x)
    n_iter: Tensor  # (R,) int64 iterations taken
    n_updates: Tensor  # (R,) int64 updates since H was last H0
    skips: Tensor  # (R,) int64 updates skipped by the curvature test
    resets: Tensor  # (R,) int64 resets of an updated H to H0


def dense_bytes(rows: int, dim: int, dtype: torch.dtype) -> int:
    """Memory of ``rows`` dense ``dim x dim`` matrices of ``dtype``, in bytes."""
    return rows * dim * dim * torch.empty((), dtype=dtype).element_size()


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise dot products ``(R, d), (R, d) -> (R,)``."""
    return torch.linalg.vecdot(a, b)


def _outer(a: Tensor, b: Tensor) -> Tensor:
    """a_r b_r^T per run, ``(R, d), (R, d) -> (R, d, d)``."""
    return a[:, :, None] * b[:, None, :]


class BFGS(Optimizer):
    """BFGS (``update="bfgs"``) or DFP (``update="dfp"``) with a dense inverse Hessian per run."""

    name = "bfgs"
    defaults = {
        "lr": 1.0,
        "tolerance_grad": 1e-7,
        "c1": C1,
        "c2": C2,
        "curvature_eps": 1e-8,
        "max_ls": 25,
        "backtrack": 0.5,
        "line_search_fn": "strong_wolfe",
        "scale_h0": False,
        "update": "bfgs",
    }
    # These choose the program, so they are one value for the whole batch.
    flags = frozenset({"line_search_fn", "scale_h0", "update"})

    def check(self, hp: Mapping[str, Any]) -> None:
        self.require("lr", hp["lr"], lambda v: v > 0, "lr > 0")
        self.require("tolerance_grad", hp["tolerance_grad"], lambda v: v >= 0, "a number >= 0")
        self.require("c1", hp["c1"], lambda v: 0 < v < 1, "0 < c1 < 1")
        self.require("c2", hp["c2"], lambda v: 0 < v < 1, "0 < c2 < 1 (and c2 > c1)")
        self.require("curvature_eps", hp["curvature_eps"], lambda v: v >= 0, "a number >= 0")
        self.require(
            "max_ls",
            hp["max_ls"],
            lambda v: math.isfinite(v) and v >= 1 and v == math.floor(v),
            "an integer >= 1",
        )
        self.require("backtrack", hp["backtrack"], lambda v: 0 < v < 1, "0 < backtrack < 1")
        c1 = torch.as_tensor(hp["c1"], dtype=torch.float64)
        c2 = torch.as_tensor(hp["c2"], dtype=torch.float64)
        if not bool((c1 < c2).all()):
            raise ConfigError(f"optimizer {self.name!r}: c1 must be below c2 (0 < c1 < c2 < 1)")
        choices = {"line_search_fn": LINE_SEARCHES, "update": UPDATES, "scale_h0": (False, True)}
        for key, allowed in choices.items():
            if not any(
                hp[key] is a or (type(hp[key]) is type(a) and hp[key] == a) for a in allowed
            ):
                raise ConfigError(
                    f"optimizer {self.name!r}: invalid {key} {hp[key]!r}; "
                    f"allowed: {', '.join(repr(a) for a in allowed)}"
                )

    def _per_run(self, x: Tensor, lr_scale: Hyper) -> dict[str, Tensor]:
        """:meth:`per_run`, with the line search's evaluation cap as a count."""
        return self.per_run(x, lr_scale, counts=("max_ls",))

    def init(self, x: Tensor) -> QuasiNewtonState:
        R, n = x.shape
        need = dense_bytes(R, n, x.dtype)
        if need > MAX_DENSE_BYTES:
            raise ConfigError(
                f"optimizer {self.name!r}: {R} dense {n} x {n} inverse Hessians take "
                f"{need / 2**30:.1f} GiB, over the {MAX_DENSE_BYTES / 2**30:.0f} GiB allowed; "
                "allowed: fewer runs or dimensions, or 'lbfgs'"
            )
        zeros = torch.zeros(R, dtype=torch.int64, device=x.device)
        eye = torch.eye(n, dtype=x.dtype, device=x.device)
        return QuasiNewtonState(
            H=eye.expand(R, n, n).clone(),
            x=torch.full_like(x, torch.nan),
            f=x.new_zeros(R),
            g=torch.zeros_like(x),
            n_iter=zeros,
            n_updates=zeros,
            skips=zeros,
            resets=zeros,
        )

    @torch.no_grad()
    def step(
        self, x: Tensor, state: QuasiNewtonState, oracle: CountedOracle, lr_scale: Hyper = 1.0
    ):
        """One iteration of every run: returns ``(x_new, state, f(x))``."""
        hp = self._per_run(x, lr_scale)
        R, n = x.shape
        live = live_runs(oracle, x)  # runs the harness froze need no work

        # f and g at x: carried over from the last step, unless x is not that step's point.
        f, g = state.f, state.g
        stale = live & ~(x == state.x).all(-1)
        if stale.any():  # skips an evaluation no run needs; changes no result
            f_x, g_x = oracle.value_and_grad(x, stale)
            f, g = torch.where(stale, f_x, f), torch.where(stale[:, None], g_x, g)

        moving = live & ~(g.abs().amax(-1) <= hp["tolerance_grad"])
        eye = torch.eye(n, dtype=x.dtype, device=x.device)
        H, n_updates = state.H, state.n_updates
        d = -matvec(H, g)
        gtd = _dot(g, d)
        # g.d >= 0 means H is not positive definite any more: start again from H0 (steepest
        # descent). A run with a non-finite gradient goes on with NaNs and the harness stops it.
        lost = moving & ~(gtd < 0) & torch.isfinite(g).all(-1)
        resets = state.resets + (lost & (n_updates > 0)).to(torch.int64)
        H = torch.where(lost[:, None, None], eye, H)
        n_updates = torch.where(lost, 0, n_updates)
        d = torch.where(lost[:, None], -g, d)
        gtd = torch.where(lost, -_dot(g, g), gtd)

        inv_l1 = 1.0 / g.abs().sum(-1)
        shrink = torch.where((n_updates == 0) & (inv_l1 < 1.0), inv_l1, torch.ones_like(inv_l1))
        t, f_new, g_new = self._line_search(oracle, x, f, g, d, gtd, shrink * hp["lr"], moving, hp)

        s = t[:, None] * d
        y = g_new - g
        ys = _dot(y, s)
        norms = torch.linalg.vector_norm(s, dim=-1) * torch.linalg.vector_norm(y, dim=-1)
        update = moving & (ys > hp["curvature_eps"] * norms)
        H_new = self._update(H, s, y, ys, update & (n_updates == 0))
        # Reset where the update broke H, or where the search found no step along d.
        finite = torch.isfinite(H_new).all((-1, -2))
        pd = torch.linalg.cholesky_ex(torch.where(finite[:, None, None], H_new, eye)).info == 0
        broken = update & ~(finite & pd)
        no_step = moving & ~(t > 0)
        reset = broken | (no_step & (n_updates > 0))
        H = torch.where(update[:, None, None], H_new, H)
        H = torch.where(reset[:, None, None], eye, H)
        new = QuasiNewtonState(
            H=H,
            x=torch.where(moving[:, None], x + s, x),
            f=torch.where(moving, f_new, f),
            g=torch.where(moving[:, None], g_new, g),
            n_iter=state.n_iter + moving.to(torch.int64),
            n_updates=torch.where(reset, 0, n_updates + update.to(torch.int64)),
            skips=state.skips + (moving & ~update).to(torch.int64),
            resets=resets + reset.to(torch.int64),
        )
        return new.x, new, f

    def _line_search(self, oracle, x, f, g, d, gtd, t0, moving, hp):
        """Step length t and f, g at x + t d per moving run (t = 0, f, g elsewhere)."""
        kind = self.hp["line_search_fn"]
        if kind == "exact":
            t = torch.where(moving, exact_step(oracle, x, d, gtd, moving, t0), 0.0)
            f_new, g_new = oracle.value_and_grad(torch.addcmul(x, t[:, None], d), moving)
            return t, torch.where(moving, f_new, f), torch.where(moving[:, None], g_new, g)
        if kind == "strong_wolfe":
            search = StrongWolfe(x, hp["c1"], hp["c2"])
        else:
            search = Backtracking(x, hp["c1"], hp["backtrack"])
        running = search.start(moving, t0, f, g, gtd, d, hp["max_ls"])
        while running.any():  # early exit of the masked loop: changes no result
            f_try, g_try = oracle.value_and_grad(torch.addcmul(x, search.t[:, None], d), running)
            running = running & ~search.advance(running, f_try, g_try, _dot(g_try, d))
        t = torch.where(moving, search.t, 0.0)
        return t, torch.where(moving, search.f, f), torch.where(moving[:, None], search.g, g)

    def _update(self, H: Tensor, s: Tensor, y: Tensor, ys: Tensor, scale: Tensor) -> Tensor:
        """The BFGS or DFP update of H by the pair (s, y) (H0 scaled first where ``scale``)."""
        ok = ys != 0
        rho = 1.0 / torch.where(ok, ys, 1.0)
        if self.hp["scale_h0"]:
            yy = _dot(y, y)
            gamma = ys / torch.where(yy > 0, yy, 1.0)
            H = torch.where((scale & (yy > 0))[:, None, None], gamma[:, None, None] * H, H)
        Hy = matvec(H, y)
        yHy = _dot(y, Hy)
        if self.hp["update"] == "bfgs":
            a = (0.5 * (rho + rho * rho * yHy))[:, None] * s - rho[:, None] * Hy
            P = _outer(s, a)
        else:
            inv_yHy = 1.0 / torch.where(yHy != 0, yHy, 1.0)
            P = _outer(s, (0.5 * rho)[:, None] * s) - _outer(Hy, (0.5 * inv_yHy)[:, None] * Hy)
        return H + (P + P.transpose(-1, -2))


class DFP(BFGS):
    """Davidon-Fletcher-Powell: :class:`BFGS` with ``update="dfp"``."""

    name = "dfp"
    defaults = {**BFGS.defaults, "update": "dfp"}
