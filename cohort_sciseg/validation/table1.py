"""Descriptive tables: the cohort characteristics (paper Table 1) and mean ± SD summaries.

Numbers are written with three significant digits and no exponent
(:func:`fmt_number`); SDs use ``ddof=1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cohort_sciseg.validation.stat_tests import as_floats

__all__ = ["cohort_table", "fmt_number", "summarize"]


def summarize(
    table: pd.DataFrame,
    *,
    value: str = "value",
    by: Sequence[str] = ("method", "structure", "metric"),
    strata: Sequence[str] = ("site",),
) -> pd.DataFrame:
    """Mean ± SD (and median, IQR, n) of ``value`` per group, per stratum and overall.

    For every column in ``strata`` the groups are split by that column's values
    (``stratum = "<column>=<value>"``); the ``"overall"`` rows pool all strata.
    Missing values are dropped and not counted.
    """
    frames = []
    group_cols = list(by)

    def _agg(
        df: pd.DataFrame, stratum: Callable[[Any], str] | str, extra: list[str]
    ) -> pd.DataFrame:
        cols = group_cols + extra
        if not cols:
            df = df.assign(_all="")
            cols = ["_all"]
        g = df.groupby(cols, dropna=False, sort=True)[value]
        res = g.agg(
            n="count",
            mean="mean",
            sd=lambda v: v.std(ddof=1),
            median="median",
            q1=lambda v: v.quantile(0.25),
            q3=lambda v: v.quantile(0.75),
            min="min",
            max="max",
        ).reset_index()
        if extra:
            col = extra[0]
            res.insert(0, "stratum", [f"{col}={v}" for v in res[col]])
            res = res.drop(columns=extra)
        else:
            res.insert(0, "stratum", stratum)
        return res.drop(columns=["_all"], errors="ignore")

    numeric = table.assign(**{value: pd.to_numeric(table[value], errors="coerce")})
    frames.append(_agg(numeric, "overall", []))
    for s in strata:
        if s in numeric:
            frames.append(
                _agg(numeric.assign(**{s: numeric[s].astype("string").fillna("n/a")}), "", [s])
            )
    out = pd.concat(frames, ignore_index=True)
    out["mean_sd"] = [_mean_sd(m, sd) for m, sd in zip(out["mean"], out["sd"], strict=True)]
    return out


def _mean_sd(mean: float, sd: float) -> str:
    if pd.isna(mean):
        return "n/a"
    return f"{fmt_number(mean)} ± {fmt_number(sd)}" if pd.notna(sd) else fmt_number(mean)


def fmt_number(x: float, significant: int = 3) -> str:
    """``x`` with ``significant`` digits, no trailing zeros, never an exponent (1800, 849, 12.5, 0.7)."""
    if not np.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    digits = max(0, significant - 1 - math.floor(math.log10(abs(x))))
    text = f"{round(x, digits):.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text  # as %g, without the exponent


#: Participant columns summarised by :func:`cohort_table` (first match wins), by characteristic.
_PARTICIPANT_NUMERIC = {
    "age (years)": ("age",),
    "days from injury to MRI": ("days_injury_to_mri", "days_from_injury", "time_since_injury_days"),
}
_PARTICIPANT_CATEGORICAL = {
    "sex": ("sex",),
    "etiology": ("etiology", "pathology"),
    "injury level": ("injury_level", "level_of_injury", "neurological_level"),
    "implants": ("implants", "implant", "surgery"),
}


def cohort_table(scans: pd.DataFrame, *, site: str = "site") -> pd.DataFrame:
    """The cohort characteristics table (paper Table 1), one column per site and ``overall``.

    ``scans`` is a flat scans table: one row per scan with the participant columns
    (``age``, ``sex``, ``etiology``, ...) and ``manufacturer``,
    ``magnetic_field_strength_t``, ``orientation``, ``acquisition_plane`` and
    ``voxel_x_mm``... columns (see :func:`cohort_sciseg.validation.flat_scans`).
    Participant characteristics count each subject once. Rows are characteristics
    (numeric: ``mean ± SD (min-max)``; categorical: one row per category with
    ``count (percent)``).
    """
    groups: dict[str, pd.DataFrame] = {"overall": scans}
    for s in sorted(scans[site].dropna().astype(str).unique()):
        groups[s] = scans[scans[site].astype(str) == s]
    records: list[dict[str, str]] = []

    def add(characteristic: str, category: str, per_group: Mapping[str, str]) -> None:
        records.append({"characteristic": characteristic, "category": category, **per_group})

    add("scans", "", {g: str(len(df)) for g, df in groups.items()})
    subjects = {
        g: df.drop_duplicates([site, "sub"]) if "sub" in df else df for g, df in groups.items()
    }
    add("subjects", "", {g: str(len(df)) for g, df in subjects.items()})
    for label, names in _PARTICIPANT_NUMERIC.items():
        col = next((c for c in names if c in scans), None)
        if col is not None:
            add(label, "", {g: _describe_numeric(df[col]) for g, df in subjects.items()})
    for label, names in _PARTICIPANT_CATEGORICAL.items():
        col = next((c for c in names if c in scans), None)
        if col is not None:
            _add_categorical(add, label, col, subjects)
    for label, col in (
        ("manufacturer", "manufacturer"),
        ("field strength (T)", "magnetic_field_strength_t"),
        ("orientation", "orientation"),
        ("acquisition plane", "acquisition_plane"),
    ):
        if col in scans:
            _add_categorical(add, label, col, groups)
    for axis in ("x", "y", "z"):
        col = f"voxel_{axis}_mm"
        if col in scans:
            add(
                f"voxel size {axis} (mm)",
                "",
                {g: _describe_numeric(df[col]) for g, df in groups.items()},
            )
    return pd.DataFrame(records, columns=["characteristic", "category", *groups]).fillna("")


def _describe_numeric(values: pd.Series) -> str:
    x = as_floats(values)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return "n/a"
    sd = f" ± {fmt_number(float(np.std(x, ddof=1)))}" if x.size > 1 else ""
    lo, hi = fmt_number(float(np.min(x))), fmt_number(float(np.max(x)))
    return f"{fmt_number(float(np.mean(x)))}{sd} ({lo}-{hi})"


def _add_categorical(
    add: Callable[[str, str, Mapping[str, str]], None],
    label: str,
    col: str,
    groups: Mapping[str, pd.DataFrame],
) -> None:
    def norm(s: pd.Series) -> pd.Series:
        return s.astype("string").str.strip().replace({"": pd.NA, "n/a": pd.NA}).fillna("n/a")

    categories = sorted(norm(groups["overall"][col]).unique(), key=lambda c: (c == "n/a", c))
    for cat in categories:
        cells = {}
        for g, df in groups.items():
            v = norm(df[col])
            k = int((v == cat).sum())
            cells[g] = f"{k} ({100 * k / len(v):.0f}%)" if len(v) else "0"
        add(label, str(cat), cells)
