"""Mask-vs-image geometry checks and binarisation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from cohort_sciseg.errors import GeometryError
from cohort_sciseg.io import binarize, check_same_geometry, inspect_mask


@dataclass
class Grid:
    shape: tuple[int, int, int]
    affine: np.ndarray
    path: str = "img.nii.gz"


def _aff(zooms=(0.5, 0.7, 3.0), origin=(1.0, 2.0, 3.0)) -> np.ndarray:
    a = np.diag([*zooms, 1.0])
    a[:3, 3] = origin
    return a


IMG = Grid((7, 8, 9), _aff())


def test_same_grid_passes():
    check_same_geometry(IMG, Grid((7, 8, 9), _aff(origin=(1.0, 2.0, 3.0 + 1e-4)), "m.nii.gz"))


def test_shape_differs():
    with pytest.raises(GeometryError, match=r"shape \(7, 8, 10\) vs \(7, 8, 9\)") as ei:
        check_same_geometry(IMG, Grid((7, 8, 10), _aff(), "m.nii.gz"), what="cord mask", scan_id="s1")
    msg = str(ei.value)
    assert "cord mask 'm.nii.gz'" in msg
    assert "scan 's1'" in msg
    assert "Fix: resample the cord mask" in msg
    assert ei.value.path == "m.nii.gz"


def test_voxel_size_differs():
    with pytest.raises(GeometryError, match=r"voxel sizes \(0\.5, 0\.7, 2\.5\) mm vs \(0\.5, 0\.7, 3\) mm"):
        check_same_geometry(IMG, Grid((7, 8, 9), _aff(zooms=(0.5, 0.7, 2.5))))


def test_origin_differs():
    with pytest.raises(GeometryError, match=r"origin \(1, 2, 5\) mm vs \(1, 2, 3\) mm \(2 mm apart\)"):
        check_same_geometry(IMG, Grid((7, 8, 9), _aff(origin=(1, 2, 5))))


def test_orientation_differs():
    flipped = _aff()
    flipped[:3, 0] *= -1
    with pytest.raises(GeometryError, match=r"orientation RPI vs LPI"):
        check_same_geometry(IMG, Grid((7, 8, 9), flipped))


def test_rotation_differs():
    rot = _aff()
    c, s = np.cos(np.radians(5)), np.sin(np.radians(5))
    rot[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ rot[:3, :3]
    with pytest.raises(GeometryError, match=r"axes rotated by up to 5 degrees"):
        check_same_geometry(IMG, Grid((7, 8, 9), rot))


def test_several_differences_listed():
    with pytest.raises(GeometryError, match=r"shape .*; voxel sizes .*; origin"):
        check_same_geometry(IMG, Grid((3, 8, 9), _aff(zooms=(1, 1, 1), origin=(0, 0, 0))))


def test_binarize_threshold_is_strict():
    data = np.array([0.0, 0.2, 0.5, 0.51, 1.0, np.nan])
    np.testing.assert_array_equal(binarize(data), [False, False, False, True, True, False])
    np.testing.assert_array_equal(binarize(data, 0.1), [False, True, True, True, True, False])


def test_binarize_bool_passthrough():
    m = np.zeros((2, 3, 4), bool)
    assert binarize(m) is m


def test_inspect_binary_mask():
    m = np.zeros((7, 8, 9), np.float32)
    m[1:3, 2:4, 3:5] = 1
    rep = inspect_mask(m)
    assert rep.is_binary
    assert rep.n_foreground == 8
    assert rep.describe() == ""


def test_inspect_reports_labels():
    m = np.zeros((7, 8, 9), np.uint8)
    m[0, 0, :3] = 2
    m[1, 1, :2] = 1
    rep = inspect_mask(m)
    assert not rep.is_binary
    assert rep.values == (0.0, 1.0, 2.0)
    assert rep.n_foreground == 5
    assert "values other than 0 and 1: 0, 1, 2" in rep.describe()


def test_inspect_soft_mask_many_values(rng):
    rep = inspect_mask(rng.random((7, 8, 9)))
    assert rep.n_distinct == 504
    assert "(and 494 more)" in rep.describe()
