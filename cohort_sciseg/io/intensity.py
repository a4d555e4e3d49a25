"""Checks that an image's intensities can be segmented at all.

:func:`check_image_values` is for images given to the segmentation model, not for
masks. It rejects, with a :class:`~cohort_sciseg.errors.NiftiError` that names the
value found:

* **constant images**: every voxel 0 (blank) or one value everywhere (zero
  variance); nnU-Net's z-score normalisation divides by the standard deviation and
  the model sees no anatomy;
* **extreme magnitudes**: any ``|value| >`` :data:`MAX_ABS_INTENSITY`. nnU-Net
  normalises in float32; values near 1e19 overflow the squares of its variance and
  values near 1e37 the sum itself, so the whole image becomes inf/NaN. MRI
  magnitudes, even with Philips/GE scaling, stay far below the limit;
* **integer wrap-around** (signed integer images only): unsigned data written as
  signed (e.g. uint16 intensities above 32767 stored as int16) wrap to large
  negative values. Magnitude MR images have no strongly negative voxels, so the
  image is rejected when (a) it has voxels in both the top and the bottom
  :data:`WRAP_EDGE_FRACTION` of its dtype's half-range (int16: ``>= 31948`` and
  ``<= -31949``), or (b) at least :data:`WRAP_NEGATIVE_FRACTION` of its voxels lie
  at or below half the dtype's minimum (int16: ``<= -16384``). A legitimate image
  with some negative voxels (interpolation ringing around a 0 background) stays
  far above these bounds. Unsigned images are not
  checked: a full-range uint16 image cannot be told from signed data wrapped.
  Images with a scaling slope are loaded as float and are not checked either.

Non-finite values are rejected too (:func:`~cohort_sciseg.io.load_nifti` already
does it for files). The cost is one ``min`` and one ``max`` pass over the data;
counting passes run only when the extremes look wrong.
"""

from __future__ import annotations

import os
from typing import NoReturn

import numpy as np

from cohort_sciseg.errors import NiftiError, format_error

__all__ = [
    "MAX_ABS_INTENSITY",
    "WRAP_EDGE_FRACTION",
    "WRAP_NEGATIVE_FRACTION",
    "check_image_values",
]

#: Largest accepted ``|intensity|`` (dimensionless). nnU-Net's float32 z-score
#: normalisation overflows from ~1e15 on a 40 M-voxel image (sum of squares above
#: float32's 3.4e38); 1e10 leaves a margin and is far above any MR magnitude.
MAX_ABS_INTENSITY = 1e10
#: Width of each end band of a signed integer dtype's range, as a fraction of its
#: half-range: voxels in both end bands mean a wrap-around (int16: 819 values).
WRAP_EDGE_FRACTION = 0.025
#: Fraction of voxels at or below half a signed dtype's minimum that means a wrap-around.
WRAP_NEGATIVE_FRACTION = 0.01

_RECONVERT = "re-convert the image from DICOM with dcm2niix"


def _error(what: str, expected: str, fix: str, path: str | os.PathLike[str] | None, scan_id: str | None) -> NiftiError:
    return NiftiError(
        format_error(what, path=path, scan_id=scan_id, expected=expected, fix=fix), path=path, scan_id=scan_id
    )


def check_image_values(
    data: np.ndarray,
    *,
    path: str | os.PathLike[str] | None = None,
    scan_id: str | None = None,
) -> None:
    """Raise if an image to be segmented cannot hold a spinal cord (see the module docstring).

    Parameters
    ----------
    data
        The image's voxel values (any shape; integer, boolean or floating point).
    path, scan_id
        Named in the error message.

    Raises
    ------
    NiftiError
        Empty, non-finite, constant, extreme-valued or wrapped-around data; the
        message names the values found, the expectation and a fix.
    """
    arr = np.asarray(data)
    if arr.size == 0:
        raise _error(f"image has no voxels (shape {arr.shape})", "at least one voxel", _RECONVERT, path, scan_id)
    if arr.dtype.kind not in "biuf":
        raise _error(
            f"data type {arr.dtype.name!r} is not supported",
            "an integer or floating-point image",
            "convert the image to float32 (e.g. `sct_image -type float32`)",
            path,
            scan_id,
        )
    lo, hi = arr.min(), arr.max()
    if arr.dtype.kind == "f" and not (np.isfinite(lo) and np.isfinite(hi)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise _error(
            f"{bad:,} voxels are NaN or infinite",
            "finite intensities",
            "replace them (e.g. `fslmaths IMG -nan OUT`) and check how the image was produced",
            path,
            scan_id,
        )
    if lo == hi:
        _constant(arr, lo, path, scan_id)
    big = max(abs(float(lo)), abs(float(hi)))
    if big > MAX_ABS_INTENSITY:
        raise _error(
            f"image has intensities of magnitude up to {big:.4g} (min {float(lo):.4g}, max {float(hi):.4g})",
            f"|intensity| <= {MAX_ABS_INTENSITY:.0e} (larger values overflow nnU-Net's float32 "
            "intensity normalisation)",
            "check the header's scl_slope / scl_inter and how the image was produced; rescale it "
            "(e.g. `fslmaths IMG -div 1000000 OUT`) or " + _RECONVERT,
            path,
            scan_id,
        )
    if arr.dtype.kind == "i":
        _check_wrap(arr, int(lo), int(hi), path, scan_id)


def _constant(arr: np.ndarray, value: np.generic, path: str | os.PathLike[str] | None, scan_id: str | None) -> NoReturn:
    what = (
        f"image is blank: all {arr.size:,} voxels are 0"
        if value == 0
        else f"image has one value everywhere: all {arr.size:,} voxels are {value.item()!r}"
    )
    raise _error(
        what,
        "an image with contrast (at least two different intensities)",
        "check that the file is the acquired image and not a placeholder or a failed export; " + _RECONVERT,
        path,
        scan_id,
    )


def _check_wrap(arr: np.ndarray, lo: int, hi: int, path: str | os.PathLike[str] | None, scan_id: str | None) -> None:
    info = np.iinfo(arr.dtype)
    strongly_negative = info.min // 2
    if lo > strongly_negative:
        return  # the common case: nothing near the bottom of the range, no counting pass
    band = int(info.max * WRAP_EDGE_FRACTION)
    low_edge, high_edge = info.min + band, info.max - band
    n_low = int(np.count_nonzero(arr <= low_edge))
    n_high = int(np.count_nonzero(arr >= high_edge))
    n_neg = int(np.count_nonzero(arr <= strongly_negative))
    if (n_low and n_high) or n_neg >= WRAP_NEGATIVE_FRACTION * arr.size:
        name = arr.dtype.name
        unsigned = np.dtype(f"u{arr.dtype.itemsize}").name
        raise _error(
            f"{name} image looks wrapped around (unsigned data written as signed): "
            f"{n_low:,} voxels <= {low_edge}, {n_high:,} voxels >= {high_edge}, "
            f"{n_neg:,} of {arr.size:,} voxels <= {strongly_negative} (min {lo}, max {hi})",
            f"a magnitude image without voxels at both ends of the {name} range and with "
            f"under {WRAP_NEGATIVE_FRACTION:.0%} of voxels <= {strongly_negative}",
            f"{_RECONVERT} (it stores such data as {unsigned}), or reinterpret the voxels as "
            f"{unsigned} (numpy `data.view(np.{unsigned})`) and save them with a {unsigned} header",
            path,
            scan_id,
        )
