"""adagrad-rmsprop, reduced: AdaGrad's effective lr ends below RMSProp's on Rosenbrock."""

import json

import pytest

from optzoo import studies
from optzoo.studies.base import publish, validate_summary


@pytest.fixture(scope="module")
def outcome():
    return studies.get("adagrad-rmsprop").run(True)


def test_summary_is_valid(outcome, tmp_path):
    d = publish(studies.get("adagrad-rmsprop"), outcome, tmp_path, reduced=True)
    validate_summary(json.loads((d / "summary.json").read_text()))


def test_adagrad_effective_lr_ends_below_rmsprop(outcome):
    end = outcome.tables["final"]
    eff = end.groupby("method").eff_lr.median()
    assert eff["adagrad"] < eff["rmsprop"], eff


def test_nesterov_and_momentum_scale_sublinearly_in_kappa(outcome):
    """Tuned, both need fewer than kappa-fold more iterations when kappa grows (~sqrt(kappa))."""
    nm = outcome.tables["nesterov_vs_momentum"].set_index("kappa")
    growth = nm.loc[100.0] / nm.loc[10.0]
    assert 1 < growth["momentum_median"] < 10, nm
    assert 1 < growth["nesterov_median"] < 10, nm
