"""Vertebral levels of slices and lesions: hand-built RPI phantoms, answers written by hand.

The rules are SCT's (``sct_analyze_lesion.py`` ``_get_vertebral_level_for_slice``;
``vertebrae/core.py`` ``label_vert`` + ``label_segmentation``; ``types.py``
``labels_regions``). Shapes are non-cubic so that an axis mix-up changes the answer.
"""

from __future__ import annotations

import numpy as np
import pytest

from cohort_sciseg.errors import MorphometryError
from cohort_sciseg.morphometry.levels import (
    lesion_levels,
    level_name,
    slice_levels_from_discs,
    slice_levels_from_labeled_cord,
)

SHAPE = (7, 8, 9)  # x R->L, y P->A, z I->S (RPI)


def _put(a: np.ndarray, z: int, values: list[float]) -> None:
    """Write ``values`` into slice ``z`` of ``a``, one voxel each, along a row of x then y."""
    for i, v in enumerate(values):
        a[i % SHAPE[0], 2 + i // SHAPE[0], z] = v


# --------------------------------------------------------------------------- labelled cord


def test_labeled_cord_most_common_level_per_slice() -> None:
    lab = np.zeros(SHAPE, dtype=np.uint8)
    _put(lab, 1, [5, 5, 5, 5])  # one level
    _put(lab, 2, [4, 4, 4, 5, 5])  # majority, the smaller level
    _put(lab, 3, [4, 5, 4, 5, 5])  # majority, the larger level
    _put(lab, 4, [7, 6, 7, 6])  # tie: the smaller level
    _put(lab, 5, [7, 7, 3, 3])  # tie, larger level first in the array: still the smaller
    _put(lab, 6, [8])  # a single voxel
    _put(lab, 7, [30, 30, 12])
    # slices 0 and 8 are empty
    got = slice_levels_from_labeled_cord(lab)
    assert got.dtype == np.int16
    assert got.tolist() == [0, 5, 4, 5, 6, 3, 8, 30, 0]


def test_labeled_cord_level_runs_along_axis_2_only() -> None:
    lab = np.zeros(SHAPE, dtype=np.int16)
    lab[:, :, 0:3] = 6  # inferior: C6
    lab[:, :, 3:6] = 5
    lab[:, :, 6:8] = 4  # superior: C4; slice 8 empty
    assert slice_levels_from_labeled_cord(lab).tolist() == [6, 6, 6, 5, 5, 5, 4, 4, 0]


def test_labeled_cord_floats_near_integers_are_rounded() -> None:
    lab = np.zeros(SHAPE, dtype=np.float32)
    _put(lab, 0, [3.9995, 4.0008, 2.0])  # within 1e-3 of 4, 4 and 2
    _put(lab, 4, [0.0004, 9.0])  # 0.0004 is background
    assert slice_levels_from_labeled_cord(lab).tolist() == [4, 0, 0, 0, 9, 0, 0, 0, 0]


def test_labeled_cord_empty_and_4d_singleton() -> None:
    empty = np.zeros(SHAPE, dtype=np.float64)
    got = slice_levels_from_labeled_cord(empty)
    assert got.dtype == np.int16
    assert got.tolist() == [0] * 9
    lab = np.zeros((*SHAPE, 1), dtype=np.int32)
    lab[3, 4, 2, 0] = 11
    assert slice_levels_from_labeled_cord(lab).tolist() == [0, 0, 11, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize(
    ("value", "dtype", "match"),
    [
        (2.5, np.float32, r"non-integer value 2\.5 at voxel \(1, 2, 3\).*nearest-neighbour"),
        (4.002, np.float64, r"non-integer value 4\.002 at voxel \(1, 2, 3\) \(1 voxel"),
        (np.nan, np.float32, r"value nan at voxel \(1, 2, 3\)"),
        (np.inf, np.float64, r"value inf at voxel \(1, 2, 3\)"),
        (-1, np.int16, r"negative value -1 at voxel \(1, 2, 3\)"),
        (-2.0, np.float32, r"negative value -2\.0 at voxel \(1, 2, 3\)"),
        (40000, np.int32, r"value 40000 at voxel \(1, 2, 3\), above 32767"),
    ],
)
def test_labeled_cord_bad_values(value: float, dtype: type, match: str) -> None:
    lab: np.ndarray = np.zeros(SHAPE, dtype=dtype)
    lab[0, 0, 0] = 5
    lab[1, 2, 3] = value
    with pytest.raises(MorphometryError, match=r"vertebral labelling holds the " + match) as info:
        slice_levels_from_labeled_cord(lab, scan_id="site-a_sub-01_T2w")
    assert "scan 'site-a_sub-01_T2w'" in str(info.value)
    assert "Fix: pass sct_label_vertebrae's <image>_seg_labeled.nii.gz" in str(info.value)


def test_labeled_cord_bad_arrays() -> None:
    with pytest.raises(MorphometryError, match=r"shape \(7, 8\), not a 3D volume"):
        slice_levels_from_labeled_cord(np.zeros(SHAPE[:2]))
    with pytest.raises(MorphometryError, match=r"is a boolean mask, which holds no level numbers"):
        slice_levels_from_labeled_cord(np.ones(SHAPE, dtype=bool))
    with pytest.raises(MorphometryError, match=r"dtype complex128, not numbers"):
        slice_levels_from_labeled_cord(np.zeros(SHAPE, dtype=complex))


# --------------------------------------------------------------------------- disc labels


def test_discs_nearest_disc_strictly_above() -> None:
    discs = np.zeros(SHAPE, dtype=np.uint8)
    discs[3, 4, 6] = 3  # C2/C3 disc
    discs[3, 5, 3] = 4  # C3/C4
    discs[2, 5, 1] = 5  # C4/C5
    # slice 0: disc 5 (z=1) is the nearest above; the slice of a disc belongs to the
    # vertebra above it (z=1 -> 4, z=3 -> 3, z=6 -> none above: 0)
    got = slice_levels_from_discs(discs)
    assert got.dtype == np.int16
    assert got.tolist() == [5, 4, 4, 3, 3, 3, 0, 0, 0]


def test_discs_sharing_a_slice_take_the_smaller_value() -> None:
    discs = np.zeros(SHAPE, dtype=np.int16)
    discs[0, 0, 4] = 7
    discs[6, 7, 4] = 2  # same z: SCT's min((z, value)) takes 2
    discs[3, 3, 1] = 9
    assert slice_levels_from_discs(discs).tolist() == [9, 2, 2, 2, 0, 0, 0, 0, 0]


def test_discs_top_slice_and_float_values() -> None:
    discs = np.zeros(SHAPE, dtype=np.float32)
    discs[3, 4, 8] = 2.0004  # the top slice: every slice below is C2, the top one has nothing above
    discs[3, 4, 2] = 8.0
    assert slice_levels_from_discs(discs).tolist() == [8, 8, 2, 2, 2, 2, 2, 2, 0]


def test_discs_none() -> None:
    got = slice_levels_from_discs(np.zeros(SHAPE, dtype=np.uint8))
    assert got.dtype == np.int16
    assert got.tolist() == [0] * 9


def test_discs_bad_values() -> None:
    discs = np.zeros(SHAPE, dtype=np.float32)
    discs[2, 3, 4] = 3.4
    with pytest.raises(
        MorphometryError,
        match=r"disc labelling holds the non-integer value 3\.4\d* at voxel \(2, 3, 4\)",
    ):
        slice_levels_from_discs(discs)
    discs[2, 3, 4] = -3
    with pytest.raises(MorphometryError, match=r"disc labelling holds the negative value -3\.0"):
        slice_levels_from_discs(discs)
    with pytest.raises(MorphometryError, match=r"disc labelling has shape \(9,\)"):
        slice_levels_from_discs(np.zeros(9))


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("n", "name"),
    [
        (1, "C1"),
        (3, "C3"),
        (7, "C7"),
        (8, "T1"),
        (19, "T12"),
        (20, "L1"),
        (24, "L5"),
        (25, "S1"),
        (29, "S5"),
        (30, "Co"),
        (0, "level 0"),
        (31, "level 31"),
        (50, "level 50"),
        (-1, "level -1"),
        (np.int16(12), "T5"),
    ],
)
def test_level_name(n: int, name: str) -> None:
    assert level_name(n) == name


# --------------------------------------------------------------------------- lesions


def test_lesion_levels_superior_to_inferior_and_centroid() -> None:
    levels = np.array([0, 5, 4, 4, 3, 3, 0, 0, 0], dtype=np.int16)
    # per-voxel z of a lesion over slices 1..4 (repeats allowed)
    z = np.array([1, 2, 2, 3, 4, 4, 4])
    assert lesion_levels(levels, z, 2.4) == (["C3", "C4", "C5"], "C4")
    assert lesion_levels(levels, z, 3.6) == (["C3", "C4", "C5"], "C3")


def test_lesion_levels_skip_slices_without_level() -> None:
    levels = np.array([0, 5, 4, 4, 3, 3, 0, 0, 0], dtype=np.int16)
    assert lesion_levels(levels, np.array([5, 6, 7]), 5.4) == (["C3"], "C3")
    assert lesion_levels(levels, np.array([5, 6, 7]), 6.0) == (["C3"], None)
    assert lesion_levels(levels, np.array([6, 7, 8]), 7.0) == ([], None)


def test_lesion_levels_centroid_uses_python_round() -> None:
    levels = np.array([0, 9, 8, 7, 6, 20, 25, 30, 0], dtype=np.int16)
    z = np.arange(1, 8)
    names = ["C6", "C7", "T1", "T2", "L1", "S1", "Co"]
    assert lesion_levels(levels, z, 2.5) == (names, "T1")  # round(2.5) == 2: slice 2 is 8
    assert lesion_levels(levels, z, 3.5) == (names, "C6")  # round(3.5) == 4: slice 4 is 6
    assert lesion_levels(levels, z, 2.51) == (names, "C7")


def test_lesion_levels_centroid_out_of_range_or_not_finite() -> None:
    levels = np.array([3, 3, 3, 2, 2, 2, 1, 1, 1], dtype=np.int16)
    z = np.array([7, 8])
    assert lesion_levels(levels, z, 9.2) == (["C1"], None)
    assert lesion_levels(levels, z, -0.6) == (["C1"], None)
    assert lesion_levels(levels, z, float("nan")) == (["C1"], None)
    assert lesion_levels(levels, np.array([], dtype=np.intp), 0.2) == ([], "C3")
    assert lesion_levels(levels, np.array([1.0, 4.0]), 1.0) == (["C2", "C3"], "C3")


@pytest.mark.parametrize(
    ("z", "match"),
    [
        ([3, 9], r"lesion slice 9 is not an axial slice of the vertebral labelling \(9 slices\)"),
        ([-1, 2], r"lesion slice -1 is not an axial slice"),
        ([2.5, 3.0], r"lesion slice 2\.5 is not an axial slice"),
    ],
)
def test_lesion_levels_bad_slices(z: list[float], match: str) -> None:
    levels = np.zeros(9, dtype=np.int16)
    with pytest.raises(MorphometryError, match=match + r".*integer slice indices in \[0, 8\]"):
        lesion_levels(levels, np.array(z), 3.0)


def test_lesion_levels_bad_slice_levels() -> None:
    with pytest.raises(MorphometryError, match=r"slice levels have shape \(7, 8, 9\)"):
        lesion_levels(np.zeros(SHAPE, dtype=np.int16), np.array([1]), 1.0)


# --------------------------------------------------------------------------- against the rules as SCT states them


@pytest.mark.parametrize("seed", range(5))
def test_random_labellings_follow_the_per_slice_rules(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lab = rng.choice([0, 0, 0, 3, 4, 5, 9], size=SHAPE).astype(np.float32)
    expected = []
    for iz in range(SHAPE[2]):  # np.unique + argmax of the counts, slice by slice
        vals, counts = np.unique(lab[:, :, iz][lab[:, :, iz] > 0], return_counts=True)
        expected.append(int(vals[np.argmax(counts)]) if vals.size else 0)
    assert slice_levels_from_labeled_cord(lab).tolist() == expected

    discs = np.zeros(SHAPE, dtype=np.int16)
    for _ in range(4):
        discs[tuple(rng.integers(0, SHAPE))] = rng.integers(1, 12)
    pairs = [(int(z), int(discs[x, y, z])) for x, y, z in np.argwhere(discs > 0)]
    expected = [min(((z, v) for z, v in pairs if z > iz), default=(0, 0))[1] for iz in range(9)]
    assert slice_levels_from_discs(discs).tolist() == expected
