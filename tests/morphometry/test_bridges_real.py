"""SCT master's tissue bridges and NLI slice on real curved cords with drawn lesions.

The lesions are drawn in RPI on the real manual cords of ``spine-t2w`` so that one lesion lies on
only one of the two interpolation slices at some axial slices (the case SCT PR #5202 changed:
the available slice's bridge is used, not 0) and another misses both (the A-P diameter
fallback). Expected values come from the independent loop implementation in
``morpho_reference.py``; the NLI slice is given in the file's own orientation, as SCT's
``-nli-slice`` takes it.
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
from morpho_reference import reference_from_any, to_rpi

from cohort_sciseg.errors import MorphometryError
from cohort_sciseg.morphometry import SliceLevels, measure_lesions, slice_levels

pytestmark = pytest.mark.shared_data

LABELS = "derivatives/labels"


def real_cord(spine_t2w, sub):
    img = nib.load(spine_t2w / LABELS / f"sub-{sub}" / "anat" / f"sub-{sub}_T2w_seg-manual.nii.gz")
    cord = np.asanyarray(img.dataobj)
    cord_rpi, aff_rpi = to_rpi(cord, img.affine)
    return cord, img.affine, cord_rpi > 0.5, aff_rpi, "".join(nib.aff2axcodes(img.affine))


def cord_x_star(cb, z_c):
    xs = [np.argwhere(cb[:, :, z])[:, 0].mean() for z in range(z_c - 2, z_c + 3) if cb[:, :, z].any()]
    return float(np.mean(xs))


def draw_line(lesion, cb, x, z, half=1):
    ys = np.flatnonzero(cb[x, :, z])
    assert len(ys) >= 2 * half + 3, "phantom: the cord must be thick enough here"
    mid = (int(ys[0]) + int(ys[-1])) // 2
    lesion[x, mid - half : mid + half + 1, z] = 1


@pytest.fixture(scope="module", params=["errsm11", "errsm18"])
def staggered(request, spine_t2w):
    """A lesion on floor(x*) for 6 slices and on ceil(x*) for 6 slices, overlapping on 3; a small
    parasagittal lesion elsewhere (fallback). Returned in the file's orientation."""
    cord, aff, cb, aff_rpi, axcodes = real_cord(spine_t2w, request.param)
    nz = cb.shape[2]
    z0 = nz // 2 - 4
    # the big lesion's voxels have mean z = z0 + 4 by construction (3 voxels per line)
    x_star = cord_x_star(cb, z0 + 4)
    s1, s2 = math.floor(x_star), math.ceil(x_star)
    assert s1 != s2
    lesion = np.zeros(cb.shape, dtype=np.uint8)
    for z in range(z0, z0 + 6):
        draw_line(lesion, cb, s1, z)
    for z in range(z0 + 3, z0 + 9):
        draw_line(lesion, cb, s2, z)
    # small lesion far below, on a sagittal slice >= 2 voxels from s1 and s2: misses both
    zs = z0 - 25
    xs = [x for x in np.flatnonzero(cb[:, :, zs].any(axis=1)) if min(abs(x - s1), abs(x - s2)) >= 2]
    xs = [x for x in xs if cb[x, :, zs].sum() >= 3]
    assert xs, "phantom: the cord must be wide enough"
    draw_line(lesion, cb, int(xs[0]), zs, half=0)
    lesion_file, aff_back = reorient(lesion, aff_rpi, axcodes)
    np.testing.assert_allclose(aff_back, aff, atol=1e-6)
    return cord, lesion_file, aff, (s1, s2, z0)


def test_staggered_lesion_matches_sct_master(staggered):
    cord, lesion, aff, _ = staggered
    res = measure_lesions(cord, lesion, aff)
    rows, slices, summary = reference_from_any(cord, lesion, aff)
    df = lesions_df(res.lesions)
    assert len(df) == 2
    assert df["bridge_fallback"].tolist() == [False, True]
    assert_rows_match(df, rows)
    assert_rows_match(slices_df(res.slices), slices)
    assert_summary_matches(res.summary, summary)


def test_staggered_bridge_not_below_either_slice(staggered):
    cord, lesion, aff, (s1, s2, _) = staggered
    res = measure_lesions(cord, lesion, aff)
    big = lesions_df(res.lesions).iloc[0]
    sl = slices_df(res.slices)
    on = sl[(sl["lesion_id"] == 1) & sl["sagittal_slice"].isin([s1, s2])]
    assert sorted(on["sagittal_slice"]) == [s1, s2]
    for side in ("dorsal", "ventral"):
        # the old rule (interpolating with 0) gave (1-f) or f times a slice's bridge here
        assert big[f"{side}_bridge_width_mm"] >= on[f"{side}_bridge_width_mm"].min() - 1e-9
    assert big["total_bridge_width_mm"] > 0


def nli_in_file_orientation(z_rpi, shape_file, axcodes):
    """The file's S-I index of RPI slice ``z_rpi`` (nibabel axcodes name the direction axes point to)."""
    axis = next(i for i, c in enumerate(axcodes) if c in "SI")
    n = shape_file[axis]
    return z_rpi if axcodes[axis] == "S" else n - 1 - z_rpi


def test_nli_slice_fixes_the_midsagittal_slice(staggered, spine_t2w):
    cord, lesion, aff, (_, _, z0) = staggered
    axcodes = "".join(nib.aff2axcodes(aff))
    nli_rpi = z0 - 10
    nli = nli_in_file_orientation(nli_rpi, cord.shape, axcodes)
    res = measure_lesions(cord, lesion, aff, nli_slice=nli)
    rows, slices, summary = reference_from_any(cord, lesion, aff, nli_rpi=nli_rpi)
    assert res.summary.nli_slice == nli
    assert_rows_match(lesions_df(res.lesions), rows)
    assert_rows_match(slices_df(res.slices), slices)
    assert_summary_matches(res.summary, summary)
    assert res.summary.nli_ap_diameter_mm is not None
    assert res.summary.nli_ap_diameter_mm > 0


def test_nli_without_lesion_gives_the_ap_diameter(spine_t2w):
    cord, aff, cb, _, axcodes = real_cord(spine_t2w, "errsm21")
    nli_rpi = cb.shape[2] // 2
    nli = nli_in_file_orientation(nli_rpi, cord.shape, axcodes)
    empty = np.zeros(cord.shape, dtype=np.uint8)
    res = measure_lesions(cord, empty, aff, nli_slice=nli)
    _, _, summary = reference_from_any(cord, empty, aff, nli_rpi=nli_rpi)
    assert res.summary.n_lesions == 0
    assert summary["nli_ap_diameter_mm"] is not None
    assert res.summary.nli_ap_diameter_mm == pytest.approx(summary["nli_ap_diameter_mm"], rel=1e-9)
    assert res.summary.midsagittal_slice == pytest.approx(summary["midsagittal_slice"], rel=1e-12)


def test_nli_slice_outside_the_image_is_an_error(spine_t2w):
    cord, aff, _, _, axcodes = real_cord(spine_t2w, "errsm21")
    axis = next(i for i, c in enumerate(axcodes) if c in "SI")
    n = cord.shape[axis]
    empty = np.zeros(cord.shape, dtype=np.uint8)
    with pytest.raises(MorphometryError, match=rf"NLI slice {n} is not a slice .* from 0 to {n - 1}"):
        measure_lesions(cord, empty, aff, nli_slice=n, scan_id="sub-errsm21")
    with pytest.raises(MorphometryError, match=r"NLI slice '12' is not a slice"):
        measure_lesions(cord, empty, aff, nli_slice="12")  # type: ignore[arg-type]


def test_vertebral_levels_from_a_labelled_real_cord(staggered):
    # sct_label_vertebrae-style labelling of the real cord: cord voxels hold their level, in bands
    # of 12 RPI slices from the top (C2, C3, ...).
    cord, lesion, aff, (_, _, z0) = staggered
    axcodes = "".join(nib.aff2axcodes(aff))
    cord_rpi, aff_rpi = to_rpi(cord, aff)
    cb = cord_rpi > 0.5
    nz = cb.shape[2]
    level_of = {z: 2 + (nz - 1 - z) // 12 for z in range(nz)}
    labels = np.zeros(cb.shape, dtype=np.uint8)
    for z, lv in level_of.items():
        labels[:, :, z][cb[:, :, z]] = lv
    vert, _ = reorient(labels, aff_rpi, axcodes)
    res = measure_lesions(cord, lesion, aff, vert_labels=vert)
    df = lesions_df(res.lesions)
    order = [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]
    names = dict(enumerate(order, start=1))
    for _, row in df.iterrows():
        zs = range(int(row["z_min_slice"]), int(row["z_max_slice"]) + 1)
        want = [names[lv] for lv in sorted({level_of[z] for z in zs})]
        assert list(row["vert_levels"]) == want
    big = df.iloc[0]
    assert big["vert_level_centroid"] == names[level_of[z0 + 4]]  # its voxels' mean z is z0 + 4
    assert res.summary.vert_labels == "vertebrae"
    assert list(res.summary.lesion_vert_levels) == sorted(
        {v for lv in df["vert_levels"] for v in lv}, key=order.index
    )
    # the per-slice levels computed beforehand (as run does from the labelling file) give the same rows
    levels = slice_levels(vert, None, aff)
    assert levels is not None
    assert levels.kind == "vertebrae"
    assert levels.levels.tolist() == [level_of[z] for z in range(nz)]
    again = measure_lesions(cord, lesion, aff, levels=levels)
    assert again.lesions.equals(res.lesions)
    assert again.summary == res.summary
    wrong = SliceLevels(levels.levels[:-1], "vertebrae")
    with pytest.raises(MorphometryError, match=rf"slice levels of shape \({nz - 1},\).*one level per RPI axial slice"):
        measure_lesions(cord, lesion, aff, levels=wrong, scan_id="sub-x")
    with pytest.raises(MorphometryError, match=r"with vertebral or disc labels"):
        measure_lesions(cord, lesion, aff, levels=levels, vert_labels=vert)
