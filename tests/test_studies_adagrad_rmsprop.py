"""adagrad-rmsprop, reduced: AdaGrad's effective lr ends below RMSProp's on Rosenbrock."""

STUDY = "adagrad-rmsprop"


def test_summary_is_valid(published_summary):
    assert published_summary["name"] == STUDY and published_summary["reduced"] is True


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
