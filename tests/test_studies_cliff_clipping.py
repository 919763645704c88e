"""cliff-clipping, reduced: clipping cuts the divergence rate at the cliff; the bowl alone never
diverges (so the divergence is the wall's doing)."""

STUDY = "cliff-clipping"


def test_summary_is_valid(published_summary):
    assert published_summary["name"] == STUDY and published_summary["reduced"] is True


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
