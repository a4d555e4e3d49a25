"""Cord centerline angles used for SCT's angle correction.

SCT (``spinalcordtoolbox/centerline``, ``get_centerline`` with ``ParamCenterline``
defaults and ``minmax=False``) takes the centre of mass of the cord on every RPI
axial slice that holds cord voxels, fits ``x(z)`` and ``y(z)`` with a smoothing
B-spline (:func:`scipy.interpolate.splrep`, cubic, smoothing factor
``s = (n_points / n_slices)**2 * smooth * pz / 3`` with ``smooth = 20``) and
evaluates the derivatives on every slice. The angle between the tangent
``[dx*px, dy*py, pz]`` and the z axis is theta3D; the same with the x component
dropped is thetaSag (the angle seen in a sagittal slice).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import interpolate

__all__ = ["CenterlineAngles", "centerline_angles"]

#: SCT's default B-spline smoothing parameter (``ParamCenterline.smooth``).
DEFAULT_SMOOTH = 20.0


@dataclass(frozen=True, slots=True, eq=False)
class CenterlineAngles:
    """Per-slice cord angles, radians, indexed by RPI axial slice.

    Attributes
    ----------
    theta_3d
        Angle between the centerline tangent and the z axis.
    theta_sagittal
        The same angle projected on the sagittal (y-z) plane.
    note
        Why no correction was possible, ``""`` otherwise.
    """

    theta_3d: np.ndarray
    theta_sagittal: np.ndarray
    note: str = ""


def centerline_angles(
    cord: np.ndarray,
    voxel_size_mm: tuple[float, float, float],
    *,
    smooth: float = DEFAULT_SMOOTH,
    enabled: bool = True,
) -> CenterlineAngles:
    """Angles of the cord's smoothed centerline on every RPI axial slice.

    Parameters
    ----------
    cord
        Boolean cord mask in RPI orientation.
    voxel_size_mm
        ``(px, py, pz)`` of the RPI array, mm.
    smooth
        SCT's smoothing parameter (20).
    enabled
        ``False`` gives zero angles (no correction).

    Returns
    -------
    CenterlineAngles
        Zero angles (and a note) when correction is disabled or the cord has
        fewer than two slices.
    """
    nz = cord.shape[2]
    zeros = np.zeros(nz)
    if not enabled:
        return CenterlineAngles(zeros, zeros.copy(), "angle correction disabled")
    px, py, pz = voxel_size_mm
    counts = cord.sum(axis=(0, 1))
    zs = np.flatnonzero(counts)
    if zs.size < 2:
        return CenterlineAngles(
            zeros, zeros.copy(), f"cord mask covers {zs.size} axial slice(s): no angle correction"
        )
    per_xz = cord.sum(axis=1)  # (nx, nz)
    per_yz = cord.sum(axis=0)  # (ny, nz)
    x_mean = (np.arange(cord.shape[0]) @ per_xz)[zs] / counts[zs]
    y_mean = (np.arange(cord.shape[1]) @ per_yz)[zs] / counts[zs]
    k = 3 if zs.size > 3 else 1
    s = (zs.size / nz) ** 2 * smooth * pz / 3.0
    z_ref = np.arange(nz)
    dx = interpolate.splev(z_ref, interpolate.splrep(zs, x_mean, s=s, k=k), der=1)
    dy = interpolate.splev(z_ref, interpolate.splrep(zs, y_mean, s=s, k=k), der=1)
    tx, ty = dx * px, dy * py
    theta_3d = np.arccos(pz / np.sqrt(tx**2 + ty**2 + pz**2))
    theta_sag = np.arccos(pz / np.sqrt(ty**2 + pz**2))
    return CenterlineAngles(np.asarray(theta_3d, float), np.asarray(theta_sag, float))
