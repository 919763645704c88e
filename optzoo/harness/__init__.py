"""The harness: one cell (a problem x an optimizer), its whole grid run as one batch, recorded.

A cell's runs are every hyperparameter combination x start x seed; they advance together as
iterates ``(R, d)`` with one counted oracle and one optimizer whose numeric hyperparameters are
per-run tensors. A run stops (is frozen) when it is solved, when its loss or iterate turns
NaN/Inf (diverged), or when its budget is spent; the others go on unchanged. Per run the harness
records the columns of :data:`optzoo.schema.RUN`; f and cost at log-spaced steps go to the
traces, and the full trajectories of the first ``suite.paths`` starts of 2-D problems to the
paths.

- :mod:`~optzoo.harness.cell`: ``run_cell``, ``merge_chunks``, ``CellResult``, grid widening,
  the basin map of a finished cell (:mod:`optzoo.harness.basins`);
- :mod:`~optzoo.harness.grid`: the cell's runs, starts and per-run hyperparameters;
- :mod:`~optzoo.harness.loop`: the step loop;
- :mod:`~optzoo.harness.targets`: first hits of the target ladder;
- :mod:`~optzoo.harness.endpoints`: where runs ended, and f over a 2-D box.

Suites (many cells, executors, the store, progress) are :mod:`optzoo.runner`'s.
"""

from optzoo.harness.cell import CellResult, add_basin_map, merge_chunks, run_cell
from optzoo.harness.endpoints import EIGENVALUES_KEPT, endpoints, landscape_grid
from optzoo.harness.grid import cell_starts, make_problem, problem_key, stable_seed, trace_steps
from optzoo.runtime import OneThread as _OneThread  # noqa: F401  (the studies' rollout)
from optzoo.runtime import padded_size
from optzoo.schema import LADDER, RUN_COLUMNS

__all__ = [
    "EIGENVALUES_KEPT",
    "LADDER",
    "RUN_COLUMNS",
    "CellResult",
    "add_basin_map",
    "cell_starts",
    "endpoints",
    "landscape_grid",
    "make_problem",
    "merge_chunks",
    "padded_size",
    "problem_key",
    "run_cell",
    "stable_seed",
    "trace_steps",
]
