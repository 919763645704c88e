"""Learning-rate schedules: the multiplier of every optimizer's lr at step t.

A suite names one in ``[options]``, e.g. ``schedule = { kind = "exponential", gamma = 0.999 }``;
a parameter left out takes its default from :data:`SCHEDULES`. With t the step (0-based) and T
the suite's step budget::

    constant       1
    piecewise      gamma ^ (number of milestones m with t >= m)
    inverse_time   1 / (1 + decay t)
    exponential    gamma ^ t
    cosine         eta_min + (1 - eta_min) (1 + cos(pi min(t, T) / T)) / 2

As torch.optim.lr_scheduler's MultiStepLR, InverseTimeDecay (Keras), ExponentialLR and
CosineAnnealingLR (with the multiplier in place of the rate: eta_max = 1).
"""

from __future__ import annotations

import math
from typing import Any

from optzoo.errors import ConfigError

# kind -> its parameters with their defaults: the one place the defaults are stated.
SCHEDULES: dict[str, dict[str, Any]] = {
    "constant": {},
    "piecewise": {"milestones": [], "gamma": 0.1},
    "inverse_time": {"decay": 1e-3},
    "exponential": {"gamma": 0.999},
    "cosine": {"eta_min": 0.0},
}


def lr_factor(schedule: dict, t: int, steps: int) -> float:
    """The multiplier at step ``t`` (0-based) of a run of ``steps`` steps."""
    kind = schedule["kind"]
    p = {**SCHEDULES[kind], **schedule}
    if kind == "constant":
        return 1.0
    if kind == "piecewise":
        return float(p["gamma"]) ** sum(t >= m for m in p["milestones"])
    if kind == "inverse_time":
        return 1.0 / (1.0 + float(p["decay"]) * t)
    if kind == "exponential":
        return float(p["gamma"]) ** t
    if kind == "cosine":
        lo = float(p["eta_min"])
        return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps))
    raise AssertionError(kind)


def check(s: Any) -> dict:
    """A schedule (a kind's name, or a table with ``kind`` and parameters) as a validated dict.

    Parameters left out stay out (the dict is part of the suite's digest); :func:`lr_factor`
    fills in their defaults.
    """
    if isinstance(s, str):
        s = {"kind": s}
    if not isinstance(s, dict) or s.get("kind") not in SCHEDULES:
        got = s.get("kind") if isinstance(s, dict) else s
        raise ConfigError(
            f"options.schedule: unknown kind {got!r}; allowed: {', '.join(SCHEDULES)}"
        )
    allowed = {"kind", *SCHEDULES[s["kind"]]}
    unknown = sorted(set(s) - allowed)
    if unknown:
        raise ConfigError(
            f"options.schedule ({s['kind']}): unknown key {unknown[0]!r}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    for k, v in s.items():
        if k == "kind":
            continue
        if k == "milestones":
            if not isinstance(v, list) or not all(isinstance(m, int) and m > 0 for m in v):
                raise ConfigError("options.schedule.milestones must be a list of whole steps > 0")
        elif isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ConfigError(f"options.schedule.{k} must be a finite number, got {v!r}")
        elif v < 0.0:
            raise ConfigError(f"options.schedule.{k} must be >= 0.0, got {v!r}")
    return dict(s)
