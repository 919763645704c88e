"""The quasi-Newton study's reduced run: the orders of convergence the theory predicts."""

from __future__ import annotations

import json

import pytest

from optzoo import optimizers, studies
from optzoo.studies.base import summary_dict, validate_summary


@pytest.fixture(scope="module")
def orders():
    study = studies.get("quasi-newton")
    return study, study.run(True)


def test_newton_near_two_gd_near_one(orders):
    study, out = orders
    assert 1.6 < out.summary.value < 2.6  # Newton on Rosenbrock: quadratic
    t = out.tables["orders"].set_index(["problem", "method"])["order"]
    assert abs(t.loc[("quadratic", "gd")] - 1.0) < 0.05  # GD on a quadratic: linear
    validate_summary(json.loads(json.dumps(summary_dict(study, out, True))))


@pytest.mark.skipif(
    not {"bfgs", "dfp"} <= set(optimizers.names()), reason="BFGS and DFP not in the zoo"
)
def test_bfgs_and_dfp_superlinear(orders):
    t = orders[1].tables["orders"].set_index(["problem", "method"])["order"]
    for m in ("bfgs", "dfp"):
        assert t.loc[("rosenbrock", m)] > 1.05
