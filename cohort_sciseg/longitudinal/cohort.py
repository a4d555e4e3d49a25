"""The longitudinal step of a run: every subject with several sessions aligned, tracked and tabulated.

:func:`analyze_run` reads a finished run (``tables/scans`` and ``tables/lesions``, the predicted
masks), groups the done scans by site, subject and acquisition (``acq``), and for every group
with two or more sessions:

1. orders the sessions by time (``sub-<label>_sessions.tsv``: ``acq_time``, else
   ``days_since_injury``; else by session label), the first is the baseline;
2. aligns each follow-up to the baseline within the cord (:func:`~cohort_sciseg.longitudinal.align.align_sessions`),
3. brings its lesion label map (:attr:`~cohort_sciseg.morphometry.LesionAnalysis.labels`, the
   ids of ``tables/lesions``) onto the baseline grid and tracks the lesions
   (:func:`~cohort_sciseg.longitudinal.tracking.track_lesions`) with the run's own per-lesion measures.

It writes ``tables/lesion_tracks``, ``tables/lesion_changes`` and ``tables/session_alignments``
(hive-partitioned by site like the run's other tables, rewritten whole each time), the per-subject
changes and their statistics (:mod:`cohort_sciseg.longitudinal.stats`) in ``longitudinal/``, and,
when asked, the subjects' timelines in the QC report. A subject that cannot be analysed (a mask
file gone, unreadable) becomes a problem naming the subject and the fix; the others go on.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from cohort_sciseg.errors import CohortSciSegError, LongitudinalError, format_error
from cohort_sciseg.io import RunLayout, load_nifti, read_partitioned_table, write_parquet
from cohort_sciseg.io.derivatives import image_folder
from cohort_sciseg.longitudinal.align import Alignment, align_sessions, resample_to_baseline
from cohort_sciseg.longitudinal.tracking import SessionLesions, track_lesions
from cohort_sciseg.morphometry import measure_lesions
from cohort_sciseg.schemas import (
    LESION_CHANGES_SCHEMA,
    LESION_TRACKS_SCHEMA,
    SESSION_ALIGNMENTS_SCHEMA,
)

__all__ = ["LongitudinalSummary", "SubjectSession", "analyze_run", "session_groups", "sessions_table"]

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class SubjectSession:
    """One done scan of a subject with several sessions, as the run recorded it."""

    site: str
    sub: str
    ses: str
    acq: str | None
    scan_id: str
    image: Path
    cord: Path
    lesion: Path
    time: Any = None  #: acq_time (date-time text) or days since injury, from sessions.tsv
    scores: dict[str, float] = field(default_factory=dict)  #: numeric columns of sessions.tsv


@dataclass
class LongitudinalSummary:
    """What :func:`analyze_run` did."""

    subjects: int = 0
    sessions: int = 0
    pairs: int = 0
    failed_alignments: int = 0
    problems: list[str] = field(default_factory=list)
    tables: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    def format(self) -> str:
        """One paragraph for the terminal."""
        if not self.subjects:
            return "longitudinal: no subject has several sessions of the same acquisition"
        text = (f"longitudinal: {self.subjects} subject(s), {self.sessions} session(s), {self.pairs} follow-up(s) "
                f"aligned to baseline ({self.failed_alignments} failed the cord Dice check)")
        return text + "".join(f"\n  problem: {p}" for p in self.problems)


def _natural(label: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", label))


def sessions_table(image: Path, sub: str, ses: str) -> dict[str, Any]:
    """The row of ``ses-<ses>`` in the subject's ``sub-<sub>_sessions.tsv`` (BIDS), ``{}`` without one."""
    try:
        root, _ = image_folder(image)
    except ValueError:
        return {}
    tsv = root / f"sub-{sub}" / f"sub-{sub}_sessions.tsv"
    if not tsv.is_file():
        return {}
    table = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
    if "session_id" not in table.columns:
        return {}
    rows = table[table["session_id"].isin([f"ses-{ses}", ses])]
    return rows.iloc[0].to_dict() if len(rows) else {}


def _session(rec: dict[str, Any], out: Path) -> SubjectSession:
    image = Path(str(rec["image_path"]))
    row = sessions_table(image, str(rec["sub"]), str(rec["ses"]))
    when: Any = row.get("acq_time") or None
    if when is None and row.get("days_since_injury") not in (None, "", "n/a"):
        when = float(row["days_since_injury"])
    scores = {}
    for k, v in row.items():
        if k in ("session_id", "acq_time", "days_since_injury"):
            continue
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(x):
            scores[k] = x
    acq = rec.get("acq")
    return SubjectSession(site=str(rec["site"]), sub=str(rec["sub"]), ses=str(rec["ses"]),
                          acq=None if acq is None or pd.isna(acq) else str(acq), scan_id=str(rec["scan_id"]),
                          image=image, cord=out / str(rec["cord_seg_path"]), lesion=out / str(rec["lesion_seg_path"]),
                          time=when, scores=scores)


def session_groups(scans: pd.DataFrame, out_dir: str | os.PathLike[str]) -> list[list[SubjectSession]]:
    """The done scans of ``scans`` (a run's scans table) grouped by site, subject and ``acq``, sessions in order.

    Only groups with two or more distinct sessions; a group with two scans of one session
    (two runs) keeps the last. Order: by ``acq_time`` when every session has one, else by
    ``days_since_injury`` when every session has it, else by the session label (natural order).
    """
    done = scans[(scans["status"].astype(str) == "done") & scans["ses"].notna()]
    done = done.drop_duplicates("scan_id", keep="last")
    out = Path(out_dir)
    groups = []
    acq = done["acq"].fillna("") if "acq" in done.columns else pd.Series("", index=done.index)
    for _, group in done.assign(_acq=acq).groupby(["site", "sub", "_acq"], sort=True):
        group = group.drop_duplicates("ses", keep="last")
        if len(group) < 2:
            continue
        sessions = [_session(r, out) for r in group.to_dict("records")]
        times = [s.time for s in sessions]
        if all(isinstance(t, str) for t in times):
            sessions.sort(key=lambda s: (pd.Timestamp(s.time), _natural(s.ses)))
        elif all(isinstance(t, float) for t in times):
            sessions.sort(key=lambda s: (s.time, _natural(s.ses)))
        else:
            sessions = [replace(s, time=None) for s in sessions]  # mixed kinds of time cannot be compared
            sessions.sort(key=lambda s: _natural(s.ses))
        groups.append(sessions)
    return groups


def _labels(s: SubjectSession, lesions: pd.DataFrame) -> tuple[Any, np.ndarray, np.ndarray]:
    """The session's image, cord mask and lesion label map (ids of the run's lesions table)."""
    volume = load_nifti(s.image, scan_id=s.scan_id)
    cord = np.asarray(load_nifti(s.cord, scan_id=s.scan_id).data) > 0.5
    lesion = np.asarray(load_nifti(s.lesion, scan_id=s.scan_id).data) > 0.5
    labels = measure_lesions(cord, lesion, volume.affine, scan_id=s.scan_id).labels
    n = int(labels.max()) if labels.size else 0
    if n != len(lesions):
        msg = format_error(f"the lesion mask has {n} lesion(s) and the run's lesions table {len(lesions)}",
                           scan_id=s.scan_id, path=s.lesion, expected="the masks the run measured",
                           fix="re-run `cohort-sciseg run --resume` so that the tables match the masks")
        raise LongitudinalError(msg, path=s.lesion, scan_id=s.scan_id)
    return volume, cord, labels


def _alignment_row(s: SubjectSession, base: SubjectSession, a: Alignment | None) -> dict[str, Any]:
    row: dict[str, Any] = {"site": s.site, "sub": s.sub, "ses": s.ses, "baseline_ses": base.ses,
                           "scan_id": s.scan_id, "baseline_scan_id": base.scan_id}
    if a is None:
        return {**row, "matrix": [float(x) for x in np.eye(4).ravel()], "ok": True, "cord_dice": 1.0,
                **dict.fromkeys(("rotation_deg_x", "rotation_deg_y", "rotation_deg_z"), 0.0),
                **dict.fromkeys(("translation_mm_x", "translation_mm_y", "translation_mm_z"), 0.0)}
    return {**row, "matrix": [float(x) for x in np.asarray(a.matrix).ravel()],
            **{f"rotation_deg_{k}": float(v) for k, v in zip("xyz", a.rotation_deg, strict=True)},
            **{f"translation_mm_{k}": float(v) for k, v in zip("xyz", a.translation_mm, strict=True)},
            "cord_dice": a.cord_dice, "ok": bool(a.ok), "message": a.message, "iterations": a.iterations,
            "seconds": a.seconds}


@dataclass
class SubjectResult:
    """One subject's tables and what its timeline needs."""

    tracks: pa.Table
    changes: pa.Table
    alignments: list[dict[str, Any]]
    views: list[dict[str, Any]]


def analyze_subject(
    sessions: Sequence[SubjectSession], lesions: pd.DataFrame, *, min_cord_dice: float = 0.7,
    threads: int = 1, keep_views: bool = False,
) -> SubjectResult:  # fmt: skip
    """Align, resample and track one subject's sessions (the first is the baseline)."""
    base = sessions[0]
    by_scan = {sid: g for sid, g in lesions.groupby("scan_id")} if len(lesions) else {}
    empty = lesions.iloc[0:0]
    b_vol, b_cord, b_labels = _labels(base, by_scan.get(base.scan_id, empty))
    shape, affine = b_labels.shape, b_vol.affine
    tracked = [SessionLesions(base.ses, b_labels, by_scan.get(base.scan_id, empty), time=base.time,
                              scan_id=base.scan_id)]
    rows = [_alignment_row(base, base, None)]
    views = [{"session": base, "image": b_vol, "cord": b_cord, "labels": b_labels, "alignment": None}]
    for s in sessions[1:]:
        vol, cord, labels = _labels(s, by_scan.get(s.scan_id, empty))
        a = align_sessions(b_vol, b_cord, vol, cord, min_cord_dice=min_cord_dice, threads=threads, scan_id=s.scan_id)
        moved = resample_to_baseline(labels, vol.affine, a, shape, affine)
        tracked.append(SessionLesions(s.ses, moved, by_scan.get(s.scan_id, empty), time=s.time, alignment=a,
                                      scan_id=s.scan_id))
        rows.append(_alignment_row(s, base, a))
        views.append({"session": s, "image": vol, "cord": cord, "labels": labels, "alignment": a})
    result = track_lesions(tracked, sub=base.sub)
    site = pa.array([base.site] * result.tracks.num_rows, pa.string())
    tracks = result.tracks.add_column(0, "site", site)
    changes = result.changes.add_column(0, "site", pa.array([base.site] * result.changes.num_rows, pa.string()))
    return SubjectResult(tracks, changes, rows, views if keep_views else [])


def _write_partitioned(folder: Path, table: pa.Table) -> Path:
    """``folder/site=<site>/part-0.parquet`` per site (site column dropped); stale sites removed."""
    folder.mkdir(parents=True, exist_ok=True)
    sites = sorted(set(table.column("site").to_pylist())) if table.num_rows else []
    for old in folder.glob("site=*"):
        if old.name.removeprefix("site=") not in sites:
            for f in old.glob("*"):
                f.unlink()
            old.rmdir()
    site_col = table.column("site")
    for site in sites:
        mask = pa.compute.equal(site_col, site)
        write_parquet(folder / f"site={site}" / "part-0.parquet", table.filter(mask).drop_columns(["site"]))
    return folder


def _table(rows: list[pa.Table] | list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    if rows and isinstance(rows[0], pa.Table):
        return pa.concat_tables([t.select(schema.names).cast(schema) for t in rows])  # type: ignore[union-attr]
    if rows:
        return pa.Table.from_pylist(rows, schema=schema)
    return schema.empty_table()


def analyze_run(
    out_dir: str | os.PathLike[str],
    *,
    min_cord_dice: float = 0.7,
    threads: int = 1,
    report: bool = True,
    on_subject: Callable[[str], None] | None = None,
) -> LongitudinalSummary:
    """The longitudinal step over a finished run (module docstring); returns what it did.

    Raises
    ------
    LongitudinalError
        ``out_dir`` has no scans table (not a run).
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    layout = RunLayout(out)
    scans_t = read_partitioned_table(layout.table("scans"))
    if scans_t is None:
        msg = format_error("no scans table (tables/scans/site=*/*.parquet) in this folder", path=out,
                           expected="the OUT_DIR of a finished `cohort-sciseg run`",
                           fix="pass the folder given to `cohort-sciseg run -o`")
        raise LongitudinalError(msg, path=out)
    lesions_t = read_partitioned_table(layout.table("lesions"))
    lesions = lesions_t.to_pandas() if lesions_t is not None else pd.DataFrame(columns=["scan_id", "lesion_id"])
    groups = session_groups(scans_t.to_pandas(), out)
    summary = LongitudinalSummary()
    if not groups:  # nothing to align: no table written
        summary.seconds = time.perf_counter() - t0
        return summary
    tracks, changes, alignments, timelines = [], [], [], []
    for sessions in groups:
        who = f"site {sessions[0].site} sub-{sessions[0].sub}"
        if on_subject is not None:
            on_subject(who)
        try:
            result = analyze_subject(sessions, lesions, min_cord_dice=min_cord_dice, threads=threads,
                                     keep_views=report)
        except (CohortSciSegError, OSError, ValueError) as exc:
            summary.problems.append(f"{who}: {exc}")
            logger.warning("longitudinal: %s not analysed: %s", who, exc)
            continue
        summary.subjects += 1
        summary.sessions += len(sessions)
        summary.pairs += len(sessions) - 1
        summary.failed_alignments += sum(not r["ok"] for r in result.alignments)
        tracks.append(result.tracks)
        changes.append(result.changes)
        alignments.extend(result.alignments)
        if report:
            timelines.append(result)
    frames = {"lesion_tracks": _table(tracks, LESION_TRACKS_SCHEMA),
              "lesion_changes": _table(changes, LESION_CHANGES_SCHEMA),
              "session_alignments": _table(alignments, SESSION_ALIGNMENTS_SCHEMA)}
    for name, table in frames.items():
        summary.tables[name] = _write_partitioned(layout.table(name), table)
    from cohort_sciseg.longitudinal.stats import write_statistics

    summary.tables.update(write_statistics(out, groups))
    if report and layout.report.is_dir():
        from cohort_sciseg.longitudinal.timelines import write_timelines

        write_timelines(layout.report, timelines)
    summary.seconds = time.perf_counter() - t0
    return summary
