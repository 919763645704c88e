"""The batched optimizers, by name.

``get(name, **hyperparameters)`` makes one; ``names()`` lists them. An unknown name or a
hyperparameter out of range raises :class:`optzoo.errors.ConfigError` (a ``ValueError``) that says
what is allowed.
"""

from __future__ import annotations

import importlib
from typing import Any

from optzoo.errors import ConfigError
from optzoo.optimizers.base import FirstOrder, Optimizer, where_state

# name -> "module:Class" under optzoo.optimizers; imported when first asked for.
REGISTRY: dict[str, str] = {
    "sgd": "sgd:SGD",
    "momentum": "sgd:Momentum",
    "nesterov": "sgd:Nesterov",
    "adagrad": "adagrad:Adagrad",
    "rmsprop": "rmsprop:RMSprop",
    "adam": "adam:Adam",
    "adamw": "adam:AdamW",
    "adadelta": "adadelta:AdaDelta",
    "newton": "newton:Newton",
    "lbfgs": "lbfgs:LBFGS",
    "bfgs": "quasi_newton:BFGS",
    "dfp": "quasi_newton:DFP",
    "sgd+escape": "escape:SGDEscape",
    "momentum+escape": "escape:MomentumEscape",
}


def names() -> list[str]:
    """The optimizer names ``get`` accepts, sorted."""
    return sorted(REGISTRY)


def get_class(name: str | type) -> type[Optimizer]:
    """The optimizer class registered under ``name``, or named by a class or ``"module:Class"``.

    A ``torch.optim.Optimizer`` class is wrapped to run batched (see
    :mod:`optzoo.optimizers.external`); an optzoo optimizer class is returned as it is.
    """
    if not isinstance(name, str) or ":" in name:
        from optzoo.optimizers import external

        return external.resolve(name)
    if name not in REGISTRY:
        raise ConfigError(
            f"unknown optimizer {name!r}; allowed: {', '.join(names())}, or a class as "
            "'package.module:Class' (any torch.optim.Optimizer)"
        )
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(f"optzoo.optimizers.{module}"), cls)


def get(name: str, escape: bool | dict = False, **hyperparameters: Any) -> Optimizer:
    """A batched optimizer by name, e.g. ``get("adam", lr=[1e-3, 1e-2])``.

    ``escape=True`` (or a dict of its settings) wraps it in the negative-curvature saddle escape
    of :mod:`optzoo.optimizers.escape`.
    """
    opt = get_class(name)(**hyperparameters)
    if escape:
        from optzoo.optimizers.escape import SaddleEscape

        opt = SaddleEscape(opt, **(escape if isinstance(escape, dict) else {}))
    return opt


__all__ = ["FirstOrder", "Optimizer", "REGISTRY", "get", "get_class", "names", "where_state"]
