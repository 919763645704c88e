"""Crashes and contention: kill -9 and SIGTERM of the driver, two runs on one directory.

Every process of a run carries a tag in its environment, so the test can list them (the driver
and its forked workers) and check that none outlives the driver by more than 5 s. The rerun's
tables must equal an uninterrupted run's byte for byte.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from optzoo import bench, report

SUITE = """
[suite]
name = "sig"
steps = 120
starts = 24

[[problems]]
name = "rosenbrock"
[[problems]]
name = "himmelblau"
[[problems]]
name = "beale"

[[optimizers]]
name = "adam"
lr = [1e-2, 1e-1]
[[optimizers]]
name = "momentum"
lr = [1e-3, 1e-2]
"""
N_CELLS = 6
pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="lists processes from /proc"),
    pytest.mark.slow,
]


def tagged(tag: str) -> list[int]:
    """Live processes whose environment carries the tag (zombies have none)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if f"OPTZOO_TEST_TAG={tag}".encode() in (d / "environ").read_bytes():
                    out.append(int(d.name))
            except OSError:
                pass
    return out


def start(work: Path, out: str, *extra: str) -> tuple[subprocess.Popen, str]:
    tag = uuid.uuid4().hex
    env = {**os.environ, "OPTZOO_TEST_TAG": tag, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "optzoo.bench", "--config", "sig.toml", "--out", out, "--quiet"]
    proc = subprocess.Popen(
        [*cmd, "--workers", "2", *extra], cwd=work, env=env, stderr=subprocess.PIPE, text=True
    )
    return proc, tag


def wait_for(cond, what: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def assert_all_gone(tag: str) -> None:
    deadline = time.time() + 5
    while tagged(tag) and time.time() < deadline:
        time.sleep(0.05)
    assert not tagged(tag), f"processes outlived their driver: {tagged(tag)}"


def done(out: Path) -> int:
    return len(list((out / "cells").glob("*.done.json")))


def tables(out: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted((out / "tables").iterdir())
        if not p.name.startswith("timing")  # wall times, by design the only ones that differ
    }


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("signals")
    (work / "sig.toml").write_text(SUITE)
    return work


@pytest.fixture(scope="module")
def reference(work) -> dict[str, bytes]:
    """Tables of an uninterrupted run."""
    assert bench.main(["--config", str(work / "sig.toml"), "--out", str(work / "ref"),
                       "--quiet", "--no-report", "--workers", "1"]) == 0  # fmt: skip
    assert report.main([str(work / "ref"), "--no-figures"]) == 0
    return tables(work / "ref")


def finish_and_compare(work: Path, out: str, reference: dict[str, bytes]) -> None:
    """Resume the cut run (in this process) and compare its tables with the reference."""
    args = ["--config", str(work / "sig.toml"), "--out", str(work / out), "--quiet"]
    assert bench.main([*args, "--no-report", "--workers", "1"]) == 0
    assert report.main([str(work / out), "--no-figures"]) == 0
    assert tables(work / out) == reference
    assert not list((work / out).rglob(".*.tmp"))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_killing_the_driver_mid_cells_leaves_no_process_and_resumes(work, reference, sig):
    out = f"cells-{sig.name}"
    proc, tag = start(work, out, "--no-report")
    wait_for(lambda: done(work / out) >= 1 or proc.poll() is not None, "a first cell")
    assert proc.poll() is None and done(work / out) < N_CELLS, "the run ended before the kill"
    assert len(tagged(tag)) >= 2  # the driver and its workers
    proc.send_signal(sig)
    code = proc.wait(timeout=30)
    err = proc.stderr.read()
    assert_all_gone(tag)
    if sig == signal.SIGTERM:
        assert code == 143 and len(err.strip().splitlines()) == 1 and "terminated" in err, err
    finish_and_compare(work, out, reference)


def test_killing_the_driver_mid_figures_leaves_no_process_and_resumes(work, reference):
    out = "figures-kill"
    args = ["--config", str(work / "sig.toml"), "--out", str(work / out), "--quiet"]
    assert bench.main([*args, "--no-report", "--workers", "1"]) == 0
    proc, tag = start(work, out)  # every cell is done: this run only draws
    figures = work / out / "figures"
    wait_for(
        lambda: (figures.is_dir() and any(figures.iterdir())) or proc.poll() is not None,
        "a first figure",
    )
    assert proc.poll() is None, "the report ended before the kill"
    proc.kill()
    proc.wait(timeout=30)
    assert_all_gone(tag)
    finish_and_compare(work, out, reference)


def test_a_second_run_on_the_same_directory_is_refused_and_the_first_finishes(
    work, reference, capsys
):
    out = "shared"
    proc, tag = start(work, out, "--no-report")
    lock = work / out / ".lock"
    wait_for(lambda: lock.is_file() and lock.read_text().strip(), "the lock")
    assert proc.poll() is None, "the first run ended before the second started"
    holder = lock.read_text().strip()
    for extra in ([], ["--force", "--steps", "7"]):
        code = bench.main(
            ["--config", str(work / "sig.toml"), "--out", str(work / out), "--quiet", *extra]
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and f"PID {holder}" in err[0], err
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert done(work / out) == N_CELLS
    assert report.main([str(work / out), "--no-figures"]) == 0
    assert tables(work / out) == reference
