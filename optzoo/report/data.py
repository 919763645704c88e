"""A results directory read back and reduced to the statistics the tables and figures show.

Only stored files are read (``optzoo.store``); nothing runs and no optimizer or problem is
imported, so a directory's report can be regenerated anywhere.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from optzoo import metrics, tuning
from optzoo.errors import ConfigError
from optzoo.schema import CATEGORIES
from optzoo.store import Store

# The order of categories in tables and panels: the problems' own list, from the torch-free schema.
CATEGORY_ORDER = CATEGORIES


class ReportData:
    """A results directory read back and reduced to the statistics the report shows."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.store = Store(self.root)
        manifest = self.store.manifest()
        if manifest is None:
            raise ConfigError(f"{self.root} is not a results directory (no manifest.json)")
        self.manifest = manifest
        if not self.store.finished_cells():
            raise ConfigError(f"{self.root} holds no finished cells; run the suite first")
        runs = self.store.read("runs")
        runs = runs.sort_values(["problem", "optimizer", "run"], kind="stable")
        runs = runs.reset_index(drop=True)
        runs["row"] = runs.groupby("problem", sort=False).cumcount()
        self.runs = runs
        self.infos = self.store.problems()

    @cached_property
    def traces(self) -> pd.DataFrame:
        return self.store.read("traces")

    @cached_property
    def paths(self) -> pd.DataFrame:
        return self.store.read("paths")

    @cached_property
    def problems(self) -> list[str]:
        """Problem keys in category order, then by key."""
        keys = sorted(self.runs["problem"].unique().tolist())
        return sorted(keys, key=lambda k: (category_rank(self.infos[k]["category"]), k))

    @cached_property
    def optimizers(self) -> list[str]:
        """Optimizer names in the suite's order (sorted when the manifest has none)."""
        have = set(self.runs["optimizer"].unique().tolist())
        specs = self.manifest.get("suite", {}).get("optimizers", [])
        listed = [o.get("label") or o.get("name") for o in specs]
        order = [o for o in listed if o in have]
        return order + sorted(have - set(order))

    @cached_property
    def categories(self) -> list[str]:
        cats = {self.infos[p]["category"] for p in self.problems}
        return sorted(cats, key=lambda c: (category_rank(c), c))

    @cached_property
    def hits(self) -> dict[str, metrics.Hits]:
        out = {}
        for p, g in self.runs.groupby("problem", sort=True):
            info = self.infos[p]
            tr = None
            if info.get("f_star") is None and not info.get("saddles"):
                t = self.traces
                tr = t[t["problem"] == p] if not t.empty else t
            out[p] = metrics.problem_hits(g, info, tr)
        return out

    @cached_property
    def stats(self) -> pd.DataFrame:
        return metrics.hp_stats(self.runs, self.hits)

    @cached_property
    def best(self) -> pd.DataFrame:
        return self._ordered(tuning.best_per_problem(self.stats))

    @cached_property
    def default(self) -> pd.DataFrame:
        return self._ordered(tuning.default_hp(self.stats))

    @cached_property
    def per_category(self) -> pd.DataFrame:
        return self._ordered(tuning.per_category(self.stats))

    def _ordered(self, df: pd.DataFrame) -> pd.DataFrame:
        if df.empty:
            return df
        pr = {p: i for i, p in enumerate(self.problems)}
        orr = {o: i for i, o in enumerate(self.optimizers)}
        key = df["problem"].map(pr) * 10_000 + df["optimizer"].map(orr)
        return (
            df.assign(_k=key)
            .sort_values("_k", kind="stable")
            .drop(columns="_k")
            .reset_index(drop=True)
        )

    def best_runs(self, problem: str, optimizer: str) -> pd.DataFrame:
        """The runs of one optimizer on one problem at its best hyperparameters (the same frame
        on every call: tables and figures ask for it many times; do not modify it)."""
        return self._best_runs.get((problem, optimizer), self.runs.iloc[:0])

    @cached_property
    def _best_runs(self) -> dict[tuple[str, str], pd.DataFrame]:
        """(problem, optimizer) -> its reported runs at its best hyperparameters."""
        out = {}
        b = self.best
        for p, o, hp in zip(b["problem"], b["optimizer"], b["hp_id"], strict=True):
            key = (p, o, int(hp), "test")
            out[(p, o)] = self.runs.iloc[self._groups.get(key, [])]
        return out

    @cached_property
    def _groups(self) -> dict[tuple, np.ndarray]:
        """(problem, optimizer, hp_id, split) -> the positions of those runs."""
        r = self.runs if "split" in self.runs else self.runs.assign(split="test")
        return r.groupby(["problem", "optimizer", "hp_id", "split"], sort=False).indices

    @cached_property
    def notes(self) -> dict[str, str]:
        """Optimizer -> its disclosed note (e.g. a different objective) from the suite file."""
        specs = self.manifest.get("suite", {}).get("optimizers", [])
        return {(o.get("label") or o["name"]): o["note"] for o in specs if o.get("note")}

    def success_caption(self) -> str:
        """The success targets of the problems shown, from the data: the common one, then the
        problems whose own target differs."""
        labels = {p: self.target_label(p) for p in self.problems}
        common = pd.Series(list(labels.values())).mode()
        main = common.iloc[0] if len(common) else ""
        odd = [f"{p}: {t}" for p, t in labels.items() if t != main]
        return f"success: {main}" + (f" ({'; '.join(odd)})" if odd else "")

    def protocol_caption(self) -> str:
        """How settings were chosen and how many runs each number rests on, from the data."""
        r = self.runs
        test = r[r["split"] == "test"] if "split" in r else r
        n = test.groupby(["problem", "optimizer", "hp_id"]).size()
        runs = f"{n.min()}" if n.min() == n.max() else f"{n.min()}-{n.max()}"
        if tuning.tuning_split(self.stats) == "tune":
            tune = r[r["split"] == "tune"].groupby(["problem", "optimizer", "hp_id"]).size()
            how = f"chosen on {tune.min()} held-out runs per setting"
        else:
            how = "chosen on the reported runs themselves (no held-out starts)"
        return f"settings {how}; {runs} reported runs per problem and optimizer"

    def run_outcomes(self, rows: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
        """(problem, optimizer) -> per reported run of the chosen setting: RT to the success
        target and whether it was reached, as an (n, 2) array."""
        out = {}
        for p, o in zip(rows["problem"], rows["optimizer"], strict=True):
            br = self.best_runs(p, o)
            h = self.hits[p]
            hit = h.evals[br["row"].to_numpy(), h.final]
            rt = metrics.runtime(hit, br["evals"].to_numpy())
            out[(p, o)] = np.stack([rt, hit >= 0], axis=1)
        return out

    def target_label(self, problem: str) -> str:
        h = self.hits[problem]
        if h.kind == "escape":
            return "escape"
        t = f"{metrics.LADDER[h.final]:.0e}".replace("e-0", "e-").replace("e+0", "e")
        return f"f* + {t}" if h.kind == "f_star" else f"f_ref + {t}"

    def f_offset(self, problem: str) -> float | None:
        """The value subtracted from f on log plots: f*, f_ref, or None (saddles: plot f)."""
        info = self.infos[problem]
        if info.get("f_star") is not None:
            return float(info["f_star"])
        return self.hits[problem].f_ref


def category_rank(c: str) -> int:
    """A category's place in report order (unknown categories last)."""
    return CATEGORY_ORDER.index(c) if c in CATEGORY_ORDER else len(CATEGORY_ORDER)


def load(data: ReportData | str | Path) -> ReportData:
    """``data`` itself if already loaded, else the results directory it names, read back."""
    return data if isinstance(data, ReportData) else ReportData(data)
