"""optzoo: an optimizer zoo and benchmark suite."""

from optzoo.errors import ConfigError
from optzoo.problems.base import Problem

__version__ = "0.1.0"


def __getattr__(name: str):
    # The harness pulls in pandas and pyarrow: import it only when asked for.
    if name in ("run", "Results"):
        from optzoo import harness

        return getattr(harness, name)
    raise AttributeError(f"module 'optzoo' has no attribute {name!r}")


__all__ = ["ConfigError", "Problem", "Results", "run", "__version__"]
