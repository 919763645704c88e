"""minibatch-noise, reduced: the loss floor falls as the batch grows; noise variance ~ 1/B."""

import json

import pytest

from optzoo import studies
from optzoo.studies.base import publish, validate_summary


@pytest.fixture(scope="module")
def outcome():
    return studies.get("minibatch-noise").run(True)


def test_summary_is_valid(outcome, tmp_path):
    d = publish(studies.get("minibatch-noise"), outcome, tmp_path, reduced=True)
    validate_summary(json.loads((d / "summary.json").read_text()))


def test_floor_falls_as_the_batch_grows(outcome):
    floor = outcome.tables["floors"].groupby("batch").floor.mean()
    assert floor[4] > floor[64] > floor[0], floor  # batch 0 is the full data set


def test_noise_variance_scales_like_one_over_batch(outcome):
    var = outcome.tables["noise_variance"].set_index("batch").variance
    assert 8 < var[4] / var[64] < 32, var  # 1/B predicts 16
