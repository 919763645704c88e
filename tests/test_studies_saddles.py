"""The saddle studies' reduced runs: escape times and Newton's pull, in the theory's direction."""

from __future__ import annotations

import json

import pytest

from optzoo import studies
from optzoo.studies.base import summary_dict, validate_summary


@pytest.fixture(scope="module")
def escape():
    study = studies.get("saddle-escape")
    return study, study.run(True)


@pytest.fixture(scope="module")
def basins():
    study = studies.get("newton-saddles")
    return study, study.run(True)


def test_gd_escape_time_grows_like_log_inverse_distance(escape):
    study, out = escape
    # Measured steps per decade of 1/distance over ln 10 / ln(1 + eta |lambda_min|).
    assert 0.8 < out.summary.ci[0] <= out.summary.value <= out.summary.ci[1] < 1.2
    t = out.tables["escape"]
    gd = t[t["method"] == "gd"].sort_values("delta")
    for _, g in gd[gd["delta"] > 0].groupby("problem"):
        assert g["median_escape_step"].is_monotonic_decreasing  # farther: sooner
    validate_summary(json.loads(json.dumps(summary_dict(study, out, True))))


def test_from_the_saddle_only_curvature_or_noise_leave(escape):
    t = escape[1].tables["escape"]
    at0 = t[t["delta"] == 0.0].set_index(["method", "problem"])["escaped"]
    assert (at0.loc["gd"] == 0).all() and (at0.loc["newton-sf"] == 0).all()
    assert (at0.loc["gd+escape"] == 1).all() and (at0.loc["gd+noise"] == 1).all()


def test_plain_newton_lands_on_the_saddle_saddle_free_does_not(escape):
    t = escape[1].tables["escape"]
    near = t[t["delta"] > 0].groupby("method")["on_saddle"].mean()
    assert near["newton"] > 0.9 and near["newton-sf"] == 0.0


def test_newton_ends_at_saddles_more_than_saddle_free(basins):
    study, out = basins
    assert out.summary.ci[0] > 0  # Newton's share of saddle/maximum end points minus SFN's
    ends = out.tables["ends"].set_index(["problem", "method"])["saddle_or_max"]
    for prob in ("himmelblau", "beale"):
        assert ends.loc[(prob, "newton")] > ends.loc[(prob, "newton-sf")]
    validate_summary(json.loads(json.dumps(summary_dict(study, out, True))))
