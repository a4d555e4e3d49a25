"""Records and the pinned Arrow schema of every table."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pyarrow.parquet as pq
import pytest

from cohort_sciseg.errors import NiftiError
from cohort_sciseg.io import write_parquet
from cohort_sciseg.records import (
    FAILURES_SCHEMA,
    LESION_SLICES_SCHEMA,
    LESIONS_SCHEMA,
    SCANS_SCHEMA,
    Failure,
    Scan,
    failures_from_table,
    failures_to_table,
    scans_from_table,
    scans_to_table,
)

# Changing a table is a deliberate act: update this list, the docs and the readers.
PINNED_SCANS = [
    ("scan_id", "string", False),
    ("site", "string", False),
    ("sub", "string", False),
    ("ses", "string", True),
    ("acq", "string", True),
    ("run", "string", True),
    ("suffix", "string", False),
    ("dataset_name", "string", False),
    ("dataset_root", "string", False),
    ("image_path", "string", False),
    ("cord_mask_path", "string", True),
    ("lesion_mask_path", "string", True),
    ("sidecar_path", "string", True),
    ("orientation", "string", False),
    ("acquisition_plane", "string", False),
    ("dim_x", "int32", False),
    ("dim_y", "int32", False),
    ("dim_z", "int32", False),
    ("voxel_x_mm", "double", False),
    ("voxel_y_mm", "double", False),
    ("voxel_z_mm", "double", False),
    ("manufacturer", "string", True),
    ("magnetic_field_strength_t", "double", True),
    ("entities", "map<string, string>", False),
    ("sidecar", "map<string, string>", False),
    ("participant", "map<string, string>", False),
    ("vert_labels_path", "string", True),
    ("disc_labels_path", "string", True),
]

PINNED_FAILURES = [
    ("scan_id", "string", False),
    ("site", "string", True),
    ("stage", "string", False),
    ("error_type", "string", False),
    ("message", "string", False),
    ("traceback", "string", False),
    ("path", "string", True),
    ("attempt", "int32", False),
    ("timestamp", "string", False),
    ("run_id", "string", True),
]


PINNED_LESIONS = [
    ("scan_id", "string", True),
    ("lesion_id", "int32", False),
    ("volume_mm3", "double", False),
    ("outside_cord_volume_mm3", "double", False),
    ("fully_outside_cord", "bool", False),
    ("length_mm", "double", False),
    ("width_mm", "double", False),
    ("max_equivalent_diameter_mm", "double", False),
    ("max_axial_damage_ratio", "double", False),
    ("length_midsagittal_mm", "double", True),
    ("width_midsagittal_mm", "double", True),
    ("dorsal_bridge_width_mm", "double", True),
    ("ventral_bridge_width_mm", "double", True),
    ("total_bridge_width_mm", "double", True),
    ("dorsal_bridge_ratio_pct", "double", True),
    ("ventral_bridge_ratio_pct", "double", True),
    ("bridge_fallback", "bool", False),
    ("centroid_x_mm", "double", False),
    ("centroid_y_mm", "double", False),
    ("centroid_z_mm", "double", False),
    ("z_min_slice", "int32", False),
    ("z_max_slice", "int32", False),
    ("mean_intensity", "double", True),
    ("std_intensity", "double", True),
    ("vert_levels", "list<item: string>", True),
    ("vert_level_centroid", "string", True),
]

PINNED_LESION_SLICES = [
    ("scan_id", "string", True),
    ("lesion_id", "int32", False),
    ("sagittal_slice", "int32", False),
    ("dorsal_bridge_width_mm", "double", False),
    ("ventral_bridge_width_mm", "double", False),
    ("total_bridge_width_mm", "double", False),
]


def _pinned(schema):
    return [(f.name, str(f.type), f.nullable) for f in schema]


def test_scans_schema_pinned():
    assert _pinned(SCANS_SCHEMA) == PINNED_SCANS


def test_failures_schema_pinned():
    assert _pinned(FAILURES_SCHEMA) == PINNED_FAILURES


def test_lesions_schema_pinned():
    assert _pinned(LESIONS_SCHEMA) == PINNED_LESIONS
    assert _pinned(LESION_SLICES_SCHEMA) == PINNED_LESION_SLICES


def test_every_mm_column_says_mm():
    for schema in (SCANS_SCHEMA, LESIONS_SCHEMA, LESION_SLICES_SCHEMA):
        for f in schema:
            if f.name.endswith("_mm"):
                assert f.metadata[b"unit"] == b"mm", f.name
            if f.name.endswith("_mm3"):
                assert f.metadata[b"unit"] == b"mm3", f.name


def test_units_in_metadata():
    assert SCANS_SCHEMA.field("voxel_x_mm").metadata[b"unit"] == b"mm"
    assert SCANS_SCHEMA.field("magnetic_field_strength_t").metadata[b"unit"] == b"T"


def _scan(**kw) -> Scan:
    base = dict(
        scan_id="site-zurich_sub-01_ses-02_acq-sag_T2w",
        site="zurich",
        dataset_root="/data/zurich",
        dataset_name="Zurich SCI",
        sub="01",
        ses="02",
        acq="sag",
        image_path="/data/zurich/sub-01/ses-02/anat/sub-01_ses-02_acq-sag_T2w.nii.gz",
        orientation="PSR",
        acquisition_plane="sagittal",
        shape=(7, 8, 9),
        voxel_size_mm=(0.5, 0.5, 3.0),
        entities=(("sub", "01"), ("ses", "02"), ("acq", "sag")),
        manufacturer="Siemens",
        magnetic_field_strength_t=3.0,
        sidecar=(("Manufacturer", '"Siemens"'),),
        participant=(("age", "42"), ("sex", "F")),
    )
    base.update(kw)
    return Scan(**base)


def test_scans_roundtrip_through_parquet(tmp_path):
    scans = [_scan(), _scan(scan_id="site-zurich_sub-02_T2w", sub="02", ses=None, acq=None, cord_mask_path="/m.nii.gz")]
    path = write_parquet(tmp_path / "scans.parquet", scans_to_table(scans))
    table = pq.read_table(path)
    assert table.schema.equals(SCANS_SCHEMA)
    assert scans_from_table(table) == scans
    df = table.to_pandas()
    assert df.loc[0, "dim_z"] == 9
    assert pd.isna(df.loc[1, "ses"])


def test_scan_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _scan().site = "other"  # type: ignore[misc]


def test_scan_helpers():
    s = _scan()
    assert s.participant_dict == {"age": "42", "sex": "F"}
    assert not s.has_manual_masks
    assert _scan(cord_mask_path="c", lesion_mask_path="l").has_manual_masks


def test_failure_from_exception():
    try:
        raise NiftiError("'x.nii.gz': file is empty (0 bytes). Fix: re-export", path="x.nii.gz")
    except NiftiError as exc:
        f = Failure.from_exception(exc, scan_id="site-a_sub-01_T2w", site="a")
    assert f.stage == "io"
    assert f.error_type == "NiftiError"
    assert f.path == "x.nii.gz"
    assert "re-export" in f.message
    assert "test_failure_from_exception" in f.traceback
    back = failures_from_table(failures_to_table([f]))
    assert back == [f]


def test_failure_stage_override_and_plain_exception():
    f = Failure.from_exception(ValueError("bad"), scan_id="s", stage="segment")
    assert (f.stage, f.error_type, f.path) == ("segment", "ValueError", None)
    assert Failure.from_exception(KeyError("k"), scan_id="s").stage == "general"
