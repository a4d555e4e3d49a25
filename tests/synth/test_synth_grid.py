"""Acquisition grids: SCT orientation codes, voxel sizes, centres, oblique tilt, world coordinates."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cohort_sciseg.errors import SynthError
from cohort_sciseg.io import orientation_code
from cohort_sciseg.synth._grid import acquisition_grid, index_box, world_axes, world_coordinates


def _all_codes() -> list[str]:
    pairs = ("RL", "PA", "IS")
    return [
        "".join(pairs[ax][s] for ax, s in zip(perm, signs, strict=True))
        for perm in itertools.permutations(range(3))
        for signs in itertools.product((0, 1), repeat=3)
    ]


@pytest.mark.parametrize("code", _all_codes())
def test_orientation_code_roundtrip(code):
    # io.orientation_code is an independent implementation (nibabel axis codes, flipped)
    affine, _ = acquisition_grid(code, (0.5, 0.7, 3.0), (10.0, 14.0, 30.0), (1.0, -2.0, 3.0))
    assert orientation_code(affine) == code


def test_voxel_sizes_shape_and_centre_follow_world_axes():
    # PSR: array axes are (AP, SI, LR); voxel and FOV are given per world axis (LR, AP, SI)
    affine, shape = acquisition_grid("PSR", (3.0, 0.5, 0.7), (36.0, 64.0, 70.0), (5.0, -10.0, 20.0))
    assert shape == (128, 100, 12)
    np.testing.assert_allclose(np.linalg.norm(affine[:3, :3], axis=0), (0.5, 0.7, 3.0))
    centre = affine @ np.append((np.asarray(shape) - 1) / 2.0, 1.0)
    np.testing.assert_allclose(centre[:3], (5.0, -10.0, 20.0), atol=1e-5)  # float32 affine
    # axis 0 starts Posterior: +y; axis 1 starts Superior: -z; axis 2 starts Right: -x
    assert affine[1, 0] > 0
    assert affine[2, 1] < 0
    assert affine[0, 2] < 0


def test_oblique_tilt_angle():
    affine, _ = acquisition_grid(
        "RPI", (0.9, 0.9, 0.9), (9.0, 9.0, 9.0), (0.0, 0.0, 0.0), oblique_deg=7.0
    )
    z_axis = affine[:3, 2] / np.linalg.norm(affine[:3, 2])
    assert np.degrees(np.arccos(z_axis[2])) == pytest.approx(7.0)
    assert orientation_code(affine) == "RPI"


@pytest.mark.parametrize("oblique", [0.0, 11.0])
def test_world_coordinates_match_affine(oblique, rng):
    affine, shape = acquisition_grid(
        "ASL", (0.7, 0.8, 2.0), (5.6, 7.2, 36.0), (3.0, 4.0, -5.0), oblique_deg=oblique
    )
    assert shape == (9, 18, 8)  # ASL: (AP, SI, LR) -> non-cubic (9, 18, 8)
    x, y, z = world_coordinates(affine, shape, (0.25, 0.0, -0.5))
    for _ in range(20):
        ijk = tuple(int(rng.integers(n)) for n in shape)
        want = affine @ np.array([ijk[0] + 0.25, ijk[1], ijk[2] - 0.5, 1.0])
        got = [np.broadcast_to(c, shape)[ijk] for c in (x, y, z)]
        np.testing.assert_allclose(got, want[:3], atol=1e-4)


def test_index_box_covers_world_box():
    affine, shape = acquisition_grid("LAS", (0.7, 0.7, 5.0), (20.0, 20.0, 50.0), (0.0, 0.0, 0.0))
    lo, hi = np.array([-3.0, -2.0, -7.0]), np.array([2.0, 4.0, 6.0])
    box = index_box(affine, shape, lo, hi)
    assert box is not None
    sl, sub = box
    x, y, z = world_coordinates(affine, shape)
    inside = (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]) & (z >= lo[2]) & (z <= hi[2])
    inside = np.broadcast_to(inside, shape)
    in_box = np.zeros(shape, bool)
    in_box[sl] = True
    assert inside.any()
    assert not np.any(inside & ~in_box)
    np.testing.assert_allclose(
        sub @ [0, 0, 0, 1], affine @ [sl[0].start, sl[1].start, sl[2].start, 1]
    )
    assert index_box(affine, shape, lo + 500.0, hi + 500.0) is None


@pytest.mark.parametrize("bad", ["RPX", "RRI", "RP", "rpi", "", "RLI"])
def test_invalid_orientation(bad):
    with pytest.raises(SynthError, match=r"orientation .* is not valid; expected three letters"):
        world_axes(bad)
