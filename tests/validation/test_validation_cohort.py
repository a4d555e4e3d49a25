"""Cohort validation on a synthetic cohort with known predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from cohort_sciseg.discover import find_scans
from cohort_sciseg.errors import ValidationError
from cohort_sciseg.io import load_nifti, save_nifti
from cohort_sciseg.records import BIOMARKERS_SCHEMA, METRICS_SCHEMA
from cohort_sciseg.synth import synthesize_cohort
from cohort_sciseg.validation import find_predictions, validate_scans


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    c = synthesize_cohort(root / "cohort", sites=2, subjects_per_site=2, seed=5)
    scans = find_scans(c.dataset_roots).scans
    pred_dir = root / "pred"
    # The first scan with a lesion gets an over-segmented lesion (dilated inside the cord).
    target = next(s for s in scans if (load_nifti(s.lesion_mask_path).data > 0).any())
    scans = (target, *[s for s in scans if s is not target])
    for s in scans:
        cord = load_nifti(s.cord_mask_path)
        lesion = load_nifti(s.lesion_mask_path).data > 0
        if s is target:
            lesion = ndimage.binary_dilation(lesion) & (cord.data > 0)
        save_nifti(pred_dir / s.site / f"{s.scan_id}_sc_seg.nii.gz", cord.data, cord.affine)
        save_nifti(pred_dir / s.site / f"{s.scan_id}_lesion_seg.nii.gz", lesion.astype(np.uint8), cord.affine)
    return scans, pred_dir


def _value(df, scan_id, structure, metric):
    sel = df[(df.scan_id == scan_id) & (df.structure == structure) & (df.metric == metric)]
    assert len(sel) == 1
    return sel.value.iloc[0]


def test_find_predictions_by_scan_id(cohort):
    scans, pred_dir = cohort
    preds = find_predictions(scans, pred_dir)
    assert set(preds) == {s.scan_id for s in scans}
    assert all(p.cord_path and p.lesion_path for p in preds.values())


def test_metrics_and_biomarkers(cohort):
    scans, pred_dir = cohort
    tables = validate_scans(scans, find_predictions(scans, pred_dir), method="dilated")
    assert tables.failures == ()
    assert tables.metrics.schema.equals(METRICS_SCHEMA)
    assert tables.biomarkers.schema.equals(BIOMARKERS_SCHEMA)
    m = tables.metrics.to_pandas()
    assert set(m.units) == {"mm"}
    first = scans[0]
    ref = load_nifti(first.lesion_mask_path).data > 0
    cord = load_nifti(first.cord_mask_path).data > 0
    pred = ndimage.binary_dilation(ref) & cord
    dice = 2 * np.count_nonzero(ref & pred) / (ref.sum() + pred.sum())
    assert _value(m, first.scan_id, "lesion", "Dice") == pytest.approx(dice, rel=1e-12)
    assert _value(m, first.scan_id, "cord", "Dice") == 1.0
    for s in scans[1:]:
        if (load_nifti(s.lesion_mask_path).data > 0).any():
            assert _value(m, s.scan_id, "lesion", "Dice") == 1.0
        else:  # empty reference: ANIMA reports lesion counts only
            assert m[(m.scan_id == s.scan_id) & (m.structure == "lesion") & (m.metric == "Dice")].empty
    bio = tables.biomarkers.to_pandas().set_index(["scan_id", "method"])
    vox = float(np.prod(first.voxel_size_mm))
    assert bio.loc[(first.scan_id, "manual"), "total_volume_mm3"] == pytest.approx(ref.sum() * vox, rel=1e-6)
    assert bio.loc[(first.scan_id, "dilated"), "total_volume_mm3"] == pytest.approx(pred.sum() * vox, rel=1e-6)
    assert len(bio) == 2 * len(scans)


def test_bad_prediction_becomes_a_failure(cohort, tmp_path):
    scans, pred_dir = cohort
    preds = find_predictions(scans, pred_dir)
    bad = scans[1]
    wrong = tmp_path / f"{bad.scan_id}_lesion_seg.nii.gz"
    save_nifti(wrong, np.zeros((5, 6, 7), np.uint8), np.eye(4))
    preds[bad.scan_id] = type(preds[bad.scan_id])(cord_path=preds[bad.scan_id].cord_path, lesion_path=str(wrong))
    tables = validate_scans(scans, preds)
    assert [f.scan_id for f in tables.failures] == [bad.scan_id]
    assert "does not match the image grid" in tables.failures[0].message
    assert bad.scan_id not in set(tables.metrics.column("scan_id").to_pylist())
    assert len(set(tables.metrics.column("scan_id").to_pylist())) == len(scans) - 1


def test_missing_prediction_mask_is_a_failure(cohort):
    scans, pred_dir = cohort
    preds = find_predictions(scans, pred_dir)
    s = scans[0]
    preds[s.scan_id] = type(preds[s.scan_id])(cord_path=preds[s.scan_id].cord_path, lesion_path=None)
    tables = validate_scans(scans, preds)
    assert "predicted lesion mask not found" in tables.failures[0].message


def test_predictions_folder_missing(cohort, tmp_path):
    with pytest.raises(ValidationError, match="predictions folder not found"):
        find_predictions(cohort[0], tmp_path / "nope")


def test_voxel_units_recorded(cohort):
    scans, pred_dir = cohort
    tables = validate_scans(scans[:1], find_predictions(scans, pred_dir), units="voxel")
    assert set(pd.unique(tables.metrics.column("units").to_pandas())) == {"voxel"}


def test_a_prediction_anima_cannot_read_keeps_its_corrected_metrics(cohort, tmp_path):
    # int16 background -1 (ANIMA's unsigned-short reader would wrap it to 65535): the
    # ANIMA-compatible values cannot be reproduced, the corrected ones still can.
    scans, pred_dir = cohort
    preds = find_predictions(scans, pred_dir)
    s = scans[0]
    lesion = load_nifti(preds[s.scan_id].lesion_path)
    odd = np.where(lesion.data > 0, 1, -1).astype(np.int16)
    path = tmp_path / f"{s.scan_id}_lesion_seg.nii.gz"
    save_nifti(path, odd, lesion.affine)
    preds[s.scan_id] = type(preds[s.scan_id])(cord_path=preds[s.scan_id].cord_path, lesion_path=str(path))
    tables = validate_scans([s], preds)
    assert tables.failures == ()
    m = tables.metrics.to_pandas()
    lesion_rows = m[m.structure == "lesion"]
    assert set(lesion_rows.source) == {"corrected"}
    assert set(m[m.structure == "cord"].source) == {"anima", "corrected"}
    good = validate_scans([s], find_predictions(scans, pred_dir)).metrics.to_pandas()
    want = good[(good.structure == "lesion") & (good.source == "corrected")].set_index("metric").value
    got = lesion_rows.set_index("metric").value
    pd.testing.assert_series_equal(got.sort_index(), want.sort_index())
    (note,) = [n for n in tables.manual_notes[s.scan_id] if "ANIMA" in n]
    assert note.startswith("lesion masks: ANIMA-compatible metrics not computed (corrected metrics kept)")
    assert "-1" in note
    assert str(path) in note


def test_the_scan_bridges_are_those_of_its_largest_lesion():
    """Hand-built lesions table: most volume in the cord wins, then most in all, then the superior lesion."""
    import pyarrow as pa

    from cohort_sciseg.records import LESIONS_SCHEMA
    from cohort_sciseg.validation.cohort import largest_lesion_bridges

    def table(rows):
        full = [{f.name: None for f in LESIONS_SCHEMA} | {"scan_id": "s", "fully_outside_cord": False,
                                                         "bridge_fallback": False} | r for r in rows]
        return pa.Table.from_pylist(full, schema=LESIONS_SCHEMA)

    def lesion(lid, inside, outside, dorsal, ventral):
        return {"lesion_id": lid, "volume_mm3": inside, "outside_cord_volume_mm3": outside,
                "dorsal_bridge_width_mm": dorsal, "ventral_bridge_width_mm": ventral,
                "total_bridge_width_mm": None if dorsal is None else dorsal + ventral}

    assert largest_lesion_bridges(table([])) == dict.fromkeys(
        ("dorsal_bridge_width_mm", "ventral_bridge_width_mm", "total_bridge_width_mm"))
    two = table([lesion(1, 10.0, 0.0, 1.0, 2.0), lesion(2, 30.0, 0.0, 0.5, 0.25)])
    assert largest_lesion_bridges(two) == {"dorsal_bridge_width_mm": 0.5, "ventral_bridge_width_mm": 0.25,
                                           "total_bridge_width_mm": 0.75}
    tie_inside = table([lesion(1, 30.0, 0.0, 1.0, 2.0), lesion(2, 30.0, 5.0, 0.5, 0.25)])
    assert largest_lesion_bridges(tie_inside)["total_bridge_width_mm"] == 0.75  # more volume in all
    full_tie = table([lesion(1, 30.0, 5.0, 1.0, 2.0), lesion(2, 30.0, 5.0, 0.5, 0.25)])
    assert largest_lesion_bridges(full_tie)["total_bridge_width_mm"] == 3.0  # the superior one (id 1)
    nan = table([lesion(1, 30.0, 0.0, float("nan"), float("nan"))])
    assert largest_lesion_bridges(nan)["dorsal_bridge_width_mm"] is None  # NaN (no cord there) stored as null
