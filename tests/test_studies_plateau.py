"""plateau, reduced: SGD's escape time grows like 1/|g0|; Adam's barely depends on it."""

STUDY = "plateau"


def test_summary_is_valid(published_summary):
    assert published_summary["name"] == STUDY and published_summary["reduced"] is True


def test_sgd_scales_with_inverse_gradient_and_adam_does_not(outcome):
    s = outcome.tables["slopes"].set_index("method").slope
    assert s["sgd"] > 0.6, s
    assert abs(s["adam"]) < 0.4, s
    assert s["sgd"] > s["adam"] + 0.4, s
