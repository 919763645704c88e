"""The command line: exit codes, one-line errors, determinism, resume after SIGKILL, custom losses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from optzoo import bench

TINY = """
[suite]
name = "tiny"
steps = 60
starts = 2

[[problems]]
name = "rosenbrock"
[[problems]]
name = "himmelblau"
[[problems]]
name = "two_neuron"

[[optimizers]]
name = "sgd"
lr = [1e-3, 1e-2]
[[optimizers]]
name = "adam"
lr = [1e-2, 1e-1]
"""

CUSTOM = """
import torch
import optzoo

def bowl(x):
    return ((x - 0.5) ** 2).sum(-1)

def wrong_shape(x):
    return x * 2.0

def not_a_tensor(x):
    return 3.0

def nan_at_x0(x):
    return torch.log(x[..., 0] - 10.0)

def factory():
    return optzoo.Problem(fn=bowl, x0=[2.0, -1.0], name="bowl", f_star=0.0)
"""


def run_cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    # The optzoo under test (this checkout), and the user's modules in cwd.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), *sys.path])}
    return subprocess.run(
        [sys.executable, "-m", "optzoo.bench", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture()
def work(tmp_path: Path) -> Path:
    (tmp_path / "tiny.toml").write_text(TINY)
    (tmp_path / "mylosses.py").write_text(CUSTOM)
    return tmp_path


def files_under(p: Path) -> list[Path]:
    """Result files (not the lock, which names the last process that held the directory)."""
    if not p.exists():
        return []
    return sorted(q for q in p.rglob("*") if q.is_file() and q.name != ".lock")


BAD_ARGS = [
    (["--optimizers", "adamm"], "unknown optimizer 'adamm'"),
    (["--problems", "rosenbrok"], "unknown problem 'rosenbrok'"),
    (["--steps", "-5"], "--steps"),
    (["--steps", "1.5"], "--steps"),
    (["--steps", "ten"], "--steps"),
    (["--starts", "-1"], "--starts"),
    (["--dtype", "float16"], "float64"),
    (["--device", "tpu"], "cpu"),
    (["--bogus-flag"], "unrecognized arguments"),
    (["--config", "{dir}/nope.toml"], "not found"),
    (["--config", "{dir}/broken.toml"], "malformed TOML"),
    (["--config", "{dir}/wrongtype.toml"], "suite.steps"),
    (["--problem", "no_such_module:f", "--x0", "1,2"], "no_such_module"),
    (["--problem", "mylosses:missing", "--x0", "1,2"], "missing"),
    (["--problem", "mylosses:wrong_shape", "--x0", "1,2"], "shape"),
    (["--problem", "mylosses:not_a_tensor", "--x0", "1,2"], "Tensor"),
    (["--problem", "mylosses:nan_at_x0", "--x0", "1,2"], "not finite"),
    (["--expr", "__import__('os').system('true')"], "expression"),
    (["--x0", "1,2"], "--problem or --expr"),
    (["--workers", "0"], "--workers"),
    (["--workers", "two"], "--workers"),
]


@pytest.mark.parametrize("args,needle", BAD_ARGS, ids=[" ".join(a) for a, _ in BAD_ARGS])
def test_user_errors_exit_2_with_one_line_and_write_nothing(
    work, monkeypatch, capsys, args, needle
):
    (work / "broken.toml").write_text("[suite\nsteps = 3")
    (work / "wrongtype.toml").write_text(TINY.replace("steps = 60", 'steps = "sixty"'))
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(work))
    out = work / "out"
    args = [a.replace("{dir}", str(work)) for a in args]
    if "--config" not in args:
        args = ["--config", str(work / "tiny.toml"), *args]
    code = bench.main([*args, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("optzoo.bench: error: ")
    assert needle in lines[0], lines[0]
    assert not out.exists()


def test_a_user_error_has_no_traceback_in_a_real_process(work):
    r = run_cli(["--config", "tiny.toml", "--optimizers", "nope", "--out", "o"], work)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (work / "o").exists()


def test_a_different_suite_in_the_same_directory_is_refused(work, monkeypatch, capsys):
    monkeypatch.chdir(work)
    out = str(work / "o")
    assert (
        bench.main(["--config", "tiny.toml", "--out", out, "--quiet", "--optimizers", "sgd"]) == 0
    )
    before = {p: p.stat().st_mtime_ns for p in files_under(work / "o")}
    assert bench.main(["--config", "tiny.toml", "--out", out, "--quiet", "--steps", "7"]) == 2
    assert "--force" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in files_under(work / "o")} == before  # nothing lost
    assert (
        bench.main(["--config", "tiny.toml", "--out", out, "--quiet", "--steps", "7", "--force"])
        == 0
    )
    runs = pd.read_parquet(next((work / "o" / "cells").glob("*.runs.parquet")))
    assert runs["steps"].max() <= 7


@pytest.mark.slow
def test_same_command_twice_gives_byte_identical_tables(work):
    a = run_cli(["--config", "tiny.toml", "--out", "a", "--quiet"], work)
    b = run_cli(["--config", "tiny.toml", "--out", "b", "--quiet"], work)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    ta, tb = work / "a" / "tables", work / "b" / "tables"
    names = sorted(p.name for p in ta.iterdir())
    assert "convergence.csv" in names and "convergence.md" in names
    for n in names:
        if n.startswith("timing"):
            continue  # wall times live only here, by design
        assert (ta / n).read_bytes() == (tb / n).read_bytes(), n


@pytest.mark.slow
def test_worker_processes_store_the_same_cells_as_one_process(work):
    # Cells run on one thread each, so where they run changes no number.
    one = run_cli(["--config", "tiny.toml", "--out", "one", "--quiet", "--workers", "1"], work)
    two = run_cli(["--config", "tiny.toml", "--out", "two", "--quiet", "--workers", "2"], work)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    parts = sorted((work / "one" / "cells").glob("*.parquet"))
    assert len(parts) >= 6
    for p in parts:
        a, b = pd.read_parquet(p), pd.read_parquet(work / "two" / "cells" / p.name)
        pd.testing.assert_frame_equal(a, b)
    for f in sorted((work / "one" / "figures").glob("*.png")):
        assert f.read_bytes() == (work / "two" / "figures" / f.name).read_bytes(), f.name


@pytest.mark.slow
def test_resume_after_sigkill_equals_an_uninterrupted_run(work):
    full = run_cli(["--config", "tiny.toml", "--out", "full", "--quiet", "--no-report"], work)
    assert full.returncode == 0, full.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(work), *sys.path])}
    cmd = [sys.executable, "-m", "optzoo.bench", "--config", "tiny.toml", "--out", "cut", "--quiet"]
    proc = subprocess.Popen([*cmd, "--no-report"], cwd=work, env=env, stderr=subprocess.DEVNULL)
    cells = work / "cut" / "cells"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cells.glob("*.done.json"))) < 2:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(cells.glob("*.done.json")))
    assert 2 <= done_before < 6, done_before
    # Leave a torn file behind, as a kill mid-write would: it must never count as a result.
    torn = cells / "rosenbrock__adam.runs.parquet"
    if not (cells / "rosenbrock__adam.done.json").exists():
        torn.write_bytes(b"PAR1 torn")
    again = run_cli(["--config", "tiny.toml", "--out", "cut", "--quiet", "--no-report"], work)
    assert again.returncode == 0, again.stderr
    for p in sorted((work / "full" / "cells").glob("*.parquet")):
        a = pd.read_parquet(p)
        b = pd.read_parquet(work / "cut" / "cells" / p.name)
        pd.testing.assert_frame_equal(a, b)
    assert not list(cells.glob("*.tmp"))


def test_custom_losses_from_the_command_line(work, monkeypatch):
    # In this process: what is tested is the flags and the loading of the user's module from the
    # working directory (a real process is tested above, and in the slow tests).
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(work))
    monkeypatch.delitem(sys.modules, "mylosses", raising=False)

    assert (
        bench.main(
            ["--config", "tiny.toml", "--problem", "mylosses:factory", "--quiet", "--no-report"]
        )
        == 0
    )
    (out,) = (work / "runs").iterdir()  # runs/<a short name and a hash of the spec>
    assert out.name.startswith("custom-mylosses_factory-")
    runs = pd.read_parquet(next((out / "cells").glob("*.runs.parquet")))
    assert set(runs["problem"]) == {"bowl"}
    code = bench.main(
        [
            "--config", "tiny.toml", "--problem", "mylosses:bowl", "--x0", "2,-1", "--f-star", "0",
            "--bounds", "-3,3", "--out", "c2", "--quiet", "--no-report",
        ]
    )  # fmt: skip
    assert code == 0
    code = bench.main(
        ["--config", "tiny.toml", "--expr", "(1-x)**2 + 100*(y-x**2)**2", "--x0", "-1.2,1",
         "--f-star", "0", "--out", "c3", "--quiet", "--no-report"]
    )  # fmt: skip
    assert code == 0
    runs = pd.concat(pd.read_parquet(p) for p in (work / "c3" / "cells").glob("*.runs.parquet"))
    start = runs[runs.start_id == 0]["x0"].iloc[0]
    assert list(start) == [-1.2, 1.0]


def test_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit) as e:
        bench.build_parser().parse_args(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in textwrap.dedent("""--config --out --optimizers --problems --problem --x0 --f-star
        --bounds --expr --steps --starts --seeds --device --dtype --force --quiet""").split():
        assert flag in text, flag
