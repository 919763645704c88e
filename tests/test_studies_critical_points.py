"""The critical-points studies' reduced runs: the theory's direction, and a valid summary."""

from __future__ import annotations

import json

import pytest

from optzoo import studies
from optzoo.studies.base import summary_dict, validate_summary


@pytest.fixture(scope="module")
def low_dim():
    study = studies.get("critical-points")
    return study, study.run(True)


@pytest.fixture(scope="module")
def high_dim():
    study = studies.get("critical-points-high-dim")
    return study, study.run(True)


def test_himmelblau_nine_points_classified_by_eigenvalues(low_dim):
    study, out = low_dim
    assert out.summary.value == 1.0  # 9 of 9 known critical points, each of its known kind
    found = out.tables["critical_points"]
    h = found[found["problem"] == "himmelblau"]
    assert sorted(h["kind"].value_counts().items()) == [
        ("maximum", 1),
        ("minimum", 4),
        ("saddle", 4),
    ]
    # The gradient cannot tell them apart: it is at round-off at every kind.
    assert found["grad_norm"].max() < 1e-8
    origin = found[(found["problem"] == "two_neuron") & (found["kind"] == "saddle")]
    assert origin[["eig_min", "eig_max"]].values.round(9).tolist() == [[-2.0, 2.0]]
    validate_summary(json.loads(json.dumps(summary_dict(study, out, True))))


def test_minima_become_rare_and_index_rises_with_f(high_dim):
    study, out = high_dim
    share = out.tables["minima_by_d"].set_index("d")["share"]
    assert share.loc[4] < share.loc[1]  # minima rarer in 4-D than in 1-D
    assert out.summary.value == share.loc[4] and out.summary.baseline == share.loc[1]
    rho = out.tables["index_vs_f"].set_index("d")
    assert (rho["spearman"] > 0).all()  # higher critical points have more directions down
    validate_summary(json.loads(json.dumps(summary_dict(study, out, True))))
