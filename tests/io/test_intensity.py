"""Images whose values cannot be segmented are named: constant, extreme, wrapped-around."""

from __future__ import annotations

import numpy as np
import pytest

from cohort_sciseg.errors import NiftiError
from cohort_sciseg.io import (
    MAX_ABS_INTENSITY,
    WRAP_NEGATIVE_FRACTION,
    check_image_values,
    load_nifti,
    save_nifti,
)

SHAPE = (7, 8, 9)


def _mri(rng, dtype=np.int16, high: int = 1800) -> np.ndarray:
    """A plausible magnitude image: 0 background, a bright block with noise."""
    img = np.zeros(SHAPE, dtype=np.float64)
    img[2:6, 2:7, :] = high * 0.6
    img += rng.normal(0, high * 0.05, SHAPE)
    return np.clip(img, 0, None).astype(dtype)


def test_plausible_images_pass(rng):
    check_image_values(_mri(rng))
    check_image_values(_mri(rng, np.float32))
    check_image_values(_mri(rng, np.uint8, 200))
    check_image_values(np.array([[[True, False]]]))


def test_blank_image(rng):
    with pytest.raises(NiftiError, match=r"^scan 's1' 'x\.nii\.gz': image is blank: all 504 voxels are 0; expected an image with contrast.*Fix: check that the file"):
        check_image_values(np.zeros(SHAPE, np.int16), path="x.nii.gz", scan_id="s1")


@pytest.mark.parametrize(("dtype", "value", "shown"), [(np.int16, 37, "37"), (np.float32, 2.5, "2.5"), (np.float64, -1.0, "-1.0")])
def test_constant_image_names_the_value(dtype, value, shown):
    with pytest.raises(NiftiError, match=rf"one value everywhere: all 504 voxels are {shown}; expected"):
        check_image_values(np.full(SHAPE, value, dtype=dtype))


@pytest.mark.parametrize(("value", "shown"), [(1e37, "1e\\+37"), (-3e12, "3e\\+12")])
def test_extreme_magnitude_names_the_max(rng, value, shown):
    data = _mri(rng, np.float32)
    data[3, 4, 5] = value
    with pytest.raises(NiftiError, match=rf"intensities of magnitude up to {shown} .*expected \|intensity\| <= 1e\+10.*nnU-Net.*scl_slope"):
        check_image_values(data)


def test_magnitude_at_limit_passes(rng):
    data = _mri(rng, np.float64)
    data[0, 0, 0] = MAX_ABS_INTENSITY
    data[0, 0, 1] = -MAX_ABS_INTENSITY
    check_image_values(data)


def test_int16_wrap_around_both_ends(rng):
    # uint16 intensities up to 40000 written as int16: values above 32767 wrap to < 0.
    true = np.linspace(0, 40000, np.prod(SHAPE)).reshape(SHAPE)
    data = true.astype(np.uint16).view(np.int16)
    n_high = int(np.count_nonzero(data >= 31948))
    n_low = int(np.count_nonzero(data <= -31949))
    assert n_high
    assert n_low
    with pytest.raises(NiftiError, match=rf"int16 image looks wrapped around .*: {n_low} voxels <= -31949, {n_high} voxels >= 31948.*view\(np\.uint16\)"):
        check_image_values(data)


def test_many_strongly_negative_voxels(rng):
    data = _mri(rng)
    k = int(np.ceil(WRAP_NEGATIVE_FRACTION * data.size))
    data.flat[:k] = -20000
    with pytest.raises(NiftiError, match=rf"{k} of 504 voxels <= -16384"):
        check_image_values(data)


def test_int8_wrap_around():
    data = np.linspace(0, 200, np.prod(SHAPE)).reshape(SHAPE).astype(np.uint8).view(np.int8)
    with pytest.raises(NiftiError, match=r"int8 image looks wrapped around.*as uint8"):
        check_image_values(data)


def test_legitimate_negatives_pass(rng):
    data = _mri(rng)
    data[0, :, :] = -40  # interpolation ringing around the background
    data[1, 1, 1] = 32767  # a saturated voxel at the top of the range
    check_image_values(data)
    data[1, 1, 2] = -32768  # one corrupt voxel: below the fraction, no count at the top band
    data[1, 1, 1] = 3000
    check_image_values(data)


def test_full_range_uint16_passes():
    check_image_values(np.linspace(0, 65535, np.prod(SHAPE)).reshape(SHAPE).astype(np.uint16))


def test_nonfinite_empty_and_complex(rng):
    data = _mri(rng, np.float32)
    data[0, 0, 0] = np.nan
    with pytest.raises(NiftiError, match=r"1 voxels are NaN or infinite"):
        check_image_values(data)
    with pytest.raises(NiftiError, match=r"no voxels \(shape \(0, 3, 4\)\)"):
        check_image_values(np.zeros((0, 3, 4), np.float32))
    with pytest.raises(NiftiError, match=r"data type 'complex64' is not supported"):
        check_image_values(np.ones(SHAPE, np.complex64))


def test_loaded_file_is_named(tmp_path):
    p = save_nifti(tmp_path / "blank.nii.gz", np.zeros(SHAPE, np.int16), np.diag([0.5, 0.7, 3.0, 1.0]))
    vol = load_nifti(p)
    with pytest.raises(NiftiError, match=r"blank") as exc:
        check_image_values(vol.data, path=vol.path, scan_id="site-a_sub-01_T2w")
    assert exc.value.path == str(p)
    assert exc.value.scan_id == "site-a_sub-01_T2w"


@pytest.mark.shared_data
def test_real_scans_pass(spine_t2w):
    images = sorted(spine_t2w.glob("sub-*/anat/*_T2w.nii.gz"))
    assert images
    for f in images:
        check_image_values(load_nifti(f).data, path=f)
