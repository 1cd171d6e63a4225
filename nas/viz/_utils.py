"""Small helpers shared by the charts: number parsing and formatting, knob names."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from nas import results as R

if TYPE_CHECKING:
    import pandas as pd

def num(v: Any) -> float:
    """`v` as a float, NaN when it is not a number."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def fmt(v: Any, nd: int = 1, unit: str = "") -> str:
    """`v` with `nd` decimals and `unit`, or "n/a" when it is not a finite number."""
    f = num(v)
    return "n/a" if not math.isfinite(f) else f"{f:.{nd}f}{unit}"


def knob_name(col: str) -> str:
    """``knob_width_mult`` -> ``width_mult``."""
    return col[len(R.KNOB_PREFIX):] if col.startswith(R.KNOB_PREFIX) else col


def first_value(df: pd.DataFrame, col: str) -> str:
    """The first non-empty value of `col`, as text ("" when none)."""
    vals = [v for v in df[col].tolist() if v] if len(df) and col in df.columns else []
    return str(vals[0]) if vals else ""
