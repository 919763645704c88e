"""benchmarks/speed.py: a tiny run writes the three sections with finite ratios (no timing checks)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "speed.py"


def table(text: str, heading: str) -> list[dict[str, str]]:
    """The first Markdown table after ``heading``, as rows of column -> cell text."""
    lines = text.split(heading, 1)[1].splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    rows = []
    for ln in lines[start:]:
        if not ln.startswith("|"):
            break
        if not ln.startswith("|---"):
            rows.append([c.strip() for c in ln.strip("|").split("|")])
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


@pytest.mark.slow
def test_tiny_run_writes_three_sections_with_finite_ratios(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--skip-suite", "--out", str(tmp_path)],
        cwd=tmp_path,  # not the repo: the script finds the package itself
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "speed.md"
    text = out.read_text()
    assert text.strip() in proc.stdout
    for heading in ("## (a)", "## (b)", "## (c)"):
        assert heading in text, heading
    # The machine and the command that reproduces the table.
    for key in ("cpu:", "cores:", "torch:", "numpy:", "intra-op threads:", "date:", "load"):
        assert key in text, key
    assert "python benchmarks/speed.py --tiny --skip-suite" in text

    a = table(text, "## (a)")
    assert [r["what"].split(",")[0] for r in a] == [
        "per-run torch.optim.Adam loop (scaled)",
        "optzoo harness",
    ]
    assert all(math.isfinite(number(r["speed-up"])) and number(r["speed-up"]) > 0 for r in a)
    # The harness and torch.optim computed the same runs.
    assert re.search(r"difference from torch.optim over [1-9]\d* sampled", a[1]["note"])

    b = table(text, "## (b)")
    assert {r["optimizer"] for r in b} == {"adam", "lbfgs", "newton"}
    assert {r["problem"] for r in b} == {"2-D Rosenbrock", "100-D ellipsoid"}
    measured = [r for r in b if r["steps"]]
    assert {r["R"] for r in measured} >= {"1", "10", "100"}
    for r in measured:
        for col in ("bare pt-steps/s", "harness pt-steps/s"):
            assert math.isfinite(number(r[col])) and number(r[col]) > 0, (r, col)
        if r["optimizer"] == "adam":
            for col in ("bare / NumPy", "harness / NumPy"):
                assert math.isfinite(number(r[col])) and number(r[col]) > 0, (r, col)
    assert "skipped (--skip-suite)" in text.split("## (c)", 1)[1]


PEERS = ROOT / "benchmarks" / "peers.py"


@pytest.mark.slow
def test_peers_tiny_without_jax_writes_targets_and_agreeing_iterates(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(PEERS), "--tiny", "--no-jax", "--out", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,  # the fused column compiles (seconds to a minute on a loaded machine)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (tmp_path / "benchmarks.md").read_text()
    for key in ("cpu:", "cores:", "torch:", "load average at start", "jax: not used"):
        assert key in text, key
    assert "python benchmarks/peers.py --tiny --no-jax" in text
    assert "JAX columns skipped (--no-jax)" in text
    targets = table(text, "## Targets")
    assert targets and all(r["met"] == "no JAX" for r in targets)
    adam = table(text, "## Adam")
    for r in adam:
        for col in ("bare Mpt/s", "harness Mpt/s", "NumPy Mpt/s"):
            assert math.isfinite(number(r[col])) and number(r[col]) > 0, (r, col)
        # The harness and the bare step compute the same runs; NumPy's Adam agrees to round-off.
        assert number(r["x diff harness-bare"]) == 0.0, r
        assert number(r["x diff NumPy"]) < 1e-10, r
        # The fused (compiled) steps: the same runs to round-off, not to the bit.
        fused = [c for c in r if c.startswith("fused K=")]
        assert fused, r
        for col in fused:
            assert math.isfinite(number(r[col])) and number(r[col]) > 0, (r, col)
        assert number(r["x diff fused"]) < 1e-10, r
        assert r["JAX Mpt/s"] == "", r
    lbfgs = {r["implementation"]: r for r in table(text, "## L-BFGS")}
    assert set(lbfgs) == {"optzoo", "scipy"}
    # The suite's L-BFGS settings converge like scipy's: every run to |g| <= 1e-7.
    assert number(lbfgs["optzoo"]["share norm(g) <= 1e-7"]) >= 0.99
