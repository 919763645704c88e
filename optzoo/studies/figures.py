"""Drawing for the studies: contour backgrounds and one colour and marker per critical-point kind.

Figures are made with :class:`matplotlib.figure.Figure` directly (no pyplot state), so a study
can build several and hand them to :func:`optzoo.studies.base.publish`.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from optzoo.problems.base import Problem

KIND_STYLE: dict[str, tuple[str, str]] = {  # kind -> (colour, marker)
    "minimum": ("tab:blue", "o"),
    "saddle": ("tab:red", "X"),
    "maximum": ("tab:purple", "^"),
    "degenerate": ("tab:orange", "s"),
    "not_critical": ("0.6", "."),
    "diverged": ("black", "x"),
}


def figure(n_panels: int, width: float = 4.2, height: float = 3.8) -> tuple[Figure, list]:
    """A figure with ``n_panels`` axes side by side."""
    fig = Figure(figsize=(width * n_panels, height), layout="constrained")
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    return fig, list(axes)


def contour(ax, problem: Problem, n: int = 161, levels: int = 30) -> None:
    """Filled contours of a 2-D problem over its box; f is shown as sign(f) log(1 + |f|)."""
    lo, hi = problem.bounds[0].tolist(), problem.bounds[1].tolist()
    xs = torch.linspace(lo[0], hi[0], n, dtype=torch.float64)
    ys = torch.linspace(lo[1], hi[1], n, dtype=torch.float64)
    Y, X = torch.meshgrid(ys, xs, indexing="ij")
    with torch.no_grad():
        f = problem.fn(torch.stack([X, Y], dim=-1)).numpy()
    # A signed log keeps both a minimum's basin and the saddle's ridges visible.
    cs = ax.contourf(X.numpy(), Y.numpy(), np.sign(f) * np.log1p(np.abs(f)), levels, cmap="Greys")
    cs.set_rasterized(True)  # the vector twin keeps its markers and text; filled bands as pixels
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.set_title(problem.name)
