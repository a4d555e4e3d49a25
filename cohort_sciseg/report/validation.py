"""Outputs of a cohort validation: tables, statistics and the paper's figures.

:func:`write_validation` writes, into one folder::

    metrics.parquet  biomarkers.parquet  failures.parquet    (the tables)
    stats/<name>.parquet and stats/<name>.csv                 (validation_statistics)
    figures/<name>.png and figures/<name>.svg                 (write_validation_figures)
    validation.json                                           (options, versions, counts)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from cohort_sciseg._version import __version__
from cohort_sciseg.io import RunLayout, write_json, write_parquet
from cohort_sciseg.records import (
    BIOMARKERS_SCHEMA,
    METRICS_SCHEMA,
    Failure,
    failures_to_table,
)
from cohort_sciseg.report.figures import (
    bland_altman_figure,
    correlation_figure,
    raincloud_figure,
    regression_figure,
    save_figure,
)
from cohort_sciseg.validation.clinical import BIOMARKERS, clinical_improvement
from cohort_sciseg.validation.stat_tests import (
    WilcoxonOptions,
    average_over_splits,
    library_versions,
)
from cohort_sciseg.validation.study import validation_statistics, write_statistics

__all__ = ["BIOMARKER_UNITS", "ValidationOutputs", "write_validation", "write_validation_figures"]

#: The paper's per-scan biomarkers and their units.
BIOMARKER_UNITS = {"total_volume_mm3": "mm3", "total_length_mm": "mm", "max_axial_damage_ratio": ""}
_RAINCLOUD_METRICS = ("Dice", "RelativeVolumeError", "F1_score", "lesion_f1_mr", "assd")


def write_validation_figures(
    metrics: pd.DataFrame,
    biomarkers: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    clinical: dict[str, pd.DataFrame] | None = None,
    correlations: pd.DataFrame | None = None,
) -> list[Path]:
    """Write every validation figure (PNG and SVG) into ``out_dir``; return the paths.

    Parameters
    ----------
    metrics
        Long metrics table (``METRICS_SCHEMA`` as pandas): raincloud plots of the
        main metrics per structure, site and method.
    biomarkers
        Biomarkers table (``BIOMARKERS_SCHEMA`` as pandas, one row per scan and
        method; average splits first): regression and Bland-Altman plots of each
        method against ``manual``.
    clinical
        Optional per-subject tables (biomarker and clinical score columns) by method
        (``manual`` and the others), for the correlation plots.
    correlations
        Optional table with columns ``method``, ``biomarker``, ``score``, ``rho``, ``p``:
        one figure per row.
    """
    out = Path(out_dir)
    written: list[Path] = []
    for structure in sorted(metrics["structure"].unique()) if len(metrics) else []:
        for metric in _RAINCLOUD_METRICS:
            sel = metrics[(metrics.structure == structure) & (metrics.metric == metric)]
            if sel["value"].notna().any():
                fig = raincloud_figure(
                    sel, value="value", group="site", hue="method", title=f"{structure} {metric}"
                )
                written += save_figure(fig, out / f"{structure}_{metric}_raincloud")
    if len(biomarkers):
        wide = biomarkers.pivot_table(
            index="scan_id", columns="method", values=list(BIOMARKER_UNITS), aggfunc="mean"
        )
        for method in sorted(set(biomarkers["method"].astype(str)) - {"manual"}):
            for name, unit in BIOMARKER_UNITS.items():
                if (name, "manual") not in wide or (name, method) not in wide:
                    continue
                manual = wide[(name, "manual")].to_numpy(float)
                pred = wide[(name, method)].to_numpy(float)
                label = f"{name} ({method})"
                stem = out / f"{name}_{_safe(method)}"
                written += save_figure(
                    regression_figure(manual, pred, measure=label, unit=unit), f"{stem}_regression"
                )
                written += save_figure(
                    bland_altman_figure(manual, pred, measure=label, unit=unit),
                    f"{stem}_bland_altman",
                )
    if clinical and correlations is not None:
        for row in correlations.itertuples():
            who, biomarker, score = str(row.method), str(row.biomarker), str(row.score)
            frame = clinical.get(who)
            if frame is None or biomarker not in frame or score not in frame:
                continue
            fig = correlation_figure(
                frame[biomarker].to_numpy(float),
                pd.to_numeric(frame[score], errors="coerce").to_numpy(float),
                x_label=f"{biomarker} ({who})",
                y_label=score,
                rho=None if pd.isna(row.rho) else float(row.rho),
                p=None if pd.isna(row.p) else float(row.p),
            )
            written += save_figure(
                fig, out / f"clinical_{_safe(who)}_{_safe(biomarker)}_{_safe(score)}"
            )
    return written


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


@dataclass(frozen=True, slots=True)
class ValidationOutputs:
    """What :func:`write_validation` wrote, and the statistics it computed."""

    out_dir: Path
    tables: dict[str, Path]
    statistics: dict[str, pd.DataFrame]
    stats_files: list[Path]
    figures: list[Path]


def write_validation(
    out_dir: str | os.PathLike[str],
    metrics: pa.Table | pd.DataFrame,
    biomarkers: pa.Table | pd.DataFrame,
    scans: pd.DataFrame,
    *,
    failures: Sequence[Failure] = (),
    reference: str | None = None,
    strata: Sequence[str] = (),
    wilcoxon: WilcoxonOptions | None = None,
    correction: str = "bonferroni",
    figures: bool = True,
) -> ValidationOutputs:
    """Write the tables, the statistics and the figures of a validation into ``out_dir``.

    ``metrics`` and ``biomarkers`` may hold several methods and splits (see
    :func:`~cohort_sciseg.validation.study.validation_statistics`); ``scans`` is
    :func:`~cohort_sciseg.validation.study.flat_scans` of the cohort.
    """
    out = Path(out_dir)
    m_tab = _as_table(metrics, METRICS_SCHEMA)
    b_tab = _as_table(biomarkers, BIOMARKERS_SCHEMA)
    tables = {
        "metrics": write_parquet(out / "metrics.parquet", m_tab),
        "biomarkers": write_parquet(out / "biomarkers.parquet", b_tab),
        "failures": write_parquet(out / "failures.parquet", failures_to_table(list(failures))),
    }
    m_df, b_df = m_tab.to_pandas(), b_tab.to_pandas()
    wopts = wilcoxon or WilcoxonOptions()
    statistics = validation_statistics(
        m_df, b_df, scans, reference=reference, strata=strata, wilcoxon=wopts, correction=correction
    )
    # the names of a run's validation/ folder (RunLayout), in any folder given
    stats_files = write_statistics(statistics, out / RunLayout.VALIDATION_STATS)
    figs: list[Path] = []
    if figures:
        bio_avg = average_over_splits(b_df, value=[*BIOMARKERS, "n_lesions"])
        figs = write_validation_figures(
            average_over_splits(m_df, value="value"),
            bio_avg,
            out / RunLayout.VALIDATION_FIGURES,
            clinical=_clinical_frames(bio_avg, scans),
            correlations=_correlation_specs(statistics.get("clinical")),
        )
    write_json(
        out / "validation.json",
        {
            "generated_by": f"cohort-sciseg {__version__}",
            "versions": json.loads(library_versions()),
            "reference": reference,
            "strata": list(strata),
            "wilcoxon": wopts.as_dict(),
            "correction": correction,
            "n_scans": int(m_df["scan_id"].nunique()) if len(m_df) else 0,
            "methods": sorted(set(m_df["method"].astype(str))) if len(m_df) else [],
            "splits": sorted({str(s) for s in m_df["split"].dropna()}) if len(m_df) else [],
            "units": sorted(set(m_df["units"].astype(str))) if len(m_df) else [],
            "n_failures": len(failures),
            "tables": {k: v.name for k, v in tables.items()},
            "statistics": sorted(statistics),
            "figures": len(figs),
        },
    )
    return ValidationOutputs(out, tables, statistics, stats_files, figs)


def _as_table(data: pa.Table | pd.DataFrame, schema: pa.Schema) -> pa.Table:
    if isinstance(data, pa.Table):
        return data.cast(schema) if not data.schema.equals(schema) else data
    return pa.Table.from_pandas(data[schema.names], schema=schema, preserve_index=False)


def _clinical_frames(biomarkers: pd.DataFrame, scans: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per method: one row per subject with its biomarkers (mean over its scans) and scores."""
    if not len(biomarkers) or "sub" not in scans:
        return {}
    subjects = clinical_improvement(scans.drop_duplicates(["site", "sub"]))
    out = {}
    for method, group in biomarkers.groupby("method"):
        per_sub = group.groupby(["site", "sub"])[list(BIOMARKERS)].mean().reset_index()
        out[str(method)] = per_sub.merge(subjects, on=["site", "sub"], how="left")
    return out


def _correlation_specs(clinical: pd.DataFrame | None) -> pd.DataFrame | None:
    """Figure specs for the paper's correlations: biomarkers vs the discharge scores."""
    if clinical is None or not len(clinical):
        return None
    rows = []
    for r in clinical.itertuples():
        biomarker, _, who = str(r.measure).partition(" (")
        score = str(r.b)
        if score.startswith("discharge_") and not score.endswith("_ais"):
            rows.append(
                {
                    "method": who.rstrip(")"),
                    "biomarker": biomarker,
                    "score": score,
                    "rho": r.statistic,
                    "p": r.p,
                }
            )
    return pd.DataFrame(rows) if rows else None
