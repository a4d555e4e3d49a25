"""``measure_lesions`` on the real scans of ``spine-t2w`` (skipped when the data are absent).

Expected values are counted here from the masks (voxel counts, per-slice cord areas in RPI) or
come from the independent loop implementation in ``morpho_reference.py`` (the real cords are
curved, so the angle correction is exercised on a smoothed, non-trivial centerline).
"""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
from morpho_phantoms import (
    assert_rows_match,
    assert_summary_matches,
    lesions_df,
    reorient,
    slices_df,
)
from morpho_reference import components_18, reference_from_any, to_rpi

from cohort_sciseg.morphometry import measure_lesions

pytestmark = pytest.mark.shared_data

LABELS = "derivatives/labels"


def load(path):
    img = nib.load(path)
    return np.asanyarray(img.dataobj), img.affine


def test_sctfakelesion_volume_and_count(spine_t2w):
    d = spine_t2w / LABELS / "sub-sctfakelesion" / "anat"
    lesion, aff = load(d / "sub-sctfakelesion_T2w_lesion-scisegv2.nii.gz")
    cord, aff_c = load(d / "sub-sctfakelesion_T2w_seg-scisegv2.nii.gz")
    np.testing.assert_allclose(aff, aff_c)
    assert "".join(nib.aff2axcodes(aff)) == "PSR"
    les = lesion > 0.5
    assert int(les.sum()) == 163
    vox = math.prod(float(np.linalg.norm(aff[:3, i])) for i in range(3))
    assert vox == pytest.approx(0.512, rel=1e-5)
    n_inside = int((les & (cord > 0.5)).sum())
    n_components = len(components_18(les))

    res = measure_lesions(cord, lesion, aff, scan_id="sub-sctfakelesion")
    s = res.summary
    assert s.n_lesions == n_components
    assert s.total_volume_mm3 + s.total_outside_cord_volume_mm3 == pytest.approx(163 * vox, rel=1e-9)
    assert s.total_volume_mm3 + s.total_outside_cord_volume_mm3 == pytest.approx(83.456, rel=1e-5)
    assert s.total_volume_mm3 == pytest.approx(n_inside * vox, rel=1e-9)
    assert s.cord_volume_mm3 == pytest.approx(int((cord > 0.5).sum()) * vox, rel=1e-9)

    rows, slices, summary = reference_from_any(cord, lesion, aff, scan_id="sub-sctfakelesion")
    assert_rows_match(lesions_df(res.lesions), rows)
    assert_rows_match(slices_df(res.slices), slices)
    assert_summary_matches(res.summary, summary)


def test_sctfakelesion_with_image(spine_t2w):
    d = spine_t2w / LABELS / "sub-sctfakelesion" / "anat"
    lesion, aff = load(d / "sub-sctfakelesion_T2w_lesion-scisegv2.nii.gz")
    cord, _ = load(d / "sub-sctfakelesion_T2w_seg-scisegv2.nii.gz")
    image, aff_i = load(spine_t2w / "sub-sctfakelesion" / "anat" / "sub-sctfakelesion_T2w.nii.gz")
    np.testing.assert_allclose(aff_i, aff, atol=1e-5)
    res = measure_lesions(cord, lesion, aff, image=image)
    sel = (lesion > 0.5) & (cord > 0.5) & (image != 0)
    vals = image[sel].astype(np.float64)
    if res.summary.n_lesions == 1:
        row = lesions_df(res.lesions).iloc[0]
        assert row["mean_intensity"] == pytest.approx(vals.mean(), rel=1e-9)
        assert row["std_intensity"] == pytest.approx(vals.std(), rel=1e-9)
    rows, _, _ = reference_from_any(cord, lesion, aff, image=image)
    assert_rows_match(lesions_df(res.lesions), rows)


@pytest.fixture(scope="module")
def errsm11_with_box(spine_t2w):
    """Real errsm11 manual cord (float32, PSR) with a 3x4x6 box lesion inside it (built in RPI)."""
    cord, aff = load(spine_t2w / LABELS / "sub-errsm11" / "anat" / "sub-errsm11_T2w_seg-manual.nii.gz")
    assert cord.dtype == np.float32
    assert "".join(nib.aff2axcodes(aff)) == "PSR"
    cord_rpi, aff_rpi = to_rpi(cord, aff)
    cb = cord_rpi > 0.5
    z0, nzb, nxb, nyb = 100, 6, 3, 4
    common = cb[:, :, z0 : z0 + nzb].all(axis=2)
    spot = None
    for x in range(cb.shape[0] - nxb):
        for y in range(cb.shape[1] - nyb):
            if common[x : x + nxb, y : y + nyb].all():
                spot = (x, y)
                break
        if spot:
            break
    assert spot is not None, "no room for the box in the cord"
    box = (slice(spot[0], spot[0] + nxb), slice(spot[1], spot[1] + nyb), slice(z0, z0 + nzb))
    lesion_rpi = np.zeros(cb.shape, dtype=np.uint8)
    lesion_rpi[box] = 1
    lesion, aff_back = reorient(lesion_rpi, aff_rpi, "PSR")
    np.testing.assert_allclose(aff_back, aff, atol=1e-6)
    assert lesion.shape == cord.shape
    return cord, lesion, aff, cb, box


def test_errsm11_box_volume_and_damage_ratio(errsm11_with_box):
    cord, lesion, aff, cb, box = errsm11_with_box
    vox = math.prod(float(np.linalg.norm(aff[:3, i])) for i in range(3))
    res = measure_lesions(cord, lesion, aff)
    assert res.summary.n_lesions == 1
    row = lesions_df(res.lesions).iloc[0]
    assert row["volume_mm3"] == pytest.approx(72 * vox, rel=1e-12)
    assert row["outside_cord_volume_mm3"] == 0.0
    # worst slice: the box covers 12 voxels on every slice, the cord area varies
    ratios = [12 / int(cb[:, :, z].sum()) for z in range(box[2].start, box[2].stop)]
    assert row["max_axial_damage_ratio"] == pytest.approx(max(ratios), rel=1e-12)
    assert (row["z_min_slice"], row["z_max_slice"]) == (box[2].start, box[2].stop - 1)
    assert res.summary.cord_volume_mm3 == pytest.approx(int(cb.sum()) * vox, rel=1e-12)
    # the real cord is curved: angle correction makes the length longer than 6 slices
    assert row["length_mm"] >= 6 * float(np.linalg.norm(aff[:3, 1])) - 1e-9


def test_errsm11_box_matches_reference(errsm11_with_box):
    cord, lesion, aff, _, _ = errsm11_with_box
    res = measure_lesions(cord, lesion, aff)
    rows, slices, summary = reference_from_any(cord, lesion, aff)
    assert_rows_match(lesions_df(res.lesions), rows)
    assert_rows_match(slices_df(res.slices), slices)
    assert_summary_matches(res.summary, summary)
