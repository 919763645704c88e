"""Critical points: Hessian spectra, their kind, the minimum ratio, and escape directions.

At a critical point (g = 0) the eigenvalues of the Hessian H decide its kind: all positive, a
minimum; all negative, a maximum; both signs, a saddle; otherwise a zero eigenvalue decides it and
the point is degenerate (second-order information cannot tell). The *minimum ratio* is the share
of positive eigenvalues, 1 at a strict minimum (Hung-yi Lee, ML 2021, "When gradient is small";
one minus the index of Bray & Dean 2007 and Dauphin et al. 2014). Along an eigenvector u with
eigenvalue lambda < 0, f(x + t u) = f(x) + t g.u + t^2 lambda / 2 + O(t^3) falls: that is the
escape direction of a saddle.

Tolerances, relative to the point's own scales (eps is the machine epsilon of x's dtype):

- a point is *critical* when the regularised Newton step to the critical point of its quadratic
  model is short: ``s = |sum_i (u_i.g) / max(|lambda_i|, tol * max|lambda|) u_i| <= xtol *
  max(1, |x|)``, with ``xtol`` by default ``max(1e-4, 10 sqrt(eps))`` (1e-4 in float64, 3.5e-3 in
  float32: a float32 iterate cannot settle much closer than ``sqrt(eps)`` relative). Measured in
  x rather than in |g|, the test does not change when f is scaled or shifted: a plateau (a tiny
  gradient over a tinier curvature, as Easom's at the origin) is not critical, while a run that
  stopped 1e-5 from a saddle is at the saddle;
- an eigenvalue is *zero* when ``|lambda_i| <= tol * max_j |lambda_j|``, with ``tol`` by default
  ``sqrt(eps)`` (1.5e-8 in float64, 3.5e-4 in float32), about the relative error of a Hessian
  computed by autograd and diagonalised in that precision. A point judged critical is not exactly
  the critical point x* = x - H^-1 g (regularised as above); by Weyl's inequality each eigenvalue
  there differs from x's by at most ``|H(x*) - H(x)|_2``, which is measured (one more Hessian)
  and widens the zero bound. So a run that stopped 1e-5 from a valley of degenerate minima, whose
  Hessian has small eigenvalues of either sign, reads as degenerate rather than as a saddle, while
  a run near Rosenbrock's ill-conditioned minimum (eigenvalues 0.4 and 1001.6) reads as a
  minimum.

Up to ``dense_max`` dimensions the Hessians are dense and fully diagonalised; above, Lanczos on
Hessian-vector products gives the extreme eigenvalues only: the minimum ratio and the eigenvalue
counts are then unknown (NaN, -1), the kind follows from the signs of the extremes, the Newton
step is estimated by ``|g| / max|lambda|``, and instead of a second spectrum the eigenvalue drift
is estimated as ``10 s max|lambda| / max(1, |x|)`` (|d^3 f| taken as 10 max|lambda| / max(1, |x|)).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from optzoo.errors import ConfigError
from optzoo.linalg import (
    NegativeCurvature,
    default_tol,
    hessian,
    lanczos,
    negative_curvature,
)
from optzoo.problems.base import Problem

KINDS = ("minimum", "maximum", "saddle", "degenerate", "not_critical")
DENSE_MAX = 2000  # largest dimension with dense Hessians; above it, Lanczos
MEMORY = 500e6  # bytes of Hessians (and Lanczos bases) held at once
CURVATURE_SLACK = 10.0  # |d^3 f| estimated as CURVATURE_SLACK * max|lambda| / max(1, |x|)


def default_xtol(dtype: torch.dtype) -> float:
    """Relative distance under which a point counts as critical: max(1e-4, 10 sqrt(eps))."""
    return max(1e-4, 10 * math.sqrt(torch.finfo(dtype).eps))


@dataclass(frozen=True)
class Classification:
    """The kind of one point, with its spectrum (float64, ascending; None above ``dense_max``)."""

    kind: str
    eigenvalues: Tensor | None
    eig_min: float
    eig_max: float
    grad_norm: float
    min_ratio: float  # share of positive eigenvalues; NaN when only the extremes are known
    n_neg: int  # eigenvalues below minus the zero bound; -1 when unknown
    n_zero: int  # eigenvalues within the zero bound (module docstring); -1 when unknown
    f: float
    newton_step: float  # length of the regularised Newton step to the model's critical point


def loss_fn(problem_or_callable: Problem | Callable[[Tensor], Tensor], x: Tensor) -> Callable:
    """The batched loss ``(..., d) -> (...)`` of a Problem or of a callable, batched or not.

    A callable is tried as batched on the first point, then as a one-point callable (vmapped); each
    try validates it as an :class:`optzoo.Problem` would.
    """
    if isinstance(problem_or_callable, Problem):
        return problem_or_callable.fn
    if not callable(problem_or_callable):
        raise ConfigError(
            f"classify needs a Problem or a callable, got {type(problem_or_callable).__name__}"
        )
    rows = x.reshape(-1, x.shape[-1])
    finite = torch.isfinite(rows).all(dim=-1)
    # Validate on a finite point where there is one.
    x0 = rows[int(finite.to(torch.int64).argmax())] if bool(finite.any()) else rows[0].nan_to_num()
    try:
        return Problem(fn=problem_or_callable, x0=x0, batched=True).fn
    except ConfigError:
        return Problem(fn=problem_or_callable, x0=x0, batched=False).fn


def classify(
    problem_or_callable: Problem | Callable[[Tensor], Tensor],
    x: Tensor | Any,
    tol: float | None = None,
    *,
    xtol: float | None = None,
    dense_max: int = DENSE_MAX,
) -> Classification:
    """The critical-point kind of one point ``x (d,)``; see the module docstring for the rules.

    ``classify(lambda z: z[0] ** 2 - z[1] ** 2, [0.0, 0.0]).kind == "saddle"``.
    """
    x = _points(x)
    if x.ndim != 1:
        raise ConfigError(f"classify takes one point of shape (d,), got shape {tuple(x.shape)}")
    res = classify_batch(problem_or_callable, x[None], tol, xtol=xtol, dense_max=dense_max)
    ev = res["eigenvalues"]
    return Classification(
        kind=res["kind"][0],
        eigenvalues=None if ev is None else ev[0],
        eig_min=float(res["eig_min"][0]),
        eig_max=float(res["eig_max"][0]),
        grad_norm=float(res["grad_norm"][0]),
        min_ratio=float(res["min_ratio"][0]),
        n_neg=int(res["n_neg"][0]),
        n_zero=int(res["n_zero"][0]),
        f=float(res["f"][0]),
        newton_step=float(res["newton_step"][0]),
    )


def classify_batch(
    problem_or_callable: Problem | Callable[[Tensor], Tensor],
    X: Tensor,
    tol: float | None = None,
    *,
    xtol: float | None = None,
    dense_max: int = DENSE_MAX,
    k: int | None = None,
    memory: float = MEMORY,
) -> dict[str, Any]:
    """Classify every row of ``X (R, d)`` at once; returns plain data on the CPU.

    Keys: ``kind`` (list of R strings from :data:`KINDS`), ``eigenvalues`` (R, d) ascending or
    None above ``dense_max``, and tensors (R,): ``eig_min``, ``eig_max``, ``grad_norm``,
    ``min_ratio``, ``n_neg``, ``n_zero``, ``f``, ``newton_step``. Gradients and Hessians are
    computed for a chunk of rows at a time, at most ``memory`` bytes of Hessians per chunk. A row
    whose f, gradient or Hessian is not finite is ``not_critical`` with NaN numbers. Lanczos (above
    ``dense_max``) runs ``k`` iterations, default ``min(d, 100)``.
    """
    X = _points(X)
    if X.ndim != 2:
        raise ConfigError(f"classify_batch takes points (R, d), got shape {tuple(X.shape)}")
    R, d = X.shape
    fn = loss_fn(problem_or_callable, X) if R else None
    # A quadratic's Hessian is the same matrix at every point, and so is autograd's, bit for bit
    # (no op of its double-backward pass reads x): one Hessian and one eigh serve every row.
    same_h = isinstance(problem_or_callable, Problem) and problem_or_callable.hessian_is_constant
    tol = default_tol(X.dtype) if tol is None else float(tol)
    xtol = default_xtol(X.dtype) if xtol is None else float(xtol)
    dense = d <= dense_max
    k = min(d, 100) if k is None else max(1, min(int(k), d))
    per_row = 8 * d * (3 * d if dense else k + 4)
    chunk = max(1, int(memory // per_row))
    parts = [
        _dense_chunk(fn, X[i : i + chunk], tol, xtol, same_h)
        if dense
        else _lanczos_chunk(fn, X[i : i + chunk], tol, xtol, k)
        for i in range(0, R, chunk)
    ]
    out: dict[str, Any] = {}
    keys = ["eig_min", "eig_max", "grad_norm", "min_ratio", "n_neg", "n_zero", "f", "newton_step"]
    for key in [*keys, "eigenvalues"]:
        vals = [p[key] for p in parts]
        if key == "eigenvalues" and not dense:
            out[key] = None
        elif vals:
            out[key] = torch.cat(vals)
        else:
            dt = torch.int64 if key in ("n_neg", "n_zero") else torch.float64
            out[key] = torch.zeros((0, d) if key == "eigenvalues" else (0,), dtype=dt)
    out["kind"] = [kind for p in parts for kind in p["kind"]]
    return out


def _points(x: Tensor | Any) -> Tensor:
    """Points as a floating tensor: a tensor keeps its dtype, anything else becomes float64."""
    if isinstance(x, Tensor):
        return x.detach() if x.is_floating_point() else x.detach().to(torch.float64)
    return torch.as_tensor(x, dtype=torch.float64)


def _value_grad(fn: Callable, X: Tensor, create_graph: bool = False):
    with torch.enable_grad():
        xr = X.detach().requires_grad_(True)
        f = fn(xr)
        (g,) = torch.autograd.grad(f.sum(), xr, create_graph=create_graph)
    return xr, f, g


def _zero_tol(scale: Tensor, tol: float, rel_step: Tensor, critical: Tensor) -> Tensor:
    """Per-row bound under which an eigenvalue is zero (module docstring), ``(R,)``."""
    slack = torch.where(critical, CURVATURE_SLACK * rel_step, torch.zeros_like(rel_step))
    return scale * torch.clamp(slack, min=tol)


def _kinds(critical: Tensor, pos: Tensor, neg: Tensor, zero: Tensor) -> list[str]:
    """Kind per row from boolean (R,) tensors: any positive, any negative, any zero eigenvalue."""
    kind = torch.full(critical.shape, 3, dtype=torch.int64)  # degenerate
    kind = torch.where(pos & ~neg & ~zero, 0, kind)
    kind = torch.where(neg & ~pos & ~zero, 1, kind)
    kind = torch.where(pos & neg, 2, kind)
    kind = torch.where(critical, kind, 4)
    return [KINDS[i] for i in kind.tolist()]


def _dense_chunk(fn, X: Tensor, tol: float, xtol: float, same_h: bool) -> dict[str, Any]:
    _, f, g = _value_grad(fn, X)
    f, g = f.detach(), g.detach()
    n, d = X.shape
    if same_h:
        # Taken at the origin, so that no row's overflow reaches it; rows that are not ok are
        # masked below wherever the general path's zeroed Hessian would differ.
        H1 = hessian(fn, torch.zeros_like(X[:1]))
        lam1, U1 = torch.linalg.eigh(H1)
        H, lam, U = H1.expand(n, d, d), lam1.expand(n, d), U1.expand(n, d, d).contiguous()
        h_ok = torch.isfinite(H1).all().expand(n)
    else:
        H = hessian(fn, X)
        h_ok = torch.isfinite(H).flatten(1).all(-1)
    ok = torch.isfinite(f) & torch.isfinite(g).all(-1) & h_ok
    if not same_h:
        H = torch.where(ok[:, None, None], H, torch.zeros_like(H))
        lam, U = torch.linalg.eigh(H)
    scale = lam.abs().amax(-1)
    # Curvature floor: a zero eigenvalue counts as tol * max|lambda|; the tiny keeps 0/0 out.
    floor = torch.clamp(tol * scale, min=torch.finfo(lam.dtype).tiny)
    coef = (U.transpose(-1, -2) @ g.unsqueeze(-1)).squeeze(-1)
    step = torch.linalg.vector_norm(coef / torch.maximum(lam.abs(), floor[:, None]), dim=-1)
    length = torch.clamp(torch.linalg.vector_norm(X, dim=-1), min=1.0)
    critical = ok & (step <= xtol * length)
    # How far these eigenvalues may be from those at the critical point itself: by Weyl's
    # inequality at most |H(x*) - H(x)|_2, measured at the Newton-projected point x*. Only the
    # critical rows read it, and it is 0 where H(x*) = H(x) (a quadratic): then neither the
    # second Hessian nor the norm (an SVD per row) is computed.
    drift = torch.zeros_like(scale)
    if not same_h and bool(critical.any()):
        sgn = torch.sign(lam)
        newton = U @ (coef / torch.maximum(lam.abs(), floor[:, None]) * sgn).unsqueeze(-1)
        X_star = X - newton.squeeze(-1)
        D = torch.nan_to_num(hessian(fn, X_star) - H, nan=float("inf"))
        if bool((critical & (D != 0).flatten(1).any(-1)).any()):
            drift = torch.linalg.matrix_norm(D, ord=2)
    bound = torch.where(critical, torch.maximum(tol * scale, drift), tol * scale)
    zero = lam.abs() <= bound[:, None]
    n_pos = (~zero & (lam > 0)).sum(-1)
    n_neg = (~zero & (lam < 0)).sum(-1)
    n_zero = zero.sum(-1)
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    lam64 = torch.where(ok[:, None], lam.to(torch.float64), nan)
    return {
        "kind": _kinds(critical.cpu(), (n_pos > 0).cpu(), (n_neg > 0).cpu(), (n_zero > 0).cpu()),
        "eigenvalues": lam64.cpu(),
        "eig_min": lam64[:, 0].cpu(),
        "eig_max": lam64[:, -1].cpu(),
        "grad_norm": torch.linalg.vector_norm(g, dim=-1).to(torch.float64).cpu(),
        "min_ratio": torch.where(ok, n_pos.to(torch.float64) / X.shape[-1], nan).cpu(),
        "n_neg": torch.where(ok, n_neg, -1).cpu(),
        "n_zero": torch.where(ok, n_zero, -1).cpu(),
        "f": f.to(torch.float64).cpu(),
        "newton_step": torch.where(ok, step.to(torch.float64), nan).cpu(),
    }


def _lanczos_chunk(fn, X: Tensor, tol: float, xtol: float, k: int) -> dict[str, Any]:
    xr, f, g = _value_grad(fn, X, create_graph=True)
    gd = g.detach()

    def hvp(V: Tensor) -> Tensor:
        if not g.requires_grad:  # f is linear in x: H = 0
            return torch.zeros_like(V)
        with torch.enable_grad():
            (hv,) = torch.autograd.grad((g * V).sum(), xr, retain_graph=True, allow_unused=True)
        return torch.zeros_like(V) if hv is None else hv

    lo, hi = lanczos(hvp, X.shape[-1], k, R=X.shape[0], dtype=X.dtype, device=X.device)
    f = f.detach()
    ok = torch.isfinite(f) & torch.isfinite(gd).all(-1) & torch.isfinite(lo) & torch.isfinite(hi)
    scale = torch.maximum(lo.abs(), hi.abs())
    gnorm = torch.linalg.vector_norm(gd, dim=-1)
    step = gnorm / torch.clamp(scale, min=torch.finfo(scale.dtype).tiny)
    length = torch.clamp(torch.linalg.vector_norm(X, dim=-1), min=1.0)
    critical = ok & (step <= xtol * length)
    ztol = _zero_tol(scale, tol, step / length, critical)
    pos, neg = hi > ztol, lo < -ztol
    # Ritz values lie inside the spectrum: an extreme within tol of zero may hide a zero eigenvalue.
    zero = (lo.abs() <= ztol) | (hi.abs() <= ztol)
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    R = X.shape[0]
    return {
        "kind": _kinds(critical.cpu(), pos.cpu(), neg.cpu(), zero.cpu()),
        "eigenvalues": None,
        "eig_min": torch.where(ok, lo.to(torch.float64), nan).cpu(),
        "eig_max": torch.where(ok, hi.to(torch.float64), nan).cpu(),
        "grad_norm": gnorm.to(torch.float64).cpu(),
        "min_ratio": torch.full((R,), float("nan"), dtype=torch.float64),
        "n_neg": torch.full((R,), -1, dtype=torch.int64),
        "n_zero": torch.full((R,), -1, dtype=torch.int64),
        "f": f.to(torch.float64).cpu(),
        "newton_step": torch.where(ok, step.to(torch.float64), nan).cpu(),
    }


class EscapeDirection(NamedTuple):
    """Unit directions of negative curvature that lower f (zero where there is none)."""

    direction: Tensor  # like x
    eigenvalue: Tensor  # smallest Hessian eigenvalue, like x without its last axis


def escape_direction(
    problem_or_callable: Problem | Callable[[Tensor], Tensor],
    x: Tensor | Any,
    tol: float | None = None,
    h: float | None = None,
) -> EscapeDirection:
    """The eigenvector of the most negative Hessian eigenvalue, signed to lower f; batched.

    ``x`` is one point ``(d,)`` or a batch ``(R, d)``. Of u and -u, the direction is the one with
    the lower f(x + h u), h = ``h`` or ``1e-3 * max(1, |x|)``: both fall by ``h^2 |lambda| / 2``,
    so the gradient (``h g.u``) and third-order terms decide (Dauphin et al. 2014, "Identifying
    and attacking the saddle point problem"; Hung-yi Lee, ML 2021). Where the smallest eigenvalue
    is not below ``-tol * max|lambda|`` the direction is zero: there is no negative curvature.
    """
    x = _points(x)
    X = x.reshape(-1, x.shape[-1])
    fn = loss_fn(problem_or_callable, X)
    nc = negative_curvature(hessian(fn, X), tol)
    step = (
        torch.clamp(torch.linalg.vector_norm(X, dim=-1, keepdim=True), min=1.0) * 1e-3
        if h is None
        else float(h)
    )
    u = nc.vector
    with torch.no_grad():
        flip = fn(X - step * u) < fn(X + step * u)
    u = torch.where((flip & nc.negative)[:, None], -u, u)
    u = torch.where(nc.negative[:, None], u, torch.zeros_like(u))
    return EscapeDirection(u.reshape(x.shape), nc.eigenvalue.reshape(x.shape[:-1]))


__all__ = [
    "KINDS",
    "Classification",
    "EscapeDirection",
    "NegativeCurvature",
    "classify",
    "classify_batch",
    "escape_direction",
    "lanczos",
    "negative_curvature",
]
