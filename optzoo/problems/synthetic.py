"""Synthetic landscapes for the studies: random smooth functions and a tunable saddle.

Not registered in :data:`optzoo.problems.REGISTRY`: their use is the designed experiments of
:mod:`optzoo.studies`, where the dimension, index and seed are the design's variables.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor

from optzoo.errors import ConfigError
from optzoo.problems.base import Problem


def _fourier(x: Tensor, W: Tensor, b: Tensor, a: Tensor) -> Tensor:
    # x W as a product and a sum: a matmul's blocking would tie a run's rounding to the batch.
    z = (x[..., :, None] * W.to(x.dtype)).sum(-2) + b.to(x.dtype)
    return (torch.cos(z) * a.to(x.dtype)).sum(-1)


def random_fourier(
    dim: int = 2, features: int = 256, lengthscale: float = 1.0, seed: int = 0
) -> Problem:
    """A random smooth function: a Gaussian-process sample by random Fourier features.

    f(x) = sqrt(2 / M) sum_j a_j cos(w_j . x + b_j), with w_j ~ N(0, I / l^2), b_j ~ U(0, 2 pi),
    a_j ~ N(0, 1), j = 1..M. As M grows, f tends to a stationary Gaussian process with the
    squared-exponential covariance k(x, x') = exp(-|x - x'|^2 / 2 l^2) (Rahimi & Recht 2007,
    "Random features for large-scale kernel machines"): the random field whose critical points
    Bray & Dean 2007 describe (index rising with f, minima rare in high dimension). Box
    [-2 l, 2 l]^d; all draws from ``torch.Generator().manual_seed(seed)``.
    """
    if not 1 <= dim <= 1000:
        raise ConfigError(f"problem 'random_fourier': param dim must be in [1, 1000], got {dim}")
    if features < 1 or lengthscale <= 0:
        raise ConfigError("problem 'random_fourier': features >= 1 and lengthscale > 0")
    gen = torch.Generator().manual_seed(int(seed))
    f64 = torch.float64
    W = torch.randn(dim, features, generator=gen, dtype=f64) / lengthscale
    b = 2 * math.pi * torch.rand(features, generator=gen, dtype=f64)
    a = torch.randn(features, generator=gen, dtype=f64) * math.sqrt(2.0 / features)
    return Problem(
        fn=partial(_fourier, W=W, b=b, a=a),
        x0=torch.zeros(dim, dtype=f64),
        name="random_fourier",
        category="multimodal",
        bounds=(-2.0 * lengthscale, 2.0 * lengthscale),
        description=f"random Fourier features, d = {dim}, M = {features}, l = {lengthscale}",
        params={"dim": dim, "features": features, "lengthscale": lengthscale, "seed": seed},
    )


def _quartic_saddle(x: Tensor, k: int) -> Tensor:
    up, down = x[..., k:], x[..., :k]
    return 0.5 * (up * up).sum(-1) - 0.5 * (down * down).sum(-1) + 0.25 * (down**4).sum(-1)


def quartic_saddle(dim: int = 10, k: int = 1) -> Problem:
    """A d-dimensional strict saddle with k negative directions, bounded below.

    f(x) = sum_{i > k} x_i^2 / 2 + sum_{i <= k} (x_i^4 / 4 - x_i^2 / 2). At 0 the Hessian is
    diag(-1 (k times), 1 (d - k times)), f = 0; the minima are x_i = +-1 for i <= k and 0
    elsewhere, f* = -k / 4 (2^k of them). A standard model of a saddle with index k / d (Jin et
    al. 2017, "How to escape saddle points efficiently"; Dauphin et al. 2014).
    """
    if not 1 <= k <= dim:
        raise ConfigError(f"problem 'quartic_saddle': need 1 <= k <= dim, got k={k}, dim={dim}")
    return Problem(
        fn=partial(_quartic_saddle, k=k),
        x0=torch.zeros(dim, dtype=torch.float64),
        name="quartic_saddle",
        category="saddle",
        bounds=(-1.5, 1.5),
        f_star=-k / 4,
        minimizers=[[1.0] * k + [0.0] * (dim - k)],
        saddles=[[0.0] * dim],
        description=f"sum x^2/2 over {dim - k} directions, x^4/4 - x^2/2 over {k}; saddle at 0",
        params={"dim": dim, "k": k},
    )
