"""optzoo: an optimizer zoo and benchmark suite.

Compare optimizers on a loss of your own in one call::

    import optzoo, torch
    res = optzoo.compare("rosenbrock", {"adam": {"lr": [1e-3, 1e-2]}, torch.optim.NAdam: {}})
    res.table()              # one row per optimizer at its best lr, COCO columns
    res.plot("convergence")  # a matplotlib Figure

Public names (loaded when first used, so that ``python -m optzoo.report`` does not pay for
torch): ``compare``, ``run``, ``Problem``, ``Suite``, ``Results``, ``Comparison``,
``ConfigError``, and the submodules ``optimizers``, ``problems``, ``optim``, ``config``,
``harness``, ``report``, ``metrics``, ``analysis``, ``store``, ``catalog``.
"""

from optzoo.errors import ConfigError

__version__ = "0.1.0"

_LAZY = {
    "compare": "optzoo.compare",
    "run": "optzoo.compare",
    "Comparison": "optzoo.compare",
    "Problem": "optzoo.problems.base",
    "Suite": "optzoo.config",
    "Results": "optzoo.runner",
}
SUBMODULES = (
    "analysis",
    "catalog",
    "config",
    "harness",
    "metrics",
    "optim",
    "optimizers",
    "problems",
    "report",
    "store",
)


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        # Importing optzoo.compare binds the submodule to this name; the function wins.
        globals()[name] = value
        return value
    if name in SUBMODULES:
        return importlib.import_module(f"optzoo.{name}")
    raise AttributeError(f"module 'optzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *SUBMODULES})


__all__ = ["ConfigError", *sorted(_LAZY), *SUBMODULES, "__version__"]
