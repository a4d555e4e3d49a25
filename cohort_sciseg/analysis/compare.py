"""Two runs over the same scans compared: did the new model (setting, release) change the biomarkers?

:func:`compare_runs` opens two finished run folders (:func:`~cohort_sciseg.analysis.open_run`),
pairs their scans by ``(site, scan_id)`` and writes into ``OUT`` (:class:`CompareLayout`)::

    OUT/tables/scans.parquet       one row per compared scan: mask agreement, biomarkers of A and B
    OUT/tables/unpaired.parquet    the scans not compared, each with its reason
    OUT/tables/biomarkers.parquet  per biomarker x stratum (overall, site=<site>): Wilcoxon, Bland-Altman
    OUT/tables/moved.parquet       the scans whose total lesion volume moved most
    OUT/tables/statistics.parquet  every statistic with its test, options and versions (STATS_COLUMNS)
    OUT/figures/bland_altman_<biomarker>.png|.svg
    OUT/compare.html               the page (links into both runs' QC reports), OUT/assets/ its CSS
    OUT/compare.json               the two runs, the options, the counts and the library versions

Each table is one Parquet file with a ``site`` column (compare tables are small: a
cohort's scans, not its voxels); the schemas below document every column (field
metadata ``description`` and ``unit``, as :mod:`cohort_sciseg.schemas`).

Conventions
-----------
- A is the first run (the reference: the release in use), B the second (the candidate);
  every difference is ``B - A``.
- A scan is compared when both runs have it ``done``; a scan in one run only, failed
  in either, or whose masks cannot be read or lie on different grids is listed in
  ``unpaired`` with its reason (:data:`UNPAIRED_REASONS`), never dropped silently.
- Mask agreement: :func:`cohort_sciseg.validation.metrics.dice` of the cord and of
  the lesion masks (1 when both are empty); lesion-wise F1 of B against A is
  :func:`~cohort_sciseg.validation.metrics.compute_metrics`' corrected
  ``lesion_f1_mr`` (MetricsReloaded-style, a lesion is found at >= 10 % coverage,
  6-connected components; symmetric in A and B; NaN when neither has a lesion).
- Biomarkers: the runs' own per-scan values (``tables/scans``), and the tissue
  bridges of each scan's largest lesion (``tables/lesions``,
  :func:`~cohort_sciseg.validation.cohort.largest_lesion_bridges`).
- Statistics: :func:`~cohort_sciseg.validation.stat_tests.compare_paired`
  (Wilcoxon signed-rank with the pinned options, Bland-Altman bias = mean(B - A),
  limits bias ± 1.96 SD with ``ddof=1``; pairs with a missing value dropped),
  overall and per site. ``../shared/docs/REFERENCE.md`` §4.
- With manual masks: each run's ``cord_dice`` / ``lesion_dice`` against them (the
  values the runs computed) and which run's lesion mask is closer.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from cohort_sciseg._version import __version__
from cohort_sciseg.analysis.compare_tables import (
    BIOMARKER_UNITS,
    COMPARE_BIOMARKERS_SCHEMA,
    COMPARE_SCANS_SCHEMA,
    COMPARE_TABLE_SCHEMAS,
    COMPARED_BIOMARKERS,
    MOVED_SCHEMA,
    UNPAIRED_REASONS,
    UNPAIRED_SCHEMA,
    CompareLayout,
)
from cohort_sciseg.analysis.run import Run, open_run
from cohort_sciseg.errors import AnalysisError, CohortSciSegError, format_error
from cohort_sciseg.io import check_same_geometry, load_nifti, write_json, write_parquet
from cohort_sciseg.validation.cohort import BRIDGE_COLUMNS, largest_lesion_bridges
from cohort_sciseg.validation.metrics import compute_metrics, dice
from cohort_sciseg.validation.stat_tests import (
    STATS_COLUMNS,
    WilcoxonOptions,
    compare_paired,
    library_versions,
)

__all__ = [
    "COMPARED_BIOMARKERS",
    "COMPARE_BIOMARKERS_SCHEMA",
    "COMPARE_SCANS_SCHEMA",
    "COMPARE_TABLE_SCHEMAS",
    "MOVED_SCHEMA",
    "UNPAIRED_REASONS",
    "UNPAIRED_SCHEMA",
    "CompareLayout",
    "CompareResult",
    "biomarker_differences",
    "compare_runs",
    "mask_agreement",
    "moved_scans",
    "pair_scans",
    "run_labels",
]

logger = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class CompareResult:
    """What :func:`compare_runs` computed and wrote."""

    out_dir: Path
    labels: tuple[str, str]  #: the two runs' names (folder names, made distinct)
    scans: pd.DataFrame
    unpaired: pd.DataFrame
    biomarkers: pd.DataFrame
    moved: pd.DataFrame
    statistics: pd.DataFrame
    tables: dict[str, Path]
    figures: tuple[Path, ...]
    page: Path | None


def _fail(what: str, *, expected: str, fix: str, path: Path | None = None) -> AnalysisError:
    return AnalysisError(format_error(what, path=path, expected=expected, fix=fix), path=path)


# ----------------------------------------------------------------------------- pairing


def _failure_messages(failures: pd.DataFrame) -> dict[tuple[str, str], str]:
    """The latest failure message of each (site, scan_id)."""
    if failures.empty or "message" not in failures:
        return {}
    if "timestamp" in failures:
        failures = failures.sort_values("timestamp", kind="stable")
    rows = zip(failures["site"], failures["scan_id"], failures["message"], strict=True)
    return {(str(site), str(scan_id)): str(message) for site, scan_id, message in rows}


def pair_scans(
    scans_a: pd.DataFrame,
    scans_b: pd.DataFrame,
    *,
    failures_a: pd.DataFrame | None = None,
    failures_b: pd.DataFrame | None = None,
    excluded_a: Sequence[str] = (),
    excluded_b: Sequence[str] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Match the scans of two runs by ``(site, scan_id)``.

    Returns
    -------
    paired, unpaired
        ``paired``: the scans done in both runs, one row each, the columns of A and
        B suffixed ``_a`` and ``_b`` (``site``, ``scan_id`` shared), sorted by site
        and scan id. ``unpaired``: the other scans (:data:`UNPAIRED_SCHEMA`'s
        columns), with the reason and the run's failure message as ``detail``.
    """
    keys = ["site", "scan_id"]
    a = scans_a.assign(site=scans_a["site"].astype(str), scan_id=scans_a["scan_id"].astype(str))
    b = scans_b.assign(site=scans_b["site"].astype(str), scan_id=scans_b["scan_id"].astype(str))
    merged = a.merge(b, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True, sort=True)
    done_a, done_b = merged["status_a"] == "done", merged["status_b"] == "done"
    paired = merged[done_a & done_b].drop(columns="_merge").reset_index(drop=True)
    msg_a = _failure_messages(failures_a if failures_a is not None else pd.DataFrame())
    msg_b = _failure_messages(failures_b if failures_b is not None else pd.DataFrame())
    rows = []
    for rec in merged[~(done_a & done_b)].to_dict("records"):
        key = (str(rec["site"]), str(rec["scan_id"]))
        if rec["_merge"] == "right_only":
            reason = "only in run B"
            detail = "excluded from run A" if rec["scan_id"] in excluded_a else "not in run A's tables/scans"
        elif rec["_merge"] == "left_only":
            reason = "only in run A"
            detail = "excluded from run B" if rec["scan_id"] in excluded_b else "not in run B's tables/scans"
        elif rec["status_a"] != "done" and rec["status_b"] != "done":
            reason = "failed in both runs"
            detail = f"A: {msg_a.get(key, rec['status_a'])} | B: {msg_b.get(key, rec['status_b'])}"
        elif rec["status_a"] != "done":
            reason, detail = "failed in run A", msg_a.get(key, str(rec["status_a"]))
        else:
            reason, detail = "failed in run B", msg_b.get(key, str(rec["status_b"]))
        rows.append({
            "scan_id": rec["scan_id"], "site": rec["site"], "status_a": _text(rec.get("status_a")),
            "status_b": _text(rec.get("status_b")), "reason": reason, "detail": detail,
        })  # fmt: skip
    return paired, pd.DataFrame(rows, columns=UNPAIRED_SCHEMA.names)


def _text(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


# ----------------------------------------------------------------------------- masks


def _mask_path(root: Path, rel: Any, what: str, scan_id: str) -> Path:
    if _missing(rel) or not str(rel):
        raise _fail(f"scan {scan_id!r} is done but has no {what} path in tables/scans",
                    expected="a mask path relative to the run folder", path=root,
                    fix="run `cohort-sciseg run` into this folder again (it rewrites the tables)")
    return root / str(rel)


def _load_pair(root_a: Path, root_b: Path, rec: dict[str, Any], column: str, what: str) -> tuple[Any, Any]:
    """The two runs' masks of one structure, checked to lie on the same grid."""
    scan_id = str(rec["scan_id"])
    va = load_nifti(_mask_path(root_a, rec[f"{column}_a"], what, scan_id), scan_id=scan_id)
    vb = load_nifti(_mask_path(root_b, rec[f"{column}_b"], what, scan_id), scan_id=scan_id)
    check_same_geometry(va, vb, what=f"run B's {what}", scan_id=scan_id)
    return va, vb


def mask_agreement(root_a: Path, root_b: Path, rec: dict[str, Any]) -> dict[str, float]:
    """Cord Dice, lesion Dice and lesion-wise F1 of one paired scan (B against A).

    ``rec`` is a row of :func:`pair_scans`' ``paired`` (``cord_seg_path_a``, ...).

    Raises
    ------
    CohortSciSegError
        A mask is missing or unreadable (:class:`~cohort_sciseg.errors.NiftiError`),
        or the runs' masks lie on different grids (:class:`~cohort_sciseg.errors.GeometryError`).
    """
    cord_a, cord_b = _load_pair(root_a, root_b, rec, "cord_seg_path", "cord mask")
    les_a, les_b = _load_pair(root_a, root_b, rec, "lesion_seg_path", "lesion mask")
    metrics = compute_metrics(les_b.data, les_a.data, les_a.voxel_size_mm, lesion_detection=True)
    f1 = metrics.corrected.get("lesion_f1_mr")
    return {
        "cord_dice": dice(cord_b.data, cord_a.data),
        "lesion_dice": dice(les_b.data, les_a.data),
        "lesion_f1": float("nan") if f1 is None else float(f1),
    }


# ----------------------------------------------------------------------------- biomarkers


def _bridges(lesions: pd.DataFrame) -> pd.DataFrame:
    """The tissue bridges of each scan's largest lesion, indexed by (site, scan_id)."""
    index = pd.MultiIndex.from_tuples([], names=["site", "scan_id"])
    if lesions.empty:
        return pd.DataFrame(columns=list(BRIDGE_COLUMNS), index=index, dtype=float)
    cols = ["lesion_id", "volume_mm3", "outside_cord_volume_mm3", *BRIDGE_COLUMNS]
    rows = {}
    for (site, scan_id), group in lesions.groupby(["site", "scan_id"], sort=True):
        table = pa.Table.from_pandas(group[cols], preserve_index=False)
        rows[(str(site), str(scan_id))] = largest_lesion_bridges(table)
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(BRIDGE_COLUMNS)).astype(float)


def _volume_change_pct(a: pd.Series, b: pd.Series) -> pd.Series:
    a, b = a.astype(float), b.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = 100.0 * (b - a) / a
    pct[(a == 0) & (b == 0)] = 0.0
    pct[(a == 0) & (b > 0)] = np.inf
    return pct


def _closer(a: pd.Series, b: pd.Series, has_manual: pd.Series) -> pd.Series:
    x, y = a.astype(float), b.astype(float)
    out = pd.Series(None, index=a.index, dtype=object)
    ok = has_manual & x.notna() & y.notna()
    out[ok & (y > x)] = "B"
    out[ok & (y < x)] = "A"
    out[ok & np.isclose(x, y, rtol=0.0, atol=1e-12)] = "tie"
    return out


def _scan_rows(paired: pd.DataFrame, agreement: pd.DataFrame, run_a: Run, run_b: Run) -> pd.DataFrame:
    """The scans table (:data:`COMPARE_SCANS_SCHEMA`) of the compared scans."""
    keys = list(zip(paired["site"], paired["scan_id"], strict=True))
    index = pd.MultiIndex.from_tuples(keys, names=["site", "scan_id"])
    df = pd.DataFrame({"scan_id": paired["scan_id"], "site": paired["site"],
                       "sub": paired["sub_a"], "ses": paired["ses_a"]})  # fmt: skip
    df = pd.concat([df, agreement.reset_index(drop=True)], axis=1)
    df["n_lesions_a"], df["n_lesions_b"] = paired["n_lesions_a"], paired["n_lesions_b"]
    bridges = {"a": _bridges(run_a.lesions), "b": _bridges(run_b.lesions)}
    for name in COMPARED_BIOMARKERS:
        for side in ("a", "b"):
            if name in BRIDGE_COLUMNS:
                values = bridges[side].reindex(index)[name].to_numpy(float)
            else:
                values = paired[f"{name}_{side}"].to_numpy(float)
            df[f"{name}_{side}"] = values
        df[f"{name}_diff"] = df[f"{name}_b"] - df[f"{name}_a"]
    df["volume_change_pct"] = _volume_change_pct(df["total_volume_mm3_a"], df["total_volume_mm3_b"])
    for side in ("a", "b"):
        df[f"suspect_{side}"] = paired[f"suspect_{side}"].astype("boolean")
    manual = (paired["has_manual_masks_a"].astype(bool) & paired["has_manual_masks_b"].astype(bool))
    df["has_manual_masks"] = manual
    for what in ("cord", "lesion"):
        for side in ("a", "b"):
            df[f"{what}_dice_manual_{side}"] = paired[f"{what}_dice_{side}"].astype(float).where(manual)
    df["closer_to_manual"] = _closer(df["lesion_dice_manual_a"], df["lesion_dice_manual_b"], manual)
    return df[COMPARE_SCANS_SCHEMA.names]


def biomarker_differences(
    scans: pd.DataFrame,
    *,
    labels: tuple[str, str] = ("A", "B"),
    options: WilcoxonOptions | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per biomarker, overall and per site: Wilcoxon signed-rank and Bland-Altman of B vs A.

    Parameters
    ----------
    scans
        The compare scans table (:data:`COMPARE_SCANS_SCHEMA`: ``<biomarker>_a``, ``_b``).
    labels
        Names of the runs in the statistics rows (``a``, ``b``).
    options
        Wilcoxon options (default: the package's pinned ones).

    Returns
    -------
    summary, statistics
        ``summary``: :data:`COMPARE_BIOMARKERS_SCHEMA`'s columns; ``statistics``: the
        :func:`~cohort_sciseg.validation.stat_tests.compare_paired` rows it is read
        from (:data:`STATS_COLUMNS`, with options and versions).
    """
    rows, blocks = [], []
    strata: list[tuple[str, str | None, pd.DataFrame]] = [("overall", None, scans)]
    strata += [(f"site={s}", str(s), g) for s, g in scans.groupby("site", sort=True)]
    for name in COMPARED_BIOMARKERS:
        for stratum, site, sel in strata:
            a, b = sel[f"{name}_a"].astype(float), sel[f"{name}_b"].astype(float)
            block = compare_paired(a, b, measure=name, labels=labels, options=options, stratum=stratum)
            blocks.append(block)
            wil = block[block["test"] == "scipy.stats.wilcoxon"].iloc[0]
            ba = block[block["test"] == "bland_altman"].iloc[0]
            both = a.notna() & b.notna()
            notes = [str(n) for n in block["note"] if n and "D'Agostino" not in str(n)]
            rows.append({
                "biomarker": name, "unit": BIOMARKER_UNITS[name], "stratum": stratum, "site": site,
                "n": int(wil["n"]), "n_changed": int((a[both] != b[both]).sum()),
                "mean_a": float(a[both].mean()) if both.any() else math.nan,
                "mean_b": float(b[both].mean()) if both.any() else math.nan,
                "median_difference": float(wil["estimate"]), "wilcoxon_statistic": float(wil["statistic"]),
                "wilcoxon_p": float(wil["p"]), "bias": float(ba["estimate"]),
                "loa_lower": float(ba["lower"]), "loa_upper": float(ba["upper"]),
                "note": "; ".join(dict.fromkeys(notes)),
            })  # fmt: skip
    stats = pd.concat(blocks, ignore_index=True) if blocks else pd.DataFrame(columns=list(STATS_COLUMNS))
    return pd.DataFrame(rows, columns=COMPARE_BIOMARKERS_SCHEMA.names), stats


def moved_scans(scans: pd.DataFrame, *, top: int = 10) -> pd.DataFrame:
    """The ``top`` scans whose total lesion volume changed most, relatively (:data:`MOVED_SCHEMA`).

    Ordered by ``|volume_change_pct|`` (largest first; ``inf`` when only B has lesion
    volume), ties by scan id then site; scans whose volume did not change (or is
    missing) are never listed, so two identical runs move no scan.
    """
    change = scans["volume_change_pct"].astype(float)
    keep = change.notna() & (change != 0)
    sel = scans[keep].assign(_abs=change[keep].abs().to_numpy())
    sel = sel.sort_values(["_abs", "scan_id", "site"], ascending=[False, True, True], kind="stable")
    sel = sel.head(top).reset_index(drop=True)
    sel["rank"] = np.arange(1, len(sel) + 1, dtype=np.int32)
    return sel[MOVED_SCHEMA.names]


# ----------------------------------------------------------------------------- the command


def run_labels(root_a: Path, root_b: Path) -> tuple[str, str]:
    """Names of the two runs: their folder names, ``A: name`` / ``B: name`` when they are equal."""
    a, b = root_a.name or str(root_a), root_b.name or str(root_b)
    return (f"A: {a}", f"B: {b}") if a == b else (a, b)


def _check_out(out: Path, roots: Sequence[Path]) -> None:
    target = out.absolute()
    for root in roots:
        if target == root or root in target.parents:
            raise _fail("the output folder is a run folder or inside one", path=out,
                        expected="a folder outside both runs", fix="pass another -o, e.g. compare-A-vs-B")
    if target.exists() and not target.is_dir():
        raise _fail("the output exists and is not a folder", path=out, expected="a folder",
                    fix="pass another -o")


def _frame_table(df: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)


def _run_info(run: Run, label: str) -> dict[str, Any]:
    scans = run.scans
    return {
        "path": os.fspath(run.root), "label": label,
        "segmenters": sorted({str(s) for s in scans["segmenter"].dropna()}),
        "model_checksums": sorted({str(s) for s in scans["model_checksum"].dropna()}),
        "settings": run.summary.get("settings"),
        "scans": len(scans), "done": int((scans["status"] == "done").sum()),
    }  # fmt: skip


def compare_runs(
    run_a: str | os.PathLike[str],
    run_b: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    top: int = 10,
    options: WilcoxonOptions | None = None,
    figures: bool = True,
    page: bool = True,
) -> CompareResult:
    """Compare two finished runs over the same scans; write the tables, figures and page into ``out_dir``.

    Parameters
    ----------
    run_a, run_b
        The run folders (``-o`` of ``cohort-sciseg run``): A the reference, B the candidate.
    out_dir
        Output folder (created), outside both runs.
    top
        Number of scans listed as moved most (>= 1).
    options
        Wilcoxon options (default: :class:`~cohort_sciseg.validation.stat_tests.WilcoxonOptions`).
    figures, page
        Write the Bland-Altman figures, the HTML page.

    Raises
    ------
    AnalysisError
        A run folder is not a finished run, ``top`` is not positive, the output is
        inside a run, or no scan is done in both runs.
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise _fail(f"top is {top!r}", expected="a whole number >= 1", fix="pass --top 10, for instance")
    a, b = open_run(run_a), open_run(run_b)
    out = Path(out_dir)
    _check_out(out, (a.root, b.root))
    labels = run_labels(a.root, b.root)
    excluded = [[str(i) for i in r.summary.get("excluded", {}).get("scan_ids", [])] for r in (a, b)]
    paired, unpaired = pair_scans(a.scans, b.scans, failures_a=a.failures, failures_b=b.failures,
                                  excluded_a=excluded[0], excluded_b=excluded[1])  # fmt: skip
    if paired.empty:
        raise _fail(
            f"no scan is done in both runs ({len(a.scans)} scan(s) in A, {len(b.scans)} in B, "
            f"{len(unpaired)} unpaired)", path=b.root,
            expected="two runs over the same scans (the same site and scan ids)",
            fix="compare runs of the same BIDS datasets (site labels come from the dataset folder names)",
        )  # fmt: skip
    agreement, problems = [], []
    for rec in paired.to_dict("records"):
        try:
            agreement.append(mask_agreement(a.root, b.root, rec))
        except (CohortSciSegError, OSError) as exc:
            logger.warning("scan %s not compared: %s", rec["scan_id"], exc)
            agreement.append({})
            problems.append({"scan_id": rec["scan_id"], "site": rec["site"], "status_a": "done",
                             "status_b": "done", "reason": "masks not comparable", "detail": str(exc)})  # fmt: skip
    ok = np.array([bool(x) for x in agreement], dtype=bool)
    paired = paired[ok].reset_index(drop=True)
    agree = pd.DataFrame([x for x in agreement if x], columns=["cord_dice", "lesion_dice", "lesion_f1"])
    unpaired = pd.concat([unpaired, pd.DataFrame(problems, columns=UNPAIRED_SCHEMA.names)], ignore_index=True)
    unpaired = _sort_unpaired(unpaired)
    scans = _scan_rows(paired, agree, a, b)
    summary, stats = biomarker_differences(scans, labels=labels, options=options)
    moved = moved_scans(scans, top=top)
    return _write(out, a, b, labels, scans, unpaired, summary, moved, stats, top=top, options=options,
                  figures=figures, page=page)  # fmt: skip


def _link_from_reports(page: Path, runs: tuple[Path, Path], labels: tuple[str, str]) -> None:
    """List the page on the Cohort page of each run's QC report (runs without a report are left alone)."""
    from cohort_sciseg.report import build_report
    from cohort_sciseg.report.comparisons import register_comparison

    for run, role in zip(runs, "AB", strict=True):
        if register_comparison(run, page, title=f"{labels[1]} (B) vs {labels[0]} (A)", role=role) is not None:
            build_report(run, render_missing=False)  # the index pages only: no scan page is drawn


def _sort_unpaired(df: pd.DataFrame) -> pd.DataFrame:
    order = {r: i for i, r in enumerate(UNPAIRED_REASONS)}
    return (df.assign(_o=df["reason"].map(order))
            .sort_values(["_o", "site", "scan_id"], kind="stable").drop(columns="_o").reset_index(drop=True))


def _write(
    out: Path, a: Run, b: Run, labels: tuple[str, str], scans: pd.DataFrame, unpaired: pd.DataFrame,
    summary: pd.DataFrame, moved: pd.DataFrame, stats: pd.DataFrame, *, top: int,
    options: WilcoxonOptions | None, figures: bool, page: bool,
) -> CompareResult:  # fmt: skip
    layout = CompareLayout(out)
    (out / CompareLayout.TABLES).mkdir(parents=True, exist_ok=True)
    frames = {"scans": scans, "unpaired": unpaired, "biomarkers": summary, "moved": moved}
    tables = {n: write_parquet(layout.table(n), _frame_table(df, COMPARE_TABLE_SCHEMAS[n]))
              for n, df in frames.items()}  # fmt: skip
    stats = stats.reindex(columns=list(STATS_COLUMNS))
    tables["statistics"] = write_parquet(layout.table("statistics"),
                                         pa.Table.from_pandas(stats, preserve_index=False))
    written: list[Path] = []
    if figures:
        from cohort_sciseg.report.compare_page import write_compare_figures

        units = {n: BIOMARKER_UNITS[n] for n in COMPARED_BIOMARKERS}
        written = write_compare_figures(scans, COMPARED_BIOMARKERS, layout.figures, labels=labels, units=units)
    record = {
        "tool": f"cohort-sciseg {__version__}",
        "run_a": _run_info(a, labels[0]), "run_b": _run_info(b, labels[1]),
        "options": {"top": top, "difference": "B - A", "wilcoxon": (options or WilcoxonOptions()).as_dict(),
                    "lesion_f1": "compute_metrics corrected lesion_f1_mr (>= 10 % coverage, 6-connected)"},
        "counts": {"compared": len(scans), "unpaired": len(unpaired),
                   **{r: int((unpaired["reason"] == r).sum()) for r in UNPAIRED_REASONS}},
        "versions": library_versions(),
        "tables": {n: os.path.relpath(p, out) for n, p in tables.items()},
    }  # fmt: skip
    write_json(layout.record, record)
    page_path = None
    if page:
        from cohort_sciseg.report.compare_page import write_compare_page

        page_path = write_compare_page(
            layout.page, record=record, scans=scans, unpaired=unpaired, biomarkers=summary, moved=moved,
            figures=[p for p in written if p.suffix == ".png"], runs=(a.root, b.root),
        )
        _link_from_reports(page_path, (a.root, b.root), labels)
    return CompareResult(out, labels, scans, unpaired, summary, moved, stats, tables, tuple(written), page_path)
