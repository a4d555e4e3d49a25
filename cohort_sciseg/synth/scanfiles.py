"""Writing one rendered synthetic scan as BIDS, and its ground-truth row (shared by the cohort generators)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cohort_sciseg.discover.masks import DEFAULT_CORD_SUFFIXES, DEFAULT_LESION_SUFFIXES
from cohort_sciseg.io import acquisition_plane, orientation_code, save_nifti, write_json
from cohort_sciseg.synth import _bids
from cohort_sciseg.synth.anatomy import Implant
from cohort_sciseg.synth.ground_truth import measure_slices, obliquity_deg
from cohort_sciseg.synth.protocols import SiteProtocol

__all__ = ["CORD_SUFFIX", "LESION_SUFFIX", "WrittenScan", "scan_row", "write_rendered_scan"]

#: Suffixes of the manual masks in ``derivatives/labels`` (``<stem>_<suffix>.nii.gz``).
CORD_SUFFIX = DEFAULT_CORD_SUFFIXES[0]
LESION_SUFFIX = DEFAULT_LESION_SUFFIXES[0]


@dataclass(frozen=True, slots=True)
class WrittenScan:
    """What :func:`write_rendered_scan` wrote: the identifiers, the mask paths and the per-slice measures."""

    ids: dict[str, Any]
    cord_path: Path
    lesion_path: Path
    measures: Any
    voxel_volume_mm3: float


def write_rendered_scan(
    out: Path, root: Path, *, site: str, sub: str, ses: str | None, protocol: SiteProtocol,
    rendered: Any, affine: np.ndarray, n_lesions: int,
) -> WrittenScan:  # fmt: skip
    """Write a rendered scan as BIDS (image, sidecar, manual cord and lesion masks) and measure its slices."""
    stem = _bids.bids_stem(sub, ses, protocol.acq)
    image_path = _bids.anat_dir(root, sub, ses) / f"{stem}.nii.gz"
    labels_dir = _bids.anat_dir(root / "derivatives" / "labels", sub, ses)
    cord_path = labels_dir / f"{stem}_{CORD_SUFFIX}.nii.gz"
    lesion_path = labels_dir / f"{stem}_{LESION_SUFFIX}.nii.gz"
    save_nifti(
        image_path, rendered.image, affine, header=_bids.nifti_header("cohort-sciseg synthetic T2w")
    )
    write_json(image_path.with_name(f"{stem}.json"), protocol.sidecar)
    save_nifti(cord_path, rendered.cord, affine, header=_bids.nifti_header("cord mask (analytic)"))
    save_nifti(
        lesion_path, rendered.lesion, affine, header=_bids.nifti_header("lesion mask (analytic)")
    )
    m = measure_slices(rendered.cord, rendered.labels, affine, n_lesions)
    vox = np.sqrt(np.sum(np.square(affine[:3, :3]), axis=0))
    ids = {
        "scan_id": _bids.scan_id(site, stem),
        "site": site,
        "sub": sub,
        "ses": ses,
        "acq": protocol.acq,
        "image_path": _bids.relpath(image_path, out),
    }
    return WrittenScan(ids, cord_path, lesion_path, m, float(np.prod(vox)))


def scan_row(
    out: Path, written: WrittenScan, affine: np.ndarray, shape: tuple[int, int, int], *,
    analytic_volume_mm3: float, analytic_damage_ratio: float | None, implant: Implant | None, quality: float,
) -> dict[str, Any]:  # fmt: skip
    """The ground-truth ``scans.parquet`` row of a written scan (:data:`GT_SCANS_SCHEMA`)."""
    m, voxel_volume = written.measures, written.voxel_volume_mm3
    vox = np.sqrt(np.sum(np.square(affine[:3, :3]), axis=0))
    lesion_voxels = int(sum(m.lesion_voxels))
    return {
        **written.ids,
        "cord_mask_path": _bids.relpath(written.cord_path, out),
        "lesion_mask_path": _bids.relpath(written.lesion_path, out),
        "source_image_path": None,
        "orientation": orientation_code(affine),
        "acquisition_plane": acquisition_plane(affine),
        "dim_x": shape[0],
        "dim_y": shape[1],
        "dim_z": shape[2],
        "voxel_x_mm": float(vox[0]),
        "voxel_y_mm": float(vox[1]),
        "voxel_z_mm": float(vox[2]),
        "oblique_deg": obliquity_deg(affine),
        "n_lesions": len(m.lesion_voxels),
        "lesion_voxels": lesion_voxels,
        "total_lesion_volume_mm3": lesion_voxels * voxel_volume,
        "total_analytic_volume_mm3": analytic_volume_mm3,
        "max_axial_damage_ratio": m.max_axial_damage_ratio,
        "analytic_max_axial_damage_ratio": analytic_damage_ratio,
        "cord_voxels": m.cord_voxels,
        "cord_volume_mm3": m.cord_voxels * voxel_volume,
        "implant": implant is not None,
        "implant_level": implant.level if implant is not None else None,
        "image_quality": quality,
    }
