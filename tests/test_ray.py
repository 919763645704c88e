"""The Ray executor, on a real local Ray instance: same tables as local, chunks, retries, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from optzoo import bench, config
from optzoo.executors import Task, run_ray
from optzoo.harness import run_cell

ROOT = Path(__file__).resolve().parent.parent
QUICK = ROOT / "configs" / "quick.toml"


# The command line with the first Ray task to start killing its own worker (argv[1] names a
# marker file it creates first): a worker dying mid-task, for the retry test. The wrapper is
# defined in __main__, so Ray ships it to the workers by value.
KILL_ONCE = """
import os, sys
from optzoo import bench, executors

marker = sys.argv.pop(1)
body = executors._remote_cell

def dying_once(*args):
    if not os.path.exists(marker):
        with open(marker, "w") as fh:
            fh.write(args[1].cell)
        os._exit(1)
    return body(*args)

executors._remote_cell = dying_once
sys.exit(bench.main())
"""


def cli(args: list[str], cwd: Path, kill_once: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    start = ["-m", "optzoo.bench"] if kill_once is None else ["-c", KILL_ONCE, str(kill_once)]
    return subprocess.run(
        [
            sys.executable,
            *start,
            "--config",
            str(QUICK),
            "--quiet",
            "--no-report",
            *args,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def tables(d: Path) -> dict[str, bytes]:
    # Tables only: figures are the report's business and slow to draw.
    r = subprocess.run(
        [sys.executable, "-m", "optzoo.report", str(d), "--no-figures"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    t = d / "tables"
    return {p.name: p.read_bytes() for p in sorted(t.iterdir()) if not p.name.startswith("timing")}


@pytest.fixture(scope="module")
def local_quick(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("local")
    r = cli(["--out", "local"], work)
    assert r.returncode == 0, r.stderr
    return work / "local"


@pytest.mark.slow
def test_quick_suite_through_ray_gives_identical_tables(local_quick, tmp_path):
    # Whole cells, as the local executor runs them. (Chunking is tested on its own below: MKL's
    # batched eigh, in the end-point analysis and Newton, rounds by each matrix's alignment in
    # the batch, so a split cell can differ in the last bit; see the README, "How it works".)
    r = cli(["--out", "ray", "--executor", "ray"], tmp_path)
    assert r.returncode == 0, r.stderr
    a, b = tables(local_quick), tables(tmp_path / "ray")
    assert "convergence.csv" in a
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_tables_are_unchanged(local_quick, tmp_path):
    marker = tmp_path / "killed-once"
    r = cli(["--out", "ray", "--executor", "ray"], tmp_path, kill_once=marker)
    assert r.returncode == 0, r.stderr
    assert marker.exists()  # a worker really died
    a, b = tables(local_quick), tables(tmp_path / "ray")
    for name in a:
        assert a[name] == b[name], name


@pytest.mark.slow
def test_a_chunked_cell_equals_the_unsplit_cell():
    import ray

    suite = config.load(QUICK).replace(steps=80, starts=6)
    spec = config.optimizer_spec("adam", {"lr": [1e-2, 1e-1]})
    task = Task("rosenbrock__adam", config.ProblemSpec("rosenbrock"), spec, True)
    try:
        [(t, merged)] = list(run_ray(suite, [task], chunk_runs=4))
    finally:
        ray.shutdown()
    whole = run_cell(suite, task.problem, spec, landscape=True)
    assert merged.meta["chunks"] > 1
    pd.testing.assert_frame_equal(merged.runs, whole.runs)
    pd.testing.assert_frame_equal(merged.traces, whole.traces)
    pd.testing.assert_frame_equal(merged.landscape, whole.landscape)


def test_missing_ray_is_a_clear_user_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    out = tmp_path / "o"
    code = bench.main(["--config", str(QUICK), "--executor", "ray", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert 'pip install -e ".[ray]"' in err[0]
    assert not out.exists()
