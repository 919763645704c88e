"""The counted oracle: the only way an optimizer sees a loss.

Every evaluation is counted per run, by the counting all oracles share
(:class:`optzoo.oracle.OracleBase`, which states the cost model ``nf + ng + 2 nhvp + 2d nh``
once). :class:`Oracle` implements :class:`optzoo.oracle.CountedOracle` over a problem; it also
applies the suite's gradient transforms (clipping, Gaussian noise) and draws mini-batches, all
per run and counter-based, so a run's numbers never depend on which other runs share its batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from optzoo import linalg
from optzoo.linalg import hessian
from optzoo.oracle import HESSIAN_PER_DIM, CountedOracle, Counts, OracleBase
from optzoo.problems.base import Problem

_MASK32 = 0xFFFFFFFF


def hash32(x: Tensor) -> Tensor:
    """A 32-bit integer mix (lowbias32 with 31-bit multipliers) on int64 tensors in [0, 2^32)."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x446CA68B) & _MASK32
    x = x ^ (x >> 16)
    return x


def counter_uniform(
    seed: Tensor, counter: Tensor, n: int, stream: int, dtype=torch.float64
) -> Tensor:
    """Uniforms in (0, 1) of shape ``(R, n)``, a pure function of (seed, counter, stream, index).

    ``seed`` and ``counter`` are int64 tensors of shape ``(R,)``. Being counter-based, run r's
    numbers are the same whatever batch it is in.
    """
    j = torch.arange(n, device=seed.device, dtype=torch.int64)
    h = hash32(hash32(seed[:, None]) + hash32(counter[:, None] + stream * 0x632BE5AB))
    a = hash32(h ^ hash32(j[None, :] * 2 + 1))
    b = hash32(a ^ hash32(j[None, :] * 2 + 2))
    # 53 random bits from two 32-bit words, shifted off zero.
    bits = ((a >> 6) << 26) | (b >> 6)
    return (bits.to(torch.float64) + 0.5).div(2.0**52).to(dtype)


def counter_normal(
    seed: Tensor, counter: Tensor, n: int, stream: int, dtype=torch.float64
) -> Tensor:
    """Standard normals of shape ``(R, n)`` by Box-Muller on :func:`counter_uniform`."""
    u1 = counter_uniform(seed, counter, n, stream, torch.float64)
    u2 = counter_uniform(seed, counter, n, stream + 7919, torch.float64)
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * torch.pi * u2)
    return z.to(dtype)


class Oracle(OracleBase):
    """Counted access to ``problem`` for a batch of R runs.

    Arguments:
        problem: the loss.
        R: number of runs in the batch.
        seeds: per-run int seeds ``(R,)`` for mini-batches and gradient noise (default zeros).
        clip_norm: clip each run's gradient to this Euclidean norm (None: off).
        clip_value: clip each gradient coordinate to [-v, v] (None: off).
        noise_std: add N(0, noise_std^2) to each gradient coordinate (0: off).
        batch_size: mini-batch size for a problem with mini-batch access (None: full batch).

    Every method takes an optional ``active`` mask ``(R,)``: only active runs (within
    :attr:`active`, the runs the harness has not frozen) are counted. All runs are computed (a
    frozen run's numbers are simply not used), so the step stays one tensor program with no
    branch on tensor values.
    """

    def __init__(
        self,
        problem: Problem,
        R: int,
        *,
        seeds: Tensor | None = None,
        clip_norm: float | None = None,
        clip_value: float | None = None,
        noise_std: float = 0.0,
        batch_size: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(R, problem.dim, device)
        self.problem = problem
        dev = self.device
        self.seeds = (
            torch.zeros(self.R, dtype=torch.int64, device=dev)
            if seeds is None
            else torch.as_tensor(seeds, dtype=torch.int64, device=dev).reshape(self.R)
        )
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.noise_std = float(noise_std)
        self.batch_size = batch_size if problem.stochastic else None
        # The last raw (untransformed) gradient; its norm per run is computed when first read.
        self._last_grad: Tensor | None = None
        self._last_grad_norm: Tensor | None = None

    # -- bookkeeping ---------------------------------------------------------------------------
    @property
    def last_grad_norm(self) -> Tensor | None:
        """Norm of the last raw (untransformed) gradient per run, ``(R,)``, for plateau statistics;
        None before the first gradient. Computed on first read: an optimizer step does not pay
        for it (a row norm over few coordinates costs as much as a few elementwise ops)."""
        if self._last_grad_norm is None and self._last_grad is not None:
            self._last_grad_norm = torch.linalg.vector_norm(self._last_grad, dim=-1)
        return self._last_grad_norm

    # -- the loss ------------------------------------------------------------------------------
    def _loss(self, x: Tensor) -> Tensor:
        """f at x; a mini-batch estimate where the problem has one and batch_size is set."""
        if self.batch_size is None:
            return self.problem.fn(x)
        mb = self.problem.minibatch
        # One mini-batch per gradient evaluation, keyed by (seed, number of evaluations so far).
        counter = self.counts.ng + self.counts.nf
        u = counter_uniform(self.seeds, counter, self.batch_size, stream=1)
        idx = (u * mb.n_data).to(torch.int64).clamp_(max=mb.n_data - 1)
        return mb.fn(x, idx)

    def _transform(self, g: Tensor) -> Tensor:
        if self.noise_std > 0.0:
            z = counter_normal(self.seeds, self.counts.ng, self.d, stream=2, dtype=g.dtype)
            g = g + self.noise_std * z
        if self.clip_value is not None:
            g = g.clamp(-self.clip_value, self.clip_value)
        if self.clip_norm is not None:
            norm = torch.linalg.vector_norm(g, dim=-1, keepdim=True)
            # torch.nn.utils.clip_grad_norm_'s rule: scale by max_norm / (norm + 1e-6), capped at 1.
            g = g * (self.clip_norm / (norm + 1e-6)).clamp(max=1.0)
        return g

    def value(self, x: Tensor, active: Tensor | None = None) -> Tensor:
        """f(x), shape ``(R,)``."""
        with torch.no_grad():
            f = self._loss(x)
        self._count("nf", active)
        return f

    def value_and_grad(self, x: Tensor, active: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """f(x) ``(R,)`` and the (transformed) gradient ``(R, d)``."""
        if self.problem.value_and_grad is not None and self.batch_size is None:
            with torch.no_grad():
                f, g = self.problem.value_and_grad(x)
        elif self.problem.grad is not None and self.batch_size is None:
            with torch.no_grad():
                f = self.problem.fn(x)
                g = self.problem.grad(x)
        else:
            with torch.enable_grad():
                xr = x.detach().requires_grad_(True)
                f = self._loss(xr)
                (g,) = torch.autograd.grad(f.sum(), xr)
            f = f.detach()
        self._last_grad, self._last_grad_norm = g, None
        g = self._transform(g)
        self._count("ng", active)
        return f, g

    def hvp(self, x: Tensor, v: Tensor, active: Tensor | None = None) -> Tensor:
        """Hessian-vector products H(x_r) v_r, shape ``(R, d)``, on the full loss."""
        hv = linalg.hvp(self.problem.fn, x, v)
        self._count("nhvp", active)
        return hv

    def hessian(self, x: Tensor, active: Tensor | None = None) -> Tensor:
        """Hessians ``(R, d, d)`` on the full loss: the problem's analytic one where it has one."""
        exact = self.problem.hessian
        H = hessian(self.problem.fn, x) if exact is None else exact(x)
        self._count("nh", active)
        return H


__all__ = [
    "HESSIAN_PER_DIM",
    "CountedOracle",
    "Counts",
    "Oracle",
    "OracleBase",
    "counter_normal",
    "counter_uniform",
    "hash32",
    "hessian",
]
