"""Geometry checks between images, and mask binarisation.

A mask belongs to an image when both share a voxel grid: the same shape and the
same affine within a tolerance (``atol_mm`` on the origin and on every column of
the direction/spacing matrix). :func:`check_same_geometry` raises a
:class:`~cohort_sciseg.errors.GeometryError` that lists every difference with
both values, so the user sees at once whether the mask is another resolution,
another orientation of the same grid, or shifted.

Masks are binarised with ``value > threshold`` (default 0.5, as SCT's
``sct_maths -bin 0.5``), so soft masks (probabilities, interpolated masks) work
and hard 0/1 masks are unchanged. Values other than 0 and 1 are reported in a
:class:`MaskReport`, never silently accepted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from cohort_sciseg.errors import GeometryError, format_error
from cohort_sciseg.io.orientation import orientation_code, voxel_sizes

__all__ = [
    "DEFAULT_ATOL_MM",
    "DEFAULT_THRESHOLD",
    "MaskReport",
    "binarize",
    "check_same_geometry",
    "grid_differences",
    "inspect_mask",
]

logger = logging.getLogger(__name__)

#: Default tolerance between two affines, in mm (the sub-voxel float noise of converters).
DEFAULT_ATOL_MM = 1e-3
#: Default binarisation threshold: a voxel is foreground when its value is > 0.5.
DEFAULT_THRESHOLD = 0.5


class _HasGrid(Protocol):
    @property
    def shape(self) -> tuple[int, int, int]: ...
    @property
    def affine(self) -> np.ndarray: ...
    @property
    def path(self) -> str: ...


def _fmt(v: np.ndarray) -> str:
    return "(" + ", ".join(f"{x:.4g}" for x in np.asarray(v).ravel()) + ")"


def grid_differences(
    ref_shape: tuple[int, ...],
    ref_affine: np.ndarray,
    other_shape: tuple[int, ...],
    other_affine: np.ndarray,
    *,
    atol_mm: float = DEFAULT_ATOL_MM,
) -> list[str]:
    """Human-readable differences between two voxel grids (empty when they match)."""
    diffs = []
    a = np.asarray(ref_affine, dtype=np.float64)
    b = np.asarray(other_affine, dtype=np.float64)
    if tuple(ref_shape) != tuple(other_shape):
        diffs.append(f"shape {tuple(other_shape)} vs {tuple(ref_shape)}")
    za, zb = np.asarray(voxel_sizes(a)), np.asarray(voxel_sizes(b))
    if not np.allclose(za, zb, rtol=0, atol=atol_mm):
        diffs.append(f"voxel sizes {_fmt(zb)} mm vs {_fmt(za)} mm")
    oa, ob = orientation_code(a), orientation_code(b)
    if oa != ob:
        diffs.append(f"orientation {ob} vs {oa}")
    elif not np.allclose(a[:3, :3], b[:3, :3], rtol=0, atol=atol_mm) and np.allclose(za, zb, atol=atol_mm):
        angle = _max_axis_angle_deg(a, b)
        diffs.append(f"axes rotated by up to {angle:.3g} degrees")
    shift = float(np.linalg.norm(a[:3, 3] - b[:3, 3]))
    if shift > atol_mm:
        diffs.append(f"origin {_fmt(b[:3, 3])} mm vs {_fmt(a[:3, 3])} mm ({shift:.3g} mm apart)")
    return diffs


def _max_axis_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    ua = a[:3, :3] / np.linalg.norm(a[:3, :3], axis=0)
    ub = b[:3, :3] / np.linalg.norm(b[:3, :3], axis=0)
    cos = np.clip((ua * ub).sum(axis=0), -1.0, 1.0)
    return float(np.degrees(np.arccos(cos)).max())


def check_same_geometry(
    reference: _HasGrid,
    other: _HasGrid,
    *,
    what: str = "mask",
    scan_id: str | None = None,
    atol_mm: float = DEFAULT_ATOL_MM,
) -> None:
    """Raise unless ``other`` lies on the voxel grid of ``reference``.

    Parameters
    ----------
    reference
        The image (anything with ``shape``, ``affine`` and ``path``, e.g.
        :class:`~cohort_sciseg.io.NiftiInfo` or :class:`~cohort_sciseg.io.Volume`).
    other
        The mask or prediction that must match it.
    what
        What ``other`` is, for the message (``"cord mask"``, ``"prediction"``).
    scan_id
        Named in the message.
    atol_mm
        Tolerance on the origin and the direction/spacing matrix, in mm.

    Raises
    ------
    GeometryError
        Lists every difference (shape, voxel sizes, orientation, rotation, origin).
    """
    diffs = grid_differences(reference.shape, reference.affine, other.shape, other.affine, atol_mm=atol_mm)
    if not diffs:
        return
    msg = format_error(
        f"{what} {other.path!r} does not match the image grid: " + "; ".join(diffs),
        path=reference.path,
        scan_id=scan_id,
        expected=f"the {what} on the image's voxel grid (same shape and affine within {atol_mm} mm)",
        fix=f"resample the {what} onto the image (e.g. `sct_register_multimodal -i MASK -d IMAGE "
        "-identity 1 -x nn`) or point to the right file",
    )
    raise GeometryError(msg, path=other.path, scan_id=scan_id)


@dataclass(frozen=True, slots=True)
class MaskReport:
    """What a mask contained before binarisation.

    Attributes
    ----------
    n_foreground
        Voxels above the threshold.
    is_binary
        Whether every value was exactly 0 or 1.
    values
        Up to 10 distinct values found (sorted), for messages.
    n_distinct
        Number of distinct values.
    threshold
        The threshold used (foreground is ``value > threshold``).
    """

    n_foreground: int
    is_binary: bool
    values: tuple[float, ...]
    n_distinct: int
    threshold: float

    def describe(self) -> str:
        """One line for logs and failure records (empty for a clean 0/1 mask)."""
        if self.is_binary:
            return ""
        shown = ", ".join(f"{v:g}" for v in self.values)
        more = f" (and {self.n_distinct - len(self.values)} more)" if self.n_distinct > len(self.values) else ""
        return (
            f"mask has values other than 0 and 1: {shown}{more}; binarised at > {self.threshold:g} "
            f"({self.n_foreground} foreground voxels)"
        )


def inspect_mask(data: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD) -> MaskReport:
    """Describe the values of a mask (see :class:`MaskReport`)."""
    arr = np.asarray(data)
    if arr.dtype == bool:
        n = int(arr.sum())
        return MaskReport(n, True, (0.0, 1.0) if n else (0.0,), 2 if n else 1, threshold)
    n_fg = int(np.count_nonzero(arr > threshold))
    # Fast path for the usual 0/1 mask: no sort of the whole volume.
    if n_fg == int(np.count_nonzero(arr == 1)) and n_fg + int(np.count_nonzero(arr == 0)) == arr.size:
        return MaskReport(n_fg, True, (0.0, 1.0) if n_fg else (0.0,), 2 if n_fg else 1, float(threshold))
    values = np.unique(arr)
    is_binary = bool(np.isin(values, (0, 1)).all())
    return MaskReport(
        n_foreground=n_fg,
        is_binary=is_binary,
        values=tuple(float(v) for v in values[:10]),
        n_distinct=int(values.size),
        threshold=float(threshold),
    )


def binarize(data: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Boolean mask ``data > threshold`` (NaN is background).

    Parameters
    ----------
    data
        Mask values (hard 0/1 labels, soft probabilities, or label maps).
    threshold
        Foreground is strictly above it. Default 0.5.
    """
    arr = np.asarray(data)
    if arr.dtype == bool:
        return arr
    with np.errstate(invalid="ignore"):
        return arr > threshold
