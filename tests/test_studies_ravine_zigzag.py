"""ravine-zigzag, reduced: GD flips past lr = 1/L; iterations scale faster in kappa for GD."""

STUDY = "ravine-zigzag"


def test_summary_is_valid(published_summary):
    assert published_summary["name"] == STUDY and published_summary["reduced"] is True


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
