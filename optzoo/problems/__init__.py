"""The landscape library: named problems by family, and routes for custom losses.

``get(name, **params)`` builds a registered problem, ``names(category)`` lists them, and
``load("package.module:attr")``, ``from_expression(text)`` and ``from_module(model, loss, data)``
turn a user's loss into a :class:`Problem`. A problem's category is the family module that
defines it (``optzoo.problems.saddle`` -> "saddle").
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable
from typing import Any

from optzoo.errors import ConfigError
from optzoo.problems import cliff, multimodal, neural, plateau, ravine, saddle
from optzoo.problems.base import CATEGORIES, MiniBatch, Problem
from optzoo.problems.custom import from_expression, from_module, load
from optzoo.problems.oracle import Oracle

REGISTRY: dict[str, Callable[..., Problem]] = {
    # saddle
    "saddle": saddle.saddle,
    "monkey_saddle": saddle.monkey_saddle,
    "two_neuron": saddle.two_neuron,
    "deep_linear": saddle.deep_linear,
    # ravine
    "rosenbrock": ravine.rosenbrock,
    "ellipsoid": ravine.ellipsoid,
    "beale": ravine.beale,
    # plateau
    "easom": plateau.easom,
    "gaussian_well": plateau.gaussian_well,
    "sigmoid_plateau": plateau.sigmoid_plateau,
    # cliff
    "rnn_cliff": cliff.rnn_cliff,
    "cliff": cliff.cliff,
    # multimodal
    "rastrigin": multimodal.rastrigin,
    "ackley": multimodal.ackley,
    "himmelblau": multimodal.himmelblau,
    "styblinski_tang": multimodal.styblinski_tang,
    # neural
    "teacher_student": neural.teacher_student,
    "digits_mlp": neural.digits_mlp,
}


def category(name: str) -> str:
    """The category of a registered problem, without building it."""
    return _factory(name).__module__.rsplit(".", 1)[-1]


def names(category: str | None = None) -> list[str]:
    """Registered problem names, sorted; only those of ``category`` when given."""
    if category is None:
        return sorted(REGISTRY)
    if category not in CATEGORIES:
        raise ConfigError(f"unknown category {category!r}; allowed: {', '.join(CATEGORIES)}")
    return sorted(n for n, f in REGISTRY.items() if f.__module__.rsplit(".", 1)[-1] == category)


def get(name: str, **params: Any) -> Problem:
    """Build the registered problem ``name`` with ``params`` (each factory's keyword arguments).

    An unknown name, an unknown param, a value of the wrong type or out of range raises
    :class:`ConfigError` saying what is allowed.
    """
    factory = _factory(name)
    return factory(**_checked_params(name, factory, params))


def _factory(name: str) -> Callable[..., Problem]:
    if name not in REGISTRY:
        raise ConfigError(f"unknown problem {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def _checked_params(name: str, factory: Callable[..., Problem], params: dict) -> dict:
    """Check params against the factory's signature; the default's type is the param's type."""
    defaults = {k: p.default for k, p in inspect.signature(factory).parameters.items()}
    allowed = ", ".join(f"{k}={v!r}" for k, v in defaults.items()) or "none"
    out = {}
    for key, value in params.items():
        if key not in defaults:
            raise ConfigError(f"problem {name!r} has no param {key!r}; allowed: {allowed}")
        default = defaults[key]
        if isinstance(default, bool):
            ok, kind = isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            kind = "an integer"
            value = int(value) if ok else value
        elif isinstance(default, float):
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
            ok = ok and math.isfinite(float(value))
            kind = "a finite number"
            value = float(value) if ok else value
        else:
            ok, kind = True, ""
        if not ok:
            raise ConfigError(f"problem {name!r}: param {key} must be {kind}, got {value!r}")
        out[key] = value
    return out


__all__ = [
    "CATEGORIES",
    "REGISTRY",
    "MiniBatch",
    "Oracle",
    "Problem",
    "category",
    "from_expression",
    "from_module",
    "get",
    "load",
    "names",
]
