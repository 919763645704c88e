"""Reliability of the commands: malformed input, safe names, a damaged store, OSError, the lock.

Each case runs the command's main() in this process where it can (exit code and stderr are what
a user sees); a few run as real processes to show that no traceback reaches the terminal. The
kill and concurrency tests are in tests/test_reliability_signals.py.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from optzoo import bench, report, store
from optzoo.store import safe_name, short_name

TINY = """
[suite]
name = "tiny"
steps = 20
starts = 1

[[problems]]
name = "rosenbrock"
[[problems]]
name = "himmelblau"

[[optimizers]]
name = "adam"
lr = [1e-2]
"""

MODULE = """
import sys
import torch
import optzoo

def bowl(x):
    return ((x - 0.5) ** 2).sum(-1)

def factory():
    return optzoo.Problem(fn=bowl, x0=[2.0, -1.0], name="bowl", f_star=0.0)

def escaping():
    return optzoo.Problem(fn=bowl, x0=[2.0, -1.0], name="../../escaped")

def mlp():
    # A 5-16-1 network: 113 parameters, more than the 64 whose spectra are stored.
    from optzoo.problems import from_module
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(40, 5, generator=gen, dtype=torch.float64)
    Y = torch.randn(40, 1, generator=gen, dtype=torch.float64)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    return from_module(model.double(), torch.nn.functional.mse_loss, (X, Y), name="mlp113")
"""


def write_toml(work: Path, name: str, text: str) -> str:
    (work / name).write_text(text)
    return name


def toml_with(suite: str = "", opt: str = "", extra: str = "", full: str = "") -> str:
    """A one-cell suite with a line set in [suite] or its optimizer, lines after [suite], or
    ``full``, the problems and optimizers in full."""
    head = {"name": '"tiny"', "steps": "20", "starts": "1"}
    if suite:
        key, value = (a.strip() for a in suite.split("=", 1))
        head[key] = value
    lines = "\n".join(f"{k} = {v}" for k, v in head.items())
    body = full or '[[problems]]\nname = "rosenbrock"\n[[optimizers]]\nname = "adam"\n' + opt
    return f"[suite]\n{lines}\n{extra}\n{body}\n"


@pytest.fixture()
def work(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "tiny.toml").write_text(TINY)
    (tmp_path / "userlosses.py").write_text(MODULE)
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(0)\n")
    (tmp_path / "broken.toml").write_text("[suite\nsteps = 3")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def snapshot(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def cli(main, args: list[str], capsys) -> tuple[int, list[str]]:
    code = main(args)
    cap = capsys.readouterr()
    return code, cap.err.strip().splitlines()


NEWTON_1E5 = """
[[problems]]
name = "rosenbrock"
params = { dim = 100000 }
[[optimizers]]
name = "newton"
"""
BIG_LOG = "lr = { log = [1e-6, 1.0, 100] }\neps = { log = [1e-9, 1e-3, 10000] }"
# (arguments, a piece of the one line). "{cfg:...}" writes a suite file with the lines given.
MALFORMED = [
    (["--optimizers", ","], "--optimizers"),
    (["--optimizers", " , ,"], "--optimizers"),
    (["--problems", ","], "--problems"),
    (["--optimizers", "adamm"], "adamm"),
    (["--problems", "rosenbrok"], "rosenbrok"),
    (["--expr", ""], "non-empty"),
    (["--expr", "   "], "non-empty"),
    (["--bounds=-inf,inf", "--expr", "x**2"], "finite"),
    (["--bounds", "nan,1", "--expr", "x**2"], "finite"),
    (["--bounds", "1,1", "--expr", "x**2"], "lo < hi"),
    (["--bounds", "1,2,3", "--expr", "x**2"], "2 numbers"),
    (["--bounds", "a,b", "--expr", "x**2"], "--bounds"),
    (["--f-star", "1,2", "--expr", "x**2"], "one number"),
    (["--f-star", "inf", "--expr", "x**2"], "finite"),
    (["--f-star", "zero", "--expr", "x**2"], "--f-star"),
    (["--x0", "nan,1", "--expr", "x+y"], "finite"),
    (["--x0", "1", "--expr", "x+y"], "x0 has 1 values"),
    (["--x0", "1,2,3", "--problem", "userlosses:factory"], "2-D problem"),
    (["--x0", "1,2"], "--problem or --expr"),
    (["--name", "n"], "--problem or --expr"),
    (["--name", "", "--expr", "x**2"], "--name"),
    (["--name", "a\0b", "--expr", "x**2"], "--name"),
    (["--name", "a\nb", "--expr", "x**2"], "--name"),
    (["--expr", "1" * 401 + " * x"], "too large"),
    (["--expr", "x ** " + "9" * 401], "too large"),
    (["--expr", "__import__('os').system('true')"], "expression"),
    (["--expr", "x.real"], "attribute"),
    (["--expr", "x +"], "not valid"),
    (["--expr", "1 + 2"], "no variables"),
    (["--expr", "foo(x)"], "unknown function"),
    (["--expr", "x**2", "--problem", "userlosses:factory"], "not both"),
    (["--problem", "sys:exit"], "sys:exit"),
    (["--problem", "exits_on_import:f"], "exits_on_import"),
    (["--problem", "nocolon"], "module:attr"),
    (["--problem", ":f"], "module:attr"),
    (["--problem", "no_such_module:f", "--x0", "1,2"], "no_such_module"),
    (["--problem", "userlosses:missing", "--x0", "1,2"], "missing"),
    (["--steps", "0"], "--steps"),
    (["--steps", str(2**63 - 1)], "--steps"),
    (["--steps", "1e3"], "--steps"),
    (["--starts", "-1"], "--starts"),
    (["--starts", "100000000"], "--starts"),
    (["--seeds", "0"], "--seeds"),
    (["--seeds", str(2**63 - 1)], "--seeds"),
    (["--starts", "10000000"], "at most 10,000,000"),
    (["--workers", "0"], "--workers"),
    (["--chunk-runs", "5"], "--executor ray"),
    (["--executor", "slurm"], "local"),
    (["--device", "tpu"], "cpu"),
    (["--dtype", "float16"], "float64"),
    (["--max-memory", "0"], "--max-memory"),
    (["--max-memory", "lots"], "--max-memory"),
    (["--max-memory", "1K"], "would need about"),
    (["--out", ""], "--out"),
    (["--bogus-flag"], "unrecognized"),
    (["--config", "nope.toml"], "not found"),
    (["--config", "broken.toml"], "malformed TOML"),
    (["{cfg:name = '..'}"], "suite.name"),
    (["{cfg:name = '.'}"], "suite.name"),
    (["{cfg:name = 'a/b'}"], "suite.name"),
    (["{cfg:name = 'a\\u0000b'}"], "suite.name"),
    (["{cfg:name = '" + "x" * 300 + "'}"], "suite.name"),
    (["{cfg:steps = 9223372036854775807}"], "suite.steps"),
    (["{cfg:seed = 9223372036854775807}"], "suite.seed"),
    (["{cfg:seeds = 100000000}"], "suite.seeds"),
    (["{cfg:evals = -1}"], "suite.evals"),
    (["{cfg:starts = 'four'}"], "suite.starts"),
    (["{cfg:dtype = 'half'}"], "suite.dtype"),
    (["{cfg:colour = 'red'}"], "unknown key"),
    (["{opt:lr = inf}"], "finite"),
    (["{opt:lr = -inf}"], "finite"),
    (["{opt:lr = nan}"], "lr"),
    (["{opt:lr = [1e-3, inf]}"], "finite"),
    (["{opt:lr = { log = [1e-6, 1.0, 1000000] }}"], "log"),
    (["{opt:lr = { log = [0.0, 1.0, 3] }}"], "log"),
    (["{opt:" + BIG_LOG + "}"], "combinations"),
    (["{opt:label = 'a\\u0000b'}"], "label"),
    (["{opt:label = '..'}"], "label"),
    (["{opt:label = '" + "y" * 300 + "'}"], "label"),
    (["{opt:betas = [0.9]}"], "betas"),
    (["{opt:amsgrad = 'yes'}"], "adam"),
    (["{extra:[options]\nbatch_size = 0}"], "batch_size"),
    (["{extra:[options]\nschedule = 'sometimes'}"], "schedule"),
    (["{full:" + NEWTON_1E5 + "}"], "memory"),
    # A suite bounds steps at 10^7 (10^9 steps of a 2-D path once tried to allocate 24 GB) ...
    (["--steps", "1000000000"], "steps"),
    (["{cfg:steps = 1000000000}"], "steps"),
    # ... and 9 kept 2-D paths of 10^7 + 1 steps, 1.4 GB of path buffer, exceed a 1 GB limit.
    (
        [
            "{opt:lr = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2]}",
            "--steps",
            "10000000",
            "--max-memory",
            "1G",
        ],
        "memory",
    ),
    (["{cfg:steps = 10000000}", "--max-memory", "100M"], "memory"),
]
if not __import__("torch").cuda.is_available():
    MALFORMED += [(["--device", "cuda"], "CUDA"), (["{cfg:device = 'cuda'}"], "CUDA")]


def expand(args: list[str], work: Path) -> list[str]:
    """Turn a "{cfg:...}", "{opt:...}", "{extra:...}" or "{full:...}" case into --config."""
    if not args or not args[0].startswith("{"):
        return ["--config", "tiny.toml", *args]
    kind, body = args[0][1:-1].split(":", 1)
    text = toml_with(**{{"cfg": "suite"}.get(kind, kind): body})
    return ["--config", write_toml(work, "case.toml", text), *args[1:]]


def test_the_table_has_every_case_of_the_issue():
    assert len(MALFORMED) >= 60


@pytest.mark.parametrize("args,needle", MALFORMED, ids=[" ".join(a)[:50] for a, _ in MALFORMED])
def test_malformed_input_is_one_line_exit_2_and_nothing_written(work, capsys, args, needle):
    argv = expand(args, work)
    before = snapshot(work)
    code, err = cli(bench.main, [*argv, "--quiet"], capsys)
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("optzoo.bench: error: "), err
    assert needle in err[0], err[0]
    after = snapshot(work)
    after.pop("case.toml", None)
    before.pop("case.toml", None)
    assert after == before  # nothing written: no runs/, no results/, no lock


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["--config", "tiny.toml", "--optimizers", ","],
        ["--config", "tiny.toml", "--problem", "sys:exit"],
        ["--config", "tiny.toml", "--expr", "1" * 401 + "*x"],
    ],
)
def test_no_traceback_reaches_a_real_terminal(work, args):
    r = subprocess.run(
        [sys.executable, "-m", "optzoo.bench", *args],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(work), *sys.path])},
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (work / "runs").exists()


def test_debug_shows_the_traceback(work, capsys):
    code = bench.main(["--config", "tiny.toml", "--optimizers", ",", "--debug"])
    err = capsys.readouterr().err
    assert (
        code == 2
        and "Traceback" in err
        and err.strip().splitlines()[-1].startswith("optzoo.bench: error: --optimizers")
    )


# -- names ------------------------------------------------------------------------------------


def test_safe_name_is_one_bounded_component_for_any_text():
    texts = ["..", ".", "", "a/b", "../../x", "x**2 #/../..", "x/y", "a\0b", "\x1b[31m", "é" * 9]
    texts += ["x" * 500, "x" * 500 + "y", "/" * 300, "C:\\win", "-rf", " spaces "]
    names = [safe_name(t) for t in texts]
    for t, n in zip(texts, names, strict=True):
        assert n not in ("", ".", "..") and not n.startswith("."), (t, n)
        assert "/" not in n and "\\" not in n and n.isprintable() and n.isascii(), (t, n)
        assert len(n) <= store.NAME_LIMIT and Path(n).name == n, (t, n)
    assert names[texts.index("x" * 500)] != names[texts.index("x" * 500 + "y")]
    assert safe_name("rosenbrock[dim=2]") == "rosenbrock[dim=2]"  # published names unchanged
    assert short_name("x**2 + y**2").startswith("x_2_+_y_2-")
    assert short_name("x/y") != short_name("x*y")


@pytest.mark.parametrize(
    "args",
    [
        ["--expr", "x**2 #/../.."],
        ["--expr", "x/y"],
        ["--expr", " + ".join(f"x{i}**2" for i in range(60))],  # 400+ characters
        ["--problem", "userlosses:escaping"],
        ["--problem", "userlosses:factory", "--name", "../../evil"],
        ["--expr", "x**2", "--name", "/etc/passwd"],
        ["{opt:label = '" + "l" * 200 + "'}"],
    ],
)
def test_no_name_puts_a_file_outside_the_results_directory(work, capsys, args):
    # The project root here is the working directory; its README must survive.
    (work / "README.md").write_text("mine")
    before = set(snapshot(work))
    argv = expand(args, work)
    code, err = cli(bench.main, [*argv, "--quiet", "--no-report", "--steps", "3"], capsys)
    assert code == 0, err
    new = sorted(set(snapshot(work)) - before - {"case.toml"})
    assert new, "nothing was written"
    roots = {Path(p).parts[:2] for p in new}
    assert len(roots) == 1 and next(iter(roots))[0] == "runs", new
    assert all(len(part.encode()) <= 255 for p in new for part in Path(p).parts)
    assert (work / "README.md").read_text() == "mine"


def test_files_get_the_umask_mode(work, capsys):
    old = os.umask(0o027)
    try:
        assert cli(bench.main, ["--config", "tiny.toml", "--quiet", "--no-report"], capsys)[0] == 0
    finally:
        os.umask(old)
    files = [p for p in (work / "runs" / "tiny").rglob("*") if p.is_file() and p.name != ".lock"]
    assert files and {oct(p.stat().st_mode & 0o777) for p in files} == {oct(0o640)}


# -- a damaged store --------------------------------------------------------------------------


@pytest.fixture()
def finished(work, capsys) -> Path:
    assert cli(bench.main, ["--config", "tiny.toml", "--quiet", "--no-report"], capsys)[0] == 0
    return work / "runs" / "tiny"


def cell_frames(root: Path) -> dict[str, pd.DataFrame]:
    return {p.name: pd.read_parquet(p) for p in sorted((root / "cells").glob("*.parquet"))}


DAMAGE = {
    "truncated parquet": lambda c: c.write_bytes(c.read_bytes()[: len(c.read_bytes()) // 2]),
    "deleted parquet": lambda c: c.unlink(),
    "garbage done marker": lambda c: c.with_name(
        c.name.replace("runs.parquet", "done.json")
    ).write_text("{not json"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_cell_is_one_line_in_the_report_and_redone_on_resume(finished, capsys, damage):
    good = cell_frames(finished)
    victim = finished / "cells" / "rosenbrock__adam.runs.parquet"
    DAMAGE[damage](victim)
    code, err = cli(report.main, [str(finished), "--no-figures"], capsys)
    assert code == 2 and len(err) == 1 and "rosenbrock__adam" in err[0], err
    code, err = cli(bench.main, ["--config", "tiny.toml", "--quiet", "--no-report"], capsys)
    assert code == 0 and len(err) == 1 and "damaged" in err[0] and "rosenbrock__adam" in err[0]
    again = cell_frames(finished)
    assert sorted(again) == sorted(good)
    for name, df in good.items():
        pd.testing.assert_frame_equal(again[name], df)
    assert cli(report.main, [str(finished), "--no-figures"], capsys)[0] == 0


def test_a_garbage_manifest_is_one_line_naming_it(finished, capsys):
    (finished / "manifest.json").write_text("\x00garbage")
    for main, args in (
        (report.main, [str(finished)]),
        (bench.main, ["--config", "tiny.toml", "--quiet"]),
    ):
        code, err = cli(main, args, capsys)
        assert code == 2 and len(err) == 1 and "manifest.json" in err[0], err


def test_a_cell_missing_from_the_manifests_list_is_one_line(finished, capsys):
    (finished / "cells" / "himmelblau__adam.done.json").unlink()
    code, err = cli(report.main, [str(finished), "--no-figures"], capsys)
    assert code == 2 and len(err) == 1 and "not run" in err[0] and "manifest.json" in err[0]


def fail_with(monkeypatch, err: int, after: int = 0) -> None:
    """Make every Parquet write after the first ``after`` fail with OSError ``err``."""
    real, calls = pd.DataFrame.to_parquet, []

    def to_parquet(self, *a, **k):
        calls.append(1)
        if len(calls) > after:
            raise OSError(err, os.strerror(err))
        return real(self, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_a_failing_write_is_one_line_and_loses_nothing(work, capsys, monkeypatch, err):
    fail_with(monkeypatch, err, after=4)  # runs, traces, paths, landscape of the first cell
    code, lines = cli(bench.main, ["--config", "tiny.toml", "--quiet", "--workers", "1"], capsys)
    assert code == 2 and len(lines) == 1 and os.strerror(err) in lines[0], lines
    cells = work / "runs" / "tiny" / "cells"
    assert len(list(cells.glob("*.done.json"))) == 1
    assert not list(cells.glob(".*.tmp"))
    monkeypatch.undo()
    monkeypatch.chdir(work)
    assert cli(bench.main, ["--config", "tiny.toml", "--quiet", "--no-report"], capsys)[0] == 0
    assert len(list(cells.glob("*.done.json"))) == 2


def test_ctrl_c_in_the_report_is_one_line_and_stale_temporaries_go(finished, capsys, monkeypatch):
    stale = finished / "figures" / ".contour.png.abc.tmp"
    stale.parent.mkdir()
    stale.write_bytes(b"half a figure")

    def interrupted(an):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "_write_tables", interrupted)
    code, err = cli(report.main, [str(finished)], capsys)
    assert code == 130 and len(err) == 1 and "interrupted" in err[0], err
    assert not stale.exists()  # cleaned under the lock before anything was drawn


def test_a_network_with_more_than_64_parameters_is_reported(work, capsys):
    args = ["--config", "tiny.toml", "--problem", "userlosses:mlp", "--optimizers", "sgd"]
    code, err = cli(bench.main, [*args, "--quiet", "--workers", "1", "--steps", "5"], capsys)
    assert code == 0, err
    out = work / "runs" / next(p.name for p in (work / "runs").iterdir())
    runs = pd.concat(pd.read_parquet(p) for p in (out / "cells").glob("*.runs.parquet"))
    assert len(runs["x0"].iloc[0]) == 5 * 16 + 16 + 16 + 1
    assert (out / "README.md").is_file() and (out / "figures" / "critical_points.png").is_file()


def test_help_says_that_problem_runs_user_code():
    text = " ".join(bench.build_parser().format_help().split())
    assert "runs its code" in text and "trust" in text
