"""minibatch-noise, reduced: the loss floor falls as the batch grows; noise variance ~ 1/B."""

STUDY = "minibatch-noise"


def test_summary_is_valid(published_summary):
    assert published_summary["name"] == STUDY and published_summary["reduced"] is True


def test_floor_falls_as_the_batch_grows(outcome):
    floor = outcome.tables["floors"].groupby("batch").floor.mean()
    assert floor[4] > floor[64] > floor[0], floor  # batch 0 is the full data set


def test_noise_variance_scales_like_one_over_batch(outcome):
    var = outcome.tables["noise_variance"].set_index("batch").variance
    assert 8 < var[4] / var[64] < 32, var  # 1/B predicts 16
