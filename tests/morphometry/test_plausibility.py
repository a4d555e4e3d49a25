"""Suspect cord masks: analytic phantoms (a tube of known area) on anisotropic, non-RPI grids."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cohort_sciseg.morphometry import cord_plausibility
from cohort_sciseg.morphometry.plausibility import MIN_SLICE_COVERAGE


def _tube(radius_mm: float, shape=(41, 37, 60), spacing=(0.5, 0.6, 2.0), z_range=None) -> tuple[np.ndarray, np.ndarray]:
    """An RPI-grid tube of ``radius_mm`` along z (S-I) through the image centre."""
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])  # R->L, P->A... RPI = nibabel LAS
    x, y, z = np.indices(shape, dtype=float)
    cx, cy = (shape[0] - 1) / 2, (shape[1] - 1) / 2
    inside = ((x - cx) * spacing[0]) ** 2 + ((y - cy) * spacing[1]) ** 2 <= radius_mm**2
    if z_range is not None:
        inside &= (z >= z_range[0]) & (z < z_range[1])
    return inside.astype(np.uint8), affine


def test_a_cord_sized_tube_is_plausible():
    cord, affine = _tube(4.0)  # area 50 mm2
    assert cord_plausibility(cord, affine) == ()


def test_orientation_does_not_matter():
    cord, affine = _tube(1.5)  # area 7 mm2: too small
    expected = cord_plausibility(cord, affine)
    # the same voxels stored S-I first (axes permuted, flipped): the affine follows the data
    perm = np.transpose(cord, (2, 0, 1))[::-1]
    aff = affine[:, [2, 0, 1, 3]].copy()
    aff[:3, 3] = aff[:3, 3] + aff[:3, 0] * (perm.shape[0] - 1)
    aff[:3, 0] *= -1
    assert cord_plausibility(perm, aff) == expected
    assert len(expected) == 1
    area = float(re.search(r"cross-sectional area is ([0-9.]+) mm2", expected[0]).group(1))
    assert area == pytest.approx(np.pi * 1.5**2, rel=0.05)  # the voxelised disk


def test_empty_mask():
    cord, affine = _tube(4.0)
    (reason,) = cord_plausibility(np.zeros_like(cord), affine)
    assert reason.startswith("no spinal cord found")


def test_mask_filling_the_image():
    cord, affine = _tube(4.0)
    reasons = cord_plausibility(np.ones_like(cord), affine)
    assert any("covers 100% of the image" in r for r in reasons)
    assert any("cross-sectional area is 455" in r for r in reasons)  # 41 x 37 x 0.5 x 0.6 mm2


def test_cord_on_few_axial_slices():
    cord, affine = _tube(4.0, z_range=(10, 20))  # 10 of 60 slices
    (reason,) = cord_plausibility(cord, affine)
    assert "on 17% of the axial slices" in reason
    assert f"{100 * MIN_SLICE_COVERAGE:.0f}%" in reason


@pytest.mark.parametrize("radius", [2.0, 9.5])
def test_area_limits(radius):
    cord, affine = _tube(radius, shape=(101, 101, 20), spacing=(0.4, 0.4, 3.0))
    (reason,) = cord_plausibility(cord, affine)
    assert "cross-sectional area" in reason
