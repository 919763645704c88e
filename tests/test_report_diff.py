"""``python -m optzoo.report.diff``: two stored runs of one suite compared, run by run."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd

from optzoo import bench
from optzoo.report import diff

TINY = """[suite]
name = "tiny"
steps = 40
starts = 3
tune_starts = 2

[[problems]]
name = "rosenbrock"

[[problems]]
name = "himmelblau"

[[optimizers]]
name = "sgd"
lr = [1e-3, 1e-2]

[[optimizers]]
name = "adam"
"""


def _runs(rows) -> pd.DataFrame:
    cols = ["problem", "optimizer", "hp", "split", "start_id", "seed_id", "f_final", "evals",
            "solved"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def test_runs_are_matched_by_what_defines_them():
    a = _runs(
        [
            ("p", "o", "{}", "test", 0, 0, 1.0, 10, True),
            ("p", "o", "{}", "test", 1, 0, 2.0, 10, False),
            ("p", "o", "{}", "tune", 0, 0, np.nan, 10, False),
            ("q", "o", "{}", "test", 0, 0, 3.0, 10, True),
            ("q", "o", '{"lr": 1}', "test", 0, 0, 3.0, 10, True),  # only in a
        ]
    )
    b = _runs(
        [
            # Same runs in another order; p's start 1 moved a hair and met the target later.
            ("q", "o", "{}", "test", 0, 0, 3.0, 12, False),
            ("p", "o", "{}", "tune", 0, 0, np.nan, 10, False),
            ("p", "o", "{}", "test", 1, 0, np.nextafter(2.0, 3.0), 11, False),
            ("p", "o", "{}", "test", 0, 0, 1.0, 10, True),
        ]
    )
    per, unmatched = diff.run_changes(SimpleNamespace(runs=a), SimpleNamespace(runs=b))
    got = per.set_index("problem")[["runs", "bit_equal", "evals_differ", "outcome_differs"]]
    assert got.loc["p"].tolist() == [3, 2, 1, 0]  # NaN against NaN counts as equal
    assert got.loc["q"].tolist() == [1, 1, 1, 1]
    assert unmatched == 1


def _best(rows) -> SimpleNamespace:
    cols = ["problem", "category", "optimizer", "hp", "successes", "runs"]
    return SimpleNamespace(best=pd.DataFrame(rows, columns=cols))


def test_settings_and_headline_changes_with_their_intervals():
    a = _best(
        [
            ("p", "c", "o", '{"lr": 0.1, "m": 0.9}', 30, 31),
            ("q", "c", "o", '{"lr": 0.1}', 35, 62),
            ("r", "d", "o", '{"lr": 0.1}', 60, 93),
            ("s", "e", "o", '{"lr": 0.1}', 5, 31),
        ]
    )
    b = _best(
        [
            ("p", "c", "o", '{"lr": 0.01, "m": 0.9}', 30, 31),  # another lr, same count
            ("q", "c", "o", '{"lr": 0.1}', 35, 62),
            ("r", "d", "o", '{"lr": 0.1}', 61, 93),  # one run more: well inside
            ("s", "e", "o", '{"lr": 0.1}', 30, 31),  # 5/31 against 30/31: far outside
        ]
    )
    chosen = diff.setting_changes(a, b)
    assert chosen[["problem", "hp_a", "hp_b"]].values.tolist() == [["p", "lr=0.1", "lr=0.01"]]
    head = diff.headline_changes(a, b).set_index("category")
    assert sorted(head.index) == ["d", "e"]  # category c: 65 of 93 in both
    assert head.loc["d", ["a_inside_b", "b_inside_a"]].tolist() == [True, True]
    assert head.loc["e", ["a_inside_b", "b_inside_a"]].tolist() == [False, False]


def test_command_on_two_copies_and_on_two_suites(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    a, b, other = tmp_path / "a", tmp_path / "b", tmp_path / "other"
    argv = ["--config", str(cfg), "--no-report", "--workers", "1", "--quiet"]
    assert bench.main([*argv, "--out", str(a)]) == 0
    shutil.copytree(a, b)
    before = sorted(p.relative_to(b) for p in b.rglob("*"))
    assert diff.main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    n = len(pd.read_parquet(next((a / "cells").glob("*.runs.parquet"))))
    assert "outcome differs: 0" in out and "chosen settings that differ: 0 of 4" in out
    assert "headline success counts that differ (category, optimizer): 0" in out
    assert n > 0 and "(0 in one store only)" in out
    assert sorted(p.relative_to(b) for p in b.rglob("*")) == before  # it writes nothing

    cfg.write_text(TINY.replace("steps = 40", "steps = 30"))
    assert bench.main([*argv, "--out", str(other)]) == 0
    capsys.readouterr()
    assert diff.main([str(a), str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "different suites" in err[0]
    assert diff.main([str(a), str(tmp_path / "nowhere")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
