"""The Problem type: a loss, where to start, what is known about it, and when a run is solved."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import Tensor

from optzoo.errors import ConfigError
from optzoo.schema import CATEGORIES  # named once, torch-free, so the report shares it


@dataclass(frozen=True)
class MiniBatch:
    """Mini-batch access to a data-fitted loss.

    ``fn(x, idx)`` takes iterates ``(R, d)`` and data indices ``idx`` of shape ``(R, B)`` (one
    mini-batch per run) and returns the mean loss per run, shape ``(R,)``. ``n_data`` is the size
    of the data set the indices point into; ``batch_size`` is the default mini-batch size.
    """

    fn: Callable[[Tensor, Tensor], Tensor]
    n_data: int
    batch_size: int


def _as_points(points: Any, d: int, what: str, name: str) -> tuple[tuple[float, ...], ...]:
    out = []
    for p in points or ():
        t = tuple(float(v) for v in torch.as_tensor(p, dtype=torch.float64).reshape(-1).tolist())
        if len(t) != d:
            raise ConfigError(
                f"problem {name!r}: a point in {what} has {len(t)} coordinates, dim is {d}"
            )
        out.append(t)
    return tuple(out)


@dataclass(frozen=True, eq=False)
class Problem:
    """A loss f: R^d -> R with what is known about it.

    ``fn`` is batched: an input of shape ``(..., d)`` gives an output of shape ``(...)``. Pass
    ``batched=False`` for a callable that takes one point ``(d,)`` and returns a scalar; it is then
    vmapped. Gradients, Hessian-vector products and Hessians come from autograd through the counted
    :class:`~optzoo.problems.oracle.Oracle`; ``grad`` is an optional analytic gradient, batched like
    ``fn``, and ``value_and_grad`` an optional ``x -> (f, g)`` for losses whose gradient reuses the
    forward pass (f must equal ``fn(x)`` bit for bit). ``hessian`` is an optional analytic Hessian,
    ``(R, d) -> (R, d, d)`` and symmetric: the oracle's Hessians (Newton, escape steps) then cost
    O(R d^2) instead of d double-backward passes; the end-point analysis keeps autograd's.

    Success: where ``f_star`` is known a run is solved when ``f <= f_star + target``. Where it is
    not (f unbounded below near a saddle), a run is solved when it has escaped the first known
    saddle: ``f < f(saddle) - escape_drop`` or ``|x - saddle| > escape_radius``. With neither, a
    run is never "solved" and runs to its budget.

    The problem is validated when it is made: ``x0`` must be finite, ``fn(x0)`` a finite real
    scalar per point, and differentiable. A failure raises :class:`ConfigError` naming the problem.
    """

    fn: Callable[[Tensor], Tensor]
    x0: Sequence[float] | Tensor
    name: str = "custom"
    category: str = "custom"
    bounds: Sequence[Sequence[float]] | Tensor | None = None
    f_star: float | None = None
    minimizers: Sequence[Sequence[float]] = ()
    saddles: Sequence[Sequence[float]] = ()
    target: float = 1e-8
    escape_drop: float = 1e-2
    escape_radius: float = 1.0
    description: str = ""
    batched: bool = True
    grad: Callable[[Tensor], Tensor] | None = None
    value_and_grad: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None
    hessian: Callable[[Tensor], Tensor] | None = None
    minibatch: MiniBatch | None = None
    params: dict = field(default_factory=dict)
    validate: bool = True

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name:
            raise ConfigError("a problem's name must be a non-empty string")
        if not callable(self.fn):
            raise ConfigError(
                f"problem {name!r}: fn must be callable, got {type(self.fn).__name__}"
            )
        if self.category not in CATEGORIES:
            raise ConfigError(
                f"problem {name!r}: unknown category {self.category!r}; "
                f"allowed: {', '.join(CATEGORIES)}"
            )
        try:
            x0 = torch.as_tensor(self.x0, dtype=torch.float64).detach().reshape(-1).clone()
        except (TypeError, ValueError, RuntimeError) as e:
            raise ConfigError(f"problem {name!r}: x0 is not a list of numbers ({e})") from None
        if x0.numel() == 0 or not bool(torch.isfinite(x0).all()):
            raise ConfigError(f"problem {name!r}: x0 must be a non-empty vector of finite numbers")
        object.__setattr__(self, "x0", x0)
        d = x0.numel()
        if self.bounds is None:
            lo, hi = x0 - 1.0, x0 + 1.0
        else:
            b = torch.as_tensor(self.bounds, dtype=torch.float64)
            if b.shape == (2,):
                b = b.reshape(2, 1).expand(2, d)
            elif b.shape == (d, 2):
                b = b.T
            if b.shape != (2, d) or not bool((b[0] < b[1]).all()):
                raise ConfigError(
                    f"problem {name!r}: bounds must be (lo, hi), or one (lo, hi) per coordinate, "
                    "with lo < hi"
                )
            lo, hi = b[0].clone(), b[1].clone()
        object.__setattr__(self, "bounds", torch.stack([lo, hi]))
        object.__setattr__(self, "minimizers", _as_points(self.minimizers, d, "minimizers", name))
        object.__setattr__(self, "saddles", _as_points(self.saddles, d, "saddles", name))
        if self.f_star is not None:
            fs = float(self.f_star)
            if not math.isfinite(fs):
                raise ConfigError(f"problem {name!r}: f_star must be a finite number or None")
            object.__setattr__(self, "f_star", fs)
        if not self.batched:
            single = self.fn
            object.__setattr__(self, "fn", _vmapped(single))
            object.__setattr__(self, "batched", True)
        if self.validate:
            self._check_fn()

    # -- facts ---------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.x0.numel())

    @property
    def hessian_is_constant(self) -> bool:
        """True when the analytic Hessian is one matrix for every x (made by
        :func:`constant_hessian`: a quadratic), so it is the same at every point."""
        h = self.hessian
        return isinstance(h, partial) and h.func is _broadcast

    @property
    def stochastic(self) -> bool:
        return self.minibatch is not None

    def f_saddle(self) -> float | None:
        """f at the first known saddle, the reference for the escape rule."""
        if not self.saddles:
            return None
        return float(self(torch.tensor([self.saddles[0]], dtype=torch.float64))[0])

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def solved(self, x: Tensor, f: Tensor) -> Tensor:
        """Per-run success, shape ``(R,)``, for iterates ``x (R, d)`` with losses ``f (R,)``."""
        if self.f_star is not None:
            return f <= self.f_star + self.target
        if self.saddles:
            s = torch.tensor(self.saddles[0], dtype=x.dtype, device=x.device)
            fs = self.f_saddle()
            return (f < fs - self.escape_drop) | (
                torch.linalg.vector_norm(x - s, dim=-1) > self.escape_radius
            )
        return torch.zeros_like(f, dtype=torch.bool)

    def sample_starts(self, n: int, seed: int, dtype=torch.float64, device="cpu") -> Tensor:
        """``n`` starts drawn uniformly from the box, seeded; shape ``(n, d)``."""
        gen = torch.Generator().manual_seed(int(seed))
        u = torch.rand(n, self.dim, generator=gen, dtype=torch.float64)
        lo, hi = self.bounds
        return (lo + u * (hi - lo)).to(dtype=dtype, device=device)

    def info(self) -> dict:
        """Plain-data description, stored with results."""
        return {
            "name": self.name,
            "category": self.category,
            "dim": self.dim,
            "f_star": self.f_star,
            "x0": self.x0.tolist(),
            "bounds": self.bounds.tolist(),
            "minimizers": [list(p) for p in self.minimizers],
            "saddles": [list(p) for p in self.saddles],
            "target": self.target,
            "description": self.description,
            "params": dict(self.params),
        }

    # -- validation ----------------------------------------------------------------------------
    def _check_fn(self) -> None:
        name = self.name
        x = self.x0.reshape(1, -1).clone().requires_grad_(True)
        try:
            with torch.enable_grad():
                out = self.fn(x)
        except ConfigError as e:
            raise ConfigError(f"problem {name!r}: {e}") from None
        except Exception as e:  # the user's code failed: report it as their error, in one line
            raise ConfigError(
                f"problem {name!r}: evaluating the loss at x0 failed: {type(e).__name__}: {e}"
            ) from None
        if not isinstance(out, Tensor):
            raise ConfigError(
                f"problem {name!r}: the loss must return a torch.Tensor, got {type(out).__name__}"
            )
        if out.shape != (1,):
            raise ConfigError(
                f"problem {name!r}: the loss must map a batch (R, {self.dim}) to shape (R,), "
                f"got shape {tuple(out.shape)} for R=1"
            )
        if out.is_complex() or not out.is_floating_point():
            raise ConfigError(f"problem {name!r}: the loss must be a real floating-point tensor")
        if not bool(torch.isfinite(out).all()):
            raise ConfigError(
                f"problem {name!r}: the loss is not finite at x0 (f(x0) = {out.item()})"
            )
        if not out.requires_grad:
            raise ConfigError(
                f"problem {name!r}: the loss is not differentiable at x0 (no autograd graph to x)"
            )
        (g,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
        if g is None or not bool(torch.isfinite(g).all()):
            raise ConfigError(f"problem {name!r}: the gradient at x0 is missing or not finite")


def _vmapped(single: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """Batch a one-point callable: (d,) -> () becomes (..., d) -> (...)."""

    def fn(x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1])
        try:
            out = torch.func.vmap(single)(flat)
        except Exception:
            # Callables that vmap cannot trace (in-place ops, .item()) fall back to a loop.
            out = torch.stack([torch.as_tensor(single(p)) for p in flat])
        if out.shape != flat.shape[:1]:
            raise ConfigError(
                f"the loss must return a scalar for one point of shape ({x.shape[-1]},), "
                f"got shape {tuple(out.shape[1:])}"
            )
        return out.reshape(lead)

    fn.__name__ = getattr(single, "__name__", "fn")
    return fn


def hessian_2d(hxx: Tensor, hxy: Tensor, hyy: Tensor) -> Tensor:
    """The symmetric 2 x 2 Hessians [[hxx, hxy], [hxy, hyy]] from three ``(R,)`` tensors."""
    return torch.stack([torch.stack([hxx, hxy], -1), torch.stack([hxy, hyy], -1)], -2)


def constant_hessian(H: Tensor) -> Callable[[Tensor], Tensor]:
    """x -> H for every run (a quadratic's Hessian), as a broadcast view: no copy per step."""
    # Exactly symmetric, as the autograd Hessian is made; a partial, so problems still pickle.
    return partial(_broadcast, H=0.5 * (H + H.T))


def _broadcast(x: Tensor, H: Tensor) -> Tensor:
    return H.to(dtype=x.dtype, device=x.device).expand(*x.shape[:-1], *H.shape)
