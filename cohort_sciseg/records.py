"""Records passed between pipeline stages, and the Arrow schema of every table.

Stages talk only through these frozen dataclasses and the files they name. Each
table has exactly one :mod:`pyarrow` schema here; ``tests/test_records.py`` pins
them, so a change of column name, type or unit is a deliberate, reviewed change.

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


def arrow_field(
    name: str, typ: pa.DataType, doc: str, unit: str | None = None, nullable: bool = True
) -> pa.Field:
    """Arrow field with its description and unit in the field metadata (how every table is documented)."""
    meta = {"description": doc}
    if unit is not None:
        meta["unit"] = unit
    return pa.field(name, typ, nullable=nullable, metadata=meta)


_f = arrow_field
_STR_MAP = pa.map_(pa.string(), pa.string())

#: Schema of ``scans.parquet`` (one row per discovered T2w image).
SCANS_SCHEMA = pa.schema(
    [
        _f("scan_id", pa.string(), "site-qualified unique scan id", nullable=False),
        _f("site", pa.string(), "site label", nullable=False),
        _f("sub", pa.string(), "BIDS subject label", nullable=False),
        _f("ses", pa.string(), "BIDS session label"),
        _f("acq", pa.string(), "BIDS acquisition label"),
        _f("run", pa.string(), "BIDS run index (string)"),
        _f("suffix", pa.string(), "BIDS suffix", nullable=False),
        _f("dataset_name", pa.string(), "source dataset name", nullable=False),
        _f("dataset_root", pa.string(), "source dataset folder", nullable=False),
        _f("image_path", pa.string(), "absolute image path", nullable=False),
        _f("cord_mask_path", pa.string(), "manual cord mask path"),
        _f("lesion_mask_path", pa.string(), "manual lesion mask path"),
        _f("sidecar_path", pa.string(), "most specific JSON sidecar"),
        _f("orientation", pa.string(), "axis orientation, SCT naming (RPI = nibabel LAS)", nullable=False),
        _f("acquisition_plane", pa.string(), "sagittal, axial, coronal or isotropic", nullable=False),
        _f("dim_x", pa.int32(), "voxels along array axis 0", "voxel", nullable=False),
        _f("dim_y", pa.int32(), "voxels along array axis 1", "voxel", nullable=False),
        _f("dim_z", pa.int32(), "voxels along array axis 2", "voxel", nullable=False),
        _f("voxel_x_mm", pa.float64(), "voxel size along array axis 0", "mm", nullable=False),
        _f("voxel_y_mm", pa.float64(), "voxel size along array axis 1", "mm", nullable=False),
        _f("voxel_z_mm", pa.float64(), "voxel size along array axis 2", "mm", nullable=False),
        _f("manufacturer", pa.string(), "sidecar Manufacturer"),
        _f("magnetic_field_strength_t", pa.float64(), "sidecar MagneticFieldStrength", "T"),
        _f("entities", _STR_MAP, "all BIDS entities of the file name", nullable=False),
        _f("sidecar", _STR_MAP, "inherited sidecar, JSON-encoded values", nullable=False),
        _f("participant", _STR_MAP, "participants.tsv row, as strings", nullable=False),
        _f("vert_labels_path", pa.string(), "vertebral labelling (cord voxels hold level numbers)"),
        _f("disc_labels_path", pa.string(), "disc labels (single voxels hold disc numbers)"),
    ]
)

#: Schema of ``failures.parquet`` (one row per failed unit of work).
FAILURES_SCHEMA = pa.schema(
    [
        _f("scan_id", pa.string(), "scan (or dataset) the failure is about", nullable=False),
        _f("site", pa.string(), "site label"),
        _f("stage", pa.string(), "pipeline stage", nullable=False),
        _f("error_type", pa.string(), "exception class", nullable=False),
        _f("message", pa.string(), "what was wrong, expected value and fix", nullable=False),
        _f("traceback", pa.string(), "traceback excerpt", nullable=False),
        _f("path", pa.string(), "file concerned"),
        _f("attempt", pa.int32(), "attempt number", nullable=False),
        _f("timestamp", pa.string(), "UTC time, ISO 8601", nullable=False),
        _f("run_id", pa.string(), "the run that recorded the failure (see logs/runs/)"),
    ]
)


#: Schema of ``lesions.parquet`` (one row per lesion; SCT ``sct_analyze_lesion`` measures).
LESIONS_SCHEMA = pa.schema(
    [
        _f("scan_id", pa.string(), "scan the lesion belongs to"),
        _f("lesion_id", pa.int32(), "1..n, ordered from superior to inferior", nullable=False),
        _f("volume_mm3", pa.float64(), "lesion volume inside the cord", "mm3", nullable=False),
        _f("outside_cord_volume_mm3", pa.float64(), "part of the lesion outside the cord mask", "mm3", nullable=False),
        _f("fully_outside_cord", pa.bool_(), "the lesion has no voxel inside the cord mask", nullable=False),
        _f("length_mm", pa.float64(), "S-I length, angle-corrected (SCT length)", "mm", nullable=False),
        _f("width_mm", pa.float64(), "max A-P width, angle-corrected (SCT width)", "mm", nullable=False),
        _f("max_equivalent_diameter_mm", pa.float64(), "diameter of the circle of the largest corrected axial area", "mm", nullable=False),
        _f("max_axial_damage_ratio", pa.float64(), "max over axial slices of lesion area / cord area", "1", nullable=False),
        _f("length_midsagittal_mm", pa.float64(), "S-I length in the interpolated midsagittal slice", "mm"),
        _f("width_midsagittal_mm", pa.float64(), "A-P width in the interpolated midsagittal slice", "mm"),
        _f("dorsal_bridge_width_mm", pa.float64(), "interpolated midsagittal dorsal tissue bridge", "mm"),
        _f("ventral_bridge_width_mm", pa.float64(), "interpolated midsagittal ventral tissue bridge", "mm"),
        _f("total_bridge_width_mm", pa.float64(), "dorsal + ventral tissue bridges", "mm"),
        _f("dorsal_bridge_ratio_pct", pa.float64(), "100 x dorsal / total bridge width", "%"),
        _f("ventral_bridge_ratio_pct", pa.float64(), "100 x ventral / total bridge width", "%"),
        _f("bridge_fallback", pa.bool_(), "lesion misses the midsagittal slices: SCT's fallback bridges", nullable=False),
        _f("centroid_x_mm", pa.float64(), "lesion centroid, scanner x (RAS+)", "mm", nullable=False),
        _f("centroid_y_mm", pa.float64(), "lesion centroid, scanner y (RAS+)", "mm", nullable=False),
        _f("centroid_z_mm", pa.float64(), "lesion centroid, scanner z (RAS+)", "mm", nullable=False),
        _f("z_min_slice", pa.int32(), "lowest RPI axial slice of the lesion", "voxel", nullable=False),
        _f("z_max_slice", pa.int32(), "highest RPI axial slice of the lesion", "voxel", nullable=False),
        _f("mean_intensity", pa.float64(), "mean image value in the lesion (image given)"),
        _f("std_intensity", pa.float64(), "population SD of image values in the lesion (image given)"),
        _f("vert_levels", pa.list_(pa.string()), "vertebral levels of the lesion's axial slices, superior first (vertebral labels given)"),
        _f("vert_level_centroid", pa.string(), "vertebral level of the lesion's centroid slice (vertebral labels given)"),
    ]
)

#: Schema of ``lesion_slices.parquet``: SCT's per-sagittal-slice minimum tissue bridges.
LESION_SLICES_SCHEMA = pa.schema(
    [
        _f("scan_id", pa.string(), "scan the lesion belongs to"),
        _f("lesion_id", pa.int32(), "lesion (see lesions table)", nullable=False),
        _f("sagittal_slice", pa.int32(), "RPI sagittal slice index (x)", "voxel", nullable=False),
        _f("dorsal_bridge_width_mm", pa.float64(), "minimum dorsal bridge over the lesion's axial slices", "mm", nullable=False),
        _f("ventral_bridge_width_mm", pa.float64(), "minimum ventral bridge over the lesion's axial slices", "mm", nullable=False),
        _f("total_bridge_width_mm", pa.float64(), "dorsal + ventral minima", "mm", nullable=False),
    ]
)


#: One attempt at a scan within a run (``tables/scans`` column ``attempts``).
ATTEMPT_TYPE = pa.struct(
    [
        ("worker", pa.string()),
        ("started", pa.string()),
        ("ended", pa.string()),
        ("outcome", pa.string()),
    ]
)

#: Schema of a run's ``tables/scans`` (one row per scan processed by ``cohort-sciseg run``).
RUN_SCANS_SCHEMA = pa.schema(
    [
        _f("scan_id", pa.string(), "site-qualified unique scan id", nullable=False),
        _f("site", pa.string(), "site label (the hive partition)", nullable=False),
        _f("sub", pa.string(), "BIDS subject label", nullable=False),
        _f("ses", pa.string(), "BIDS session label"),
        _f("acq", pa.string(), "BIDS acquisition label"),
        _f("run", pa.string(), "BIDS run index (string)"),
        _f("image_path", pa.string(), "absolute image path", nullable=False),
        _f("orientation", pa.string(), "axis orientation, SCT naming", nullable=False),
        _f("acquisition_plane", pa.string(), "sagittal, axial, coronal or isotropic", nullable=False),
        _f("status", pa.string(), "done or failed", nullable=False),
        _f("key", pa.string(), "hash of the inputs, model and settings of this result", nullable=False),
        _f("segmenter", pa.string(), "segmenter (model) name", nullable=False),
        _f("model_checksum", pa.string(), "checksum of the model", nullable=False),
        _f("cord_seg_path", pa.string(), "predicted cord mask, relative to the run folder"),
        _f("lesion_seg_path", pa.string(), "predicted lesion mask, relative to the run folder"),
        _f("n_lesions", pa.int32(), "number of predicted lesions"),
        _f("total_volume_mm3", pa.float64(), "total predicted lesion volume inside the cord", "mm3"),
        _f("total_outside_cord_volume_mm3", pa.float64(), "predicted lesion volume outside the cord", "mm3"),
        _f("total_length_mm", pa.float64(), "sum of predicted lesion lengths", "mm"),
        _f("max_axial_damage_ratio", pa.float64(), "maximum axial damage ratio", "1"),
        _f("cord_volume_mm3", pa.float64(), "predicted cord volume", "mm3"),
        _f("nli_slice", pa.int32(), "NLI slice used (sidecar NLISlice or participants.tsv nli_slice; S-I axis of the image as stored)", "voxel"),
        _f("nli_ap_diameter_mm", pa.float64(), "cord A-P diameter at the NLI slice, midsagittal (SCT's bridge proxy without lesion)", "mm"),
        _f("vert_labels", pa.string(), "vertebral labelling used: vertebrae (labelled cord) or discs; null without"),
        _f("lesion_vert_levels", pa.list_(pa.string()), "vertebral levels with predicted lesion, superior first (null without labelling)"),
        _f("has_manual_masks", pa.bool_(), "manual cord and lesion masks exist", nullable=False),
        _f("cord_dice", pa.float64(), "Dice of the predicted vs manual cord (manual masks only)"),
        _f("lesion_dice", pa.float64(), "Dice of the predicted vs manual lesions (manual masks only)"),
        _f("seconds_segment", pa.float64(), "segmentation time", "s"),
        _f("seconds_total", pa.float64(), "time of the whole scan task", "s"),
        _f("attempt", pa.int32(), "number of attempts of this run at the scan (a killed worker's attempt counts)", nullable=False),
        _f("attempts", pa.list_(ATTEMPT_TYPE), "each attempt of this run: worker, started, ended (UTC), outcome (done, failed, lost)"),
        _f("run_id", pa.string(), "the run that produced this row (see logs/runs/)"),
        _f("suspect", pa.bool_(), "the result looks implausible: read suspect_reasons before using it"),
        _f("suspect_reasons", pa.string(), "why the result is suspect, '; '-separated"),
        _f("validation", pa.string(), "validated, excluded (manual masks unusable: see failures), incomplete (one manual mask missing) or null (no manual masks)"),
        _f("notes", pa.string(), "morphometry notes, '; '-separated (manual-mask notes start with 'manual')"),
    ]
)

#: Clinical columns of ``participants.tsv`` (REFERENCE.md section 5), in order.
CLINICAL_COLUMNS = (
    "initial_LEMS",
    "discharge_LEMS",
    "initial_ais",
    "discharge_ais",
    "initial_pin_prick_total",
    "discharge_pin_prick_total",
    "initial_light_touch_total",
    "discharge_light_touch_total",
)

#: Schema of ``metrics.parquet``: long table, one row per scan x method x structure x metric.
METRICS_SCHEMA = pa.schema(
    [
        _f("scan_id", pa.string(), "scan", nullable=False),
        _f("site", pa.string(), "site label"),
        _f("method", pa.string(), "segmentation method compared with the manual masks", nullable=False),
        _f("split", pa.string(), "training split or seed of the method's model (null when there is one)"),
        _f("structure", pa.string(), "cord or lesion", nullable=False),
        _f("metric", pa.string(), "metric name (ANIMA's names, or a corrected metric's own)", nullable=False),
        _f("value", pa.float64(), "metric value (null where undefined)"),
        _f("source", pa.string(), "anima (ANIMA-compatible) or corrected", nullable=False),
        _f("units", pa.string(), "distance convention: mm or voxel", nullable=False),
    ]
)

#: Schema of ``biomarkers.parquet``: the paper's per-scan lesion biomarkers, manual and predicted.
BIOMARKERS_SCHEMA = pa.schema(
    [
        _f("scan_id", pa.string(), "scan", nullable=False),
        _f("site", pa.string(), "site label"),
        _f("sub", pa.string(), "BIDS subject label"),
        _f("method", pa.string(), "'manual' or the segmentation method", nullable=False),
        _f("split", pa.string(), "training split or seed of the method's model (null when there is one)"),
        _f("n_lesions", pa.int32(), "number of lesions", nullable=False),
        _f("total_volume_mm3", pa.float64(), "total lesion volume inside the cord", "mm3", nullable=False),
        _f("total_length_mm", pa.float64(), "sum of lesion lengths", "mm", nullable=False),
        _f("max_axial_damage_ratio", pa.float64(), "maximum axial damage ratio", "1", nullable=False),
        *(_f(f"{side}_bridge_width_mm", pa.float64(), f"{side} tissue bridge of the scan's largest lesion "
             "(most voxels in the cord; null without lesion)", "mm") for side in ("dorsal", "ventral", "total")),
    ]
)

#: The tables of a run and their schemas (``tables/<name>/site=<site>/``, hive-partitioned by site).
RUN_TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "scans": RUN_SCANS_SCHEMA, "lesions": LESIONS_SCHEMA, "lesion_slices": LESION_SLICES_SCHEMA,
    "metrics": METRICS_SCHEMA, "biomarkers": BIOMARKERS_SCHEMA, "failures": FAILURES_SCHEMA,
}

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
