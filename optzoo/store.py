"""Results on disk: one directory per suite run, written atomically, read back, resumed.

Layout of a results directory::

    manifest.json                    the suite, versions, git commit, machine, seed
    .lock                            the PID of the process writing here (see :func:`locked`)
    cells/<cell>.runs.parquet        one row per run (see schema.RUN)
    cells/<cell>.traces.parquet      f and cost at log-spaced steps, every run
    cells/<cell>.paths.parquet       full trajectories of a few runs (2-D problems only)
    cells/<cell>.landscape.parquet   f on a 101 x 101 grid over the box (2-D problems; the
                                     first optimizer's cell of each problem only)
    cells/<cell>.basins.parquet      where each start of an n x n grid ends at the cell's chosen
                                     setting (2-D multimodal and saddle problems; basin_grid)
    cells/<cell>.problem.json        the problem's facts (f*, minimizers, saddles, bounds)
    cells/<cell>.done.json           written last: the cell is complete; holds its wall time and
                                     the size of each of its files
    cells/<cell>.failed.json         the cell's last attempt failed: its error (rerun retries it)
    tables/, figures/                written by optzoo.report from the files above

A cell counts as finished only when its ``done.json`` exists, and every file is written to a
temporary name and renamed into place, so an interrupted suite never leaves a partial file that
is read as complete; rerunning skips finished cells and redoes the rest. A finished cell whose
files were damaged since (truncated, deleted) is found by :meth:`Store.verify`, reported, and
redone on resume. One process at a time writes a directory: the bench and the report hold an
exclusive lock on it (:func:`locked`), and clean temporary files and apply ``--force`` only while
holding it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from optzoo.errors import ConfigError

MANIFEST = "manifest.json"
CELLS = "cells"
LOCK = ".lock"
KINDS = ("runs", "traces", "paths", "landscape", "basins")
REQUIRED = ("runs", "traces")  # every finished cell has these (the others depend on the problem)
RUNS_ROOT = Path("runs")  # where runs go without --out, under the working directory
NAME_LIMIT = 96  # characters of a file-system name; a cell's files stay far below 255 bytes
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789[]=,._+-")


def safe_name(text: str, limit: int = NAME_LIMIT) -> str:
    """A file-system name for any suite, problem, expression or label: one path component.

    Characters other than ASCII letters, digits and ``[]=,._+-`` become ``_`` (so no separator,
    NUL or control character survives), a leading ``.`` becomes ``_`` (so never ``.``, ``..`` or
    a hidden file), and a name longer than ``limit`` keeps its first characters and ends in
    ``-`` and 8 hex digits of the text's SHA-256, so distinct long texts stay distinct.
    """
    out = "".join(c if c in _SAFE else "_" for c in str(text)) or "_"
    if out[0] == ".":
        out = "_" + out[1:]
    if len(out) > limit:
        out = out[: limit - 9] + "-" + hashlib.sha256(str(text).encode()).hexdigest()[:8]
    return out


def short_name(text: str, keep: int = 24) -> str:
    """A short readable name plus a hash of the whole text, e.g. ``x_2_y_2-1f0c3a9e``.

    For runs named by what the user typed (an expression, ``module:attr``): the readable part
    is :func:`safe_name` of its first characters with runs of ``_`` collapsed; the hash keeps
    two texts that read alike apart.
    """
    readable = "_".join(p for p in safe_name(str(text)[:keep], limit=keep).split("_") if p)
    return f"{readable or 'run'}-{hashlib.sha256(str(text).encode()).hexdigest()[:8]}"


def default_out(name: str) -> Path:
    """Where a run named ``name`` goes without ``--out``: ``runs/<safe name>`` here."""
    return RUNS_ROOT / safe_name(name)


def cell_name(problem_key: str, optimizer: str) -> str:
    """A file-system-safe cell id, e.g. ``rosenbrock[dim=2]__adam``."""
    return f"{safe_name(problem_key)}__{safe_name(optimizer)}"


def file_mode() -> int:
    """The mode a new file gets from the process umask (0666 & ~umask), as open() would give."""
    try:  # Linux says without changing it (changing it, even briefly, races other threads)
        with open("/proc/self/status") as fh:
            umask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[str]:
    """A temporary name beside ``path`` to write; renamed onto ``path`` when the block ends.

    The temporary file (``.<name>.<random>.tmp``) gets the umask's mode rather than mkstemp's
    0600, and is removed if the block raises (a kill leaves it for :meth:`Store.clean_temporary`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
        os.close(fd)
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _atomic_bytes(path: Path, write) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def write_bytes(path: Path, data: bytes) -> None:
    """Write bytes atomically (temporary file, fsync, rename): figures, for one."""
    _atomic_bytes(Path(path), lambda fh: fh.write(data))


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


def read_json(path: Path) -> Any:
    """Read a JSON file; an unreadable or malformed one is a ConfigError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: not readable JSON ({_why(e)})") from None


def _why(e: BaseException) -> str:
    return (e.strerror if isinstance(e, OSError) and e.strerror else str(e)).splitlines()[0][:120]


# -- the lock ---------------------------------------------------------------------------------
_HELD: dict[str, list[int]] = {}  # real path -> [fd, depth]: the locks this process holds


@contextlib.contextmanager
def locked(root: str | Path) -> Iterator[None]:
    """Hold the exclusive lock on results directory ``root`` (created if missing) for a block.

    ``flock`` on ``root/.lock``, which holds the holder's PID. The kernel drops the lock when its
    holder dies, however it dies, so a lock left by a killed process is simply taken over. A
    second process is refused with a ConfigError naming the holder's PID. Re-entrant within a
    process (the bench holds it while its report takes it again).
    """
    _acquire(Path(root))
    try:
        yield
    finally:
        _release(Path(root))


def _acquire(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(root)
    if key in _HELD:
        _HELD[key][1] += 1
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        _HELD[key] = [-1, 1]
        return
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, file_mode())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            raise
        raise ConfigError(
            f"{root} is in use by another optzoo process (PID {holder}); wait for it to finish, "
            "or give another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[key] = [fd, 1]


def _release(root: Path) -> None:
    key = os.path.realpath(root)
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] == 0:
        del _HELD[key]
        if held[0] >= 0:
            os.close(held[0])  # closing the last descriptor releases the flock


def forget_inherited_locks() -> None:
    """In a forked worker: close the lock descriptors inherited from the parent.

    The worker never writes the directory; without this, a worker outliving its parent would
    keep the parent's lock (closing a copy does not release it for the parent).
    """
    for fd, _ in _HELD.values():
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
    _HELD.clear()


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
        self._locked = False

    @property
    def cells_dir(self) -> Path:
        return self.root / CELLS

    def manifest(self) -> dict | None:
        """The manifest, or None where there is none; a damaged one is a one-line ConfigError."""
        p = self.root / MANIFEST
        if not p.is_file():
            return None
        m = read_json(p)
        if not isinstance(m, dict) or not isinstance(m.get("suite"), dict):
            raise ConfigError(f"{p}: not an optzoo manifest (no suite in it)")
        return m

    def open(self, suite_dict: dict, digest: str, force: bool = False) -> None:
        """Claim the directory for a suite: new, resumed (same suite), or replaced (force).

        Takes the directory's lock (see :func:`locked`) and holds it until :meth:`close` or
        until this Store is dropped. A directory that holds a different suite is refused unless
        ``force``; then its cells are removed first, so no stale result is mixed in. On resume,
        temporary files are removed and every finished cell is verified; a damaged one is
        reported on stderr in one line and unmarked, so it is run again.
        """
        if not self._locked:
            _acquire(self.root)
            self._locked = True
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
        self.clean_temporary()
        if old is not None:
            for cell, why in self.verify().items():
                print(f"optzoo: cell {cell} is damaged ({why}); running it again", file=sys.stderr)
                (self.cells_dir / f"{cell}.done.json").unlink(missing_ok=True)
        if old is None:
            write_json(
                self.root / MANIFEST,
                {
                    "suite": suite_dict,
                    "digest": digest,
                    "seed": suite_dict.get("seed"),
                    **environment(),
                },
            )

    def close(self) -> None:
        """Release the lock taken by :meth:`open`."""
        if self._locked:
            self._locked = False
            _release(self.root)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def clean_temporary(self) -> None:
        """Remove temporary files of writes cut short (a kill mid-write), here and below.

        They are never results: the rename that would have made them one did not happen. Call
        only while holding the lock: another process's temporary files are in flight.
        """
        for sub in (self.root, self.cells_dir, self.root / "tables", self.root / "figures"):
            if sub.is_dir():
                for tmp in sub.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)

    def done(self, cell: str) -> bool:
        return (self.cells_dir / f"{cell}.done.json").is_file()

    def write_cell(
        self, cell: str, frames: dict[str, pd.DataFrame], problem: dict, meta: dict
    ) -> None:
        """Write a finished cell: each frame and the problem file atomically, then the marker.

        The marker records each file's size, which :meth:`verify` checks.
        """
        files = {}
        for kind, df in frames.items():
            if df is not None:
                p = self.cells_dir / f"{cell}.{kind}.parquet"
                write_frame(p, df)
                files[p.name] = p.stat().st_size
        p = self.cells_dir / f"{cell}.problem.json"
        write_json(p, problem)
        files[p.name] = p.stat().st_size
        write_json(self.cells_dir / f"{cell}.done.json", {**meta, "files": files})
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
                try:
                    out[cell] = str(read_json(p)["error"])
                except (ConfigError, KeyError, TypeError):
                    out[cell] = f"(its error record {p.name} is unreadable)"
        return out

    def finished_cells(self) -> list[str]:
        if not self.cells_dir.is_dir():
            return []
        return sorted(p.name[: -len(".done.json")] for p in self.cells_dir.glob("*.done.json"))

    def verify(self) -> dict[str, str]:
        """Finished cells whose files are damaged: cell -> what is wrong, in a few words.

        Cheap (no file is parsed but the small markers): each file the marker lists must exist
        with the size recorded; a Parquet file must start and end with its magic bytes (a
        marker written before sizes were recorded lists none: then the runs and traces files
        and the problem file must exist).
        """
        bad = {}
        for cell in self.finished_cells():
            why = self._damage(cell)
            if why:
                bad[cell] = why
        return bad

    def _damage(self, cell: str) -> str | None:
        try:
            marker = read_json(self.cells_dir / f"{cell}.done.json")
        except ConfigError:
            return f"{cell}.done.json is unreadable"
        files = marker.get("files") if isinstance(marker, dict) else None
        if not isinstance(files, dict):
            files = {f"{cell}.{k}.parquet": None for k in REQUIRED} | {f"{cell}.problem.json": None}
        for name, size in files.items():
            p = self.cells_dir / name
            try:
                actual = p.stat().st_size
                with open(p, "rb") as fh:
                    head = fh.read(4)
                    fh.seek(max(actual - 4, 0))
                    tail = fh.read(4)
            except OSError:
                return f"{name} is missing"
            if size is not None and actual != size:
                return f"{name} has {actual} bytes, {size} were written"
            if name.endswith(".parquet") and not (head == tail == b"PAR1"):
                return f"{name} is not a complete Parquet file"
        return None

    def check(self) -> None:
        """Refuse, in one line naming the file, a store that cannot be reported as it is.

        A finished cell whose files are damaged, or a cell the manifest lists that neither
        finished nor failed (a suite cut short), is a ConfigError: the report would silently
        leave it out. Rerunning the suite repairs either.
        """
        bad = self.verify()
        if bad:
            cell, why = next(iter(bad.items()))
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise ConfigError(
                f"{self.cells_dir}: cell {cell} is damaged: {why}{more}; rerun the suite with "
                "the same arguments to redo it"
            )
        expected = self.expected_cells()
        if expected:
            have = set(self.finished_cells()) | set(self.failed_cells())
            missing = [c for c in expected if c not in have]
            if missing:
                raise ConfigError(
                    f"{self.root / MANIFEST} lists {len(expected)} cells, {len(missing)} of them "
                    f"not run (first: {missing[0]}); rerun the suite with the same arguments to "
                    "finish them"
                )

    def expected_cells(self) -> list[str]:
        """The cells the manifest's suite consists of (empty if the manifest does not say)."""
        from optzoo.config import ProblemSpec

        m = self.manifest() or {}
        suite = m.get("suite", {})
        try:
            custom = suite.get("custom")
            keys = (
                [str(custom["name"])]
                if custom
                else [
                    ProblemSpec(p["name"], dict(p.get("params") or {})).key
                    for p in suite["problems"]
                ]
            )
            opts = [o.get("label") or o["name"] for o in suite["optimizers"]]
        except (KeyError, TypeError, AttributeError):
            return []
        return [cell_name(k, o) for k in keys for o in opts]

    def read(self, kind: str, cells: Iterable[str] | None = None) -> pd.DataFrame:
        """Concatenate one kind of frame over finished cells (partial files are never read).

        A file that cannot be read is a ConfigError naming it.
        """
        frames = []
        for cell in self.finished_cells() if cells is None else cells:
            p = self.cells_dir / f"{cell}.{kind}.parquet"
            if p.is_file():
                try:
                    frames.append(pd.read_parquet(p))
                except Exception as e:  # pyarrow's errors for a damaged file have no common base
                    raise ConfigError(
                        f"{p}: cannot be read ({type(e).__name__}: {_why(e)}); rerun the suite "
                        "with the same arguments to redo the cell"
                    ) from None
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    def problems(self) -> dict[str, dict]:
        out = {}
        for cell in self.finished_cells():
            info = read_json(self.cells_dir / f"{cell}.problem.json")
            out[info["key"]] = info
        return out

    def timings(self) -> pd.DataFrame:
        rows = [read_json(self.cells_dir / f"{c}.done.json") for c in self.finished_cells()]
        return pd.DataFrame([{k: v for k, v in r.items() if k != "files"} for r in rows])
