"""Results on disk: one directory per suite run, written atomically, read back, resumed.

Layout of a results directory::

    manifest.json                    the suite, versions, git commit, machine, seed
    cells/<cell>.runs.parquet        one row per run (see harness.RUN_COLUMNS)
    cells/<cell>.traces.parquet      f and cost at log-spaced steps, every run
    cells/<cell>.paths.parquet       full trajectories of a few runs (2-D problems only)
    cells/<cell>.landscape.parquet   f on a 101 x 101 grid over the box (2-D problems; the
                                     first optimizer's cell of each problem only)
    cells/<cell>.problem.json        the problem's facts (f*, minimizers, saddles, bounds)
    cells/<cell>.done.json           written last: the cell is complete; holds its wall time
    cells/<cell>.failed.json         the cell's last attempt failed: its error (rerun retries it)
    tables/, figures/                written by optzoo.report from the files above

A cell counts as finished only when its ``done.json`` exists, and every file is written to a
temporary name and renamed into place, so an interrupted suite never leaves a partial file that
is read as complete; rerunning skips finished cells and redoes the rest.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from optzoo.errors import ConfigError

MANIFEST = "manifest.json"
CELLS = "cells"
KINDS = ("runs", "traces", "paths", "landscape")


def cell_name(problem_key: str, optimizer: str) -> str:
    """A file-system-safe cell id, e.g. ``rosenbrock[dim=2]__adam``."""
    safe = "".join(c if c.isalnum() or c in "[]=,._-" else "_" for c in problem_key)
    return f"{safe}__{optimizer}"


def safe_name(text: str) -> str:
    """A short, file-system-safe directory name for a run (at most 40 characters)."""
    slug = re.sub(r"[^A-Za-z0-9._=\[\],-]+", "_", text).strip("._") or "run"
    return slug[:40]


def _atomic_bytes(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary file, fsync, rename)."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    _atomic_bytes(Path(path), lambda fh: fh.write(text.encode()))


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically."""
    _atomic_bytes(Path(path), lambda fh: fh.write(text.encode()))


def write_frame(path: Path, df: pd.DataFrame) -> None:
    """Write a DataFrame as Parquet atomically."""
    _atomic_bytes(Path(path), lambda fh: df.to_parquet(fh, index=False))


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment() -> dict:
    """Versions, commit and machine, stored with every result."""
    import numpy
    import torch

    import optzoo

    return {
        "optzoo": optzoo.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pd.__version__,
        "python": sys.version.split()[0],
        "git_commit": git_commit(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
    }


class Store:
    """A results directory for one suite."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def cells_dir(self) -> Path:
        return self.root / CELLS

    def manifest(self) -> dict | None:
        p = self.root / MANIFEST
        if not p.is_file():
            return None
        return json.loads(p.read_text())

    def open(self, suite_dict: dict, digest: str, force: bool = False) -> None:
        """Claim the directory for a suite: new, resumed (same suite), or replaced (force).

        A directory that holds a different suite is refused unless ``force``; then its cells are
        removed first, so no stale result is mixed in.
        """
        old = self.manifest()
        if old is not None and old.get("digest") != digest:
            if not force:
                raise ConfigError(
                    f"{self.root} holds results of a different suite "
                    f"({old.get('suite', {}).get('name')!r}); use --force to replace them, "
                    "or --out for another directory"
                )
            shutil.rmtree(self.cells_dir, ignore_errors=True)
            for sub in ("tables", "figures"):
                shutil.rmtree(self.root / sub, ignore_errors=True)
            old = None
        if old is not None and self.cells_dir.is_dir():
            # Temporary files of writes cut short (a kill mid-write) are never results: the
            # rename that would have made them one did not happen. Clear them on resume.
            for tmp in self.cells_dir.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
        if old is None:
            self.root.mkdir(parents=True, exist_ok=True)
            write_json(
                self.root / MANIFEST,
                {
                    "suite": suite_dict,
                    "digest": digest,
                    "seed": suite_dict.get("seed"),
                    **environment(),
                },
            )

    def done(self, cell: str) -> bool:
        return (self.cells_dir / f"{cell}.done.json").is_file()

    def write_cell(
        self, cell: str, frames: dict[str, pd.DataFrame], problem: dict, meta: dict
    ) -> None:
        """Write a finished cell: each frame and the problem file atomically, then the marker."""
        for kind, df in frames.items():
            if df is not None:
                write_frame(self.cells_dir / f"{cell}.{kind}.parquet", df)
        write_json(self.cells_dir / f"{cell}.problem.json", problem)
        write_json(self.cells_dir / f"{cell}.done.json", meta)
        (self.cells_dir / f"{cell}.failed.json").unlink(missing_ok=True)

    def write_failure(self, cell: str, detail: str) -> None:
        """Record that a cell failed, with its error; a rerun tries it again."""
        write_json(self.cells_dir / f"{cell}.failed.json", {"cell": cell, "error": detail})

    def failed_cells(self) -> dict[str, str]:
        """Cells whose last attempt failed and that have not finished since: cell -> error."""
        if not self.cells_dir.is_dir():
            return {}
        out = {}
        for p in sorted(self.cells_dir.glob("*.failed.json")):
            cell = p.name[: -len(".failed.json")]
            if not self.done(cell):
                out[cell] = json.loads(p.read_text())["error"]
        return out

    def finished_cells(self) -> list[str]:
        if not self.cells_dir.is_dir():
            return []
        return sorted(p.name[: -len(".done.json")] for p in self.cells_dir.glob("*.done.json"))

    def read(self, kind: str, cells: Iterable[str] | None = None) -> pd.DataFrame:
        """Concatenate one kind of frame over finished cells (partial files are never read)."""
        frames = []
        for cell in self.finished_cells() if cells is None else cells:
            p = self.cells_dir / f"{cell}.{kind}.parquet"
            if p.is_file():
                frames.append(pd.read_parquet(p))
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    def problems(self) -> dict[str, dict]:
        out = {}
        for cell in self.finished_cells():
            info = json.loads((self.cells_dir / f"{cell}.problem.json").read_text())
            out[info["key"]] = info
        return out

    def timings(self) -> pd.DataFrame:
        rows = [
            json.loads((self.cells_dir / f"{c}.done.json").read_text())
            for c in self.finished_cells()
        ]
        return pd.DataFrame(rows)
