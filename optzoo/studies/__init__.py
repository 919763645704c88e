"""Designed studies, one per effect of the theory; ``python -m optzoo.study NAME`` runs one.

Each entry names the module that defines ``STUDY`` (a :class:`optzoo.studies.base.Study`); the
module is imported only when its study runs.
"""

from __future__ import annotations

import importlib

from optzoo.errors import ConfigError
from optzoo.studies.base import Outcome, Study, Summary, publish, write_index

STUDIES: dict[str, str] = {
    # Studies I (issue 17): critical points, saddles, Newton and quasi-Newton.
    "critical-points": "optzoo.studies.critical_points",
    "critical-points-high-dim": "optzoo.studies.critical_points_high_dim",
    "minimum-ratio": "optzoo.studies.minimum_ratio",
    "newton-saddles": "optzoo.studies.newton_saddles",
    "quasi-newton": "optzoo.studies.quasi_newton",
    "saddle-escape": "optzoo.studies.saddle_escape",
    # Studies II (issue 18): ravines, plateaus, cliffs, noise and learning-rate decay.
    "ravine-zigzag": "optzoo.studies.ravine_zigzag",
    "plateau": "optzoo.studies.plateau",
    "cliff-clipping": "optzoo.studies.cliff_clipping",
    "minibatch-noise": "optzoo.studies.minibatch_noise",
    "lr-decay": "optzoo.studies.lr_decay",
    "adagrad-rmsprop": "optzoo.studies.adagrad_rmsprop",
}


def names() -> list[str]:
    """The registered studies, sorted."""
    return sorted(STUDIES)


def get(name: str) -> Study:
    """The study called ``name``; an unknown name raises ConfigError listing the valid ones."""
    if name not in STUDIES:
        raise ConfigError(f"unknown study {name!r}; choose from {names()} or 'all'")
    return importlib.import_module(STUDIES[name]).STUDY


__all__ = ["STUDIES", "Outcome", "Study", "Summary", "get", "names", "publish", "write_index"]
