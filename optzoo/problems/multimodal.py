"""Multimodal landscapes: many local minima, where a local method's answer depends on its start."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from optzoo.errors import ConfigError
from optzoo.problems.base import Problem, hessian_2d

# Minimizers to float64 precision (Newton from the published 6-digit values).
_HIMMELBLAU_MINIMA = (
    (3.0, 2.0),
    (-2.805118086952745, 3.131312518250573),
    (-3.779310253377747, -3.2831859912861696),
    (3.5844283403304917, -1.8481265269644034),
)
_ST_ARGMIN = -2.9035340277711774  # root of 4x^3 - 32x + 5 = 0 (published: -2.903534)
_ST_MIN = -39.16616570377141  # f per coordinate there


def _check_dim(problem: str, dim: int) -> None:
    if not 1 <= dim <= 100_000:
        raise ConfigError(f"problem {problem!r}: param dim must be in [1, 100000], got {dim}")


def _rastrigin(x: Tensor) -> Tensor:
    return (10.0 + x * x - 10.0 * torch.cos(2.0 * math.pi * x)).sum(dim=-1)


def _ackley(x: Tensor) -> Tensor:
    ms = (x * x).mean(dim=-1)
    # sqrt has an infinite derivative at 0, where Ackley has a cone tip: take the subgradient 0
    # there (the double-where keeps NaN out of autograd) so the minimizer is a critical point.
    pos = ms > 0
    r = torch.where(
        pos, torch.sqrt(torch.where(pos, ms, torch.ones_like(ms))), torch.zeros_like(ms)
    )
    c = torch.cos(2.0 * math.pi * x).mean(dim=-1)
    return -20.0 * torch.exp(-0.2 * r) - torch.exp(c) + 20.0 + math.e


def _himmelblau(x: Tensor) -> Tensor:
    u, v = x[..., 0], x[..., 1]
    return (u * u + v - 11.0) ** 2 + (u + v * v - 7.0) ** 2


def _styblinski_tang(x: Tensor) -> Tensor:
    return 0.5 * (x**4 - 16.0 * x * x + 5.0 * x).sum(dim=-1)


# Analytic Hessians (the oracle's, for Newton and escape steps); tests/test_newton.py checks them
# against autograd's.
def _rastrigin_hessian(x: Tensor) -> Tensor:
    return torch.diag_embed(2.0 + 40.0 * math.pi**2 * torch.cos(2.0 * math.pi * x))


def _himmelblau_hessian(x: Tensor) -> Tensor:
    u, v = x[..., 0], x[..., 1]
    return hessian_2d(12.0 * u * u + 4.0 * v - 42.0, 4.0 * (u + v), 12.0 * v * v + 4.0 * u - 26.0)


def _styblinski_tang_hessian(x: Tensor) -> Tensor:
    return torch.diag_embed(6.0 * x * x - 16.0)


def rastrigin(dim: int = 2) -> Problem:
    """Rastrigin's function: a bowl covered by a regular grid of local minima.

    f(x) = 10 n + sum_i [x_i^2 - 10 cos(2 pi x_i)]; f* = 0 at 0; box [-5.12, 5.12]^n. Start
    (2.5, ..., 2.5), a ridge from which descent falls into the local minimum near (2, ..., 2).
    Reference: Rastrigin (1974); Surjanovic & Bingham, Virtual Library of Simulation Experiments.
    """
    _check_dim("rastrigin", dim)
    return Problem(
        fn=_rastrigin,
        hessian=_rastrigin_hessian,
        x0=[2.5] * dim,
        name="rastrigin",
        category="multimodal",
        bounds=(-5.12, 5.12),
        f_star=0.0,
        minimizers=[[0.0] * dim],
        description=f"f(x) = 10 n + sum_i x_i^2 - 10 cos(2 pi x_i), n = {dim}; f* = 0 at 0",
        params={"dim": dim},
    )


def ackley(dim: int = 2) -> Problem:
    """Ackley's function: a nearly flat, rippled outer region around a central funnel.

    f(x) = -20 exp(-0.2 sqrt(mean_i x_i^2)) - exp(mean_i cos(2 pi x_i)) + 20 + e; f* = 0 at 0,
    a cone tip where the gradient is taken as 0; box [-32.768, 32.768]^n; start (2.5, ..., 2.5).
    Reference: Ackley (1987), "A connectionist machine for genetic hillclimbing", Kluwer;
    Surjanovic & Bingham, Virtual Library of Simulation Experiments (a = 20, b = 0.2, c = 2 pi).
    """
    _check_dim("ackley", dim)
    return Problem(
        fn=_ackley,
        x0=[2.5] * dim,
        name="ackley",
        category="multimodal",
        bounds=(-32.768, 32.768),
        f_star=0.0,
        minimizers=[[0.0] * dim],
        description=(
            "f(x) = -20 exp(-0.2 sqrt(mean x_i^2)) - exp(mean cos(2 pi x_i)) + 20 + e, "
            f"n = {dim}; f* = 0 at 0"
        ),
        params={"dim": dim},
    )


def himmelblau() -> Problem:
    """Himmelblau's function: four global minima of equal value.

    f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2; f* = 0 at (3, 2), (-2.805118, 3.131312),
    (-3.779310, -3.283186), (3.584428, -1.848126); a local maximum at (-0.270845, -0.923039).
    Start (0, 0); box [-5, 5]^2. Reference: Himmelblau (1972), Applied Nonlinear Programming,
    McGraw-Hill.
    """
    return Problem(
        fn=_himmelblau,
        hessian=_himmelblau_hessian,
        x0=(0.0, 0.0),
        name="himmelblau",
        category="multimodal",
        bounds=(-5.0, 5.0),
        f_star=0.0,
        minimizers=_HIMMELBLAU_MINIMA,
        description=(
            "f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2; f* = 0 at four minima: (3, 2), "
            "(-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)"
        ),
    )


def styblinski_tang(dim: int = 2) -> Problem:
    """The Styblinski-Tang function: 2^n local minima, one global.

    f(x) = 1/2 sum_i (x_i^4 - 16 x_i^2 + 5 x_i); f* = -39.16616570 n at x_i = -2.903534 (the
    root of 4x^3 - 32x + 5; the often-quoted -39.16599 n is slightly off). A local minimum per
    coordinate at 2.746803. Start (1, ..., 1), from which descent goes to the local minimum;
    box [-5, 5]^n. Reference: Styblinski & Tang (1990), Neural Networks 3(4):467-483;
    Surjanovic & Bingham, Virtual Library of Simulation Experiments.
    """
    _check_dim("styblinski_tang", dim)
    return Problem(
        fn=_styblinski_tang,
        hessian=_styblinski_tang_hessian,
        x0=[1.0] * dim,
        name="styblinski_tang",
        category="multimodal",
        bounds=(-5.0, 5.0),
        f_star=_ST_MIN * dim,
        minimizers=[[_ST_ARGMIN] * dim],
        description=(
            f"f(x) = 1/2 sum_i x_i^4 - 16 x_i^2 + 5 x_i, n = {dim}; "
            "f* = -39.16616570 n at x_i = -2.903534"
        ),
        params={"dim": dim},
    )
