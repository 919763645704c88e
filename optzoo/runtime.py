"""What a cell will take from the machine: its peak memory, estimated before anything runs.

A cell of R runs on a d-dimensional problem holds, at its peak (bytes per number ``b``: 4 or 8):

    iterates and temporaries      ~ 16 R d b   (x, x_new, g, the start, a step's intermediates)
    optimizer state               as ``init`` builds it (L-BFGS: 2 m R d for its history)
    Hessians (Newton, escape)     4 R d^2 b    (H, the eigenvectors, solver workspace)
    end-point classification      4 R d^2 8    (dense spectra up to 256 dimensions)
    trace buffers                 16 R T       (f and cost at T log-spaced steps)
    target ladder                 2 * 52 R 8 + 8 * 17 R
    path buffer                   24 (steps + 1) P   (2-D problems: P kept trajectories)

R counts the padding (see ``harness.padded_size``). The optimizer state is measured by calling
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
