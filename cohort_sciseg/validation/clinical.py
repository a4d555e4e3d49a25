"""Clinical scores: AIS coding, improvements, minimal detectable change, correlations.

Conventions (``../shared/docs/REFERENCE.md`` §5): AIS grades A-E map to 1-5;
improvement = discharge - initial, "improved" when it reaches the minimal
detectable change (LEMS >= 1, light touch >= 12.95, pin prick >= 7.8).
Correlations are rows of the statistics table of
:mod:`cohort_sciseg.validation.stat_tests`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import pandas as pd

from cohort_sciseg.errors import ValidationError, format_error
from cohort_sciseg.records import CLINICAL_COLUMNS
from cohort_sciseg.validation.stat_tests import StatsRow, adjust_p, correlation_row, stats_frame

__all__ = [
    "AIS_GRADES",
    "BIOMARKERS",
    "CLINICAL_SCORES",
    "MDC_THRESHOLDS",
    "ais_to_numeric",
    "clinical_correlations",
    "clinical_improvement",
]

#: The paper's per-scan lesion biomarkers (columns of the biomarkers table).
BIOMARKERS = ("total_volume_mm3", "total_length_mm", "max_axial_damage_ratio")

#: ``participants.tsv`` clinical columns of REFERENCE.md §5.
CLINICAL_SCORES = CLINICAL_COLUMNS

#: AIS grade -> number.
AIS_GRADES = {"A": 1, "B": 2, "C": 3, "D": 4, "E": 5}

#: Minimal detectable change of each improvement score (inclusive thresholds).
MDC_THRESHOLDS = {"LEMS": 1.0, "light_touch_total": 12.95, "pin_prick_total": 7.8}


def clinical_correlations(
    biomarkers: pd.DataFrame,
    clinical: pd.DataFrame,
    *,
    biomarker_columns: Sequence[str] = BIOMARKERS,
    scores: Sequence[str] | None = None,
    key: str = "sub",
    method_column: str = "method",
    kind: Literal["spearman", "pearson"] = "spearman",
    correction: str | None = None,
    stratum: str = "overall",
) -> pd.DataFrame:
    """Correlations of each biomarker (per method) with each clinical score.

    ``biomarkers`` holds one row per ``key`` x method; ``clinical`` one row per
    ``key`` (``participants.tsv`` with ``participant_id`` renamed to ``key``, or
    :func:`clinical_improvement`'s output). ``n`` is the number of subjects left
    after dropping missing values of that pair. ``measure`` is
    ``"<biomarker> (<method>)"``, ``a`` the biomarker, ``b`` the score. With
    ``correction`` (e.g. ``"bonferroni"``), ``p_adjusted`` is corrected over all
    rows of the result.
    """
    score_cols = [
        c for c in (scores if scores is not None else _numeric_scores(clinical)) if c in clinical
    ]
    clin = clinical.drop_duplicates(key).set_index(key)
    rows: list[StatsRow] = []
    for m, group in biomarkers.groupby(method_column, sort=True):
        per_sub = group.groupby(key)[list(biomarker_columns)].mean(numeric_only=True)
        joined = per_sub.join(clin[score_cols], how="left")
        for bio in biomarker_columns:
            for score in score_cols:
                row = correlation_row(
                    kind,
                    joined[bio],
                    _clinical_numeric(joined[score], score),
                    measure=f"{bio} ({m})",
                    labels=(bio, score),
                    stratum=stratum,
                    analysis="clinical_correlation",
                )
                rows.append(row)
    out = stats_frame(rows)
    return adjust_p(out, correction) if correction else out


def _numeric_scores(clinical: pd.DataFrame) -> list[str]:
    known = [
        c
        for c in clinical.columns
        if c in CLINICAL_SCORES or c.endswith(("_improvement", "_improved"))
    ]
    return known


def _clinical_numeric(series: pd.Series, column: str) -> pd.Series:
    return (
        ais_to_numeric(series, column=column)
        if column.endswith("_ais")
        else pd.to_numeric(series, errors="coerce")
    )


def ais_to_numeric(values: Any, *, column: str = "ais") -> pd.Series:
    """AIS grades ``A``-``E`` (any case, or ``"AIS A"``) to 1-5; numbers 1-5 pass through.

    Missing values (empty, ``n/a``, NaN) stay missing. Anything else raises a
    :class:`~cohort_sciseg.errors.ValidationError` naming the column and the values.
    """
    s = pd.Series(values)
    text = s.astype("string").str.strip().str.upper().str.removeprefix("AIS").str.strip()
    missing = s.isna() | text.isin(["", "N/A", "NA", "NAN"])
    mapped = text.map(AIS_GRADES)
    numeric = pd.to_numeric(text, errors="coerce")
    numeric = numeric.where(numeric.isin([1, 2, 3, 4, 5]))
    out = mapped.astype("Float64").fillna(numeric.astype("Float64"))
    bad = ~missing & out.isna()
    if bad.any():
        values_bad = sorted(set(map(str, s[bad])))[:5]
        raise ValidationError(
            format_error(
                f"column {column!r} holds values that are not AIS grades: {values_bad}",
                expected="A, B, C, D, E (or 1-5), empty or n/a for missing",
                fix=f"correct {column!r} in participants.tsv",
            )
        )
    return out.where(~missing).astype(float)


def clinical_improvement(participants: pd.DataFrame) -> pd.DataFrame:
    """Add improvement (discharge - initial) and MDC ``*_improved`` columns.

    For each of LEMS, light touch and pin prick present as ``initial_X`` and
    ``discharge_X``: ``X_improvement`` and ``X_improved`` (improvement >= MDC, missing
    where either score is missing); AIS: ``ais_improvement`` in grades.
    """
    out = participants.copy()
    for score, mdc in MDC_THRESHOLDS.items():
        ini, dis = f"initial_{score}", f"discharge_{score}"
        if ini in out and dis in out:
            diff = pd.to_numeric(out[dis], errors="coerce") - pd.to_numeric(
                out[ini], errors="coerce"
            )
            out[f"{score}_improvement"] = diff
            out[f"{score}_improved"] = (diff >= mdc).astype("boolean").where(diff.notna())
    if "initial_ais" in out and "discharge_ais" in out:
        out["ais_improvement"] = ais_to_numeric(
            out["discharge_ais"], column="discharge_ais"
        ) - ais_to_numeric(out["initial_ais"], column="initial_ais")
    return out
