"""Lesion analysis from NIfTI files, and its outputs (a drop-in for ``sct_analyze_lesion``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cohort_sciseg.io import check_same_geometry, load_nifti, save_nifti, write_json, write_parquet
from cohort_sciseg.morphometry.lesions import LesionAnalysis, measure_lesions

__all__ = ["analyze_lesion_files", "write_lesion_analysis"]


def analyze_lesion_files(
    lesion_path: str | os.PathLike[str],
    cord_path: str | os.PathLike[str],
    image_path: str | os.PathLike[str] | None = None,
    *,
    threshold: float = 0.5,
    angle_correction: bool = True,
    scan_id: str | None = None,
) -> LesionAnalysis:
    """Load, check and measure: ``sct_analyze_lesion -m LESION -s CORD [-i IMAGE]``.

    Raises
    ------
    NiftiError
        A file cannot be read safely.
    GeometryError
        The lesion mask or the image is not on the cord mask's voxel grid.
    """
    cord = load_nifti(cord_path, scan_id=scan_id)
    lesion = load_nifti(lesion_path, scan_id=scan_id)
    check_same_geometry(cord, lesion, what="lesion mask", scan_id=scan_id)
    image = None
    if image_path is not None:
        image = load_nifti(image_path, scan_id=scan_id)
        check_same_geometry(cord, image, what="image", scan_id=scan_id)
    return measure_lesions(
        cord.data,
        lesion.data,
        cord.affine,
        image=None if image is None else image.data,
        threshold=threshold,
        angle_correction=angle_correction,
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
