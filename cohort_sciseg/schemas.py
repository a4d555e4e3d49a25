"""The Arrow schema of every table the tool writes, one per table (re-exported by :mod:`cohort_sciseg.records`).

Every field carries its description and unit in the field metadata
(:func:`arrow_field`): the README's tables reference is generated from here
(:mod:`cohort_sciseg.schema_doc`) and ``tests/test_records.py`` pins the
schemas, so a change of column name, type or unit is a deliberate, reviewed change.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "ATTEMPT_TYPE",
    "BIOMARKERS_SCHEMA",
    "CHANGES_SCHEMA",
    "CLINICAL_COLUMNS",
    "EVENTS",
    "FAILURES_SCHEMA",
    "LESIONS_SCHEMA",
    "LESION_CHANGES_SCHEMA",
    "LESION_SLICES_SCHEMA",
    "LESION_TRACKS_SCHEMA",
    "LONGITUDINAL_TABLE_SCHEMAS",
    "MEASURES",
    "METRICS_SCHEMA",
    "RUN_SCANS_SCHEMA",
    "RUN_TABLE_SCHEMAS",
    "SCANS_SCHEMA",
    "SESSION_ALIGNMENTS_SCHEMA",
    "TRACKS_SCHEMA",
    "arrow_field",
]


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
        *(x for s, what in (("lesion", "lesion"), ("cord", "cord (region sc, lesion included)")) for x in (
            _f(f"{s}_uncertainty", pa.float64(), f"mean binary entropy of the model's {what} probability p over "
               f"the predicted {s} (label map, before post-processing), its 1-voxel face-neighbour border and "
               "the voxels with 0.2 < p < 0.8; 0 when none; higher is more uncertain; null for segmenters "
               "without probabilities and scans of older runs (cohort_sciseg.segment.uncertainty)", "bit"),
            _f(f"{s}_uncertain_volume_mm3", pa.float64(), f"volume where the model's {what} probability is "
               "between 0.2 and 0.8 (null as for the uncertainty)", "mm3"))),
        *(_f(f"{s}_disagreement", pa.float64(), f"mean mutual information between the {s} prediction and the "
             "ensemble member (folds x test-time mirrorings), H(mean p) - mean H(p_m), over the voxels of "
             f"{s}_uncertainty on the network grid; 0 when the members agree; null unless the run asked for it "
             "(--segmenter-option disagreement=true; cohort_sciseg.segment.members)", "bit")
          for s in ("lesion", "cord")),
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

#: Per-lesion measures carried into the tracks and changes tables: name -> (description, unit).
MEASURES: dict[str, tuple[str, str]] = {
    "volume_mm3": ("lesion volume inside the cord", "mm3"),
    "length_mm": ("S-I length, angle-corrected", "mm"),
    "width_mm": ("max A-P width, angle-corrected", "mm"),
    "max_axial_damage_ratio": ("max over axial slices of lesion area / cord area", "1"),
    "dorsal_bridge_width_mm": ("interpolated midsagittal dorsal tissue bridge", "mm"),
    "ventral_bridge_width_mm": ("interpolated midsagittal ventral tissue bridge", "mm"),
    "total_bridge_width_mm": ("dorsal + ventral tissue bridges", "mm"),
}
_UNIT_PER_YEAR = {"mm3": "mm3/year", "mm": "mm/year", "1": "1/year"}

#: Events of the longitudinal tracks and changes tables (cohort_sciseg.longitudinal.tracking).
EVENTS = ("baseline", "persisting", "new", "resolved", "merged", "split", "complex", "unaligned")

_IDS = pa.list_(pa.int32())

#: Schema of the tracks table: one row per lesion per session.
TRACKS_SCHEMA = pa.schema(
    [
        _f("sub", pa.string(), "BIDS subject label", nullable=False),
        _f("ses", pa.string(), "BIDS session label", nullable=False),
        _f("session_index", pa.int32(), "0 for the baseline, then 1, 2, ... in the order given", nullable=False),
        _f("scan_id", pa.string(), "the session's scan"),
        _f("days_since_injury", pa.float64(), "session time given as days since injury (null when dates or nothing were given)", "day"),
        _f("days_from_baseline", pa.float64(), "days since the subject's first session (null without times)", "day"),
        _f("lesion_id", pa.int32(), "the session's lesion id (lesions table, 1..n superior first)", nullable=False),
        _f("track_id", pa.int32(), "the lesion's track, stable across sessions within the subject; null for event unaligned"),
        _f("event", pa.string(), "baseline, persisting, new, merged, split, complex or unaligned (how this lesion relates to the previous aligned session)", nullable=False),
        _f("parent_track_ids", _IDS, "tracks the lesion comes from (merged, split, complex); empty otherwise", nullable=False),
        *(_f(name, pa.float64(), doc, unit) for name, (doc, unit) in MEASURES.items()),
    ]
)


def _change_fields() -> list[pa.Field]:
    out = []
    for name, (doc, unit) in MEASURES.items():
        out += [
            _f(f"{name}_from", pa.float64(), f"{doc} at ses_from (aggregated over the event's lesions)", unit),
            _f(f"{name}_to", pa.float64(), f"{doc} at ses_to (aggregated over the event's lesions)", unit),
            _f(f"{name}_change", pa.float64(), f"{doc}: to - from", unit),
            _f(f"{name}_change_per_year", pa.float64(), f"{doc}: change / interval in years (365.25 days)",
               _UNIT_PER_YEAR[unit]),
        ]
    return out


#: Schema of the changes table: one row per event (track) and interval between aligned sessions.
CHANGES_SCHEMA = pa.schema(
    [
        _f("sub", pa.string(), "BIDS subject label", nullable=False),
        _f("ses_from", pa.string(), "earlier session", nullable=False),
        _f("ses_to", pa.string(), "later session", nullable=False),
        _f("session_index_from", pa.int32(), "session_index of ses_from", nullable=False),
        _f("session_index_to", pa.int32(), "session_index of ses_to", nullable=False),
        _f("days", pa.float64(), "days between the two sessions (null without times)", "day"),
        _f("event", pa.string(), "persisting, new, resolved, merged, split or complex", nullable=False),
        _f("track_id", pa.int32(), "the track that continues, starts (new, merged) or ends (resolved, split); null for complex"),
        _f("from_track_ids", _IDS, "tracks at ses_from", nullable=False),
        _f("to_track_ids", _IDS, "tracks at ses_to", nullable=False),
        _f("from_lesion_ids", _IDS, "lesion ids at ses_from", nullable=False),
        _f("to_lesion_ids", _IDS, "lesion ids at ses_to", nullable=False),
        *_change_fields(),
    ]
)



_SITE = _f("site", pa.string(), "site label (the hive partition)", nullable=False)
#: ``tables/lesion_tracks``: one row per lesion per session of a subject with several sessions.
LESION_TRACKS_SCHEMA = pa.schema([_SITE, *TRACKS_SCHEMA])
#: ``tables/lesion_changes``: one row per event (track) and interval between aligned sessions.
LESION_CHANGES_SCHEMA = pa.schema([_SITE, *CHANGES_SCHEMA])
#: ``tables/session_alignments``: one row per session of a subject with several sessions.
SESSION_ALIGNMENTS_SCHEMA = pa.schema(
    [
        _SITE,
        _f("sub", pa.string(), "BIDS subject label", nullable=False),
        _f("ses", pa.string(), "BIDS session label", nullable=False),
        _f("baseline_ses", pa.string(), "the subject's baseline session (the first in time)", nullable=False),
        _f("scan_id", pa.string(), "the session's scan", nullable=False),
        _f("baseline_scan_id", pa.string(), "the baseline's scan", nullable=False),
        _f("matrix", pa.list_(pa.float64()), "4 x 4 affine, row by row, mapping this session's world "
           "coordinates (RAS mm) to the baseline's; the identity for the baseline", nullable=False),
        *(_f(f"rotation_deg_{a}", pa.float64(), f"rotation about world {a} (extrinsic x, y, z)", "deg") for a in "xyz"),
        *(_f(f"translation_mm_{a}", pa.float64(), f"displacement along world {a} at the session's cord centroid",
             "mm") for a in "xyz"),
        _f("cord_dice", pa.float64(), "Dice of the baseline cord and this session's cord brought onto the "
           "baseline grid (nearest neighbour); 1 for the baseline", "1"),
        _f("ok", pa.bool_(), "the alignment converged and cord_dice >= the threshold (0.7 by default); "
           "lesions of a session that is not ok are not tracked", nullable=False),
        _f("message", pa.string(), "why the alignment is not ok, with the fix; null when ok"),
        _f("iterations", pa.int32(), "optimiser iterations (SimpleITK)"),
        _f("seconds", pa.float64(), "time of the registration", "s"),
    ]
)

#: The tables of a run and their schemas (``tables/<name>/site=<site>/``, hive-partitioned by site).
RUN_TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "scans": RUN_SCANS_SCHEMA, "lesions": LESIONS_SCHEMA, "lesion_slices": LESION_SLICES_SCHEMA,
    "metrics": METRICS_SCHEMA, "biomarkers": BIOMARKERS_SCHEMA, "failures": FAILURES_SCHEMA,
}
#: The tables of the longitudinal step (cohort_sciseg.longitudinal; rewritten whole, not from per-scan records).
LONGITUDINAL_TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "lesion_tracks": LESION_TRACKS_SCHEMA, "lesion_changes": LESION_CHANGES_SCHEMA,
    "session_alignments": SESSION_ALIGNMENTS_SCHEMA,
}
