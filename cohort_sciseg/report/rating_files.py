"""Ratings files of the QC report: read, written, and the scans they exclude.

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

:func:`excluded_scans` gives the scan ids that ``cohort-sciseg run --exclude-ratings``
leaves out; :mod:`cohort_sciseg.report.ratings` describes the correction loop.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml

from cohort_sciseg.errors import ReportError, format_error
from cohort_sciseg.io import atomic_write_bytes

__all__ = [
    "RATINGS",
    "RATING_COLUMNS",
    "PathLike",
    "Rating",
    "as_ratings",
    "check_choice",
    "excluded_scans",
    "read_ratings",
    "write_ratings",
]

Rating = Literal["pass", "fail", "artifact"]
#: The valid ratings, as exported by the QC report (read case-insensitively).
RATINGS: tuple[Rating, ...] = ("pass", "fail", "artifact")
#: Columns of a ratings file and of :func:`read_ratings`' frame, in order.
RATING_COLUMNS: tuple[str, ...] = ("scan_id", "site", "sub", "ses", "rating", "comment", "rated_at")

_FORMATS = {".csv": "csv", ".yaml": "yaml", ".yml": "yaml"}
_EXPORT_FIX = "re-export the ratings from the QC report, or correct the file by hand"

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


def as_ratings(ratings: pd.DataFrame | PathLike) -> pd.DataFrame:
    """``ratings`` as a frame of :func:`read_ratings` (a frame is checked, a path is read)."""
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


def check_choice(values: Iterable[str], option: str) -> set[str]:
    """``values`` lower-cased, or a ValueError naming ``option`` when one is not in :data:`RATINGS`."""
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
    chosen = check_choice(exclude, "exclude")
    frame = as_ratings(ratings)
    mask = frame["rating"].astype(str).str.strip().str.lower().isin(chosen)
    return set(frame.loc[mask, "scan_id"].astype(str))

