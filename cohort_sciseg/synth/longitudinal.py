"""Synthetic longitudinal SCI cohorts: every subject scanned 2-3 times, with known motion and lesion change.

Layout written by :func:`synthesize_longitudinal_cohort`::

    <OUT>/
      site1/                                   one BIDS dataset per site
        dataset_description.json  README  participants.tsv  participants.json
        sub-01/sub-01_sessions.tsv             acq_time, days_since_injury, clinical scores
        sub-01/ses-01/anat/sub-01_ses-01_T2w.nii.gz (+ .json sidecar)
        sub-01/ses-02/anat/...  sub-01/ses-03/anat/...
        derivatives/labels/sub-01/ses-01/anat/sub-01_ses-01_T2w_seg-manual.nii.gz     cord
        derivatives/labels/sub-01/ses-01/anat/sub-01_ses-01_T2w_lesion-manual.nii.gz  lesion
      ground_truth/scans.parquet  lesions.parquet  motion.parquet  lesion_events.parquet
                   README.md  config.json

Every session is the same isotropic 3D T2w acquisition (the site-3 protocol of
:mod:`cohort_sciseg.synth.protocols` with a smaller field of view), acquired with the
subject moved rigidly relative to the first session (:class:`~cohort_sciseg.synth.evolution.Motion`):
the images' affines are the scanner's grids, and the anatomy is rendered through the
motion (voxel ``v`` of session ``k`` shows the baseline anatomy at ``T_k^-1 A_k v``).
Lesions evolve by scenario (:func:`~cohort_sciseg.synth.evolution.draw_evolution`):
shrink + new lesion, growth + resolved lesion, split, merge; four consecutive subjects
cover every event.

Randomness: each subject's draws come from generators seeded with ``(seed, site
number, subject number, purpose[, session])``, so a subject does not change when
subjects or sites are added.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from cohort_sciseg._version import __version__
from cohort_sciseg.errors import SynthError, format_error
from cohort_sciseg.io import (
    atomic_write_text,
    write_json,
    write_parquet,
)
from cohort_sciseg.synth import _bids
from cohort_sciseg.synth._grid import acquisition_grid
from cohort_sciseg.synth.anatomy import Anatomy, Lesion, max_axial_damage_ratio
from cohort_sciseg.synth.clinical import CLINICAL_COLUMNS, simulate_clinical_scores
from cohort_sciseg.synth.cohort import (
    _PARTICIPANTS_JSON,
    PARTICIPANT_COLUMNS,
    plan_subject,
    write_rendered_scan,
)
from cohort_sciseg.synth.cohort import scan_row as scan_row_of
from cohort_sciseg.synth.evolution import (
    LESION_EVENTS_SCHEMA,
    MOTION_SCHEMA,
    SCENARIOS,
    Motion,
    TrackedLesion,
    draw_evolution,
    draw_motion,
    event_rows,
    motion_row,
    moved_lesion,
)
from cohort_sciseg.synth.ground_truth import lesion_rows as lesion_rows_of
from cohort_sciseg.synth.ground_truth import (
    schema_markdown,
    write_ground_truth,
)
from cohort_sciseg.synth.protocols import SiteProtocol, site_protocol
from cohort_sciseg.synth.render import render_scan

__all__ = [
    "LESION_EVENTS_SCHEMA",
    "MOTION_SCHEMA",
    "SESSION_COLUMNS",
    "LongitudinalCohort",
    "synthesize_longitudinal_cohort",
]

logger = logging.getLogger(__name__)

#: Columns of each subject's ``sub-<label>_sessions.tsv``, in order.
SESSION_COLUMNS = ("session_id", "acq_time", "days_since_injury", *CLINICAL_COLUMNS)

_FOV_MM = (32.0, 44.0, 100.0)  # small: one session renders in a fraction of a second
_MAX_ROTATION_DEG = 10.0
_MAX_TRANSLATION_MM = 10.0
_EPOCH = dt.datetime(2020, 1, 6, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class LongitudinalCohort:
    """What :func:`synthesize_longitudinal_cohort` wrote.

    Attributes
    ----------
    out_dir
        The cohort folder (absolute).
    dataset_roots
        The BIDS datasets, one per site (absolute).
    scans_table, lesions_table
        ``ground_truth/scans.parquet`` (one row per session image) and ``lesions.parquet``
        (one row per lesion per image), as for :func:`~cohort_sciseg.synth.synthesize_cohort`.
    motion_table
        ``ground_truth/motion.parquet`` (:data:`MOTION_SCHEMA`).
    lesion_events_table
        ``ground_truth/lesion_events.parquet`` (:data:`LESION_EVENTS_SCHEMA`).
    n_sites, n_subjects, n_sessions, n_scans, n_lesions, n_tracks
        Counts: sites, subjects, sessions per subject, images, lesions over all
        images, lesion tracks over all subjects.
    seed
        The seed used.
    """

    out_dir: Path
    dataset_roots: tuple[Path, ...]
    scans_table: Path
    lesions_table: Path
    motion_table: Path
    lesion_events_table: Path
    n_sites: int
    n_subjects: int
    n_sessions: int
    n_scans: int
    n_lesions: int
    n_tracks: int
    seed: int


@dataclass(frozen=True, slots=True)
class _Session:
    ses: str
    number: int
    days_since_injury: int
    acq_time: str
    motion: Motion
    tracks: tuple[TrackedLesion, ...]
    fov_centre_mm: tuple[float, float, float]

    @property
    def lesions(self) -> tuple[Lesion, ...]:
        """Lesions present (baseline world), in track order."""
        return tuple(t.lesion for t in self.tracks if t.lesion is not None)


@dataclass(frozen=True, slots=True)
class _Subject:
    site: str
    site_number: int
    sub: str
    subject_number: int
    scenario: str
    anatomy: Anatomy
    orientation: str
    oblique_deg: float
    participant: dict[str, Any]
    sessions: tuple[_Session, ...]
    session_rows: tuple[dict[str, Any], ...]


def _protocol(site_number: int) -> SiteProtocol:
    # the isotropic geometry at every site; vendors vary with the site as in synthesize_cohort
    return replace(site_protocol(3 * site_number), fov_mm=_FOV_MM)


def _check_number(name: str, value: object, top: float, example: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(float(value))
        or not 0.0 <= float(value) <= top
    ):
        msg = format_error(
            f"{name}={value!r} is not valid",
            expected=f"a number between 0 and {top:g} (0: no motion of that kind)",
            fix=f"pass e.g. {name}={example}",
        )
        raise SynthError(msg)
    return float(value)


def _check_options(
    sites: object,
    subjects_per_site: object,
    sessions: object,
    seed: object,
    max_rotation_deg: object,
    max_translation_mm: object,
) -> None:
    _bids.check_int("sites", sites, 1)
    _bids.check_int("subjects_per_site", subjects_per_site, 1)
    _bids.check_int("seed", seed, 0)
    if isinstance(sessions, bool) or sessions not in (2, 3):
        msg = format_error(
            f"sessions={sessions!r} is not valid",
            expected="2 or 3 (sessions per subject: ses-01 baseline, ses-02, ses-03)",
            fix="pass sessions=2 or sessions=3",
        )
        raise SynthError(msg)
    _check_number("max_rotation_deg", max_rotation_deg, _MAX_ROTATION_DEG, "5.0")
    _check_number("max_translation_mm", max_translation_mm, _MAX_TRANSLATION_MM, "4.0")


def _session_scores(
    seed: int, site: int, sub: int, anatomy: Anatomy, lesions: tuple[Lesion, ...]
) -> dict[str, Any]:
    # the same generator state at every session: scores differ only through the lesion burden
    rng = np.random.default_rng([seed, site, sub, 2])
    volume = float(sum(les.volume_mm3 for les in lesions))
    return dict(simulate_clinical_scores(volume, max_axial_damage_ratio(anatomy, lesions), rng))


def _plan_subject(
    seed: int,
    site_number: int,
    subject_number: int,
    *,
    sessions: int,
    width: int,
    max_rotation_deg: float,
    max_translation_mm: float,
) -> _Subject:
    base = plan_subject(seed, site_number, subject_number, implant_fraction=0.0, label_width=width)
    protocol = _protocol(site_number)
    anatomy = base.anatomy
    p = base.participant_dict
    scenario = SCENARIOS[(subject_number + site_number - 2) % len(SCENARIOS)]
    tracks = draw_evolution(
        anatomy,
        np.random.default_rng([seed, site_number, subject_number, 20]),
        scenario=scenario,
        sessions=sessions,
        etiology=p["etiology"],
        injury_level=p["injury_level"],
    )
    z0 = np.asarray(anatomy.origin_mm[2])
    pivot = (float(anatomy.centre_x(z0)), float(anatomy.centre_y(z0)), float(z0))
    rng = np.random.default_rng([seed, site_number, subject_number, 21])
    injury_day = _EPOCH + dt.timedelta(days=int(rng.integers(0, 730)))
    gaps = (0, int(rng.integers(70, 130)), int(rng.integers(150, 260)))
    days = int(p["days_since_injury"])
    out, rows = [], []
    for k in range(sessions):
        days += gaps[k]
        motion = Motion(pivot_mm=pivot)
        if k > 0:
            motion = draw_motion(
                np.random.default_rng([seed, site_number, subject_number, 22, k + 1]),
                pivot,
                max_rotation_deg=max_rotation_deg,
                max_translation_mm=max_translation_mm,
            )
        # the FOV is planned on the subject as it lies at this session, with a small jitter
        centre = motion.matrix @ np.array([*anatomy.origin_mm, 1.0])
        centre[:3] += np.array([0.0, 3.0, 0.0]) + rng.uniform(-1.0, 1.0, 3) * np.array(
            [1.5, 1.5, 3.0]
        )
        when = injury_day + dt.timedelta(days=days, minutes=int(rng.integers(7 * 60, 18 * 60)))
        ses = _Session(
            ses=f"{k + 1:02d}",
            number=k + 1,
            days_since_injury=days,
            acq_time=when.isoformat(timespec="seconds"),
            motion=motion,
            tracks=tracks[k],
            fov_centre_mm=(float(centre[0]), float(centre[1]), float(centre[2])),
        )
        out.append(ses)
        scores = _session_scores(seed, site_number, subject_number, anatomy, ses.lesions)
        rows.append(
            {
                "session_id": f"ses-{ses.ses}",
                "acq_time": ses.acq_time,
                "days_since_injury": days,
                **scores,
            }
        )
    participant = {**p, **{c: rows[0][c] for c in CLINICAL_COLUMNS}}
    return _Subject(
        site=f"site{site_number}",
        site_number=site_number,
        sub=base.sub,
        subject_number=subject_number,
        scenario=scenario,
        anatomy=anatomy,
        orientation=protocol.orientations[(subject_number - 1) % len(protocol.orientations)],
        oblique_deg=protocol.oblique_deg[(subject_number - 1) % len(protocol.oblique_deg)],
        participant=participant,
        sessions=tuple(out),
        session_rows=tuple(rows),
    )


def _write_site_files(root: Path, site: str, subjects: list[_Subject], seed: int) -> None:
    desc = f"synthesize_longitudinal_cohort(seed={seed}): synthetic isotropic 3D T2w, {site}"
    _bids.write_dataset_description(
        root, f"cohort-sciseg synthetic longitudinal SCI cohort, {site}", desc
    )
    _bids.write_dataset_description(
        root / "derivatives" / "labels",
        f"Analytic manual labels of {site}",
        desc + "; cord (_seg-manual) and lesion (_lesion-manual) masks, exact at voxel centres",
        derivative=True,
    )
    atomic_write_text(
        root / "README",
        f"Synthetic longitudinal spinal cord injury T2w data ({site}), generated by cohort-sciseg "
        f"{__version__} with seed {seed}. Not real patients. Ground truth (motion between "
        "sessions, lesion tracks): ../ground_truth/.\n",
    )
    _bids.write_tsv(
        root / "participants.tsv", PARTICIPANT_COLUMNS, [s.participant for s in subjects]
    )
    write_json(root / "participants.json", _PARTICIPANTS_JSON)
    for s in subjects:
        _bids.write_tsv(
            root / f"sub-{s.sub}" / f"sub-{s.sub}_sessions.tsv", SESSION_COLUMNS, s.session_rows
        )


def _write_session(
    out: Path, root: Path, subject: _Subject, session: _Session, seed: int
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
    protocol = _protocol(subject.site_number)
    affine, shape = acquisition_grid(
        subject.orientation,
        protocol.voxel_mm,
        protocol.fov_mm,
        session.fov_centre_mm,
        oblique_deg=subject.oblique_deg,
    )
    rng = np.random.default_rng(
        [seed, subject.site_number, subject.subject_number, 1, session.number]
    )
    # the scanner grid seen from the baseline subject: voxel v shows anatomy at T^-1 A v
    rendered = render_scan(
        subject.anatomy,
        session.lesions,
        session.motion.inverse @ affine,
        shape,
        rng=rng,
        snr=protocol.snr,
        gain=protocol.gain,
        dtype=protocol.dtype,
    )
    moved = tuple(moved_lesion(les, session.motion) for les in session.lesions)
    written = write_rendered_scan(out, root, site=subject.site, sub=subject.sub, ses=session.ses, protocol=protocol,
                                  rendered=rendered, affine=affine, n_lesions=len(moved))
    ids, m, voxel_volume = written.ids, written.measures, written.voxel_volume_mm3
    rows = lesion_rows_of(
        ids,
        moved,
        m,
        voxel_volume_mm3=voxel_volume,
        lesion_mask_path=_bids.relpath(written.lesion_path, out),
    )
    for row, les in zip(rows, session.lesions, strict=True):
        row["vertebral_level"] = subject.anatomy.level_at(les.centre_mm[2])  # baseline frame
    scan_row = scan_row_of(
        out, written, affine, shape,
        analytic_volume_mm3=float(sum(les.volume_mm3 for les in session.lesions)),
        analytic_damage_ratio=max_axial_damage_ratio(subject.anatomy, session.lesions),
        implant=None, quality=1.0,
    )  # fmt: skip
    return (
        scan_row,
        rows,
        motion_row(ids, session.motion),
        event_rows(ids, session.tracks, moved, m.lesion_voxels, subject.scenario),
    )


def _write_tables(
    out: Path,
    scan_rows: list[dict[str, Any]],
    lesion_rows: list[dict[str, Any]],
    motion_rows: list[dict[str, Any]],
    event_rows: list[dict[str, Any]],
    config: dict[str, Any],
) -> tuple[Path, Path, Path, Path]:
    lesions_path, scans_path = write_ground_truth(out, scan_rows, lesion_rows, config)
    gt = out / "ground_truth"
    motion_path = write_parquet(
        gt / "motion.parquet", pa.Table.from_pylist(motion_rows, schema=MOTION_SCHEMA)
    )
    events_path = write_parquet(
        gt / "lesion_events.parquet", pa.Table.from_pylist(event_rows, schema=LESION_EVENTS_SCHEMA)
    )
    readme = gt / "README.md"
    atomic_write_text(
        readme,
        readme.read_text(encoding="utf-8")
        + "\n## motion.parquet\n\nOne row per session image. The subject moved rigidly between "
        "sessions: x_k = R (x_0 - p) + p + t, R = Rz Ry Rx; `matrix` is the inverse, mapping the "
        "session's scanner world to the baseline's.\n\n"
        + schema_markdown(MOTION_SCHEMA)
        + "\n## lesion_events.parquet\n\nOne row per lesion track per session (a resolved track has "
        "one row, at the session where it is gone; a split or merged parent has none after).\n\n"
        + schema_markdown(LESION_EVENTS_SCHEMA),
    )
    return scans_path, lesions_path, motion_path, events_path


def synthesize_longitudinal_cohort(
    out_dir: str | os.PathLike[str],
    *,
    sites: int = 1,
    subjects_per_site: int = 4,
    sessions: int = 3,
    seed: int = 0,
    max_rotation_deg: float = 5.0,
    max_translation_mm: float = 4.0,
) -> LongitudinalCohort:
    """Write a synthetic longitudinal SCI T2w cohort with known motion and lesion change.

    One BIDS dataset per site (``<out_dir>/site1``, ...), every subject with ``sessions``
    sessions of the same isotropic 3D T2w acquisition (0.9 mm, 32 x 44 x 100 mm field of
    view), cord and lesion masks in ``derivatives/labels`` (``_seg-manual``,
    ``_lesion-manual``), ``participants.tsv`` (baseline scores) and per-subject
    ``sessions.tsv`` (:data:`SESSION_COLUMNS`: ISO ``acq_time``, ``days_since_injury``,
    the session's clinical scores), and ground truth in ``<out_dir>/ground_truth``:
    ``scans.parquet`` and ``lesions.parquet`` (as :func:`~cohort_sciseg.synth.synthesize_cohort`;
    lesion centres and axes in each session's scanner space), ``motion.parquet``
    (:data:`MOTION_SCHEMA`) and ``lesion_events.parquet`` (:data:`LESION_EVENTS_SCHEMA`).

    Parameters
    ----------
    out_dir
        New or empty folder.
    sites
        Number of sites (>= 1); vendors vary with the site, the geometry does not.
    subjects_per_site
        Subjects per site (>= 1). Scenarios (:data:`~cohort_sciseg.synth.evolution.SCENARIOS`)
        cycle over subjects, so four subjects of a site cover every lesion event.
    sessions
        Sessions per subject, 2 or 3 (``ses-01`` is the baseline).
    seed
        Non-negative seed; the same seed gives byte-identical files.
    max_rotation_deg
        Largest subject rotation about each world axis between the baseline and a later
        session, degrees (0-10).
    max_translation_mm
        Largest subject translation along each world axis, mm (0-10).

    Returns
    -------
    LongitudinalCohort

    Raises
    ------
    SynthError
        Bad option values, or ``out_dir`` not empty.
    """
    _check_options(sites, subjects_per_site, sessions, seed, max_rotation_deg, max_translation_mm)
    out = _bids.prepare_output(out_dir)
    width = max(2, len(str(subjects_per_site)))
    scan_rows: list[dict[str, Any]] = []
    lesion_rows: list[dict[str, Any]] = []
    motion_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    roots = []
    n_tracks = 0
    for s in range(1, sites + 1):
        subjects = [
            _plan_subject(
                seed,
                s,
                i,
                sessions=sessions,
                width=width,
                max_rotation_deg=float(max_rotation_deg),
                max_translation_mm=float(max_translation_mm),
            )
            for i in range(1, subjects_per_site + 1)
        ]
        root = out / f"site{s}"
        roots.append(root)
        _write_site_files(root, f"site{s}", subjects, seed)
        for subject in subjects:
            n_tracks += len({t.track_id for ses in subject.sessions for t in ses.tracks})
            for session in subject.sessions:
                scan_row, rows, motion_row, events = _write_session(
                    out, root, subject, session, seed
                )
                scan_rows.append(scan_row)
                lesion_rows.extend(rows)
                motion_rows.append(motion_row)
                event_rows.extend(events)
        logger.info("wrote %s: %d subjects x %d sessions", root, len(subjects), sessions)
    config = {
        "function": "synthesize_longitudinal_cohort",
        "sites": sites,
        "subjects_per_site": subjects_per_site,
        "sessions": sessions,
        "seed": seed,
        "max_rotation_deg": float(max_rotation_deg),
        "max_translation_mm": float(max_translation_mm),
    }
    scans_path, lesions_path, motion_path, events_path = _write_tables(
        out, scan_rows, lesion_rows, motion_rows, event_rows, config
    )
    return LongitudinalCohort(
        out_dir=out,
        dataset_roots=tuple(roots),
        scans_table=scans_path.absolute(),
        lesions_table=lesions_path.absolute(),
        motion_table=motion_path.absolute(),
        lesion_events_table=events_path.absolute(),
        n_sites=sites,
        n_subjects=sites * subjects_per_site,
        n_sessions=sessions,
        n_scans=len(scan_rows),
        n_lesions=len(lesion_rows),
        n_tracks=n_tracks,
        seed=seed,
    )
