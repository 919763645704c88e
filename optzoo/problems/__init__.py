"""The landscape library (placeholder registry until the families land)."""

from optzoo.problems.base import MiniBatch, Problem
from optzoo.problems.oracle import Oracle

__all__ = ["MiniBatch", "Oracle", "Problem"]
