"""Numbers and frames as table text: fixed float formats, Markdown, LaTeX (booktabs) and CSV.

Fixed formats make tables regenerated from the same stored runs byte-identical.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from tabulate import tabulate


def fmt(x: float | int | None, digits: int = 4, inf: str = "∞", nan: str = "—") -> str:
    """A number for a table: ``%.<digits>g``, with fixed spellings for inf and NaN."""
    if x is None:
        return nan
    x = float(x)
    if math.isnan(x):
        return nan
    if math.isinf(x):
        return inf if x > 0 else "-" + inf
    return f"{x:.{digits}g}"


def fmt_art(x: float | None) -> str:
    """An aRT (gradient evaluations): 3 significant digits below 100, whole numbers up to 1e6."""
    if x is None or math.isnan(float(x)) or math.isinf(float(x)) or not 100 <= abs(float(x)) < 1e6:
        return fmt(x, 3)
    return f"{float(x):.0f}"


def fmt_q(q25: float, q50: float, q75: float, digits: int = 4, **kw: str) -> str:
    """``median [q25, q75]``."""
    if isinstance(q50, float) and math.isnan(q50):
        return kw.get("nan", "—")
    return f"{fmt(q50, digits, **kw)} [{fmt(q25, digits, **kw)}, {fmt(q75, digits, **kw)}]"


def markdown(df: pd.DataFrame, right: Sequence[str] = ()) -> str:
    """A pipe table; columns in ``right`` are right-aligned."""
    align = ["right" if c in right else "left" for c in df.columns]
    return (
        tabulate(
            df.to_numpy().tolist(),
            headers=list(df.columns),
            tablefmt="pipe",
            disable_numparse=True,
            colalign=align,
        )
        + "\n"
    )


_TEX_ESC = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(s: str) -> str:
    """Escape LaTeX's special characters; ∞ and — become math/text commands."""
    out = "".join(_TEX_ESC.get(c, c) for c in str(s))
    return out.replace("∞", r"$\infty$").replace("—", "--")


def latex(
    df: pd.DataFrame, right: Sequence[str] = (), bold: set[tuple[int, str]] = frozenset()
) -> str:
    """A booktabs tabular (no jinja2 needed). ``bold`` holds (row, column) cells to embolden."""
    cols = list(df.columns)
    spec = "".join("r" if c in right else "l" for c in cols)
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    lines.append(" & ".join(tex_escape(c) for c in cols) + r" \\")
    lines.append(r"\midrule")
    for i, row in enumerate(df.itertuples(index=False)):
        cells = []
        for c, v in zip(cols, row, strict=True):
            t = tex_escape(v)
            cells.append(rf"\textbf{{{t}}}" if (i, c) in bold else t)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def csv(df: pd.DataFrame) -> str:
    """A frame as CSV: no index, floats to 6 significant digits, Unix line ends."""
    return df.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def pct(x: float) -> str:
    """A share as a whole percentage; — when missing."""
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f}%"


def ci(lo: float, hi: float) -> str:
    """A Wilson interval in percent, ``[lo, hi]``."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return ""
    return f"[{100 * lo:.0f}, {100 * hi:.0f}]"


def setting(hp: str, edge: bool) -> str:
    """The tuned hyperparameters of a row, compactly; "(edge)" when one sits at its grid's end."""
    vals = json.loads(hp)
    shown = [f"{k} {fmt(v, 3)}" for k, v in sorted(vals.items()) if k in ("lr", "damping")]
    return ", ".join(shown) + (" (edge)" if edge else "")


def delta_label(t: float) -> str:
    """A target delta_f as a short label: 1e-08 -> 1e-8."""
    return f"{t:.0e}".replace("e-0", "e-").replace("e+0", "e")
