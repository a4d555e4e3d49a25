"""Interpolated midsagittal slice, tissue bridges and the NLI slice, as SCT master computes them.

Definitions (REFERENCE.md §2; SCT master ``spinalcordtoolbox/scripts/sct_analyze_lesion.py``,
read at 3b3c5b22, 7.4.dev), on RPI arrays (x R->L, y P->A, z I->S):

Interpolated midsagittal slice ``x*`` (``get_midsagittal_slice``)
    The mean cord centre of mass in x over the axial slices ``z_c-2 .. z_c+2``,
    ``z_c`` the rounded S-I centre of mass of the largest lesion; with an NLI
    slice (``-nli-slice``), the cord centre of mass in x at that slice instead,
    for every lesion. The two interpolation slices are ``floor(x*)`` and
    ``ceil(x*)``, the weight ``f = x* - floor(x*)``.
Interpolation (``_interpolate_values``, PR #5202)
    ``(1 - f) * a + f * b``; where one of ``a``, ``b`` is missing (the lesion
    lies on only one of the two slices at that axial slice) the other is used
    for both, so an interpolated bridge always lies between the values of the
    slices it comes from. SCT raises on two missing values; they cannot occur
    here (only axial slices with the lesion on one of the two slices are used).
Tissue bridges (Huber et al., Ann Neurol 2017; Pfyffer et al., Neurology 2019)
    On every sagittal line ``(x, :, z)`` of the lesion: dorsal = first lesion
    y - first cord y, ventral = last cord y - last lesion y (negative -> 0), in
    voxels. Per sagittal slice, the minimum over z of ``width * py *
    cos(thetaSag(z))`` (``_measure_tissue_bridges``). Midsagittal: for each
    axial slice with the lesion on ``floor(x*)`` or ``ceil(x*)``, the two
    slices' widths interpolated, ``* py * cos(thetaSag(z))``, then the minimum
    over z, separately for dorsal and ventral (``_measure_interpolated_tissue_bridges``).
Fallback (the lesion misses both interpolation slices)
    Total bridge = the minimum over the lesion's axial slices of the cord's
    interpolated A-P diameter (number of cord voxels on each of the two
    sagittal lines, interpolated, ``* py * cos(thetaSag(z))``; axial slices
    without cord on both lines are skipped; NaN when none is left), dorsal =
    ventral = total / 2 (``_compute_sc_ap_diameter_at_axial_slice``).
NLI slice (SCT 7.3 ``-nli-slice``)
    A slice index along the image's S-I axis, in the input orientation; it
    fixes ``x*`` (see above), and the cord A-P diameter at that slice is the
    tissue-bridge proxy of a scan without lesion (SCT writes it as a row with
    label 0; here it is the scan's ``nli_ap_diameter_mm``).

Departure from SCT, on purpose: when dorsal + ventral is 0 (the lesion spans
the cord's whole A-P extent), the bridge ratios are NaN (undefined), not SCT's
0 % and 0 %, which do not add up to 100.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cohort_sciseg.errors import MorphometryError, format_error
from cohort_sciseg.io import orientation_code

__all__ = [
    "Interpolation",
    "ap_diameter",
    "interpolate_values",
    "midsagittal_bridges",
    "midsagittal_from_lesion",
    "midsagittal_from_slice",
    "nli_rpi_slice",
    "sagittal_bridges",
]


@dataclass(frozen=True, slots=True)
class Interpolation:
    """The interpolated midsagittal slice ``x*`` and its two sagittal slices (RPI x)."""

    x_star: float

    @property
    def slices(self) -> tuple[int, int]:
        """``(floor(x*), ceil(x*))``."""
        return math.floor(self.x_star), math.ceil(self.x_star)

    @property
    def weight(self) -> float:
        """``f = x* - floor(x*)``, the weight of the second slice."""
        return self.x_star - math.floor(self.x_star)


def interpolate_values(a: float, b: float, f: float) -> float:
    """SCT's ``_interpolate_values``: ``(1-f) a + f b``, a missing (NaN) value replaced by the other.

    Both missing gives NaN (SCT raises; the callers here never pass two).
    """
    if math.isnan(a):
        a = b
    elif math.isnan(b):
        b = a
    return (1.0 - f) * a + f * b


def _cord_x_centre(cord: np.ndarray, z: int) -> float | None:
    sl = cord[:, :, z]
    n = int(np.count_nonzero(sl))
    if not n:
        return None
    return float(np.arange(sl.shape[0]) @ sl.sum(axis=1)) / n


def midsagittal_from_lesion(cord: np.ndarray, z_centre: float) -> float:
    """``x*`` from the lesion's S-I centre of mass (RPI z, voxels): SCT's automatic rule.

    The window ``round(z_c)-2 .. round(z_c)+2`` (Python ``round``, as SCT's
    ``int(round(...))``) is clipped to the image (SCT issue #5300); NaN when no
    axial slice of the window has cord.
    """
    zc = round(z_centre)
    xs = [
        x
        for z in range(max(zc - 2, 0), min(zc + 3, cord.shape[2]))
        if (x := _cord_x_centre(cord, z)) is not None
    ]
    return float(np.mean(xs)) if xs else math.nan


def midsagittal_from_slice(cord: np.ndarray, z: int) -> float:
    """``x*`` at one axial slice (the NLI slice): the cord's x centre of mass there, NaN without cord."""
    x = _cord_x_centre(cord, z)
    return math.nan if x is None else x


def nli_rpi_slice(
    nli_slice: Any, affine: np.ndarray, shape: tuple[int, ...], *, scan_id: str | None = None
) -> int:
    """The RPI axial slice (z) of an NLI slice given along the S-I axis of the input orientation.

    As SCT's ``orig_orientation_to_rpi_slice``: the voxel axis whose
    orientation letter is I or S carries the index; an axis running from S to
    I is flipped. Unlike SCT (which checks the range against the third axis
    whatever the orientation), the range is that of the S-I axis.

    Raises
    ------
    MorphometryError
        ``nli_slice`` is not an integer or lies outside the image.
    """
    code = orientation_code(affine)
    axis = next(i for i, c in enumerate(code) if c in "IS")
    n = int(shape[axis])
    ok = isinstance(nli_slice, (int, np.integer)) and not isinstance(nli_slice, bool)
    if not ok or not 0 <= int(nli_slice) < n:
        msg = format_error(
            f"NLI slice {nli_slice!r} is not a slice of the image's S-I axis "
            f"(array axis {axis}, orientation {code})",
            scan_id=scan_id,
            expected=f"an integer from 0 to {n - 1}, in the input image's orientation (as SCT's -nli-slice)",
            fix="give the axial slice of the neurological level of injury as shown by a viewer "
            "on the input image (FSLeyes/ITK-SNAP voxel index)",
        )
        raise MorphometryError(msg, scan_id=scan_id)
    z = int(nli_slice)
    return z if code[axis] == "I" else n - 1 - z


def ap_diameter(
    cord: np.ndarray, z: int, interp: Interpolation, py: float, cos_sag: np.ndarray
) -> float | None:
    """Cord A-P diameter (mm) at axial slice ``z`` in the interpolated midsagittal slice.

    SCT's ``_compute_sc_ap_diameter_at_axial_slice``: the number of cord voxels
    on each of the two sagittal lines, interpolated, ``* py * cos(thetaSag(z))``;
    ``None`` unless both lines have cord (or lie outside the image).
    """
    s1, s2 = interp.slices
    nx = cord.shape[0]
    if not (0 <= s1 < nx and 0 <= s2 < nx):
        return None
    n1, n2 = int(np.count_nonzero(cord[s1, :, z])), int(np.count_nonzero(cord[s2, :, z]))
    if not (n1 and n2):
        return None
    return interpolate_values(n1, n2, interp.weight) * py * float(cos_sag[z])


def first_last(mask: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index of the first and last True along ``axis``, and whether any is True."""
    n = mask.shape[axis]
    has = np.asarray(mask.any(axis=axis))
    first = np.argmax(mask, axis=axis)
    last = n - 1 - np.argmax(np.flip(mask, axis=axis), axis=axis)
    return first, last, has


@dataclass(frozen=True, slots=True)
class LineBridges:
    """Bridges (voxels) on every sagittal line ``(x, :, z)`` of one lesion, absolute RPI indices."""

    x: np.ndarray
    z: np.ndarray
    dorsal: np.ndarray
    ventral: np.ndarray


def line_bridges(cord: np.ndarray, lesion: np.ndarray, offset: tuple[int, int, int]) -> LineBridges:
    """Dorsal and ventral bridges on each sagittal line of ``lesion`` (a box at ``offset``).

    ``lesion`` must lie inside the cord (every lesion line then has cord).
    """
    ox, oy, oz = offset
    l_first, l_last, l_has = first_last(lesion, axis=1)  # (x, z) of the box
    bx, bz = np.nonzero(l_has)
    xs, zs = bx + ox, bz + oz
    cols = cord[xs, :, zs]  # (m, ny)
    c_first, c_last, _ = first_last(cols, axis=1)
    dorsal = np.maximum(l_first[bx, bz] + oy - c_first, 0)
    ventral = np.maximum(c_last - (l_last[bx, bz] + oy), 0)
    return LineBridges(x=xs, z=zs, dorsal=dorsal, ventral=ventral)


def sagittal_bridges(lines: LineBridges, py: float, cos_sag: np.ndarray) -> list[dict[str, Any]]:
    """SCT's ``slice_<x>_{dorsal,ventral,total}_bridge_width``: per sagittal slice, minima over z (mm)."""
    scale = py * cos_sag[lines.z]
    rows = []
    for x in np.unique(lines.x):
        sel = lines.x == x
        d = float(np.min(lines.dorsal[sel] * scale[sel]))
        v = float(np.min(lines.ventral[sel] * scale[sel]))
        rows.append(
            {"sagittal_slice": int(x), "dorsal_bridge_width_mm": d,
             "ventral_bridge_width_mm": v, "total_bridge_width_mm": d + v}
        )
    return rows


def midsagittal_bridges(
    lines: LineBridges,
    cord: np.ndarray,
    interp: Interpolation,
    py: float,
    cos_sag: np.ndarray,
) -> tuple[float, float, bool]:
    """Interpolated midsagittal ``(dorsal, ventral, fallback)`` bridges of one lesion (mm).

    See the module docstring for the interpolation with a missing value and the
    fallback; ``fallback`` is True when the lesion misses both interpolation
    slices (NaN bridges when the cord is missing there too).
    """
    s1, s2 = interp.slices
    f = interp.weight
    on1, on2 = lines.x == s1, lines.x == s2
    mid = on1 | on2
    if not mid.any():
        diameters = [
            d
            for z in np.unique(lines.z)
            if (d := ap_diameter(cord, int(z), interp, py, cos_sag)) is not None
        ]
        half = min(diameters) / 2.0 if diameters else math.nan
        return half, half, True
    nan = math.nan
    d_min = v_min = math.inf
    for z in np.unique(lines.z[mid]):
        at = lines.z == z
        i1, i2 = np.flatnonzero(at & on1), np.flatnonzero(at & on2)
        d1, v1 = (float(lines.dorsal[i1[0]]), float(lines.ventral[i1[0]])) if i1.size else (nan, nan)
        d2, v2 = (float(lines.dorsal[i2[0]]), float(lines.ventral[i2[0]])) if i2.size else (nan, nan)
        scale = py * float(cos_sag[z])
        d_min = min(d_min, interpolate_values(d1, d2, f) * scale)
        v_min = min(v_min, interpolate_values(v1, v2, f) * scale)
    return float(d_min), float(v_min), False


def midsagittal_extent(
    measured: np.ndarray,
    offset: tuple[int, int, int],
    interp: Interpolation,
    py: float,
    pz: float,
    cos_sag: np.ndarray,
) -> tuple[float, float]:
    """Length and width of the lesion in the interpolated midsagittal slice (mm).

    SCT's ``_measure_length_midsagittal_slice`` / ``_measure_width_midsagittal_slice``:
    the two sagittal slices interpolated (absent = 0); per axial slice with a
    non-zero value, length adds ``mean(non-zero) * pz / cos(thetaSag)`` and the
    width is ``sum(non-zero) * py * cos(thetaSag)``, maximum over z; 0 and 0
    when the lesion is absent from both slices.
    """
    ox, _, oz = offset
    s1, s2 = interp.slices

    def sagittal(x: int) -> np.ndarray:
        if ox <= x < ox + measured.shape[0]:
            return measured[x - ox].astype(np.float64)
        return np.zeros(measured.shape[1:], dtype=np.float64)

    values = (1.0 - interp.weight) * sagittal(s1) + interp.weight * sagittal(s2)  # (y, z) of the box
    pos = values > 0
    cols = np.flatnonzero(pos.any(axis=0))
    if not cols.size:
        return 0.0, 0.0
    sums = np.where(pos, values, 0.0).sum(axis=0)[cols]
    means = sums / pos.sum(axis=0)[cols]
    length = float(np.sum(means * pz / cos_sag[cols + oz]))
    width = float(np.max(sums * py * cos_sag[cols + oz]))
    return length, width
