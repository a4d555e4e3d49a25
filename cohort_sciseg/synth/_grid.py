"""Voxel grids of synthetic acquisitions: affines from SCT orientation codes, world coordinates.

World space is nibabel's RAS+ scanner space in millimetres (x towards the subject's
Right, y Anterior, z Superior). Orientation codes use SCT's naming: each letter says
where an array axis *starts* ("RPI": axis 0 runs from Right to left, axis 1 from
Posterior to anterior, axis 2 from Inferior to superior), i.e. nibabel's axis codes
with every letter flipped.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cohort_sciseg.errors import GeometryError, SynthError
from cohort_sciseg.io import axis_directions

__all__ = ["acquisition_grid", "index_box", "rotation_about_x", "world_axes", "world_coordinates"]

FloatArray = npt.NDArray[np.float32]

def world_axes(orientation: str) -> tuple[tuple[int, float], ...]:
    """World axis (0 x/LR, 1 y/AP, 2 z/SI) and direction sign of each array axis.

    Parameters
    ----------
    orientation
        Three-letter SCT code, one letter from each of R/L, A/P, S/I.
    """
    try:
        return axis_directions(orientation)
    except GeometryError as exc:
        raise SynthError(str(exc)) from exc


def rotation_about_x(deg: float) -> npt.NDArray[np.float64]:
    """Rotation matrix about the world x (left-right) axis: a tilt in the sagittal plane."""
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def acquisition_grid(
    orientation: str,
    voxel_mm: tuple[float, float, float],
    fov_mm: tuple[float, float, float],
    centre_mm: tuple[float, float, float],
    *,
    oblique_deg: float = 0.0,
) -> tuple[npt.NDArray[np.float64], tuple[int, int, int]]:
    """Affine and shape of a box-shaped acquisition.

    Parameters
    ----------
    orientation
        SCT orientation code of the data array.
    voxel_mm
        Voxel size along the world axes (left-right, antero-posterior, superior-inferior), mm.
    fov_mm
        Field of view along the same world axes, mm; each axis gets
        ``max(1, round(fov / voxel))`` voxels.
    centre_mm
        World (RAS+) position of the grid centre, mm.
    oblique_deg
        Tilt of the whole grid about the world left-right axis, degrees (0: not oblique).

    Returns
    -------
    affine, shape
        4x4 voxel-to-world affine (values representable in float32, as NIfTI stores
        them) and the array shape.
    """
    axes = world_axes(orientation)
    lin = np.zeros((3, 3))
    shape = []
    for i, (w, sign) in enumerate(axes):
        lin[w, i] = sign * voxel_mm[w]
        shape.append(max(1, round(fov_mm[w] / voxel_mm[w])))
    lin = rotation_about_x(oblique_deg) @ lin
    centre_idx = (np.asarray(shape, float) - 1.0) / 2.0
    affine = np.eye(4)
    affine[:3, :3] = lin
    affine[:3, 3] = np.asarray(centre_mm, float) - lin @ centre_idx
    # NIfTI stores the affine in float32: use exactly what will be read back
    affine = affine.astype(np.float32).astype(np.float64)
    return affine, (shape[0], shape[1], shape[2])


def world_coordinates(
    affine: npt.NDArray[np.float64],
    shape: tuple[int, int, int],
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """World x, y, z (mm) of the points ``index + offset`` of every voxel, as broadcastable arrays.

    A world coordinate that does not depend on an array axis has length 1 along it,
    so for a non-oblique grid each coordinate is a 1D profile and later arithmetic
    only expands to 3D where it must.
    """
    idx = [
        (np.arange(n, dtype=np.float64) + o).reshape([-1 if k == i else 1 for k in range(3)])
        for i, (n, o) in enumerate(zip(shape, offset, strict=True))
    ]
    out = []
    for w in range(3):
        acc: npt.NDArray[np.float64] = np.full((1, 1, 1), affine[w, 3])
        for i in range(3):
            if affine[w, i] != 0.0:
                acc = acc + affine[w, i] * idx[i]
        out.append(acc.astype(np.float32))
    return out[0], out[1], out[2]


def index_box(
    affine: npt.NDArray[np.float64],
    shape: tuple[int, int, int],
    lo: npt.NDArray[np.float64],
    hi: npt.NDArray[np.float64],
) -> tuple[tuple[slice, slice, slice], npt.NDArray[np.float64]] | None:
    """Index box (with a one-voxel margin) covering the world box ``[lo, hi]`` (mm).

    Returns the slices into the grid and the affine of the box's first voxel, or
    ``None`` when the world box misses the grid.
    """
    corners = np.array(
        [[a, b, c, 1.0] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])]
    )
    idx = (np.linalg.inv(affine) @ corners.T)[:3]
    start = np.maximum(np.floor(idx.min(axis=1)) - 1, 0).astype(int)
    stop = np.minimum(np.ceil(idx.max(axis=1)) + 2, shape).astype(int)
    if np.any(stop <= start):
        return None
    sub = affine.copy()
    sub[:3, 3] = affine[:3, :3] @ start + affine[:3, 3]
    sl = (slice(start[0], stop[0]), slice(start[1], stop[1]), slice(start[2], stop[2]))
    return sl, sub
