"""Newton's method, batched, and the variants that make it usable.

Per run, with g and H the gradient and Hessian at x and lambda >= 0 a damping::

    p <- (H + lambda I)^-1 g                      plain Newton (lambda = damping, default 0)
    p <- V diag(1 / (max(|Lambda|, eig_floor) + lambda)) V^T g
                                                  saddle_free: H = V Lambda V^T from eigh,
                                                  i.e. (|H| + lambda I)^-1 g
    x <- x - lr p                                 no line search
    x <- x - t p, t = lr, lr/2, lr/4, ...         line_search_fn="backtracking": the first t with
                                                  f(x - t p) <= f(x) - c1 t g.p (Armijo), at most
                                                  max_trials trials; p <- g where g.p <= 0

Plain Newton jumps to the critical point of the local quadratic model, whatever its kind: from
near a saddle it lands on the saddle. That is the flaw this module must show, so the plain
step is kept exactly as it is. Saddle-free Newton (Dauphin et al. 2014) rescales the gradient
by |H|, so negative curvature pushes the iterate away from a saddle instead of towards it.

adaptive=True is Levenberg-Marquardt (Levenberg 1944; Marquardt 1963), with lambda kept per
run in the state and starting at ``damping``. In each step, up to ``max_trials`` trials::

    x_try <- x - lr (H + lambda I)^-1 g
    if f(x_try) < f(x):  accept x_try;  lambda <- lambda / damping_factor;  stop
    else:                lambda <- max(lambda * damping_factor, damping_min)   (try again)

so lambda grows until H + lambda I is positive definite enough for a decrease, and shrinks
back towards pure Newton while steps succeed. A run with no successful trial stays where it
is, keeping its enlarged lambda. (Nocedal & Wright 2006, section 10.3, is the textbook account.)

Solving. Where H + lambda I is positive definite and safely non-singular (see
``_cholesky_solve``: a bound from the Cholesky factor proves the rank test below passes), the
step is solved by Cholesky, O(d^3 / 3) and no eigendecomposition. Elsewhere an indefinite
H + lambda I is solved as it is (that is Newton's step) by ``torch.linalg.solve_ex`` (LU). A
singular one must not break the run: where LU reports a zero pivot, gives a non-finite p, or the
eigenvalues of H + lambda I show it numerically singular (smallest |eigenvalue| <= d * eps *
largest, numpy's rank test), the run takes the pseudo-inverse solution instead: the
minimum-norm least-squares solution, V diag(1 / mu_i where |mu_i| is above that cutoff, else
0) V^T g with mu = eigenvalues of H + lambda I. Along a direction of zero curvature the step
is then zero. A run whose gradient or Hessian is not finite gets a NaN step, so that the
harness marks it diverged. The solutions are chosen per run with ``torch.where``; ``eigh(H)``
is made at most once per step, and only when saddle-free Newton or some run's fallback needs it.

Cost per step: one gradient and one Hessian (d gradient evaluations in the oracle's count),
plus one function value per line-search or Levenberg-Marquardt trial. The backtracking and
Levenberg-Marquardt loops are masked per run; as in L-BFGS, their only host sync is the
early-exit test ``if not searching.any(): break`` at the top of each pass, which changes no
result.

References: Nocedal & Wright, Numerical Optimization (2nd ed., 2006), chapter 3 (Newton's
method, Armijo backtracking, Algorithm 3.1) and section 10.3; Levenberg 1944; Marquardt 1963;
Dauphin et al., "Identifying and attacking the saddle point problem in high-dimensional
non-convex optimization", NeurIPS 2014.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from optzoo.errors import ConfigError
from optzoo.linalg import matvec
from optzoo.optimizers.base import Hyper, Optimizer
from optzoo.oracle import CountedOracle, live_runs

LINE_SEARCHES = (None, "backtracking")


class NewtonState(NamedTuple):
    """Newton's state: only the damping, which Levenberg-Marquardt adapts per run."""

    damping: Tensor  # (R,) lambda: fixed, or adapted by Levenberg-Marquardt


class Newton(Optimizer):
    """Newton's method with damping, Levenberg-Marquardt, backtracking and saddle-free variants."""

    name = "newton"
    defaults = {
        "lr": 1.0,
        "damping": 0.0,
        "adaptive": False,
        "damping_factor": 10.0,
        "damping_min": 1e-3,
        "line_search_fn": None,
        "c1": 1e-4,
        "max_trials": 30,
        "saddle_free": False,
        "eig_floor": 1e-8,
    }
    # max_trials bounds a Python loop, so it is one number for the whole batch.
    flags = frozenset({"adaptive", "line_search_fn", "saddle_free", "max_trials"})

    def check(self, hp: Mapping[str, Any]) -> None:
        self.require("lr", hp["lr"], lambda v: v >= 0, "lr >= 0")
        self.require("damping", hp["damping"], lambda v: v >= 0, "damping >= 0")
        self.require("damping_factor", hp["damping_factor"], lambda v: v > 1, "damping_factor > 1")
        self.require("damping_min", hp["damping_min"], lambda v: v > 0, "damping_min > 0")
        self.require("c1", hp["c1"], lambda v: 0 < v < 1, "0 < c1 < 1")
        self.require("eig_floor", hp["eig_floor"], lambda v: v > 0, "eig_floor > 0")
        for key in ("adaptive", "saddle_free"):
            if not isinstance(hp[key], bool):
                raise ConfigError(
                    f"optimizer {self.name!r}: {key} must be True or False, got {hp[key]!r}"
                )
        n = hp["max_trials"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(
                f"optimizer {self.name!r}: invalid max_trials {n!r}; allowed: an integer >= 1"
            )
        if hp["line_search_fn"] not in LINE_SEARCHES:
            raise ConfigError(
                f"optimizer {self.name!r}: unknown line_search_fn {hp['line_search_fn']!r}; "
                f"allowed: None, 'backtracking'"
            )
        if hp["adaptive"] and hp["line_search_fn"] is not None:
            raise ConfigError(
                f"optimizer {self.name!r}: adaptive=True (Levenberg-Marquardt) and "
                f"line_search_fn={hp['line_search_fn']!r} both choose the step length; "
                "allowed: one of them"
            )

    def init(self, x: Tensor) -> NewtonState:
        return NewtonState(damping=self.per_run(x, 1.0)["damping"].clone())

    @torch.no_grad()
    def step(self, x: Tensor, state: NewtonState, oracle: CountedOracle, lr_scale: Hyper = 1.0):
        """One Newton step of every run: returns ``(x_new, state, f(x))``."""
        hp = self.per_run(x, lr_scale)
        f, g = oracle.value_and_grad(x)
        H = oracle.hessian(x)
        # One matrix viewed by every run (a quadratic's Hessian): its tests and factors are made
        # once. Identical matrices give identical factors, so no run's numbers change.
        H_one = H[:1] if H.shape[0] > 1 and H.stride(0) == 0 else H
        finite = torch.isfinite(g).all(-1) & torch.isfinite(H_one).all((-1, -2))
        spectrum = _Spectrum(H, finite, g)  # the plain step needs it only where Cholesky fails

        def direction(lam: Tensor) -> Tensor:
            if self.hp["saddle_free"]:
                w, V, Vg = spectrum.get()
                curvature = w.abs().clamp(min=hp["eig_floor"][:, None]) + lam[:, None]
                return matvec(V, Vg / curvature)
            # H + lam I is shared too where lam is one value for every run (a broadcast).
            shared = H_one is not H and lam.stride(0) == 0
            return self._solve(H_one if shared else H, g, spectrum, lam[:1] if shared else lam)

        searching = finite & live_runs(oracle, x)
        if self.hp["adaptive"]:
            x_new, lam = self._levenberg_marquardt(
                x, f, oracle, direction, state.damping, hp, searching
            )
            state = NewtonState(lam)
        elif self.hp["line_search_fn"] == "backtracking":
            x_new = self._backtracking(x, f, g, direction(hp["damping"]), oracle, hp, searching)
        else:
            x_new = x - hp["lr"][:, None] * direction(hp["damping"])
        # No finite step exists where g or H is not finite: mark the run, the harness stops it.
        return torch.where(finite[:, None], x_new, torch.nan), state, f

    @staticmethod
    def _solve(H: Tensor, g: Tensor, spectrum: _Spectrum, lam: Tensor) -> Tensor:
        """(H + lambda I)^-1 g per run: by Cholesky where H + lambda I is safely positive
        definite; else by LU, or the pseudo-inverse solution where that is singular. ``H`` and
        ``lam`` may hold one run's values for all runs (``(1, n, n)`` and ``(1,)``)."""
        R, n = g.shape
        eye = torch.eye(n, dtype=H.dtype, device=H.device)
        A = H + lam[:, None, None] * eye
        p, ok = _cholesky_solve(A, g)
        # The host sync skips the eigendecomposition when no run needs it; it changes no result.
        if bool(ok.all()):
            return p
        A, lam = A.expand(R, n, n), lam.expand(R)
        w, V, Vg = spectrum.get()
        p_lu, info = torch.linalg.solve_ex(A, g)
        mu = w + lam[:, None]  # eigenvalues of H + lambda I
        cutoff = n * torch.finfo(H.dtype).eps * mu.abs().amax(-1, keepdim=True)
        kept = mu.abs() > cutoff
        inv = torch.where(kept, 1.0 / torch.where(kept, mu, 1.0), 0.0)
        p_pinv = matvec(V, inv * Vg)
        singular = (info != 0) | ~torch.isfinite(p_lu).all(-1) | ~kept.all(-1)
        return torch.where(ok[:, None], p, torch.where(singular[:, None], p_pinv, p_lu))

    def _backtracking(self, x, f, g, p, oracle, hp, searching) -> Tensor:
        """Armijo backtracking along -p from t = lr, halving up to max_trials - 1 times.

        Where p is not a descent direction (g.p <= 0, possible for an indefinite H) the search
        runs along the gradient instead (p = g), since no step along an ascent direction can
        pass the test. A run for which no trial passes stays where it is.
        """
        p = torch.where(((g * p).sum(-1) > 0)[:, None], p, g)
        t = hp["lr"].clone()
        slope = -(g * p).sum(-1)  # d/dt f(x - t p) at t = 0
        x_new = x
        for _ in range(self.hp["max_trials"]):
            if not searching.any():  # early exit only: changes no result
                break
            x_try = x - t[:, None] * p
            f_try = oracle.value(x_try, searching)
            ok = searching & (f_try <= f + hp["c1"] * t * slope)
            x_new = torch.where(ok[:, None], x_try, x_new)
            searching = searching & ~ok
            t = torch.where(searching, t / 2, t)
        return x_new

    def _levenberg_marquardt(
        self, x, f, oracle, direction, lam, hp, searching
    ) -> tuple[Tensor, Tensor]:
        """Levenberg-Marquardt trials (see the module): returns the new x and lambda."""
        nu = hp["damping_factor"]
        big = torch.finfo(x.dtype).max
        x_new = x
        for _ in range(self.hp["max_trials"]):
            if not searching.any():  # early exit only: changes no result
                break
            x_try = x - hp["lr"][:, None] * direction(lam)
            f_try = oracle.value(x_try, searching)
            ok = searching & (f_try < f)
            x_new = torch.where(ok[:, None], x_try, x_new)
            up = torch.maximum(lam * nu, hp["damping_min"]).clamp(max=big)
            lam = torch.where(ok, lam / nu, torch.where(searching, up, lam))
            searching = searching & ~ok
        return x_new, lam


class _Spectrum:
    """eigh(H) and g in its eigenbasis, computed on first use and kept for the step."""

    def __init__(self, H: Tensor, finite: Tensor, g: Tensor) -> None:
        self.H, self.finite, self.g, self.value = H, finite, g, None

    def get(self) -> tuple[Tensor, Tensor, Tensor]:
        if self.value is None:
            # eigh has no error-free variant: give it zeros where H is not finite (those runs
            # get a NaN step anyway).
            w, V = torch.linalg.eigh(torch.where(self.finite[:, None, None], self.H, 0.0))
            self.value = (w, V, matvec(V.transpose(-1, -2), self.g))
        return self.value


def _cholesky_solve(A: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    """A_r^-1 g_r by Cholesky, and where that is safe: A_r positive definite and not
    numerically singular by the pseudo-inverse's test (smallest eigenvalue > n eps largest).

    With A = L L^T, the eigenvalues lie in [1 / |L^-1|_F^2, trace A] (lambda_min(A) =
    1 / |A^-1|_2 >= 1 / |L^-1|_F^2, lambda_max <= trace for a positive definite A), so
    1 / |L^-1|_F^2 > n eps trace(A) proves the test passes without an eigendecomposition. Where
    it does not, or the factorization fails, the caller takes the LU / pseudo-inverse path.
    """
    R, n = g.shape
    L, info = torch.linalg.cholesky_ex(A)
    eye = torch.eye(n, dtype=A.dtype, device=A.device).expand_as(A)
    L_inv = torch.linalg.solve_triangular(L, eye, upper=False)
    lower = 1.0 / (L_inv * L_inv).sum((-1, -2))
    upper = torch.diagonal(A, dim1=-2, dim2=-1).sum(-1)
    safe = (info == 0) & (lower > n * torch.finfo(A.dtype).eps * upper)
    # A shared A (one matrix for every run) was factored once; its inverse factor serves all.
    L_inv = L_inv.expand(R, n, n)
    # p = L^-T (L^-1 g): the two triangular solves of cholesky_solve, with L^-1 already at hand.
    p = matvec(L_inv.transpose(-1, -2), matvec(L_inv, g))
    return p, safe.expand(R) & torch.isfinite(p).all(-1)
