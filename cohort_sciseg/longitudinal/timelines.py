"""The longitudinal step's pages in the run's QC report: one timeline per subject and their index.

Each subject's sessions are drawn on their own grids (:mod:`cohort_sciseg.report.timeline`), each
lesion coloured by its track (``tables/lesion_tracks``); ``report/subjects.html`` lists the subjects,
and the report's Cohort page links to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cohort_sciseg.report.timeline import (
    TimelineSession,
    subject_summary,
    write_subject_timeline,
    write_subjects_index,
)

__all__ = ["write_timelines"]


def _sessions(views: Sequence[dict[str, Any]], tracks: Any) -> list[TimelineSession]:
    days = dict(zip(tracks["ses"], tracks["days_from_baseline"], strict=True)) if len(tracks) else {}
    out = []
    for v in views:
        s, a = v["session"], v["alignment"]
        d = days.get(s.ses)
        out.append(TimelineSession(
            ses=s.ses, scan_id=s.scan_id, site=s.site, image=v["image"].data, affine=v["image"].affine,
            cord=v["cord"], lesion_labels=v["labels"], days_from_baseline=None if d is None or d != d else float(d),
            aligned=a is None or bool(a.ok), cord_dice=None if a is None else float(a.cord_dice),
        ))
    return out


def write_timelines(report_dir: Path, results: Sequence[Any]) -> Path | None:
    """Write every subject's timeline and ``subjects.html``; None when there is no subject."""
    rows = []
    for r in results:
        if not r.views:
            continue
        tracks, changes = r.tracks.to_pandas(), r.changes.to_pandas()
        base = r.views[0]["session"]
        sessions = _sessions(r.views, tracks)
        write_subject_timeline(report_dir, site=base.site, sub=base.sub, sessions=sessions, tracks=tracks,
                               changes=changes)
        rows.append(subject_summary(site=base.site, sub=base.sub, sessions=sessions, tracks=tracks, changes=changes))
    return write_subjects_index(report_dir, rows) if rows else None
