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
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from cohort_sciseg.errors import CohortSciSegError, ValidationError, format_error
from cohort_sciseg.io import (
    NIFTI_EXTENSIONS,
    check_same_geometry,
    load_nifti,
    nifti_stem,
    read_header,
)
from cohort_sciseg.morphometry import measure_lesions
from cohort_sciseg.records import BIOMARKERS_SCHEMA, METRICS_SCHEMA, Failure, Scan
from cohort_sciseg.validation.metrics import compute_metrics

__all__ = ["Prediction", "ValidationTables", "find_predictions", "validate_scans"]

logger = logging.getLogger(__name__)

CORD_SUFFIX = "sc_seg"
LESION_SUFFIX = "lesion_seg"
_EXTS = NIFTI_EXTENSIONS


@dataclass(frozen=True, slots=True)
class Prediction:
    """Predicted masks of one scan (either may be missing)."""

    cord_path: str | None
    lesion_path: str | None


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
        Scans that could not be validated, with the error and the fix.
    """

    metrics: pa.Table
    biomarkers: pa.Table
    failures: tuple[Failure, ...]


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
    when that stem is unique among ``scans``. Scans without predictions are left
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
    for s in scans:
        stems.setdefault(nifti_stem(s.image_path), []).append(s.scan_id)
    found: dict[str, dict[str, str]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            for kind, suffix in (("cord", cord_suffix), ("lesion", lesion_suffix)):
                key = _strip(name, suffix)
                if key is None:
                    continue
                if key in by_id:
                    sid = key
                elif len(stems.get(key, [])) == 1:
                    sid = stems[key][0]
                else:
                    continue
                found.setdefault(sid, {})[kind] = os.path.join(dirpath, name)
    return {
        sid: Prediction(cord_path=d.get("cord"), lesion_path=d.get("lesion")) for sid, d in sorted(found.items())
    }


def _load_pair(scan: Scan, manual: str, predicted: str, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    info = read_header(scan.image_path, scan_id=scan.scan_id)
    ref = load_nifti(manual, scan_id=scan.scan_id)
    pred = load_nifti(predicted, scan_id=scan.scan_id)
    check_same_geometry(info, ref, what=f"manual {what} mask", scan_id=scan.scan_id)
    check_same_geometry(info, pred, what=f"predicted {what} mask", scan_id=scan.scan_id)
    return ref.data, pred.data, info.affine


def _biomarker_row(
    scan: Scan, method: str, split: str | None, cord: np.ndarray, lesion: np.ndarray, affine: np.ndarray
) -> dict:
    s = measure_lesions(cord, lesion, affine, scan_id=scan.scan_id).summary
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
    }


def _validate_one(
    scan: Scan, pred: Prediction, method: str, split: str | None, units: Literal["mm", "voxel"]
) -> tuple[list[dict], list[dict]]:
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
    ref_c, pred_c, affine = _load_pair(scan, mc, pc, "cord")
    ref_l, pred_l, _ = _load_pair(scan, ml, pl, "lesion")
    spacing = scan.voxel_size_mm
    rows = []
    for structure, ref, prd, detect in (("cord", ref_c, pred_c, False), ("lesion", ref_l, pred_l, True)):
        result = compute_metrics(prd, ref, spacing, lesion_detection=detect, units=units)
        for r in result.to_rows(scan.scan_id, structure):
            rows.append({**r, "site": scan.site, "method": method, "split": split})
    bio = [
        _biomarker_row(scan, "manual", split, ref_c, ref_l, affine),
        _biomarker_row(scan, method, split, pred_c, pred_l, affine),
    ]
    return rows, bio


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
    for scan in scans:
        pred = predictions.get(scan.scan_id)
        if pred is None:
            if scan.cord_mask_path or scan.lesion_mask_path:
                logger.info("%s: no prediction found, not validated", scan.scan_id)
            continue
        try:
            rows, bio = _validate_one(scan, pred, method, split, units)
        except CohortSciSegError as exc:
            failures.append(Failure.from_exception(exc, scan_id=scan.scan_id, stage="validation", site=scan.site))
            continue
        metric_rows += rows
        bio_rows += bio
    return ValidationTables(
        metrics=pa.Table.from_pylist(metric_rows, schema=METRICS_SCHEMA),
        biomarkers=pa.Table.from_pylist(bio_rows, schema=BIOMARKERS_SCHEMA),
        failures=tuple(failures),
    )
