"""Records passed between pipeline stages, and (re-exported from :mod:`cohort_sciseg.schemas`) every table's schema.

Stages talk only through these frozen dataclasses and the files they name. Each
table has exactly one :mod:`pyarrow` schema (:mod:`cohort_sciseg.schemas`);
``tests/test_records.py`` pins them, so a change of column name, type or unit is
a deliberate, reviewed change.

Conventions
-----------
- BIDS entities stay strings (``sub="01"`` not ``1``); a missing entity is ``None``.
- Paths are absolute POSIX strings.
- ``orientation`` uses SCT's naming (``"RPI"`` = x from Right to left, y from
  Posterior to anterior, z from Inferior to superior), which is nibabel's ``"LAS"``
  axis codes with every letter flipped.
- Units are in column names (``voxel_x_mm``) and in the Arrow field metadata.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import traceback as _tb
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

from cohort_sciseg.schemas import (
    ATTEMPT_TYPE,
    BIOMARKERS_SCHEMA,
    CLINICAL_COLUMNS,
    FAILURES_SCHEMA,
    LESION_SLICES_SCHEMA,
    LESIONS_SCHEMA,
    METRICS_SCHEMA,
    RUN_SCANS_SCHEMA,
    RUN_TABLE_SCHEMAS,
    SCANS_SCHEMA,
    arrow_field,
)

__all__ = [
    "ATTEMPT_TYPE",
    "BIOMARKERS_SCHEMA",
    "CLINICAL_COLUMNS",
    "FAILURES_SCHEMA",
    "LESIONS_SCHEMA",
    "LESION_SLICES_SCHEMA",
    "METRICS_SCHEMA",
    "RUN_SCANS_SCHEMA",
    "RUN_TABLE_SCHEMAS",
    "SCANS_SCHEMA",
    "AcquisitionPlane",
    "Failure",
    "Scan",
    "ScanMorphometry",
    "arrow_field",
    "failures_from_table",
    "failures_to_table",
    "scan_row",
    "scans_from_table",
    "scans_to_table",
]

AcquisitionPlane = Literal["sagittal", "axial", "coronal", "isotropic"]

#: Pairs ``(key, value)``; a hashable, ordered stand-in for a ``dict[str, str]``.
StrPairs = tuple[tuple[str, str], ...]


def _pairs(mapping: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> StrPairs:
    if mapping is None:
        return ()
    items = mapping.items() if isinstance(mapping, Mapping) else mapping
    return tuple((str(k), "" if v is None else str(v)) for k, v in items)


@dataclass(frozen=True, slots=True)
class Scan:
    """One T2w image found in a BIDS dataset, with what belongs to it.

    Attributes
    ----------
    scan_id
        Site-qualified, filename-safe id, unique across all datasets of a run:
        ``site-<site>_<BIDS stem>`` (e.g. ``site-zurich_sub-01_ses-01_acq-sag_T2w``).
        Labels that are not BIDS alphanumerics are percent-encoded in the id.
    site
        Site label (the dataset's folder name, or the ``site`` column of
        ``participants.tsv``), reduced to BIDS alphanumerics.
    dataset_root, dataset_name
        The BIDS dataset the scan comes from, and its ``Name`` (or folder name).
    sub, ses, acq, run
        BIDS entities, as strings; ``None`` when absent.
    entities
        All entities of the file name in order, e.g. ``(("sub", "01"), ("acq", "sag"))``.
    suffix
        BIDS suffix (``"T2w"``).
    image_path
        Absolute path of the image.
    cord_mask_path, lesion_mask_path
        Manual masks from ``derivatives/labels``; ``None`` when absent.
    sidecar_path
        The most specific JSON sidecar that applies, ``None`` when none applies.
    orientation
        Axis orientation in SCT's naming (``"RPI"``, ``"PSR"``, ...).
    acquisition_plane
        ``"sagittal"``, ``"axial"``, ``"coronal"`` or ``"isotropic"``: from the ``acq``
        entity when it says so, else the world direction of the thickest voxel axis.
    shape
        Image dimensions in voxels (3D).
    voxel_size_mm
        Voxel sizes along the three array axes, in mm.
    manufacturer, magnetic_field_strength_t
        From the JSON sidecar (``Manufacturer``, ``MagneticFieldStrength`` in tesla).
    sidecar
        All sidecar keys after BIDS inheritance, values JSON-encoded.
    participant
        The subject's row of ``participants.tsv``, as strings.
    vert_labels_path
        Vertebral labelling from ``derivatives/labels`` (``sct_label_vertebrae``'s
        ``_seg_labeled``: cord voxels hold their vertebral level); ``None`` when absent.
    disc_labels_path
        Disc labels from ``derivatives/labels`` (``_label-disc*``: single voxels
        hold the disc number, 3 = C2/C3); ``None`` when absent.
    """

    scan_id: str
    site: str
    dataset_root: str
    dataset_name: str
    sub: str
    image_path: str
    orientation: str
    acquisition_plane: AcquisitionPlane
    shape: tuple[int, int, int]
    voxel_size_mm: tuple[float, float, float]
    ses: str | None = None
    acq: str | None = None
    run: str | None = None
    entities: StrPairs = ()
    suffix: str = "T2w"
    cord_mask_path: str | None = None
    lesion_mask_path: str | None = None
    sidecar_path: str | None = None
    manufacturer: str | None = None
    magnetic_field_strength_t: float | None = None
    sidecar: StrPairs = ()
    participant: StrPairs = ()
    vert_labels_path: str | None = None
    disc_labels_path: str | None = None

    @property
    def has_manual_masks(self) -> bool:
        """Whether both a manual cord mask and a manual lesion mask exist."""
        return self.cord_mask_path is not None and self.lesion_mask_path is not None

    @property
    def participant_dict(self) -> dict[str, str]:
        """``participants.tsv`` row as a dict."""
        return dict(self.participant)

    @property
    def sidecar_dict(self) -> dict[str, str]:
        """Inherited sidecar as a dict of JSON-encoded values."""
        return dict(self.sidecar)


@dataclass(frozen=True, slots=True)
class Failure:
    """A unit of work that failed, with what a user needs to fix it.

    Attributes
    ----------
    scan_id
        The scan the failure is about (or a dataset-level id such as
        ``dataset:<path>`` when no single scan is concerned).
    stage
        Pipeline stage (``"discover"``, ``"io"``, ``"segment"``, ...).
    error_type
        Exception class name.
    message
        The full error message (what, value, expected, fix).
    traceback
        The last lines of the traceback, for developers.
    path
        The file concerned, when there is one.
    site
        Site of the scan, when known.
    attempt
        Which attempt failed (1 for the first).
    timestamp
        UTC time of the failure, ISO 8601.
    run_id
        The run that recorded it (``None`` outside ``cohort-sciseg run``).
    """

    scan_id: str
    stage: str
    error_type: str
    message: str
    traceback: str = ""
    path: str | None = None
    site: str | None = None
    attempt: int = 1
    timestamp: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    )
    run_id: str | None = None

    @classmethod
    def from_exception(
        cls,
        exc: BaseException,
        *,
        scan_id: str,
        stage: str | None = None,
        site: str | None = None,
        attempt: int = 1,
        run_id: str | None = None,
        max_traceback_lines: int = 12,
    ) -> Failure:
        """Record ``exc``; ``stage`` and ``path`` default to the exception's own."""
        lines = _tb.format_exception(type(exc), exc, exc.__traceback__)
        excerpt = "".join(lines).splitlines()[-max_traceback_lines:]
        return cls(
            scan_id=scan_id,
            stage=stage or str(getattr(exc, "stage", "general")),
            error_type=type(exc).__name__,
            message=str(exc),
            traceback="\n".join(excerpt),
            path=getattr(exc, "path", None),
            site=site,
            attempt=attempt,
            run_id=run_id,
        )


@dataclass(frozen=True, slots=True)
class ScanMorphometry:
    """Per-scan lesion summary (the paper's biomarkers) and the conventions used.

    Attributes
    ----------
    scan_id
        The scan, when known.
    n_lesions
        Number of lesions (connected components, 18-connectivity).
    total_volume_mm3
        Sum of the lesions' volumes inside the cord, mm3 (0 without lesions).
    total_outside_cord_volume_mm3
        Lesion volume outside the cord mask, mm3.
    total_length_mm
        Sum of lesion lengths, mm (as the SCIseg paper's scripts do).
    max_axial_damage_ratio
        Maximum over lesions (0 without lesions).
    cord_volume_mm3
        Cord mask volume, mm3.
    midsagittal_slice
        Interpolated midsagittal slice x* in RPI voxel units (NaN without lesions).
    connectivity, threshold, angle_correction
        Conventions: 18-connectivity, binarisation ``value > threshold``, cos-theta
        correction from the cord's smoothed centerline.
    nli_slice
        The NLI slice given (S-I axis of the input orientation), else ``None``.
    nli_ap_diameter_mm
        Cord A-P diameter at the NLI slice in the interpolated midsagittal
        slice, mm: SCT's tissue-bridge proxy of a scan without lesion
        (dorsal = ventral = half of it). ``None`` without NLI slice or cord there.
    vert_labels
        ``"vertebrae"`` (labelled cord) or ``"discs"`` when vertebral labels were
        given, else ``None``.
    lesion_vert_levels
        Vertebral levels with lesion, superior first (``None`` without labels).
    notes
        Anything the user should know (non-binary masks, empty cord, fallbacks).
    """

    n_lesions: int
    total_volume_mm3: float
    total_outside_cord_volume_mm3: float
    total_length_mm: float
    max_axial_damage_ratio: float
    cord_volume_mm3: float
    midsagittal_slice: float
    scan_id: str | None = None
    connectivity: int = 18
    threshold: float = 0.5
    angle_correction: bool = True
    nli_slice: int | None = None
    nli_ap_diameter_mm: float | None = None
    vert_labels: str | None = None
    lesion_vert_levels: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for JSON)."""
        d = dataclasses.asdict(self)
        d["notes"] = list(self.notes)
        if self.lesion_vert_levels is not None:
            d["lesion_vert_levels"] = list(self.lesion_vert_levels)
        return d


def scan_row(s: Scan) -> dict[str, Any]:
    """One row of :data:`SCANS_SCHEMA` as a dict."""
    return {
        "scan_id": s.scan_id,
        "site": s.site,
        "sub": s.sub,
        "ses": s.ses,
        "acq": s.acq,
        "run": s.run,
        "suffix": s.suffix,
        "dataset_name": s.dataset_name,
        "dataset_root": s.dataset_root,
        "image_path": s.image_path,
        "cord_mask_path": s.cord_mask_path,
        "lesion_mask_path": s.lesion_mask_path,
        "sidecar_path": s.sidecar_path,
        "orientation": s.orientation,
        "acquisition_plane": s.acquisition_plane,
        "dim_x": s.shape[0],
        "dim_y": s.shape[1],
        "dim_z": s.shape[2],
        "voxel_x_mm": s.voxel_size_mm[0],
        "voxel_y_mm": s.voxel_size_mm[1],
        "voxel_z_mm": s.voxel_size_mm[2],
        "manufacturer": s.manufacturer,
        "magnetic_field_strength_t": s.magnetic_field_strength_t,
        "entities": list(s.entities),
        "sidecar": list(s.sidecar),
        "participant": list(s.participant),
        "vert_labels_path": s.vert_labels_path,
        "disc_labels_path": s.disc_labels_path,
    }


def scans_to_table(scans: Sequence[Scan]) -> pa.Table:
    """Arrow table of ``scans`` with :data:`SCANS_SCHEMA`."""
    return pa.Table.from_pylist([scan_row(s) for s in scans], schema=SCANS_SCHEMA)


def scans_from_table(table: pa.Table) -> list[Scan]:
    """Inverse of :func:`scans_to_table`.

    A table written before ``vert_labels_path`` and ``disc_labels_path`` existed
    reads with both ``None``.
    """
    added = ("vert_labels_path", "disc_labels_path")
    names = [n for n in SCANS_SCHEMA.names if n in table.column_names or n not in added]
    out = []
    for r in table.select(names).to_pylist():
        out.append(
            Scan(
                scan_id=r["scan_id"],
                site=r["site"],
                dataset_root=r["dataset_root"],
                dataset_name=r["dataset_name"],
                sub=r["sub"],
                ses=r["ses"],
                acq=r["acq"],
                run=r["run"],
                suffix=r["suffix"],
                image_path=r["image_path"],
                cord_mask_path=r["cord_mask_path"],
                lesion_mask_path=r["lesion_mask_path"],
                sidecar_path=r["sidecar_path"],
                orientation=r["orientation"],
                acquisition_plane=r["acquisition_plane"],
                shape=(r["dim_x"], r["dim_y"], r["dim_z"]),
                voxel_size_mm=(r["voxel_x_mm"], r["voxel_y_mm"], r["voxel_z_mm"]),
                manufacturer=r["manufacturer"],
                magnetic_field_strength_t=r["magnetic_field_strength_t"],
                entities=_pairs(r["entities"]),
                sidecar=_pairs(r["sidecar"]),
                participant=_pairs(r["participant"]),
                vert_labels_path=r.get("vert_labels_path"),
                disc_labels_path=r.get("disc_labels_path"),
            )
        )
    return out


def failures_to_table(failures: Sequence[Failure]) -> pa.Table:
    """Arrow table of ``failures`` with :data:`FAILURES_SCHEMA`."""
    rows = [dataclasses.asdict(f) for f in failures]
    return pa.Table.from_pylist(rows, schema=FAILURES_SCHEMA)


def failures_from_table(table: pa.Table) -> list[Failure]:
    """Inverse of :func:`failures_to_table`."""
    return [Failure(**r) for r in table.select(FAILURES_SCHEMA.names).to_pylist()]


def str_pairs(mapping: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> StrPairs:
    """Normalise a mapping to :data:`StrPairs` (values as strings, ``None`` as ``""``)."""
    return _pairs(mapping)
