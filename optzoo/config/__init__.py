"""Suites (TOML files -> validated :class:`Suite` objects) and learning-rate schedules.

:mod:`optzoo.config.suite` holds the suite, its specs, parsing, loading and validation;
:mod:`optzoo.config.schedules` the learning-rate schedules with their defaults. Their names are
importable from here.
"""

from optzoo.config.schedules import SCHEDULES, lr_factor
from optzoo.config.suite import (
    DEVICES,
    DTYPES,
    MAX_COUNT,
    MAX_GRID,
    MAX_LOG_POINTS,
    MAX_NAME,
    MAX_SEED,
    MAX_STEPS,
    OPTION_KEYS,
    SUITE_KEYS,
    TOP_KEYS,
    TUPLE_HPS,
    OptimizerSpec,
    ProblemSpec,
    Suite,
    _validate_optimizer,
    _validate_problem,
    check_device,
    check_suite,
    configs_dir,
    grid_ratios,
    load,
    optimizer_spec,
    parse,
    per_decade,
    widened,
)

__all__ = [
    "DEVICES",
    "DTYPES",
    "MAX_COUNT",
    "MAX_GRID",
    "MAX_LOG_POINTS",
    "MAX_NAME",
    "MAX_SEED",
    "MAX_STEPS",
    "OPTION_KEYS",
    "SCHEDULES",
    "SUITE_KEYS",
    "TOP_KEYS",
    "TUPLE_HPS",
    "OptimizerSpec",
    "ProblemSpec",
    "Suite",
    "_validate_optimizer",
    "_validate_problem",
    "check_device",
    "check_suite",
    "configs_dir",
    "grid_ratios",
    "load",
    "lr_factor",
    "optimizer_spec",
    "parse",
    "per_decade",
    "widened",
]
