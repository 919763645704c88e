"""What optzoo offers, and how the command line names it: ``--list`` and ``name[key=value]``.

``listing()`` is the text of ``python -m optzoo.bench --list``. ``problem_specs`` and
``optimizer_specs`` turn ``--problems`` / ``--optimizers`` values into validated specs, keeping
the suite's own entries where a bare name matches them.
"""

from __future__ import annotations

import inspect
from pathlib import Path

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
    for item in config.split_items(text):
        name, params = config.parse_item(item)
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
    for item in config.split_items(text):
        name, hp = config.parse_item(item)
        if not hp and name in have:
            chosen.append(have[name])
        else:
            chosen.append(
                config.optimizer_spec(name, hp, label=config.item_label(item) if hp else None)
            )
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
