"""What every batched optimizer shares: hyperparameters, validation, state masking.

An optimizer advances R runs at once. Iterates have shape ``(R, d)``; each hyperparameter is a
Python number or a tensor of shape ``(R,)`` (one value per run); state is a NamedTuple of tensors
with the run axis first. A step has no Python loop over runs and no branch on tensor values.

Two layers, as in optax:

- ``update(x, g, state, hp) -> (x_new, state)`` is the pure rule of a first-order method, the
  only place its math lives. ``hp`` maps names to numbers or tensors broadcastable to ``x``.
  The ``torch.optim`` drop-ins in :mod:`optzoo.optim` call this same function.
- ``step(x, state, oracle, lr_scale) -> (x_new, state, f)`` asks the counted oracle for what the
  rule needs and applies it; ``f`` is the loss at ``x`` (before the step), shape ``(R,)``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from optzoo.errors import ConfigError

Hyper = float | Tensor


def where_state(mask: Tensor, new: NamedTuple, old: NamedTuple) -> NamedTuple:
    """Field-wise ``where(mask, new, old)`` over a state tuple; ``mask`` is ``(R,)`` bool.

    A field shared by all runs (leading size 1, e.g. Adam's step count) becomes per run here.
    """
    out = []
    R = mask.shape[0]
    for a, b in zip(new, old, strict=True):
        if isinstance(a, Tensor) and a.ndim >= 1 and a.shape[0] in (R, 1) and a.numel() > 0:
            m = mask.reshape(mask.shape + (1,) * (a.ndim - 1))
            out.append(torch.where(m, a, b))
        else:
            out.append(a)
    return type(new)(*out)


def as_column(v: Hyper, x: Tensor) -> Hyper:
    """A per-run tensor ``(R,)`` as ``(R, 1)`` in x's dtype and device; numbers pass through."""
    if isinstance(v, Tensor):
        return v.to(dtype=x.dtype, device=x.device).reshape(-1, *([1] * (x.ndim - 1)))
    return v


def _resolve(v: Any, x: Tensor) -> Any:
    """:func:`as_column` of a hyperparameter, entry by entry for a tuple-valued one."""
    return tuple(as_column(b, x) for b in v) if isinstance(v, tuple) else as_column(v, x)


def add_scaled(a: Tensor, b: Tensor, alpha: Hyper) -> Tensor:
    """``a + alpha * b`` rounded once, as torch.optim's ``a.add(b, alpha=alpha)``.

    torch's CPU kernel fuses the multiply and the add; ``a + alpha * b`` rounds twice and so
    drifts from torch by an ulp now and then (visible in float32). ``alpha`` is a number or a
    tensor broadcastable to ``a`` (a per-run column); both forms give the same bits.
    """
    if isinstance(alpha, Tensor):
        return torch.addcmul(a, b, alpha)
    return torch.add(a, b, alpha=alpha)


def _values(v: Any) -> list[float]:
    if isinstance(v, Tensor):
        return [float(t) for t in v.detach().reshape(-1).tolist()]
    return [float(v)]


class Optimizer:
    """Base class of the batched optimizers. Subclasses set ``name``, ``defaults`` and ``flags``.

    ``flags`` names the hyperparameters that change the program rather than a number in it
    (``nesterov``, ``amsgrad``, ``line_search_fn``, ...): they must be plain Python values, the
    same for every run of a batch. All others may be per-run tensors of shape ``(R,)``.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    flags: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, **hp: Any) -> None:
        unknown = sorted(set(hp) - set(self.defaults))
        if unknown:
            raise ConfigError(
                f"optimizer {self.name!r}: unknown hyperparameter {unknown[0]!r}; "
                f"allowed: {', '.join(sorted(self.defaults))}"
            )
        merged = {**self.defaults, **hp}
        for k, v in merged.items():
            if k in self.flags:
                if isinstance(v, Tensor | list | tuple):
                    raise ConfigError(
                        f"optimizer {self.name!r}: {k} must be one value for the whole batch, "
                        f"got {v!r}"
                    )
            elif isinstance(self.defaults.get(k), tuple):
                merged[k] = self._tuple_value(k, v)
            elif isinstance(v, list):
                merged[k] = torch.tensor(v, dtype=torch.float64)
        self.hp: dict[str, Any] = merged
        self.check(merged)

    def _tuple_value(self, key: str, v: Any) -> tuple:
        """A tuple-valued hyperparameter (its default is a tuple, as Adam's betas): as many
        entries as the default, each a number or per-run values (a list becomes a tensor)."""
        n = len(self.defaults[key])
        if isinstance(v, str) or not hasattr(v, "__len__") or len(v) != n:
            names = ", ".join(f"{key}[{i}]" for i in range(n))
            raise ConfigError(
                f"optimizer {self.name!r}: {key} must be {n} values ({names}), got {v!r}"
            )
        return tuple(torch.tensor(b, dtype=torch.float64) if isinstance(b, list) else b for b in v)

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.hp.items() if not _same(v, self.defaults.get(k))}
        inner = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        return f"{type(self).__name__}({inner})"

    # -- validation ------------------------------------------------------------------------------
    def check(self, hp: Mapping[str, Any]) -> None:
        """Raise ConfigError for a hyperparameter out of range. Subclasses extend it."""

    def require(self, key: str, value: Any, ok, allowed: str) -> None:
        """Check every value of a (possibly per-run) hyperparameter with predicate ``ok``."""
        try:
            vals = _values(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"optimizer {self.name!r}: {key} must be a number, got {value!r}"
            ) from None
        for v in vals:
            if math.isnan(v) or not ok(v):
                raise ConfigError(
                    f"optimizer {self.name!r}: invalid {key} {v!r}; allowed: {allowed}"
                )

    # -- running ---------------------------------------------------------------------------------
    def resolved(self, x: Tensor, lr_scale: Hyper = 1.0) -> dict[str, Any]:
        """Hyperparameters ready for ``update``: per-run tensors as columns, lr scaled."""
        hp = {k: v if k in self.flags else _resolve(v, x) for k, v in self.hp.items()}
        if "lr" in hp and not (isinstance(lr_scale, float | int) and lr_scale == 1.0):
            hp["lr"] = hp["lr"] * as_column(lr_scale, x)
        return hp

    def per_run(
        self,
        x: Tensor,
        lr_scale: Hyper = 1.0,
        keys: Iterable[str] | None = None,
        counts: Collection[str] = (),
    ) -> dict[str, Any]:
        """Hyperparameters as ``(R,)`` tensors, lr scaled (for rules that mix runs' numbers
        into per-run scalars, such as Newton's, BFGS's and L-BFGS's).

        ``keys``: the hyperparameters wanted (default: every one but the flags). Those in
        ``counts`` become int64 (rounded), the others x's dtype; a tuple-valued one becomes a
        tuple of such tensors. Python numbers go through float64 (``as_tensor`` would round them
        to float32 first).
        """
        R = x.shape[0]

        def full(v: Any, dtype: torch.dtype) -> Tensor:
            t = v if isinstance(v, Tensor) else torch.tensor(v, dtype=torch.float64)
            return t.to(device=x.device, dtype=dtype).reshape(-1).expand(R)

        def column(k: str, v: Any) -> Tensor:
            if k in counts:
                return full(v, torch.float64).round().to(torch.int64)
            return full(v, x.dtype)

        names = [k for k in self.hp if k not in self.flags] if keys is None else list(keys)
        hp: dict[str, Any] = {}
        for k in names:
            v = self.hp[k]
            hp[k] = tuple(column(k, b) for b in v) if isinstance(v, tuple) else column(k, v)
        if "lr" in hp and not (isinstance(lr_scale, float | int) and lr_scale == 1.0):
            hp["lr"] = hp["lr"] * full(lr_scale, x.dtype)
        return hp

    def init(self, x: Tensor) -> NamedTuple:
        """The state for iterates ``x (R, d)``."""
        raise NotImplementedError

    def step(self, x: Tensor, state: NamedTuple, oracle, lr_scale: Hyper = 1.0):
        """One step of every run: returns ``(x_new, state, f(x))``."""
        raise NotImplementedError


class FirstOrder(Optimizer):
    """A method that needs one gradient per step; its whole rule is :meth:`update`."""

    def step(self, x: Tensor, state: NamedTuple, oracle, lr_scale: Hyper = 1.0):
        f, g = oracle.value_and_grad(x)
        x_new, state = self.update(x, g, state, self.resolved(x, lr_scale))
        return x_new, state, f

    @staticmethod
    def update(x: Tensor, g: Tensor, state: NamedTuple, hp: Mapping[str, Any]):
        raise NotImplementedError


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return False
    return a == b
