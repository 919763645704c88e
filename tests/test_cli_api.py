"""The command line's routes to optzoo's API: module:Class optimizers (flag and TOML), file.py:attr
losses beside a folder named optzoo/, --list, name[key=value], --steps against the evaluation
budget, the results README, the default output directory, and the package's shipped configs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import torch

import optzoo
from optzoo import bench
from optzoo.errors import ConfigError

ROOT = Path(optzoo.__file__).resolve().parent.parent  # the optzoo under test, for subprocesses
TINY = (
    '[suite]\nname = "tiny"\nsteps = 15\nstarts = 1\n{extra}\n[[problems]]\nname = "rosenbrock"\n'
)


def tiny(tmp_path: Path, optimizers: str, extra: str = "") -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY.format(extra=extra) + optimizers)
    return p


def run(argv: list[str], out: Path) -> optzoo.Results:
    assert bench.main([*argv, "--out", str(out), "--workers", "1", "--quiet"]) == 0
    return optzoo.Results(out)


def test_module_class_optimizer_from_flag_and_from_toml_agree_with_a_plain_loop(tmp_path):
    flag = run(
        ["--config", str(tiny(tmp_path, '[[optimizers]]\nname = "sgd"\n')), "--no-report",
         "--optimizers", "torch.optim:NAdam"],
        tmp_path / "flag",
    )  # fmt: skip
    toml = tiny(tmp_path, '[[optimizers]]\nname = "torch.optim:NAdam"\nlr = 0.002\n')
    from_toml = run(["--config", str(toml), "--no-report"], tmp_path / "toml")
    assert set(flag.runs["optimizer"]) == set(from_toml.runs["optimizer"]) == {"NAdam"}
    assert flag.runs["x_final"].map(list).tolist() == from_toml.runs["x_final"].map(list).tolist()
    # The oracle: torch.optim.NAdam alone from the first start.
    row = flag.runs.iloc[0]
    p = torch.tensor(list(row["x0"]), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.NAdam([p], lr=row["lr"])
    for _ in range(row["steps"]):
        opt.zero_grad()
        ((1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2).backward()
        opt.step()
    assert torch.allclose(torch.tensor(list(row["x_final"]), dtype=torch.float64), p, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.skipif(sys.version_info < (3, 11), reason="python -P is Python 3.11+")
def test_problem_from_a_file_beside_a_folder_named_optzoo(tmp_path):
    """A clone's optzoo/ folder (here a decoy that fails on import) must not be imported."""
    decoy = tmp_path / "optzoo"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise ImportError('the decoy optzoo/ was imported')\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "losses.py").write_text("def bowl(x):\n    return (x ** 2).sum(-1)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-P", "-m", "optzoo.bench", "--problem", "sub/losses.py:bowl"]
    cmd += ["--x0", "1,-1", "--optimizers", "sgd[lr=0.1]", "--steps", "5", "--starts", "0"]
    cmd += ["--no-report", "--quiet", "--out", "out", "--workers", "1"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = optzoo.Results(tmp_path / "out")
    assert set(res.runs["problem"]) == {"bowl"}
    x0 = res.runs[res.runs["start_id"] == 0]["x0"].map(list).tolist()
    assert x0 == [[1.0, -1.0]] * 2  # lr 0.1 and the default


def test_problem_module_from_the_current_directory(tmp_path, monkeypatch):
    """``module:attr`` is found in the current directory, appended to sys.path, not put first."""
    (tmp_path / "cli_api_losses.py").write_text("def bowl(x):\n    return (x ** 2).sum(-1)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    res = run(
        ["--problem", "cli_api_losses:bowl", "--x0", "1,-1", "--optimizers", "sgd",
         "--steps", "5", "--starts", "0", "--no-report"],
        tmp_path / "out",
    )  # fmt: skip
    assert set(res.runs["problem"]) == {"bowl"} and sys.path[-1] == str(tmp_path)


def test_list_names_optimizers_problems_and_suites(capsys):
    assert bench.main(["--list"]) == 0
    out = capsys.readouterr().out
    for word in ("adam", "lbfgs", "torch.optim.Optimizer", "ravine:", "rosenbrock", "dim=2"):
        assert word in out
    shipped = sorted(p.stem for p in (ROOT / "configs").glob("*.toml"))
    assert all(f"  {name}\n" in out + "\n" for name in shipped)


def test_bracket_syntax_for_problems_and_optimizers(tmp_path):
    res = run(
        ["--config", str(tiny(tmp_path, '[[optimizers]]\nname = "sgd"\n')), "--no-report",
         "--problems", "rosenbrock[dim=3],beale", "--optimizers", "adam[lr=[0.01,0.1]]"],
        tmp_path / "out",
    )  # fmt: skip
    assert set(res.runs["problem"]) == {"rosenbrock[dim=3]", "beale"}
    r3 = res.runs[res.runs["problem"] == "rosenbrock[dim=3]"]
    assert r3["x0"].map(len).eq(3).all()
    assert sorted(set(res.runs["lr"])) == [0.001, 0.01, 0.1]  # the default lr joins the grid
    assert set(res.runs["optimizer"]) == {"adam[lr=[0.01,0.1]]"}


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--problems", "rosenbrock[dim=0.5]"], "dim must be an integer"),
        (["--problems", "rosenbrock[dim=3"], "unbalanced"),
        (["--optimizers", "adam[lr=-1]"], "invalid lr"),
        (["--optimizers", "torch.optim:Nope"], "has no 'Nope'"),
        (["--evals", "-1"], "--evals must be a whole number"),
    ],
)
def test_bad_items_are_one_line_and_exit_2(tmp_path, capsys, argv, match):
    out = tmp_path / "out"
    assert bench.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_steps_replaces_the_evaluation_budget_unless_evals_is_given(tmp_path, capsys):
    cfg = tiny(tmp_path, '[[optimizers]]\nname = "sgd"\nlr = 1e-4\n').read_text()
    cfg = cfg.replace("steps = 15", "steps = 15\nevals = 10")
    path = tmp_path / "budget.toml"
    path.write_text(cfg)
    alone = bench.main(["--config", str(path), "--steps", "30", "--no-report", "--workers", "1",
                        "--out", str(tmp_path / "a")])  # fmt: skip
    assert alone == 0 and "replaces the suite's budget" in capsys.readouterr().err
    assert optzoo.Results(tmp_path / "a").runs["steps"].max() == 30
    kept = run(["--config", str(path), "--steps", "30", "--evals", "10", "--no-report"],
               tmp_path / "b")  # fmt: skip
    assert kept.runs["evals"].max() == 10


def test_results_readme_describes_what_ran(tmp_path):
    out = tmp_path / "expr"
    argv = ["--expr", "(x-1)**2 + 3*y**2", "--x0", "0.5,0.5", "--optimizers", "sgd,adam"]
    argv += ["--steps", "20", "--starts", "1", "--no-report"]
    assert bench.main([*argv, "--out", str(out), "--workers", "1", "--quiet"]) == 0
    from optzoo import report

    report.write(out, figures=False)
    text = (out / "README.md").read_text()
    assert "17 problems" not in text and "x sgd, adam" in text
    assert "python -m optzoo.bench --expr" in text and f"--out {out.as_posix()}" in text
    assert f"python -m optzoo.report {out.as_posix()}" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert [p["name"] for p in manifest["suite"]["problems"]] == ["(x-1)**2 + 3*y**2"]


@pytest.mark.slow
def test_default_output_is_git_ignored_in_a_fresh_clone(tmp_path):
    """README command 1 writes under runs/, which git ignores: the work tree stays clean."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the optzoo git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    cfg = tiny(tmp_path, '[[optimizers]]\nname = "sgd"\n')
    env = {**os.environ, "PYTHONPATH": str(clone)}
    cmd = [sys.executable, "-m", "optzoo.bench", "--config", str(cfg), "--no-report", "--quiet"]
    proc = subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (clone / "runs").is_dir() and not (clone / "results" / "tiny").exists()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True,
                            text=True, check=True).stdout  # fmt: skip
    assert status == ""


def test_every_package_is_listed_and_configs_ship_inside_it():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "optzoo").rglob("__init__.py")
    }
    assert on_disk <= set(meta["packages"])
    assert meta["package-dir"]["optzoo.configs"] == "configs"
    from optzoo import config

    assert (config.configs_dir() / "quick.toml").is_file()


def test_config_by_shipped_name(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        optzoo.run("no_such_suite", tmp_path)
