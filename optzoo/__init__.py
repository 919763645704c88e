"""optzoo: an optimizer zoo and benchmark suite."""

from optzoo.errors import ConfigError

__version__ = "0.1.0"

# Imported when first used, so that `python -m optzoo.report` does not pay for torch.
_LAZY = {"Problem": "optzoo.problems.base", "run": "optzoo.harness", "Results": "optzoo.harness"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'optzoo' has no attribute {name!r}")


__all__ = ["ConfigError", "Problem", "Results", "run", "__version__"]
