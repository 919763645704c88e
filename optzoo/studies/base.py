"""The studies layer: one designed experiment per effect of the theory, and what it publishes.

A study is a claim, a design that isolates the effect, a measured effect size with a 95% interval,
figures, and a verdict. :func:`publish` writes ``<out>/<name>/``:

- ``summary.json``: ``claim``, ``metric``, ``value``, ``ci`` ([lo, hi]), ``baseline`` (the metric
  without the effect), ``verdict`` (confirmed, refuted or partly), plus ``reduced`` and ``name``;
- ``FINDINGS.md``: the claim, the design, the measured effect, the figures and the verdict;
- each figure as PNG and SVG, and each data table as CSV;

all written atomically. :func:`write_index` writes ``<out>/README.md``, one row per study.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from optzoo.errors import ConfigError
from optzoo.store import write_json, write_text

VERDICTS = ("confirmed", "refuted", "partly")
SUMMARY_KEYS = ("name", "claim", "metric", "value", "ci", "baseline", "verdict", "reduced")


@dataclass(frozen=True)
class Summary:
    """A study's headline: the metric, its 95% interval, the no-effect baseline and the verdict."""

    claim: str
    metric: str
    value: float
    ci: tuple[float, float]
    baseline: float | None
    verdict: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ConfigError(f"verdict {self.verdict!r}: must be one of {list(VERDICTS)}")


@dataclass
class Outcome:
    """What a study's run returns: the summary, the FINDINGS.md text, figures and tables."""

    summary: Summary
    findings: str  # Markdown: design, measured effect with interval, figures, verdict, caveats
    figures: dict[str, Any] = field(default_factory=dict)  # name -> matplotlib Figure
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # name -> data, saved as CSV


@dataclass(frozen=True)
class Study:
    """A designed experiment: ``run(reduced)`` measures the effect; reduced runs take seconds."""

    name: str
    title: str
    claim: str
    run: Callable[[bool], Outcome]


def validate_summary(data: Mapping[str, Any]) -> None:
    """Raise ConfigError unless ``data`` follows the summary.json schema."""
    missing = [k for k in SUMMARY_KEYS if k not in data]
    if missing:
        raise ConfigError(f"summary.json lacks {missing}")
    for k in ("name", "claim", "metric"):
        if not isinstance(data[k], str) or not data[k]:
            raise ConfigError(f"summary.json: {k} must be a non-empty string")
    if not isinstance(data["value"], int | float):
        raise ConfigError("summary.json: value must be a number")
    ci = data["ci"]
    if not (isinstance(ci, list) and len(ci) == 2 and all(isinstance(c, int | float) for c in ci)):
        raise ConfigError("summary.json: ci must be [lo, hi]")
    if not (ci[0] <= ci[1] or any(math.isnan(c) for c in ci)):
        raise ConfigError(f"summary.json: ci {ci} has lo > hi")
    if data["baseline"] is not None and not isinstance(data["baseline"], int | float):
        raise ConfigError("summary.json: baseline must be a number or null")
    if data["verdict"] not in VERDICTS:
        raise ConfigError(f"summary.json: verdict must be one of {list(VERDICTS)}")
    if not isinstance(data["reduced"], bool):
        raise ConfigError("summary.json: reduced must be true or false")


def summary_dict(study: Study, outcome: Outcome, reduced: bool) -> dict[str, Any]:
    s = outcome.summary
    return {
        "name": study.name,
        "claim": s.claim,
        "metric": s.metric,
        "value": float(s.value),
        "ci": [float(s.ci[0]), float(s.ci[1])],
        "baseline": None if s.baseline is None else float(s.baseline),
        "verdict": s.verdict,
        "reduced": reduced,
    }


def _figure_bytes(fig: Any) -> bytes:
    """One PNG (the format the findings link): no creator is embedded, so the bytes repeat."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None}, bbox_inches="tight")
    return buf.getvalue()


def publish(study: Study, outcome: Outcome, out: Path, reduced: bool = False) -> Path:
    """Write one study's summary, findings, figures and tables under ``out/<name>/``."""
    from optzoo.store import write_bytes

    d = Path(out) / study.name
    d.mkdir(parents=True, exist_ok=True)
    summary = summary_dict(study, outcome, reduced)
    validate_summary(summary)
    for name, fig in outcome.figures.items():
        write_bytes(d / f"{name}.png", _figure_bytes(fig))
    for name, df in outcome.tables.items():
        write_text(d / f"{name}.csv", df.to_csv(index=False, float_format="%.6g"))
    figs = "".join(f"\n![{n}]({n}.png)\n" for n in outcome.figures)
    head = f"# {study.title}\n\n**Claim.** {study.claim}\n\n"
    write_text(d / "FINDINGS.md", head + outcome.findings.strip() + "\n" + figs)
    write_json(d / "summary.json", summary)
    return d


def _fmt(v: float) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def write_index(out: Path) -> Path:
    """Write ``out/README.md``: one row per published study, with verdict, value and figure."""
    rows = []
    for path in sorted(Path(out).glob("*/summary.json")):
        s = json.loads(path.read_text())
        validate_summary(s)
        figs = sorted(p.name for p in path.parent.glob("*.png"))
        fig = f"[figure]({s['name']}/{figs[0]})" if figs else ""
        ci = f"[{_fmt(s['ci'][0])}, {_fmt(s['ci'][1])}]"
        rows.append(
            f"| [{s['name']}]({s['name']}/FINDINGS.md) | {s['claim']} | {s['metric']} | "
            f"{_fmt(s['value'])} {ci} | {s['verdict']} | {fig} |"
        )
    text = (
        "# Studies\n\nOne designed experiment per effect of the theory. Each folder holds "
        "`FINDINGS.md` (claim, design, measured effect with a 95% interval, verdict), "
        "`summary.json` and the figures. Regenerate with `python -m optzoo.study all`.\n\n"
        "| study | claim | metric | value [95% CI] | verdict | figure |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    write_text(Path(out) / "README.md", text)
    return Path(out) / "README.md"
