"""Choosing hyperparameters: which setting per problem (or per category) the tables report.

Settings are ranked on the held-out "tune" runs, so that the reported runs' own noise does not
pick the winner, by lowest aRT with a tie band (``ART_TIE``), then success rate, then the grid's
order; grid widening and the tables' edge flag use the same ranking.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from optzoo.metrics import art, quartiles, success_rate

# -- tuning -----------------------------------------------------------------------------------
# The one order in which hyperparameter settings are ranked (tuning, widening, basin maps):
# lowest aRT at the success target, where aRTs within ART_TIE (relative) of the lowest count as
# tied, since round-off alone (another CPU's kernels) moves a run's evaluation count by one and
# would otherwise swap near-tied settings; among tied settings the higher success rate, then the
# lower hp_id (the grid's order). Only when no setting succeeds (every aRT infinite) does the
# lower median final f decide before the hp_id: between settings that all met the target it
# compares round-off (final f of 1e-26 against 3e-26).
SELECT_BY = ["art", "success_rate", "f_final_q50", "hp_id"]
ART_TIE = 0.01


def _ranked(
    art: np.ndarray, success_rate: np.ndarray, f_final_q50: np.ndarray, hp_id: np.ndarray
) -> np.ndarray:
    """Positions of the settings tied with the best (the aRT band; when nothing succeeds, the
    chosen one alone), first the chosen one, then the rest in ``SELECT_BY`` order."""
    art = np.asarray(art, dtype=float)
    best = art.min()
    if np.isfinite(best):
        tied = art <= best * (1.0 + ART_TIE)
        f_key = np.zeros_like(art)
    else:
        tied = np.ones(art.shape, dtype=bool)
        f_key = np.nan_to_num(np.asarray(f_final_q50, dtype=float), nan=math.inf)
    pos = np.flatnonzero(tied)
    rate = np.asarray(success_rate, dtype=float)[pos]
    order = pos[np.lexsort((np.asarray(hp_id)[pos], f_key[pos], -rate))]
    return order if np.isfinite(best) else order[:1]


def pick_setting(
    art: np.ndarray, success_rate: np.ndarray, f_final_q50: np.ndarray, hp_id: np.ndarray
) -> int:
    """Position of the setting ranked first by ``SELECT_BY`` (with the aRT tie band) among
    parallel arrays, one entry per setting of one (problem, optimizer)."""
    return int(_ranked(art, success_rate, f_final_q50, hp_id)[0])


def tied_settings(
    art: np.ndarray, success_rate: np.ndarray, f_final_q50: np.ndarray, hp_id: np.ndarray
) -> list[int]:
    """Positions of the settings the aRT band ties with the best, the chosen one first.

    Grid widening and the edge flag look at all of them: a setting at a grid's edge that is
    tied with an interior one still says the optimum may lie beyond the edge.
    """
    return [int(i) for i in _ranked(art, success_rate, f_final_q50, hp_id)]


def _per_setting(
    hp_ids: np.ndarray, hits: np.ndarray, total: np.ndarray, f_final: np.ndarray
) -> tuple[np.ndarray, ...]:
    ids = np.unique(hp_ids)
    arts, rates, f50 = [], [], []
    for h in ids:
        m = hp_ids == h
        arts.append(art(hits[m], total[m]))
        rates.append(success_rate(hits[m]))
        f50.append(quartiles(np.asarray(f_final, dtype=float)[m])[1])
    return np.array(arts), np.array(rates), np.array(f50), ids


def best_setting(
    hp_ids: np.ndarray, hits: np.ndarray, total: np.ndarray, f_final: np.ndarray
) -> int | None:
    """The hp_id ranked first by ``SELECT_BY`` among runs given as parallel arrays (one cell).

    ``hits``: evaluations at the success target, -1 never; ``total``: each run's evaluations.
    """
    tied = best_settings(hp_ids, hits, total, f_final)
    return tied[0] if tied else None


def best_settings(
    hp_ids: np.ndarray, hits: np.ndarray, total: np.ndarray, f_final: np.ndarray
) -> list[int]:
    """The hp_ids tied with the best (``tied_settings``), the chosen one first; [] if no runs."""
    hp_ids = np.asarray(hp_ids)
    if hp_ids.size == 0:
        return []
    table = _per_setting(hp_ids, hits, total, f_final)
    return [int(table[3][i]) for i in tied_settings(*table)]


def _split(stats: pd.DataFrame, which: str) -> pd.DataFrame:
    """The rows of one split; stats without a ``split`` column are all reported ("test")."""
    if "split" not in stats:
        return stats
    return stats[stats["split"] == which]


def tuning_split(stats: pd.DataFrame) -> str:
    """Where hyperparameters are chosen: the held-out "tune" runs when there are any."""
    if "split" in stats and (stats["split"] == "tune").any():
        return "tune"
    return "test"


def best_per_problem(stats: pd.DataFrame, select_on: str | None = None) -> pd.DataFrame:
    """Tuning mode (b): per (problem, optimizer) the hyperparameters ranked first by
    ``SELECT_BY`` on the ``select_on`` runs (default: the held-out ones, when there are), and
    the reported ("test") rows of that setting. Selection on the reported runs themselves
    (``select_on="test"``) would let their own noise pick the winner (winner's curse)."""
    if stats.empty:
        return stats
    select_on = select_on or tuning_split(stats)
    s = _split(stats, select_on)
    chosen = [
        (p, o, int(g["hp_id"].iloc[pick_setting(*(g[c].to_numpy() for c in SELECT_BY))]))
        for (p, o), g in s.groupby(["problem", "optimizer"], sort=True)
    ]
    keys = pd.DataFrame(chosen, columns=["problem", "optimizer", "hp_id"])
    out = _split(stats, "test").merge(keys, on=["problem", "optimizer", "hp_id"])
    return out.sort_values(["problem", "optimizer"], kind="stable").reset_index(drop=True)


def default_hp(stats: pd.DataFrame) -> pd.DataFrame:
    """Tuning mode (a): the reported rows run at every hyperparameter's default."""
    if stats.empty:
        return stats
    d = _split(stats, "test")
    d = d[d["hp_default"]]
    return (
        d.sort_values(["problem", "optimizer", "hp_id"]).groupby(["problem", "optimizer"]).head(1)
    )


def per_category(stats: pd.DataFrame) -> pd.DataFrame:
    """Tuning mode (c): one hyperparameter setting per (optimizer, category).

    The hyperparameter settings of one optimizer are the same on every problem of a suite, so
    they are matched by their JSON (``hp``). The chosen setting maximises the category success
    rate (successes over all runs of the category's problems) on the held-out runs when there
    are any; ties go to the lowest mean over the problems it solves at least once of
    ``log10(aRT / best aRT)``, the best taken over this optimizer's settings on that problem
    (COCO's aRT ratio), where means within ``log10(1 + ART_TIE)`` of the lowest count as tied;
    then, only when no setting solves anything, to the lowest median over problems of the median
    final f gap to the best median final f; then the lowest ``hp_id``. Returns the reported rows
    of the chosen setting, one per (problem, optimizer), with a ``cat_lr`` column.
    """
    if stats.empty:
        return stats.assign(cat_lr=pd.Series(dtype=float))
    s = _split(stats, tuning_split(stats)).copy()
    best = s.groupby(["problem", "optimizer"])["art"].transform("min")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log10(s["art"].to_numpy() / best.to_numpy())
    s["_log_ratio"] = np.where(np.isfinite(s["art"].to_numpy()), ratio, np.nan)
    fbest = s.groupby(["problem", "optimizer"])["f_final_q50"].transform("min")
    s["_fgap"] = s["f_final_q50"] - fbest
    agg = (
        s.groupby(["optimizer", "category", "hp"], sort=True)
        .agg(
            succ=("successes", "sum"),
            n=("runs", "sum"),
            log_ratio=("_log_ratio", "mean"),
            fgap=("_fgap", "median"),
            hp_id=("hp_id", "min"),
            lr=("lr", "first"),
        )
        .reset_index()
    )
    agg["rate"] = agg["succ"] / agg["n"]
    agg["log_ratio"] = agg["log_ratio"].fillna(np.inf)
    first = [g.index[_pick_for_category(g)] for _, g in agg.groupby(["optimizer", "category"])]
    chosen = agg.loc[first, ["optimizer", "category", "hp", "lr"]]
    out = _split(stats, "test").merge(
        chosen.rename(columns={"lr": "cat_lr"}), on=["optimizer", "category", "hp"]
    )
    return out.sort_values(["problem", "optimizer"])


def _pick_for_category(g: pd.DataFrame) -> int:
    """Position in ``g`` (one optimizer and category) of the setting ``per_category`` chooses."""
    rate = g["rate"].to_numpy()
    top = rate == rate.max()  # success counts: no round-off to absorb
    ratio = np.where(top, g["log_ratio"].to_numpy(), np.inf)
    best = ratio.min()
    if np.isfinite(best):
        tied = ratio <= best + math.log10(1.0 + ART_TIE)
        f_key = np.zeros(len(g))
    else:
        tied = top
        f_key = np.nan_to_num(g["fgap"].to_numpy(dtype=float), nan=math.inf)
    pos = np.flatnonzero(tied)
    return int(pos[np.lexsort((g["hp_id"].to_numpy()[pos], f_key[pos]))[0]])


def at_grid_edge(stats: pd.DataFrame, chosen: pd.DataFrame) -> pd.Series:
    """Per chosen row: whether a numeric hyperparameter it tuned sits at the first or last value
    its grid reached (after widening): the optimum may lie beyond, so the tables flag it."""
    grids: dict[tuple[str, str], dict[str, set]] = {}
    for (p, o), g in stats.groupby(["problem", "optimizer"], sort=False):
        axes: dict[str, set] = {}
        for hp in g["hp"].unique():
            for k, v in json.loads(hp).items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    axes.setdefault(k, set()).add(float(v))
        grids[(p, o)] = {k: v for k, v in axes.items() if len(v) >= 3}
    # The settings tied with the chosen one on the tuning runs (the aRT band): one at an edge
    # says the optimum may lie beyond it as much as the chosen one would.
    tune = _split(stats, tuning_split(stats))
    ties: dict[tuple[str, str], list[str]] = {}
    for (p, o), g in tune.groupby(["problem", "optimizer"], sort=False):
        ties[(p, o)] = [
            g["hp"].iloc[i] for i in tied_settings(*(g[c].to_numpy() for c in SELECT_BY))
        ]
    flags = []
    for p, o, hp in zip(chosen["problem"], chosen["optimizer"], chosen["hp"], strict=True):
        axes = grids.get((p, o), {})
        flag = False
        for h in {hp, *ties.get((p, o), [])}:
            vals = json.loads(h)
            # 0 (no damping, no decay) bounds the domain rather than the grid: not an edge.
            flag |= any(
                float(vals[k]) in (min(v), max(v)) and vals[k] != 0 for k, v in axes.items()
            )
        flags.append(flag)
    return pd.Series(flags, index=chosen.index, dtype=bool)
