"""optzoo.compare and optzoo.run: one call from a loss to tables and Figures, checked arguments."""

from __future__ import annotations

import pydoc

import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

import optzoo
from optzoo import bench
from optzoo.config import OptimizerSpec, Suite
from optzoo.errors import ConfigError
from optzoo.harness import run_cell

STEPS = 20


def bowl(x: torch.Tensor) -> torch.Tensor:
    return (x**2).sum(-1)


def test_compare_on_a_callable_matches_closed_form_gradient_descent():
    """SGD on |x|^2 with lr 0.1: x_t = 0.8^t x0, so f_final = 0.8^(2 steps) |x0|^2."""
    res = optzoo.compare(bowl, {"sgd": {"lr": [0.1]}}, x0=[1.0, -2.0], steps=STEPS, starts=2)
    runs = res.runs[res.runs["lr"] == 0.1]
    assert len(runs) == 3  # x0 and two random starts
    for row in runs.itertuples():
        x0 = torch.tensor(row.x0, dtype=torch.float64)
        expected = 0.8 ** (2 * STEPS) * float((x0**2).sum())
        assert row.f_final == pytest.approx(expected, rel=1e-12)
    table = res.table()
    assert isinstance(table, pd.DataFrame) and table["optimizer"].tolist() == ["sgd"]
    assert {"success_rate", "art", "evals_q50"} <= set(table.columns)
    assert isinstance(res.plot("convergence"), Figure)
    assert isinstance(res.plot("contours"), Figure)


@pytest.mark.parametrize("kind", ["problem", "name", "module"])
def test_compare_takes_a_problem_a_name_and_a_module(kind):
    if kind == "problem":
        loss, kw = optzoo.Problem(fn=bowl, x0=[0.5, 0.5], name="bowl"), {}
    elif kind == "name":
        loss, kw = "rosenbrock[dim=3]", {}
    else:
        torch.manual_seed(0)
        X = torch.randn(16, 3, dtype=torch.float64)
        loss = nn.Linear(3, 1).double()
        kw = {"data": (X, X.sum(1, keepdim=True))}
    res = optzoo.compare(
        loss, {"adam": {"lr": [1e-2]}, torch.optim.NAdam: {"lr": 1e-2}}, steps=STEPS, starts=1, **kw
    )
    assert sorted(res.table()["optimizer"]) == ["NAdam", "adam"]
    assert len(res.runs) == 2 * 2 * 2  # (lr grid + default lr) x 2 starts, per optimizer
    assert isinstance(res.plot("ecdf"), Figure)
    if kind == "name":
        assert set(res.runs["problem"]) == {"rosenbrock[dim=3]"}


def _plain(v):
    return v if isinstance(v, str | float | int) else [float(e) for e in v]


def test_compare_numbers_equal_the_command_line(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(
        '[suite]\nname = "s"\nsteps = 30\nstarts = 2\n\n[[problems]]\nname = "beale"\n\n'
        '[[optimizers]]\nname = "sgd"\n'
    )
    argv = ["--config", str(toml), "--problems", "rosenbrock", "--out", str(tmp_path / "cli")]
    argv += ["--optimizers", "adam[lr=[0.01,0.1]],torch.optim:NAdam", "--no-report", "--quiet"]
    assert bench.main([*argv, "--workers", "1"]) == 0
    cli = optzoo.Results(tmp_path / "cli")
    res = optzoo.compare(
        "rosenbrock", ["adam[lr=[0.01,0.1]]", "torch.optim:NAdam"], steps=30, starts=2
    )
    key = ["optimizer", "run"]
    a = cli.runs.sort_values(key).reset_index(drop=True)
    b = res.runs.sort_values(key).reset_index(drop=True)
    for col in ("optimizer", "lr", "x0", "x_final", "f_final", "evals", "status", "steps_to"):
        assert [_plain(v) for v in a[col]] == [_plain(v) for v in b[col]], col
    from optzoo import report

    t_cli = report.convergence_table(tmp_path / "cli")
    pd.testing.assert_frame_equal(t_cli, res.table())


def test_run_takes_a_suite_of_problem_objects(tmp_path):
    problem = optzoo.Problem(fn=bowl, x0=[1.0, 1.0], name="bowl", f_star=0.0)
    spec = OptimizerSpec("sgd", {"lr": [0.1]})
    suite = optzoo.Suite(name="mine", problems=(problem,), optimizers=(spec,), steps=10, starts=0)
    res = optzoo.run(suite, tmp_path / "out", workers=1)
    assert res.runs["problem"].tolist() == ["bowl"]
    assert res.manifest["suite"]["problems"][0]["name"] == "bowl"


def test_help_lists_the_public_names_and_submodules_load_lazily():
    text = pydoc.render_doc(optzoo)
    for name in ("compare", "run", "Problem", "Suite", "Results", "ConfigError", "optimizers"):
        assert name in text
    assert repr(optzoo.optimizers.get("adam")) == "Adam()"
    assert callable(optzoo.compare)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: optzoo.compare(3, {"sgd": {}}), "loss must be"),
        (lambda: optzoo.compare("rosenbrock", 5), "optimizers must be"),
        (lambda: optzoo.compare("rosenbrock", {"sgd": 0.1}), "must be a dict"),
        (lambda: optzoo.compare(bowl, {"sgd": {}}), "x0 is needed"),
        (lambda: optzoo.compare("rosenbrock", {"sgd": {}}, bogus=1), "unknown argument 'bogus'"),
        (lambda: optzoo.compare("nope", {"sgd": {}}), "unknown problem 'nope'"),
        (lambda: optzoo.compare("rosenbrock", {"sgd": {}}, steps=-1), "steps must be"),
        (lambda: Suite(name="x", problems=(), optimizers=(), steps=-1), "Suite steps"),
        (lambda: Suite(name="x", problems=("a",), optimizers=()), "Suite problems"),
        (lambda: Suite(name="x", problems=(), optimizers=("adam",)), "OptimizerSpec"),
        (lambda: Suite(name="x", problems=(), optimizers=(), dtype="int8"), "Suite dtype"),
        (lambda: optzoo.run(5), "run: suite must be"),
        (lambda: optzoo.run("no/such.toml"), "config file not found"),
        (
            lambda: run_cell(
                Suite(name="x", problems=(), optimizers=()), 5, OptimizerSpec("sgd", {})
            ),
            "run_cell: problem must be",
        ),
    ],
)
def test_wrong_arguments_are_one_config_error_naming_them(call, match):
    with pytest.raises(ConfigError, match=match):
        call()
