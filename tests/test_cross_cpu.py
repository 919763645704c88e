"""Reproducibility across CPUs (issue 16, item 7), emulated on one machine.

torch picks its vectorised CPU kernels by the CPU's capability; ``ATEN_CPU_CAPABILITY=default``
makes it use the generic ones, as a CPU without AVX2 would. A small suite with chaotic cells
(adadelta on the recurrent cliff) runs in subprocesses natively twice and once with the generic
kernels. On the same capability the tables are byte-identical (timing aside); across
capabilities digits of chaotic runs may move, but the headline may not: every success count, its
Wilson interval, and the chosen setting per problem and optimizer are equal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ARGS = [
    "--config", str(ROOT / "configs" / "quick.toml"),
    "--problems", "rnn_cliff,himmelblau,two_neuron",
    "--optimizers", "sgd,adam,adadelta,lbfgs",
    "--quiet",
]  # fmt: skip
TABLES = ("categories.csv", "convergence.csv", "landscape.csv", "targets.md", "convergence.md")
HEADLINE = {
    "categories.csv": ["category", "optimizer", "success_default", "success_best_lr",
                       "success_category_lr", "success_lo", "success_hi"],
    "convergence.csv": ["problem", "optimizer", "tuning", "hp", "runs", "successes",
                        "success_lo", "success_hi", "diverged"],
}  # fmt: skip


def _env(capability: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ATEN_CPU_CAPABILITY", None)
    if capability is not None:
        env["ATEN_CPU_CAPABILITY"] = capability
    return env


def _capability(capability: str | None) -> str:
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    out = subprocess.run([sys.executable, "-c", code], env=_env(capability), check=True,
                         capture_output=True, text=True)  # fmt: skip
    return out.stdout.strip()


def _bench(out: Path, capability: str | None) -> Path:
    subprocess.run([sys.executable, "-m", "optzoo.bench", *ARGS, "--out", str(out)],
                   env=_env(capability), cwd=ROOT, check=True, timeout=1800)  # fmt: skip
    return out / "tables"


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, Path]:
    if _capability(None) == _capability("default"):
        pytest.skip("this CPU has only torch's generic kernels: nothing to compare")
    root = tmp_path_factory.mktemp("cross_cpu")
    return {
        "native": _bench(root / "native", None),
        "again": _bench(root / "again", None),
        "generic": _bench(root / "generic", "default"),
    }


def test_same_capability_gives_byte_identical_tables(tables):
    for name in TABLES:
        assert (tables["native"] / name).read_bytes() == (tables["again"] / name).read_bytes(), name


def test_generic_kernels_leave_the_headline_unchanged(tables):
    for name, cols in HEADLINE.items():
        a = pd.read_csv(tables["native"] / name)[cols]
        b = pd.read_csv(tables["generic"] / name)[cols]
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
