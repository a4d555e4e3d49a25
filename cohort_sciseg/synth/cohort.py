"""Synthetic multi-site SCI cohorts: one BIDS dataset per site, with analytic ground truth.

Layout written by :func:`synthesize_cohort`::

    <OUT>/
      site1/                                  one BIDS dataset per site
        dataset_description.json  README  participants.tsv  participants.json
        sub-01/anat/sub-01_acq-sag_T2w.nii.gz (+ .json sidecar)
        derivatives/labels/dataset_description.json
        derivatives/labels/sub-01/anat/sub-01_acq-sag_T2w_seg-manual.nii.gz     cord
        derivatives/labels/sub-01/anat/sub-01_acq-sag_T2w_lesion-manual.nii.gz  lesion
      site2/ ... sub-02/ses-01/anat/sub-02_ses-01_acq-ax_T2w.nii.gz, sub-02/sub-02_sessions.tsv
      site3/ ...
      ground_truth/lesions.parquet  scans.parquet  config.json

Randomness: every subject draws from its own generator seeded with
``(seed, site number, subject number, purpose)``, so a subject does not change
when subjects or sites are added, and the output does not depend on the order
in which scans are written.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cohort_sciseg._version import __version__
from cohort_sciseg.errors import SynthError, format_error
from cohort_sciseg.io import (
    atomic_write_text,
    write_json,
)
from cohort_sciseg.synth import _bids
from cohort_sciseg.synth._grid import acquisition_grid
from cohort_sciseg.synth.anatomy import (
    Anatomy,
    Implant,
    Lesion,
    draw_anatomy,
    draw_implant,
    draw_lesions,
    max_axial_damage_ratio,
)
from cohort_sciseg.synth.clinical import CLINICAL_COLUMNS, simulate_clinical_scores
from cohort_sciseg.synth.ground_truth import lesion_rows as lesion_rows_of
from cohort_sciseg.synth.ground_truth import write_ground_truth
from cohort_sciseg.synth.protocols import SiteProtocol, site_protocol
from cohort_sciseg.synth.render import render_scan
from cohort_sciseg.synth.scanfiles import CORD_SUFFIX, LESION_SUFFIX, scan_row, write_rendered_scan

__all__ = [
    "CORD_SUFFIX",
    "LESION_SUFFIX",
    "PARTICIPANT_COLUMNS",
    "ScanPlan",
    "SubjectPlan",
    "SynthCohort",
    "plan_cohort",
    "plan_subject",
    "synthesize_cohort",
]

logger = logging.getLogger(__name__)


#: Columns of the synthetic ``participants.tsv``, in order.
PARTICIPANT_COLUMNS = (
    "participant_id",
    "age",
    "sex",
    "etiology",
    "injury_level",
    "days_since_injury",
    "implants",
    *CLINICAL_COLUMNS,
)

_ETIOLOGIES = ("traumatic", "ischemic", "hemorrhagic")
_INJURY_LEVELS = ("C3", "C4", "C5", "C6", "C7")
_N_LESION_PROBS = (0.1, 0.5, 0.28, 0.12)  # P(0, 1, 2, 3 lesions)
_FOLLOW_UP_SHRINK = 0.85  # oedema resolves between sessions
_MIN_SEMI_AXES = (2.0, 1.3, 6.0)


@dataclass(frozen=True, slots=True)
class SynthCohort:
    """What :func:`synthesize_cohort` or :func:`insert_lesions` wrote.

    Attributes
    ----------
    out_dir
        The cohort folder (absolute).
    dataset_roots
        The BIDS datasets written, one per site (absolute).
    lesions_table
        ``<out_dir>/ground_truth/lesions.parquet``: one row per lesion.
    scans_table
        ``<out_dir>/ground_truth/scans.parquet``: one row per image.
    n_sites, n_subjects, n_scans, n_lesions
        Counts of what was written.
    seed
        The seed used.
    """

    out_dir: Path
    dataset_roots: tuple[Path, ...]
    lesions_table: Path
    scans_table: Path
    n_sites: int
    n_subjects: int
    n_scans: int
    n_lesions: int
    seed: int


@dataclass(frozen=True, slots=True)
class ScanPlan:
    """One image to render: entities, geometry, and the lesions visible in it.

    ``quality`` (0-1, 1 = the site's protocol) scales the image's signal-to-noise ratio and
    its lesions' oedema contrast above the cord (:func:`degraded`).
    """

    ses: str | None
    session_number: int
    orientation: str
    oblique_deg: float
    fov_centre_mm: tuple[float, float, float]
    lesions: tuple[Lesion, ...]
    days_since_injury: int
    quality: float = 1.0


@dataclass(frozen=True, slots=True)
class SubjectPlan:
    """Everything drawn for one subject before any voxel is rendered.

    Attributes
    ----------
    site, site_number, sub, subject_number
        Where the subject belongs (``site`` is ``"site<site_number>"``).
    protocol
        The site's acquisition protocol.
    anatomy, lesions, implant
        Analytic subject (world mm); ``implant`` is ``None`` without implant.
    participant
        Row of ``participants.tsv`` (keys :data:`PARTICIPANT_COLUMNS`).
    scans
        The subject's images (one, or two sessions at a follow-up site).
    """

    site: str
    site_number: int
    sub: str
    subject_number: int
    protocol: SiteProtocol
    anatomy: Anatomy
    lesions: tuple[Lesion, ...]
    implant: Implant | None
    participant: tuple[tuple[str, Any], ...]
    scans: tuple[ScanPlan, ...]

    @property
    def participant_dict(self) -> dict[str, Any]:
        """``participants.tsv`` row as a dict."""
        return dict(self.participant)


def _shrunk(les: Lesion, factor: float) -> Lesion:
    semi = tuple(
        max(lo, s * factor) for s, lo in zip(les.semi_axes_mm, _MIN_SEMI_AXES, strict=True)
    )
    return replace(les, semi_axes_mm=(semi[0], semi[1], semi[2]))


def degraded(lesion: Lesion, quality: float) -> Lesion:
    """``lesion`` with its oedema's excess contrast over the cord scaled by ``quality`` (1: unchanged)."""
    if quality == 1.0:
        return lesion
    return replace(lesion, contrast=1.0 + (lesion.contrast - 1.0) * quality)


def plan_subject(
    seed: int,
    site_number: int,
    subject_number: int,
    *,
    implant_fraction: float = 0.25,
    label_width: int = 2,
    quality_spread: float = 0.0,
) -> SubjectPlan:
    """Draw one subject (anatomy, lesions, implant, demographics, scores, scans).

    Parameters
    ----------
    seed
        Cohort seed.
    site_number, subject_number
        1-based site and subject numbers; with ``seed`` they seed the subject's generators.
    implant_fraction
        Probability that the subject has a metal implant at the injury level.
    label_width
        Zero-padding of the subject label (``"01"`` for 2).
    quality_spread
        0: every image at its site's protocol. ``s`` in (0, 1): each image draws a quality
        ``q ~ U(1 - s, 1)`` (its own generator, so the other draws do not change) that
        scales its signal-to-noise ratio and its lesions' excess contrast (faint lesions in
        noisy images: scans a model gets wrong unevenly, as in real cohorts).
    """
    protocol = site_protocol(site_number)
    rng = np.random.default_rng([seed, site_number, subject_number, 0])
    anatomy = draw_anatomy(rng)
    etiology = str(rng.choice(_ETIOLOGIES, p=(0.7, 0.15, 0.15)))
    level = str(rng.choice(_INJURY_LEVELS, p=(0.1, 0.2, 0.3, 0.25, 0.15)))
    n_lesions = int(rng.choice(len(_N_LESION_PROBS), p=_N_LESION_PROBS))
    lesions = draw_lesions(anatomy, rng, n=n_lesions, etiology=etiology, injury_level=level)
    implant_drawn = draw_implant(anatomy, rng, level=level)
    implant = implant_drawn if rng.random() < implant_fraction else None
    age = int(np.clip(np.rint(rng.normal(48, 17)), 18, 85))
    sex = "M" if rng.random() < 0.78 else "F"
    days = int(np.clip(np.rint(rng.lognormal(1.8, 0.9)), 0, 120))
    follow_days = days + int(rng.integers(150, 400))
    jitter = rng.uniform(-1.0, 1.0, size=(2, 3)) * np.array([2.0, 2.0, 5.0])

    sub = f"{subject_number:0{label_width}d}"
    n_orient = len(protocol.orientations)
    sessions = [(1, lesions, days)]
    if protocol.follow_up and subject_number % 2 == 0:
        sessions.append((2, tuple(_shrunk(les, _FOLLOW_UP_SHRINK) for les in lesions), follow_days))
    scans = []
    for k, (ses_no, ses_lesions, ses_days) in enumerate(sessions):
        centre = np.asarray(anatomy.origin_mm) + np.array([0.0, 3.0, 0.0]) + jitter[k]
        quality = 1.0
        if quality_spread > 0.0:
            draw = np.random.default_rng([seed, site_number, subject_number, 3, ses_no])
            quality = float(draw.uniform(1.0 - quality_spread, 1.0))
        scans.append(
            ScanPlan(
                ses=f"{ses_no:02d}" if protocol.follow_up else None,
                session_number=ses_no,
                orientation=protocol.orientations[(subject_number - 1 + k) % n_orient],
                oblique_deg=protocol.oblique_deg[(subject_number - 1) % len(protocol.oblique_deg)],
                fov_centre_mm=(float(centre[0]), float(centre[1]), float(centre[2])),
                lesions=tuple(degraded(les, quality) for les in ses_lesions),
                days_since_injury=ses_days,
                quality=quality,
            )
        )

    volume = float(sum(les.volume_mm3 for les in lesions))
    ratio = max_axial_damage_ratio(anatomy, lesions)
    scores = simulate_clinical_scores(
        volume, ratio, np.random.default_rng([seed, site_number, subject_number, 2])
    )
    participant: dict[str, Any] = {
        "participant_id": f"sub-{sub}",
        "age": age,
        "sex": sex,
        "etiology": etiology,
        "injury_level": level,
        "days_since_injury": days,
        "implants": "yes" if implant is not None else "no",
        **scores,
    }
    return SubjectPlan(
        site=f"site{site_number}",
        site_number=site_number,
        sub=sub,
        subject_number=subject_number,
        protocol=protocol,
        anatomy=anatomy,
        lesions=lesions,
        implant=implant,
        participant=tuple((c, participant[c]) for c in PARTICIPANT_COLUMNS),
        scans=tuple(scans),
    )


def _check_options(
    sites: object,
    subjects_per_site: object,
    seed: object,
    implant_fraction: object,
    quality_spread: object = 0.0,
) -> None:
    _bids.check_int("sites", sites, 1)
    _bids.check_int("subjects_per_site", subjects_per_site, 1)
    _bids.check_int("seed", seed, 0)
    if (
        isinstance(implant_fraction, bool)
        or not isinstance(implant_fraction, (int, float))
        or not 0.0 <= float(implant_fraction) <= 1.0
    ):
        msg = format_error(
            f"implant_fraction={implant_fraction!r} is not valid",
            expected="a number between 0 and 1 (the fraction of subjects with a metal implant)",
            fix="pass e.g. implant_fraction=0.25",
        )
        raise SynthError(msg)
    if (
        isinstance(quality_spread, bool)
        or not isinstance(quality_spread, (int, float))
        or not 0.0 <= float(quality_spread) < 1.0
    ):
        msg = format_error(
            f"quality_spread={quality_spread!r} is not valid",
            expected="a number in [0, 1): 0 for every image at its site's protocol, s for image qualities "
            "drawn in [1 - s, 1] (signal-to-noise ratio and lesion contrast scaled)",
            fix="pass e.g. quality_spread=0.7 (synth: --quality-spread 0.7)",
        )
        raise SynthError(msg)


def plan_cohort(
    *,
    sites: int = 3,
    subjects_per_site: int = 4,
    seed: int = 0,
    implant_fraction: float = 0.25,
    quality_spread: float = 0.0,
) -> tuple[SubjectPlan, ...]:
    """Draw every subject of a cohort without rendering images (fast; see :func:`plan_subject`)."""
    _check_options(sites, subjects_per_site, seed, implant_fraction, quality_spread)
    width = max(2, len(str(subjects_per_site)))
    return tuple(
        plan_subject(seed, s, i, implant_fraction=float(implant_fraction), label_width=width,
                     quality_spread=float(quality_spread))
        for s in range(1, sites + 1)
        for i in range(1, subjects_per_site + 1)
    )


_PARTICIPANTS_JSON = {
    "age": {"Description": "age at injury", "Units": "year"},
    "sex": {"Description": "sex", "Levels": {"M": "male", "F": "female"}},
    "etiology": {
        "Description": "cause of the spinal cord injury",
        "Levels": {e: e for e in _ETIOLOGIES},
    },
    "injury_level": {"Description": "neurological level of injury (vertebral level)"},
    "days_since_injury": {"Description": "days from injury to the first MRI", "Units": "day"},
    "implants": {
        "Description": "metal implant in the field of view",
        "Levels": {"yes": "yes", "no": "no"},
    },
    "initial_LEMS": {"Description": "lower extremity motor score at admission (0-50)"},
    "discharge_LEMS": {"Description": "lower extremity motor score at discharge (0-50)"},
    "initial_ais": {"Description": "ASIA Impairment Scale grade at admission (A-E)"},
    "discharge_ais": {"Description": "ASIA Impairment Scale grade at discharge (A-E)"},
    "initial_pin_prick_total": {"Description": "pin prick total score at admission (0-112)"},
    "discharge_pin_prick_total": {"Description": "pin prick total score at discharge (0-112)"},
    "initial_light_touch_total": {"Description": "light touch total score at admission (0-112)"},
    "discharge_light_touch_total": {"Description": "light touch total score at discharge (0-112)"},
}


def _write_site_files(
    root: Path, site: str, protocol: SiteProtocol, subjects: list[SubjectPlan], seed: int
) -> None:
    desc = f"synthesize_cohort(seed={seed}): synthetic {protocol.plane} T2w, {site}"
    _bids.write_dataset_description(root, f"cohort-sciseg synthetic SCI cohort, {site}", desc)
    _bids.write_dataset_description(
        root / "derivatives" / "labels",
        f"Analytic manual labels of {site}",
        desc + "; cord (_seg-manual) and lesion (_lesion-manual) masks, exact at voxel centres",
        derivative=True,
    )
    atomic_write_text(
        root / "README",
        f"Synthetic spinal cord injury T2w data ({site}), generated by cohort-sciseg {__version__} "
        f"with seed {seed}. Not real patients. Ground truth: ../ground_truth/.\n",
    )
    _bids.write_tsv(
        root / "participants.tsv", PARTICIPANT_COLUMNS, [s.participant_dict for s in subjects]
    )
    write_json(root / "participants.json", _PARTICIPANTS_JSON)
    for s in subjects:
        if protocol.follow_up:
            rows = [
                {"session_id": f"ses-{sc.ses}", "days_since_injury": sc.days_since_injury}
                for sc in s.scans
            ]
            _bids.write_tsv(
                root / f"sub-{s.sub}" / f"sub-{s.sub}_sessions.tsv",
                ("session_id", "days_since_injury"),
                rows,
            )


def _write_scan(
    out: Path, root: Path, subject: SubjectPlan, scan: ScanPlan, seed: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    protocol = subject.protocol
    affine, shape = acquisition_grid(
        scan.orientation,
        protocol.voxel_mm,
        protocol.fov_mm,
        scan.fov_centre_mm,
        oblique_deg=scan.oblique_deg,
    )
    rng = np.random.default_rng(
        [seed, subject.site_number, subject.subject_number, 1, scan.session_number]
    )
    rendered = render_scan(
        subject.anatomy,
        scan.lesions,
        affine,
        shape,
        rng=rng,
        implant=subject.implant,
        snr=protocol.snr * scan.quality,
        gain=protocol.gain,
        dtype=protocol.dtype,
    )
    written = write_rendered_scan(out, root, site=subject.site, sub=subject.sub, ses=scan.ses, protocol=protocol,
                                  rendered=rendered, affine=affine, n_lesions=len(scan.lesions))
    lesion_rows = lesion_rows_of(
        written.ids,
        scan.lesions,
        written.measures,
        voxel_volume_mm3=written.voxel_volume_mm3,
        lesion_mask_path=_bids.relpath(written.lesion_path, out),
        vertebral_level=subject.anatomy.level_at,
    )
    row = scan_row(
        out, written, affine, shape,
        analytic_volume_mm3=float(sum(les.volume_mm3 for les in scan.lesions)),
        analytic_damage_ratio=max_axial_damage_ratio(subject.anatomy, scan.lesions),
        implant=subject.implant, quality=scan.quality,
    )  # fmt: skip
    return row, lesion_rows


def synthesize_cohort(
    out_dir: str | os.PathLike[str],
    *,
    sites: int = 3,
    subjects_per_site: int = 4,
    seed: int = 0,
    implant_fraction: float = 0.25,
    quality_spread: float = 0.0,
) -> SynthCohort:
    """Write a synthetic multi-site SCI T2w cohort with analytic ground truth.

    One BIDS dataset per site (``<out_dir>/site1``, ``site2``, ...; acquisitions in
    :mod:`cohort_sciseg.synth.protocols`), each subject with a phantom T2w image
    (:mod:`cohort_sciseg.synth.render`), cord and lesion masks in
    ``derivatives/labels`` (``_seg-manual``, ``_lesion-manual``), demographics
    and clinical scores in ``participants.tsv`` (:mod:`cohort_sciseg.synth.clinical`),
    and ground-truth tables in ``<out_dir>/ground_truth``
    (:mod:`cohort_sciseg.synth.ground_truth`).

    Parameters
    ----------
    out_dir
        New or empty folder.
    sites
        Number of sites (>= 1); protocols cycle every three sites.
    subjects_per_site
        Subjects per site (>= 1). Every second subject of a follow-up site (site 2,
        5, ...) has two sessions, so there are more scans than subjects.
    seed
        Non-negative seed. The same seed gives byte-identical files (NIfTI gzip
        streams carry no timestamp or file name; tables hold relative paths),
        with the same package and numpy versions (written to ``config.json``).
    implant_fraction
        Fraction (probability) of subjects with a metal implant artefact, 0-1.
    quality_spread
        0 (default): every image at its site's protocol. ``s`` in (0, 1): each image's
        quality is drawn in ``[1 - s, 1]`` and scales its signal-to-noise ratio and its
        lesions' excess contrast over the cord (ground truth ``image_quality``); the
        other draws are those of ``s = 0``. A cohort a model gets wrong unevenly.

    Returns
    -------
    SynthCohort

    Raises
    ------
    SynthError
        Bad option values, or ``out_dir`` not empty.
    """
    _check_options(sites, subjects_per_site, seed, implant_fraction, quality_spread)
    out = _bids.prepare_output(out_dir)
    plans = plan_cohort(
        sites=sites,
        subjects_per_site=subjects_per_site,
        seed=seed,
        implant_fraction=implant_fraction,
        quality_spread=quality_spread,
    )
    scan_rows: list[dict[str, Any]] = []
    lesion_rows: list[dict[str, Any]] = []
    roots = []
    for s in range(1, sites + 1):
        subjects = [p for p in plans if p.site_number == s]
        root = out / f"site{s}"
        roots.append(root)
        _write_site_files(root, f"site{s}", subjects[0].protocol, subjects, seed)
        for subject in subjects:
            for scan in subject.scans:
                row, rows = _write_scan(out, root, subject, scan, seed)
                scan_rows.append(row)
                lesion_rows.extend(rows)
        logger.info("wrote %s: %d subjects", root, len(subjects))
    config = {
        "function": "synthesize_cohort",
        "sites": sites,
        "subjects_per_site": subjects_per_site,
        "seed": seed,
        "implant_fraction": float(implant_fraction),
        "quality_spread": float(quality_spread),
    }
    lesions_path, scans_path = write_ground_truth(out, scan_rows, lesion_rows, config)
    return SynthCohort(
        out_dir=out,
        dataset_roots=tuple(roots),
        lesions_table=lesions_path.absolute(),
        scans_table=scans_path.absolute(),
        n_sites=sites,
        n_subjects=len(plans),
        n_scans=len(scan_rows),
        n_lesions=len(lesion_rows),
        seed=seed,
    )
