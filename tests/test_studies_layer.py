"""The studies layer: schema validation, publishing and the index, on a toy study."""

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from optzoo.errors import ConfigError  # noqa: E402
from optzoo.studies import base  # noqa: E402


def toy(reduced: bool) -> base.Outcome:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    s = base.Summary("a claim", "slope", -1.0, (-1.2, -0.8), 0.0, "confirmed")
    return base.Outcome(s, "## Design\nnone\n", {"line": fig}, {"data": pd.DataFrame({"a": [1]})})


def test_publish_writes_valid_summary_and_index(tmp_path):
    study = base.Study("toy", "Toy", "a claim", toy)
    d = base.publish(study, study.run(True), tmp_path, reduced=True)
    data = json.loads((d / "summary.json").read_text())
    base.validate_summary(data)
    assert data["ci"] == [-1.2, -0.8] and data["reduced"] is True
    names = {p.name for p in d.iterdir()}
    assert (
        names >= {"line.png", "data.csv", "FINDINGS.md"} and "line.svg" not in names
    )  # one format
    index = base.write_index(tmp_path).read_text()
    assert "[toy](toy/FINDINGS.md)" in index and "confirmed" in index


@pytest.mark.parametrize(
    "change",
    [
        {"verdict": "maybe"},
        {"ci": [1.0]},
        {"ci": [2.0, 1.0]},
        {"value": "big"},
        {"claim": ""},
        {"baseline": "none"},
        {"reduced": "no"},
    ],
)
def test_validate_summary_refuses_malformed(change):
    good = {
        "name": "x", "claim": "c", "metric": "m", "value": 1.0, "ci": [0.0, 2.0],
        "baseline": None, "verdict": "partly", "reduced": False,
    }  # fmt: skip
    base.validate_summary(good)
    with pytest.raises(ConfigError):
        base.validate_summary({**good, **change})


def test_unknown_study_lists_valid_names():
    from optzoo import studies

    with pytest.raises(ConfigError, match="choose from"):
        studies.get("no-such-study")
