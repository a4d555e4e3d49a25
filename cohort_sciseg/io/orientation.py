"""Axis orientation in SCT's naming, and exact reorientation.

SCT names an orientation by where each array axis comes *from*: ``"RPI"`` means
axis 0 runs Right->left, axis 1 Posterior->anterior, axis 2 Inferior->superior.
nibabel names the direction each axis points *to*, so SCT ``"RPI"`` is nibabel
``"LAS"``: every letter is flipped. Reorientation only permutes and flips array
axes (no resampling), so it is exact and exactly reversible; for oblique affines
the nearest axis-aligned orientation is used (:func:`nibabel.io_orientation`)
and the obliquity stays in the affine.
"""

from __future__ import annotations

from typing import Literal

import nibabel as nib
import numpy as np
from nibabel import orientations as ornt

from cohort_sciseg.errors import GeometryError, format_error

__all__ = [
    "RPI",
    "acquisition_plane",
    "axis_directions",
    "from_nibabel_axcodes",
    "orientation_code",
    "reorient",
    "to_nibabel_axcodes",
    "voxel_sizes",
]

#: SCT's canonical orientation for morphometry (nibabel "LAS").
RPI = "RPI"

_FLIP = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}
_PAIRS = ({"R", "L"}, {"A", "P"}, {"S", "I"})


def to_nibabel_axcodes(code: str) -> tuple[str, str, str]:
    """nibabel axis codes of an SCT orientation code (``"RPI"`` -> ``("L", "A", "S")``)."""
    _check_code(code)
    return tuple(_FLIP[c] for c in code)  # type: ignore[return-value]


def from_nibabel_axcodes(axcodes: tuple[str | None, ...]) -> str:
    """SCT orientation code of nibabel axis codes (``("L", "A", "S")`` -> ``"RPI"``)."""
    return "".join(_FLIP[str(c)] for c in axcodes)


def _check_code(code: str) -> None:
    up = code if isinstance(code, str) else ""
    ok = len(up) == 3 and all(c in _FLIP for c in up) and all(
        sum(c in pair for c in up) == 1 for pair in _PAIRS
    )
    if not ok:
        msg = format_error(
            f"orientation {code!r} is not valid",
            expected="three letters, one from each of R/L, A/P, S/I (SCT naming, e.g. 'RPI', 'PSR', 'LAS')",
            fix="use an SCT orientation code",
        )
        raise GeometryError(msg)


def axis_directions(code: str) -> tuple[tuple[int, float], ...]:
    """World axis and direction of each array axis of an SCT orientation code.

    Returns one ``(world_axis, sign)`` per array axis: world axis 0 is x (R-L), 1 is
    y (A-P), 2 is z (S-I) of RAS+ scanner space, and ``sign`` is +1 when the array
    axis runs towards +x/+y/+z (Right, Anterior, Superior). ``"RPI"`` (from Right to
    left, ...) gives ``((0, -1.0), (1, 1.0), (2, 1.0))``.
    """
    return tuple((int(ax), float(sign)) for ax, sign in ornt.axcodes2ornt(to_nibabel_axcodes(code)))


def voxel_sizes(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel sizes along the three array axes of an affine (its column norms), mm."""
    z = np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))
    return (float(z[0]), float(z[1]), float(z[2]))


def orientation_code(affine: np.ndarray) -> str:
    """SCT orientation code of an affine (nearest axis-aligned for oblique affines)."""
    return from_nibabel_axcodes(nib.aff2axcodes(np.asarray(affine)))


def reorient(data: np.ndarray, affine: np.ndarray, target: str) -> tuple[np.ndarray, np.ndarray]:
    """Permute/flip the array axes of ``data`` to the SCT orientation ``target``.

    Parameters
    ----------
    data
        3D array (extra trailing axes are carried along).
    affine
        Its voxel-to-world affine.
    target
        SCT orientation code, e.g. ``"RPI"``.

    Returns
    -------
    (data, affine)
        The reoriented array (a view where possible) and the affine that maps
        its voxels to the same world positions. Reorienting the result to
        ``orientation_code(affine)`` gives back ``data`` exactly.
    """
    src = ornt.io_orientation(np.asarray(affine))
    dst = ornt.axcodes2ornt(to_nibabel_axcodes(target))
    transform = ornt.ornt_transform(src, dst)
    out = ornt.apply_orientation(data, transform)
    new_affine = np.asarray(affine) @ ornt.inv_ornt_aff(transform, data.shape[:3])
    return out, new_affine


def acquisition_plane(
    affine: np.ndarray,
    voxel_size_mm: tuple[float, float, float] | None = None,
    *,
    anisotropy: float = 1.5,
) -> Literal["sagittal", "axial", "coronal", "isotropic"]:
    """Plane of a 2D-multislice acquisition from its geometry.

    The thickest voxel axis is the slice direction: Left-Right -> ``"sagittal"``,
    Anterior-Posterior -> ``"coronal"``, Superior-Inferior -> ``"axial"``. When the
    largest voxel size is less than ``anisotropy`` times the smallest, the image
    is ``"isotropic"`` (a 3D acquisition).
    """
    aff = np.asarray(affine)
    zooms = np.asarray(voxel_size_mm if voxel_size_mm is not None else voxel_sizes(aff))
    if zooms.max() < anisotropy * zooms.min():
        return "isotropic"
    thick = int(np.argmax(zooms))
    world_axis = int(ornt.io_orientation(aff)[thick, 0])
    planes: tuple[Literal["sagittal"], Literal["coronal"], Literal["axial"]] = ("sagittal", "coronal", "axial")
    return planes[world_axis]
