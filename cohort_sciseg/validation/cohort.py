"""Cohort validation: predicted vs manual masks over many scans, as tidy tables.

:func:`find_predictions` pairs discovered scans with predicted masks named as SCT
names them (``<scan>_sc_seg.nii.gz``, ``<scan>_lesion_seg.nii.gz``, where
``<scan>`` is the scan id or, when unambiguous, the BIDS stem).
:func:`validate_scans` computes, per scan, the overlap/distance/detection metrics
of cord and lesion and the paper's biomarkers (total lesion volume, length, maximal
axial damage ratio) on manual and predicted masks. A scan that fails becomes a
:class:`~cohort_sciseg.records.Failure` and the others go on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from cohort_sciseg.errors import CohortSciSegError, ValidationError, format_error
from cohort_sciseg.io import (
    NIFTI_EXTENSIONS,
    NiftiInfo,
    Volume,
    check_same_geometry,
    inspect_mask,
    load_nifti,
    nifti_stem,
    read_header,
)
from cohort_sciseg.morphometry import LesionAnalysis, measure_lesions
from cohort_sciseg.records import BIOMARKERS_SCHEMA, METRICS_SCHEMA, Failure, Scan
from cohort_sciseg.validation.metrics import compute_metrics

__all__ = ["Prediction", "ValidationTables", "find_predictions", "validate_scans"]

logger = logging.getLogger(__name__)

CORD_SUFFIX = "sc_seg"
LESION_SUFFIX = "lesion_seg"
#: ``cohort-sciseg run``'s BIDS-derivative mask names (see ``cohort_sciseg.batch.layout``).
BIDS_CORD = "label-SC_mask"
BIDS_LESION = "label-lesion_mask"
_EXTS = NIFTI_EXTENSIONS


@dataclass(frozen=True, slots=True, eq=False)
class Prediction:
    """Predicted masks of one scan (either path may be missing).

    ``run`` also hands over what it already holds in memory — the masks on the
    image grid (``cord``, ``lesion``), their morphometry (``analysis``) and the
    image's grid (``image``: a :class:`~cohort_sciseg.io.NiftiInfo` or
    :class:`~cohort_sciseg.io.Volume`) — so validation reads no predicted file
    and no image header again and measures the prediction once.
    """

    cord_path: str | None
    lesion_path: str | None
    cord: np.ndarray | None = None
    lesion: np.ndarray | None = None
    analysis: LesionAnalysis | None = None
    image: NiftiInfo | Volume | None = None


@dataclass(frozen=True, slots=True, eq=False)
class ValidationTables:
    """Result of :func:`validate_scans`.

    Attributes
    ----------
    metrics
        Long table (:data:`~cohort_sciseg.records.METRICS_SCHEMA`).
    biomarkers
        Per scan and method (``manual`` and the predicted method), :data:`~cohort_sciseg.records.BIOMARKERS_SCHEMA`.
    failures
        Scans that could not be validated, with the error and the fix: missing masks,
        and manual masks that are no usable reference (empty cord after binarisation,
        a lesion mask with values but none above 0.5, lesions fully outside the cord).
    manual_notes
        Per scan id, the morphometry notes of its manual masks (soft values, empty
        lesion mask, ...), as ``cohort-sciseg analyze-lesion`` prints them.
    """

    metrics: pa.Table
    biomarkers: pa.Table
    failures: tuple[Failure, ...]
    manual_notes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _strip(name: str, suffix: str) -> str | None:
    for ext in _EXTS:
        end = f"_{suffix}{ext}"
        if name.endswith(end):
            return name[: -len(end)]
    return None


def find_predictions(
    scans: Sequence[Scan],
    pred_dir: str | os.PathLike[str],
    *,
    cord_suffix: str = CORD_SUFFIX,
    lesion_suffix: str = LESION_SUFFIX,
) -> dict[str, Prediction]:
    """Pair each scan with its predicted masks found anywhere below ``pred_dir``.

    A file ``<key>_<suffix>.nii.gz`` belongs to the scan whose ``scan_id`` is
    ``key``, or else whose BIDS stem (image name without extension) is ``key``
    when that stem is unique among ``scans``. ``cohort-sciseg run``'s own names,
    ``<source entities>_label-SC_mask.nii.gz`` and ``_label-lesion_mask.nii.gz`` in
    the site's derivative folder, are found too. Scans without predictions are left
    out of the result.
    """
    root = Path(pred_dir)
    if not root.is_dir():
        msg = format_error(
            "predictions folder not found",
            path=root,
            expected="a folder holding <scan>_sc_seg.nii.gz and <scan>_lesion_seg.nii.gz files",
            fix="pass the output folder of the segmentation run",
        )
        raise ValidationError(msg, path=root)
    by_id = {s.scan_id: s for s in scans}
    stems: dict[str, list[str]] = {}
    entity_stems: dict[str, list[Scan]] = {}
    for s in scans:
        stems.setdefault(nifti_stem(s.image_path), []).append(s.scan_id)
        entity_stems.setdefault("_".join(f"{k}-{v}" for k, v in s.entities), []).append(s)
    found: dict[str, dict[str, str]] = {}
    for dirpath, _dirs, files in os.walk(root):
        parts = set(Path(dirpath).relative_to(root).parts)
        for name in files:
            for kind, suffix, bids in (("cord", cord_suffix, BIDS_CORD), ("lesion", lesion_suffix, BIDS_LESION)):
                sid = _match(name, suffix, by_id, stems) or _match_bids(name, bids, entity_stems, parts)
                if sid is not None:
                    found.setdefault(sid, {})[kind] = os.path.join(dirpath, name)
    return {
        sid: Prediction(cord_path=d.get("cord"), lesion_path=d.get("lesion")) for sid, d in sorted(found.items())
    }


def _match(name: str, suffix: str, by_id: Mapping[str, Scan], stems: Mapping[str, list[str]]) -> str | None:
    """The scan of an SCT-named mask ``<scan_id or BIDS stem>_<suffix>.nii.gz``."""
    key = _strip(name, suffix)
    if key is None:
        return None
    if key in by_id:
        return key
    return stems[key][0] if len(stems.get(key, [])) == 1 else None


def _match_bids(name: str, label: str, entity_stems: Mapping[str, list[Scan]], parts: set[str]) -> str | None:
    """The scan of a BIDS-derivative mask ``<source entities>_<label>.nii.gz`` (``run``'s default names).

    Source entities repeat across sites; the site's derivative folder (a path
    component ``<site>``) tells them apart.
    """
    key = _strip(name, label)
    if key is None:
        return None
    candidates = entity_stems.get(key, [])
    if len(candidates) > 1:
        candidates = [s for s in candidates if s.site in parts]
    return candidates[0].scan_id if len(candidates) == 1 else None


def _load_pair(
    scan: Scan, info: NiftiInfo | Volume, manual: str, predicted: str, in_memory: np.ndarray | None, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """The manual mask (read, checked on the image grid) and the predicted one (given, else read)."""
    ref = load_nifti(manual, scan_id=scan.scan_id)
    check_same_geometry(info, ref, what=f"manual {what} mask", scan_id=scan.scan_id)
    if in_memory is not None and tuple(in_memory.shape) == tuple(info.shape):
        return ref.data, in_memory  # made on the image grid by this run's segmenter
    pred = load_nifti(predicted, scan_id=scan.scan_id)
    check_same_geometry(info, pred, what=f"predicted {what} mask", scan_id=scan.scan_id)
    return ref.data, pred.data


def _biomarker_row(scan: Scan, method: str, split: str | None, analysis: LesionAnalysis) -> dict:
    s = analysis.summary
    return {
        "scan_id": scan.scan_id,
        "site": scan.site,
        "sub": scan.sub,
        "method": method,
        "split": split,
        "n_lesions": s.n_lesions,
        "total_volume_mm3": s.total_volume_mm3,
        "total_length_mm": s.total_length_mm,
        "max_axial_damage_ratio": s.max_axial_damage_ratio,
        **largest_lesion_bridges(analysis.lesions),
    }


#: The tissue-bridge columns of the biomarkers table (those of the lesions table, for the largest lesion).
BRIDGE_COLUMNS = ("dorsal_bridge_width_mm", "ventral_bridge_width_mm", "total_bridge_width_mm")


def largest_lesion_bridges(lesions: pa.Table) -> dict[str, float | None]:
    """The tissue bridges of a scan: those of its largest lesion (``None`` without lesion).

    Largest: most volume inside the cord, then most volume in all, then the
    superior one (smaller ``lesion_id``) -- the lesion whose centre also fixes
    SCT's interpolated midsagittal slice when no NLI slice is given.
    """
    rows = lesions.select(["lesion_id", "volume_mm3", "outside_cord_volume_mm3", *BRIDGE_COLUMNS]).to_pylist()
    if not rows:
        return dict.fromkeys(BRIDGE_COLUMNS)
    top = max(rows, key=lambda r: (r["volume_mm3"], r["volume_mm3"] + r["outside_cord_volume_mm3"], -r["lesion_id"]))
    return {c: None if top[c] is None or top[c] != top[c] else float(top[c]) for c in BRIDGE_COLUMNS}


def _unusable_reference(scan: Scan, path: str, reason: str, fix: str) -> ValidationError:
    msg = format_error(
        f"manual mask cannot be a reference: {reason}",
        scan_id=scan.scan_id,
        path=path,
        expected="a 0/1 mask (foreground = value > 0.5) on the image's grid, lesions inside the cord",
        fix=fix + "; the scan's prediction and morphometry are kept, only its validation is excluded",
    )
    return ValidationError(msg, scan_id=scan.scan_id, path=path)


def _values(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def _check_references(
    scan: Scan, paths: tuple[str, str], ref_c: np.ndarray, ref_l: np.ndarray, manual: LesionAnalysis
) -> None:
    """Raise when the manual masks are no usable reference (empty after binarisation, lesions off the cord).

    An all-zero lesion mask is a valid reference (a scan without lesion); a lesion
    mask whose non-zero voxels are all <= 0.5 (a soft mask below the threshold, a
    mask saved with -1) is not, nor is an empty cord mask or a lesion lying fully
    outside the manual cord (masks of another scan or grid).
    """
    cord_path, lesion_path = paths
    if manual.summary.cord_volume_mm3 <= 0:
        report = inspect_mask(ref_c)
        values = f"values {_values(report.values)}" if report.n_distinct > 1 else f"every voxel {report.values[0]:.4g}"
        raise _unusable_reference(
            scan, cord_path, f"the manual cord mask is empty after binarisation ({values})",
            "draw the cord, or save the mask with the cord as 1 (e.g. `sct_maths -i MASK -bin 0.5 -o MASK`)",
        )
    lesion = inspect_mask(ref_l)
    nonzero = int(np.count_nonzero(ref_l))  # load_nifti refused NaN: no float copy of the volume needed
    if lesion.n_foreground == 0 and nonzero:
        raise _unusable_reference(
            scan, lesion_path,
            f"the manual lesion mask has {nonzero:,} non-zero voxels but none above 0.5 "
            f"(values {_values(lesion.values)})",
            "save the lesion mask as 0/1 (a soft mask: threshold it at the level the raters meant; "
            "e.g. `sct_maths -i MASK -bin 0.3 -o MASK`)",
        )
    table = manual.lesions
    outside = [
        int(i) for i, out in zip(
            table.column("lesion_id").to_pylist(), table.column("fully_outside_cord").to_pylist(), strict=True
        ) if out
    ]
    if outside:
        ids = ", ".join(map(str, outside))
        raise _unusable_reference(
            scan, lesion_path,
            f"{len(outside)} of {manual.summary.n_lesions} manual lesion(s) (id {ids}) lie fully outside "
            "the manual cord mask",
            "check that the cord and lesion masks belong to this scan (derivatives/labels names) and correct them",
        )


def _validate_one(
    scan: Scan, pred: Prediction, method: str, split: str | None, units: Literal["mm", "voxel"]
) -> tuple[list[dict], list[dict], tuple[str, ...]]:
    names = ("manual cord mask", "manual lesion mask", "predicted cord mask", "predicted lesion mask")
    mc, ml, pc, pl = paths = (scan.cord_mask_path, scan.lesion_mask_path, pred.cord_path, pred.lesion_path)
    if mc is None or ml is None or pc is None or pl is None:
        missing = [n for n, p in zip(names, paths, strict=True) if p is None]
        msg = format_error(
            "cannot validate: " + ", ".join(missing) + " not found",
            scan_id=scan.scan_id,
            expected="manual masks in derivatives/labels and predictions named <scan>_sc_seg/_lesion_seg",
            fix="add the missing masks, or exclude the scan (--exclude)",
        )
        raise ValidationError(msg, scan_id=scan.scan_id)
    info = pred.image if pred.image is not None else read_header(scan.image_path, scan_id=scan.scan_id)
    ref_c, pred_c = _load_pair(scan, info, mc, pc, pred.cord, "cord")
    ref_l, pred_l = _load_pair(scan, info, ml, pl, pred.lesion, "lesion")
    affine = info.affine
    manual = measure_lesions(ref_c, ref_l, affine, scan_id=scan.scan_id)
    _check_references(scan, (mc, ml), ref_c, ref_l, manual)
    spacing = scan.voxel_size_mm
    ref_path, pred_path = {"cord": mc, "lesion": ml}, {"cord": pc, "lesion": pl}
    notes = list(manual.summary.notes)
    rows = []
    for structure, ref, prd, detect in (("cord", ref_c, pred_c, False), ("lesion", ref_l, pred_l, True)):
        # A mask ANIMA cannot read (e.g. -1 values) loses its ANIMA-compatible values only.
        result = compute_metrics(prd, ref, spacing, lesion_detection=detect, units=units, unreadable="skip")
        if result.anima_input.path == "unreadable":
            files = f"manual {ref_path[structure]!r}, predicted {pred_path[structure]!r}"
            notes.append(
                f"{structure} masks: ANIMA-compatible metrics not computed (corrected metrics kept): "
                f"{result.anima_input.warning} [{files}]"
            )
        for r in result.to_rows(scan.scan_id, structure):
            rows.append({**r, "site": scan.site, "method": method, "split": split})
    predicted = pred.analysis or measure_lesions(pred_c, pred_l, affine, scan_id=scan.scan_id)
    bio = [
        _biomarker_row(scan, "manual", split, manual),
        _biomarker_row(scan, method, split, predicted),
    ]
    return rows, bio, tuple(notes)


def validate_scans(
    scans: Iterable[Scan],
    predictions: Mapping[str, Prediction],
    *,
    method: str = "sciseg",
    split: str | None = None,
    units: Literal["mm", "voxel"] = "mm",
) -> ValidationTables:
    """Metrics and biomarkers of every scan that has manual masks and predictions.

    Parameters
    ----------
    scans
        Discovered scans (see :func:`cohort_sciseg.discover.find_scans`).
    predictions
        Predicted masks per scan id (see :func:`find_predictions`).
    method
        Name of the predicting method, written in the tables.
    split
        Training split or seed of the method's model, when several were trained
        (written in the tables; :func:`~cohort_sciseg.validation.stats.average_over_splits`
        averages a scan's values over them).
    units
        Distance convention of the metrics: ``"mm"`` (default) or ``"voxel"``
        (what model_seg_sci effectively used); stored in every row.
    """
    metric_rows: list[dict] = []
    bio_rows: list[dict] = []
    failures: list[Failure] = []
    notes: dict[str, tuple[str, ...]] = {}
    for scan in scans:
        pred = predictions.get(scan.scan_id)
        if pred is None:
            if scan.cord_mask_path or scan.lesion_mask_path:
                logger.info("%s: no prediction found, not validated", scan.scan_id)
            continue
        try:
            rows, bio, manual_notes = _validate_one(scan, pred, method, split, units)
        except CohortSciSegError as exc:
            failures.append(Failure.from_exception(exc, scan_id=scan.scan_id, stage="validation", site=scan.site))
            continue
        metric_rows += rows
        bio_rows += bio
        if manual_notes:
            notes[scan.scan_id] = tuple(manual_notes)
    return ValidationTables(
        metrics=pa.Table.from_pylist(metric_rows, schema=METRICS_SCHEMA),
        biomarkers=pa.Table.from_pylist(bio_rows, schema=BIOMARKERS_SCHEMA),
        failures=tuple(failures),
        manual_notes=notes,
    )
