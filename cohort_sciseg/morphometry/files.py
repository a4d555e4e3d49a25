"""Lesion analysis from NIfTI files and a discovered scan's extra inputs (NLI slice, vertebral labels)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from cohort_sciseg.errors import CohortSciSegError, MorphometryError
from cohort_sciseg.io import (
    check_same_geometry,
    load_nifti,
    save_nifti,
    write_json,
    write_parquet,
)
from cohort_sciseg.morphometry.bridges import nli_rpi_slice
from cohort_sciseg.morphometry.lesions import LesionAnalysis, measure_lesions, slice_levels
from cohort_sciseg.morphometry.levels import SliceLevels
from cohort_sciseg.records import Scan

__all__ = [
    "NLI_PARTICIPANTS_COLUMN",
    "NLI_SIDECAR_KEY",
    "analyze_lesion_files",
    "scan_nli_slice",
    "scan_vertebral_labels",
    "write_lesion_analysis",
]


def analyze_lesion_files(
    lesion_path: str | os.PathLike[str],
    cord_path: str | os.PathLike[str],
    image_path: str | os.PathLike[str] | None = None,
    *,
    threshold: float = 0.5,
    angle_correction: bool = True,
    nli_slice: int | None = None,
    vert_labels_path: str | os.PathLike[str] | None = None,
    disc_labels_path: str | os.PathLike[str] | None = None,
    scan_id: str | None = None,
) -> LesionAnalysis:
    """Load, check and measure: ``sct_analyze_lesion -m LESION -s CORD [-i IMAGE] [-nli-slice N]``.

    ``vert_labels_path`` (SCT's ``*_seg_labeled``) or ``disc_labels_path`` (disc
    labels) add the vertebral levels (see :func:`measure_lesions`).

    Raises
    ------
    NiftiError
        A file cannot be read safely.
    GeometryError
        The lesion mask, the image or a labelling is not on the cord mask's voxel grid.
    MorphometryError
        See :func:`measure_lesions`.
    """
    cord = load_nifti(cord_path, scan_id=scan_id)
    lesion = load_nifti(lesion_path, scan_id=scan_id)
    check_same_geometry(cord, lesion, what="lesion mask", scan_id=scan_id)
    extra: dict[str, np.ndarray] = {}
    for key, path, what in (
        ("image", image_path, "image"),
        ("vert_labels", vert_labels_path, "vertebral labels"),
        ("disc_labels", disc_labels_path, "disc labels"),
    ):
        if path is not None:
            vol = load_nifti(path, scan_id=scan_id)
            check_same_geometry(cord, vol, what=what, scan_id=scan_id)
            extra[key] = vol.data
    return measure_lesions(
        cord.data,
        lesion.data,
        cord.affine,
        threshold=threshold,
        angle_correction=angle_correction,
        image=extra.get("image"),
        nli_slice=nli_slice,
        vert_labels=extra.get("vert_labels"),
        disc_labels=extra.get("disc_labels"),
        scan_id=scan_id,
    )


def write_lesion_analysis(
    result: LesionAnalysis,
    out_prefix: str | os.PathLike[str],
    *,
    affine: np.ndarray | None = None,
    header: Any = None,
) -> dict[str, Path]:
    """Write ``PREFIX.parquet`` (lesions), ``PREFIX_slices.parquet`` and ``PREFIX.json`` (summary).

    With ``affine`` (and optionally ``header``), also ``PREFIX_label.nii.gz``: the
    lesion label map (values = ``lesion_id``), as SCT's ``*_label.nii.gz``.
    """
    prefix = Path(out_prefix)
    base = prefix.name[: -len(".parquet")] if prefix.name.endswith(".parquet") else prefix.name
    prefix = prefix.with_name(base)
    out = {
        "lesions": write_parquet(prefix.with_name(f"{base}.parquet"), result.lesions),
        "slices": write_parquet(prefix.with_name(f"{base}_slices.parquet"), result.slices),
        "summary": write_json(prefix.with_name(f"{base}.json"), result.summary.to_dict()),
    }
    if affine is not None:
        out["labels"] = save_nifti(prefix.with_name(f"{base}_label.nii.gz"), result.labels, affine, header=header)
    return out


#: Sidecar key and ``participants.tsv`` column that give a scan's NLI slice to ``run``.
NLI_SIDECAR_KEY = "NLISlice"
NLI_PARTICIPANTS_COLUMN = "nli_slice"
_MISSING = ("", "n/a", "na", "nan", "null", "none")


def _nli_value(scan: Scan) -> tuple[str, str] | None:
    """The raw NLI value of a scan and where it comes from (the sidecar wins), or ``None``."""
    sidecar = scan.sidecar_dict.get(NLI_SIDECAR_KEY)
    if sidecar is not None:
        try:
            raw = json.loads(sidecar)
        except ValueError:
            raw = sidecar
        if raw is not None and str(raw).strip().lower() not in _MISSING:
            return str(raw).strip(), f"sidecar key {NLI_SIDECAR_KEY!r}"
    value = scan.participant_dict.get(NLI_PARTICIPANTS_COLUMN, "").strip()
    if value.lower() not in _MISSING:
        return value, f"participants.tsv column {NLI_PARTICIPANTS_COLUMN!r}"
    return None


def scan_nli_slice(scan: Scan, affine: np.ndarray, shape: tuple[int, ...]) -> tuple[int | None, str | None]:
    """The NLI slice of a discovered scan for ``run``, and a note when a value was unusable.

    Read from the scan's JSON sidecar (``"NLISlice": 212``) or, when the sidecar has
    none, from the subject's ``participants.tsv`` column ``nli_slice`` (which then
    applies to every scan of the subject). The value is SCT's ``-nli-slice``: an
    integer index along the S-I axis of the image as stored. A value that is not
    an integer slice of the image is not used, and the note says why and how to
    fix it (the scan is still measured, with the automatic midsagittal slice).
    """
    found = _nli_value(scan)
    if found is None:
        return None, None
    raw, source = found
    try:
        value: int | str = int(raw)
    except ValueError:
        value = raw  # refused below, with the value quoted
    try:
        nli_rpi_slice(value, affine, shape, scan_id=scan.scan_id)
    except MorphometryError as exc:
        return None, f"NLI slice from the {source} not used: {exc}"
    return int(value), None


def scan_vertebral_labels(scan: Scan, grid: Any) -> tuple[SliceLevels | None, str | None]:
    """``(levels, note)``: the per-slice vertebral levels of a scan for :func:`measure_lesions` (``levels=``).

    The labelled cord (``Scan.vert_labels_path``) is preferred to disc labels
    (``Scan.disc_labels_path``). A file that cannot be read, is not on the
    image's grid or holds non-integer labels is left out with a note naming the
    file and the fix: the lesions are still measured, their level columns are null.
    """
    for key, path, what in (
        ("vert_labels", scan.vert_labels_path, "vertebral labels"),
        ("disc_labels", scan.disc_labels_path, "disc labels"),
    ):
        if path is None:
            continue
        try:
            vol = load_nifti(path, scan_id=scan.scan_id)
            check_same_geometry(grid, vol, what=what, scan_id=scan.scan_id)
            vert, discs = (vol.data, None) if key == "vert_labels" else (None, vol.data)
            return slice_levels(vert, discs, vol.affine, scan_id=scan.scan_id), None
        except CohortSciSegError as exc:
            return None, f"{what} not used (levels left null): {exc}"
    return None, None
