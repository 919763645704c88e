"""Ravine landscapes: narrow curved or ill-conditioned valleys where plain descent zigzags."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor

from optzoo.errors import ConfigError
from optzoo.problems.base import Problem, constant_hessian


def _rosenbrock(x: Tensor) -> Tensor:
    a, b = x[..., :-1], x[..., 1:]
    return (100.0 * (b - a**2) ** 2 + (1.0 - a) ** 2).sum(dim=-1)


# The analytic gradients below take autograd's backward pass of the loss op for op (the chain
# rule in the order torch applies it), so they agree with it bit for bit, and a run's numbers do
# not depend on which one the oracle used; tests/test_ravine.py checks this. Without the graph an
# oracle evaluation (f and g) is 2-2.7x faster for R <= 1e3 and 1.1-1.4x for Rosenbrock at
# R = 1e5-1e6 (measured). The rotated ellipsoid computes x Q twice (for f, then for g).
def _rosenbrock_value_and_grad(x: Tensor) -> tuple[Tensor, Tensor]:
    a, b = x[..., :-1], x[..., 1:]
    u = b - a**2
    w = 1.0 - a
    f = (100.0 * u**2 + w**2).sum(dim=-1)  # _rosenbrock's ops, so the same bits
    g_u = 100.0 * (2.0 * u)  # d/du 100 u^2
    g_a = -g_u * (2.0 * a) - 2.0 * w  # through u = b - a^2, and (1 - a)^2
    # x_i is a in term i and b in term i - 1: the two slices' gradients, zero-padded and added.
    return f, torch.nn.functional.pad(g_a, (0, 1)) + torch.nn.functional.pad(g_u, (1, 0))


def _rosenbrock_grad(x: Tensor) -> Tensor:
    return _rosenbrock_value_and_grad(x)[1]


def _rosenbrock_hessian(x: Tensor) -> Tensor:
    """Tridiagonal: d2f/da_i^2 = 1200 a_i^2 - 400 b_i + 2 (+ 200 where x_i is also a b),
    d2f/da_i db_i = -400 a_i."""
    a, b = x[..., :-1], x[..., 1:]
    pad = torch.nn.functional.pad
    diag = pad(1200.0 * a * a - 400.0 * b + 2.0, (0, 1)) + pad(torch.full_like(a, 200.0), (1, 0))
    off = -400.0 * a
    return torch.diag_embed(diag) + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)


def _rotate(x: Tensor, Q: Tensor) -> Tensor:
    """x Q per point, as one small GEMM per point (``bmm`` of (1, d) rows by a broadcast Q).

    A plain ``x @ Q`` lets BLAS block over the points, so a run's rounding would depend on how
    many runs share its batch; one product per point cannot (tests/test_ravine.py checks it bit
    for bit), and at d = 100 it is ~30x faster than the broadcast product-and-sum it replaces.
    """
    flat = x.reshape(-1, 1, x.shape[-1])
    out = torch.bmm(flat, Q.to(dtype=x.dtype, device=x.device).expand(flat.shape[0], *Q.shape))
    return out.reshape(*x.shape[:-1], Q.shape[-1])


def _ellipsoid(x: Tensor, Q: Tensor | None, lam: Tensor) -> Tensor:
    z = x if Q is None else _rotate(x, Q)
    return 0.5 * (lam.to(dtype=x.dtype, device=x.device) * z * z).sum(dim=-1)


def _ellipsoid_grad(x: Tensor, Q: Tensor | None, lam: Tensor) -> Tensor:
    z = x if Q is None else _rotate(x, Q)
    lam = lam.to(dtype=x.dtype, device=x.device)
    g_z = 0.5 * (lam * z) + (0.5 * z) * lam  # both factors of (lam z) z
    return g_z if Q is None else _rotate(g_z, Q.T)  # bmm's backward: grad @ Q^T


def _beale(x: Tensor) -> Tensor:
    u, v = x[..., 0], x[..., 1]
    return (1.5 - u + u * v) ** 2 + (2.25 - u + u * v**2) ** 2 + (2.625 - u + u * v**3) ** 2


def rosenbrock(dim: int = 2) -> Problem:
    """Rosenbrock's banana valley, chained n-D form (as scipy.optimize.rosen).

    f(x) = sum_{i=1}^{n-1} [100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2]; f* = 0 at (1, ..., 1).
    Start (-1.2, 1) in 2-D, f = 24.2 (Rosenbrock 1960; More, Garbow & Hillstrom 1981, problem 1);
    in n-D the same pair repeated, (-1.2, 1, -1.2, 1, ...), as MGH's extended Rosenbrock start.
    For n >= 4 there is also a local minimum near (-1, 1, ..., 1) with f ~ 3.7-4 (Kok & Sandrock
    2009). Box [-2.048, 2.048]^n (De Jong 1975). Reference: Rosenbrock (1960), "An automatic
    method for finding the greatest or least value of a function", The Computer Journal 3(3).
    """
    if not 2 <= dim <= 100_000:
        raise ConfigError(f"problem 'rosenbrock': param dim must be in [2, 100000], got {dim}")
    x0 = [-1.2 if i % 2 == 0 else 1.0 for i in range(dim)]
    note = "; a local minimum near (-1, 1, ..., 1) too" if dim >= 4 else ""
    return Problem(
        fn=_rosenbrock,
        grad=_rosenbrock_grad,
        value_and_grad=_rosenbrock_value_and_grad,
        hessian=_rosenbrock_hessian,
        x0=x0,
        name="rosenbrock",
        category="ravine",
        bounds=(-2.048, 2.048),
        f_star=0.0,
        minimizers=[[1.0] * dim],
        description=(
            "f(x) = sum_{i<n} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2; f* = 0 at (1, ..., 1); "
            f"start (-1.2, 1, ...), n = {dim}{note}"
        ),
        params={"dim": dim},
    )


def ellipsoid(dim: int = 10, cond: float = 1e3, seed: int = 0, rotate: bool = True) -> Problem:
    """A rotated ill-conditioned quadratic: f(x) = 1/2 sum_i lambda_i (q_i . x)^2.

    lambda_i = cond^{(i-1)/(n-1)}, log-spaced from 1 to cond, so the Hessian Q diag(lambda) Q^T
    has condition number exactly ``cond``; Q is the orthogonal factor of the QR decomposition of
    an n x n standard normal matrix from ``torch.Generator().manual_seed(seed)`` (signs fixed so
    diag(R) > 0). f* = 0 at 0; start (1, ..., 1); box [-5, 5]^n. Reference: the rotated ellipsoid
    f10 of COCO's BBOB suite (Hansen et al. 2009), which uses cond = 1e6.

    ``rotate=False`` drops Q: f(x) = 1/2 sum_i lambda_i x_i^2, the axis-aligned ellipsoid (BBOB
    f2's shape), whose cost per point is O(n) rather than the rotation's O(n^2).
    """
    if not 2 <= dim <= 10_000:
        raise ConfigError(f"problem 'ellipsoid': param dim must be in [2, 10000], got {dim}")
    if not 1.0 <= cond <= 1e6:
        raise ConfigError(f"problem 'ellipsoid': param cond must be in [1, 1e6], got {cond}")
    if seed < 0:
        raise ConfigError(f"problem 'ellipsoid': param seed must be >= 0, got {seed}")
    Q = None
    if rotate:
        gen = torch.Generator().manual_seed(seed)
        Q, R = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
        Q = Q * torch.sign(torch.diagonal(R))
    lam = torch.logspace(0.0, math.log10(cond), dim, dtype=torch.float64)
    H = torch.diag(lam) if Q is None else (Q * lam) @ Q.T  # Q diag(lambda) Q^T
    shape = (
        "f(x) = 1/2 sum_i lambda_i (q_i . x)^2, lambda_i = cond^((i-1)/(n-1)), Q a seeded "
        "random rotation"
        if rotate
        else "f(x) = 1/2 sum_i lambda_i x_i^2, lambda_i = cond^((i-1)/(n-1)), not rotated"
    )
    return Problem(
        fn=partial(_ellipsoid, Q=Q, lam=lam),
        grad=partial(_ellipsoid_grad, Q=Q, lam=lam),
        hessian=constant_hessian(H),
        x0=[1.0] * dim,
        name="ellipsoid",
        category="ravine",
        bounds=(-5.0, 5.0),
        f_star=0.0,
        minimizers=[[0.0] * dim],
        description=f"{shape}; n = {dim}, cond = {cond:g}; f* = 0 at 0",
        # rotate is recorded only when it is not the default, so rotated problems keep their info.
        params={"dim": dim, "cond": cond, "seed": seed, **({} if rotate else {"rotate": False})},
    )


def beale() -> Problem:
    """Beale's function, a flat-bottomed curved valley in 2-D.

    f(x, y) = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2; f* = 0 at (3, 0.5);
    start (1, 1) (More, Garbow & Hillstrom 1981, problem 5); box [-4.5, 4.5]^2 (Surjanovic &
    Bingham, Virtual Library of Simulation Experiments). Reference: Beale (1958), "On an iterative
    method for finding a local minimum of a function of more than one variable", Princeton.
    """
    return Problem(
        fn=_beale,
        x0=(1.0, 1.0),
        name="beale",
        category="ravine",
        bounds=(-4.5, 4.5),
        f_star=0.0,
        minimizers=[(3.0, 0.5)],
        description=(
            "f(x, y) = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2; "
            "f* = 0 at (3, 0.5)"
        ),
    )
