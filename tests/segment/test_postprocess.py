"""Post-processing: keep the largest cord, fill holes, remove small components; lesions are never dropped."""

from __future__ import annotations

import numpy as np
import pytest

from cohort_sciseg.errors import SegmentationError
from cohort_sciseg.segment import PostprocessOptions, postprocess_masks
from cohort_sciseg.segment.postprocess import fill_holes, keep_largest_component, remove_small


def _two_cords_three_lesions() -> tuple[np.ndarray, np.ndarray]:
    cord = np.zeros((20, 21, 22), bool)
    cord[2:10, 2:10, 2:20] = True  # large component (8*8*18 voxels)
    cord[14:17, 14:17, 5:8] = True  # small stray component (27 voxels)
    lesion = np.zeros_like(cord)
    lesion[4:6, 4:6, 5:7] = True  # lesion in the large cord
    lesion[5:7, 5:7, 12:15] = True  # a second lesion in the large cord
    lesion[15, 15, 6] = True  # lesion inside the stray component
    return cord, lesion


def test_defaults_change_nothing() -> None:
    cord, lesion = _two_cords_three_lesions()
    assert not PostprocessOptions().active
    c, les = postprocess_masks(cord, lesion, (1.0, 1.0, 1.0))
    assert np.array_equal(c, cord)
    assert np.array_equal(les, lesion)


def test_keep_largest_cord_keeps_every_lesion() -> None:
    cord, lesion = _two_cords_three_lesions()
    c, les = postprocess_masks(cord, lesion, (1.0, 1.0, 1.0), PostprocessOptions(keep_largest_cord=True))
    assert c.sum() == 8 * 8 * 18
    assert not c[14:17, 14:17, 5:8].any()
    # SCT's -largest would keep one lesion of three; here every lesion stays, the one
    # outside the kept cord component included.
    assert np.array_equal(les, lesion)


def test_keep_largest_component_is_26_connected() -> None:
    mask = np.zeros((5, 5, 5), bool)
    mask[1, 1, 1] = mask[2, 2, 2] = mask[3, 3, 3] = True  # diagonal chain: one component
    mask[0, 4, 0] = True
    assert keep_largest_component(mask).sum() == 3
    assert not keep_largest_component(np.zeros((3, 4, 5), bool)).any()


def test_fill_holes_3d_and_per_slice_only_add_voxels() -> None:
    cord = np.zeros((9, 9, 7), bool)
    cord[1:8, 1:8, 1:6] = True
    cord[4, 4, 3] = False  # enclosed in 3D
    cord[2:7, 2:7, 0] = True
    cord[4, 4, 0] = False  # open towards the volume border in 3D (slice 0 is the border), closed in 2D
    filled3d = fill_holes(cord, "3d")
    assert filled3d[4, 4, 3]
    assert not filled3d[4, 4, 0]
    filled2d = fill_holes(cord, "slice")
    assert filled2d[4, 4, 0]
    assert filled2d[4, 4, 3]
    lesion = np.zeros_like(cord)
    lesion[3:6, 3:6, 2:5] = True
    lesion[4, 4, 3] = False
    c, les = postprocess_masks(cord, lesion, (1, 1, 1), PostprocessOptions(fill_holes="3d"))
    assert (c >= cord).all()
    assert (les >= lesion).all()
    assert les[4, 4, 3]


def test_remove_small_uses_mm3_and_spares_lesions() -> None:
    cord, lesion = _two_cords_three_lesions()
    # 27 voxels of 0.5 x 0.5 x 2 mm = 13.5 mm3 < 14 mm3: removed; at 1 mm3 voxels (27 mm3) kept.
    assert not remove_small(cord, 14.0, (0.5, 0.5, 2.0))[15, 15, 6]
    assert remove_small(cord, 14.0, (1.0, 1.0, 1.0))[15, 15, 6]
    c, les = postprocess_masks(cord, lesion, (0.5, 0.5, 2.0), PostprocessOptions(remove_small_mm3=14.0))
    assert not c[15, 15, 6]
    assert np.array_equal(les, lesion)


def test_remove_small_lesions_only_when_asked() -> None:
    cord, lesion = _two_cords_three_lesions()
    _, les = postprocess_masks(cord, lesion, (1, 1, 1), PostprocessOptions(remove_small_lesion_mm3=2.0))
    assert not les[15, 15, 6]  # the 1-voxel lesion (1 mm3)
    assert les[4:6, 4:6, 5:7].all()
    assert les[5:7, 5:7, 12:15].all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fill_holes": "2d"}, r"fill_holes='2d' is not valid; expected None, '3d' or 'slice'"),
        ({"remove_small_mm3": -1.0}, r"remove_small_mm3=-1.0 is not valid"),
        ({"remove_small_lesion_mm3": float("nan")}, r"remove_small_lesion_mm3=nan is not valid"),
    ],
)
def test_invalid_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(SegmentationError, match=match):
        PostprocessOptions(**kwargs)  # type: ignore[arg-type]
