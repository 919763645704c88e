"""What a cell takes from the machine: cores, one intra-op thread, malloc, padding, memory.

No torch at import (the report loads :func:`cores` through ``_pool`` and must not pay for it).

Peak memory is estimated before anything runs.

A cell of R runs on a d-dimensional problem holds, at its peak (bytes per number ``b``: 4 or 8):

    iterates and temporaries      ~ 16 R d b   (x, x_new, g, the start, a step's intermediates)
    optimizer state               as ``init`` builds it (L-BFGS: 2 m R d for its history)
    Hessians (Newton, escape)     4 R d^2 b    (H, the eigenvectors, solver workspace)
    end-point classification      4 R d^2 8    (dense spectra up to 256 dimensions)
    trace buffers                 16 R T       (f and cost at T log-spaced steps)
    target ladder                 2 * 52 R 8 + 8 * 17 R
    path buffer                   24 (steps + 1) P   (2-D problems: P kept trajectories)

R counts the padding (see :func:`padded_size`). The optimizer state is measured by calling
the optimizer's own ``init`` on the ``meta`` device, which allocates nothing, so a new optimizer
is estimated without being listed anywhere. The estimate errs high: it is compared with the
machine's available memory (or ``--max-memory``) to refuse, in one line, a cell that cannot fit,
before the cell allocates until the system runs out.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

from optzoo.errors import ConfigError

MAX_RUNS = 10**7  # runs in one cell: beyond this even a 1-D problem's bookkeeping is gigabytes
DENSE_MAX = 256  # end points are classified with dense Hessians up to this dimension
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


@dataclass(frozen=True)
class CellSize:
    """A cell's shape: what its peak memory depends on."""

    runs: int  # hyperparameter combinations x starts x seeds
    dim: int
    steps: int
    paths: int  # trajectories kept (0 unless the problem is 2-D)
    dtype_bytes: int


def physical_memory() -> int | None:
    """The memory this machine can give a cell now, in bytes: Linux's MemAvailable where it is
    known (what can be allocated without swapping), else the physical memory, if known."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def parse_bytes(text: str) -> int:
    """``"512M"``, ``"4G"``, ``"1.5G"`` or a number of bytes -> bytes (powers of 1024)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT]?)i?B?\s*", str(text), re.IGNORECASE)
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(
            f"--max-memory must be a size such as 512M, 4G or 1.5G (powers of 1024), got {text!r}"
        )
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def human(n: float) -> str:
    """Bytes as a short size: 1.5 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def state_bytes(optimizer_cls: type, hp: dict, runs: int, dim: int, dtype: str) -> int:
    """Bytes of the optimizer state for ``runs x dim`` iterates, from its own ``init`` on meta."""
    import torch

    x = torch.empty(runs, dim, dtype=getattr(torch, dtype), device="meta")
    state = optimizer_cls(**hp).init(x)
    tensors = state if isinstance(state, tuple) else ()
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def peak_bytes(size: CellSize, state: int, hessians: bool, trace_points: int) -> int:
    """The estimated peak memory of a cell in bytes (see the module docstring)."""
    R, d, b = size.runs, size.dim, size.dtype_bytes
    total = 16 * R * d * b + state
    total += 8 * R * d  # the previous step, for the step cosine (float64)
    total += 16 * R * trace_points + 2 * 52 * R * 8 + 8 * 17 * R
    total += 24 * (size.steps + 1) * size.paths
    if hessians:
        total += 4 * R * d * d * b
    if d <= DENSE_MAX:
        total += 4 * R * d * d * 8
    return total


def check_fits(what: str, need: int, limit: int | None) -> None:
    """Refuse a cell whose estimate exceeds ``limit`` bytes (None: the memory available now)."""
    flag = "--max-memory"
    if limit is None:
        limit, flag = physical_memory(), "the memory available"
    if limit is not None and need > limit:
        raise ConfigError(
            f"{what} would need about {human(need)} of memory, more than {flag} "
            f"({human(limit)}); use fewer starts, seeds or grid values, fewer steps, or a "
            "smaller problem"
        )


def check_runs(what: str, runs: int) -> None:
    """Refuse a cell with more runs than the harness is built for."""
    if runs > MAX_RUNS:
        raise ConfigError(
            f"{what} has {runs:,} runs (grid x starts x seeds); at most {MAX_RUNS:,} are allowed"
        )


def grid_size(axes: dict) -> int:
    """The number of hyperparameter combinations of a grid given as name -> list of values."""
    return math.prod(len(v) for v in axes.values())


# -- the process -----------------------------------------------------------------------------
def cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def one_thread() -> int:
    """Put torch on one intra-op thread; return the number it had.

    A batch is a long chain of small tensor ops (R x d elements, from a few to a few million).
    At that size a second OpenMP thread saves little, and when the cores are shared with other
    work each op waits for a descheduled thread: measured on a 2-core machine under load, 2
    threads made a 4,096-run Adam cell 9x slower and the quick suite 4x slower. One thread also
    makes a run's numbers independent of the machine's core count (MKL kernels such as the
    batched solves and matrix products of the neural problems may round differently with more
    threads). Parallelism across cells is the executors' job: a process that only runs cells
    (a pool worker, a Ray task) calls this once, before it builds a problem's data.
    """
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    return saved


class OneThread:
    """``with OneThread():`` runs its body on one intra-op thread (see :func:`one_thread`) and
    restores the caller's setting on exit."""

    def __enter__(self) -> None:
        self.saved = one_thread()

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self.saved)


_MALLOC_TUNED = False


def keep_freed_memory() -> None:
    """Let glibc's malloc reuse freed large blocks instead of returning them to the system.

    Every tensor op allocates its result. Above malloc's mmap threshold (at most 32 MB by
    default) each result is a fresh mapping whose pages fault in on first touch, and is unmapped
    when freed: at R = 1e5 runs of a 100-D problem (80 MB tensors) that made an Adam step 3x
    slower (measured). Raising the mmap and trim thresholds to 1 GiB keeps freed blocks in the
    heap for the next op. The process's memory then shrinks only at exit. A no-op where the C
    library is not glibc. Called by the command line, its workers and the speed benchmark;
    library use leaves the process's malloc alone.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
        libc.mallopt(m_mmap_threshold, 1 << 30)
        libc.mallopt(m_trim_threshold, 1 << 30)
    except (OSError, AttributeError):
        pass


# Vector register width in bytes of each CPU capability torch dispatches to.
_VECTOR_BYTES = {"AVX512": 64, "AVX2": 32, "SVE256": 32, "DEFAULT": 16, "NO AVX": 16}


def padded_size(n: int, dtype: torch.dtype, device: torch.device) -> int:
    """How many runs a batch of ``n`` is padded to.

    The harness pads a batch with frozen copies of its first run, because torch's vectorised
    CPU loops take two vectors' worth of elements per iteration (reductions over an outer
    dimension take four) and leave the remainder to a scalar loop that rounds differently; a
    batch whose size is a multiple of four vectors never reaches it: 16 float64 runs with AVX2,
    32 with AVX-512 (twice that in float32). Measured: with multiples of 8 float64 runs on AVX2,
    the time-summed gradient of ``rnn_cliff`` still depended on the batch.
    """
    import torch

    if device.type != "cpu":
        return n
    width = _VECTOR_BYTES.get(torch.backends.cpu.get_cpu_capability(), 64)
    m = max(1, 4 * width // torch.empty(0, dtype=dtype).element_size())
    return -(-n // m) * m
