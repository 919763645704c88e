"""plateau, reduced: SGD's escape time grows like 1/|g0|; Adam's barely depends on it."""

import json

import pytest

from optzoo import studies
from optzoo.studies.base import publish, validate_summary


@pytest.fixture(scope="module")
def outcome():
    return studies.get("plateau").run(True)


def test_summary_is_valid(outcome, tmp_path):
    d = publish(studies.get("plateau"), outcome, tmp_path, reduced=True)
    validate_summary(json.loads((d / "summary.json").read_text()))


def test_sgd_scales_with_inverse_gradient_and_adam_does_not(outcome):
    s = outcome.tables["slopes"].set_index("method").slope
    assert s["sgd"] > 0.6, s
    assert abs(s["adam"]) < 0.4, s
    assert s["sgd"] > s["adam"] + 0.4, s
