"""Phantom builders and table comparison helpers for the morphometry tests.

Phantoms are built directly in SCT RPI arrays (x R->L, y P->A, z I->S), whose nibabel axis codes
are ``LAS``; :func:`reorient` stores the same anatomy in any other orientation with the matching
affine. Expected values are counted from the construction in each test or come from the
independent loop implementation in ``morpho_reference.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import pyarrow as pa

ORIGIN = (12.5, -30.25, 41.0)

#: (voxel sizes of the RPI array in mm, non-cubic RPI shape)
GRIDS = {
    "iso1": ((1.0, 1.0, 1.0), (41, 37, 29)),
    "aniso05x3": ((0.5, 0.5, 3.0), (43, 39, 17)),
    "aniso07x5": ((0.7, 0.7, 5.0), (35, 31, 13)),
}


def rpi_affine(zooms: Sequence[float], origin: Sequence[float] = ORIGIN) -> np.ndarray:
    """Diagonal affine of an RPI (nibabel LAS) array: axis 0 -> L (-x), 1 -> A (+y), 2 -> S (+z)."""
    aff = np.diag([-float(zooms[0]), float(zooms[1]), float(zooms[2]), 1.0])
    aff[:3, 3] = origin
    return aff


def disc(
    shape_xy: Sequence[int], centre: Sequence[float], radius_mm: float, zooms_xy: Sequence[float]
) -> np.ndarray:
    """Boolean 2D disc (x, y) of ``radius_mm`` around the voxel-space ``centre``."""
    x, y = np.meshgrid(np.arange(shape_xy[0]), np.arange(shape_xy[1]), indexing="ij")
    return ((x - centre[0]) * zooms_xy[0]) ** 2 + ((y - centre[1]) * zooms_xy[1]) ** 2 <= radius_mm**2


def cylinder(
    shape: Sequence[int],
    zooms: Sequence[float],
    centre: Sequence[float],
    radius_mm: float = 4.0,
    *,
    z_range: Sequence[int] | None = None,
    shift: Sequence[int] = (0, 0),
) -> np.ndarray:
    """Cord: the same disc on every slice, moved by ``shift`` (integer voxels in x, y) per slice.

    Integer shifts keep each slice's centre of mass exactly on a line, so the fitted centerline is
    that line and the angles are analytic: tan(theta3D) = |(sx*px, sy*py)| / pz, tan(thetaSag) = sy*py/pz.
    """
    out = np.zeros(shape, dtype=bool)
    base = disc(shape[:2], centre, radius_mm, zooms[:2])
    zs = range(shape[2]) if z_range is None else range(z_range[0], z_range[1])
    for z in zs:
        sl = np.roll(base, (shift[0] * z, shift[1] * z), axis=(0, 1))
        # a roll that wraps would corrupt the phantom
        assert sl.sum() == base.sum()
        assert not (sl[0].any())
        assert not (sl[-1].any())
        assert not (sl[:, 0].any())
        assert not (sl[:, -1].any())
        out[:, :, z] = sl
    return out


def reorient(arr: np.ndarray, aff_rpi: np.ndarray, axcodes: str) -> tuple[np.ndarray, np.ndarray]:
    """The RPI (LAS) array stored with nibabel ``axcodes``, and its affine (same world positions)."""
    start = nib.orientations.axcodes2ornt(("L", "A", "S"))
    end = nib.orientations.axcodes2ornt(tuple(axcodes))
    tr = nib.orientations.ornt_transform(start, end)
    out = nib.orientations.apply_orientation(arr, tr)
    aff = aff_rpi @ nib.orientations.inv_ornt_aff(tr, arr.shape)
    assert "".join(nib.aff2axcodes(aff)) == axcodes
    return np.ascontiguousarray(out), aff


def rotation(degrees: float, axis: int) -> np.ndarray:
    """4x4 world rotation by ``degrees`` about world axis ``axis``."""
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(4)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def world(aff: np.ndarray, ijk: Sequence[float]) -> np.ndarray:
    return aff[:3, :3] @ np.asarray(ijk, dtype=float) + aff[:3, 3]


def lesions_df(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas().sort_values("lesion_id").reset_index(drop=True)


def slices_df(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas().sort_values(["lesion_id", "sagittal_slice"]).reset_index(drop=True)


def _same(got: Any, want: Any, rel: float, abs_: float) -> bool:
    if isinstance(want, bool | np.bool_):
        return bool(got) == bool(want)
    if isinstance(want, str):
        return got == want
    if want is None or (isinstance(want, float) and math.isnan(want)):
        return got is None or (isinstance(got, float) and math.isnan(got)) or pd.isna(got)
    if got is None or pd.isna(got):
        return False
    return math.isclose(float(got), float(want), rel_tol=rel, abs_tol=abs_)


def assert_rows_match(
    got: pd.DataFrame,
    want: list[dict[str, Any]],
    *,
    rel: float = 1e-9,
    abs_: float = 1e-9,
    skip: Sequence[str] = (),
    skip_none: bool = True,
) -> None:
    """Every expected value (``None`` = left open by the definitions, skipped) equals the table's."""
    assert len(got) == len(want), f"{len(got)} rows, expected {len(want)}"
    problems = []
    for i, w in enumerate(want):
        g = got.iloc[i]
        for key, value in w.items():
            if key in skip or (skip_none and value is None):
                continue
            if key not in g.index:
                problems.append(f"row {i}: column {key!r} missing")
            elif not _same(g[key], value, rel, abs_):
                problems.append(f"row {i} (lesion_id {g.get('lesion_id')}): {key} = {g[key]!r}, expected {value!r}")
    assert not problems, "\n".join(problems)


def assert_summary_matches(summary: Any, want: dict[str, Any], *, rel: float = 1e-9) -> None:
    problems = []
    for key, value in want.items():
        g = getattr(summary, key)
        if not _same(g, value, rel, 1e-9):
            problems.append(f"summary.{key} = {g!r}, expected {value!r}")
    assert not problems, "\n".join(problems)
