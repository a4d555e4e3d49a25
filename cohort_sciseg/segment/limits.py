"""What a model can segment, checked before the network runs.

nnU-Net resamples every image to the model's voxel spacing and runs on whatever it
gets: a single slice or a 4 x 4 x 4 mm image ends as an empty cord or a
``zero-size array`` error deep in its code, and a 32^3 image of 10 mm voxels is
resampled to ~320^3 voxels (minutes and gigabytes, for an image that cannot show
a cord). :func:`check_segmentable` refuses such images first, naming the axis, the
value and the limit.

Limits (module constants):

- every axis has at least :data:`MIN_VOXELS_PER_AXIS` voxels and spans at least
  :data:`MIN_EXTENT_MM` mm (a cord is ~8-13 mm across; a smaller field of view
  cannot hold it);
- resampling to the model's spacing multiplies the number of voxels by at most
  :data:`MAX_UPSAMPLING` (an image that much coarser than the model's training
  data cannot show what the model looks for) and gives at most
  :data:`MAX_RESAMPLED_VOXELS` voxels (memory).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from cohort_sciseg.errors import SegmentationError, format_error

__all__ = [
    "MAX_RESAMPLED_VOXELS",
    "MAX_UPSAMPLING",
    "MIN_EXTENT_MM",
    "MIN_VOXELS_PER_AXIS",
    "check_model_grid",
    "check_segmentable",
    "resampled_shape",
]

#: Fewest voxels along any axis of an image to segment.
MIN_VOXELS_PER_AXIS = 3
#: Smallest field of view along any axis, mm.
MIN_EXTENT_MM = 8.0
#: Largest factor by which resampling to the model's spacing may multiply the number of voxels.
MAX_UPSAMPLING = 64.0
#: Largest number of voxels of an image resampled to the model's spacing (512^3).
MAX_RESAMPLED_VOXELS = 512**3


def resampled_shape(shape: Sequence[int], spacing: Sequence[float], target: Sequence[float]) -> tuple[int, ...]:
    """Shape of an image of ``shape`` and ``spacing`` resampled to ``target`` spacing (nnU-Net's rounding)."""
    return tuple(
        max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, target, strict=True)
    )


def check_segmentable(
    shape: Sequence[int],
    spacing: Sequence[float],
    target_spacing: Sequence[float],
    *,
    axes: Sequence[str] = ("i", "j", "k"),
    path: str | None = None,
    scan_id: str | None = None,
) -> None:
    """Raise :class:`SegmentationError` when the model cannot segment an image of this grid.

    Parameters
    ----------
    shape, spacing
        The image's dimensions (voxels) and voxel sizes (mm), in the model's axis order.
    target_spacing
        The model's voxel spacing (mm), same order (nnU-Net's configuration ``spacing``).
    axes
        Names of the axes for messages (e.g. ``("S-I", "A-P", "R-L")``).
    path, scan_id
        Named in the message.
    """
    for name, n, s in zip(axes, shape, spacing, strict=True):
        if n < MIN_VOXELS_PER_AXIS or n * s < MIN_EXTENT_MM:
            raise _error(
                f"the field of view is too small for a spinal cord: {n} voxel(s) of {s:.3g} mm "
                f"= {n * s:.3g} mm along the {name} axis (image shape {tuple(shape)})",
                f"at least {MIN_VOXELS_PER_AXIS} voxels and {MIN_EXTENT_MM:g} mm along every axis",
                "segment the full acquisition, not a crop or a single slice",
                path, scan_id,
            )
    new = resampled_shape(shape, spacing, target_spacing)
    n_in = math.prod(int(n) for n in shape)
    n_out = math.prod(new)
    if n_out > MAX_UPSAMPLING * n_in:
        raise _error(
            f"the image is far coarser than the model: voxels {_mm(spacing)} mm vs the model's "
            f"{_mm(target_spacing)} mm; resampling would grow it {n_out / n_in:.0f}-fold, "
            f"from {tuple(shape)} to {new} voxels",
            f"at most {MAX_UPSAMPLING:g}-fold (voxel sizes within a few times the model's)",
            "check the voxel sizes in the header (pixdim, sform); if they are right, the image's "
            "resolution is too low for this model",
            path, scan_id,
        )
    if n_out > MAX_RESAMPLED_VOXELS:
        raise _error(
            f"resampled to the model's spacing {_mm(target_spacing)} mm the image would have "
            f"{n_out:,} voxels {new}",
            f"at most {MAX_RESAMPLED_VOXELS:,}",
            "crop the image around the spinal cord (e.g. `sct_crop_image`)",
            path, scan_id,
        )


#: Axis names of orientation letters, for messages.
_AXIS_NAMES = {c: name for name, letters in (("left-right", "RL"), ("antero-posterior", "AP"),
                                              ("superior-inferior", "SI")) for c in letters}


def check_model_grid(
    shape: Sequence[int],
    spacing: Sequence[float],
    orientation: str,
    transpose_forward: Sequence[int],
    target_spacing: Sequence[float],
    *,
    path: str | None = None,
    scan_id: str | None = None,
) -> None:
    """:func:`check_segmentable` of an image in the model's orientation, in nnU-Net's axis order.

    ``shape``, ``spacing`` and ``orientation`` (SCT code, e.g. ``"RPI"``) describe the
    image reoriented to the model's orientation; nnU-Net sees its array transposed
    ``(2, 1, 0)`` and then by the plans' ``transpose_forward``, the order of
    ``target_spacing``.
    """
    order = list(transpose_forward)
    names = [_AXIS_NAMES.get(c, c) for c in reversed(orientation)]
    rev_shape, rev_spacing = list(reversed(shape)), list(reversed(spacing))
    check_segmentable(
        [rev_shape[i] for i in order], [rev_spacing[i] for i in order], list(target_spacing),
        axes=[names[i] for i in order], path=path, scan_id=scan_id,
    )


def _mm(values: Sequence[float]) -> str:
    return " x ".join(f"{v:.3g}" for v in values)


def _error(what: str, expected: str, fix: str, path: str | None, scan_id: str | None) -> SegmentationError:
    msg = format_error(what, path=path, scan_id=scan_id, expected=expected, fix=fix)
    return SegmentationError(msg, path=path, scan_id=scan_id)
