"""``measure_lesions`` on phantoms whose measures are counted from the construction.

Cords are cylinders (radius 4 mm) built in RPI arrays; lesions are boxes and discs. Every expected
number below is derived in the test from the voxels that were set (REFERENCE.md section 2), or, for
the orientation tests, also from the independent loop implementation in ``morpho_reference.py``.
"""

from __future__ import annotations

import dataclasses
import math

import nibabel as nib
import numpy as np
import pytest
from morpho_phantoms import (
    GRIDS,
    assert_rows_match,
    assert_summary_matches,
    cylinder,
    disc,
    lesions_df,
    reorient,
    rotation,
    rpi_affine,
    slices_df,
    world,
)
from morpho_reference import reference_from_any, reference_measures

from cohort_sciseg.errors import CohortSciSegError
from cohort_sciseg.morphometry import LesionAnalysis, measure_lesions
from cohort_sciseg.records import LESION_SLICES_SCHEMA, LESIONS_SCHEMA, ScanMorphometry

REL = 1e-9


def straight_cord(zooms, shape, radius_mm=4.0):
    cx, cy = shape[0] // 2, shape[1] // 2
    return cylinder(shape, zooms, (cx, cy), radius_mm), (cx, cy)


def box_slices(cx, cy, zooms, z0, z1):
    """A box around the cord axis, asymmetric in y (2 mm dorsal, 1 mm ventral of the axis)."""
    px, py, _ = zooms
    a = max(1, round(1.0 / px))
    b1, b2 = round(2.0 / py), round(1.0 / py)
    return (slice(cx - a, cx + a + 1), slice(cy - b1, cy + b2 + 1), slice(z0, z1 + 1))


def cord_line(cord2d, x):
    ys = np.flatnonzero(cord2d[x])
    return int(ys[0]), int(ys[-1])


# --------------------------------------------------------------------------- straight cord


def test_box_lesion_in_straight_cord(grid):
    zooms, shape = grid
    px, py, pz = zooms
    aff = rpi_affine(zooms)
    cord, (cx, cy) = straight_cord(zooms, shape)
    z0, z1 = shape[2] // 3, shape[2] // 3 + 4
    sl = box_slices(cx, cy, zooms, z0, z1)
    lesion = np.zeros(shape, dtype=np.uint8)
    lesion[sl] = 1
    assert cord[sl].all(), "the box must lie inside the cord"
    nxb, nyb, nzb = (s.stop - s.start for s in sl)
    per_slice = int(cord[:, :, 0].sum())

    res = measure_lesions(cord, lesion, aff, scan_id="sub-01")
    assert isinstance(res, LesionAnalysis)
    df = lesions_df(res.lesions)
    assert len(df) == 1
    vox = px * py * pz
    ymin_c, ymax_c = cord_line(cord[:, :, z0], cx)
    dorsal = (sl[1].start - ymin_c) * py
    ventral = (ymax_c - (sl[1].stop - 1)) * py
    centre = [(s.start + s.stop - 1) / 2 for s in sl]
    want = {
        "scan_id": "sub-01",
        "lesion_id": 1,
        "volume_mm3": nxb * nyb * nzb * vox,
        "outside_cord_volume_mm3": 0.0,
        "fully_outside_cord": False,
        "length_mm": nzb * pz,
        "width_mm": nyb * py,
        "max_equivalent_diameter_mm": 2 * math.sqrt(nxb * nyb * px * py / math.pi),
        "max_axial_damage_ratio": nxb * nyb / per_slice,
        "length_midsagittal_mm": nzb * pz,
        "width_midsagittal_mm": nyb * py,
        "dorsal_bridge_width_mm": dorsal,
        "ventral_bridge_width_mm": ventral,
        "total_bridge_width_mm": dorsal + ventral,
        "dorsal_bridge_ratio_pct": 100 * dorsal / (dorsal + ventral),
        "ventral_bridge_ratio_pct": 100 * ventral / (dorsal + ventral),
        "bridge_fallback": False,
        "centroid_x_mm": world(aff, centre)[0],
        "centroid_y_mm": world(aff, centre)[1],
        "centroid_z_mm": world(aff, centre)[2],
        "z_min_slice": z0,
        "z_max_slice": z1,
        "mean_intensity": None,
        "std_intensity": None,
    }
    assert_rows_match(df, [want], skip_none=False)
    assert dorsal > 0
    assert ventral > 0
    assert dorsal != ventral

    # Per-sagittal-slice minimum bridges, one row per x of the box.
    want_slices = []
    for x in range(sl[0].start, sl[0].stop):
        lo, hi = cord_line(cord[:, :, z0], x)
        d, v = (sl[1].start - lo) * py, (hi - (sl[1].stop - 1)) * py
        want_slices.append(
            {"scan_id": "sub-01", "lesion_id": 1, "sagittal_slice": x,
             "dorsal_bridge_width_mm": d, "ventral_bridge_width_mm": v, "total_bridge_width_mm": d + v}
        )
    assert_rows_match(slices_df(res.slices), want_slices)

    s = res.summary
    assert isinstance(s, ScanMorphometry)
    assert_summary_matches(
        s,
        {
            "scan_id": "sub-01",
            "n_lesions": 1,
            "total_volume_mm3": nxb * nyb * nzb * vox,
            "total_outside_cord_volume_mm3": 0.0,
            "total_length_mm": nzb * pz,
            "max_axial_damage_ratio": nxb * nyb / per_slice,
            "cord_volume_mm3": per_slice * shape[2] * vox,
            "midsagittal_slice": float(cx),
            "connectivity": 18,
            "threshold": 0.5,
            "angle_correction": True,
        },
    )
    assert s.notes == () or isinstance(s.notes, tuple)


def test_disc_lesion_in_straight_cord(grid):
    zooms, shape = grid
    px, py, pz = zooms
    aff = rpi_affine(zooms)
    cord, (cx, cy) = straight_cord(zooms, shape)
    d2 = disc(shape[:2], (cx, cy + round(0.6 / py)), 2.0, zooms[:2])
    assert (d2 <= cord[:, :, 0]).all()
    z0, z1 = 2, 4
    lesion = np.zeros(shape, dtype=bool)
    lesion[:, :, z0 : z1 + 1] = d2[:, :, None]
    n = int(d2.sum())
    ys = np.flatnonzero(d2.any(axis=0))
    res = measure_lesions(cord.astype(np.float32), lesion, aff)
    row = lesions_df(res.lesions).iloc[0]
    assert row["volume_mm3"] == pytest.approx(n * 3 * px * py * pz, rel=REL)
    assert row["length_mm"] == pytest.approx(3 * pz, rel=REL)
    assert row["width_mm"] == pytest.approx((ys[-1] - ys[0] + 1) * py, rel=REL)
    assert row["max_equivalent_diameter_mm"] == pytest.approx(2 * math.sqrt(n * px * py / math.pi), rel=REL)
    assert row["max_axial_damage_ratio"] == pytest.approx(n / cord[:, :, 0].sum(), rel=REL)
    # midsagittal line x = cx (the cord is symmetric about cx)
    col = np.flatnonzero(d2[cx])
    assert row["width_midsagittal_mm"] == pytest.approx(len(col) * py, rel=REL)
    lo, hi = cord_line(cord[:, :, 0], cx)
    assert row["dorsal_bridge_width_mm"] == pytest.approx((col[0] - lo) * py, rel=REL)
    assert row["ventral_bridge_width_mm"] == pytest.approx((hi - col[-1]) * py, rel=REL)
    assert res.summary.midsagittal_slice == pytest.approx(cx, abs=1e-12)


def test_tables_have_the_record_schemas():
    zooms, shape = GRIDS["aniso05x3"]
    cord, (cx, cy) = straight_cord(zooms, shape)
    lesion = np.zeros(shape, dtype=bool)
    lesion[box_slices(cx, cy, zooms, 5, 7)] = True
    res = measure_lesions(cord, lesion, rpi_affine(zooms))
    assert res.lesions.schema.equals(LESIONS_SCHEMA, check_metadata=False)
    assert res.slices.schema.equals(LESION_SLICES_SCHEMA, check_metadata=False)
    assert res.lesions.column_names == LESIONS_SCHEMA.names
    assert res.slices.column_names == LESION_SLICES_SCHEMA.names
    d = res.summary.to_dict()
    assert d["n_lesions"] == 1
    assert isinstance(d["notes"], list)


# --------------------------------------------------------------------------- angle correction


@pytest.mark.parametrize(
    ("shift", "name"), [((0, 1), "sagittal"), ((1, 0), "coronal"), ((1, 1), "both")]
)
def test_tilted_cord_angle_correction(shift, name):
    zooms, shape = (0.5, 0.5, 3.0), (45, 60, 19)
    px, py, pz = zooms
    aff = rpi_affine(zooms)
    cx0, cy0 = 13, 14
    cord = cylinder(shape, zooms, (cx0, cy0), shift=shift)
    t3 = math.atan(math.hypot(shift[0] * px, shift[1] * py) / pz)
    ts = math.atan(shift[1] * py / pz)
    # a box that moves with the cord, on slices z0..z1
    z0, z1 = 7, 11
    lesion = np.zeros(shape, dtype=bool)
    nxb, nyb = 3, 5
    for z in range(z0, z1 + 1):
        x, y = cx0 + shift[0] * z, cy0 + shift[1] * z
        lesion[x - 1 : x + 2, y - 3 : y + 2, z] = True
    assert (lesion <= cord).all()
    nzb = z1 - z0 + 1

    res = measure_lesions(cord, lesion, aff)
    row = lesions_df(res.lesions).iloc[0]
    assert row["length_mm"] == pytest.approx(nzb * pz / math.cos(t3), rel=1e-9)
    assert row["width_mm"] == pytest.approx(nyb * py * math.cos(ts), rel=1e-9)
    assert row["max_equivalent_diameter_mm"] == pytest.approx(
        2 * math.sqrt(nxb * nyb * px * py * math.cos(t3) / math.pi), rel=1e-9
    )
    assert row["max_axial_damage_ratio"] == pytest.approx(nxb * nyb / cord[:, :, 0].sum(), rel=1e-12)
    # x* = mean cord x centre over z_c-2..z_c+2, z_c = round(centre of the lesion) = 9
    z_c = 9
    assert res.summary.midsagittal_slice == pytest.approx(cx0 + shift[0] * z_c, abs=1e-9)
    # length on the interpolated midsagittal slice: the lesion's x-range at z covers x* only
    # where |shift_x * (z - z_c)| <= 1
    on_mid = [z for z in range(z0, z1 + 1) if abs(shift[0] * (z - z_c)) <= 1]
    assert row["length_midsagittal_mm"] == pytest.approx(len(on_mid) * pz / math.cos(ts), rel=1e-9)
    assert row["width_midsagittal_mm"] == pytest.approx(nyb * py * math.cos(ts), rel=1e-9)
    # bridges on x* (integer): dorsal = lesion ymin - cord ymin on that line, min over z
    dors, vent = [], []
    x_star = cx0 + shift[0] * z_c
    for z in on_mid:
        lo, hi = cord_line(cord[:, :, z], x_star)
        ys = np.flatnonzero(lesion[x_star, :, z])
        dors.append((ys[0] - lo) * py * math.cos(ts))
        vent.append((hi - ys[-1]) * py * math.cos(ts))
    assert row["dorsal_bridge_width_mm"] == pytest.approx(min(dors), rel=1e-9)
    assert row["ventral_bridge_width_mm"] == pytest.approx(min(vent), rel=1e-9)
    assert row["total_bridge_width_mm"] == pytest.approx(min(dors) + min(vent), rel=1e-9)
    assert not row["bridge_fallback"]
    assert res.summary.total_length_mm == pytest.approx(nzb * pz / math.cos(t3), rel=1e-9)

    # and without angle correction every cos factor is 1
    res0 = measure_lesions(cord, lesion, aff, angle_correction=False)
    row0 = lesions_df(res0.lesions).iloc[0]
    assert row0["length_mm"] == pytest.approx(nzb * pz, rel=1e-12)
    assert row0["width_mm"] == pytest.approx(nyb * py, rel=1e-12)
    assert row0["max_equivalent_diameter_mm"] == pytest.approx(
        2 * math.sqrt(nxb * nyb * px * py / math.pi), rel=1e-12
    )
    assert row0["volume_mm3"] == row["volume_mm3"]
    assert res0.summary.angle_correction is False
    assert res.summary.angle_correction is True


def test_tilted_cord_matches_reference_implementation():
    zooms, shape = (0.5, 0.5, 3.0), (45, 60, 19)
    aff = rpi_affine(zooms)
    cord = cylinder(shape, zooms, (13, 14), shift=(1, 1))
    lesion = np.zeros(shape, dtype=bool)
    for z in range(6, 12):
        x, y = 13 + z, 14 + z
        lesion[x - 2 : x + 1 + (z % 2), y - 4 + (z % 3) : y + 3, z] = True
    rows, slices, summary = reference_measures(cord, lesion, aff)
    res = measure_lesions(cord, lesion, aff)
    assert_rows_match(lesions_df(res.lesions), rows)
    assert_rows_match(slices_df(res.slices), slices)
    assert_summary_matches(res.summary, summary)


# --------------------------------------------------------------------------- midsagittal interpolation


def half_integer_cord(zooms, shape):
    """Cord symmetric about x = 20.5: x* = 20.5, s1 = 20, s2 = 21, f = 0.5."""
    cy = shape[1] // 2
    return cylinder(shape, zooms, (20.5, cy)), cy


def test_interpolated_midsagittal_half_voxel():
    zooms, shape = (0.5, 0.5, 3.0), (42, 39, 17)
    _px, py, pz = zooms
    cord, cy = half_integer_cord(zooms, shape)
    lesion = np.zeros(shape, dtype=bool)
    z0, z1 = 6, 10
    lesion[19, cy - 2 : cy + 2, z0 : z1 + 1] = True  # parasagittal, not in s1 or s2
    lesion[20, cy - 2 : cy + 2, z0 : z1 + 1] = True  # s1: y in cy-2..cy+1
    lesion[21, cy - 1 : cy + 3, z0 : z1 + 1] = True  # s2: y in cy-1..cy+2
    assert (lesion <= cord).all()
    res = measure_lesions(cord, lesion, rpi_affine(zooms))
    assert res.summary.midsagittal_slice == pytest.approx(20.5, abs=1e-12)
    row = lesions_df(res.lesions).iloc[0]
    # interpolated column: 0.5 (cy-2, s1 only), 1, 1, 1, 0.5 (cy+2, s2 only)
    assert row["width_midsagittal_mm"] == pytest.approx(4.0 * py, rel=REL)
    assert row["length_midsagittal_mm"] == pytest.approx(5 * (4.0 / 5) * pz, rel=REL)
    lo20, hi20 = cord_line(cord[:, :, z0], 20)
    lo21, hi21 = cord_line(cord[:, :, z0], 21)
    dorsal = 0.5 * ((cy - 2 - lo20) + (cy - 1 - lo21)) * py
    ventral = 0.5 * ((hi20 - (cy + 1)) + (hi21 - (cy + 2))) * py
    assert row["dorsal_bridge_width_mm"] == pytest.approx(dorsal, rel=REL)
    assert row["ventral_bridge_width_mm"] == pytest.approx(ventral, rel=REL)
    assert row["total_bridge_width_mm"] == pytest.approx(dorsal + ventral, rel=REL)
    assert row["dorsal_bridge_ratio_pct"] == pytest.approx(100 * dorsal / (dorsal + ventral), rel=REL)
    assert row["ventral_bridge_ratio_pct"] == pytest.approx(100 * ventral / (dorsal + ventral), rel=REL)
    # SCT per-slice minima exist for x = 19, 20, 21
    assert slices_df(res.slices)["sagittal_slice"].tolist() == [19, 20, 21]


def test_interpolated_bridge_missing_slice_takes_the_other_slice():
    # SCT master (PR #5202, _interpolate_values): where the lesion lies on only one of the
    # two interpolation slices, that slice's bridge is used for both (not 0).
    zooms, shape = (1.0, 1.0, 1.0), (42, 37, 29)
    py = zooms[1]
    cord, cy = half_integer_cord(zooms, shape)
    lesion = np.zeros(shape, dtype=bool)
    lesion[20, cy - 1 : cy + 1, 10:15] = True  # s1 on z 10..14
    lesion[21, cy - 1 : cy + 1, 12:17] = True  # s2 on z 12..16
    res = measure_lesions(cord, lesion, rpi_affine(zooms))
    row = lesions_df(res.lesions).iloc[0]
    lo20, hi20 = cord_line(cord[:, :, 0], 20)
    lo21, hi21 = cord_line(cord[:, :, 0], 21)
    d20, v20 = cy - 1 - lo20, hi20 - cy
    d21, v21 = cy - 1 - lo21, hi21 - cy
    dors = []
    vent = []
    for z in range(10, 17):
        in1, in2 = 10 <= z <= 14, 12 <= z <= 16
        if in1 and in2:
            dors.append((0.5 * d20 + 0.5 * d21) * py)
            vent.append((0.5 * v20 + 0.5 * v21) * py)
        else:
            dors.append((d20 if in1 else d21) * py)
            vent.append((v20 if in1 else v21) * py)
    assert row["dorsal_bridge_width_mm"] == pytest.approx(min(dors), rel=REL)
    assert row["ventral_bridge_width_mm"] == pytest.approx(min(vent), rel=REL)
    # never below the smaller of the two slices' own bridges (the old rule gave 0.5 * d20)
    assert min(dors) == pytest.approx(min(d20, d21) * py)
    # columns: z 10,11 -> mean 0.5; 12..14 -> mean 1; 15,16 -> mean 0.5 (2 voxels each)
    assert row["length_midsagittal_mm"] == pytest.approx((2 * 0.5 + 3 * 1.0 + 2 * 0.5) * zooms[2], rel=REL)
    assert row["width_midsagittal_mm"] == pytest.approx(2 * py, rel=REL)
    rows, _, _ = reference_measures(cord, lesion, rpi_affine(zooms))
    assert_rows_match(lesions_df(res.lesions), rows)


def test_midsagittal_slice_follows_largest_lesion_and_fallback():
    # Coronal tilt: the cord moves +1 voxel in x per slice, so x* depends on z_c of the
    # largest lesion; a small lesion far from x* misses s1 and s2 -> SCT's fallback.
    zooms, shape = (0.5, 0.5, 3.0), (45, 41, 19)
    px, py, pz = zooms
    cx0, cy = 10, 20
    cord = cylinder(shape, zooms, (cx0, cy), shift=(1, 0))
    lesion = np.zeros(shape, dtype=bool)
    # large lesion on z 11..13 (z_c = 12) around the cord axis
    for z in range(11, 14):
        x = cx0 + z
        lesion[x - 2 : x + 3, cy - 3 : cy + 2, z] = True
    # small lesion on z 5..6, 2 voxels wide in x, left of the axis there
    for z in (5, 6):
        x = cx0 + z
        lesion[x - 4 : x - 2, cy - 1 : cy + 1, z] = True
    assert (lesion <= cord).all()
    res = measure_lesions(cord, lesion, rpi_affine(zooms))
    x_star = cx0 + 12
    assert res.summary.midsagittal_slice == pytest.approx(x_star, abs=1e-9)
    df = lesions_df(res.lesions)
    assert df["z_min_slice"].tolist() == [11, 5]
    big, small = df.iloc[0], df.iloc[1]
    assert not big["bridge_fallback"]
    assert small["bridge_fallback"]
    # fallback: minimum over the small lesion's slices of the cord A-P extent on x*
    # (thetaSag = 0 here, f = 0), split 50/50
    extents = []
    for z in (5, 6):
        ys = np.flatnonzero(cord[x_star, :, z])
        if len(ys):
            extents.append((ys[-1] - ys[0] + 1) * py)
    assert extents, "phantom: the cord must cover x* on the small lesion's slices"
    total = min(extents)
    assert small["total_bridge_width_mm"] == pytest.approx(total, rel=REL)
    assert small["dorsal_bridge_width_mm"] == pytest.approx(total / 2, rel=REL)
    assert small["ventral_bridge_width_mm"] == pytest.approx(total / 2, rel=REL)
    assert small["dorsal_bridge_ratio_pct"] == pytest.approx(50.0, rel=REL)
    assert small["width_midsagittal_mm"] == 0.0
    t3 = math.atan(px / pz)
    assert small["length_mm"] == pytest.approx(2 * pz / math.cos(t3), rel=REL)
    rows, slices, summary = reference_measures(cord, lesion, rpi_affine(zooms))
    assert_rows_match(df, rows)
    assert_rows_match(slices_df(res.slices), slices)
    assert_summary_matches(res.summary, summary)


def test_total_bridge_is_sum_of_the_two_minima():
    # Dorsal and ventral minima on different axial slices: the total is their sum (SCT's
    # min_dorsal + min_ventral), not the minimum of per-slice totals.
    zooms, shape = (0.5, 0.5, 3.0), (43, 39, 17)
    py = zooms[1]
    cord, (cx, cy) = straight_cord(zooms, shape)
    lo, hi = cord_line(cord[:, :, 0], cx)
    lesion = np.zeros(shape, dtype=bool)
    lesion[cx, lo + 1 : cy + 1, 7] = True  # dorsal bridge 1 voxel, ventral hi - cy
    lesion[cx, cy : hi, 8] = True  # ventral bridge 1 voxel, dorsal cy - lo
    res = measure_lesions(cord, lesion, rpi_affine(zooms))
    assert res.summary.n_lesions == 1
    row = lesions_df(res.lesions).iloc[0]
    assert row["dorsal_bridge_width_mm"] == pytest.approx(1 * py, rel=REL)
    assert row["ventral_bridge_width_mm"] == pytest.approx(1 * py, rel=REL)
    assert row["total_bridge_width_mm"] == pytest.approx(2 * py, rel=REL)
    assert row["dorsal_bridge_ratio_pct"] == pytest.approx(50.0, rel=REL)
    sl = slices_df(res.slices)
    assert sl["sagittal_slice"].tolist() == [cx]
    assert sl["dorsal_bridge_width_mm"].iloc[0] == pytest.approx(1 * py, rel=REL)
    assert sl["ventral_bridge_width_mm"].iloc[0] == pytest.approx(1 * py, rel=REL)
    assert sl["total_bridge_width_mm"].iloc[0] == pytest.approx(2 * py, rel=REL)
    assert min(1 + hi - cy, cy - lo + 1) > 2  # the minimum of per-slice totals would differ


def test_midsagittal_window_clipped_to_image_and_python_round():
    # Coronal tilt (+1 voxel in x per slice): the cord's x centre on slice z is cx0 + z, so x*
    # tells which slices were averaged. Lesion on z 0..1 with equal areas: centre 0.5,
    # Python round(0.5) = 0, window 0..2 inside the image -> x* = cx0 + 1.
    zooms, shape = (0.5, 0.5, 3.0), (45, 41, 19)
    cx0, cy = 10, 20
    cord = cylinder(shape, zooms, (cx0, cy), shift=(1, 0))
    lesion = np.zeros(shape, dtype=bool)
    for z in (0, 1):
        lesion[cx0 + z - 1 : cx0 + z + 2, cy - 1 : cy + 2, z] = True
    assert (lesion <= cord).all()
    res = measure_lesions(cord, lesion, rpi_affine(zooms))
    assert res.summary.midsagittal_slice == pytest.approx(cx0 + 1.0, abs=1e-9)


def test_midsagittal_window_skips_slices_without_cord():
    # Same tilted cord with a gap on z 11..12; the lesion runs over z 9..13, so inside the cord
    # it is on 9, 10 and 13. Its centre (inside the cord) rounds to z_c = 11, the window 9..13
    # has cord on 9, 10, 13 only -> x* = cx0 + (9 + 10 + 13) / 3.
    zooms, shape = (0.5, 0.5, 3.0), (45, 41, 19)
    cx0, cy = 10, 20
    cord = cylinder(shape, zooms, (cx0, cy), shift=(1, 0))
    cord[:, :, 11:13] = False
    lesion = np.zeros(shape, dtype=bool)
    for z in (9, 10, 11, 12, 13):
        lesion[cx0 + z - 1 : cx0 + z + 2, cy - 1 : cy + 2, z] = True
    res = measure_lesions(cord, lesion, rpi_affine(zooms))
    row = lesions_df(res.lesions).iloc[0]
    assert row["volume_mm3"] == pytest.approx(27 * 0.75)  # slices 9, 10, 13 inside the cord
    assert row["outside_cord_volume_mm3"] == pytest.approx(18 * 0.75)
    assert res.summary.midsagittal_slice == pytest.approx(cx0 + (9 + 10 + 13) / 3, abs=1e-9)


def test_midsagittal_fraction_not_a_half():
    # An asymmetric cord cross-section puts x* between voxels at a fraction f != 0.5.
    zooms, shape = (0.7, 0.7, 5.0), (35, 31, 13)
    cord = cylinder(shape, zooms, (17, 15), radius_mm=4.0)
    cord[23, 13:18, :] = True  # a bump on the left side moves the centre of mass in x
    lesion = np.zeros(shape, dtype=bool)
    lesion[16:19, 13:17, 4:8] = True
    lesion[18, 12, 6] = True
    assert (lesion <= cord).all()
    x_star = float(np.argwhere(cord[:, :, 0])[:, 0].mean())
    assert 0.1 < x_star - math.floor(x_star) < 0.9
    assert abs(x_star % 1 - 0.5) > 0.05
    res = measure_lesions(cord, lesion, rpi_affine(zooms))
    assert res.summary.midsagittal_slice == pytest.approx(x_star, rel=1e-12)
    rows, slices, summary = reference_measures(cord, lesion, rpi_affine(zooms))
    assert_rows_match(lesions_df(res.lesions), rows)
    assert_rows_match(slices_df(res.slices), slices)
    assert_summary_matches(res.summary, summary)


# --------------------------------------------------------------------------- several lesions


def test_two_lesions_superior_first_and_additive():
    zooms, shape = (0.5, 0.5, 3.0), (43, 39, 17)
    px, py, pz = zooms
    vox = px * py * pz
    cord, (cx, cy) = straight_cord(zooms, shape)
    lesion = np.zeros(shape, dtype=np.int16)
    lesion[cx - 1 : cx + 2, cy - 2 : cy + 2, 2:5] = 1  # inferior, 3*4*3 = 36 voxels
    lesion[cx - 2 : cx + 3, cy - 3 : cy + 3, 11:15] = 1  # superior, 5*6*4 = 120 voxels
    res = measure_lesions(cord, lesion, rpi_affine(zooms))
    df = lesions_df(res.lesions)
    assert df["lesion_id"].tolist() == [1, 2]
    assert df["z_min_slice"].tolist() == [11, 2]
    assert df["z_max_slice"].tolist() == [14, 4]
    assert df["volume_mm3"].tolist() == pytest.approx([120 * vox, 36 * vox], rel=REL)
    assert df["length_mm"].tolist() == pytest.approx([4 * pz, 3 * pz], rel=REL)
    per_slice = cord[:, :, 0].sum()
    assert df["max_axial_damage_ratio"].tolist() == pytest.approx([30 / per_slice, 12 / per_slice], rel=REL)
    s = res.summary
    assert s.n_lesions == 2
    assert s.total_volume_mm3 == pytest.approx(156 * vox, rel=REL)
    assert s.total_length_mm == pytest.approx(7 * pz, rel=REL)
    assert s.max_axial_damage_ratio == pytest.approx(30 / per_slice, rel=REL)
    assert df["centroid_z_mm"].iloc[0] > df["centroid_z_mm"].iloc[1]
    sl = slices_df(res.slices)
    assert sl.groupby("lesion_id")["sagittal_slice"].apply(list).to_dict() == {
        1: list(range(cx - 2, cx + 3)),
        2: list(range(cx - 1, cx + 2)),
    }


def test_order_follows_the_centroid_of_the_lesion_inside_the_cord():
    # Lesion A: inside the cord on z 5..6 with a long tail outside the cord up to z 28, so its
    # whole component is centred above lesion B but its (reported) inside centroid is below.
    # Every measure, the centroid included, is taken on the lesion inside the cord, and
    # lesion_id follows that centroid: B (inside on z 10..12) is lesion 1.
    zooms, shape = (1.0, 1.0, 1.0), (41, 37, 29)
    aff = rpi_affine(zooms)
    cord, (cx, cy) = straight_cord(zooms, shape)
    lo, _ = cord_line(cord[:, :, 0], cx)
    a = np.zeros(shape, dtype=bool)
    a[cx - 1 : cx + 2, lo : lo + 3, 5:7] = True
    a[cx, lo - 2 : lo, 5:29] = True  # the tail, posterior to the cord
    assert not cord[cx, lo - 2 : lo, :].any()
    b = np.zeros(shape, dtype=bool)
    b[cx - 1 : cx + 2, cy : cy + 3, 10:13] = True
    assert not (a & b).any()
    assert np.argwhere(a)[:, 2].mean() > np.argwhere(b)[:, 2].mean()
    assert np.argwhere(a & cord)[:, 2].mean() < np.argwhere(b)[:, 2].mean()
    res = measure_lesions(cord, a | b, aff)
    df = lesions_df(res.lesions)
    assert res.summary.n_lesions == 2
    assert df["z_min_slice"].tolist() == [10, 5]
    assert df["volume_mm3"].tolist() == pytest.approx([27.0, (a & cord).sum()])
    assert df["outside_cord_volume_mm3"].tolist() == pytest.approx([0.0, (a & ~cord).sum()])
    assert df["centroid_z_mm"].iloc[1] == pytest.approx(world(aff, np.argwhere(a & cord).mean(axis=0))[2], rel=REL)
    assert df["centroid_z_mm"].iloc[0] > df["centroid_z_mm"].iloc[1]
    assert df["length_mm"].tolist() == pytest.approx([3.0, 2.0])


def test_eighteen_connectivity():
    zooms, shape = (1.0, 1.0, 1.0), (41, 37, 29)
    cord, (cx, cy) = straight_cord(zooms, shape)
    lesion = np.zeros(shape, dtype=bool)
    # edge neighbours (offset (1, 1, 0)): one lesion
    lesion[cx, cy, 5] = lesion[cx + 1, cy + 1, 5] = True
    # corner neighbours only (offset (1, 1, 1)): two lesions
    lesion[cx, cy, 15] = lesion[cx + 1, cy + 1, 16] = True
    res = measure_lesions(cord, lesion, rpi_affine(zooms))
    assert res.summary.n_lesions == 3
    assert sorted(lesions_df(res.lesions)["volume_mm3"].tolist()) == [1.0, 1.0, 2.0]


def test_components_labelled_before_restriction_to_cord():
    # Two blocks inside the cord joined by a chain of voxels that runs outside the cord:
    # one lesion, measured on its inside part only.
    zooms, shape = (1.0, 1.0, 1.0), (41, 37, 29)
    cord, (cx, _cy) = straight_cord(zooms, shape)
    lo, _hi = cord_line(cord[:, :, 0], cx)
    lesion = np.zeros(shape, dtype=bool)
    lesion[cx, lo : lo + 2, 5:8] = True
    lesion[cx, lo : lo + 2, 14:17] = True
    lesion[cx, lo - 1, 5:17] = True  # posterior to the cord on the whole range
    assert not cord[cx, lo - 1, 0]
    res = measure_lesions(cord, lesion, rpi_affine(zooms))
    assert res.summary.n_lesions == 1
    row = lesions_df(res.lesions).iloc[0]
    assert row["volume_mm3"] == pytest.approx(12.0)
    assert row["outside_cord_volume_mm3"] == pytest.approx(12.0)
    assert row["length_mm"] == pytest.approx(6.0)  # slices 5..7 and 14..16 only
    assert row["width_mm"] == pytest.approx(2.0)
    assert (row["z_min_slice"], row["z_max_slice"]) == (5, 16)
    assert row["dorsal_bridge_width_mm"] == pytest.approx(0.0)


# --------------------------------------------------------------------------- outside the cord


def test_lesion_partly_outside_cord():
    zooms, shape = (0.5, 0.5, 3.0), (43, 39, 17)
    px, py, pz = zooms
    vox = px * py * pz
    cord, (cx, _cy) = straight_cord(zooms, shape)
    lo, _ = cord_line(cord[:, :, 0], cx)
    lesion = np.zeros(shape, dtype=bool)
    box = (slice(cx - 2, cx + 3), slice(lo - 3, lo + 4), slice(6, 10))
    lesion[box] = True
    inside = lesion & cord
    n_in, n_out = int(inside.sum()), int((lesion & ~cord).sum())
    assert n_in > 0
    assert n_out > 0
    res = measure_lesions(cord, lesion, rpi_affine(zooms))
    row = lesions_df(res.lesions).iloc[0]
    assert row["volume_mm3"] == pytest.approx(n_in * vox, rel=REL)
    assert row["outside_cord_volume_mm3"] == pytest.approx(n_out * vox, rel=REL)
    assert not row["fully_outside_cord"]
    ys = np.flatnonzero(inside[:, :, 6].any(axis=0))
    assert row["width_mm"] == pytest.approx((ys[-1] - ys[0] + 1) * py, rel=REL)
    a_max = max(int(inside[:, :, z].sum()) for z in range(shape[2]))
    assert row["max_equivalent_diameter_mm"] == pytest.approx(2 * math.sqrt(a_max * px * py / math.pi), rel=REL)
    assert row["max_axial_damage_ratio"] == pytest.approx(a_max / cord[:, :, 0].sum(), rel=REL)
    c = np.argwhere(inside).mean(axis=0)
    w = world(rpi_affine(zooms), c)
    assert [row["centroid_x_mm"], row["centroid_y_mm"], row["centroid_z_mm"]] == pytest.approx(w.tolist(), rel=REL)
    assert row["dorsal_bridge_width_mm"] == pytest.approx(0.0)  # the lesion reaches the cord edge
    assert res.summary.total_outside_cord_volume_mm3 == pytest.approx(n_out * vox, rel=REL)
    assert res.summary.total_volume_mm3 == pytest.approx(n_in * vox, rel=REL)


def test_lesion_fully_outside_cord_is_flagged_not_a_crash():
    zooms, shape = (0.5, 0.5, 3.0), (43, 39, 17)
    px, py, pz = zooms
    vox = px * py * pz
    aff = rpi_affine(zooms)
    cord, (cx, cy) = straight_cord(zooms, shape)
    lesion = np.zeros(shape, dtype=bool)
    inside_box = (slice(cx - 1, cx + 2), slice(cy - 1, cy + 2), slice(3, 6))
    outside_box = (slice(1, 4), slice(1, 6), slice(9, 11))  # a corner, far from the cord
    lesion[inside_box] = True
    lesion[outside_box] = True
    assert not (cord[outside_box]).any()

    res = measure_lesions(cord, lesion, aff)
    df = lesions_df(res.lesions)
    assert len(df) == 2
    out = df.iloc[0]  # superior one
    assert out["fully_outside_cord"]
    assert out["volume_mm3"] == 0.0
    assert out["outside_cord_volume_mm3"] == pytest.approx(3 * 5 * 2 * vox, rel=REL)
    assert out["max_axial_damage_ratio"] == 0.0
    assert out["length_mm"] == pytest.approx(2 * pz, rel=REL)
    assert out["width_mm"] == pytest.approx(5 * py, rel=REL)
    assert out["max_equivalent_diameter_mm"] == pytest.approx(2 * math.sqrt(15 * px * py / math.pi), rel=REL)
    w = world(aff, (2, 3, 9.5))
    assert [out["centroid_x_mm"], out["centroid_y_mm"], out["centroid_z_mm"]] == pytest.approx(w.tolist(), rel=REL)
    assert (out["z_min_slice"], out["z_max_slice"]) == (9, 10)
    inside = df.iloc[1]
    assert not inside["fully_outside_cord"]
    assert inside["volume_mm3"] == pytest.approx(27 * vox, rel=REL)
    assert not (res.slices.to_pandas()["lesion_id"] == out["lesion_id"]).any()
    s = res.summary
    assert s.n_lesions == 2
    assert s.total_volume_mm3 == pytest.approx(27 * vox, rel=REL)
    assert s.total_outside_cord_volume_mm3 == pytest.approx(30 * vox, rel=REL)
    assert s.total_length_mm == pytest.approx(5 * pz, rel=REL)
    assert s.midsagittal_slice == pytest.approx(cx)

    # only a lesion outside the cord: still no crash
    only = np.zeros(shape, dtype=bool)
    only[outside_box] = True
    res = measure_lesions(cord, only, aff)
    assert res.summary.n_lesions == 1
    assert res.summary.total_volume_mm3 == 0.0
    assert res.summary.max_axial_damage_ratio == 0.0
    assert res.summary.total_outside_cord_volume_mm3 == pytest.approx(30 * vox, rel=REL)
    assert bool(res.lesions.column("fully_outside_cord")[0].as_py())


def test_empty_lesion_mask_gives_zeros():
    zooms, shape = GRIDS["aniso07x5"]
    cord, _ = straight_cord(zooms, shape)
    image = np.full(shape, 7.0)
    res = measure_lesions(cord, np.zeros(shape, dtype=np.float32), rpi_affine(zooms), image=image)
    s = res.summary
    assert s.n_lesions == 0
    for key in ("total_volume_mm3", "total_outside_cord_volume_mm3", "total_length_mm", "max_axial_damage_ratio"):
        value = getattr(s, key)
        assert value == 0.0, key
    assert math.isnan(s.midsagittal_slice)
    assert s.cord_volume_mm3 == pytest.approx(cord.sum() * math.prod(zooms), rel=REL)
    assert res.lesions.num_rows == 0
    assert res.slices.num_rows == 0
    assert res.lesions.schema.equals(LESIONS_SCHEMA, check_metadata=False)
    assert res.slices.schema.equals(LESION_SLICES_SCHEMA, check_metadata=False)


# --------------------------------------------------------------------------- masks and inputs


def test_soft_masks_binarised_above_threshold():
    zooms, shape = (1.0, 1.0, 1.0), (41, 37, 29)
    cord_b, (cx, cy) = straight_cord(zooms, shape)
    ring = cylinder(shape, zooms, (cx, cy), radius_mm=6.0) & ~cord_b
    cord = np.where(cord_b, 0.8, np.where(ring, 0.3, 0.0)).astype(np.float32)
    lesion = np.zeros(shape, dtype=np.float64)
    core = (slice(cx - 1, cx + 2), slice(cy - 1, cy + 2), slice(10, 13))
    lesion[cx - 2 : cx + 3, cy - 2 : cy + 3, 9:14] = 0.3  # soft rim
    lesion[core] = 0.8
    lesion[cx, cy, 20] = 0.5  # not > 0.5
    lesion[cx, cy, 24] = 0.3  # an island only at a low threshold
    res = measure_lesions(cord, lesion, rpi_affine(zooms))
    assert res.summary.n_lesions == 1
    row = lesions_df(res.lesions).iloc[0]
    assert row["volume_mm3"] == pytest.approx(27.0)
    assert row["max_axial_damage_ratio"] == pytest.approx(9 / cord_b[:, :, 0].sum(), rel=REL)
    assert res.summary.cord_volume_mm3 == pytest.approx(cord_b.sum())
    assert res.summary.threshold == 0.5

    low = measure_lesions(cord, lesion, rpi_affine(zooms), threshold=0.25)
    assert low.summary.threshold == 0.25
    assert low.summary.n_lesions == 3  # rim+core, the 0.5 voxel, the 0.3 island
    assert low.summary.cord_volume_mm3 == pytest.approx((cord_b | ring).sum())
    vols = sorted(lesions_df(low.lesions)["volume_mm3"].tolist())
    assert vols == pytest.approx([1.0, 1.0, 125.0])


def test_label_values_are_binarised_not_split():
    # A lesion mask holding label values 1 and 2 that touch is one lesion (binarised first).
    zooms, shape = (1.0, 1.0, 1.0), (41, 37, 29)
    cord, (cx, cy) = straight_cord(zooms, shape)
    lesion = np.zeros(shape, dtype=np.uint8)
    lesion[cx - 1 : cx + 2, cy - 1 : cy + 2, 10:12] = 1
    lesion[cx - 1 : cx + 2, cy - 1 : cy + 2, 12:14] = 2
    res = measure_lesions(cord, lesion, rpi_affine(zooms))
    assert res.summary.n_lesions == 1
    assert res.summary.total_volume_mm3 == pytest.approx(36.0)


def test_cord_gap_outside_the_lesion():
    zooms, shape = (0.5, 0.5, 3.0), (45, 60, 19)
    aff = rpi_affine(zooms)
    cord = cylinder(shape, zooms, (13, 14), shift=(0, 1))
    lesion = np.zeros(shape, dtype=bool)
    for z in range(10, 14):
        lesion[12:15, 14 + z - 2 : 14 + z + 2, z] = True
    full = measure_lesions(cord, lesion, aff)
    gap = cord.copy()
    gap[:, :, 2:5] = False
    res = measure_lesions(gap, lesion, aff)
    ts = math.atan(0.5 / 3.0)
    row = lesions_df(res.lesions).iloc[0]
    # the centerline of the remaining slices is the same line: same angles
    assert row["length_mm"] == pytest.approx(4 * 3.0 / math.cos(ts), rel=1e-9)
    assert row["width_mm"] == pytest.approx(4 * 0.5 * math.cos(ts), rel=1e-9)
    cols = [c for c in lesions_df(full.lesions).columns if c != "scan_id"]
    a = lesions_df(full.lesions)[cols].to_numpy(dtype=float)
    b = lesions_df(res.lesions)[cols].to_numpy(dtype=float)
    np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-9)
    assert res.summary.cord_volume_mm3 == pytest.approx(gap.sum() * 0.75, rel=REL)
    assert res.summary.cord_volume_mm3 < full.summary.cord_volume_mm3


def test_intensity_statistics_exclude_zero_and_outside_cord():
    zooms, shape = (0.5, 0.5, 3.0), (43, 39, 17)
    cord, (cx, _cy) = straight_cord(zooms, shape)
    lo, _ = cord_line(cord[:, :, 0], cx)
    x, y, z = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    image = (50.0 + x + 2.0 * y + 3.0 * z).astype(np.float32)
    lesion = np.zeros(shape, dtype=bool)
    lesion[cx - 1 : cx + 2, lo - 2 : lo + 3, 5:9] = True  # partly posterior to the cord
    image[cx, lo + 1, 6] = 0.0  # a zero inside the lesion: excluded (as SCT)
    used = lesion & cord & (image != 0)
    vals = image[used].astype(np.float64)
    res = measure_lesions(cord, lesion, rpi_affine(zooms), image=image)
    row = lesions_df(res.lesions).iloc[0]
    assert row["mean_intensity"] == pytest.approx(vals.mean(), rel=1e-9)
    assert row["std_intensity"] == pytest.approx(vals.std(ddof=0), rel=1e-9)
    assert row["std_intensity"] != pytest.approx(vals.std(ddof=1), rel=1e-6)
    no_image = measure_lesions(cord, lesion, rpi_affine(zooms))
    assert no_image.lesions.column("mean_intensity").null_count == 1
    assert no_image.lesions.column("std_intensity").null_count == 1


def test_scan_id_fills_both_tables():
    zooms, shape = GRIDS["iso1"]
    cord, (cx, cy) = straight_cord(zooms, shape)
    lesion = np.zeros(shape, dtype=bool)
    lesion[cx - 1 : cx + 1, cy : cy + 2, 3:6] = True
    res = measure_lesions(cord, lesion, rpi_affine(zooms), scan_id="site-a_sub-07")
    assert set(res.lesions.column("scan_id").to_pylist()) == {"site-a_sub-07"}
    assert set(res.slices.column("scan_id").to_pylist()) == {"site-a_sub-07"}
    assert res.summary.scan_id == "site-a_sub-07"


# --------------------------------------------------------------------------- orientation


def two_lesion_phantom():
    """Tilted cord (both planes), two lesions, one partly outside, and an image; RPI arrays."""
    zooms, shape = (0.5, 0.6, 3.0), (44, 58, 17)
    aff = rpi_affine(zooms)
    cord = cylinder(shape, zooms, (12, 14), shift=(1, 1))
    lesion = np.zeros(shape, dtype=np.float32)
    for z in range(10, 14):
        x, y = 12 + z, 14 + z
        lesion[x - 2 : x + 2, y - 3 : y + 2 + (z % 2), z] = 1.0
    for z in range(3, 6):
        x, y = 12 + z, 14 + z
        lesion[x : x + 3, y - 9 : y - 4, z] = 1.0  # reaches posterior of the cord
    rng = np.random.default_rng(5)
    image = rng.uniform(1.0, 100.0, shape).astype(np.float32)
    image[lesion.astype(bool) & (rng.uniform(size=shape) < 0.1)] = 0.0
    return cord.astype(np.uint8), lesion, image, aff


@pytest.fixture(scope="module")
def rpi_result():
    cord, lesion, image, aff = two_lesion_phantom()
    return measure_lesions(cord, lesion, aff, image=image, scan_id="s")


def test_two_lesion_phantom_matches_reference(rpi_result):
    cord, lesion, image, aff = two_lesion_phantom()
    rows, slices, summary = reference_measures(cord, lesion, aff, image_rpi=image, scan_id="s")
    assert len(rows) == 2
    assert rows[1]["outside_cord_volume_mm3"] > 0
    assert_rows_match(lesions_df(rpi_result.lesions), rows)
    assert_rows_match(slices_df(rpi_result.slices), slices)
    assert_summary_matches(rpi_result.summary, summary)


@pytest.mark.parametrize("axcodes", ["PSR", "AIL", "LPI", "SAR", "RAS", "IRA"])
def test_same_anatomy_in_other_orientations(rpi_result, axcodes):
    cord, lesion, image, aff = two_lesion_phantom()
    c2, aff2 = reorient(cord, aff, axcodes)
    l2, _ = reorient(lesion, aff, axcodes)
    i2, _ = reorient(image, aff, axcodes)
    assert c2.shape != cord.shape or axcodes in ("LPI", "RAS")
    res = measure_lesions(c2, l2, aff2, image=i2, scan_id="s")
    want = lesions_df(rpi_result.lesions)
    got = lesions_df(res.lesions)
    assert_rows_match(got, want.to_dict("records"), skip_none=False)
    assert_rows_match(slices_df(res.slices), slices_df(rpi_result.slices).to_dict("records"))
    want_summary = dataclasses.asdict(rpi_result.summary)
    assert res.summary.notes == rpi_result.summary.notes
    want_summary.pop("notes")
    assert_summary_matches(res.summary, want_summary)
    # and against the independent implementation, from the reoriented arrays
    rows, _, _ = reference_from_any(c2, l2, aff2, image=i2, scan_id="s")
    assert_rows_match(got, rows)


@pytest.mark.parametrize("axcodes", ["LAS", "PSR"])
def test_oblique_affine(rpi_result, axcodes):
    cord, lesion, image, aff = two_lesion_phantom()
    rot = rotation(6.0, 0) @ rotation(-4.0, 2)
    c2, aff2 = reorient(cord, aff, axcodes)
    l2, _ = reorient(lesion, aff, axcodes)
    i2, _ = reorient(image, aff, axcodes)
    aff_obl = rot @ aff2
    assert "".join(nib.aff2axcodes(aff_obl)) == axcodes
    res = measure_lesions(c2, l2, aff_obl, image=i2, scan_id="s")
    want = lesions_df(rpi_result.lesions)
    got = lesions_df(res.lesions)
    centroid = ["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]
    assert_rows_match(got, want.to_dict("records"), skip=centroid, skip_none=False)
    # the centroid is the same anatomical point, rotated with the world
    for i in range(len(want)):
        p = rot[:3, :3] @ want.loc[i, centroid].to_numpy(dtype=float) + rot[:3, 3]
        assert got.loc[i, centroid].to_numpy(dtype=float) == pytest.approx(p, rel=1e-9, abs=1e-9)
    assert_rows_match(slices_df(res.slices), slices_df(rpi_result.slices).to_dict("records"))
    assert res.summary.total_length_mm == pytest.approx(rpi_result.summary.total_length_mm, rel=1e-9)
    assert res.summary.midsagittal_slice == pytest.approx(rpi_result.summary.midsagittal_slice, rel=1e-12)


# --------------------------------------------------------------------------- errors


def test_mismatched_shapes_raise():
    zooms, shape = GRIDS["iso1"]
    cord, _ = straight_cord(zooms, shape)
    lesion = np.zeros((shape[0], shape[1], shape[2] + 1), dtype=bool)
    with pytest.raises(CohortSciSegError, match=r"(?i)shape"):
        measure_lesions(cord, lesion, rpi_affine(zooms))
    with pytest.raises(CohortSciSegError, match=r"(?i)shape"):
        measure_lesions(cord, np.zeros(shape), rpi_affine(zooms), image=np.zeros(shape[::-1]))


def test_bad_dimensionality_and_affine_raise():
    zooms, shape = GRIDS["iso1"]
    cord, _ = straight_cord(zooms, shape)
    with pytest.raises(CohortSciSegError, match=r"(?i)3D|3-D|dimension"):
        measure_lesions(cord[:, :, 0], np.zeros(shape[:2]), rpi_affine(zooms))
    with pytest.raises(CohortSciSegError, match=r"(?i)affine"):
        measure_lesions(cord, np.zeros(shape), np.eye(3))
