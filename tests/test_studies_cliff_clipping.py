"""cliff-clipping, reduced: clipping cuts the divergence rate at the cliff; the bowl alone never
diverges (so the divergence is the wall's doing)."""

import json

import pytest

from optzoo import studies
from optzoo.studies.base import publish, validate_summary


@pytest.fixture(scope="module")
def outcome():
    return studies.get("cliff-clipping").run(True)


def test_summary_is_valid(outcome, tmp_path):
    d = publish(studies.get("cliff-clipping"), outcome, tmp_path, reduced=True)
    validate_summary(json.loads((d / "summary.json").read_text()))


def test_clipping_cuts_divergence(outcome):
    runs = outcome.tables["runs"]
    rate = runs.groupby(["problem", "clipping"]).diverged.mean()
    assert rate["cliff", "none"] > 0.1, rate
    assert rate["cliff", "norm"] < rate["cliff", "none"], rate
    assert rate["cliff", "value"] < rate["cliff", "none"], rate
    assert rate["bowl (no wall)", "none"] == 0, rate


def test_clipping_bounds_the_largest_step(outcome):
    runs = outcome.tables["runs"]
    norm = runs[(runs.problem == "cliff") & (runs.clipping == "norm")]
    assert (norm.max_step <= norm.lr * 5.0 * (1 + 1e-9)).all()
