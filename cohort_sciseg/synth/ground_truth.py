"""Ground-truth tables of synthetic cohorts and the mask measures they hold.

Two Parquet tables are written under ``<OUT>/ground_truth/``:

``lesions.parquet``, one row per inserted lesion (:data:`GT_LESIONS_SCHEMA`), and
``scans.parquet``, one row per image (:data:`GT_SCANS_SCHEMA`). Units are in the
column names and in each field's Arrow metadata (``description``, ``unit``).

Conventions
-----------
- World coordinates are nibabel's RAS+ scanner space in mm (x to the subject's
  Right, y Anterior, z Superior) -- the space of the images' affines.
- Paths are POSIX paths relative to the cohort folder ``<OUT>``, so tables of two
  runs with the same seed are identical wherever they were written.
- ``scan_id`` follows :class:`cohort_sciseg.records.Scan`: ``site-<site>_<BIDS stem>``.
- Mask measures use SCT's conventions (REFERENCE.md section 2): masks are reoriented
  to RPI (array permutation/flip only, no resampling) and axial slices are the
  planes of constant third index; volumes are voxel counts x voxel volume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import scipy

from cohort_sciseg._version import __version__
from cohort_sciseg.io import atomic_write_text, reorient, write_json, write_parquet
from cohort_sciseg.records import arrow_field
from cohort_sciseg.synth.anatomy import Lesion

__all__ = [
    "GT_LESIONS_SCHEMA",
    "GT_SCANS_SCHEMA",
    "SliceMeasures",
    "measure_slices",
    "obliquity_deg",
    "schema_markdown",
    "write_ground_truth",
]


_f = arrow_field


_ID_FIELDS = [
    _f("scan_id", pa.string(), "site-qualified scan id, site-<site>_<BIDS stem>", nullable=False),
    _f(
        "site",
        pa.string(),
        "site label: the BIDS dataset's folder name in BIDS alphanumerics",
        nullable=False,
    ),
    _f("sub", pa.string(), "BIDS subject label", nullable=False),
    _f("ses", pa.string(), "BIDS session label"),
    _f("acq", pa.string(), "BIDS acquisition label"),
    _f("image_path", pa.string(), "T2w image, relative to the cohort folder", nullable=False),
]

#: Schema of ``ground_truth/lesions.parquet``: one row per lesion.
GT_LESIONS_SCHEMA = pa.schema(
    [
        *_ID_FIELDS,
        _f(
            "lesion_mask_path",
            pa.string(),
            "lesion mask, relative to the cohort folder",
            nullable=False,
        ),
        _f(
            "lesion_index",
            pa.int32(),
            "1-based index within the scan (synthetic: 1 is the lesion at the injury level)",
            nullable=False,
        ),
        _f(
            "center_x_mm",
            pa.float64(),
            "ellipsoid centre, world x (RAS+, towards Right)",
            "mm",
            nullable=False,
        ),
        _f(
            "center_y_mm",
            pa.float64(),
            "ellipsoid centre, world y (RAS+, towards Anterior)",
            "mm",
            nullable=False,
        ),
        _f(
            "center_z_mm",
            pa.float64(),
            "ellipsoid centre, world z (RAS+, towards Superior)",
            "mm",
            nullable=False,
        ),
        _f(
            "semi_axis_lr_mm",
            pa.float64(),
            "semi-axis along the lesion's left-right axis",
            "mm",
            nullable=False,
        ),
        _f(
            "semi_axis_ap_mm",
            pa.float64(),
            "semi-axis along the lesion's antero-posterior axis",
            "mm",
            nullable=False,
        ),
        _f(
            "semi_axis_long_mm",
            pa.float64(),
            "semi-axis along the lesion's long axis (cord centreline tangent)",
            "mm",
            nullable=False,
        ),
        _f(
            "tilt_deg",
            pa.float64(),
            "angle between the long axis and world superior-inferior",
            "deg",
            nullable=False,
        ),
        _f(
            "analytic_volume_mm3",
            pa.float64(),
            "ellipsoid volume 4/3 pi a b c",
            "mm3",
            nullable=False,
        ),
        _f(
            "n_voxels",
            pa.int64(),
            "lesion mask voxels of this lesion (voxel centre inside the ellipsoid and the cord)",
            "voxel",
            nullable=False,
        ),
        _f("voxel_volume_mm3", pa.float64(), "n_voxels x voxel volume", "mm3", nullable=False),
        _f(
            "z_extent_mm",
            pa.float64(),
            "analytic extent of the ellipsoid along world z",
            "mm",
            nullable=False,
        ),
        _f(
            "voxel_z_extent_mm",
            pa.float64(),
            "(last - first RPI axial slice holding the lesion + 1) x slice spacing; 0 without voxels",
            "mm",
            nullable=False,
        ),
        _f(
            "max_axial_damage_ratio",
            pa.float64(),
            "max over RPI axial slices of this lesion's area / cord area (masks)",
            "1",
            nullable=False,
        ),
        _f(
            "has_core",
            pa.bool_(),
            "whether the lesion has a hypointense haemorrhagic core",
            nullable=False,
        ),
        _f("contrast", pa.float64(), "oedema signal / local cord signal", "1", nullable=False),
        _f(
            "vertebral_level",
            pa.string(),
            "vertebral level of the centre (synthetic: phantom levels; semi-synthetic: null)",
        ),
    ]
)

#: Schema of ``ground_truth/scans.parquet``: one row per image.
GT_SCANS_SCHEMA = pa.schema(
    [
        *_ID_FIELDS,
        _f(
            "cord_mask_path",
            pa.string(),
            "cord mask, relative to the cohort folder",
            nullable=False,
        ),
        _f(
            "lesion_mask_path",
            pa.string(),
            "lesion mask, relative to the cohort folder",
            nullable=False,
        ),
        _f(
            "source_image_path",
            pa.string(),
            "semi-synthetic: the real image the lesions were inserted into (absolute)",
        ),
        _f(
            "orientation",
            pa.string(),
            "axis orientation, SCT naming (RPI = nibabel LAS)",
            nullable=False,
        ),
        _f(
            "acquisition_plane",
            pa.string(),
            "sagittal, axial, coronal or isotropic",
            nullable=False,
        ),
        _f("dim_x", pa.int32(), "voxels along array axis 0", "voxel", nullable=False),
        _f("dim_y", pa.int32(), "voxels along array axis 1", "voxel", nullable=False),
        _f("dim_z", pa.int32(), "voxels along array axis 2", "voxel", nullable=False),
        _f("voxel_x_mm", pa.float64(), "voxel size along array axis 0", "mm", nullable=False),
        _f("voxel_y_mm", pa.float64(), "voxel size along array axis 1", "mm", nullable=False),
        _f("voxel_z_mm", pa.float64(), "voxel size along array axis 2", "mm", nullable=False),
        _f(
            "oblique_deg",
            pa.float64(),
            "largest angle between an array axis and its nearest world axis",
            "deg",
            nullable=False,
        ),
        _f("n_lesions", pa.int32(), "lesions inserted", nullable=False),
        _f("lesion_voxels", pa.int64(), "voxels of the lesion mask", "voxel", nullable=False),
        _f(
            "total_lesion_volume_mm3",
            pa.float64(),
            "lesion_voxels x voxel volume",
            "mm3",
            nullable=False,
        ),
        _f(
            "total_analytic_volume_mm3",
            pa.float64(),
            "sum of the lesions' ellipsoid volumes",
            "mm3",
            nullable=False,
        ),
        _f(
            "max_axial_damage_ratio",
            pa.float64(),
            "max over RPI axial slices of lesion area / cord area (masks); 0 without lesion",
            "1",
            nullable=False,
        ),
        _f(
            "analytic_max_axial_damage_ratio",
            pa.float64(),
            "same from the analytic shapes over world z (synthetic only)",
            "1",
        ),
        _f("cord_voxels", pa.int64(), "voxels of the cord mask", "voxel", nullable=False),
        _f("cord_volume_mm3", pa.float64(), "cord_voxels x voxel volume", "mm3", nullable=False),
        _f(
            "implant", pa.bool_(), "whether a metal implant artefact was simulated (synthetic only)"
        ),
        _f("implant_level", pa.string(), "vertebral level of the implant"),
        _f(
            "image_quality",
            pa.float64(),
            "factor on the site's signal-to-noise ratio and on the lesions' excess contrast "
            "(1: the protocol's; synthesize_cohort quality_spread; null for semi-synthetic)",
            "1",
        ),
    ]
)


@dataclass(frozen=True, slots=True)
class SliceMeasures:
    """Per-lesion and per-scan measures on RPI axial slices (see :func:`measure_slices`).

    Attributes
    ----------
    lesion_voxels
        Voxels per label, length ``n_lesions``.
    lesion_ratio
        Per label, max over axial slices of its area / cord area (unitless).
    lesion_z_extent_mm
        Per label, (last - first slice holding it + 1) x slice spacing (mm); 0 if empty.
    max_axial_damage_ratio
        Max over axial slices of (all lesion area) / cord area; 0 without lesion.
    cord_voxels
        Voxels of the cord mask.
    """

    lesion_voxels: tuple[int, ...]
    lesion_ratio: tuple[float, ...]
    lesion_z_extent_mm: tuple[float, ...]
    max_axial_damage_ratio: float
    cord_voxels: int


def measure_slices(
    cord: npt.NDArray[np.generic],
    labels: npt.NDArray[np.integer],
    affine: npt.NDArray[np.float64],
    n_lesions: int,
) -> SliceMeasures:
    """Measure a cord mask and a lesion label map on RPI axial slices.

    Parameters
    ----------
    cord
        Cord mask (nonzero = cord).
    labels
        Lesion label map: 0 background, ``1..n_lesions`` lesions (inside the cord).
    affine
        Voxel-to-world affine of both.
    n_lesions
        Number of labels to report (labels without voxels get zeros).
    """
    cord_rpi, aff_rpi = reorient(np.asarray(cord) != 0, affine, "RPI")
    lab_rpi, _ = reorient(np.asarray(labels), affine, "RPI")
    nz = cord_rpi.shape[2]
    pz = float(np.linalg.norm(aff_rpi[:3, 2]))
    cord_area = cord_rpi.sum(axis=(0, 1)).astype(np.int64)
    zi = np.broadcast_to(np.arange(nz), lab_rpi.shape)
    lab = lab_rpi.astype(np.int64)
    keep = lab > 0
    counts = np.bincount(zi[keep] * (n_lesions + 1) + lab[keep], minlength=nz * (n_lesions + 1))
    counts = counts.reshape(nz, n_lesions + 1)[:, 1:]
    safe = np.where(cord_area > 0, cord_area, 1)
    ratio = counts / safe[:, None]
    extents = []
    for i in range(n_lesions):
        zs = np.flatnonzero(counts[:, i])
        extents.append(float((zs[-1] - zs[0] + 1) * pz) if zs.size else 0.0)
    return SliceMeasures(
        lesion_voxels=tuple(int(v) for v in counts.sum(axis=0)),
        lesion_ratio=tuple(float(v) for v in ratio.max(axis=0, initial=0.0)),
        lesion_z_extent_mm=tuple(extents),
        max_axial_damage_ratio=float((counts.sum(axis=1) / safe).max(initial=0.0)),
        cord_voxels=int(cord_area.sum()),
    )


def obliquity_deg(affine: npt.NDArray[np.float64]) -> float:
    """Largest angle (degrees) between an array axis and its nearest world axis."""
    cols = np.asarray(affine, dtype=np.float64)[:3, :3]
    cos = np.max(np.abs(cols), axis=0) / np.linalg.norm(cols, axis=0)
    return float(np.degrees(np.arccos(np.clip(cos.min(), -1.0, 1.0))))


def schema_markdown(schema: pa.Schema) -> str:
    """Markdown table of a schema's columns with their units and descriptions."""
    lines = ["| column | type | unit | description |", "|---|---|---|---|"]
    for f in schema:
        meta = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
        lines.append(
            f"| `{f.name}` | {f.type} | {meta.get('unit', '')} | {meta.get('description', '')} |"
        )
    return "\n".join(lines) + "\n"


def write_ground_truth(
    out: Path,
    scan_rows: list[dict[str, Any]],
    lesion_rows: list[dict[str, Any]],
    config: dict[str, Any],
) -> tuple[Path, Path]:
    """Write ``<out>/ground_truth/``: both tables, their column documentation, the configuration.

    Files: ``lesions.parquet`` (:data:`GT_LESIONS_SCHEMA`), ``scans.parquet``
    (:data:`GT_SCANS_SCHEMA`), ``README.md`` (the columns, units and conventions) and
    ``config.json`` (``config`` plus package versions); each written atomically.
    Returns the paths of the two tables.
    """
    gt = out / "ground_truth"
    lesions = pa.Table.from_pylist(lesion_rows, schema=GT_LESIONS_SCHEMA)
    scans = pa.Table.from_pylist(scan_rows, schema=GT_SCANS_SCHEMA)
    lesions_path = write_parquet(gt / "lesions.parquet", lesions)
    scans_path = write_parquet(gt / "scans.parquet", scans)
    doc = (__doc__ or "").split("\n\n", 1)[1]
    atomic_write_text(
        gt / "README.md",
        "# Ground truth\n\n"
        + doc.strip()
        + "\n\n## lesions.parquet\n\n"
        + schema_markdown(GT_LESIONS_SCHEMA)
        + "\n## scans.parquet\n\n"
        + schema_markdown(GT_SCANS_SCHEMA),
    )
    versions = {
        "cohort_sciseg": __version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "nibabel": nib.__version__,
        "pyarrow": pa.__version__,
    }
    write_json(gt / "config.json", {**config, "versions": versions})
    return lesions_path, scans_path


def lesion_rows(
    ids: dict[str, Any],
    lesions: Sequence[Lesion],
    measures: SliceMeasures,
    *,
    voxel_volume_mm3: float,
    lesion_mask_path: str,
    vertebral_level: Callable[[float], str] | None = None,
) -> list[dict[str, Any]]:
    """Rows of ``lesions.parquet`` for one scan (``ids`` holds the scan's id columns)."""
    rows = []
    for i, les in enumerate(lesions):
        rows.append(
            {
                **ids,
                "lesion_mask_path": lesion_mask_path,
                "lesion_index": i + 1,
                "center_x_mm": les.centre_mm[0],
                "center_y_mm": les.centre_mm[1],
                "center_z_mm": les.centre_mm[2],
                "semi_axis_lr_mm": les.semi_axes_mm[0],
                "semi_axis_ap_mm": les.semi_axes_mm[1],
                "semi_axis_long_mm": les.semi_axes_mm[2],
                "tilt_deg": les.tilt_deg,
                "analytic_volume_mm3": les.volume_mm3,
                "n_voxels": measures.lesion_voxels[i],
                "voxel_volume_mm3": measures.lesion_voxels[i] * voxel_volume_mm3,
                "z_extent_mm": 2.0 * float(les.half_extent_mm[2]),
                "voxel_z_extent_mm": measures.lesion_z_extent_mm[i],
                "max_axial_damage_ratio": measures.lesion_ratio[i],
                "has_core": les.has_core,
                "contrast": les.contrast,
                "vertebral_level": None if vertebral_level is None else vertebral_level(les.centre_mm[2]),
            }
        )
    return rows
