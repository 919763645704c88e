"""Suites: TOML files -> validated, plain :class:`Suite` objects.

A suite file looks like this (every key but ``problems`` and ``optimizers`` has a default)::

    [suite]
    name = "quick"
    steps = 300            # step budget per run
    evals = 0              # gradient-evaluation budget per run (0: none)
    starts = 4             # random starts drawn from each problem's box, besides its x0
    tune_starts = 0        # held-out starts that choose the hyperparameters (0: choose on starts)
    widen = 0              # times a log grid may grow by a decade when its best value is an edge
    seeds = 1              # seeds per (hyperparameters, start): mini-batches, gradient noise
    seed = 0               # base seed for starts and seeds
    basin_grid = 0         # basin maps: n x n starts at each setting chosen (2-D); 0: none
    dtype = "float64"
    device = "cpu"

    [options]
    clip_norm = 10.0       # or clip_value = 1.0
    noise_std = 0.0
    schedule = { kind = "exponential", gamma = 0.999 }
    plateau_grad = 1e-6    # |g| below this counts as a plateau step
    grad_tol = 0.0         # stop a run once its |g| falls below this ("stalled"); 0: never
    stop_on_success = true # freeze a solved run; false lets it go on to grad_tol or the budget
    batch_size = 32        # mini-batch size on problems that have mini-batches

    [[problems]]
    name = "rosenbrock"
    params = { dim = 2 }

    [[optimizers]]
    name = "adam"
    lr = { log = [1e-4, 1.0, 13] }  # 13 log-spaced values (3 per decade); a list also makes a grid
    betas = [0.9, 0.999]

    [[optimizers]]
    name = "adamw"
    weight_decay = 1e-2
    note = "decoupled weight decay 1e-2: minimises a different objective"  # shown in the tables

    [[optimizers]]
    name = "newton"
    label = "newton-sf"             # a variant: tables call it by its label
    saddle_free = true

    [[optimizers]]
    name = "sgd"
    label = "sgd+clip"
    clip_norm = 1.0                 # clipping for this entry only (overrides [options])

A hyperparameter given as a list (or a ``log`` grid) makes a grid; the optimizer's default lr is
always added to its lr grid so "default hyperparameters" is one of the tuning modes.

Tuning protocol: every run of a cell is on one of two disjoint sets of starts and seeds, the
``tune_starts`` held-out ones, which choose the hyperparameters, and the x0 plus ``starts``
reported ones, from which every published number comes. A ``log`` grid axis whose best value (on
the held-out starts) is its first or last is extended by a decade at the same spacing, at most
``widen`` times; a best value still at an edge is flagged in the tables. The budget is ``evals``
gradient-evaluation equivalents for every optimizer (f = g = 1, HVP = 2, Hessian = 2d); a step
that would overspend it is not taken.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomllib

from optzoo.config import schedules
from optzoo.errors import ConfigError

DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda")
SUITE_KEYS = {
    "name", "steps", "evals", "starts", "tune_starts", "widen", "seeds", "seed", "dtype", "device",
    "paths", "basin_grid",
}  # fmt: skip
OPTION_KEYS = {
    "clip_norm",
    "clip_value",
    "noise_std",
    "schedule",
    "stop_on_success",
    "plateau_grad",
    "batch_size",
    "grad_tol",
}
TOP_KEYS = {"suite", "options", "problems", "optimizers"}
# Bounds on sizes, so that a count is refused up front rather than failing (or allocating until
# memory runs out) at run time. Memory itself is estimated per cell by optzoo.runtime.
MAX_STEPS = 10**9  # steps or evaluations per run: far inside int64 counters
MAX_COUNT = 10**7  # starts, seeds, kept paths
MAX_BASIN_GRID = 1000  # starts per axis of a basin map: 10^6 runs in one batch
MAX_SEED = 2**31 - 1  # seeds combine as seed * 1_000_003 + index in int64
MAX_GRID = 10**5  # hyperparameter combinations of one optimizer
MAX_LOG_POINTS = 10**4  # n of a log = [lo, hi, n] grid
MAX_NAME = 200  # characters of a suite name or label (file names are cut by store.safe_name)
# Tuple-valued hyperparameters: a list of this length is one value, not a grid.
TUPLE_HPS = {"betas": 2}


@dataclass(frozen=True)
class ProblemSpec:
    name: str
    params: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        if not self.params:
            return self.name
        inner = ",".join(f"{k}={self.params[k]}" for k in sorted(self.params))
        return f"{self.name}[{inner}]"


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    hp: dict = field(default_factory=dict)  # name -> list of values (a grid axis each)
    label: str | None = None  # how tables name it; lets one optimizer appear twice (variants)
    clip_norm: float | None = None  # gradient clipping for this entry only (else the suite's)
    clip_value: float | None = None
    # Log-grid axes that may widen: name -> ratio between neighbouring values.
    widen: dict = field(default_factory=dict)
    note: str | None = None  # disclosed beside the optimizer in the tables (e.g. its objective)

    @property
    def key(self) -> str:
        return self.label or self.name

    def grid(self) -> list[dict]:
        """Every combination of the hyperparameter lists, in a fixed order."""
        keys = sorted(self.hp)
        return [
            dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(self.hp[k] for k in keys))
        ]


@dataclass(frozen=True)
class Suite:
    name: str
    problems: tuple[ProblemSpec, ...]
    optimizers: tuple[OptimizerSpec, ...]
    steps: int = 1000
    evals: int = 0
    starts: int = 8
    tune_starts: int = 0  # held-out starts that choose hyperparameters; 0: choose on `starts`
    widen: int = 0  # decades a log grid may grow by when its best value is at an edge
    seeds: int = 1
    seed: int = 0
    dtype: str = "float64"
    device: str = "cpu"
    paths: int = 1  # full trajectories are kept for the runs of the first `paths` starts (2-D)
    basin_grid: int = 0  # basin maps from basin_grid x basin_grid starts (2-D); 0: none
    clip_norm: float | None = None
    clip_value: float | None = None
    noise_std: float = 0.0
    schedule: dict = field(default_factory=lambda: {"kind": "constant"})
    plateau_grad: float = 1e-6
    batch_size: int | None = None
    grad_tol: float = 0.0  # a run whose raw |g| falls below this stops ("stalled"); 0: never
    stop_on_success: bool = True  # freeze a run once solved; false: go on (e.g. to |g| < grad_tol)

    def __post_init__(self) -> None:
        check_suite(self)

    def to_dict(self) -> dict:
        """Plain data; a Problem object is described by its ``info()`` (it holds functions)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["problems"] = [
            asdict(p) if isinstance(p, ProblemSpec) else {**p.info(), "object": True}
            for p in self.problems
        ]
        d["optimizers"] = [asdict(o) for o in self.optimizers]
        return json.loads(json.dumps(d, default=str))

    def digest(self) -> str:
        """A hash of everything that changes results (not the name)."""
        d = self.to_dict()
        d.pop("name")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def lr_factor(self, t: int) -> float:
        """The learning-rate schedule's multiplier at step t (0-based); see
        :mod:`optzoo.config.schedules`."""
        return schedules.lr_factor(self.schedule, t, self.steps)

    def replace(self, **changes: Any) -> Suite:
        d = {**self.__dict__, **changes}
        return Suite(**d)


# -- validation helpers ----------------------------------------------------------------------
def _int(where: str, v: Any, lo: int = 0, hi: int = MAX_COUNT) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError(f"{where} must be a whole number from {lo} to {hi:,}, got {v!r}")
    return v


def _name(where: str, v: Any) -> str:
    """A suite name or label: printable, not a path (store.safe_name makes the file name)."""
    if (
        not isinstance(v, str)
        or not v.strip()
        or not v.isprintable()
        or len(v) > MAX_NAME
        or "/" in v
        or "\\" in v
        or v.strip(".") == ""
    ):
        shown = v[:40] if isinstance(v, str) else v
        raise ConfigError(
            f"{where} must be 1 to {MAX_NAME} printable characters, no '/' or '\\', and not "
            f"'.' or '..'; got {shown!r}"
        )
    return v


def _num(where: str, v: Any, lo: float | None = None, allow_none: bool = False) -> float | None:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ConfigError(f"{where} must be a finite number, got {v!r}")
    if lo is not None and v < lo:
        raise ConfigError(f"{where} must be >= {lo}, got {v!r}")
    return float(v)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_keys(where: str, d: dict, allowed: set[str]) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}"
        )


def _hp_axis(opt: str, key: str, v: Any, tuple_len: int | None = None) -> list:
    """One hyperparameter's values as a grid axis; ``tuple_len``: the length of a tuple value."""
    where = f"optimizers.{opt}.{key}"
    if isinstance(v, dict):
        if set(v) != {"log"}:
            raise ConfigError(f"{where}: a grid table takes one key, log = [lo, hi, n]")
        spec = v["log"]
        if (
            not isinstance(spec, list)
            or len(spec) != 3
            or not all(isinstance(a, int | float) and not isinstance(a, bool) for a in spec)
            or not all(math.isfinite(a) for a in spec)
            or not (0 < spec[0] < spec[1])
            or not isinstance(spec[2], int)
            or not 2 <= spec[2] <= MAX_LOG_POINTS
        ):
            raise ConfigError(
                f"{where}: log = [lo, hi, n] needs finite 0 < lo < hi and a whole n from 2 to "
                f"{MAX_LOG_POINTS:,}, got {spec!r}"
            )
        lo, hi, n = math.log10(spec[0]), math.log10(spec[1]), spec[2]
        return [float(f"{10 ** (lo + (hi - lo) * i / (n - 1)):.6g}") for i in range(n)]
    if tuple_len is None:
        tuple_len = TUPLE_HPS.get(key)
    if tuple_len is not None and isinstance(v, tuple):
        return [v]
    if tuple_len is not None and isinstance(v, list) and v and not isinstance(v[0], list | tuple):
        return [tuple(v)]
    if tuple_len is not None and isinstance(v, list):
        return [tuple(b) for b in v]
    if isinstance(v, list):
        if not v:
            raise ConfigError(f"{where}: an empty list gives no values to run")
        return list(v)
    return [v]


def _validate_optimizer(name: str, hp: dict) -> None:
    """Build the optimizer at every grid point: a bad value is refused before anything runs."""
    from optzoo import optimizers

    cls = optimizers.get_class(name)
    for combo in OptimizerSpec(name, hp).grid():
        cls(**combo)


def _validate_problem(spec: ProblemSpec) -> None:
    from optzoo import problems

    problems.get(spec.name, **spec.params)


def check_suite(suite: Suite) -> None:
    """Refuse a Suite whose fields have the wrong type or range, naming the field.

    Lists of problems or optimizers become tuples. A problem is a :class:`ProblemSpec` or a
    :class:`~optzoo.problems.Problem`; an optimizer an :class:`OptimizerSpec`.
    """
    put = object.__setattr__  # the dataclass is frozen; this runs while it is being built
    if not isinstance(suite.name, str) or not suite.name or "/" in suite.name:
        raise ConfigError(f"Suite name must be a non-empty string without '/', got {suite.name!r}")
    for key, kind in (("problems", "ProblemSpec or Problem"), ("optimizers", "OptimizerSpec")):
        v = getattr(suite, key)
        if not isinstance(v, tuple | list):
            raise ConfigError(f"Suite {key} must be a tuple of {kind}, got {type(v).__name__}")
        put(suite, key, tuple(v))
    for p in suite.problems:
        if not isinstance(p, ProblemSpec) and not callable(getattr(p, "info", None)):
            raise ConfigError(
                f"Suite problems must hold ProblemSpec or Problem objects, got {type(p).__name__}"
            )
    for o in suite.optimizers:
        if not isinstance(o, OptimizerSpec):
            raise ConfigError(
                f"Suite optimizers must hold OptimizerSpec objects (see optimizer_spec), "
                f"got {type(o).__name__}"
            )
    for key, lo in (
        ("steps", 1), ("evals", 0), ("starts", 0), ("tune_starts", 0), ("widen", 0), ("seeds", 1),
        ("seed", 0),
    ):  # fmt: skip
        _int(f"Suite {key}", getattr(suite, key), lo)
    _int("Suite paths", suite.paths, 0)
    _int("Suite basin_grid", suite.basin_grid, 0, MAX_BASIN_GRID)
    if suite.basin_grid == 1:
        raise ConfigError("Suite basin_grid must be 0 (no basin maps) or at least 2, got 1")
    if suite.dtype not in DTYPES:
        raise ConfigError(f"Suite dtype: unknown {suite.dtype!r}; allowed: {', '.join(DTYPES)}")
    if suite.device not in DEVICES:
        raise ConfigError(f"Suite device: unknown {suite.device!r}; allowed: {', '.join(DEVICES)}")
    for key in ("clip_norm", "clip_value"):
        _num(f"Suite {key}", getattr(suite, key), lo=0.0, allow_none=True)
    for key in ("noise_std", "plateau_grad", "grad_tol"):
        _num(f"Suite {key}", getattr(suite, key), lo=0.0)
    if suite.batch_size is not None:
        _int("Suite batch_size", suite.batch_size, 1)
    if not isinstance(suite.stop_on_success, bool):
        raise ConfigError(
            f"Suite stop_on_success must be True or False, got {suite.stop_on_success!r}"
        )
    put(suite, "schedule", schedules.check(suite.schedule))


def parse(data: dict, default_name: str = "suite") -> Suite:
    """Validate a suite given as plain data (a parsed TOML file)."""
    if not isinstance(data, dict):
        raise ConfigError("a suite must be a table")
    _check_keys("suite file", data, TOP_KEYS)
    head = data.get("suite", {})
    opts = data.get("options", {})
    for where, d in (("[suite]", head), ("[options]", opts)):
        if not isinstance(d, dict):
            raise ConfigError(f"{where} must be a table")
    _check_keys("[suite]", head, SUITE_KEYS)
    _check_keys("[options]", opts, OPTION_KEYS)

    kw: dict[str, Any] = {"name": _name("suite.name", head.get("name", default_name))}
    for key, lo, hi in (
        ("steps", 1, MAX_STEPS),
        ("evals", 0, MAX_STEPS),
        ("starts", 0, MAX_COUNT),
        ("tune_starts", 0, MAX_COUNT),
        ("widen", 0, MAX_COUNT),
        ("seeds", 1, MAX_COUNT),
        ("seed", 0, MAX_SEED),
        ("paths", 0, MAX_COUNT),
        ("basin_grid", 0, MAX_BASIN_GRID),
    ):
        if key in head:
            kw[key] = _int(f"suite.{key}", head[key], lo, hi)
    if "dtype" in head:
        if head["dtype"] not in DTYPES:
            raise ConfigError(
                f"suite.dtype: unknown {head['dtype']!r}; allowed: {', '.join(DTYPES)}"
            )
        kw["dtype"] = head["dtype"]
    if "device" in head:
        if head["device"] not in DEVICES:
            raise ConfigError(
                f"suite.device: unknown {head['device']!r}; allowed: {', '.join(DEVICES)}"
            )
        check_device("suite.device", head["device"])
        kw["device"] = head["device"]

    if "clip_norm" in opts:
        kw["clip_norm"] = _num("options.clip_norm", opts["clip_norm"], lo=0.0)
    if "clip_value" in opts:
        kw["clip_value"] = _num("options.clip_value", opts["clip_value"], lo=0.0)
    if "noise_std" in opts:
        kw["noise_std"] = _num("options.noise_std", opts["noise_std"], lo=0.0)
    if "plateau_grad" in opts:
        kw["plateau_grad"] = _num("options.plateau_grad", opts["plateau_grad"], lo=0.0)
    if "stop_on_success" in opts:
        if not isinstance(opts["stop_on_success"], bool):
            raise ConfigError(
                f"options.stop_on_success must be true or false, got {opts['stop_on_success']!r}"
            )
        kw["stop_on_success"] = opts["stop_on_success"]
    if "grad_tol" in opts:
        kw["grad_tol"] = _num("options.grad_tol", opts["grad_tol"], lo=0.0)
    if "batch_size" in opts:
        kw["batch_size"] = _int("options.batch_size", opts["batch_size"], 1, MAX_STEPS)
    if "schedule" in opts:
        kw["schedule"] = schedules.check(opts["schedule"])

    probs = data.get("problems")
    if not isinstance(probs, list) or not probs:
        raise ConfigError("the suite needs a non-empty [[problems]] list")
    pspecs = []
    for i, p in enumerate(probs):
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            raise ConfigError(f"problems[{i}] needs a name (a string)")
        _check_keys(f"problems[{i}]", p, {"name", "params"})
        params = p.get("params", {})
        if not isinstance(params, dict):
            raise ConfigError(f"problems[{i}].params must be a table")
        spec = ProblemSpec(p["name"], dict(params))
        _validate_problem(spec)
        pspecs.append(spec)
    keys = [s.key for s in pspecs]
    if len(set(keys)) != len(keys):
        raise ConfigError(
            f"a problem is listed twice: {sorted(k for k in keys if keys.count(k) > 1)[0]}"
        )

    opts_list = data.get("optimizers")
    if not isinstance(opts_list, list) or not opts_list:
        raise ConfigError("the suite needs a non-empty [[optimizers]] list")
    ospecs = []
    for i, o in enumerate(opts_list):
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise ConfigError(f"optimizers[{i}] needs a name (a string)")
        label = o.get("label")
        if label is not None:
            _name(f"optimizers[{i}].label", label)
        note = o.get("note")
        if note is not None and (not isinstance(note, str) or not note):
            raise ConfigError(f"optimizers[{i}].note must be a non-empty string")
        raw = {
            k: v
            for k, v in o.items()
            if k not in ("name", "label", "clip_norm", "clip_value", "note")
        }
        spec = replace(optimizer_spec(o["name"], raw, label), note=note)
        clip = {
            k: _num(f"optimizers[{i}].{k}", o[k], lo=0.0)
            for k in ("clip_norm", "clip_value")
            if k in o
        }
        ospecs.append(replace(spec, **clip) if clip else spec)
    onames = [s.key for s in ospecs]
    if len(set(onames)) != len(onames):
        twice = sorted(n for n in onames if onames.count(n) > 1)[0]
        raise ConfigError(f"an optimizer is listed twice: {twice} (give variants a label)")
    return Suite(problems=tuple(pspecs), optimizers=tuple(ospecs), **kw)


def optimizer_spec(name: str | type, raw: dict, label: str | None = None) -> OptimizerSpec:
    """An optimizer with grid axes; the default lr joins the lr grid. Validated.

    ``name`` is a zoo name, a class (any ``torch.optim.Optimizer`` or optzoo optimizer) or
    ``"package.module:Class"``; a class is labelled by its class name unless ``label`` says
    otherwise. ``raw`` maps hyperparameters to a value, a list (a grid) or ``{log = [lo, hi, n]}``.
    """
    from optzoo import optimizers
    from optzoo.optimizers import external

    if not isinstance(raw, dict):
        raise ConfigError(f"optimizer {name!r}: hyperparameters must be a dict, got {raw!r}")
    cls = optimizers.get_class(name)
    if external.is_spec(name):
        name = external.spec_of(name) if isinstance(name, type) else name.strip()
        label = label or name.rpartition(":")[2].rpartition(".")[2]
    tuple_len = {k: len(v) for k, v in cls.defaults.items() if isinstance(v, tuple)}
    hp = {k: _hp_axis(name, k, v, tuple_len.get(k)) for k, v in raw.items()}
    for k, vals in hp.items():
        if k in cls.flags:
            if isinstance(cls.defaults.get(k), bool) and not all(isinstance(v, bool) for v in vals):
                raise ConfigError(f"optimizers.{name}.{k} must be true or false, got {vals[0]!r}")
            continue
        for v in vals:
            items = v if isinstance(v, tuple) else (v,)
            if not all(
                a is None or (isinstance(a, int | float) and not isinstance(a, bool)) for a in items
            ):
                raise ConfigError(f"optimizers.{name}.{k} must be a number, got {v!r}")
            if not all(a is None or math.isfinite(a) for a in items):
                raise ConfigError(f"optimizers.{name}.{k} must be finite, got {v!r}")
        if isinstance(cls.defaults.get(k), float):
            # A whole number where the default is a float (lr = 1) is that float: one value
            # must take one code path whichever way it was written (see harness._column).
            hp[k] = [float(v) if isinstance(v, int) else v for v in vals]
    combos = math.prod(len(v) for v in hp.values())
    if combos > MAX_GRID:
        raise ConfigError(
            f"optimizers.{name}: the grid has {combos:,} combinations; at most {MAX_GRID:,}"
        )
    # The default joins the lr grid and every log grid, so "default hyperparameters" is always
    # one of the tuning modes, reported beside the tuned ones. (An external optimizer may have no
    # default lr: then there is nothing to add.)
    tuned = [k for k in grid_ratios(raw) if _is_number(cls.defaults.get(k))]
    for k in (["lr"] if _is_number(cls.defaults.get("lr")) else []) + tuned:
        vals = hp.get(k, [])
        if cls.defaults[k] not in vals:
            vals = [*vals, cls.defaults[k]]
        hp[k] = sorted(set(vals))
    try:
        _validate_optimizer(name, hp)
    except ConfigError as e:
        raise ConfigError(f"optimizers.{name}: {e}") from None
    except TypeError as e:
        raise ConfigError(f"optimizers.{name}: a hyperparameter has the wrong type ({e})") from None
    return OptimizerSpec(name, hp, label, widen=grid_ratios(raw))


def grid_ratios(raw: dict) -> dict[str, float]:
    """The ratio between neighbours of each ``log = [lo, hi, n]`` axis (the axes that widen)."""
    out = {}
    for k, v in raw.items():
        if isinstance(v, dict) and "log" in v:
            lo, hi, n = v["log"]
            out[k] = (hi / lo) ** (1.0 / (n - 1))
    return out


def per_decade(ratio: float) -> float:
    """Grid points per decade of a log axis whose neighbours differ by ``ratio``."""
    return 1.0 / math.log10(ratio)


def widened(values: Sequence[float], ratio: float, upward: bool) -> list[float]:
    """One more decade of a log axis beyond its top (``upward``) or bottom, at its spacing."""
    n = max(1, round(per_decade(ratio)))
    edge = max(values) if upward else min(values)
    if edge <= 0:
        return []  # 0 (no damping, no decay) bounds the domain: nothing lies beyond it
    step = ratio if upward else 1.0 / ratio
    return [float(f"{edge * step**k:.6g}") for k in range(1, n + 1)]


def check_device(where: str, device: str) -> None:
    """Refuse a device this machine does not have, as early as any other bad value."""
    if device not in DEVICES:
        raise ConfigError(f"{where}: unknown {device!r}; allowed: {', '.join(DEVICES)}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"{where} = cuda: no CUDA device is available here; use cpu")


def load(path: str | Path) -> Suite:
    """Read and validate a suite file. Any problem raises ConfigError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: malformed TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a text file") from None
    try:
        return parse(data, default_name=p.stem)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None


def configs_dir() -> Path:
    """The suites that ship with optzoo: configs/ beside the package in a checkout, the package
    data ``optzoo.configs`` (optzoo/configs/) in an installed copy."""
    package = Path(__file__).resolve().parent.parent  # optzoo/
    for cand in (package.parent / "configs", package / "configs"):
        if cand.is_dir():
            return cand
    raise ConfigError("the shipped configs/ directory is missing")
