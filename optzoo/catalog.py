"""What optzoo offers, and how the command line names it: ``--list`` and ``name[key=value]``.

``listing()`` is the text of ``python -m optzoo.bench --list``. ``problem_specs`` and
``optimizer_specs`` turn ``--problems`` / ``--optimizers`` values into validated specs, keeping
the suite's own entries where a bare name matches them.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import tomllib

from optzoo import config
from optzoo.config import OptimizerSpec, ProblemSpec, Suite
from optzoo.errors import ConfigError


def listing() -> str:
    """Optimizers, problems by category, and the shipped suites, as plain text."""
    from optzoo import optimizers, problems
    from optzoo.problems.base import CATEGORIES

    lines = ["optimizers (also any torch.optim.Optimizer as package.module:Class):"]
    for name in optimizers.names():
        cls = optimizers.get_class(name)
        hp = ", ".join(f"{k}={v!r}" for k, v in cls.defaults.items())
        lines.append(f"  {name:<16} {hp}")
    lines += ["", "problems by category, with their params (set them as name[key=value,...]):"]
    for cat in CATEGORIES:
        names = problems.names(cat) if cat != "custom" else []
        if names:
            lines.append(f"  {cat}:")
        for name in names:
            sig = inspect.signature(problems.REGISTRY[name]).parameters.values()
            params = ", ".join(f"{p.name}={p.default!r}" for p in sig)
            lines.append(f"    {name:<16} {params}".rstrip())
    lines += ["", "suites (--config NAME or a path to a .toml file):"]
    for path in sorted(config.configs_dir().glob("*.toml")):
        lines.append(f"  {path.stem}")
    return "\n".join(lines)


def problem_specs(text: str, suite: Suite) -> tuple[ProblemSpec, ...]:
    """``--problems``: a bare name keeps the suite's entries of that name (every variant), or
    adds it with its default params; ``name[key=value]`` is exactly that problem."""
    by_name: dict[str, list[ProblemSpec]] = {}
    for spec in suite.problems:
        if isinstance(spec, ProblemSpec):
            by_name.setdefault(spec.name, []).append(spec)
    chosen: list[ProblemSpec] = []
    if not split_items(text):
        raise ConfigError(f"--problems needs at least one name, got {text[:40]!r}")
    for item in split_items(text):
        name, params = parse_item(item)
        if not params and name in by_name:
            chosen.extend(by_name[name])
            continue
        spec = ProblemSpec(name, params)
        config._validate_problem(spec)  # an unknown name or param is refused, listing the known
        chosen.append(spec)
    keys = [s.key for s in chosen]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"--problems lists {twice[0]} twice")
    return tuple(chosen)


def optimizer_specs(text: str, suite: Suite) -> tuple[OptimizerSpec, ...]:
    """``--optimizers``: a bare name keeps the suite's entry (its grid), else adds it at its
    defaults; ``name[key=value]`` sets hyperparameters (a list is a grid) and is labelled as
    written. ``package.module:Class`` adds any ``torch.optim.Optimizer``."""
    have = {o.key: o for o in suite.optimizers}
    chosen = []
    if not split_items(text):
        raise ConfigError(f"--optimizers needs at least one name, got {text[:40]!r}")
    for item in split_items(text):
        name, hp = parse_item(item)
        if not hp and name in have:
            chosen.append(have[name])
        else:
            chosen.append(config.optimizer_spec(name, hp, label=item_label(item) if hp else None))
    keys = [o.key for o in chosen]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"--optimizers lists {twice[0]} twice")
    return tuple(chosen)


def budget(suite: Suite, steps: int | None, evals: int | None) -> tuple[Suite, str | None]:
    """Apply ``--steps`` / ``--evals``; returns the suite and a note for the user, if any.

    ``--steps`` alone replaces the whole budget: a suite's evaluation budget would otherwise cap
    it silently. ``--evals`` sets the evaluation budget (0: none).
    """
    note = None
    changes: dict = {}
    if steps is not None:
        changes["steps"] = steps
        if evals is None and suite.evals > 0:
            changes["evals"] = 0
            note = (
                f"--steps {steps} replaces the suite's budget ({suite.steps} steps, "
                f"{suite.evals} gradient evaluations); add --evals N to keep an evaluation budget"
            )
    if evals is not None:
        changes["evals"] = evals
    return (suite.replace(**changes) if changes else suite), note


def record_command(out: Path, argv: list[str]) -> None:
    """Note in the manifest the command line that produced ``out``, for its README."""
    import shlex

    from optzoo.store import MANIFEST, Store, write_json

    manifest = Store(out).manifest()
    if manifest is not None:
        manifest["command"] = shlex.join(["python", "-m", "optzoo.bench", *argv])
        write_json(Path(out) / MANIFEST, manifest)


# -- name[key=value,...] ----------------------------------------------------------------------
def split_items(text: str) -> list[str]:
    """Split a comma-separated list at the commas outside brackets, braces and quotes.

    ``"adam[lr=[1e-3, 1e-2]],rosenbrock[dim=10,x=1]"`` -> two items.
    """
    items, depth, quote, cur = [], 0, "", []
    for c in text:
        if quote:
            quote = "" if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        elif c == "," and depth == 0:
            items.append("".join(cur).strip())
            cur = []
            continue
        cur.append(c)
    items.append("".join(cur).strip())
    if depth != 0 or quote:
        raise ConfigError(f"unbalanced brackets or quotes in {text!r}")
    return [i for i in items if i]


def parse_item(text: str) -> tuple[str, dict]:
    """``"name[key=value,...]"`` -> (name, {key: value}); values are TOML values.

    ``rosenbrock[dim=10]``, ``adam[lr=[1e-3, 1e-2], amsgrad=true]``,
    ``torch.optim:NAdam[lr={log=[1e-4, 1, 5]}]``. A bare word (``strong_wolfe``) is a string.
    """
    text = text.strip()
    if not text.endswith("]") or "[" not in text:
        if "[" in text or "]" in text:
            raise ConfigError(f"{text!r}: expected name[key=value,...]")
        return text, {}
    name, _, inner = text[:-1].partition("[")
    name = name.strip()
    if not name:
        raise ConfigError(f"{text!r}: a name must come before '['")
    out: dict[str, Any] = {}
    for item in split_items(inner):
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise ConfigError(f"{text!r}: {item!r} is not key=value")
        try:
            out[key] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
            if not value or not all(c.isalnum() or c in "_-." for c in value):
                raise ConfigError(
                    f"{text!r}: cannot read the value of {key!r} ({raw.strip()!r}); use a number, "
                    "true/false, a word, [a, b] or {log = [lo, hi, n]}"
                ) from None
            out[key] = value
    return name, out


def item_label(item: str) -> str:
    """How tables name an optimizer given as ``name[key=value]``: as written, with a class path
    shortened to its class (``torch.optim:NAdam[lr=0.01]`` -> ``NAdam[lr=0.01]``)."""
    name, _, rest = item.partition("[")
    return (name.rpartition(":")[2] + ("[" + rest if rest else "")).replace("/", "_")
