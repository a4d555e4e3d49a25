"""A synthetic cord scene rendered analytically on any grid (the tests' own construction)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def world_grid(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """RAS+ mm position of every voxel, shape (*shape, 3)."""
    idx = np.stack(np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij"), axis=-1)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def scene(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image and cord mask of the scene at ``points`` (RAS+ mm in the scene frame).

    The cord is an elliptic tube along z through (0, 0) (semi-axes 5 mm L-R, 3.5 mm A-P) inside a
    CSF sleeve (8 x 6 mm), with a bright ellipsoid in the cord and two off-axis blobs: nothing is
    symmetric, so every rotation is visible.
    """
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    r = np.hypot(x / 5.0, y / 3.5) * 4.0  # 4 on the cord surface
    r_csf = np.hypot(x / 8.0, y / 6.0) * 7.0  # 7 on the CSF surface
    sig = lambda d: 1.0 / (1.0 + np.exp(-d / 0.5))  # noqa: E731
    image = 100 + 300 * sig(7 - r_csf) - 150 * sig(4 - r)
    image += 400 * np.exp(-(((x - 1.5) / 2.0) ** 2 + ((y - 0.5) / 1.5) ** 2 + ((z - 5) / 4.0) ** 2))
    image += 250 * np.exp(-(((x - 9) ** 2 + (y + 6) ** 2 + (z + 10) ** 2) / 9.0))
    image += 200 * np.exp(-(((x + 7) ** 2 + (y - 8) ** 2 + (z - 12) ** 2) / 12.0))
    image += 60 * np.sin(z / 5.0) * sig(r_csf - 7)
    return image.astype(np.float32), (r <= 4.0) & (np.abs(z) <= 30)


def rigid(angles_deg: tuple[float, float, float], translation: tuple[float, float, float],
          centre: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """4 x 4 rigid motion: rotate about ``centre`` (extrinsic x, y, z angles), then translate."""
    m = np.eye(4)
    rot = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix()
    c = np.asarray(centre)
    m[:3, :3] = rot
    m[:3, 3] = c - rot @ c + np.asarray(translation)
    return m


def oblique_affine(shape: tuple[int, int, int], voxel: tuple[float, float, float],
                   angles_deg: tuple[float, float, float]) -> np.ndarray:
    """Affine of a grid centred on the world origin, axes rotated by ``angles_deg``."""
    aff = np.eye(4)
    aff[:3, :3] = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix() @ np.diag(voxel)
    aff[:3, 3] = -aff[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)
    return aff


def render(shape: tuple[int, int, int], affine: np.ndarray, motion: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """Scene on the grid; with ``motion`` (grid world -> scene frame) the subject has moved."""
    pts = world_grid(shape, affine)
    if motion is not None:
        pts = pts @ motion[:3, :3].T + motion[:3, 3]
    return scene(pts)
