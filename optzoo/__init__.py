"""optzoo: an optimizer zoo and benchmark suite."""

import os

# MKL (torch's BLAS and LAPACK on x86 CPUs) picks code paths by the memory alignment of each
# matrix, so the k-th Hessian of a batch can get a different eigendecomposition than the same
# Hessian alone. Conditional Numerical Reproducibility in strict mode removes that dependence.
# MKL reads this once, at its first call: it holds if optzoo is imported before torch does any
# linear algebra (the command line and the executors' workers do). A user's setting wins.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from optzoo.errors import ConfigError  # noqa: E402

__version__ = "0.1.0"

# Imported when first used, so that `python -m optzoo.report` does not pay for torch.
_LAZY = {"Problem": "optzoo.problems.base", "run": "optzoo.harness", "Results": "optzoo.harness"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'optzoo' has no attribute {name!r}")


__all__ = ["ConfigError", "Problem", "Results", "run", "__version__"]
