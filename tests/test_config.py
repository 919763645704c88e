"""Suites: parsing, grids, and one clear error for each kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib

from optzoo import config
from optzoo.errors import ConfigError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

GOOD = """
[suite]
name = "mini"
steps = 50
starts = 2

[options]
clip_norm = 5.0
schedule = { kind = "exponential", gamma = 0.99 }

[[problems]]
name = "rosenbrock"

[[problems]]
name = "rosenbrock"
params = { dim = 4 }

[[optimizers]]
name = "adam"
lr = { log = [1e-3, 1e-1, 3] }
betas = [0.9, 0.999]

[[optimizers]]
name = "sgd"
lr = [0.01, 0.001]
momentum = [0.0, 0.9]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


def test_a_good_suite(tmp_path):
    s = config.load(write(tmp_path, GOOD))
    assert s.name == "mini" and s.steps == 50 and s.starts == 2 and s.clip_norm == 5.0
    assert [p.key for p in s.problems] == ["rosenbrock", "rosenbrock[dim=4]"]
    adam, sgd = s.optimizers
    # The log grid, plus Adam's default lr 1e-3 (already in it).
    assert adam.hp["lr"] == pytest.approx([1e-3, 1e-2, 1e-1])
    assert adam.hp["betas"] == [(0.9, 0.999)]
    # SGD: its default lr joins the grid; two axes make a product.
    assert sgd.hp["lr"] == pytest.approx([1e-3, 1e-2])
    assert len(sgd.grid()) == 4
    assert s.lr_factor(2) == pytest.approx(0.99**2)


@pytest.mark.parametrize("name", ["quick", "default", "full"])
def test_shipped_suites_load(name):
    path = CONFIGS / f"{name}.toml"
    s = config.load(path)
    assert s.problems and s.optimizers


def test_digest_ignores_the_name_but_not_the_budget(tmp_path):
    s = config.load(write(tmp_path, GOOD))
    assert s.replace(name="other").digest() == s.digest()
    assert s.replace(steps=51).digest() != s.digest()


BAD = [
    ("[suite\nname=1", "malformed TOML"),
    ('[suite]\nsteps = "ten"\n[options]' + GOOD.split("[options]")[1], "suite.steps"),
    (
        "[suite]\nsteps = -5\n[[problems]]\nname='rosenbrock'\n[[optimizers]]\nname='sgd'",
        "suite.steps",
    ),
    (
        "[suite]\nsteps = 1.5\n[[problems]]\nname='rosenbrock'\n[[optimizers]]\nname='sgd'",
        "suite.steps",
    ),
    (
        "[suite]\nbudget = 3\n[[problems]]\nname='rosenbrock'\n[[optimizers]]\nname='sgd'",
        "unknown key 'budget'",
    ),
    ("[[problems]]\nname='nope'\n[[optimizers]]\nname='sgd'", "unknown problem 'nope'"),
    ("[[problems]]\nname='rosenbrock'\n[[optimizers]]\nname='sgdd'", "unknown optimizer 'sgdd'"),
    ("[[problems]]\nname='rosenbrock'\n[[optimizers]]\nname='adam'\nlr=-1.0", "lr"),
    ("[[problems]]\nname='rosenbrock'\n[[optimizers]]\nname='adam'\nlr='fast'", "lr"),
    (
        "[[problems]]\nname='rosenbrock'\n[[optimizers]]\nname='adam'\nbogus=1",
        "unknown hyperparameter",
    ),
    ("[[problems]]\nname='rosenbrock'\n[[optimizers]]\nname='adam'\nlr={log=[1,0.1,3]}", "log"),
    (
        "[options]\nschedule='linear'\n[[problems]]\nname='rosenbrock'\n[[optimizers]]\nname='sgd'",
        "schedule",
    ),
    (
        "[suite]\ndtype='float16'\n[[problems]]\nname='rosenbrock'\n[[optimizers]]\nname='sgd'",
        "float64",
    ),
    ("[[optimizers]]\nname='sgd'", "problems"),
    ("[[problems]]\nname='rosenbrock'\nparams={dim=0}\n[[optimizers]]\nname='sgd'", "dim"),
]


@pytest.mark.parametrize("text,needle", BAD)
def test_bad_suites_give_one_clear_line(tmp_path, text, needle):
    with pytest.raises(ConfigError) as e:
        config.load(write(tmp_path, text))
    msg = str(e.value)
    assert "\n" not in msg
    assert needle in msg, msg


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        config.load("/nonexistent/suite.toml")


def test_toml_is_what_we_think(tmp_path):
    # Guard the grid rule: a two-element betas list is one value, a list of lists a grid axis.
    data = tomllib.loads("[[optimizers]]\nname='adam'\nbetas=[[0.9,0.999],[0.5,0.9]]")
    spec = config.optimizer_spec("adam", {"betas": data["optimizers"][0]["betas"]})
    assert spec.hp["betas"] == [(0.9, 0.999), (0.5, 0.9)]
