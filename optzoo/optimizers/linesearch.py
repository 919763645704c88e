"""Line searches for the quasi-Newton family, batched and masked: each run pays its own trials.

A search looks for a step length t > 0 along a direction d from x, knowing f(x), grad f(x) and
the slope phi'(0) = g.d < 0 of phi(t) = f(x + t d). Three are here:

- :class:`StrongWolfe`, torch.optim.LBFGS's ``_strong_wolfe`` as a per-run state machine: a
  bracketing phase that extrapolates with cubic interpolation until an interval holds a point
  that satisfies the strong Wolfe conditions (Nocedal & Wright Alg. 3.5), then a zoom phase that
  shrinks it by safeguarded cubic interpolation (Alg. 3.6)::

      f(x + t d) <= f(x) + c1 t g.d                 (sufficient decrease, Armijo)
      |grad f(x + t d).d| <= c2 |g.d|                (curvature, strong form)

  with c1 = 1e-4 and c2 = 0.9 by default. A search whose budget runs out returns the lowest
  point of its bracket (t = 0 if it never left the start).
- :class:`Backtracking`: t, rho t, rho^2 t, ... until the Armijo condition holds (Alg. 3.1); a
  run with no passing trial in its budget returns t = 0.
- :func:`exact_step`: t = -g.d / d'Hd from one Hessian-vector product, the exact minimizer of
  phi on a quadratic (Nocedal & Wright eq. 3.55), and one Newton step on phi elsewhere.

The two iterative searches share one calling pattern, so an optimizer's loop is the same for
both: ``start(go, ...)`` begins a search for the runs in ``go``; then, while any run searches,
the caller evaluates f and g at ``x + search.t d`` for the running runs and passes them with the
slope ``grad f.d`` to ``advance``, which returns the runs whose search ended on that evaluation.
For those, ``t``, ``f``, ``g`` and ``evals`` hold the result. Each pass makes one evaluation per
running run; no Python branch reads a run's values. The caller computes the slopes, so that the
dot product it uses (L-BFGS's, for its agreement with torch) is the only one.

References: Nocedal & Wright, Numerical Optimization (2nd ed., 2006), sections 3.1 and 3.5,
Algorithms 3.1, 3.5 and 3.6, eq. 3.59 (cubic interpolation); torch/optim/lbfgs.py.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

# Sufficient decrease and curvature constants (torch's and Nocedal & Wright's for quasi-Newton).
C1, C2 = 1e-4, 0.9
# The zoom stops once the bracket is narrower than this along d (torch's default tolerance_change).
LS_TOLERANCE = 1e-9


class Masked:
    """Per-run variables of a masked loop; ``put`` assigns where a ``(R,)`` mask holds."""

    def __init__(self, **fields: Tensor) -> None:
        self.__dict__.update(fields)

    def put(self, mask: Tensor, **values: Any) -> None:
        shaped: dict[int, Tensor] = {}  # the mask broadcast to each rank, made once per call
        for name, value in values.items():
            old = getattr(self, name)
            m = shaped.get(old.ndim)
            if m is None:
                m = shaped[old.ndim] = mask.reshape(mask.shape + (1,) * (old.ndim - 1))
            setattr(self, name, torch.where(m, value, old))


def py_max(a: Tensor, b: Tensor) -> Tensor:
    """Python's ``max(a, b)``: ``b`` only where ``b > a`` (so a NaN ``a`` stays)."""
    return torch.where(b > a, b, a)


def py_min(a: Tensor, b: Tensor) -> Tensor:
    """Python's ``min(a, b)``: ``b`` only where ``b < a``."""
    return torch.where(b < a, b, a)


def cubic_interpolate(x1, f1, g1, x2, f2, g2, lo, hi) -> Tensor:
    """Minimizer of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to [lo, hi].

    Where the cubic has no real minimizer the midpoint of [lo, hi] is returned (Nocedal &
    Wright eq. 3.59; torch's ``_cubic_interpolate``, elementwise)::

        d1 = g1 + g2 - 3 (f1 - f2) / (x1 - x2),  d2 = sqrt(d1^2 - g1 g2)
        x* = x2 - (x2 - x1) (g2 + d2 - d1) / (g2 - g1 + 2 d2)     (x1 <= x2; mirrored otherwise)
    """
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    d2 = d2_square.clamp(min=0).sqrt()
    min_pos = torch.where(
        x1 <= x2,
        x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2)),
        x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2)),
    )
    return torch.where(d2_square >= 0, py_min(py_max(min_pos, lo), hi), (lo + hi) / 2.0)


class StrongWolfe(Masked):
    """torch's strong-Wolfe search for R runs at once, each a state machine (see the module).

    Per run: ``t`` the pending trial (the result once ended), ``f0, g0, gtd0`` the start,
    ``phase`` 0 bracketing or 1 zoom, ``ls_iter`` trials so far, ``max_ls`` the budget,
    ``t_prev, f_prev, g_prev, gtd_prev`` the previous bracketing trial, and the bracket's two
    ends j = 0, 1: step ``btj``, value ``bfj``, gradient ``bgj`` and slope ``bgtdj`` (a tensor
    each, read and written by where, not by index), with ``low`` (0 or 1) its lower one.
    """

    def __init__(self, x: Tensor, c1: Tensor | float = C1, c2: Tensor | float = C2) -> None:
        R = x.shape[0]
        zero = x.new_zeros(R)
        i64 = dict(dtype=torch.int64, device=x.device)
        no = torch.zeros(R, dtype=torch.bool, device=x.device)
        super().__init__(
            t=zero,
            f0=zero,
            g0=torch.zeros_like(x),
            gtd0=zero,
            phase=torch.zeros(R, **i64),
            ls_iter=torch.zeros(R, **i64),
            max_ls=torch.zeros(R, **i64),
            done=no,
            insuf=no,
            d_norm=zero,
            t_prev=zero,
            f_prev=zero,
            gtd_prev=zero,
            g_prev=torch.zeros_like(x),
            bt0=zero,
            bt1=zero,
            bf0=zero,
            bf1=zero,
            bgtd0=zero,
            bgtd1=zero,
            bg0=torch.zeros_like(x),
            bg1=torch.zeros_like(x),
            low=torch.zeros(R, **i64),
            f=zero,
            g=torch.zeros_like(x),
            evals=torch.zeros(R, **i64),
        )
        self.c1, self.c2 = c1, c2

    def start(
        self, go: Tensor, t: Tensor, f: Tensor, g: Tensor, gtd: Tensor, d: Tensor, max_ls: Tensor
    ) -> Tensor:
        """Start a search from trial step ``t`` where ``go``; its first trial is x + t d."""
        self.put(
            go,
            t=t,
            f0=f,
            g0=g,
            gtd0=gtd,
            phase=0,
            ls_iter=0,
            max_ls=max_ls,
            done=False,
            insuf=False,
            d_norm=d.abs().amax(-1),
            t_prev=0.0,
            f_prev=f,
            g_prev=g,
            gtd_prev=gtd,
        )
        return go

    def advance(self, running: Tensor, f_new: Tensor, g_new: Tensor, gtd_new: Tensor) -> Tensor:
        """Advance each running search by its evaluation (f_new, g_new, gtd_new) at x + t d.

        Returns the runs whose search ended; for them ``t, f, g`` are the search's result and
        ``evals`` the evaluations it made. Bracketing and zoom as torch's ``_strong_wolfe``.
        """
        t = self.t
        armijo_fails = f_new > self.f0 + self.c1 * t * self.gtd0
        wolfe = gtd_new.abs() <= -self.c2 * self.gtd0
        zooming = running & (self.phase == 1)

        def put_at(mask: Tensor, pos: Tensor, bt, bf, bg, bgtd) -> None:
            at0 = pos == 0
            self.put(mask & at0, bt0=bt, bf0=bf, bg0=bg, bgtd0=bgtd)
            self.put(mask & ~at0, bt1=bt, bf1=bf, bg1=bg, bgtd1=bgtd)

        def at(name: str, pos: Tensor) -> Tensor:
            b0, b1 = getattr(self, name + "0"), getattr(self, name + "1")
            return torch.where((pos == 0).reshape(pos.shape + (1,) * (b0.ndim - 1)), b0, b1)

        def lowest() -> Tensor:
            return torch.where(self.bf0 <= self.bf1, 0, 1)

        # Bracketing: the first trial and each extrapolation.
        bracketing = running & (self.phase == 0)
        exhausted = bracketing & (self.ls_iter >= self.max_ls)
        live = bracketing & ~exhausted
        fails = armijo_fails | ((self.ls_iter > 1) & (f_new >= self.f_prev))
        found = live & ~fails & wolfe
        bracketed = live & (fails | (~wolfe & (gtd_new >= 0)))
        extend = live & ~fails & ~wolfe & ~(gtd_new >= 0)
        # Slot 0: [0, f, g] when out of evaluations, the point itself when found, else the
        # previous trial. Slot 1: the new trial.
        zero = torch.zeros_like(t)
        b0_t = torch.where(found, t, torch.where(exhausted, zero, self.t_prev))
        b0_f = torch.where(found, f_new, torch.where(exhausted, self.f0, self.f_prev))
        b0_g = torch.where(
            found[:, None], g_new, torch.where(exhausted[:, None], self.g0, self.g_prev)
        )
        b0_gtd = torch.where(found, gtd_new, self.gtd_prev)
        new_bracket = exhausted | found | bracketed
        self.put(
            new_bracket,
            bt0=b0_t,
            bt1=t,
            bf0=b0_f,
            bf1=f_new,
            bg0=b0_g,
            bg1=g_new,
            bgtd0=b0_gtd,
            bgtd1=gtd_new,
        )
        self.put(new_bracket, low=lowest())
        self.put(found, done=True)
        self.put(bracketed, phase=1)
        lo, hi = t + 0.01 * (t - self.t_prev), t * 10
        t_next = cubic_interpolate(
            self.t_prev, self.f_prev, self.gtd_prev, t, f_new, gtd_new, lo, hi
        )
        self.put(
            extend,
            t_prev=t,
            f_prev=f_new,
            g_prev=g_new,
            gtd_prev=gtd_new,
            t=t_next,
            ls_iter=self.ls_iter + 1,
        )

        # Zoom: fold the trial into the bracket [low, high].
        low, high = self.low, 1 - self.low
        shrink = zooming & (armijo_fails | (f_new >= at("bf", low)))
        put_at(shrink, high, t, f_new, g_new, gtd_new)
        self.put(shrink, low=lowest())
        keep = zooming & ~shrink
        self.put(keep & wolfe, done=True)
        flip = keep & ~wolfe & (gtd_new * (at("bt", high) - at("bt", low)) >= 0)
        put_at(flip, high, at("bt", low), at("bf", low), at("bg", low), at("bgtd", low))
        put_at(keep, low, t, f_new, g_new, gtd_new)

        # Zoom loop head, for runs zooming and runs that just bracketed.
        in_zoom = zooming | bracketed
        b0, b1 = self.bt0, self.bt1
        narrow = (b1 - b0).abs() * self.d_norm < LS_TOLERANCE
        stop = in_zoom & (self.done | (self.ls_iter >= self.max_ls) | narrow)
        cont = in_zoom & ~stop
        lo, hi = torch.where(b0 <= b1, b0, b1), torch.where(b0 <= b1, b1, b0)
        t_try = cubic_interpolate(b0, self.bf0, self.bgtd0, b1, self.bf1, self.bgtd1, lo, hi)
        # Safeguard (torch): a trial within 10% of the bracket's ends twice in a row, or on or
        # past an end, is moved 10% of the bracket's width inside.
        b_max, b_min = py_max(b0, b1), py_min(b0, b1)
        eps = 0.1 * (b_max - b_min)
        near_end = py_min(b_max - t_try, t_try - b_min) < eps
        at_end = self.insuf | (t_try >= b_max) | (t_try <= b_min)
        moved = torch.where((t_try - b_max).abs() < (t_try - b_min).abs(), b_max - eps, b_min + eps)
        self.put(
            cont,
            t=torch.where(near_end & at_end, moved, t_try),
            insuf=near_end & ~at_end,
            ls_iter=self.ls_iter + 1,
        )

        # Searches that ended take the bracket's low point.
        ended = exhausted | found | stop
        self.put(
            ended,
            t=at("bt", self.low),
            f=at("bf", self.low),
            g=at("bg", self.low),
            evals=self.ls_iter + 1,
        )
        return ended


class Backtracking(Masked):
    """Armijo backtracking for R runs at once: t, rho t, rho^2 t, ... (Nocedal & Wright Alg. 3.1).

    The first trial that satisfies f(x + t d) <= f(x) + c1 t g.d ends a run's search; after
    ``max_ls`` failed trials it ends with t = 0 and the start's f and g. The same calling pattern
    as :class:`StrongWolfe` (the slope argument of ``advance`` is not needed and ignored).
    """

    def __init__(self, x: Tensor, c1: Tensor | float = C1, rho: Tensor | float = 0.5) -> None:
        R = x.shape[0]
        zero = x.new_zeros(R)
        i64 = dict(dtype=torch.int64, device=x.device)
        super().__init__(
            t=zero,
            f0=zero,
            g0=torch.zeros_like(x),
            gtd0=zero,
            max_ls=torch.zeros(R, **i64),
            f=zero,
            g=torch.zeros_like(x),
            evals=torch.zeros(R, **i64),
        )
        self.c1, self.rho = c1, rho

    def start(
        self, go: Tensor, t: Tensor, f: Tensor, g: Tensor, gtd: Tensor, d: Tensor, max_ls: Tensor
    ) -> Tensor:
        """Start a search from trial step ``t`` where ``go``; its first trial is x + t d."""
        self.put(go, t=t, f0=f, g0=g, gtd0=gtd, max_ls=max_ls, evals=0)
        return go

    def advance(
        self, running: Tensor, f_new: Tensor, g_new: Tensor, gtd_new: Tensor | None = None
    ) -> Tensor:
        """Take each running run's trial (f_new, g_new) at x + t d; returns the runs that ended."""
        self.put(running, evals=self.evals + 1)
        ok = running & (f_new <= self.f0 + self.c1 * self.t * self.gtd0)
        failed = running & ~ok & (self.evals >= self.max_ls)
        self.put(ok, f=f_new, g=g_new)
        self.put(failed, t=0.0, f=self.f0, g=self.g0)
        self.put(running & ~ok & ~failed, t=self.t * self.rho)
        return ok | failed


def exact_step(oracle: Any, x: Tensor, d: Tensor, gtd: Tensor, active: Tensor, t_else: Tensor):
    """t = -g.d / d'H d per run from one Hessian-vector product at x (counted where ``active``).

    Exact on a quadratic, where phi(t) = f(x + t d) is a parabola with phi'(0) = g.d and
    phi'' = d'Ad (Nocedal & Wright eq. 3.55). Where d'H d is not positive and finite there is no
    minimizer along d, and ``t_else`` is returned instead.
    """
    curvature = torch.linalg.vecdot(oracle.hvp(x, d, active), d)
    ok = (curvature > 0) & torch.isfinite(curvature)
    return torch.where(ok, -gtd / torch.where(ok, curvature, 1.0), t_else)
