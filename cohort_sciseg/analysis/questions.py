"""The common questions about a finished run, as functions of its tables (pandas DataFrames).

:class:`~cohort_sciseg.analysis.Run` calls these with its tables; they take plain
DataFrames, so they also serve tables read some other way. Every statistic comes
from :mod:`cohort_sciseg.validation` (the functions the validation study uses, with
their conventions, ``../shared/docs/REFERENCE.md`` §4-5): nothing here re-implements
a test.

- :func:`biomarker_agreement`: manual vs predicted biomarkers (normality, Wilcoxon,
  Bland-Altman, Spearman, Pearson, least-squares line).
- :func:`clinical_correlations`: Spearman of biomarkers with clinical scores.
- :func:`site_summary`, :func:`excluded_scans`, :func:`participants_table`,
  :func:`table1`: counts, exclusions, the participants and the cohort's Table 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from cohort_sciseg.errors import AnalysisError, format_error
from cohort_sciseg.records import BIOMARKERS_SCHEMA, LESIONS_SCHEMA, SCANS_SCHEMA, scans_from_table
from cohort_sciseg.validation.clinical import BIOMARKERS, clinical_improvement
from cohort_sciseg.validation.clinical import clinical_correlations as _correlations
from cohort_sciseg.validation.cohort import BRIDGE_COLUMNS
from cohort_sciseg.validation.stat_tests import as_floats, average_over_splits, compare_paired
from cohort_sciseg.validation.study import flat_scans
from cohort_sciseg.validation.table1 import cohort_table

__all__ = [
    "AGREEMENT_COLUMNS",
    "BRIDGE_BIOMARKERS",
    "EXCLUSION_REASONS",
    "agreement_statistics",
    "biomarker_agreement",
    "clinical_correlations",
    "excluded_scans",
    "participants_table",
    "predicted_biomarkers",
    "site_summary",
    "table1",
]

#: Tissue-bridge columns compared like the biomarkers when a biomarkers table has them.
BRIDGE_BIOMARKERS = BRIDGE_COLUMNS

#: Columns of :func:`biomarker_agreement` (one row per method x biomarker x stratum).
AGREEMENT_COLUMNS = (
    "method", "biomarker", "unit", "stratum", "n", "mean_manual", "mean_predicted",
    "normality_p_manual", "normality_p_predicted", "normality_p_difference",
    "wilcoxon_statistic", "wilcoxon_p", "median_difference", "bias", "loa_lower", "loa_upper",
    "spearman_rho", "spearman_p", "pearson_r", "pearson_p", "slope", "intercept", "note",
)  # fmt: skip

#: ``reason`` values of :func:`excluded_scans`, in the order rows are listed.
EXCLUSION_REASONS = (
    "excluded from the run",
    "discovery problem",
    "failed",
    "validation excluded",
    "validation incomplete",
    "suspect",
)

_MISSING = ("", "n/a")


def _fail(what: str, *, expected: str, fix: str) -> AnalysisError:
    return AnalysisError(format_error(what, expected=expected, fix=fix))


def _units(names: Iterable[str]) -> dict[str, str]:
    fields = {f.name: f for f in (*BIOMARKERS_SCHEMA, *LESIONS_SCHEMA)}
    out = {}
    for name in names:
        meta = fields[name].metadata if name in fields else None
        if meta and b"unit" in meta:
            out[name] = meta[b"unit"].decode()
    return out


# ----------------------------------------------------------------------------- agreement


def _agreement_columns(biomarkers: pd.DataFrame) -> list[str]:
    """The paper's biomarkers, and the tissue bridges where the table has values for them."""
    extra = [c for c in BRIDGE_BIOMARKERS if c in biomarkers and biomarkers[c].notna().any()]
    return [*BIOMARKERS, *extra]


def _methods(biomarkers: pd.DataFrame, method: str | None) -> list[str]:
    found = (
        sorted({str(m) for m in biomarkers["method"].dropna()} - {"manual"})
        if len(biomarkers)
        else []
    )
    if method is None:
        return found
    if method not in found:
        raise _fail(
            f"no predicted biomarkers of method {method!r} in the biomarkers table",
            expected=f"one of {found}" if found else "a run whose scans have manual masks",
            fix="pass one of the listed methods, or method=None for all of them",
        )
    return [method]


def _pairs(biomarkers: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Biomarkers averaged over splits, one row per (scan, site), columns (biomarker, method)."""
    values = [*columns, *(["n_lesions"] if "n_lesions" in biomarkers else [])]
    keep = [c for c in biomarkers.columns if c in (*values, "scan_id", "site", "method", "split")]
    averaged = average_over_splits(biomarkers[keep], value=values)
    return averaged.pivot_table(
        index=["scan_id", "site"], columns="method", values=list(columns), aggfunc="mean"
    )


def _agreement_blocks(
    biomarkers: pd.DataFrame, method: str | None, by_site: bool
) -> Iterator[tuple[str, str, str, pd.DataFrame, pd.DataFrame]]:
    """``(method, biomarker, stratum, pairs, compare_paired rows)`` of each comparison, in order."""
    if not len(biomarkers):
        return
    methods = _methods(biomarkers, method)
    columns = _agreement_columns(biomarkers)
    wide = _pairs(biomarkers, columns)
    for m in methods:
        for name in columns:
            if (name, "manual") not in wide or (name, m) not in wide:
                continue
            pair = wide[[(name, "manual"), (name, m)]].reset_index()
            pair.columns = pd.Index(["scan_id", "site", "manual", "predicted"])
            strata = [("overall", pair)]
            if by_site:
                strata += [(f"site={s}", g) for s, g in pair.groupby("site", sort=True)]
            for stratum, sel in strata:
                rows = compare_paired(
                    sel["manual"],
                    sel["predicted"],
                    measure=name,
                    labels=("manual", m),
                    stratum=stratum,
                )
                yield m, name, stratum, sel, rows


def agreement_statistics(
    biomarkers: pd.DataFrame, *, method: str | None = None, by_site: bool = False
) -> pd.DataFrame:
    """Manual vs predicted biomarkers as rows of the statistics table (``STATS_COLUMNS``).

    The rows :func:`~cohort_sciseg.validation.stat_tests.compare_paired` gives for
    each method and biomarker (normality of manual, predicted and their difference;
    Wilcoxon signed-rank; Bland-Altman; Spearman; Pearson), overall and, with
    ``by_site``, per site (``stratum = "site=<site>"``): with ``by_site`` the same
    table as the validation study's ``agreement`` (``validation/stats/agreement.parquet``).

    Parameters
    ----------
    biomarkers
        The biomarkers table (``BIOMARKERS_SCHEMA``: one row per scan x method x
        split, ``method = "manual"`` for the manual masks); values are averaged over
        splits first.
    method
        The predicted method to compare (default: every one in the table).
    by_site
        Add the per-site rows.
    """
    parts = [rows for *_, rows in _agreement_blocks(biomarkers, method, by_site)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def biomarker_agreement(
    biomarkers: pd.DataFrame, *, method: str | None = None, by_site: bool = False
) -> pd.DataFrame:
    """Manual vs predicted biomarkers, one row per method x biomarker x stratum.

    Columns :data:`AGREEMENT_COLUMNS`: ``n`` complete pairs; means; D'Agostino-Pearson
    p of manual, predicted and predicted - manual (NaN below 8 values); Wilcoxon
    signed-rank statistic, p and median of predicted - manual; Bland-Altman
    ``bias`` = mean(predicted - manual) and limits ``bias ± 1.96 SD`` (``ddof=1``);
    Spearman rho and Pearson r with their p; ``slope`` and ``intercept`` of the
    least-squares line predicted = slope x manual + intercept (as the validation's
    regression figure draws it); the notes of the tests. ``unit`` is the
    biomarker's unit. Biomarkers: total lesion volume (mm3), total length (mm),
    maximal axial damage ratio, and the tissue bridges when the table has them.
    The statistics are the rows of :func:`agreement_statistics` (the package's tests).
    """
    units = _units(_agreement_columns(biomarkers)) if len(biomarkers) else {}
    rows = [
        _agreement_row(block, m, name, stratum, pair, units)
        for m, name, stratum, pair, block in _agreement_blocks(biomarkers, method, by_site)
    ]
    return pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))


def _agreement_row(
    block: pd.DataFrame,
    method: str,
    measure: str,
    stratum: str,
    pair: pd.DataFrame,
    units: dict[str, str],
) -> dict[str, object]:
    def pick(test: str, a: str | None = None) -> pd.Series:
        sel = block[block["test"] == test]
        return (sel if a is None else sel[sel["a"] == a]).iloc[0]

    x, y = as_floats(pair["manual"]), as_floats(pair["predicted"])
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    slope = intercept = float("nan")
    if x.size >= 2 and np.ptp(x) > 0:
        slope, intercept = (float(v) for v in np.polyfit(x, y, 1))
    wil, ba = pick("scipy.stats.wilcoxon"), pick("bland_altman")
    sp, pe = pick("scipy.stats.spearmanr"), pick("scipy.stats.pearsonr")
    norm = [pick("scipy.stats.normaltest", a) for a in ("manual", method, f"{method} - manual")]
    notes = [str(n) for n in block["note"] if n]
    return {
        "method": method, "biomarker": measure, "unit": units.get(measure, ""), "stratum": stratum,
        "n": int(wil["n"]), "mean_manual": float(np.mean(x)) if x.size else float("nan"),
        "mean_predicted": float(np.mean(y)) if y.size else float("nan"),
        "normality_p_manual": norm[0]["p"], "normality_p_predicted": norm[1]["p"],
        "normality_p_difference": norm[2]["p"], "wilcoxon_statistic": wil["statistic"],
        "wilcoxon_p": wil["p"], "median_difference": wil["estimate"], "bias": ba["estimate"],
        "loa_lower": ba["lower"], "loa_upper": ba["upper"], "spearman_rho": sp["estimate"],
        "spearman_p": sp["p"], "pearson_r": pe["estimate"], "pearson_p": pe["p"],
        "slope": slope, "intercept": intercept, "note": "; ".join(dict.fromkeys(notes)),
    }  # fmt: skip


# ----------------------------------------------------------------------------- participants, clinical


def participants_table(discovered: pd.DataFrame) -> pd.DataFrame:
    """One row per (site, participant_id) from the discovered scans' ``participant`` maps.

    Columns ``site``, ``participant_id``, then the ``participants.tsv`` columns in
    the order first seen. Values stay strings; ``n/a`` and empty cells become
    missing; a column whose present values all parse as numbers becomes numeric.
    A subject without a ``participants.tsv`` row gets ``participant_id = sub-<sub>``.
    A ``participants.tsv`` column named ``site`` is kept as ``participant_site``
    (``site`` is the run's site label).
    """
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for site, sub, pairs in zip(
        discovered["site"], discovered["sub"], discovered["participant"], strict=True
    ):
        values = {str(k): str(v) for k, v in (pairs if pairs is not None else [])}
        pid = values.pop("participant_id", "") or f"sub-{sub}"
        if (str(site), pid) in rows:
            continue
        row: dict[str, object] = {"site": str(site), "participant_id": pid}
        for key, value in values.items():
            row["participant_site" if key == "site" else key] = (
                None if value.strip().lower() in _MISSING else value
            )
        rows[(str(site), pid)] = row
    df = pd.DataFrame(list(rows.values()), columns=_first_seen(rows.values()))
    for col in df.columns[2:]:
        converted = pd.to_numeric(df[col], errors="coerce")
        if converted.notna().sum() == df[col].notna().sum() and df[col].notna().any():
            df[col] = converted
    df = df.astype({"site": "str", "participant_id": "str"})
    return df.sort_values(["site", "participant_id"], kind="stable", ignore_index=True)


def _first_seen(rows: Iterable[dict[str, object]]) -> list[str]:
    names: dict[str, None] = {"site": None, "participant_id": None}
    for row in rows:
        names.update(dict.fromkeys(row))
    return list(names)


def _subjects(participants: pd.DataFrame) -> pd.DataFrame:
    """Participants with their improvements and a ``subject`` key ``<site>/<sub>``."""
    subjects = clinical_improvement(participants)
    sub = subjects["participant_id"].astype(str).str.removeprefix("sub-")
    return subjects.assign(subject=subjects["site"].astype(str) + "/" + sub)


def _score_columns(subjects: pd.DataFrame, scores: Sequence[str] | None) -> list[str]:
    available = [
        c
        for c in subjects.columns
        if c.startswith(("initial_", "discharge_")) or c.endswith(("_improvement", "_improved"))
    ]
    if scores is None:
        return [c for c in available if subjects[c].notna().any()]
    unknown = [s for s in scores if s not in subjects.columns]
    if unknown:
        raise _fail(
            f"clinical score column(s) {unknown} not among the participants' columns",
            expected=f"some of {sorted(map(str, subjects.columns[2:]))}",
            fix="pass columns of participants.tsv (or *_improvement / *_improved), or scores=None",
        )
    return list(scores)


def clinical_correlations(
    biomarkers: pd.DataFrame,
    participants: pd.DataFrame,
    *,
    scores: Sequence[str] | None = None,
    method: str | None = None,
) -> pd.DataFrame:
    """Spearman correlation of each biomarker (per method) with each clinical score, per subject.

    Parameters
    ----------
    biomarkers
        One row per scan x method (the biomarkers table, or the scans table's
        predicted biomarkers with a ``method`` column), with ``site`` and ``sub``;
        averaged over splits, then over each subject's scans
        (:func:`cohort_sciseg.validation.clinical.clinical_correlations`).
    participants
        :func:`participants_table`; improvements (discharge - initial) and MDC
        ``*_improved`` columns are added (REFERENCE.md §5).
    scores
        Score columns (default: every ``initial_*``, ``discharge_*``, ``*_improvement``
        and ``*_improved`` column with a value).
    method
        Only this method (``"manual"`` or a predicted one); default all.

    Returns
    -------
    pandas.DataFrame
        ``method``, ``biomarker``, ``score``, then the statistics table's columns;
        ``n`` counts the subjects with both values, ``estimate`` is rho.
    """
    if not len(biomarkers) or not len(participants):
        return pd.DataFrame()
    subjects = _subjects(participants)
    score_cols = _score_columns(subjects, scores)
    found = sorted({str(m) for m in biomarkers["method"].dropna()})
    if method is not None and method not in found:
        raise _fail(
            f"no biomarkers of method {method!r}",
            expected=f"one of {found}",
            fix="pass one of the listed methods, or method=None for all of them",
        )
    bio = average_over_splits(
        biomarkers, value=[c for c in (*BIOMARKERS, "n_lesions") if c in biomarkers]
    )
    bio = bio.assign(subject=bio["site"].astype(str) + "/" + bio["sub"].astype(str))
    parts = []
    for m in [method] if method is not None else found:
        res = _correlations(
            bio[bio["method"].astype(str) == m], subjects, scores=score_cols, key="subject"
        )
        parts.append(res.assign(method=m, biomarker=res["a"], score=res["b"]))
    out = pd.concat(parts, ignore_index=True)
    return out[
        [
            "method",
            "biomarker",
            "score",
            *[c for c in out.columns if c not in ("method", "biomarker", "score")],
        ]
    ]


def predicted_biomarkers(scans: pd.DataFrame) -> pd.DataFrame:
    """The predicted biomarkers of every done, not suspect scan (tables/scans), as biomarkers rows.

    ``method`` is the scan's segmenter; scans without manual masks count too, unlike
    the biomarkers table (the validation's scans only).
    """
    ok = (scans["status"] == "done") & ~scans["suspect"].astype("boolean").fillna(False).astype(
        bool
    )
    cols = ["scan_id", "site", "sub", "n_lesions", *BIOMARKERS]
    return scans.loc[ok, cols].assign(method=scans.loc[ok, "segmenter"]).reset_index(drop=True)


# ----------------------------------------------------------------------------- cohort


def site_summary(scans: pd.DataFrame, lesions: pd.DataFrame) -> pd.DataFrame:
    """Per site: scan counts, lesions, median biomarkers and median Dice.

    Columns ``site``, ``scans_total``, ``scans_done``, ``scans_failed``,
    ``scans_suspect``, ``scans_validated`` (``validation == "validated"``),
    ``n_lesions`` (rows of the lesions table), ``median_total_volume_mm3`` and
    ``median_total_length_mm`` (done scans; a scan without lesion counts as 0),
    ``median_cord_dice`` and ``median_lesion_dice`` (validated scans; lesion Dice is
    undefined, NaN, for a scan without lesion in both masks).
    """
    sites = sorted(
        {*scans["site"].astype(str), *lesions.get("site", pd.Series(dtype=str)).astype(str)}
    )
    site = scans["site"].astype(str)
    done = scans["status"] == "done"
    validated = scans["validation"] == "validated"
    suspect = scans["suspect"].astype("boolean").fillna(False).astype(bool)

    def per_site(values: pd.Series, how: Literal["sum", "median", "size"]) -> pd.Series:
        g = values.groupby(site.loc[values.index], sort=True)
        res = g.size() if how == "size" else g.sum() if how == "sum" else g.median()
        return res.reindex(sites, fill_value=0 if how != "median" else np.nan)

    out = pd.DataFrame(
        {
            "scans_total": per_site(scans["scan_id"], "size"),
            "scans_done": per_site(done, "sum"),
            "scans_failed": per_site(scans["status"] == "failed", "sum"),
            "scans_suspect": per_site(suspect, "sum"),
            "scans_validated": per_site(validated, "sum"),
            "n_lesions": lesions.groupby(lesions["site"].astype(str))
            .size()
            .reindex(sites, fill_value=0)
            if len(lesions)
            else pd.Series(0, index=sites),
            "median_total_volume_mm3": per_site(scans.loc[done, "total_volume_mm3"], "median"),
            "median_total_length_mm": per_site(scans.loc[done, "total_length_mm"], "median"),
            "median_cord_dice": per_site(scans.loc[validated, "cord_dice"], "median"),
            "median_lesion_dice": per_site(scans.loc[validated, "lesion_dice"], "median"),
        },
        index=pd.Index(sites, name="site", dtype="str"),
    )
    out = out.astype({c: "int64" for c in out.columns if c.startswith(("scans_", "n_"))})
    out = out.reset_index()
    out.attrs["units"] = {"median_total_volume_mm3": "mm3", "median_total_length_mm": "mm"}
    return out


def table1(discovered: pd.DataFrame, *, by: str = "site") -> pd.DataFrame:
    """The cohort's Table 1 (:func:`cohort_sciseg.validation.table1.cohort_table`) by ``by``.

    ``discovered`` is the discovered-scans table (``SCANS_SCHEMA``); ``by`` any column
    of :func:`~cohort_sciseg.validation.study.flat_scans` (a scan field, a
    ``participants.tsv`` or sidecar column). Subjects are counted once per
    (``by``, ``sub``).
    """
    names = [n for n in SCANS_SCHEMA.names if n in discovered.columns]
    table = pa.Table.from_pandas(discovered[names], schema=pa.schema([SCANS_SCHEMA.field(n) for n in names]),
                                 preserve_index=False)  # fmt: skip
    flat = flat_scans(scans_from_table(table))
    if by not in flat.columns:
        raise _fail(
            f"cannot group Table 1 by {by!r}: not a scan, participant or sidecar column",
            expected=f"one of {sorted(map(str, flat.columns))}",
            fix="pass one of the listed columns (default: site)",
        )
    return cohort_table(flat, site=by)


# ----------------------------------------------------------------------------- exclusions


def excluded_scans(
    scans: pd.DataFrame, failures: pd.DataFrame, *, excluded_ids: Sequence[str] = ()
) -> pd.DataFrame:
    """The scans an analysis leaves out, and why: one row per scan and reason.

    Reasons (:data:`EXCLUSION_REASONS`): ``excluded from the run`` (``excluded_ids``:
    the latest run's exclusions, e.g. scans rated fail or artifact in the QC
    report), ``discovery problem`` (a failure found before any scan ran),
    ``failed`` (``status == "failed"``; detail: the failure message),
    ``validation excluded`` (manual masks unusable; detail: the validation failure
    message), ``validation incomplete`` (one manual mask missing; detail: the
    manual-mask notes), ``suspect`` (detail: ``suspect_reasons``).

    Returns
    -------
    pandas.DataFrame
        Columns ``scan_id``, ``site``, ``reason``, ``detail``, sorted by site, scan and
        reason.
    """
    rows: list[tuple[str, str, str, str]] = []
    site_of = dict(zip(scans["scan_id"].astype(str), scans["site"].astype(str), strict=True))
    for sid in excluded_ids:
        site = site_of.get(sid) or sid.split("_", 1)[0].removeprefix("site-")
        rows.append(
            (sid, site, EXCLUSION_REASONS[0], "left out of the latest run (its exclusion list)")
        )
    rows += _failure_rows(scans, failures)
    for r in scans[scans["validation"] == "incomplete"].itertuples():
        notes = [n for n in _text(r.notes).split("; ") if n.startswith("manual")]
        rows.append(
            (
                str(r.scan_id),
                str(r.site),
                EXCLUSION_REASONS[4],
                "; ".join(notes) or "one manual mask missing",
            )
        )
    suspect = scans["suspect"].astype("boolean").fillna(False).astype(bool)
    for r in scans[suspect].itertuples():
        rows.append((str(r.scan_id), str(r.site), EXCLUSION_REASONS[5], _text(r.suspect_reasons)))
    out = pd.DataFrame(rows, columns=["scan_id", "site", "reason", "detail"], dtype="str")
    order = out["reason"].map({r: i for i, r in enumerate(EXCLUSION_REASONS)})
    out = out.assign(_order=order).sort_values(["site", "scan_id", "_order"], kind="stable")
    return out.drop(columns="_order").reset_index(drop=True)


def _text(value: object) -> str:
    """``value`` as text; a missing value (None, NaN, NA) as ``""``."""
    return (
        "" if value is None or (not isinstance(value, str) and bool(pd.isna(value))) else str(value)
    )


def _failure_rows(scans: pd.DataFrame, failures: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    """Rows for failed scans, discovery problems and validation exclusions (messages from ``failures``)."""
    rows = []
    last = (
        failures.sort_values(["attempt", "timestamp"], kind="stable").drop_duplicates(
            ["scan_id", "stage"], keep="last"
        )
        if len(failures)
        else failures
    )
    validation = last[last["stage"] == "validation"] if len(last) else last
    other = last[last["stage"] != "validation"] if len(last) else last
    message = dict(zip(other.get("scan_id", []), other.get("message", []), strict=True))
    excluded_message = dict(
        zip(validation.get("scan_id", []), validation.get("message", []), strict=True)
    )
    for r in scans[scans["status"] == "failed"].itertuples():
        rows.append(
            (str(r.scan_id), str(r.site), EXCLUSION_REASONS[2], _text(message.get(r.scan_id)))
        )
    for r in scans[scans["validation"] == "excluded"].itertuples():
        detail = excluded_message.get(
            r.scan_id, "manual masks unusable as a reference (see tables/failures)"
        )
        rows.append((str(r.scan_id), str(r.site), EXCLUSION_REASONS[3], _text(detail)))
    known = set(scans["scan_id"].astype(str))
    for r in other.itertuples() if len(other) else ():
        if str(r.scan_id) not in known:
            reason = EXCLUSION_REASONS[1] if r.stage == "discover" else EXCLUSION_REASONS[2]
            rows.append((str(r.scan_id), _text(r.site), reason, _text(r.message)))
    return rows
