"""QC ratings read back: worklists of scans to correct, manual-mask starting points, exclusions.

Reviewers rate each scan of the HTML QC report *pass*, *fail* or *artifact*, with a
comment, and export the ratings from the browser in one of two fixed formats.

CSV (RFC 4180 quoting; a comment may hold commas, quotes and newlines; ``ses`` is
empty for scans without a session)::

    scan_id,site,sub,ses,rating,comment,rated_at
    site-site1_sub-01_acq-sag_T2w,site1,01,,fail,"lesion missed, see C4",2024-05-01T12:00:00.000Z

YAML (values are quoted strings, as a JSON-style flow mapping writes them; an
unquoted ``sub: 01`` would be read by YAML as the number 1)::

    report: <report id>
    exported_at: 2024-05-01T12:05:00.000Z
    ratings:
      - {scan_id: "site-site1_sub-01_acq-sag_T2w", site: "site1", sub: "01", ses: "", rating: "fail",
         comment: "lesion missed", rated_at: "2024-05-01T12:00:00.000Z"}

The correction loop: :func:`worklist` lists the failed scans with their image, the
predicted masks of the run and the manual-mask paths that discovery reads
(``<dataset>/derivatives/labels/sub-X/[ses-Y/]anat/<image stem>_seg-manual.nii.gz``
and ``..._lesion-manual.nii.gz``); :func:`prepare_corrections` copies the predicted
masks there as starting points (never over an existing manual mask unless asked);
the reviewer edits them (FSLeyes, ITK-SNAP) and re-runs ``cohort-sciseg run ...
--resume``, which finds them as manual masks and redoes those scans (a scan's key
holds the hashes of its manual masks). :func:`excluded_scans` gives the scan ids
that ``cohort-sciseg run --exclude-ratings`` leaves out.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import yaml

from cohort_sciseg._version import __version__
from cohort_sciseg.discover import DEFAULT_CORD_SUFFIXES, DEFAULT_LESION_SUFFIXES
from cohort_sciseg.errors import ReportError, format_error
from cohort_sciseg.io import (
    atomic_write_bytes,
    copy_mask_to_labels,
    find_labels_masks,
    image_folder,
    labels_mask_path,
    nifti_stem,
    preferred_mask,
    read_partitioned_table,
    sha256_file,
)

__all__ = [
    "RATINGS",
    "RATING_COLUMNS",
    "WORKLIST_COLUMNS",
    "Rating",
    "excluded_scans",
    "prepare_corrections",
    "read_ratings",
    "worklist",
    "write_ratings",
]

logger = logging.getLogger(__name__)

Rating = Literal["pass", "fail", "artifact"]
#: The valid ratings, as exported by the QC report (read case-insensitively).
RATINGS: tuple[Rating, ...] = ("pass", "fail", "artifact")
#: Columns of a ratings file and of :func:`read_ratings`' frame, in order.
RATING_COLUMNS: tuple[str, ...] = ("scan_id", "site", "sub", "ses", "rating", "comment", "rated_at")
#: Columns of :func:`worklist`' frame, in order (paths absolute).
WORKLIST_COLUMNS: tuple[str, ...] = (
    *RATING_COLUMNS,
    "image_path",
    "cord_seg_path",
    "lesion_seg_path",
    "cord_target_path",
    "lesion_target_path",
    "cord_existing_path",
    "lesion_existing_path",
)

_FORMATS = {".csv": "csv", ".yaml": "yaml", ".yml": "yaml"}
_EXPORT_FIX = "re-export the ratings from the QC report, or correct the file by hand"
_SCAN_COLUMNS = (
    "scan_id",
    "site",
    "sub",
    "ses",
    "image_path",
    "cord_seg_path",
    "lesion_seg_path",
    "status",
)
_STRUCTURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cord", DEFAULT_CORD_SUFFIXES),
    ("lesion", DEFAULT_LESION_SUFFIXES),
)
_SIDECAR_DESCRIPTION = "predicted mask copied for manual correction"

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------- reading, writing


def _format_of(path: Path) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        msg = format_error(
            f"unknown ratings file extension {path.suffix!r}",
            path=path,
            expected=f"one of {sorted(_FORMATS)!r}",
            fix="export the ratings from the QC report as CSV or YAML, or rename the file to its format",
        )
        raise ReportError(msg, path=path)
    return fmt


def read_ratings(path: PathLike) -> pd.DataFrame:
    """Read the ratings exported by the QC report (CSV or YAML, by extension).

    Parameters
    ----------
    path
        A ``.csv``, ``.yaml`` or ``.yml`` file in the formats of the module docstring.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`RATING_COLUMNS`, strings; ``ses`` is missing (NA) for scans
        without a session; ``rating`` is lower case, one of :data:`RATINGS`;
        ``rated_at`` is kept as written (ISO 8601). A scan rated more than once
        keeps its latest ``rated_at`` (the later row on a tie or without a
        time); rows keep their order in the file. For YAML files,
        ``frame.attrs`` holds ``report`` and ``exported_at``.

    Raises
    ------
    ReportError
        Unknown extension, unreadable or empty file, unparseable YAML or CSV, a
        missing column or key, an empty ``scan_id``, a rating outside
        :data:`RATINGS`, an unparseable ``rated_at``, an unquoted YAML number or
        boolean where text is expected. The message names the file and the row.
    """
    p = Path(path)
    fmt = _format_of(p)
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        msg = format_error(
            f"cannot read the ratings file: {type(exc).__name__}: {exc}",
            path=p,
            expected="a readable UTF-8 text file",
            fix="check the path, or re-export the ratings from the QC report",
        )
        raise ReportError(msg, path=p) from exc
    if not text.strip():
        msg = format_error(
            "the ratings file is empty",
            path=p,
            expected=f"a {fmt.upper()} export with the columns {','.join(RATING_COLUMNS)}",
            fix=_EXPORT_FIX,
        )
        raise ReportError(msg, path=p)
    if fmt == "csv":
        rows = _csv_rows(text, p)
        attrs: dict[str, str] = {}
    else:
        rows, attrs = _yaml_rows(text, p)
    frame = _frame(rows, p)
    frame.attrs.update(attrs)
    return frame


def _csv_rows(text: str, path: Path) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[str, dict[str, Any]]] = []
    try:
        header = [h.strip() for h in next(reader)]
        missing = [c for c in RATING_COLUMNS if c not in header]
        if missing:
            msg = format_error(
                f"the CSV header {','.join(header)!r} has no column(s) {missing!r}",
                path=path,
                expected=f"the header {','.join(RATING_COLUMNS)}",
                fix=_EXPORT_FIX,
            )
            raise ReportError(msg, path=path)
        last_line = reader.line_num
        for number, record in enumerate(reader, start=1):
            where = f"row {number} (line {last_line + 1})"
            last_line = reader.line_num
            if not record:
                continue  # a blank line
            if len(record) != len(header):
                msg = format_error(
                    f"{where} has {len(record)} field(s), the header {len(header)}",
                    path=path,
                    expected="one field per column; a comment with commas, quotes or newlines in double quotes",
                    fix='quote the field ("a, b") and double the quotes inside it ("say ""no""")',
                )
                raise ReportError(msg, path=path)
            rows.append((where, dict(zip(header, record, strict=True))))
    except csv.Error as exc:
        msg = format_error(
            f"not a valid CSV file (line {reader.line_num}: {exc})",
            path=path,
            expected="RFC 4180 CSV (fields with commas, quotes or newlines in double quotes)",
            fix=_EXPORT_FIX,
        )
        raise ReportError(msg, path=path) from exc
    return rows


def _yaml_rows(text: str, path: Path) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, str]]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        msg = format_error(
            f"not valid YAML ({line}{problem})",
            path=path,
            expected="a mapping with report, exported_at and a list of ratings",
            fix=_EXPORT_FIX,
        )
        raise ReportError(msg, path=path) from exc
    if not isinstance(doc, dict) or "ratings" not in doc:
        msg = format_error(
            f"the YAML document is a {type(doc).__name__}"
            + (f" with the keys {sorted(map(str, doc))!r}" if isinstance(doc, dict) else ""),
            path=path,
            expected="a mapping with the keys report, exported_at and ratings (a list)",
            fix=_EXPORT_FIX,
        )
        raise ReportError(msg, path=path)
    items = doc["ratings"] if doc["ratings"] is not None else []
    if not isinstance(items, list):
        msg = format_error(
            f"'ratings' is a {type(items).__name__}",
            path=path,
            expected="a list of mappings, one per rated scan",
            fix=_EXPORT_FIX,
        )
        raise ReportError(msg, path=path)
    rows: list[tuple[str, dict[str, Any]]] = []
    for number, item in enumerate(items, start=1):
        where = f"rating {number}"
        if not isinstance(item, dict):
            msg = format_error(
                f"{where} is {item!r}, not a mapping",
                path=path,
                expected=f"a mapping with the keys {', '.join(RATING_COLUMNS)}",
                fix=_EXPORT_FIX,
            )
            raise ReportError(msg, path=path)
        missing = [c for c in RATING_COLUMNS if c not in item]
        if missing:
            msg = format_error(
                f"{where} (scan {item.get('scan_id')!r}) has no key(s) {missing!r}",
                path=path,
                expected=f"the keys {', '.join(RATING_COLUMNS)} (ses may be empty)",
                fix=_EXPORT_FIX,
            )
            raise ReportError(msg, path=path)
        rows.append((where, item))
    attrs = {k: _plain(doc.get(k)) for k in ("report", "exported_at") if doc.get(k) is not None}
    return rows, attrs


def _plain(value: Any) -> str:
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    return str(value)


def _text(value: Any, column: str, where: str, path: Path, *, strict: bool) -> str:
    """A cell as text; with ``strict`` (YAML files), numbers and booleans are refused: they lose information."""
    if value is None or (isinstance(value, float) and value != value):  # None, NaN
        return ""
    if value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, str):
        return value
    if column == "rated_at" and isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()  # an unquoted YAML timestamp
    if strict and isinstance(value, (bool, int, float)):
        msg = format_error(
            f"{where}: {column} is the YAML {type(value).__name__} {value!r}, not text",
            path=path,
            expected=f'a quoted string (e.g. {column}: "01"; unquoted 01 reads as the number 1)',
            fix="quote the value in the file, or re-export the ratings from the QC report",
        )
        raise ReportError(msg, path=path)
    if isinstance(value, (list, dict)):
        msg = format_error(
            f"{where}: {column} is {value!r}",
            path=path,
            expected="a single text value",
            fix=_EXPORT_FIX,
        )
        raise ReportError(msg, path=path)
    return str(value)  # values of a DataFrame being written (numbers, timestamps)


def _parse_time(text: str) -> _dt.datetime | None:
    """ISO 8601 (``...Z`` as JavaScript's ``toISOString``); naive times are UTC."""
    if not text.strip():
        return None
    t = _dt.datetime.fromisoformat(text.strip())
    return t if t.tzinfo is not None else t.replace(tzinfo=_dt.UTC)


def _normalise(
    where: str, row: dict[str, Any], path: Path, *, strict: bool = True
) -> tuple[dict[str, Any], _dt.datetime | None]:
    out: dict[str, Any] = {
        c: _text(row.get(c), c, where, path, strict=strict) for c in RATING_COLUMNS
    }
    for c in ("scan_id", "site", "sub", "ses", "rated_at"):
        out[c] = out[c].strip()
    if not out["scan_id"]:
        msg = format_error(
            f"{where} has an empty scan_id",
            path=path,
            expected="the scan id of the QC report (e.g. 'site-site1_sub-01_acq-sag_T2w')",
            fix="fill in the scan id or remove the row",
        )
        raise ReportError(msg, path=path)
    raw = out["rating"]
    out["rating"] = raw.strip().lower()
    if out["rating"] not in RATINGS:
        msg = format_error(
            f"{where} (scan {out['scan_id']!r}): rating {raw!r} is not valid",
            path=path,
            expected=f"one of {list(RATINGS)!r} (any case)",
            fix="correct the rating, or re-export the ratings from the QC report",
        )
        raise ReportError(msg, path=path, scan_id=out["scan_id"])
    try:
        when = _parse_time(out["rated_at"])
    except ValueError as exc:
        msg = format_error(
            f"{where} (scan {out['scan_id']!r}): rated_at {out['rated_at']!r} is not an ISO 8601 time",
            path=path,
            expected="e.g. '2024-05-01T12:00:00.000Z' or '2024-05-01T14:00:00+02:00'",
            fix="correct the time, or re-export the ratings from the QC report",
        )
        raise ReportError(msg, path=path) from exc
    out["ses"] = out["ses"] or None
    return out, when


def _frame(rows: Sequence[tuple[str, dict[str, Any]]], path: Path) -> pd.DataFrame:
    """Validated rows, one per scan (the latest ``rated_at`` wins), in file order."""
    oldest = _dt.datetime.min.replace(tzinfo=_dt.UTC)
    kept: dict[str, tuple[_dt.datetime, int, dict[str, Any]]] = {}
    for position, (where, row) in enumerate(rows):
        clean, when = _normalise(where, row, path)
        rank = (when or oldest, position)
        prev = kept.get(clean["scan_id"])
        if prev is None or rank >= prev[:2]:
            kept[clean["scan_id"]] = (rank[0], rank[1], clean)
    ordered = [v[2] for v in sorted(kept.values(), key=lambda v: v[1])]
    return pd.DataFrame(ordered, columns=list(RATING_COLUMNS), dtype="str")


def write_ratings(ratings: pd.DataFrame, path: PathLike) -> Path:
    """Write ratings as CSV or YAML (by extension) in the QC report's export format.

    Every row is written (a scan rated by several reviewers keeps all its rows;
    :func:`read_ratings` keeps the latest), after the checks of
    :func:`read_ratings`, so what is written reads back. For YAML, ``report``
    and ``exported_at`` come from ``ratings.attrs`` (``exported_at`` defaults to
    now). The file is written atomically. Returns the path.

    Raises
    ------
    ReportError
        Unknown extension, a missing column, or a row :func:`read_ratings` would refuse.
    """
    p = Path(path)
    fmt = _format_of(p)
    missing = [c for c in RATING_COLUMNS if c not in ratings.columns]
    if missing:
        msg = format_error(
            f"the ratings have no column(s) {missing!r} (columns: {list(map(str, ratings.columns))!r})",
            path=p,
            expected=f"the columns {', '.join(RATING_COLUMNS)}",
            fix="build the frame with read_ratings() or add the missing columns",
        )
        raise ReportError(msg, path=p)
    rows = []
    for number, row in enumerate(ratings[list(RATING_COLUMNS)].to_dict("records"), start=1):
        clean, _ = _normalise(f"DataFrame row {number}", row, p, strict=False)
        clean["ses"] = clean["ses"] or ""
        rows.append(clean)
    if fmt == "csv":
        buf = io.StringIO(newline="")
        writer = csv.writer(buf, lineterminator="\r\n")  # RFC 4180
        writer.writerow(RATING_COLUMNS)
        writer.writerows([r[c] for c in RATING_COLUMNS] for r in rows)
        text = buf.getvalue()
    else:
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        doc = {
            "report": str(ratings.attrs.get("report", "")),
            "exported_at": str(ratings.attrs.get("exported_at", now)),
            "ratings": rows,
        }
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False)
    atomic_write_bytes(p, text.encode("utf-8"))
    return p


# --------------------------------------------------------------------------- selecting scans


def _as_ratings(ratings: pd.DataFrame | PathLike) -> pd.DataFrame:
    if isinstance(ratings, pd.DataFrame):
        missing = [c for c in ("scan_id", "rating") if c not in ratings.columns]
        if missing:
            msg = format_error(
                f"the ratings have no column(s) {missing!r}",
                expected=f"a frame from read_ratings() with the columns {', '.join(RATING_COLUMNS)}",
                fix="read the file with read_ratings()",
            )
            raise ReportError(msg)
        return ratings
    return read_ratings(ratings)


def _check_choice(values: Iterable[str], option: str) -> set[str]:
    chosen = {str(v).lower() for v in values}
    bad = sorted(chosen - set(RATINGS))
    if bad:
        msg = f"{option}={bad!r} holds unknown ratings; expected values among {list(RATINGS)!r}"
        raise ValueError(msg)
    return chosen


def excluded_scans(
    ratings: pd.DataFrame | PathLike, *, exclude: Sequence[Rating] = ("fail", "artifact")
) -> set[str]:
    """Scan ids whose rating is in ``exclude`` (what ``cohort-sciseg run --exclude-ratings`` drops).

    Parameters
    ----------
    ratings
        A frame from :func:`read_ratings`, or a ratings file.
    exclude
        Ratings that exclude a scan (default: fail and artifact).
    """
    chosen = _check_choice(exclude, "exclude")
    frame = _as_ratings(ratings)
    mask = frame["rating"].astype(str).str.strip().str.lower().isin(chosen)
    return set(frame.loc[mask, "scan_id"].astype(str))


def _run_scans(out_dir: Path) -> pd.DataFrame:
    """The run's ``tables/scans`` (one row per scan id), ``site`` as text."""
    folder = out_dir / "tables" / "scans"
    try:
        table = read_partitioned_table(folder)
    except (OSError, pa.ArrowException) as exc:
        msg = format_error(
            f"cannot read the scans table: {type(exc).__name__}: {exc}",
            path=folder,
            expected="Parquet files written by `cohort-sciseg run`",
            fix="re-run `cohort-sciseg run --resume` to rewrite the tables",
        )
        raise ReportError(msg, path=folder) from exc
    if table is None:
        msg = format_error(
            "no scans table (tables/scans/site=*/*.parquet) in this folder",
            path=out_dir,
            expected="the OUT_DIR of a `cohort-sciseg run`",
            fix="pass the folder given to `cohort-sciseg run -o`",
        )
        raise ReportError(msg, path=out_dir)
    missing = [c for c in _SCAN_COLUMNS if c not in table.schema.names]
    if missing:
        msg = format_error(
            f"the scans table has no column(s) {missing!r}",
            path=folder,
            expected="a scans table written by `cohort-sciseg run`",
            fix="re-run `cohort-sciseg run --resume` to rewrite the tables",
        )
        raise ReportError(msg, path=folder)
    table = table.select(list(_SCAN_COLUMNS))
    frame = table.to_pandas()
    return frame.drop_duplicates("scan_id", keep="last").set_index("scan_id", drop=False)


def _dataset_folder(scan_id: str, image: Path, sub: str, ses: str | None) -> tuple[Path, Path]:
    """``(dataset root, image folder relative to it)`` of ``<root>/sub-X/[ses-Y/]anat/<image>``.

    The folder must be the one of the scans table's ``sub`` and ``ses``.
    """
    rel = Path(f"sub-{sub}", *([f"ses-{ses}"] if ses else []), "anat")
    try:
        root, found = image_folder(image)
    except ValueError:
        root, found = image.parent, Path()
    if not image.is_absolute() or found != rel:
        msg = format_error(
            f"the image {str(image)!r} is not in a BIDS folder {str(rel)!r}",
            scan_id=scan_id,
            expected="an absolute image path <dataset>/sub-<label>/[ses-<label>/]anat/<image> in the scans table",
            fix="re-run `cohort-sciseg run --resume` on the BIDS datasets to rewrite the scans table",
        )
        raise ReportError(msg, path=image, scan_id=scan_id)
    return root, rel


def _str_or_none(value: Any) -> str | None:
    return None if value is None or pd.isna(value) or value == "" else str(value)


def worklist(
    ratings: pd.DataFrame | PathLike,
    out_dir: PathLike,
    *,
    ratings_to_fix: Sequence[Rating] = ("fail",),
) -> pd.DataFrame:
    """The scans to correct by hand, with their images, predictions and manual-mask targets.

    Parameters
    ----------
    ratings
        A frame from :func:`read_ratings`, or a ratings file.
    out_dir
        The ``cohort-sciseg run`` folder the QC report was made from (its
        ``tables/scans`` gives the images and the predicted masks).
    ratings_to_fix
        Ratings that put a scan on the list (default: fail; add artifact to
        review those as well).

    Returns
    -------
    pandas.DataFrame
        One row per scan to correct, columns :data:`WORKLIST_COLUMNS`, in the
        order of the ratings: the rating columns (``site``, ``sub``, ``ses`` from
        the run's table), ``image_path``; ``cord_seg_path`` and
        ``lesion_seg_path``, the run's predicted masks (absolute; missing when the
        scan failed); ``cord_target_path`` and ``lesion_target_path``, where the
        corrected masks go so that discovery reads them as the scan's manual
        masks (``<dataset>/derivatives/labels/sub-X/[ses-Y/]anat/<image
        stem>_seg-manual.nii.gz`` and ``..._lesion-manual.nii.gz``, the first of
        :data:`~cohort_sciseg.discover.DEFAULT_CORD_SUFFIXES` and
        :data:`~cohort_sciseg.discover.DEFAULT_LESION_SUFFIXES`);
        ``cord_existing_path`` and ``lesion_existing_path``, the manual mask
        discovery reads now (missing when there is none).

    Raises
    ------
    ReportError
        ``out_dir`` has no scans table, or rated scans are not in it (the message
        lists a few), or the ratings file is bad (see :func:`read_ratings`).
    ValueError
        ``ratings_to_fix`` holds a value outside :data:`RATINGS`.
    """
    chosen = _check_choice(ratings_to_fix, "ratings_to_fix")
    frame = _as_ratings(ratings)
    out = Path(out_dir).resolve()
    scans = _run_scans(out)
    ids = frame["scan_id"].astype(str)
    unknown = list(dict.fromkeys(i for i in ids if i not in scans.index))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5]) + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        )
        msg = format_error(
            f"{len(unknown)} rated scan(s) are not in the run's scans table: {shown}",
            path=out / "tables" / "scans",
            expected="ratings of scans of this run",
            fix="pass the OUT_DIR of the run the QC report was made from (wrong OUT_DIR?), "
            "or remove the ratings of other runs from the file",
        )
        raise ReportError(msg, path=out)
    selected = frame[frame["rating"].astype(str).str.lower().isin(chosen)]
    rows = []
    for r in selected.to_dict("records"):
        s = scans.loc[str(r["scan_id"])]
        image = Path(str(s["image_path"]))
        ses = _str_or_none(s["ses"])
        root, _ = _dataset_folder(str(r["scan_id"]), image, str(s["sub"]), ses)
        row = {c: r.get(c) for c in RATING_COLUMNS}
        row.update(site=str(s["site"]), sub=str(s["sub"]), ses=ses, image_path=str(image))
        for structure, suffixes in _STRUCTURES:
            pred = _str_or_none(s[f"{structure}_seg_path"])
            row[f"{structure}_seg_path"] = None if pred is None else str(out / pred)
            row[f"{structure}_target_path"] = str(labels_mask_path(root, image, suffixes[0]))
            existing = find_labels_masks(root, image, suffixes)
            row[f"{structure}_existing_path"] = str(existing[0]) if existing else None
        rows.append(row)
    return pd.DataFrame(rows, columns=list(WORKLIST_COLUMNS), dtype="str")


# --------------------------------------------------------------------------- starting points


def prepare_corrections(worklist_df: pd.DataFrame, *, overwrite: bool = False) -> list[Path]:
    """Copy each predicted mask to its manual-mask target, as the starting point of a correction.

    A target whose scan already has a manual mask of that structure (under any
    of discovery's suffixes) is left alone unless ``overwrite``; with
    ``overwrite`` the target is replaced, but a mask that discovery would read
    instead of the target (e.g. ``..._seg-manual.nii`` beside the target
    ``..._seg-manual.nii.gz``) is an error, as the copy would be ignored. Each
    copy is written atomically, with a JSON sidecar beside it
    (``<target stem>.json``: ``GeneratedBy``, ``SpatialReference``, the source
    prediction and its sha256, the rating and comment) so that a corrected mask's
    origin can be traced; a ``derivatives/labels`` folder without a
    ``dataset_description.json`` gets one (see
    :func:`cohort_sciseg.io.copy_mask_to_labels`).

    Parameters
    ----------
    worklist_df
        A frame from :func:`worklist`.
    overwrite
        Replace existing manual masks (default: never).

    Returns
    -------
    list of Path
        The masks written (not the sidecars), cord then lesion per scan; skipped
        targets are not listed.

    Raises
    ------
    ReportError
        A column is missing, a predicted mask is missing (the scan failed in the
        run, or the run folder moved), or with ``overwrite`` an existing mask
        would shadow the copy. Checked for every row before anything is written.
    """
    missing_cols = [c for c in WORKLIST_COLUMNS if c not in worklist_df.columns]
    if missing_cols:
        msg = format_error(
            f"the worklist has no column(s) {missing_cols!r}",
            expected=f"a frame from worklist() with the columns {', '.join(WORKLIST_COLUMNS)}",
            fix="build it with worklist(ratings, out_dir)",
        )
        raise ReportError(msg)
    plan: list[tuple[dict[str, Any], str, Path, Path]] = []
    absent: list[str] = []
    for r in worklist_df.to_dict("records"):
        image = Path(str(r["image_path"]))
        stem = nifti_stem(image)
        for structure, suffixes in _STRUCTURES:
            pred = _str_or_none(r[f"{structure}_seg_path"])
            target = Path(str(r[f"{structure}_target_path"]))
            if pred is None or not Path(pred).is_file():
                absent.append(f"{r['scan_id']} ({structure}: {pred!r})")
                continue
            root, _ = _dataset_folder(
                str(r["scan_id"]), image, str(r["sub"]), _str_or_none(r["ses"])
            )
            existing = find_labels_masks(root, image, suffixes)
            if existing and not overwrite:
                logger.info(
                    "%s: kept the existing manual %s mask %s", r["scan_id"], structure, existing[0]
                )
                continue
            # discovery reads the first by (suffix rank, path): a copy it would ignore is an error
            read = preferred_mask([*existing, target], stem, suffixes)
            if read != target:
                msg = format_error(
                    f"the manual {structure} mask {str(read)!r} would be read instead of the copy {str(target)!r}",
                    path=read,
                    scan_id=str(r["scan_id"]),
                    expected="no manual mask that discovery prefers over the target",
                    fix=f"correct {str(read)!r} in place, or move it away and prepare again",
                )
                raise ReportError(msg, path=read, scan_id=str(r["scan_id"]))
            plan.append((r, structure, Path(pred), target))
    if absent:
        shown = "; ".join(absent[:5]) + (f"; and {len(absent) - 5} more" if len(absent) > 5 else "")
        msg = format_error(
            f"{len(absent)} predicted mask(s) are missing: {shown}",
            expected="the predicted masks of the run (scans that segmented)",
            fix="re-run `cohort-sciseg run --resume` for these scans, or draw their masks from scratch "
            "at the target paths of the worklist and leave them out of this call",
        )
        raise ReportError(msg)
    written = []
    for row, structure, source, target in plan:
        copy_mask_to_labels(
            source, target, _sidecar(row, structure, source), generated_by=_generated_by()
        )
        logger.info("%s: predicted %s mask copied to %s", row["scan_id"], structure, target)
        written.append(target)
    return written


def _generated_by() -> list[dict[str, str]]:
    return [{"Name": "cohort-sciseg", "Version": __version__, "Description": _SIDECAR_DESCRIPTION}]


def _sidecar(row: dict[str, Any], structure: str, pred: Path) -> dict[str, Any]:
    image = Path(str(row["image_path"]))
    _, rel = _dataset_folder(str(row["scan_id"]), image, str(row["sub"]), _str_or_none(row["ses"]))
    return {
        "GeneratedBy": _generated_by(),
        "SpatialReference": f"bids::{(rel / image.name).as_posix()}",
        "Sources": [pred.as_uri()],
        "SourceSHA256": sha256_file(pred),
        "Structure": structure,
        "QC": {
            "scan_id": str(row["scan_id"]),
            "rating": _str_or_none(row.get("rating")),
            "comment": _str_or_none(row.get("comment")),
            "rated_at": _str_or_none(row.get("rated_at")),
        },
    }
