"""The store: atomic writes, done markers, verify and resume, the lock; through its public API."""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optzoo.config import parse
from optzoo.errors import ConfigError
from optzoo.store import (
    Store,
    atomic_path,
    cell_name,
    file_mode,
    locked,
    read_json,
    write_frame,
    write_json,
    write_text,
)

SUITE = parse(
    {
        "suite": {"name": "stored", "steps": 5, "starts": 1},
        "problems": [{"name": "rosenbrock"}, {"name": "himmelblau"}],
        "optimizers": [{"name": "adam"}, {"name": "sgd"}],
    }
)
OTHER = parse(
    {
        "suite": {"name": "other", "steps": 7, "starts": 1},
        "problems": [{"name": "rosenbrock"}],
        "optimizers": [{"name": "adam"}],
    }
)
CELLS = [cell_name(p, o) for p in ("rosenbrock", "himmelblau") for o in ("adam", "sgd")]


def frames(cell: str) -> dict[str, pd.DataFrame | None]:
    """A cell's frames as the harness hands them over: runs and traces, no paths."""
    runs = pd.DataFrame({"cell": [cell] * 3, "run": [0, 1, 2], "final_f": [1.0, 0.5, 0.25]})
    traces = pd.DataFrame({"cell": [cell] * 2, "step": [0, 5], "f": [24.2, 1.0]})
    return {"runs": runs, "traces": traces, "paths": None}


def opened(root: Path, suite=SUITE, force: bool = False) -> Store:
    store = Store(root)
    store.open(suite.to_dict(), suite.digest(), force=force)
    return store


def finish(store: Store, cell: str, wall: float = 1.5) -> None:
    store.write_cell(
        cell, frames(cell), {"key": cell.split("__")[0], "f_star": 0.0}, {"wall": wall}
    )


def temporaries(root: Path) -> list[Path]:
    return sorted(root.rglob(".*.tmp"))


@pytest.fixture
def store(tmp_path):
    s = opened(tmp_path / "results")
    yield s
    s.close()


# -- atomic writes ----------------------------------------------------------------------------------
def test_writers_round_trip_and_leave_no_temporary_file(tmp_path):
    write_json(tmp_path / "a.json", {"b": [1, 2], "a": None})
    write_text(tmp_path / "sub" / "t.md", "# title\n")  # the parent is created
    df = pd.DataFrame({"x": [1.5, -2.0], "name": ["p", "q"]})
    write_frame(tmp_path / "f.parquet", df)
    assert read_json(tmp_path / "a.json") == {"a": None, "b": [1, 2]}
    assert (tmp_path / "sub" / "t.md").read_text() == "# title\n"
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "f.parquet"), df)
    assert temporaries(tmp_path) == []
    # The mode open() would give (the umask's), not mkstemp's 0600.
    for p in ("a.json", "sub/t.md", "f.parquet"):
        assert (tmp_path / p).stat().st_mode & 0o777 == file_mode()


def test_a_runs_table_of_numpy_rows_writes_the_parquet_of_lists(tmp_path):
    """The harness hands the store per-run arrays as NumPy rows; the file must be the one the
    same numbers give as Python lists (ints, floats, empty rows), and read back equal."""
    rng = np.random.default_rng(0)
    x, hits = rng.normal(size=(5, 3)), rng.integers(-1, 50, size=(5, 4))
    eig = [list(r) for r in rng.normal(size=(5, 2))]
    eig[1] = eig[3] = []
    as_lists = pd.DataFrame({"x": x.tolist(), "hits": hits.tolist(), "eig": eig, "none": [[]] * 5})
    as_rows = pd.DataFrame(
        {
            "x": list(x),
            "hits": list(hits),
            "eig": [np.array(e) if e else [] for e in eig],
            "none": [[] for _ in range(5)],
        }
    )
    write_frame(tmp_path / "a.parquet", as_lists)
    write_frame(tmp_path / "b.parquet", as_rows)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    back = pd.read_parquet(tmp_path / "b.parquet")
    assert np.array_equal(np.stack(back["x"]), x) and np.array_equal(np.stack(back["hits"]), hits)


def test_an_interrupted_write_keeps_the_old_file_whole(tmp_path):
    target = tmp_path / "f.parquet"
    old = pd.DataFrame({"x": [1.0, 2.0]})
    write_frame(target, old)
    before = target.read_bytes()

    class Boom(Exception):
        pass

    with pytest.raises(Boom), atomic_path(target) as tmp:
        Path(tmp).write_bytes(b"PAR1 half a file")  # written, then the writer dies
        raise Boom
    assert target.read_bytes() == before
    assert temporaries(tmp_path) == []
    # A frame pyarrow cannot write fails the same way: the old file stays, no partial one.
    with pytest.raises(Exception):  # noqa: B017 - pyarrow's error types have no common base
        write_frame(target, pd.DataFrame({"x": [object(), 1]}))
    assert target.read_bytes() == before and temporaries(tmp_path) == []


def test_read_json_names_a_malformed_file(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json: not readable JSON") as err:
        read_json(tmp_path / "bad.json")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="missing.json"):
        read_json(tmp_path / "missing.json")


# -- done markers -----------------------------------------------------------------------------------
def test_a_cell_is_finished_only_once_its_marker_is_written(store):
    cell = CELLS[0]
    assert not store.done(cell) and store.finished_cells() == []
    assert store.read("runs").empty
    finish(store, cell, wall=2.5)
    assert store.done(cell) and store.finished_cells() == [cell]
    marker = read_json(store.cells_dir / f"{cell}.done.json")
    assert marker["wall"] == 2.5
    # The marker lists every file written with its size; paths were None, so none was written.
    names = {f"{cell}.runs.parquet", f"{cell}.traces.parquet", f"{cell}.problem.json"}
    assert set(marker["files"]) == names
    for name, size in marker["files"].items():
        assert (store.cells_dir / name).stat().st_size == size
    assert not (store.cells_dir / f"{cell}.paths.parquet").exists()
    pd.testing.assert_frame_equal(store.read("runs"), frames(cell)["runs"])
    assert store.problems() == {"rosenbrock": {"key": "rosenbrock", "f_star": 0.0}}
    assert store.timings().to_dict("records") == [{"wall": 2.5}]


def test_files_without_a_marker_are_never_read(store):
    cell = CELLS[1]
    write_frame(store.cells_dir / f"{cell}.runs.parquet", frames(cell)["runs"])
    assert not store.done(cell) and store.read("runs").empty
    finish(store, CELLS[0])
    assert store.read("runs")["cell"].unique().tolist() == [CELLS[0]]
    both = store.read("runs", cells=[CELLS[0], CELLS[0]])
    assert len(both) == 2 * len(frames(CELLS[0])["runs"])


def test_a_failure_is_recorded_until_the_cell_finishes(store):
    cell = CELLS[2]
    store.write_failure(cell, "ValueError: lr must be positive")
    assert store.failed_cells() == {cell: "ValueError: lr must be positive"}
    (store.cells_dir / f"{CELLS[3]}.failed.json").write_text("[]")  # a damaged error record
    assert store.failed_cells()[CELLS[3]].startswith("(its error record")
    finish(store, cell)
    assert cell not in store.failed_cells()
    assert not (store.cells_dir / f"{cell}.failed.json").exists()


# -- verify -----------------------------------------------------------------------------------------
def damage_by(how: str, path: Path) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "deleted":
        path.unlink()
    elif how == "overwritten":  # same size, tail no longer Parquet's magic bytes
        path.write_bytes(data[:-4] + b"XXXX")


@pytest.mark.parametrize(
    "how,kind,why",
    [
        ("truncated", "runs.parquet", r"runs.parquet has \d+ bytes, \d+ were written"),
        ("deleted", "traces.parquet", "traces.parquet is missing"),
        ("overwritten", "runs.parquet", "runs.parquet is not a complete Parquet file"),
        ("deleted", "problem.json", "problem.json is missing"),
    ],
)
def test_verify_finds_a_damaged_cell(store, how, kind, why):
    for cell in CELLS[:2]:
        finish(store, cell)
    assert store.verify() == {}
    damage_by(how, store.cells_dir / f"{CELLS[1]}.{kind}")
    bad = store.verify()
    assert list(bad) == [CELLS[1]]
    assert re.search(why, bad[CELLS[1]]), bad
    with pytest.raises(ConfigError, match=f"cell {CELLS[1]} is damaged") as err:
        store.check()
    assert "\n" not in str(err.value)


def test_verify_reads_markers_without_sizes_and_unreadable_markers(store):
    for cell in CELLS[:3]:
        finish(store, cell)
    # A marker written before sizes were recorded: runs, traces and the problem must exist.
    write_json(store.cells_dir / f"{CELLS[0]}.done.json", {"wall": 1.0})
    (store.cells_dir / f"{CELLS[1]}.done.json").write_text("{")
    (store.cells_dir / f"{CELLS[2]}.traces.parquet").unlink()
    write_json(store.cells_dir / f"{CELLS[2]}.done.json", {"wall": 1.0})
    assert store.verify() == {
        CELLS[1]: f"{CELLS[1]}.done.json is unreadable",
        CELLS[2]: f"{CELLS[2]}.traces.parquet is missing",
    }


def test_check_refuses_a_suite_cut_short(store):
    for cell in CELLS[:3]:
        finish(store, cell)
    assert store.expected_cells() == CELLS
    with pytest.raises(ConfigError, match=f"lists 4 cells, 1 of them not run .first: {CELLS[3]}"):
        store.check()
    store.write_failure(CELLS[3], "boom")  # failed counts as run: the report shows the failure
    store.check()


# -- open: new, resumed, refused, replaced ----------------------------------------------------------
def test_open_writes_the_manifest_with_suite_and_environment(store):
    m = store.manifest()
    assert m["suite"] == SUITE.to_dict() and m["digest"] == SUITE.digest()
    assert m["seed"] == SUITE.to_dict()["seed"]
    assert {"optzoo", "torch", "numpy", "pandas", "python", "git_commit", "machine"} <= set(m)


def test_resume_keeps_finished_cells_and_redoes_damaged_ones(tmp_path, capsys):
    root = tmp_path / "results"
    first = opened(root)
    for cell in CELLS[:2]:
        finish(first, cell)
    stray = first.cells_dir / f".{CELLS[2]}.runs.parquet.abc123.tmp"  # a write cut short
    stray.write_bytes(b"PAR1")
    manifest = (root / "manifest.json").read_bytes()
    first.close()
    damage_by("truncated", root / "cells" / f"{CELLS[1]}.runs.parquet")

    again = opened(root)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cell {CELLS[1]} is damaged" in err
    assert again.finished_cells() == [CELLS[0]]  # the damaged one will run again
    assert not stray.exists()
    assert (root / "manifest.json").read_bytes() == manifest  # resumed, not rewritten
    again.close()


def test_another_suite_is_refused_unless_forced(tmp_path):
    root = tmp_path / "results"
    first = opened(root)
    finish(first, CELLS[0])
    (root / "tables").mkdir()
    (root / "tables" / "convergence.csv").write_text("x\n")
    first.close()
    with pytest.raises(ConfigError, match="holds results of a different suite .'stored'.") as err:
        opened(root, OTHER)
    assert "\n" not in str(err.value)
    assert Store(root).finished_cells() == [CELLS[0]]  # nothing was touched

    replaced = opened(root, OTHER, force=True)
    assert replaced.finished_cells() == [] and not (root / "tables").exists()
    assert replaced.manifest()["suite"]["name"] == "other"
    replaced.close()


# -- the lock ---------------------------------------------------------------------------------------
def hold_lock(root: Path, pid: str) -> int:
    """Take the directory's lock the way another process would: flock on its own descriptor."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{pid}\n".encode(), 0)
    return fd


def free(root: Path) -> bool:
    """Whether another holder could take the lock now."""
    fd = os.open(root / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_the_lock_is_held_for_the_block_and_reentrant(tmp_path):
    root = tmp_path / "new" / "results"
    with locked(root):
        assert (root / ".lock").read_text() == f"{os.getpid()}\n"
        assert not free(root)
        with locked(root):  # the bench holds it while its report takes it again
            assert not free(root)
        assert not free(root)  # the inner block did not release the outer one
    assert free(root)


def test_a_held_lock_is_refused_with_the_holders_pid(tmp_path):
    root = tmp_path / "results"
    fd = hold_lock(root, "4242")
    try:
        with pytest.raises(ConfigError, match=r"in use by another optzoo process \(PID 4242\)"):
            with locked(root):
                pass
        with pytest.raises(ConfigError, match="PID 4242"):
            opened(root)
        assert not (root / "manifest.json").exists()  # refused before anything was written
    finally:
        os.close(fd)  # the holder dies: the kernel drops its lock
    with locked(root):
        assert (root / ".lock").read_text() == f"{os.getpid()}\n"


def test_an_open_store_holds_the_lock_until_closed(tmp_path):
    root = tmp_path / "results"
    store = opened(root)
    assert not free(root)
    with locked(root):  # the same process may take it again (its report does)
        pass
    assert not free(root)
    store.close()
    assert free(root)
    store.close()  # closing twice is harmless
