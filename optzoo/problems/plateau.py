"""Plateau landscapes: wide regions where the gradient is nearly zero, far from any minimum.

Each box is chosen so that the gradient norm is below 1e-6 on most of it, and each start lies on
the plateau: plain gradient descent barely moves, methods that normalize the step do.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor

from optzoo.errors import ConfigError
from optzoo.problems.base import Problem


def _easom(x: Tensor) -> Tensor:
    u, v = x[..., 0], x[..., 1]
    return -torch.cos(u) * torch.cos(v) * torch.exp(-((u - math.pi) ** 2) - (v - math.pi) ** 2)


def _gaussian_well(x: Tensor, width: float = 1.0) -> Tensor:
    return -torch.exp(-(x * x).sum(dim=-1) / (4.0 * width * width))


_SP_RADIUS2 = 4.0  # the sigmoid plateau's wall sits at |x|^2 = 4


def _sigmoid_plateau(x: Tensor) -> Tensor:
    # 1 - sigmoid(4 - r^2) rather than sigmoid(r^2 - 4): the same function, but autograd's
    # sigmoid'(u) = s (1 - s) is then taken at s = sigmoid(4 - r^2) ~ exp(4 - r^2), which stays
    # non-zero far out on the plateau, where s rounds to 1 and 1 - s to an exact 0 otherwise.
    return 1.0 - torch.sigmoid(_SP_RADIUS2 - (x * x).sum(dim=-1))


def _check_dim(problem: str, dim: int) -> None:
    if not 1 <= dim <= 100_000:
        raise ConfigError(f"problem {problem!r}: param dim must be in [1, 100000], got {dim}")


def easom() -> Problem:
    """Easom's function: one narrow well in a flat plane.

    f(x, y) = -cos(x) cos(y) exp(-(x - pi)^2 - (y - pi)^2); f* = -1 at (pi, pi). At the start
    (0, 0) each gradient component is 2 pi exp(-2 pi^2) ~ 1.7e-8. Box [-10, 10]^2: the usual
    [-100, 100]^2 (Surjanovic & Bingham, Virtual Library of Simulation Experiments) is plateau
    almost everywhere, so random starts would all fail alike. Reference: Easom (1990), "A survey
    of global optimization techniques", M. Eng. thesis, University of Louisville.
    """
    return Problem(
        fn=_easom,
        x0=(0.0, 0.0),
        name="easom",
        category="plateau",
        bounds=(-10.0, 10.0),
        f_star=-1.0,
        minimizers=[(math.pi, math.pi)],
        description=(
            "f(x, y) = -cos(x) cos(y) exp(-(x - pi)^2 - (y - pi)^2); f* = -1 at (pi, pi); "
            "gradient components ~1.7e-8 at the start (0, 0)"
        ),
    )


def gaussian_well(dim: int = 2, width: float = 1.0) -> Problem:
    """An inverted Gaussian of width w: f(x) = -exp(-|x|^2 / (4 w^2)).

    f* = -1 at 0; |grad f| = (r / (2 w^2)) exp(-r^2 / (4 w^2)) at radius r: its largest value is
    exp(-1/2) / (sqrt(2) w) at r = sqrt(2) w, and for w = 1 it is below 1e-6 for r > 7.8. The width
    sets how flat the plateau is at a given radius (the flatness is controlled), and the landscape
    is the w = 1 one stretched by w. The start is (8 w / sqrt(n)) (1, ..., 1), at radius 8 w where
    |grad f| ~ 4.5e-7 / w; box [-12 w, 12 w]^n. Reference: Goodfellow, Bengio & Courville (2016),
    Deep Learning, sec. 8.2.4 (plateaus).
    """
    _check_dim("gaussian_well", dim)
    if not 0.01 <= width <= 100.0:
        raise ConfigError(
            f"problem 'gaussian_well': param width must be in [0.01, 100], got {width}"
        )
    width = float(width)
    return Problem(
        fn=partial(_gaussian_well, width=width),
        x0=[8.0 * width / math.sqrt(dim)] * dim,
        name="gaussian_well",
        category="plateau",
        bounds=(-12.0 * width, 12.0 * width),
        f_star=-1.0,
        minimizers=[[0.0] * dim],
        description=(
            f"f(x) = -exp(-|x|^2 / (4 w^2)), n = {dim}, w = {width:g}; f* = -1 at 0; "
            "start at radius 8 w"
        ),
        # width is recorded only when it is not the default, so existing results keep their info.
        params={"dim": dim, **({} if width == 1.0 else {"width": width})},
    )


def sigmoid_plateau(dim: int = 2) -> Problem:
    """A saturated sigmoid: f(x) = sigmoid(|x|^2 - 4), flat outside a steep circular wall.

    Like a saturated unit, f is ~1 with a vanishing gradient 2 r sigmoid'(r^2 - 4) (below 1e-6
    for r > 4.4), falls steeply across r = 2, and flattens again into a shallow bowl with
    f* = sigmoid(-4) ~ 0.018 at 0. Start (4.5 / sqrt(n)) (1, ..., 1), on the plateau at radius
    4.5 (|grad f| ~ 8e-7); box [-10, 10]^n. Reference: saturating units and plateaus in
    Goodfellow, Bengio & Courville (2016), Deep Learning, sec. 6.3.2 and 8.2.4.
    """
    _check_dim("sigmoid_plateau", dim)
    f_star = 1.0 / (1.0 + math.exp(_SP_RADIUS2))
    return Problem(
        fn=_sigmoid_plateau,
        x0=[4.5 / math.sqrt(dim)] * dim,
        name="sigmoid_plateau",
        category="plateau",
        bounds=(-10.0, 10.0),
        f_star=f_star,
        minimizers=[[0.0] * dim],
        description=(
            f"f(x) = sigmoid(|x|^2 - 4), n = {dim}; plateau f ~ 1 for |x| > 4.4, "
            "wall at |x| = 2, f* = sigmoid(-4) at 0"
        ),
        params={"dim": dim},
    )
