"""Orientation naming and exact reorientation for all 48 axis permutations/flips."""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cohort_sciseg.errors import GeometryError
from cohort_sciseg.io import (
    acquisition_plane,
    axis_directions,
    from_nibabel_axcodes,
    orientation_code,
    reorient,
    to_nibabel_axcodes,
)

SHAPE = (7, 8, 9)
ZOOMS = (0.5, 0.7, 3.0)


def _all_codes() -> list[str]:
    codes = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product("+-", repeat=3):
            letters = []
            for ax, sign in zip(perm, signs, strict=True):
                pos, neg = ("LR", "PA", "IS")[ax]
                letters.append(pos if sign == "+" else neg)  # SCT letter: where the axis starts
            codes.append("".join(letters))
    return codes


ALL_CODES = _all_codes()


def _rotation(deg: tuple[float, float, float]) -> np.ndarray:
    a, b, c = np.radians(deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _affine_for(code: str, oblique_deg: tuple[float, float, float] = (0, 0, 0)) -> np.ndarray:
    ornt = nib.orientations.axcodes2ornt(to_nibabel_axcodes(code))
    aff = np.eye(4)
    for i, (ax, flip) in enumerate(ornt):
        col = np.zeros(3)
        col[int(ax)] = flip * ZOOMS[i]
        aff[:3, i] = col
    aff[:3, :3] = _rotation(oblique_deg) @ aff[:3, :3]
    aff[:3, 3] = (12.5, -30.0, 7.25)
    return aff


def test_48_distinct_codes():
    assert len(ALL_CODES) == 48
    assert len(set(ALL_CODES)) == 48


def test_axis_directions():
    # RAS+: +x is patient Right. R->L runs to -x, P->A to +y, I->S to +z.
    assert axis_directions("RPI") == ((0, -1.0), (1, 1.0), (2, 1.0))
    assert axis_directions("PSR") == ((1, 1.0), (2, -1.0), (0, -1.0))


def test_sct_names_flip_nibabel():
    assert to_nibabel_axcodes("RPI") == ("L", "A", "S")
    assert from_nibabel_axcodes(("P", "S", "R")) == "AIL"
    assert orientation_code(np.eye(4)) == "LPI"


@pytest.mark.parametrize("bad", ["RPX", "RRI", "RP", "rpi", "rpi ", "", "RLI"])
def test_invalid_code(bad):
    with pytest.raises(GeometryError, match=r"orientation .* is not valid.*one from each of R/L"):
        to_nibabel_axcodes(bad)


@pytest.mark.parametrize("code", ALL_CODES)
@pytest.mark.parametrize("oblique", [(0, 0, 0), (8, -5, 12)])
def test_roundtrip_all_48(code, oblique, rng):
    affine = _affine_for(code, oblique)
    assert orientation_code(affine) == code
    data = rng.normal(size=SHAPE)
    rpi, rpi_aff = reorient(data, affine, "RPI")
    assert orientation_code(rpi_aff) == "RPI"
    back, back_aff = reorient(rpi, rpi_aff, code)
    np.testing.assert_array_equal(back, data)
    np.testing.assert_allclose(back_aff, affine, atol=1e-12)


@pytest.mark.parametrize("code", ALL_CODES)
def test_world_positions_preserved(code, rng):
    """Each voxel keeps its world position (an independent check via the affines)."""
    affine = _affine_for(code, (3, 4, -6))
    data = rng.normal(size=SHAPE)
    rpi, rpi_aff = reorient(data, affine, "RPI")
    ijk = np.array([[1, 2, 3], [6, 0, 8], [0, 7, 0]])
    world = nib.affines.apply_affine(affine, ijk)
    ijk_rpi = np.rint(nib.affines.apply_affine(np.linalg.inv(rpi_aff), world)).astype(int)
    for src, dst in zip(ijk, ijk_rpi, strict=True):
        assert data[tuple(src)] == rpi[tuple(dst)]
    # In RPI the i axis runs toward patient Left (-x in RAS+), j toward Anterior (+y), k toward Superior (+z).
    signs = np.sign(np.diag(rpi_aff[:3, :3] @ np.diag(1 / np.linalg.norm(rpi_aff[:3, :3], axis=0))))
    np.testing.assert_array_equal(signs, [-1, 1, 1])


@settings(max_examples=60, deadline=None)
@given(
    src=st.sampled_from(ALL_CODES),
    dst=st.sampled_from(ALL_CODES),
    angles=st.tuples(*[st.floats(-20, 20)] * 3),
)
def test_any_to_any(src, dst, angles):
    affine = _affine_for(src, angles)
    data = np.arange(np.prod(SHAPE)).reshape(SHAPE)
    out, out_aff = reorient(data, affine, dst)
    assert orientation_code(out_aff) == dst
    back, back_aff = reorient(out, out_aff, orientation_code(affine))
    np.testing.assert_array_equal(back, data)
    np.testing.assert_allclose(back_aff, affine, atol=1e-10)


@pytest.mark.parametrize(
    ("code", "zooms", "plane"),
    [
        ("RPI", (3.0, 0.5, 0.5), "sagittal"),  # thick along x (L-R)
        ("PSR", (0.5, 0.5, 3.0), "sagittal"),  # thick third axis, which runs R-L
        ("RPI", (0.7, 0.7, 5.0), "axial"),
        ("RSP", (0.7, 0.7, 5.0), "coronal"),
        ("AIL", (1.0, 1.0, 1.0), "isotropic"),
        ("RPI", (0.9, 0.9, 1.2), "isotropic"),
    ],
)
def test_acquisition_plane(code, zooms, plane):
    ornt = nib.orientations.axcodes2ornt(to_nibabel_axcodes(code))
    aff = np.eye(4)
    for i, (ax, flip) in enumerate(ornt):
        aff[:3, i] = 0
        aff[int(ax), i] = flip * zooms[i]
    assert acquisition_plane(aff) == plane
