"""ravine-zigzag, reduced: GD flips past lr = 1/L; iterations scale faster in kappa for GD."""

import json

import pytest

from optzoo import studies
from optzoo.studies.base import publish, validate_summary


@pytest.fixture(scope="module")
def outcome():
    return studies.get("ravine-zigzag").run(True)


def test_summary_is_valid(outcome, tmp_path):
    d = publish(studies.get("ravine-zigzag"), outcome, tmp_path, reduced=True)
    validate_summary(json.loads((d / "summary.json").read_text()))


def test_gd_flip_rate_rises_past_one_over_L(outcome):
    osc = outcome.tables["oscillation"]
    quad = osc[osc.problem == "ellipsoid kappa=100"]
    below = quad[quad.c < 1].flip_rate.max()
    above = quad[quad.c > 1].flip_rate.min()
    assert below < 0.05 and above > 0.95, (below, above)


def test_gd_slope_near_one_and_above_momentum(outcome):
    s = outcome.tables["slopes"].set_index("method").slope
    assert s["sgd"] > 0.8, s
    assert s["momentum"] < 0.7, s
    assert s["sgd"] - s["momentum"] > 0.3, s
