"""The static, offline HTML QC report of a run (``OUT_DIR/report/``).

Layout::

    report/index.html            every scan: a virtual table (sort, filter, search, keyboard)
    report/failures.html         each failed scan with its error and fix
    report/cohort.html           Table 1, validation statistics and figures
    report/scans/<site>/<scan_id>.html           one page per scan ...
    report/scans/<site>/<scan_id>/*.png          ... and its reportlets
    report/data/index.js         the index's rows (one file, loaded as a script: works from file://)
    report/data/meta.js          the report's id (the key of the ratings kept in the browser)
    report/assets/               CSS and JavaScript

A scan's page and images are made once, by the worker that processed the scan
(:func:`write_scan_page`); :func:`build_report` then writes the pages about the
whole cohort from the run's tables. Adding scans (a resumed run) writes the new
scans' pages and rebuilds the index, failures and cohort pages only: no work per
scan grows with the size of the cohort (SCT's QC rewrites its whole index for
every scan, O(N^2), and loses entries in parallel runs: SCT issue #5275).
A scan's page carries a stamp of the scan's key (``<scan_id>/<key>.key``): a page
whose stamp matches the scans table is current and never rewritten.

Every string from the data is escaped (Jinja2 autoescaping in the templates; the
index data is JSON read by scripts that set ``textContent`` only).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from cohort_sciseg._version import __version__
from cohort_sciseg.errors import CohortSciSegError, ReportError, format_error
from cohort_sciseg.io import RunLayout, atomic_write_text, read_partitioned_table, write_json
from cohort_sciseg.records import scans_from_table
from cohort_sciseg.report.comparisons import comparison_links
from cohort_sciseg.report.reportlets import Reportlet, render_reportlets

__all__ = [
    "INDEX_COLUMNS",
    "REPORT_DIRNAME",
    "ReportSummary",
    "build_report",
    "latest_run_record",
    "scan_flags",
    "scan_page_href",
    "write_scan_page",
]

logger = logging.getLogger(__name__)

REPORT_DIRNAME = RunLayout.REPORT

#: The columns of ``data/index.js`` (one row per scan).
INDEX_COLUMNS = (
    "scan_id", "site", "sub", "ses", "acq", "orientation", "status", "n_lesions", "total_volume_mm3",
    "max_axial_damage_ratio", "cord_dice", "lesion_dice", "lesion_uncertainty", "flags", "href",
)

#: Robust z-score (median and MAD of the site's scans) above which a total lesion volume is an outlier.
OUTLIER_Z = 3.5

_ASSETS = ("report.css", "report.js", "index.js", "scan.js")

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("cohort_sciseg.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True, slots=True)
class ReportSummary:
    """What :func:`build_report` did."""

    path: Path  #: ``report/index.html``
    n_scans: int
    n_failures: int
    pages_written: int  #: scan pages made by this build (missing or stale ones)
    pages_current: int  #: scan pages already current (left untouched)
    page_errors: tuple[str, ...]  #: scans whose page could not be made, with why
    seconds: float


def _safe(name: str) -> str:
    """A single path component from a label (labels come from file names, but never trust them)."""
    name = str(name).replace("/", "_").replace("\\", "_").replace("\x00", "_")
    return "_" + name if name in ("", ".", "..") or name.startswith(".") else name


def scan_page_href(site: str, scan_id: str) -> str:
    """URL of a scan's page, relative to the report folder (percent-encoded)."""
    return f"{RunLayout.SCAN_PAGES}/{quote(_safe(site), safe='')}/{quote(_safe(scan_id), safe='')}.html"


def _scan_dir(report: Path, site: str, scan_id: str) -> Path:
    return report / RunLayout.SCAN_PAGES / _safe(site) / _safe(scan_id)


def _fmt(value: Any, digits: int = 3) -> str:
    """A table cell: numbers rounded, missing values empty."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return ""
        x = float(value)
        if x != 0 and abs(x) < 1e-3:
            return f"{x:.{digits}g}"
        return f"{x:,.{digits}f}".rstrip("0").rstrip(".")
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (list, tuple, np.ndarray)):  # e.g. vertebral levels
        return ", ".join(_fmt(v, digits) for v in value)
    return str(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _blank(value: Any) -> bool:
    """Missing, an empty string or an empty list (nothing to show)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return len(value) == 0
    return _missing(value) or value == ""


def scan_flags(row: Mapping[str, Any]) -> list[str]:
    """The flags of one scan row that need no other scan.

    ``failed``; for done scans ``suspect`` (the result looks implausible: the row's
    ``suspect_reasons``), ``empty-cord``, ``lesion-outside-cord`` and
    ``validation-excluded`` (manual masks unusable as a reference).
    """
    flags = []
    if row.get("status") == "failed":
        flags.append("failed")
    elif row.get("status") == "done":
        if not _missing(row.get("suspect")) and bool(row.get("suspect")):
            flags.append("suspect")
        if row.get("validation") == "excluded":
            flags.append("validation-excluded")
        cord = row.get("cord_volume_mm3")
        if cord is not None and not _missing(cord) and float(cord) <= 0:
            flags.append("empty-cord")
        outside = row.get("total_outside_cord_volume_mm3")
        if outside is not None and not _missing(outside) and float(outside) > 0:
            flags.append("lesion-outside-cord")
    return flags


def _outliers(scans: pd.DataFrame) -> pd.Series:
    """Scans whose total lesion volume is a robust outlier within their site (|z| > OUTLIER_Z)."""
    out = pd.Series(False, index=scans.index)
    if scans.empty or "total_volume_mm3" not in scans:
        return out
    done = scans[scans["status"] == "done"]
    for _, group in done.groupby("site", sort=False):
        v = group["total_volume_mm3"].astype(float).dropna()
        if len(v) < 5:
            continue
        med = float(v.median())
        mad = float((v - med).abs().median()) * 1.4826
        if mad <= 0:
            continue
        z = (v - med).abs() / mad
        out.loc[z[z > OUTLIER_Z].index] = True
    return out


def _records(df: pd.DataFrame | None, drop: Sequence[str]) -> dict[str, Any]:
    if df is None or df.empty:
        return {"columns": [], "rows": []}
    cols = [c for c in df.columns if c not in drop]
    return {"columns": cols, "rows": [[_fmt(v) for v in row] for row in df[cols].itertuples(index=False)]}


_FACTS = (
    ("site", "Site"), ("sub", "Subject"), ("ses", "Session"), ("acq", "Acquisition"), ("run", "Run"),
    ("orientation", "Orientation"), ("acquisition_plane", "Plane"), ("n_lesions", "Lesions"),
    ("total_volume_mm3", "Total lesion volume (mm³)"), ("total_length_mm", "Total lesion length (mm)"),
    ("max_axial_damage_ratio", "Max axial damage ratio"), ("cord_volume_mm3", "Cord volume (mm³)"),
    ("total_outside_cord_volume_mm3", "Lesion outside the cord (mm³)"), ("cord_dice", "Cord Dice vs manual"),
    ("lesion_dice", "Lesion Dice vs manual"), ("validation", "Validation"),
    ("lesion_vert_levels", "Vertebral levels with lesion"), ("nli_slice", "NLI slice"),
    ("nli_ap_diameter_mm", "Cord A-P diameter at the NLI slice (mm)"),
    ("suspect_reasons", "Suspect because"), ("notes", "Notes"), ("seconds_segment", "Model time (s)"),
)  # not the scan's total time: the page is made before the scan ends (tables/scans has it)


def write_scan_page(
    out_dir: str | os.PathLike[str],
    scan: Mapping[str, Any],
    *,
    key: str,
    image_path: str | os.PathLike[str],
    cord_path: str | os.PathLike[str],
    lesion_path: str | os.PathLike[str],
    lesions: pd.DataFrame | None = None,
    metrics: pd.DataFrame | None = None,
    provenance: Mapping[str, Any] | None = None,
    participant: Mapping[str, Any] | None = None,
    masks: tuple[Any, Any] | None = None,
    analysis: Any = None,
    image: Any = None,
) -> Path:
    """Write the QC page of one scan and its reportlets; return the page's path.

    Parameters
    ----------
    out_dir
        The run's output folder (the page goes under ``out_dir/report/scans/``).
    scan
        The scan's row of the ``scans`` table (``scan_id``, ``site``, measures, ...).
    key
        The scan's key: stamped next to the page, so that a later report build
        knows the page is current.
    image_path, cord_path, lesion_path
        The image and the predicted masks (same grid).
    lesions, metrics
        The scan's rows of the ``lesions`` and ``metrics`` tables.
    masks, analysis
        The masks and their morphometry when the caller holds them
        (see :func:`~cohort_sciseg.report.reportlets.render_reportlets`).
    image
        The image at ``image_path`` when the caller holds it (a :class:`~cohort_sciseg.io.Volume`).
    provenance
        Extra label -> value pairs shown under *Provenance*.
    participant
        The subject's row of ``participants.tsv`` (clinical scores, ...), shown as is.

    Images that cannot be made (unreadable mask, ...) leave a page that says so;
    the error is logged, never raised: the scan's results stand without their QC images.
    """
    report = RunLayout(out_dir).report
    scan_id, site = str(scan["scan_id"]), str(scan["site"])
    folder = _scan_dir(report, site, scan_id)
    folder.mkdir(parents=True, exist_ok=True)
    reportlets: list[Reportlet] = []
    error = ""
    try:
        reportlets = render_reportlets(
            image_path, cord_path, lesion_path, folder, masks=masks, analysis=analysis, image=image
        )
    except (CohortSciSegError, OSError, ValueError, MemoryError) as exc:
        error = str(exc)
        logger.warning("QC images of %s not made: %s", scan_id, exc)
    facts = [(label, _fmt(scan.get(k))) for k, label in _FACTS if not _blank(scan.get(k))]
    prov: list[tuple[str, str]] = [
        ("key", key), ("segmenter", _fmt(scan.get("segmenter"))), ("model checksum", _fmt(scan.get("model_checksum"))),
        ("image", str(image_path)), ("cord mask", str(cord_path)), ("lesion mask", str(lesion_path)),
        ("attempt", _fmt(scan.get("attempt"))), ("tool", f"cohort-sciseg {__version__}"),
    ]
    prov += [(str(k), v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str))
             for k, v in (provenance or {}).items()]
    html = _env.get_template("scan.html").render(
        version=__version__, generated="", root="../../", page="scan", scan=_scan_view(scan),
        flags=scan_flags(scan), facts=facts, reportlets=reportlets, reportlet_error=error,
        images=quote(_safe(scan_id), safe=""),
        lesions=_records(_lesion_view(lesions), drop=()),
        metrics=_records(_metric_view(metrics), drop=()),
        provenance=prov,
        participant=[(str(k), _fmt(v)) for k, v in (participant or {}).items() if k != "participant_id"],
    )
    page = folder.with_name(folder.name + ".html")
    atomic_write_text(page, html)
    for old in folder.glob("*.key"):
        old.unlink(missing_ok=True)
    atomic_write_text(folder / f"{key}.key", key)
    return page


def _scan_view(scan: Mapping[str, Any]) -> dict[str, str]:
    return {k: "" if _missing(scan.get(k)) else str(scan.get(k)) for k in ("scan_id", "site", "sub", "ses", "status")}


#: The lesion columns shown on a scan page (all of them are in tables/lesions).
_LESION_COLUMNS = (
    "lesion_id", "volume_mm3", "length_mm", "width_mm", "max_axial_damage_ratio", "outside_cord_volume_mm3",
    "dorsal_bridge_width_mm", "ventral_bridge_width_mm", "total_bridge_width_mm", "z_min_slice", "z_max_slice",
    "vert_levels", "vert_level_centroid",
)


def _lesion_view(lesions: pd.DataFrame | None) -> pd.DataFrame | None:
    if lesions is None or lesions.empty:
        return None
    # vertebral levels only where a labelling gave them
    cols = [c for c in _LESION_COLUMNS if c in lesions and not (c.startswith("vert_") and lesions[c].isna().all())]
    return lesions[cols].sort_values(cols[:1]).reset_index(drop=True)


def _metric_view(metrics: pd.DataFrame | None) -> pd.DataFrame | None:
    """One row per metric, one column per structure (and method when several)."""
    if metrics is None or metrics.empty or not {"structure", "metric", "value"} <= set(metrics):
        return None
    m = metrics.copy()
    if "method" in m and m["method"].nunique() > 1:
        m["structure"] = m["structure"].astype(str) + " (" + m["method"].astype(str) + ")"
    wide = m.pivot_table(index="metric", columns="structure", values="value", aggfunc="first", sort=True)
    return wide.reset_index().rename_axis(columns=None)


# -- the whole report -----------------------------------------------------------------------------


def _read_table(out: Path, name: str) -> pd.DataFrame:
    table = read_partitioned_table(RunLayout(out).table(name))
    if table is not None:
        return table.to_pandas()
    single = RunLayout(out).table_file(name)
    if single.is_file():
        return pd.read_parquet(single)
    return pd.DataFrame()


def latest_run_record(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The record of the latest run into ``out_dir`` (``logs/runs/run-<time>-<pid>.json``), or {}."""
    runs = RunLayout(out_dir).run_records()
    return dict(json.loads(runs[-1].read_text(encoding="utf-8"))) if runs else {}


def _participants(out: Path) -> dict[str, dict[str, str]]:
    """``participants.tsv`` rows by scan id, from the run's ``tables/discovered_scans.parquet``."""
    path = RunLayout(out).discovered_scans
    if not path.is_file():
        return {}
    return {s.scan_id: s.participant_dict for s in scans_from_table(pq.read_table(path))}


def _run_provenance(out: Path) -> dict[str, Any]:
    """The provenance a worker gives a scan's page (the run's settings), from the latest run record."""
    record = latest_run_record(out)
    if "settings" in record:  # the settings the workers had, as the run recorded them
        return {"settings": record["settings"]}
    if "segmenter" not in record:
        return {}
    units = record.get("options", {}).get("units", "mm")  # records of runs before "settings" was written
    return {"settings": {"segmenter": record["segmenter"].get("settings", {}), "units": units}}


def _report_id(report: Path) -> str:
    """The report's id, made once: ratings in the browser are kept under it."""
    path = report / "report.json"
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["id"])
    except (OSError, ValueError, KeyError, TypeError):
        rid = uuid.uuid4().hex[:12]
        write_json(path, {"id": rid, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        return rid


def _js_data(name: str, obj: Any) -> str:
    """``window.<name> = <json>;`` safe to load as a script whatever the strings contain."""
    text = json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=str)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f"window.{name} = {text};\n"


def _json_value(v: Any) -> Any:
    if _missing(v):
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return round(float(v), 6)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return v if isinstance(v, (int, str)) else str(v)


def _write_if_changed(path: Path, text: str) -> None:
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    atomic_write_text(path, text)


def _index_rows(scans: pd.DataFrame) -> list[list[Any]]:
    if scans.empty:
        return []
    scans = scans.sort_values(["site", "scan_id"], kind="stable").reset_index(drop=True)
    outlier = _outliers(scans)
    rows = []
    for i, rec in enumerate(scans.to_dict("records")):
        flags = scan_flags(rec)
        if outlier.iloc[i]:
            flags.append("outlier-volume")
        if rec.get("status") == "done":
            href = scan_page_href(rec["site"], rec["scan_id"])
        else:
            href = "failures.html#" + quote(_anchor(rec["scan_id"]), safe="")
        rec = {**rec, "flags": " ".join(flags), "href": href}
        rows.append([_json_value(rec.get(c)) for c in INDEX_COLUMNS])
    return rows


def _anchor(scan_id: str) -> str:
    return "scan-" + str(scan_id)


def _split_fix(message: str) -> tuple[str, str]:
    head, sep, fix = str(message).partition(" Fix: ")
    return (head, fix) if sep else (str(message), "")


def _failure_rows(failures: pd.DataFrame) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    if failures.empty:
        return rows
    for rec in failures.sort_values([c for c in ("site", "scan_id") if c in failures]).to_dict("records"):
        error, fix = _split_fix(rec.get("message", ""))
        rows.append({
            "scan_id": _fmt(rec.get("scan_id")), "site": _fmt(rec.get("site")), "stage": _fmt(rec.get("stage")),
            "error": error, "fix": fix, "anchor": _anchor(_fmt(rec.get("scan_id"))),
        })
    return rows


_STATS = (
    ("cohort", "Table 1: cohort characteristics", None),
    ("metrics_summary", "Segmentation metrics against the manual masks (mean ± SD)", None),
    ("biomarkers_summary", "Biomarkers (mean ± SD)", None),
    ("agreement", "Manual vs predicted biomarkers (normality, Wilcoxon signed-rank)", None),
    ("methods", "Methods compared (Kruskal-Wallis, Wilcoxon with Bonferroni correction)", None),
    ("clinical", "Correlations with clinical scores (Spearman)", None),
    ("site_differences", "Differences between sites", None),
)
_STAT_DROP = ("options", "versions", "q1", "q3", "min", "max", "mean", "sd", "median")
_FIGURE_GROUPS = (
    ("raincloud", "Metrics per site (raincloud)"),
    ("regression", "Manual vs predicted"),
    ("bland_altman", "Bland-Altman"),
    ("clinical", "Clinical correlations"),
)


def _cohort_tables(stats: Path) -> list[dict[str, Any]]:
    tables = []
    for name, title, note in _STATS:
        path = stats / f"{name}.parquet"
        if not path.is_file():
            continue
        df = pd.read_parquet(path)
        if df.empty:
            continue
        if name in ("metrics_summary", "biomarkers_summary") and "mean_sd" in df:
            drop: Sequence[str] = _STAT_DROP
        else:
            drop = ("options", "versions")
        view = _records(df, drop=drop)
        tables.append({"title": title, "note": note, **view})
    return tables


def _cohort_figures(folder: Path, report: Path) -> list[dict[str, Any]]:
    pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    groups = []
    for tag, title in _FIGURE_GROUPS:
        files = [p for p in pngs if (p.stem.startswith("clinical_") if tag == "clinical" else p.stem.endswith(tag))]
        if files:
            groups.append({
                "title": title,
                "files": [{"src": quote(os.path.relpath(p, report).replace(os.sep, "/")),
                           "caption": p.stem.replace("_", " ")} for p in files],
            })
    return groups


def build_report(
    out_dir: str | os.PathLike[str],
    *,
    render_missing: bool = True,
    threads: int | None = None,
) -> ReportSummary:
    """Write (or update) the QC report of the run in ``out_dir``; return what was done.

    Parameters
    ----------
    out_dir
        A run's output folder (``tables/`` inside).
    render_missing
        Make the pages of done scans that have none, or whose page is stale
        (their key changed); False: link them anyway (pages made later).
    threads
        Threads that make missing scan pages (default: the CPU count).
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    layout = RunLayout(out)
    if not layout.tables.is_dir():
        msg = format_error("no tables/ folder: not the output of a run", path=out,
                           expected="the OUT_DIR of `cohort-sciseg run`", fix="pass the folder given to run -o")
        raise ReportError(msg)
    report = layout.report
    layout.report_data.mkdir(parents=True, exist_ok=True)
    layout.report_assets.mkdir(parents=True, exist_ok=True)
    scans = _read_table(out, "scans")
    failures = _read_table(out, "failures")
    written, current, errors = 0, 0, []
    if render_missing and not scans.empty:
        todo = []
        for rec in scans[scans["status"] == "done"].to_dict("records"):
            folder = _scan_dir(report, rec["site"], rec["scan_id"])
            if (folder / f"{rec['key']}.key").is_file() and folder.with_name(folder.name + ".html").is_file():
                current += 1
            else:
                todo.append(rec)
        if todo:
            lesions = _read_table(out, "lesions")
            metrics = _read_table(out, "metrics")
            les_by = dict(tuple(lesions.groupby("scan_id"))) if not lesions.empty else {}
            met_by = dict(tuple(metrics.groupby("scan_id"))) if not metrics.empty else {}
            participants = _participants(out)
            provenance = _run_provenance(out)
            root = out.resolve()  # the worker's paths are absolute: the same page whoever makes it

            def make(rec: dict[str, Any]) -> str | None:
                try:
                    write_scan_page(
                        out, rec, key=str(rec["key"]), image_path=rec["image_path"],
                        cord_path=root / str(rec["cord_seg_path"]), lesion_path=root / str(rec["lesion_seg_path"]),
                        lesions=les_by.get(rec["scan_id"]), metrics=met_by.get(rec["scan_id"]),
                        provenance=provenance, participant=participants.get(rec["scan_id"]),
                    )
                except (CohortSciSegError, OSError, ValueError, KeyError, TypeError) as exc:
                    return f"{rec['scan_id']}: {exc}"
                return None

            with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
                for err in pool.map(make, todo):
                    if err:
                        errors.append(err)
            written = len(todo) - len(errors)
    rid = _report_id(report)
    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for name in _ASSETS:
        _write_if_changed(layout.report_assets / name,
                          resources.files("cohort_sciseg.report").joinpath("assets", name).read_text(encoding="utf-8"))
    _write_if_changed(layout.report_data / "meta.js",
                      _js_data("COHORT_SCISEG_META", {"report": rid, "version": __version__}))
    atomic_write_text(layout.report_data / "index.js", _js_data(
        "COHORT_SCISEG_INDEX", {"columns": list(INDEX_COLUMNS), "rows": _index_rows(scans), "generated": generated}))
    common = {"version": __version__, "generated": generated, "root": ""}
    atomic_write_text(layout.report_index, _env.get_template("index.html").render(page="index", **common))
    failure_rows = _failure_rows(failures)
    atomic_write_text(report / "failures.html",
                      _env.get_template("failures.html").render(page="failures", failures=failure_rows, **common))
    status = scans["status"].value_counts().to_dict() if not scans.empty else {}
    summary = [("scans", str(len(scans)))] + [(f"{k}", str(v)) for k, v in sorted(status.items())]
    if not scans.empty:
        summary.append(("sites", ", ".join(sorted(scans["site"].astype(str).unique()))))
    atomic_write_text(report / "cohort.html", _env.get_template("cohort.html").render(
        page="cohort", summary=summary, tables=_cohort_tables(layout.validation_stats),
        figures=_cohort_figures(layout.validation_figures, report), comparisons=comparison_links(report),
        subjects=(report / "subjects.html").is_file(), **common))
    if errors:
        logger.warning("%d scan page(s) not made: %s", len(errors), "; ".join(errors[:5]))
    return ReportSummary(layout.report_index, len(scans), len(failure_rows), written, current, tuple(errors),
                         time.perf_counter() - t0)
