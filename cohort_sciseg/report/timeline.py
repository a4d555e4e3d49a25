"""Per-subject timeline pages of a longitudinal cohort (``report/subjects/``).

Layout::

    report/subjects.html                       every subject: sessions, tracks, events, alignment
    report/subjects/<site>/<sub>.html          one page per subject ...
    report/subjects/<site>/<sub>/ses-<ses>.png ... and one sagittal view per session

A subject's page shows its sessions side by side, left to right in time order
(by ``days_from_baseline`` when every session has it, else in the order given,
baseline first), then a legend of the lesion tracks, the tracks table and the
changes table (:data:`~cohort_sciseg.schemas.TRACKS_SCHEMA`,
:data:`~cohort_sciseg.schemas.CHANGES_SCHEMA`).

Drawing (the display convention of :mod:`~cohort_sciseg.report.reportlets`: each
session is reoriented to :data:`~cohort_sciseg.report.reportlets.DISPLAY_ORIENTATION`,
on its own voxel grid, so superior is up and anterior on the left):

- the image is the sagittal slice at the cord's left-right centre of mass (the
  image centre without cord): the same anatomy in every session, whatever the
  lesions do; the view spans the cord and the lesions plus the scan pages' margins;
- every lesion is drawn as its *sagittal shadow* (its projection over all sagittal
  slices), so a lesion off the midline is seen too: a one-pixel outline in its
  track's colour (:func:`track_colour`, the same in every session) over a fill of
  that colour at :data:`FILL_ALPHA`. Lesions without a track (session not aligned,
  or not in the tracks table) get a dashed outline in :data:`UNTRACKED_RGB` and
  black, and no fill. The cord contour is :data:`~cohort_sciseg.report.reportlets.CORD_RGB`;
- all sessions share one scale (mm per pixel), so sizes compare across sessions;
  panels are at most :data:`PANEL_WIDTH_PX` x :data:`PANEL_HEIGHT_PX`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from cohort_sciseg._version import __version__
from cohort_sciseg.errors import ReportError, format_error
from cohort_sciseg.io import RunLayout, atomic_write_text, binarize, reorient, voxel_sizes
from cohort_sciseg.report.reportlets import (
    CORD_RGB,
    DISPLAY_ORIENTATION,
    SAGITTAL_MARGIN_MM,
    _Axis,
    _contour,
    _extent,
    _grey,
    _round,
    _sample_image,
    _sample_mask,
    _write_png,
)
from cohort_sciseg.report.site import _env, _fmt, _missing, _safe, scan_page_href

__all__ = [
    "FILL_ALPHA",
    "PANEL_HEIGHT_PX",
    "PANEL_WIDTH_PX",
    "SUBJECT_PAGES",
    "TRACK_PALETTE",
    "UNTRACKED_RGB",
    "TimelineSession",
    "subject_page_href",
    "subject_summary",
    "track_colour",
    "write_subject_timeline",
    "write_subjects_index",
]

#: Folder of the subject pages inside the report folder.
SUBJECT_PAGES = RunLayout.SUBJECT_PAGES
#: Qualitative palette of the tracks (Tableau 10 without its grey and olive: neither can be
#: told from the image's grey levels or the yellow cord contour); track ``t`` gets
#: ``TRACK_PALETTE[(t - 1) % len(TRACK_PALETTE)]``.
TRACK_PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
    (148, 103, 189), (140, 86, 75), (227, 119, 194), (23, 190, 207),
)
#: Dashes of the outline of a lesion without a track (alternating with black).
UNTRACKED_RGB = (200, 200, 200)
#: Opacity of a tracked lesion's fill (its outline is opaque).
FILL_ALPHA = 0.35
#: Widest and tallest session panel, pixels.
PANEL_WIDTH_PX = 300
PANEL_HEIGHT_PX = 480
_DASH_PX = 3
_PNG = re.compile(r"^ses-.*\.png$")


@dataclass(frozen=True)
class TimelineSession:
    """One session of a subject, as its timeline draws it (arrays on the session's own grid)."""

    ses: str  #: BIDS session label, ``"01"``
    scan_id: str
    site: str
    image: np.ndarray  #: the session's T2w, any orientation
    affine: np.ndarray  #: its 4x4 voxel-to-world affine (nibabel RAS+, mm)
    cord: np.ndarray  #: predicted cord mask (``value > 0.5``)
    lesion_labels: np.ndarray  #: 0 background, ``lesion_id`` per lesion (the ids of the tracks table)
    days_from_baseline: float | None  #: days since the subject's first session; None when unknown
    aligned: bool  #: the alignment to the baseline passed its check (True for the baseline)
    cord_dice: float | None  #: cord Dice after alignment (None for the baseline)


def track_colour(track_id: int | None) -> tuple[int, int, int]:
    """RGB colour of a track (:data:`UNTRACKED_RGB` for None)."""
    if track_id is None:
        return UNTRACKED_RGB
    return TRACK_PALETTE[(int(track_id) - 1) % len(TRACK_PALETTE)]


def subject_page_href(site: str, sub: str) -> str:
    """URL of a subject's page, relative to the report folder (percent-encoded)."""
    return f"{SUBJECT_PAGES}/{quote(_safe(site), safe='')}/{quote(_safe(sub), safe='')}.html"


def _track_id(value: Any) -> int | None:
    return None if _missing(value) else int(value)


def _ids(value: Any) -> list[int]:
    """A list column's cell (a list, an array or null) as ints."""
    return [] if value is None or np.ndim(value) == 0 else [int(v) for v in value]


def _cell(value: Any) -> str:
    return "" if not isinstance(value, (list, tuple, np.ndarray)) and _missing(value) else _fmt(value)


def _check(sub: str, sessions: Sequence[TimelineSession], tracks: pd.DataFrame) -> None:
    if not sessions:
        msg = format_error(f"subject {sub!r} has no session", expected="at least one TimelineSession",
                           fix="pass the subject's sessions (baseline first)")
        raise ReportError(msg)
    seen = [s.ses for s in sessions]
    if len(set(seen)) != len(seen):
        msg = format_error(f"subject {sub!r} has repeated sessions {seen!r}", expected="one entry per session",
                           fix="pass each session once")
        raise ReportError(msg)
    for s in sessions:
        shapes = {"image": np.shape(s.image), "cord": np.shape(s.cord), "lesion_labels": np.shape(s.lesion_labels)}
        if len(shapes["image"]) != 3 or len(set(shapes.values())) != 1 or np.shape(s.affine) != (4, 4):
            msg = format_error(
                f"session {s.ses!r} of subject {sub!r}: shapes {shapes!r}, affine {np.shape(s.affine)!r}",
                scan_id=s.scan_id, expected="3D image, cord and lesion_labels on one grid and a 4x4 affine",
                fix="pass the session's own image, masks and affine (not resampled to the baseline)")
            raise ReportError(msg)
    missing = {"ses", "lesion_id", "track_id"} - set(tracks.columns)
    if not tracks.empty and missing:
        msg = format_error(f"tracks table of subject {sub!r} lacks columns {sorted(missing)!r}",
                           expected="a TRACKS_SCHEMA table", fix="pass track_lesions(...).tracks.to_pandas()")
        raise ReportError(msg)


@dataclass(frozen=True)
class _View:
    """A session in the display orientation, with the sagittal slice and the field of view (voxels)."""

    image: np.ndarray
    cord: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    r_slice: int
    s_range: tuple[float, float]
    a_range: tuple[float, float]

    @property
    def size_mm(self) -> tuple[float, float]:
        return ((self.s_range[1] - self.s_range[0]) * self.spacing[0],
                (self.a_range[1] - self.a_range[0]) * self.spacing[1])


def _view(s: TimelineSession) -> _View:
    img, aff = reorient(np.asarray(s.image), np.asarray(s.affine), DISPLAY_ORIENTATION)
    cord, _ = reorient(binarize(np.asarray(s.cord)), np.asarray(s.affine), DISPLAY_ORIENTATION)
    labels, _ = reorient(np.asarray(s.lesion_labels).astype(np.int64), np.asarray(s.affine), DISPLAY_ORIENTATION)
    spacing = voxel_sizes(aff)
    ns, na, nr = img.shape
    shown = cord | (labels > 0)  # lesions outside the cord stay in view
    s_ext, a_ext = _extent(shown.any(axis=(1, 2))), _extent(shown.any(axis=(0, 2)))
    per_r = cord.sum(axis=(0, 1), dtype=np.int64)
    r_centre = float(np.arange(nr) @ per_r) / float(per_r.sum()) if per_r.sum() else (nr - 1) / 2.0
    if s_ext is None or a_ext is None:
        s_range, a_range = (-0.5, ns - 0.5), (-0.5, na - 0.5)
    else:
        m_s, m_a = SAGITTAL_MARGIN_MM
        s_range = (max(s_ext[0] - m_s / spacing[0], -0.5), min(s_ext[1] + m_s / spacing[0], ns - 0.5))
        a_range = (max(a_ext[0] - m_a / spacing[1], -0.5), min(a_ext[1] + m_a / spacing[1], na - 0.5))
    return _View(img, cord, labels, spacing, min(max(_round(r_centre), 0), nr - 1), s_range, a_range)


def _draw(view: _View, pix_mm: float, colours: Mapping[int, int | None]) -> np.ndarray:
    """RGB panel of one session; ``colours`` maps each drawn lesion id to its track id (or None)."""
    h_mm, w_mm = view.size_mm
    rows = _Axis.centred(sum(view.s_range) / 2.0, max(1, _round(h_mm / pix_mm)), pix_mm, view.spacing[0])
    cols = _Axis.centred(sum(view.a_range) / 2.0, max(1, _round(w_mm / pix_mm)), pix_mm, view.spacing[1])
    values, inside = _sample_image(view.image[:, :, view.r_slice], rows, cols)
    rgb = np.repeat(_grey(values, inside)[:, :, None], 3, axis=2)
    rgb[_contour(_sample_mask(view.cord[:, :, view.r_slice], rows, cols))] = CORD_RGB
    for lid, track in sorted(colours.items()):
        shadow = _sample_mask((view.labels == lid).any(axis=2), rows, cols)
        outline = _contour(shadow)
        if track is None:
            yy, xx = np.nonzero(outline)
            on = ((yy + xx) // _DASH_PX) % 2 == 0
            rgb[yy[on], xx[on]] = UNTRACKED_RGB
            rgb[yy[~on], xx[~on]] = (0, 0, 0)
            continue
        colour = np.asarray(track_colour(track), dtype=np.float32)
        fill = shadow & ~outline
        rgb[fill] = np.clip(rgb[fill] * (1 - FILL_ALPHA) + colour * FILL_ALPHA + 0.5, 0, 255).astype(np.uint8)
        rgb[outline] = colour.astype(np.uint8)
    return rgb


def _units() -> tuple[dict[str, str], dict[str, str]]:
    """Units of the tracks and changes columns, from the schemas' field metadata."""
    from cohort_sciseg.schemas import CHANGES_SCHEMA, TRACKS_SCHEMA

    def of(schema: Any) -> dict[str, str]:
        return {f.name: f.metadata[b"unit"].decode() for f in schema if f.metadata and b"unit" in f.metadata}

    return of(TRACKS_SCHEMA), of(CHANGES_SCHEMA)


_TRACK_COLUMNS = ("ses", "session_index", "days_from_baseline", "lesion_id", "track_id", "event", "parent_track_ids",
                  "volume_mm3", "length_mm", "width_mm", "max_axial_damage_ratio", "dorsal_bridge_width_mm",
                  "ventral_bridge_width_mm", "total_bridge_width_mm")
_CHANGE_COLUMNS = ("ses_from", "ses_to", "days", "event", "track_id", "from_track_ids", "to_track_ids",
                   "volume_mm3_from", "volume_mm3_to", "volume_mm3_change", "volume_mm3_change_per_year",
                   "length_mm_change", "width_mm_change", "max_axial_damage_ratio_change",
                   "total_bridge_width_mm_change")


def _table(df: pd.DataFrame, columns: Sequence[str], units: Mapping[str, str]) -> dict[str, Any]:
    cols = [c for c in columns if c in df.columns and not (df[c].isna().all() and c not in ("track_id", "days"))]
    # a unit already in the name (volume_mm3) is not repeated; dimensionless ones are not shown
    heads = [f"{c} ({units[c]})" if units.get(c, "1") != "1" and f"_{units[c]}" not in c else c for c in cols]
    return {"columns": heads, "rows": [[_cell(v) for v in row] for row in df[cols].itertuples(index=False)]}


def _legend(tracks: pd.DataFrame, changes: pd.DataFrame) -> list[dict[str, Any]]:
    """One entry per track: colour, events over time, parents."""
    history: dict[int, list[tuple[int, str]]] = {}
    parents: dict[int, set[int]] = {}
    for rec in tracks.to_dict("records"):
        t = _track_id(rec.get("track_id"))
        if t is None:
            continue
        history.setdefault(t, []).append((int(rec.get("session_index", 0)), f"ses-{rec['ses']}: {rec['event']}"))
        parents.setdefault(t, set()).update(_ids(rec.get("parent_track_ids")))
    for rec in changes.to_dict("records"):
        to = _ids(rec.get("to_track_ids"))
        into = ", ".join(str(u) for u in to)
        for t in (t for t in _ids(rec.get("from_track_ids")) if t not in to):  # a track that stops here (resolved, or split/merged into new tracks)
            text = f"ses-{rec['ses_to']}: {rec['event']}" + (f" into {into}" if into else "")
            history.setdefault(t, []).append((int(rec["session_index_to"]), text))
    return [{"track_id": t, "colour": "rgb({}, {}, {})".format(*track_colour(t)),
             "events": [text for _, text in sorted(history[t], key=lambda x: x[0])],
             "parents": ", ".join(str(p) for p in sorted(parents.get(t, ())))} for t in sorted(history)]


def _ordered(sessions: Sequence[TimelineSession]) -> list[TimelineSession]:
    if all(s.days_from_baseline is not None and not math.isnan(s.days_from_baseline) for s in sessions):
        return sorted(sessions, key=lambda s: float(s.days_from_baseline or 0.0))
    return list(sessions)


def _day(days: float | None) -> str:
    return "day ?" if days is None or math.isnan(days) else f"day {_fmt(float(days), 1)}"


def write_subject_timeline(
    report_dir: Path,
    *,
    site: str,
    sub: str,
    sessions: Sequence[TimelineSession],
    tracks: pd.DataFrame,
    changes: pd.DataFrame,
) -> Path:
    """Write a subject's timeline page and its session images; return the page's path.

    Parameters
    ----------
    report_dir
        The report folder (``OUT_DIR/report``); the page is ``subjects/<site>/<sub>.html``.
    site, sub
        The subject's site and BIDS subject label.
    sessions
        The subject's sessions (see the module docstring for their order and drawing).
    tracks, changes
        The subject's rows of the tracks and changes tables (pandas, as ``to_pandas()`` gives
        them). A lesion's track is looked up by (``ses``, ``lesion_id``).

    Raises
    ------
    ReportError
        No session, a session given twice, a session whose arrays are not on one 3D grid, or a
        tracks table without ``ses``, ``lesion_id`` and ``track_id``.
    """
    _check(sub, sessions, tracks)
    ordered = _ordered(sessions)
    by_key = {(str(r["ses"]), int(r["lesion_id"])): _track_id(r["track_id"]) for r in tracks.to_dict("records")}
    views = [_view(s) for s in ordered]
    pix_mm = max(max(v.size_mm[0] / PANEL_HEIGHT_PX, v.size_mm[1] / PANEL_WIDTH_PX) for v in views)
    page = Path(report_dir) / SUBJECT_PAGES / _safe(site) / f"{_safe(sub)}.html"
    folder = page.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    shown, written = [], set()
    for s, view in zip(ordered, views, strict=True):
        ids = [int(i) for i in np.unique(view.labels) if i > 0]
        track_of = {lid: by_key.get((s.ses, lid)) if s.aligned else None for lid in ids}
        name = f"ses-{_safe(s.ses)}.png"
        w, h = _write_png(folder / name, _draw(view, pix_mm, track_of))
        written.add(name)
        shown.append({
            "ses": s.ses, "day": _day(s.days_from_baseline), "aligned": s.aligned,
            "baseline": s is ordered[0] and s.cord_dice is None,
            "dice": "" if s.cord_dice is None else _fmt(float(s.cord_dice)),
            "src": f"{quote(_safe(sub), safe='')}/{quote(name, safe='')}", "width": w, "height": h,
            "href": "../../" + scan_page_href(s.site, s.scan_id), "scan_id": s.scan_id,
            "lesions": [{"lesion_id": lid, "track_id": t, "colour": "rgb({}, {}, {})".format(*track_colour(t))}
                        for lid, t in track_of.items()],
        })
    for old in folder.iterdir():  # images of sessions no longer given
        if _PNG.match(old.name) and old.name not in written:
            old.unlink(missing_ok=True)
    track_units, change_units = _units()
    ordered_tracks = tracks.sort_values([c for c in ("session_index", "lesion_id") if c in tracks]) \
        if not tracks.empty else tracks
    html = _env.get_template("subject.html").render(
        version=__version__, generated="", root="../../", page="subjects", site=site, sub=sub,
        sessions=shown, pixel_mm=_fmt(pix_mm, 2), legend=_legend(tracks, changes),
        tracks=_table(ordered_tracks, _TRACK_COLUMNS, track_units),
        changes=_table(changes, _CHANGE_COLUMNS, change_units),
        untracked=UNTRACKED_RGB, alpha=_fmt(FILL_ALPHA, 2),
    )
    atomic_write_text(page, html)
    return page


def subject_summary(
    *, site: str, sub: str, sessions: Sequence[TimelineSession], tracks: pd.DataFrame, changes: pd.DataFrame
) -> dict[str, Any]:
    """The row of :func:`write_subjects_index` for a subject (same arguments as its page)."""
    n_tracks = int(tracks["track_id"].dropna().nunique()) if "track_id" in tracks else 0
    counts = changes["event"].value_counts().sort_index() if "event" in changes else pd.Series(dtype=int)
    return {
        "site": site, "sub": sub, "n_sessions": len(sessions), "n_tracks": n_tracks,
        "events": ", ".join(f"{n} {event}" for event, n in counts.items()),
        "failed_alignment": any(not s.aligned for s in sessions), "href": subject_page_href(site, sub),
    }


def write_subjects_index(report_dir: Path, subjects: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``report_dir/subjects.html``: one row per subject, linked to its page; return its path.

    Each row needs ``site`` and ``sub``; ``n_sessions``, ``n_tracks``, ``events`` (text),
    ``failed_alignment`` (bool) and ``href`` (default :func:`subject_page_href`) are shown when
    given (:func:`subject_summary` makes such a row).
    """
    rows = []
    for i, row in enumerate(subjects):
        if _missing(row.get("site")) or _missing(row.get("sub")):
            msg = format_error(f"subjects row {i} has no site or sub: {dict(row)!r}",
                               expected="a mapping with 'site' and 'sub'", fix="use subject_summary(...)")
            raise ReportError(msg)
        rows.append({
            "site": str(row["site"]), "sub": str(row["sub"]),
            "href": str(row.get("href") or subject_page_href(str(row["site"]), str(row["sub"]))),
            "n_sessions": _cell(row.get("n_sessions")), "n_tracks": _cell(row.get("n_tracks")),
            "events": _cell(row.get("events")), "failed": bool(row.get("failed_alignment", False)),
        })
    rows.sort(key=lambda r: (r["site"], r["sub"]))
    path = Path(report_dir) / "subjects.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, _env.get_template("subjects.html").render(
        version=__version__, generated="", root="", page="subjects", subjects=rows))
    return path
