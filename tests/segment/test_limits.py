"""What the model can segment: grids refused before the network runs, with the axis, value and limit."""

from __future__ import annotations

import pytest

from cohort_sciseg.errors import SegmentationError
from cohort_sciseg.segment.limits import check_model_grid, check_segmentable, resampled_shape


def test_usual_grids_pass():
    check_segmentable((128, 320, 12), (0.5, 0.5, 3.0), (1.0, 1.0, 1.0))  # sagittal synthetic scan
    check_segmentable((19, 256, 320), (7.5, 0.688, 0.688), (1.0, 1.0, 1.0))  # axial 7.5 mm slices (sctms)
    check_segmentable((60, 55, 52), (1.0, 1.0, 1.0), (0.8, 0.8, 0.8))  # a tight crop


def test_resampled_shape_rounds_as_nnunet():
    assert resampled_shape((32, 33, 7), (10.0, 0.5, 3.0), (1.0, 1.0, 1.0)) == (320, 16, 21)


@pytest.mark.parametrize(
    ("shape", "spacing", "match"),
    [
        ((4, 4, 4), (1.0, 1.0, 1.0), r"4 voxel\(s\) of 1 mm = 4 mm along the i axis"),
        ((1, 200, 200), (3.0, 0.5, 0.5), r"1 voxel\(s\) of 3 mm = 3 mm along the i axis"),
        ((40, 40, 2), (1.0, 1.0, 5.0), r"2 voxel\(s\) of 5 mm = 10 mm along the k axis"),
    ],
)
def test_tiny_fields_of_view(shape, spacing, match):
    with pytest.raises(SegmentationError, match=match) as err:
        check_segmentable(shape, spacing, (1.0, 1.0, 1.0), path="x.nii.gz", scan_id="s1")
    assert "at least 3 voxels and 8 mm along every axis" in str(err.value)
    assert "Fix:" in str(err.value)
    assert "'s1'" in str(err.value)


def test_far_too_coarse_image():
    """32^3 voxels of 10 mm would be resampled 1000-fold to 320^3 (minutes, GBs): refused."""
    with pytest.raises(SegmentationError, match=r"grow it 1000-fold, from \(32, 32, 32\) to \(320, 320, 320\)"):
        check_segmentable((32, 32, 32), (10.0, 10.0, 10.0), (1.0, 1.0, 1.0))


def test_too_many_voxels_after_resampling():
    with pytest.raises(SegmentationError, match="would have 216,000,000 voxels"):
        check_segmentable((300, 300, 300), (1.0, 1.0, 1.0), (0.5, 0.5, 0.5))


def test_model_grid_names_the_anatomical_axis():
    """An RPI image with one slice left-right: nnU-Net's array is transposed, the message says left-right."""
    with pytest.raises(SegmentationError, match="along the left-right axis"):
        check_model_grid((1, 100, 100), (3.0, 0.5, 0.5), "RPI", (0, 1, 2), (1.0, 1.0, 1.0))
    with pytest.raises(SegmentationError, match="along the superior-inferior axis"):
        check_model_grid((100, 100, 2), (0.5, 0.5, 3.0), "RPI", (2, 1, 0), (1.0, 1.0, 1.0))
