"""Saddle landscapes: critical points with a direction of negative (or no) curvature.

Where f is unbounded below (``saddle``, ``monkey_saddle``) f* is None and a run is solved when it
escapes the saddle at 0: f < f(0) - escape_drop or |x| > escape_radius. The drop is the depth of
the box below f(0) and the radius exceeds the box's half-diagonal, so escaping means leaving the
region the starts are drawn from, and no start counts as escaped before it has moved.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor

from optzoo.errors import ConfigError
from optzoo.problems.base import Problem, constant_hessian, hessian_2d


def _saddle(x: Tensor) -> Tensor:
    return x[..., 0] ** 2 - x[..., 1] ** 2


def _monkey_saddle(x: Tensor) -> Tensor:
    return x[..., 0] ** 3 - 3.0 * x[..., 0] * x[..., 1] ** 2


def _two_neuron(x: Tensor) -> Tensor:
    return (1.0 - x[..., 0] * x[..., 1]) ** 2


def _monkey_saddle_hessian(x: Tensor) -> Tensor:
    u, v = x[..., 0], x[..., 1]
    return hessian_2d(6.0 * u, -6.0 * v, -6.0 * u)


def _two_neuron_hessian(x: Tensor) -> Tensor:
    # f = r^2 with r = 1 - w1 w2: d2f/dw1 dw2 = 2 w1 w2 - 2 r = 4 w1 w2 - 2.
    w1, w2 = x[..., 0], x[..., 1]
    return hessian_2d(2.0 * w2 * w2, 4.0 * w1 * w2 - 2.0, 2.0 * w1 * w1)


def saddle() -> Problem:
    """The canonical saddle f(x, y) = x^2 - y^2.

    The Hessian is diag(2, -2) everywhere: a strict saddle at 0 and f unbounded below along y.
    The start (1, 0.01) sits just off the attracting axis y = 0, so descent first heads for the
    saddle and escapes along y. Reference: Dauphin et al. (2014), "Identifying and attacking the
    saddle point problem in high-dimensional non-convex optimization", NeurIPS.
    """
    return Problem(
        fn=_saddle,
        hessian=constant_hessian(torch.tensor([[2.0, 0.0], [0.0, -2.0]], dtype=torch.float64)),
        x0=(1.0, 0.01),
        name="saddle",
        category="saddle",
        bounds=(-1.0, 1.0),
        saddles=[(0.0, 0.0)],
        escape_drop=1.0,
        escape_radius=2.0,
        description=(
            "f(x, y) = x^2 - y^2; strict saddle at (0, 0) with Hessian eigenvalues 2, -2; "
            "unbounded below, success = escape (f < -1 or |x| > 2)"
        ),
    )


def monkey_saddle() -> Problem:
    """The monkey saddle f(x, y) = x^3 - 3 x y^2, a degenerate saddle.

    Gradient and Hessian both vanish at 0 (the cubic term decides), so curvature-based escape
    fails there; f falls off along three valleys at angles pi, +-pi/3. The start (1, 0.01) lies
    just off the ridge y = 0, along which descent creeps toward 0 at rate ~1/t. Reference:
    Anandkumar & Ge (2016), "Efficient approaches for escaping higher order saddle points in
    non-convex optimization", COLT.
    """
    return Problem(
        fn=_monkey_saddle,
        hessian=_monkey_saddle_hessian,
        x0=(1.0, 0.01),
        name="monkey_saddle",
        category="saddle",
        bounds=(-1.0, 1.0),
        saddles=[(0.0, 0.0)],
        escape_drop=2.0,
        escape_radius=2.0,
        description=(
            "f(x, y) = x^3 - 3 x y^2; degenerate saddle at (0, 0) (zero Hessian); "
            "unbounded below, success = escape (f < -2 or |x| > 2)"
        ),
    )


def two_neuron() -> Problem:
    """A two-layer linear network with one unit fitting y = 1 from x = 1: f(w1, w2) = (1 - w1 w2)^2.

    The origin is a strict saddle with f = 1 and Hessian [[0, -2], [-2, 0]] (eigenvalues -2, 2);
    the global minima, f* = 0, form the hyperbola w1 w2 = 1. The start (0.5, -0.49) is close to
    the anti-diagonal w1 = -w2, the saddle's attracting manifold. Reference: Goodfellow, Bengio &
    Courville (2016), Deep Learning, sec. 8.2.3; Baldi & Hornik (1989), Neural Networks 2(1).
    """
    return Problem(
        fn=_two_neuron,
        hessian=_two_neuron_hessian,
        x0=(0.5, -0.49),
        name="two_neuron",
        category="saddle",
        bounds=(-2.0, 2.0),
        f_star=0.0,
        minimizers=[(1.0, 1.0), (-1.0, -1.0)],
        saddles=[(0.0, 0.0)],
        description=(
            "f(w1, w2) = (1 - w1 w2)^2; saddle at 0 with f = 1 and Hessian eigenvalues -2, 2; "
            "minima f* = 0 on the hyperbola w1 w2 = 1"
        ),
    )


_DL_IN = 4  # input and output size of the deep linear network
_DL_INIT = 0.1  # std of the start's weights: near the saddle at 0, as in small-init training


def _layer_shapes(depth: int, width: int) -> list[tuple[int, int]]:
    return [(_DL_IN, width)] + [(width, width)] * (depth - 2) + [(width, _DL_IN)]


def _deep_linear(x: Tensor, X: Tensor, Y: Tensor, shapes: list[tuple[int, int]]) -> Tensor:
    X = X.to(dtype=x.dtype, device=x.device)
    Y = Y.to(dtype=x.dtype, device=x.device)
    out = X
    start = 0
    for a, b in shapes:
        W = x[..., start : start + a * b].reshape(*x.shape[:-1], 1, a, b)
        # out @ W as a product and a sum: the matrices are tiny, and a matmul's blocking would
        # make a run's rounding depend on how many runs share the batch.
        out = (out[..., :, :, None] * W).sum(dim=-2)
        start += a * b
    r = out - Y
    return 0.5 * (r * r).sum(dim=(-2, -1)) / X.shape[0]


def deep_linear(depth: int = 3, width: int = 4, n_data: int = 32, seed: int = 0) -> Problem:
    """Least-squares regression with a deep linear network: f(W) = |X W_1 ... W_L - Y|_F^2 / (2n).

    Data: X (n, 4) standard normal, Y = X M + 0.1 noise, M (4, 4) normal / 2, all from
    ``torch.Generator().manual_seed(seed)``. Layers 4 -> width -> ... -> width -> 4. All weights
    zero is a saddle (f = |Y|^2 / 2n, gradient 0); for depth >= 3 its Hessian is zero too, a
    degenerate saddle. Every local minimum is global (Kawaguchi 2016), so f* is the best loss of
    a rank <= min(width, 4) linear map: by Eckart-Young, f* = (|Y - Yhat|^2 + sum_{i > r} s_i^2)
    / 2n, with Yhat = X M_ls the least-squares fit and s_i its singular values. The listed
    minimizer factors M_ls V_r V_r^T (V_r: top-r right singular vectors of Yhat). Start: weights
    N(0, 0.1^2), near the saddle. References: Baldi & Hornik (1989); Saxe, McClelland & Ganguli
    (2014), ICLR; Kawaguchi (2016), "Deep learning without poor local minima", NeurIPS.
    """
    if not 2 <= depth <= 8:
        raise ConfigError(f"problem 'deep_linear': param depth must be in [2, 8], got {depth}")
    if not 1 <= width <= 32:
        raise ConfigError(f"problem 'deep_linear': param width must be in [1, 32], got {width}")
    if not _DL_IN <= n_data <= 100_000:
        raise ConfigError(
            f"problem 'deep_linear': param n_data must be in [{_DL_IN}, 100000], got {n_data}"
        )
    if seed < 0:
        raise ConfigError(f"problem 'deep_linear': param seed must be >= 0, got {seed}")
    gen = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    X = torch.randn(n_data, _DL_IN, generator=gen, dtype=f64)
    M = torch.randn(_DL_IN, _DL_IN, generator=gen, dtype=f64) / 2.0
    Y = X @ M + 0.1 * torch.randn(n_data, _DL_IN, generator=gen, dtype=f64)
    shapes = _layer_shapes(depth, width)
    d = sum(a * b for a, b in shapes)
    x0 = _DL_INIT * torch.randn(d, generator=gen, dtype=f64)

    # f*: the best rank-r end-to-end map (closed form, see the docstring).
    M_ls = torch.linalg.lstsq(X, Y).solution
    Y_hat = X @ M_ls
    _, s, Vh = torch.linalg.svd(Y_hat, full_matrices=False)
    r = min(width, _DL_IN)
    f_star = float(((Y - Y_hat) ** 2).sum() + (s[r:] ** 2).sum()) / (2 * n_data)
    V_r = Vh[:r].T
    first = torch.zeros(_DL_IN, width, dtype=f64)
    first[:, :r] = M_ls @ V_r
    last = torch.zeros(width, _DL_IN, dtype=f64)
    last[:r] = V_r.T
    middle = [torch.eye(width, dtype=f64)] * (depth - 2)
    minimizer = torch.cat([w.reshape(-1) for w in [first, *middle, last]])

    return Problem(
        fn=partial(_deep_linear, X=X, Y=Y, shapes=shapes),
        x0=x0,
        name="deep_linear",
        category="saddle",
        bounds=(-1.0, 1.0),
        f_star=f_star,
        minimizers=[minimizer],
        saddles=[torch.zeros(d, dtype=f64)],
        description=(
            f"f(W) = |X W_1 ... W_{depth} - Y|_F^2 / (2n), layers 4 -> "
            + " -> ".join([str(width)] * (depth - 1))
            + f" -> 4, n = {n_data}; saddle at W = 0"
            + (" (degenerate: zero Hessian)" if depth >= 3 else "")
            + f"; f* = {f_star:.6g} (best rank-{r} least squares)"
        ),
        params={"depth": depth, "width": width, "n_data": n_data, "seed": seed},
    )
