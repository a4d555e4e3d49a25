"""Output files of a segmentation: SCT's names, the input's header, JSON sidecars.

``<prefix>_sc_seg.nii.gz`` and ``<prefix>_lesion_seg.nii.gz`` (uint8, 0/1) are
written atomically with a copy of the input's header, so the affine, qform,
sform, their codes and the voxel sizes are the input's. Each has a sidecar
``<prefix>_sc_seg.json`` / ``<prefix>_lesion_seg.json``::

    {"GeneratedBy": [{"Name": "cohort-sciseg", "Version": ..., "CodeURL": ...,
                      "ModelName": ..., "ModelChecksum": ..., "ModelIntegrity": "verified|unverified|trusted",
                      "Settings": {...}}]}

(plus ``ModelFiles``, the per-file sha256, when the model was not verified).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from cohort_sciseg._version import __version__
from cohort_sciseg.io import atomic_path, nifti_stem, write_json

__all__ = [
    "CODE_URL",
    "SegmentationOutputs",
    "default_prefix",
    "generated_by",
    "output_paths",
    "sidecar_path",
    "with_description",
    "write_mask",
    "write_sidecar",
]


def _code_url() -> str | None:
    try:
        urls = metadata.metadata("cohort-sciseg").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None
    for entry in urls:
        _, _, url = entry.partition(",")
        if url.strip():
            return url.strip()
    return None


#: Project URL from the installed package's metadata (``None`` until pyproject declares one).
CODE_URL = _code_url()


@dataclass(frozen=True, slots=True)
class SegmentationOutputs:
    """Paths written by one segmentation, and the masks written there (``SegmentationResult``)."""

    cord: Path
    lesion: Path
    cord_sidecar: Path
    lesion_sidecar: Path
    masks: Any = field(default=None, compare=False, repr=False)


def default_prefix(image: str | os.PathLike[str]) -> Path:
    """SCT's default output prefix: the image path without ``.nii``/``.nii.gz``."""
    p = Path(image)
    return p.with_name(nifti_stem(p))


def output_paths(prefix: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(<prefix>_sc_seg.nii.gz, <prefix>_lesion_seg.nii.gz)``."""
    p = Path(prefix)
    return p.with_name(p.name + "_sc_seg.nii.gz"), p.with_name(p.name + "_lesion_seg.nii.gz")


def sidecar_path(mask_path: str | os.PathLike[str]) -> Path:
    """``X.nii.gz`` -> ``X.json``."""
    p = Path(mask_path)
    return p.with_name(default_prefix(p).name + ".json")


def write_mask(path: str | os.PathLike[str], mask: np.ndarray, header: Any, affine: np.ndarray) -> Path:
    """Write a uint8 mask atomically with a copy of ``header`` (qform/sform kept as they are).

    Parameters
    ----------
    path
        ``.nii.gz`` or ``.nii`` destination.
    mask
        Boolean or 0/1 array on the input's grid.
    header
        The input's NIfTI header (``None``: a fresh header with ``affine`` as sform and qform).
    affine
        The input's affine (used when ``header`` is ``None`` or carries no orientation).
    """
    data = np.asarray(mask).astype(np.uint8)
    if header is not None and isinstance(header, nib.Nifti1Header):
        hdr = header.copy()
        # affine=None keeps the header's qform and sform (and their codes) exactly.
        img = nib.Nifti1Image(data, None, header=hdr)
        if int(hdr["sform_code"]) == 0 and int(hdr["qform_code"]) == 0:
            img.set_sform(affine, code=1)
            img.set_qform(affine, code=1)
    else:
        img = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
        img.set_qform(np.asarray(affine, dtype=np.float64), code=1)
    img.set_data_dtype(np.uint8)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["cal_min"], img.header["cal_max"] = 0, 1
    with atomic_path(path) as tmp:
        img.to_filename(tmp)
    return Path(path)


def generated_by(
    *,
    model_name: str,
    model_checksum: str,
    model_integrity: str,
    settings: Mapping[str, Any],
    model_files: Mapping[str, str] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """The sidecar content: a BIDS ``GeneratedBy`` list with the model and settings."""
    entry: dict[str, Any] = {
        "Name": "cohort-sciseg",
        "Version": __version__,
        "CodeURL": CODE_URL,
        "ModelName": model_name,
        "ModelChecksum": model_checksum,
        "ModelIntegrity": model_integrity,
        "Settings": dict(settings),
    }
    if description:
        entry["Description"] = description
    if model_files:
        entry["ModelFiles"] = dict(model_files)
    return {"GeneratedBy": [entry]}


def write_sidecar(mask_path: str | os.PathLike[str], content: Mapping[str, Any]) -> Path:
    """Write the JSON sidecar of ``mask_path`` atomically."""
    return write_json(sidecar_path(mask_path), dict(content))


def with_description(sidecar: dict[str, Any], what: str) -> dict[str, Any]:
    """``sidecar``'s ``GeneratedBy`` entry with a ``Description`` of the mask ``what``."""
    entry = dict(sidecar["GeneratedBy"][0])
    entry["Description"] = f"{what} predicted by nnU-Net (SCIseg-style model), SCT's inference path"
    return {"GeneratedBy": [entry]}
