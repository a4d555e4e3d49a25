"""The paper's validation study over cohort tables: every statistic in one call.

:func:`validation_statistics` takes the long metrics table and the biomarkers
table of :func:`~cohort_sciseg.validation.validate_scans` (one or several methods,
one or several splits) and the scans table of discovery, and returns the named
statistics tables that :func:`write_statistics` saves as Parquet and CSV:

``metrics_summary``
    Mean ± SD (median, IQR, n) of every metric per method and structure, overall,
    per site and per stratum column.
``biomarkers_summary``
    The same for the biomarkers, manual and predicted.
``agreement``
    Manual vs each method for each biomarker: normality, Wilcoxon, Bland-Altman,
    Spearman and Pearson, overall and per site.
``methods``
    With two or more methods: Kruskal-Wallis and Bonferroni-corrected Wilcoxon of
    the reference method against each other method, per structure and metric.
``clinical``
    Spearman correlations of manual and predicted biomarkers with the clinical
    scores and their improvements, per subject, with ``n`` after dropping missing values.
``cohort``
    Cohort characteristics (paper Table 1) per site and overall.
``site_differences``
    Age (Mann-Whitney / Kruskal-Wallis) and sex (chi-square) between sites.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa

from cohort_sciseg.errors import ValidationError, format_error
from cohort_sciseg.io import atomic_write_text, write_parquet
from cohort_sciseg.records import BIOMARKERS_SCHEMA, Scan, scan_row
from cohort_sciseg.validation.clinical import (
    BIOMARKERS,
    clinical_correlations,
    clinical_improvement,
)
from cohort_sciseg.validation.cohort import BRIDGE_COLUMNS
from cohort_sciseg.validation.stat_tests import (
    WilcoxonOptions,
    average_over_splits,
    compare_methods,
    compare_paired,
    site_differences,
)
from cohort_sciseg.validation.table1 import cohort_table, summarize

__all__ = [
    "COMPARED_METRICS",
    "STRATA",
    "flat_scans",
    "read_biomarkers",
    "validation_statistics",
    "write_statistics",
]

#: Metrics compared between methods (where present), per structure.
COMPARED_METRICS = (
    "Dice",
    "RelativeVolumeError",
    "assd",
    "hd95",
    "nsd_1mm",
    "F1_score",
    "lesion_f1_mr",
)

#: Columns results are always stratified by.
STRATA = ("site",)

_SCAN_COLUMNS = (
    "scan_id",
    "site",
    "sub",
    "ses",
    "acq",
    "orientation",
    "acquisition_plane",
    "manufacturer",
    "magnetic_field_strength_t",
    "voxel_x_mm",
    "voxel_y_mm",
    "voxel_z_mm",
)


def flat_scans(scans: Sequence[Scan]) -> pd.DataFrame:
    """One row per scan: its fields, its ``participants.tsv`` row and its sidecar keys.

    Participant columns keep their names (``age``, ``sex``, ``initial_LEMS``...),
    missing values (``n/a``) become NaN; sidecar keys keep theirs (``Manufacturer``,
    ``MagneticFieldStrength``...) with scalar JSON values decoded. A participant or
    sidecar column whose name is taken by a scan field gets a ``participant_`` /
    ``sidecar_`` prefix.
    """
    rows = []
    for s in scans:
        full = scan_row(s)
        row: dict[str, object] = {c: full[c] for c in _SCAN_COLUMNS}
        for key, value in s.participant:
            name = f"participant_{key}" if key in _SCAN_COLUMNS else key
            if key == "participant_id":
                continue
            row[name] = None if value.strip().lower() in ("", "n/a") else value
        for key, value in s.sidecar:
            name = f"sidecar_{key}" if key in row else key
            row[name] = _json_scalar(value)
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in df.columns:
        if col not in _SCAN_COLUMNS and not pd.api.types.is_numeric_dtype(df[col]):
            converted = pd.to_numeric(df[col], errors="coerce")
            if converted.notna().sum() == df[col].notna().sum():  # every present value is a number
                df[col] = converted
    return df


def _json_scalar(value: str) -> object:
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, str | int | float | bool) or decoded is None else value


def _strata_columns(scans: pd.DataFrame, strata: Sequence[str]) -> list[str]:
    cols = list(dict.fromkeys([*STRATA, *strata]))
    missing = [c for c in cols if c not in scans]
    if missing:
        known = ", ".join(sorted(map(str, scans.columns)))
        msg = format_error(
            f"cannot stratify by {missing}: not a scan, participant or sidecar column",
            expected=f"one of: {known}",
            fix="pass a column of participants.tsv or the sidecars (e.g. --stratify etiology)",
        )
        raise ValidationError(msg)
    return cols


def validation_statistics(
    metrics: pd.DataFrame,
    biomarkers: pd.DataFrame,
    scans: pd.DataFrame,
    *,
    reference: str | None = None,
    strata: Sequence[str] = (),
    wilcoxon: WilcoxonOptions | None = None,
    correction: str = "bonferroni",
) -> dict[str, pd.DataFrame]:
    """Every statistic of the validation study (see the module docstring).

    Parameters
    ----------
    metrics, biomarkers
        Tables of :func:`~cohort_sciseg.validation.validate_scans` as pandas,
        possibly concatenated over methods and splits; values are first averaged
        over the splits each scan appears in.
    scans
        :func:`flat_scans` of the cohort (participants, sidecars).
    reference
        Method compared with the others (default: the first method in sorted order).
    strata
        Extra participant/sidecar/scan columns to stratify summaries by (``site``
        always is), e.g. ``etiology``, ``manufacturer``, ``magnetic_field_strength_t``.
    wilcoxon
        Options of every Wilcoxon test.
    correction
        Multiple-comparison correction of the pairwise method comparisons.
    """
    strata_cols = _strata_columns(scans, strata)
    attrs = scans[["scan_id", *[c for c in strata_cols if c != "site"]]].drop_duplicates("scan_id")
    m = average_over_splits(metrics, value="value")
    bio = average_over_splits(biomarkers, value=[*BIOMARKERS, "n_lesions"])
    m = m.merge(attrs, on="scan_id", how="left")
    bio = bio.merge(attrs, on="scan_id", how="left")
    methods = sorted(set(m["method"].astype(str))) if len(m) else []
    ref = reference or (methods[0] if methods else None)
    if ref is not None and methods and ref not in methods:
        msg = format_error(
            f"reference method {ref!r} is not among the methods",
            expected=f"one of {methods}",
            fix="pass --reference with one of these names (the METHOD of -p METHOD=DIR)",
        )
        raise ValidationError(msg)

    out: dict[str, pd.DataFrame] = {}
    out["metrics_summary"] = (
        summarize(
            m,
            value="value",
            by=("method", "structure", "metric", "source", "units"),
            strata=strata_cols,
        )
        if len(m)
        else pd.DataFrame()
    )
    bio_long = bio.melt(
        id_vars=[c for c in bio.columns if c not in (*BIOMARKERS, "n_lesions")],
        value_vars=[*BIOMARKERS, "n_lesions"],
        var_name="biomarker",
        value_name="value",
    )
    out["biomarkers_summary"] = (
        summarize(bio_long, value="value", by=("method", "biomarker"), strata=strata_cols)
        if len(bio_long)
        else pd.DataFrame()
    )
    out["agreement"] = _agreement(bio, wilcoxon)
    out["methods"] = _methods(m, ref, wilcoxon, correction) if len(methods) >= 2 else pd.DataFrame()
    out["clinical"] = _clinical(bio, scans)
    subjects = scans.drop_duplicates(["site", "sub"])
    out["cohort"] = cohort_table(scans)
    out["site_differences"] = site_differences(subjects)
    return out


def _agreement(bio: pd.DataFrame, options: WilcoxonOptions | None) -> pd.DataFrame:
    if not len(bio):
        return pd.DataFrame()
    wide = bio.pivot_table(
        index=["scan_id", "site"], columns="method", values=list(BIOMARKERS), aggfunc="mean"
    )
    parts = []
    predicted = sorted({str(x) for x in bio["method"]} - {"manual"})
    for method in predicted:
        for name in BIOMARKERS:
            if (name, "manual") not in wide or (name, method) not in wide:
                continue
            pair = wide[[(name, "manual"), (name, method)]].reset_index()
            pair.columns = ["scan_id", "site", "manual", "predicted"]
            for stratum, sel in [
                ("overall", pair),
                *[(f"site={s}", g) for s, g in pair.groupby("site", sort=True)],
            ]:
                parts.append(
                    compare_paired(
                        sel["manual"],
                        sel["predicted"],
                        measure=name,
                        labels=("manual", method),
                        options=options,
                        stratum=stratum,
                    )
                )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _methods(
    metrics: pd.DataFrame, reference: str | None, options: WilcoxonOptions | None, correction: str
) -> pd.DataFrame:
    parts = []
    for (structure, metric), sel in metrics.groupby(["structure", "metric"], sort=True):
        if metric not in COMPARED_METRICS or reference not in set(sel["method"]):
            continue
        parts.append(
            compare_methods(
                sel,
                value="value",
                reference=str(reference),
                measure=f"{structure} {metric}",
                options=options,
                correction=correction,
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _clinical(bio: pd.DataFrame, scans: pd.DataFrame) -> pd.DataFrame:
    if not len(bio):
        return pd.DataFrame()
    subjects = clinical_improvement(scans.drop_duplicates(["site", "sub"]))
    subjects = subjects.assign(
        subject=subjects["site"].astype(str) + "/" + subjects["sub"].astype(str)
    )
    scores = [
        c
        for c in subjects.columns
        if (c.startswith(("initial_", "discharge_")) or c.endswith(("_improvement", "_improved")))
        and subjects[c].notna().any()
    ]
    if not scores:
        return pd.DataFrame()
    bio = bio.assign(subject=bio["site"].astype(str) + "/" + bio["sub"].astype(str))
    return clinical_correlations(bio, subjects, scores=scores, key="subject")


def write_statistics(
    tables: Mapping[str, pd.DataFrame], out_dir: str | os.PathLike[str]
) -> list[Path]:
    """Write each table as ``<name>.parquet`` and ``<name>.csv`` (atomically); return the paths."""
    out = Path(out_dir)
    written: list[Path] = []
    for name, df in tables.items():
        table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
        written.append(write_parquet(out / f"{name}.parquet", table))
        written.append(atomic_write_text(out / f"{name}.csv", df.to_csv(index=False)))
    return written


_REQUIRED_BIOMARKER_COLUMNS = ("scan_id", "method", "n_lesions", *BIOMARKERS)


def read_biomarkers(path: str | os.PathLike[str], scans: Sequence[Scan]) -> pa.Table:
    """Read a biomarkers table (Parquet or CSV) made elsewhere, checked against ``scans``.

    Needs the columns ``scan_id, method, n_lesions, total_volume_mm3, total_length_mm,
    max_axial_damage_ratio`` (``split`` optional); ``site`` and ``sub`` come from the
    discovered scan. Rows of the manual masks have ``method = "manual"``. A missing
    column, a non-numeric value or an unknown scan id raises a
    :class:`~cohort_sciseg.errors.ValidationError` that names the file and the fix.
    """
    p = Path(path)

    def fail(problem: str, fix: str) -> ValidationError:
        expected = "columns " + ", ".join(_REQUIRED_BIOMARKER_COLUMNS) + " (split optional)"
        return ValidationError(format_error(problem, path=p, expected=expected, fix=fix), path=p)

    try:
        df = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p, sep=None, engine="python")
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise fail(f"cannot read the biomarkers table: {exc}", "pass a readable Parquet or CSV/TSV file") from exc
    missing = [c for c in _REQUIRED_BIOMARKER_COLUMNS if c not in df]
    if missing:
        raise fail(f"biomarkers table lacks column(s) {missing}", "add the columns or rename them")
    by_id = {s.scan_id: s for s in scans}
    unknown = sorted(set(df["scan_id"].astype(str)) - set(by_id))
    if unknown:
        raise fail(
            f"{len(unknown)} scan id(s) not among the discovered scans, e.g. {unknown[:3]}",
            "use the site-qualified scan ids of `cohort-sciseg discover`, or pass the matching BIDS datasets",
        )
    numeric = df[["n_lesions", *BIOMARKERS]].apply(pd.to_numeric, errors="coerce")
    if numeric.isna().any(axis=None):
        rows = df.loc[numeric.isna().any(axis=1), "scan_id"].astype(str).tolist()[:3]
        raise fail(f"missing or non-numeric biomarker values for scan(s) {rows}", "correct or remove those rows")
    out = pd.DataFrame(
        {
            "scan_id": df["scan_id"].astype(str),
            "site": [by_id[s].site for s in df["scan_id"].astype(str)],
            "sub": [by_id[s].sub for s in df["scan_id"].astype(str)],
            "method": df["method"].astype(str),
            "split": df["split"].astype("string") if "split" in df else pd.Series([None] * len(df), dtype="string"),
            "n_lesions": numeric["n_lesions"].astype("int32"),
            **{b: numeric[b].astype(float) for b in BIOMARKERS},
            # optional: the largest lesion's tissue bridges (null where absent)
            **{c: pd.to_numeric(df[c], errors="coerce") if c in df else pd.Series([None] * len(df), dtype="float64")
               for c in BRIDGE_COLUMNS},
        }
    )
    return pa.Table.from_pandas(out, schema=BIOMARKERS_SCHEMA, preserve_index=False)
