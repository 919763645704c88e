"""lr-decay, reduced: decay ends below a constant lr under mini-batch noise, and above it on a
deterministic quadratic (what decay costs)."""

STUDY = "lr-decay"


def test_summary_is_valid(published_summary):
    assert published_summary["name"] == STUDY and published_summary["reduced"] is True


def test_decay_lowers_the_noisy_final_loss(outcome):
    t = outcome.tables["comparison"]
    noisy = t[t.problem.str.startswith("teacher")].set_index("schedule")
    assert noisy.loc["piecewise", "mean_final"] < noisy.loc["constant", "mean_final"], noisy


def test_decay_costs_on_the_deterministic_problem(outcome):
    t = outcome.tables["comparison"]
    det = t[t.problem.str.startswith("ellipsoid")].set_index("schedule")
    assert det.loc["piecewise", "mean_final"] > det.loc["constant", "mean_final"], det
