"""Batched test losses shared by the test modules: each maps ``(..., d)`` to ``(...)``, float64.

Written out by hand, apart from optzoo's own problem library, so that tests compare optzoo with
torch.optim, scipy or a closed form on the same function. Where two test modules need the same
loss written differently (a contraction order, a dimension), the difference is a parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

f64 = torch.float64
Loss = Callable[[torch.Tensor], torch.Tensor]


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    """(1 - x)^2 + 100 (y - x^2)^2: 24.2 at (-1.2, 1), minimum 0 at (1, 1)."""
    return (1 - x[..., 0]) ** 2 + 100 * (x[..., 1] - x[..., 0] ** 2) ** 2


def spd(d: int, cond: float, gen: torch.Generator) -> torch.Tensor:
    """A random symmetric positive definite matrix, eigenvalues log-spaced over [1, cond]."""
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=f64))
    return q @ torch.diag(torch.logspace(0, math.log10(cond), d, dtype=f64)) @ q.T


def rotated_quadratic(d: int, cond: float = 1e3, seed: int = 0, *, einsum: bool = False) -> Loss:
    """0.5 (x - c)' A (x - c), A from :func:`spd`, c standard normal; minimum 0 at c.

    ``einsum`` contracts with one einsum (a matrix product) instead of elementwise products
    summed row by row, whose rounding does not depend on how many runs share the batch.
    """
    gen = torch.Generator().manual_seed(seed)
    a = spd(d, cond, gen)
    c = torch.randn(d, generator=gen, dtype=f64)

    def fn(x: torch.Tensor) -> torch.Tensor:
        z = x - c
        if einsum:
            return 0.5 * torch.einsum("...i,ij,...j->...", z, a, z)
        return 0.5 * ((z[..., :, None] * a).sum(-2) * z).sum(-1)

    return fn


def mlp(
    n_in: int = 3, hidden: int = 6, n: int = 16, seed: int = 1, *, einsum: bool = False
) -> tuple[Loss, torch.Tensor, list[int]]:
    """A one-hidden-layer tanh network's mean squared error on fixed data, its weights in x.

    Returns the loss, a start and the sizes of the four parameter tensors (w1, b1, w2, b2) that
    x holds in that order. ``einsum`` as in :func:`rotated_quadratic`.
    """
    gen = torch.Generator().manual_seed(seed)
    data = torch.randn(n, n_in, generator=gen, dtype=f64)
    target = torch.sin(data.sum(-1))
    sizes = [hidden * n_in, hidden, hidden, 1]

    def fn(x: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2 = torch.split(x, sizes, dim=-1)
        w1 = w1.reshape(*x.shape[:-1], hidden, n_in)
        if einsum:
            h = torch.tanh(torch.einsum("...hi,ni->...nh", w1, data.to(x)) + b1[..., None, :])
            out = torch.einsum("...h,...nh->...n", w2, h) + b2
        else:
            h = torch.tanh(
                (w1[..., None, :, :] * data[:, None, :].to(x)).sum(-1) + b1[..., None, :]
            )
            out = (w2[..., None, :] * h).sum(-1) + b2
        return ((out - target.to(x)) ** 2).mean(-1)

    x0 = 0.5 * torch.randn(sum(sizes), generator=gen, dtype=f64)
    return fn, x0, sizes
