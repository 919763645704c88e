"""Step-size-free measures of zigzag, shared by the ravine studies.

Path efficiency (net displacement over path length) is confounded with step size: a run that
crawls scores as straight. The measures here look at the direction of the steps instead:

- **flip rate** along the top Hessian eigenvector v: the share of successive steps s_(t-1), s_t
  whose components s . v have opposite signs. Gradient descent x <- x - eta H x on a quadratic
  multiplies that component by (1 - eta L) each step, so it flips every step exactly when
  eta > 1/L, and never when eta < 1/L (Goh 2017, "Why momentum really works", Distill);
- **mean cosine** between successive steps (:func:`optzoo.oscillation.step_cosine`, the
  definition the suite's landscape table uses): near 1 for a straight path, negative for a zigzag.

Pairs whose components are round-off (below 1e-8 of the step) are not counted, and each run is
measured over its first ``window`` steps or until it reaches its target, whichever is first, so a
converged run's round-off does not count as oscillation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from optzoo.oscillation import step_cosine
from optzoo.studies.rollout import Step

_TINY = 1e-8  # a component below this share of its step is round-off, not a direction
LOCAL_EDGES = (1.0, 1.5, 2.0)  # bins of the local lr * lambda_top for pooled flip rates


class ZigzagMeter:
    """Accumulates flips, cosines, path length and steps to a target, per run.

    ``top`` is the top Hessian eigenvector, a fixed ``(d,)`` tensor (a quadratic) or a function
    ``x (R, d) -> ((R, d), (R,))`` giving the local eigenvector and eigenvalue (a curved ravine);
    ``target`` is the loss ``(R,)`` below which a run has arrived; the meter asks the rollout to
    stop once every run has. With ``lr (R,)`` and a local ``top``, flips are also pooled by the
    local ``lr * lambda_top`` (bins :data:`LOCAL_EDGES`), the theory's prediction step by step.
    """

    def __init__(
        self,
        x0: Tensor,
        target: Tensor,
        window: int,
        top: Tensor | Callable[[Tensor], tuple[Tensor, Tensor]],
        lr: Tensor | None = None,
    ) -> None:
        R = x0.shape[0]
        z = torch.zeros(R, dtype=torch.float64)
        self.target, self.window, self.top = target, window, top
        self.flips, self.pairs, self.cos_sum, self.n_cos = (
            z.clone(),
            z.clone(),
            z.clone(),
            z.clone(),
        )
        self.path = z.clone()
        self.x_start, self.x_win = x0.clone(), x0.clone()
        self.prev_c = torch.zeros(R, dtype=torch.float64)
        self.prev_s = torch.zeros_like(x0)
        self.hit = torch.full((R,), -1, dtype=torch.int64)
        self.lr = lr
        # Flips and pairs per bin of the local lr * lambda_top (edges LOCAL_EDGES).
        self.local = torch.zeros(len(LOCAL_EDGES) + 1, 2, dtype=torch.float64)

    def __call__(self, st: Step) -> bool:
        arrived = (st.f <= self.target) & (self.hit < 0) & st.moving
        self.hit = torch.where(arrived, st.t, self.hit)
        s = st.x_new - st.x
        v, lam = (self.top, None) if isinstance(self.top, Tensor) else self.top(st.x)
        c = (s * v).sum(-1)
        norm = torch.linalg.vector_norm(s, dim=-1)
        within = st.moving & (self.hit < 0) & (st.t < self.window)
        big = c.abs() > _TINY * norm
        pair = within & big & (self.prev_c != 0)
        self.flips += (pair & (c * self.prev_c < 0)).double()
        self.pairs += pair.double()
        if lam is not None and self.lr is not None:
            b = torch.bucketize(self.lr * lam, torch.tensor(LOCAL_EDGES, dtype=lam.dtype))
            flip = (pair & (c * self.prev_c < 0)).double()
            self.local[:, 0].index_add_(0, b, flip)
            self.local[:, 1].index_add_(0, b, pair.double())
        cos, defined = step_cosine(s, self.prev_s, norm)
        has_cos = within & defined
        self.cos_sum += torch.where(has_cos, cos, 0.0)
        self.n_cos += has_cos.double()
        self.path += torch.where(within, norm, 0.0)
        self.x_win = torch.where(within[:, None], st.x_new, self.x_win)
        self.prev_c = torch.where(within, torch.where(big, c, 0.0), self.prev_c)
        self.prev_s = torch.where(within[:, None], s, self.prev_s)
        return st.t % 64 == 63 and bool((self.hit >= 0).all())

    def results(self, steps: int) -> dict[str, Tensor]:
        """Per run: flip_rate, mean_cos, efficiency, iterations (steps + 1 if not reached)."""
        disp = torch.linalg.vector_norm(self.x_win - self.x_start, dim=-1)
        return {
            "flip_rate": self.flips / self.pairs.clamp(min=1),
            "mean_cos": self.cos_sum / self.n_cos.clamp(min=1),
            "efficiency": disp / self.path.clamp(min=1e-300),
            "iterations": torch.where(self.hit >= 0, self.hit, steps + 1).double(),
        }


def rosenbrock_top(x: Tensor) -> tuple[Tensor, Tensor]:
    """Top eigenpair of the 2-D Rosenbrock Hessian at each row of x, the vector with v_y > 0.

    H = [[1200 u^2 - 400 v + 2, -400 u], [-400 u, 200]] in closed form (f = 100 (v - u^2)^2 +
    (1 - u)^2). The top eigenvector lies across the valley y = x^2, whose normal (-2u, 1) never
    has a zero y component, so orienting v_y > 0 keeps its sign continuous along a path.
    """
    u, v = x[:, 0], x[:, 1]
    a = 1200 * u * u - 400 * v + 2
    b = -400 * u
    d = torch.full_like(u, 200.0)
    lam = 0.5 * (a + d) + torch.sqrt(0.25 * (a - d) ** 2 + b * b)
    vec = torch.stack([b, lam - a], dim=-1)  # (H - lam I) vec = 0 from H's first row
    vec = torch.where((vec.abs().sum(-1) == 0)[:, None], torch.tensor([1.0, 0.0]), vec)
    vec = vec / torch.linalg.vector_norm(vec, dim=-1, keepdim=True)
    return torch.where(vec[:, 1:2] < 0, -vec, vec), lam
