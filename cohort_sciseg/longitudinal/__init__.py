"""Longitudinal cohorts: align follow-up sessions to the baseline and track lesions across sessions.

:func:`align_sessions` registers a follow-up image to its baseline image within the spinal cord
(SimpleITK, rigid by default) and says whether the result can be trusted (:attr:`Alignment.ok`);
:func:`resample_to_baseline` brings a follow-up mask or label map onto the baseline grid;
:func:`track_lesions` matches the lesions of consecutive sessions by overlap in the baseline
space and tabulates tracks (:data:`TRACKS_SCHEMA`) and per-interval changes (:data:`CHANGES_SCHEMA`).
:func:`analyze_run` does all of it for the subjects of a finished run (``cohort-sciseg longitudinal``,
and the end of ``cohort-sciseg run``).
"""

from __future__ import annotations

from cohort_sciseg.errors import LongitudinalError
from cohort_sciseg.longitudinal.align import (
    DEFAULT_MARGIN_MM,
    DEFAULT_MIN_CORD_DICE,
    Alignment,
    align_sessions,
    resample_to_baseline,
)
from cohort_sciseg.longitudinal.cohort import LongitudinalSummary, analyze_run, session_groups
from cohort_sciseg.longitudinal.tracking import (
    CHANGES_SCHEMA,
    EVENTS,
    MEASURES,
    TRACKS_SCHEMA,
    LesionTracks,
    SessionLesions,
    track_lesions,
)

__all__ = [
    "CHANGES_SCHEMA",
    "DEFAULT_MARGIN_MM",
    "DEFAULT_MIN_CORD_DICE",
    "EVENTS",
    "MEASURES",
    "TRACKS_SCHEMA",
    "Alignment",
    "LesionTracks",
    "LongitudinalError",
    "LongitudinalSummary",
    "SessionLesions",
    "align_sessions",
    "analyze_run",
    "resample_to_baseline",
    "session_groups",
    "track_lesions",
]
