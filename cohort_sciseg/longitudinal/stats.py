"""Change between sessions per subject, and its statistics (the longitudinal step's ``longitudinal/`` folder).

``subject_changes.parquet`` (long layout, one row per subject and measure)
    For every subject with several sessions, from its baseline (first) to its last session:
    each biomarker of the run (``tables/biomarkers``, the predicted method: ``total_volume_mm3``,
    ``total_length_mm``, ``max_axial_damage_ratio`` and the tissue bridges of the largest lesion)
    and each numeric column of the subject's ``sessions.tsv`` (clinical scores given per session):
    the value at both ends, ``change = last - baseline`` and the change per year (365.25 days; null
    without session times).
``statistics.parquet`` (the validation's tidy layout: one row per test)
    Per biomarker, overall and per site: Wilcoxon signed-rank of last vs baseline (the package's
    ``wilcoxon_paired``, ``estimate`` = median change); and per biomarker and score (where
    ``sessions.tsv`` has scores for both ends): Spearman's rho between the biomarker's change and the
    score's change (``correlation_row``), overall and per site.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from cohort_sciseg.io import RunLayout, read_partitioned_table, write_parquet
from cohort_sciseg.validation.stat_tests import correlation_row, stats_frame, wilcoxon_paired

__all__ = ["BIOMARKERS", "subject_changes", "write_statistics"]

#: The per-scan biomarkers whose change is tested (``tables/biomarkers`` columns).
BIOMARKERS = ("total_volume_mm3", "total_length_mm", "max_axial_damage_ratio", "dorsal_bridge_width_mm",
              "ventral_bridge_width_mm", "total_bridge_width_mm")
_DAYS_PER_YEAR = 365.25
_COLUMNS = ["site", "sub", "ses_from", "ses_to", "days", "kind", "measure", "value_from", "value_to", "change",
            "change_per_year"]


def _days(a: Any, b: Any) -> float | None:
    """Days from session time ``a`` to ``b`` (both ISO date-times or both days since injury), else None."""
    if isinstance(a, float) and isinstance(b, float):
        return b - a
    if isinstance(a, str) and isinstance(b, str):
        return (pd.Timestamp(b) - pd.Timestamp(a)).total_seconds() / 86400.0
    return None


def subject_changes(groups: Sequence[Sequence[Any]], biomarkers: pd.DataFrame) -> pd.DataFrame:
    """The long table of changes from baseline to last session (module docstring).

    ``groups`` are :func:`~cohort_sciseg.longitudinal.cohort.session_groups`' subjects (sessions in
    order); ``biomarkers`` the run's biomarkers table (its predicted rows are used).
    """
    pred = biomarkers[biomarkers["method"].astype(str) != "manual"] if len(biomarkers) else biomarkers
    by_scan = pred.drop_duplicates("scan_id", keep="last").set_index("scan_id") if len(pred) else pd.DataFrame()
    rows = []
    for sessions in groups:
        first, last = sessions[0], sessions[-1]
        days = _days(first.time, last.time)
        common = {"site": first.site, "sub": first.sub, "ses_from": first.ses, "ses_to": last.ses, "days": days}

        def row(kind: str, measure: str, a: Any, b: Any, common: dict[str, Any] = common,
                days: float | None = days) -> dict[str, Any]:
            a = None if a is None or pd.isna(a) else float(a)
            b = None if b is None or pd.isna(b) else float(b)
            change = None if a is None or b is None else b - a
            per_year = change / (days / _DAYS_PER_YEAR) if change is not None and days else None
            return {**common, "kind": kind, "measure": measure, "value_from": a, "value_to": b, "change": change,
                    "change_per_year": per_year}

        for name in BIOMARKERS:
            a, b = (by_scan[name].get(s.scan_id) if name in by_scan.columns else None for s in (first, last))
            rows.append(row("biomarker", name, a, b))
        for score in sorted(set(first.scores) & set(last.scores)):
            rows.append(row("score", score, first.scores[score], last.scores[score]))
    return pd.DataFrame(rows, columns=_COLUMNS)


def _tests(changes: pd.DataFrame) -> pd.DataFrame:
    parts = []
    bio = changes[changes["kind"] == "biomarker"]
    scores = changes[changes["kind"] == "score"]
    strata = [("overall", changes)] + [(f"site={s}", changes[changes["site"] == s])
                                       for s in sorted(changes["site"].unique())]
    for stratum, part in strata:
        b = bio[bio.index.isin(part.index)]
        for name, g in b.groupby("measure", sort=False):
            parts.append(wilcoxon_paired(g["value_from"], g["value_to"], measure=str(name), labels=("baseline", "last"),
                                         stratum=stratum, analysis="longitudinal"))
        s = scores[scores.index.isin(part.index)]
        rows = []
        for name, g in b.groupby("measure", sort=False):
            left = g.set_index(["site", "sub"])["change"]
            for score, h in s.groupby("measure", sort=True):
                right = h.set_index(["site", "sub"])["change"].reindex(left.index)
                rows.append(correlation_row("spearman", left.to_numpy(float), right.to_numpy(float),
                                            measure=f"{name} change vs {score} change",
                                            labels=(f"{name} change", f"{score} change"), stratum=stratum,
                                            analysis="longitudinal"))
        if rows:
            parts.append(stats_frame(rows))
    return pd.concat(parts, ignore_index=True) if parts else stats_frame([])


def write_statistics(out_dir: str | os.PathLike[str], groups: Sequence[Sequence[Any]]) -> dict[str, Path]:
    """Write ``longitudinal/subject_changes.parquet`` and ``longitudinal/statistics.parquet``; return their paths."""
    out = Path(out_dir)
    layout = RunLayout(out)
    table = read_partitioned_table(layout.table("biomarkers"))
    biomarkers = table.to_pandas() if table is not None else pd.DataFrame(columns=["scan_id", "method"])
    changes = subject_changes(groups, biomarkers)
    folder = layout.longitudinal
    folder.mkdir(parents=True, exist_ok=True)
    stats = _tests(changes) if len(changes) else stats_frame([])
    if "options" in stats.columns:
        stats["options"] = stats["options"].map(
            lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return {
        "subject_changes": write_parquet(folder / "subject_changes.parquet",
                                         pa.Table.from_pandas(changes, preserve_index=False)),
        "longitudinal_statistics": write_parquet(folder / "statistics.parquet",
                                                 pa.Table.from_pandas(stats, preserve_index=False)),
    }
