"""Per-lesion and per-scan measures with the definitions of SCT's ``sct_analyze_lesion``.

Every measure is computed after reorientation to RPI (x: R->L, y: P->A, z: I->S)
with ``px, py, pz`` the RPI voxel sizes in mm; see REFERENCE.md §2 and SCT's
``spinalcordtoolbox/scripts/sct_analyze_lesion.py``. The measures (all per lesion):

``volume_mm3``
    Voxels of the lesion inside the cord x ``px*py*pz`` (mm3).
``outside_cord_volume_mm3``
    Voxels of the lesion outside the cord mask x voxel volume (mm3). SCT crashes
    on such lesions (SCT issues #5313, #4962); we measure them.
``length_mm``
    Sum over the lesion's axial slices of ``pz / cos(theta3D(z))`` (mm).
``width_mm``
    Max over axial slices of ``(ymax - ymin + 1) * py * cos(thetaSag(z))`` (mm).
``max_equivalent_diameter_mm``
    ``2 * sqrt(max_z(A_z * cos(theta3D(z))) / pi)`` with ``A_z`` the lesion area
    on slice z (mm).
``max_axial_damage_ratio``
    Max over the lesion's axial slices of lesion area / cord area, no angle
    correction (Smith et al., Spinal Cord 2021) (unitless, higher is worse).
``length_midsagittal_mm``, ``width_midsagittal_mm``
    Length and width in the interpolated midsagittal slice (mm; 0 when the
    lesion is absent from it, as SCT).
``dorsal/ventral/total_bridge_width_mm``
    Tissue bridges (Huber et al., Ann Neurol 2017; Pfyffer et al., Neurology
    2019) in the interpolated midsagittal slice: minimum over the lesion's
    axial slices of the spared cord dorsal (posterior) and ventral (anterior)
    to the lesion, ``* py * cos(thetaSag(z))`` (mm; higher is better).
``dorsal/ventral_bridge_ratio_pct``
    ``100 * dorsal / total`` and ``100 * ventral / total`` (%).

Conventions that differ from SCT, on purpose:
- a lesion fully outside the cord is reported (``fully_outside_cord``, volume 0,
  damage ratio 0, its geometry measured on the component itself, bridges NaN)
  instead of crashing;
- a lesion absent from the two midsagittal slices gets SCT's fallback bridges
  (total = minimum interpolated cord A-P extent over the lesion's slices, split
  50/50; ``bridge_fallback``) instead of NaN;
- an empty lesion mask gives zeros, never NaN, and tables with zero rows;
- soft masks are binarised (``value > threshold``, default 0.5);
- the midsagittal search window is clipped to the image (SCT issue #5300).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from scipy import ndimage

from cohort_sciseg.errors import MorphometryError, format_error
from cohort_sciseg.io import RPI, binarize, inspect_mask, orientation_code, reorient, voxel_sizes
from cohort_sciseg.morphometry.centerline import DEFAULT_SMOOTH, CenterlineAngles, centerline_angles
from cohort_sciseg.records import LESION_SLICES_SCHEMA, LESIONS_SCHEMA, ScanMorphometry

__all__ = ["LesionAnalysis", "measure_lesions"]

#: 18-connectivity in 3D (``skimage.measure.label(connectivity=2)``, SCT's choice).
_STRUCTURE_18 = ndimage.generate_binary_structure(3, 2)


@dataclass(frozen=True, slots=True, eq=False)
class LesionAnalysis:
    """Result of :func:`measure_lesions`.

    Attributes
    ----------
    lesions
        One row per lesion, :data:`~cohort_sciseg.records.LESIONS_SCHEMA`.
    slices
        SCT's per-sagittal-slice minimum bridges, :data:`~cohort_sciseg.records.LESION_SLICES_SCHEMA`.
    summary
        Per-scan summary and conventions.
    """

    lesions: pa.Table
    slices: pa.Table
    summary: ScanMorphometry
    _shape_rpi: tuple[int, int, int]
    _rpi_affine: np.ndarray
    _orientation: str
    _box: tuple[slice, ...] | None = None
    _crop_labels: np.ndarray | None = None
    _relabel: np.ndarray | None = None

    @property
    def labels(self) -> np.ndarray:
        """Lesion label map in the input orientation (0 background, ``lesion_id`` per lesion).

        Built on demand: the batch path does not need it.
        """
        full = np.zeros(self._shape_rpi, dtype=np.int32)
        if self._box is not None and self._crop_labels is not None and self._relabel is not None:
            full[self._box] = self._relabel[self._crop_labels]
        return reorient(full, self._rpi_affine, self._orientation)[0]


@dataclass(slots=True)
class _Lesion:
    """One connected component, cropped to its bounding box (RPI)."""

    comp: np.ndarray  # bool, the component
    inside: np.ndarray  # bool, component ∩ cord
    offset: tuple[int, int, int]
    n_inside: int
    n_total: int

    @property
    def measured(self) -> np.ndarray:
        # Measures use the part inside the cord; a lesion fully outside is measured as is.
        return self.inside if self.n_inside else self.comp


def _as_3d(name: str, arr: Any, scan_id: str | None) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim == 4 and a.shape[3] == 1:
        a = a[..., 0]
    if a.ndim != 3:
        msg = format_error(
            f"{name} has shape {a.shape}",
            scan_id=scan_id,
            expected="a 3D array",
            fix=f"pass the 3D {name} volume",
        )
        raise MorphometryError(msg, scan_id=scan_id)
    return a


def _check_inputs(
    cord: Any, lesion: Any, affine: Any, image: Any, scan_id: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    c = _as_3d("cord mask", cord, scan_id)
    les = _as_3d("lesion mask", lesion, scan_id)
    img = None if image is None else _as_3d("image", image, scan_id)
    for name, arr in (("lesion mask", les), ("image", img)):
        if arr is not None and arr.shape != c.shape:
            msg = format_error(
                f"{name} shape {arr.shape} differs from the cord mask shape {c.shape}",
                scan_id=scan_id,
                expected="all inputs on the same voxel grid",
                fix=f"resample the {name} onto the cord mask's grid, or pass the matching files",
            )
            raise MorphometryError(msg, scan_id=scan_id)
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)) or abs(np.linalg.det(aff[:3, :3])) < 1e-12:
        msg = format_error(
            f"affine {aff.tolist()!r} is not usable",
            scan_id=scan_id,
            expected="a finite, invertible 4x4 voxel-to-world matrix",
            fix="pass the affine of the NIfTI image the masks come from",
        )
        raise MorphometryError(msg, scan_id=scan_id)
    return c, les, aff, img


def _label(
    lesion: np.ndarray, cord: np.ndarray
) -> tuple[tuple[slice, ...] | None, np.ndarray | None, list[_Lesion]]:
    """18-connected components of the whole lesion mask (before the cord restriction).

    Only the bounding box of the lesion voxels is labelled (the rest is empty);
    returns that box, its label array and the components.
    """
    if not lesion.any():
        return None, None, []
    box = tuple(
        _span(np.asarray(lesion.any(axis=tuple(j for j in range(3) if j != i)))) for i in range(3)
    )
    sub, _ = ndimage.label(lesion[box], structure=_STRUCTURE_18)
    cord_box = cord[box]
    found = []
    for k, sl in enumerate(ndimage.find_objects(sub), start=1):
        if sl is None:
            continue
        comp = sub[sl] == k
        inside = comp & cord_box[sl]
        found.append(
            _Lesion(
                comp=comp,
                inside=inside,
                offset=tuple(b.start + s.start for b, s in zip(box, sl, strict=True)),
                n_inside=int(inside.sum()),
                n_total=int(comp.sum()),
            )
        )
    return box, sub, found


def _span(has: np.ndarray) -> slice:
    idx = np.flatnonzero(has)
    return slice(int(idx[0]), int(idx[-1]) + 1)


def _first_last(mask: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index of the first and last True along ``axis``, and whether any is True."""
    n = mask.shape[axis]
    has = np.asarray(mask.any(axis=axis))
    first = np.argmax(mask, axis=axis)
    last = n - 1 - np.argmax(np.flip(mask, axis=axis), axis=axis)
    return first, last, has


class _Scan:
    """RPI arrays and per-scan quantities shared by all lesions."""

    def __init__(self, cord: np.ndarray, affine: np.ndarray, angles: CenterlineAngles) -> None:
        self.cord = cord
        self.affine = affine
        self.px, self.py, self.pz = voxel_sizes(affine)
        self.cos3d = np.cos(angles.theta_3d)
        self.cos_sag = np.cos(angles.theta_sagittal)
        self.cord_per_z = cord.sum(axis=(0, 1))

    def cord_column_extent(self, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """First/last cord y and presence on the A-P lines ``cord[x, :, z]``."""
        cols = self.cord[x, :, z]  # (m, ny)
        return _first_last(cols, axis=1)

    def midsagittal(self, lesion: _Lesion) -> float:
        """x*: mean cord x centre of mass on axial slices z_c-2..z_c+2 of ``lesion``."""
        m = lesion.measured
        zc = round(float(np.nonzero(m)[2].mean()) + lesion.offset[2])  # Python round, as SCT
        nz = self.cord.shape[2]
        xs = []
        for z in range(max(zc - 2, 0), min(zc + 3, nz)):
            sl = self.cord[:, :, z]
            n = self.cord_per_z[z]
            if n:
                xs.append(float((np.arange(sl.shape[0]) @ sl.sum(axis=1)) / n))
        return float(np.mean(xs)) if xs else math.nan


def _interp(f: float, a: np.ndarray | float, b: np.ndarray | float) -> Any:
    return (1.0 - f) * a + f * b


def _measure_one(
    scan: _Scan,
    les: _Lesion,
    x_star: float,
    image: np.ndarray | None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    px, py, pz = scan.px, scan.py, scan.pz
    m = les.measured
    ox, oy, oz = les.offset
    xi, yi, zi = np.nonzero(m)
    z_abs = zi + oz
    z_slices = np.unique(z_abs)

    # Length, width, equivalent diameter, damage ratio.
    length = float(np.sum(pz / scan.cos3d[z_slices]))
    y_first, y_last, y_has = _first_last(np.asarray(m.any(axis=0)), axis=0)  # over (y, z) of the box
    zb = np.flatnonzero(y_has)
    width = float(np.max((y_last[zb] - y_first[zb] + 1) * py * scan.cos_sag[zb + oz]))
    area_z = m.sum(axis=(0, 1))[zb] * px * py
    diameter = 2.0 * math.sqrt(float(np.max(area_z * scan.cos3d[zb + oz])) / math.pi)
    if les.n_inside:
        cord_z = scan.cord_per_z[zb + oz]
        ratio = float(np.max(m.sum(axis=(0, 1))[zb] / cord_z))
    else:
        ratio = 0.0

    centroid = scan.affine @ np.array([xi.mean() + ox, yi.mean() + oy, zi.mean() + oz, 1.0])
    row: dict[str, Any] = {
        "volume_mm3": les.n_inside * px * py * pz,
        "outside_cord_volume_mm3": (les.n_total - les.n_inside) * px * py * pz,
        "fully_outside_cord": les.n_inside == 0,
        "length_mm": length,
        "width_mm": width,
        "max_equivalent_diameter_mm": diameter,
        "max_axial_damage_ratio": ratio,
        "centroid_x_mm": float(centroid[0]),
        "centroid_y_mm": float(centroid[1]),
        "centroid_z_mm": float(centroid[2]),
        "z_min_slice": int(z_slices[0]),
        "z_max_slice": int(z_slices[-1]),
        "mean_intensity": None,
        "std_intensity": None,
        "bridge_fallback": False,
    }
    if image is not None:
        vals = image[xi + ox, yi + oy, zi + oz].astype(np.float64)  # float32 sums drift
        vals = vals[vals != 0]  # SCT drops voxels where the image is 0
        if vals.size:
            row["mean_intensity"] = float(np.mean(vals))
            row["std_intensity"] = float(np.std(vals))

    slice_rows: list[dict[str, Any]] = []
    nan = math.nan
    row.update(
        length_midsagittal_mm=nan, width_midsagittal_mm=nan, dorsal_bridge_width_mm=nan,
        ventral_bridge_width_mm=nan, total_bridge_width_mm=nan, dorsal_bridge_ratio_pct=nan,
        ventral_bridge_ratio_pct=nan,
    )
    if math.isnan(x_star) or not les.n_inside:
        return row, slice_rows

    s1, s2 = math.floor(x_star), math.ceil(x_star)
    f = x_star - s1

    def sagittal(x: int) -> np.ndarray:
        if ox <= x < ox + m.shape[0]:
            return m[x - ox].astype(np.float64)
        return np.zeros(m.shape[1:], dtype=np.float64)

    # Length and width in the interpolated midsagittal slice (weighted by the interpolation).
    interp = _interp(f, sagittal(s1), sagittal(s2))  # (y, z) of the box
    pos = interp > 0
    cols = np.flatnonzero(pos.any(axis=0))
    if cols.size:
        sums = np.where(pos, interp, 0.0).sum(axis=0)[cols]
        means = sums / pos.sum(axis=0)[cols]
        row["length_midsagittal_mm"] = float(np.sum(means * pz / scan.cos_sag[cols + oz]))
        row["width_midsagittal_mm"] = float(np.max(sums * py * scan.cos_sag[cols + oz]))
    else:
        row["length_midsagittal_mm"] = 0.0
        row["width_midsagittal_mm"] = 0.0

    # Tissue bridges on every (sagittal, axial) line of the lesion.
    l_first, l_last, l_has = _first_last(m, axis=1)  # (x, z) of the box
    bx, bz = np.nonzero(l_has)
    xs, zs_all = bx + ox, bz + oz
    c_first, c_last, _ = scan.cord_column_extent(xs, zs_all)
    dorsal = np.maximum(l_first[bx, bz] + oy - c_first, 0)
    ventral = np.maximum(c_last - (l_last[bx, bz] + oy), 0)
    scale = py * scan.cos_sag[zs_all]
    for x in np.unique(xs):
        sel = x == xs
        d, v = float(np.min(dorsal[sel] * scale[sel])), float(np.min(ventral[sel] * scale[sel]))
        slice_rows.append(
            {"sagittal_slice": int(x), "dorsal_bridge_width_mm": d, "ventral_bridge_width_mm": v,
             "total_bridge_width_mm": d + v}
        )

    in_mid = np.asarray(xs == s1) | np.asarray(xs == s2)
    if in_mid.any():
        d_min = v_min = math.inf
        for z in np.unique(zs_all[in_mid]):
            at = zs_all == z
            d1 = dorsal[at & (s1 == xs)]
            d2 = dorsal[at & (s2 == xs)]
            v1 = ventral[at & (s1 == xs)]
            v2 = ventral[at & (s2 == xs)]
            sc = py * scan.cos_sag[z]
            d_min = min(d_min, _interp(f, d1[0] if d1.size else 0, d2[0] if d2.size else 0) * sc)
            v_min = min(v_min, _interp(f, v1[0] if v1.size else 0, v2[0] if v2.size else 0) * sc)
        d_w, v_w = float(d_min), float(v_min)
    else:
        # SCT's fallback: the cord's interpolated A-P extent, split 50/50.
        row["bridge_fallback"] = True
        zs = np.unique(zs_all)
        ext = []
        for x in (s1, s2):
            if 0 <= x < scan.cord.shape[0]:
                first, last, has = scan.cord_column_extent(np.full(zs.size, x), zs)
                ext.append(np.where(has, last - first + 1, 0))
            else:
                ext.append(np.zeros(zs.size))
        total = _interp(f, ext[0], ext[1]) * py * scan.cos_sag[zs]
        total = total[total > 0]
        if not total.size:
            return row, slice_rows
        d_w = v_w = float(np.min(total)) / 2.0
    tot = d_w + v_w
    row["dorsal_bridge_width_mm"] = d_w
    row["ventral_bridge_width_mm"] = v_w
    row["total_bridge_width_mm"] = tot
    row["dorsal_bridge_ratio_pct"] = 100.0 * d_w / tot if tot > 0 else nan
    row["ventral_bridge_ratio_pct"] = 100.0 * v_w / tot if tot > 0 else nan
    return row, slice_rows


def measure_lesions(
    cord: np.ndarray,
    lesion: np.ndarray,
    affine: np.ndarray,
    *,
    image: np.ndarray | None = None,
    threshold: float = 0.5,
    angle_correction: bool = True,
    smooth: float = DEFAULT_SMOOTH,
    scan_id: str | None = None,
) -> LesionAnalysis:
    """Measure every lesion of a scan as SCT's ``sct_analyze_lesion -m LESION -s CORD [-i IMAGE]``.

    Parameters
    ----------
    cord, lesion
        Cord and lesion masks on the same voxel grid, any orientation; hard or
        soft (binarised with ``value > threshold``).
    affine
        Voxel-to-world affine of the grid (RAS+ mm).
    image
        Optional image for the intensity statistics of each lesion.
    threshold
        Binarisation threshold of both masks (default 0.5).
    angle_correction
        Correct lengths/widths/areas with the cord's centerline angles (SCT default).
    smooth
        Centerline smoothing (SCT's 20).
    scan_id
        Written in the tables and error messages.

    Returns
    -------
    LesionAnalysis
        Lesion table, per-sagittal-slice bridge table, per-scan summary, label map.
        Results do not depend on the input orientation (slice indices are RPI).

    Raises
    ------
    MorphometryError
        Inputs that are not 3D, differ in shape, or an unusable affine.
    """
    c_in, l_in, aff, img_in = _check_inputs(cord, lesion, affine, image, scan_id)
    notes = []
    for name, arr in (("cord mask", c_in), ("lesion mask", l_in)):
        desc = inspect_mask(arr, threshold=threshold).describe()
        if desc:
            notes.append(f"{name}: {desc}")
    c_rpi, rpi_aff = reorient(binarize(c_in, threshold), aff, RPI)
    l_rpi, _ = reorient(binarize(l_in, threshold), aff, RPI)
    img_rpi = None if img_in is None else reorient(img_in, aff, RPI)[0]

    if not c_rpi.any():
        notes.append("cord mask is empty: every lesion is outside the cord")
    angles = centerline_angles(c_rpi, voxel_sizes(rpi_aff), smooth=smooth, enabled=angle_correction)
    if angles.note and angle_correction:
        notes.append(angles.note)
    scan = _Scan(c_rpi, rpi_aff, angles)

    box, crop_labels, found = _label(l_rpi, c_rpi)
    # Superior first: order by the centroid z (RPI) of the measured part (the reported
    # centroid), highest first; ties by x, y.
    centroids = [np.array(np.nonzero(les.measured)).mean(axis=1) + les.offset for les in found]
    order = sorted(range(len(found)), key=lambda i: (-centroids[i][2], centroids[i][0], centroids[i][1]))
    found = [found[i] for i in order]

    x_star = math.nan
    if found:
        largest = max(range(len(found)), key=lambda i: (found[i].n_inside, found[i].n_total, -i))
        x_star = scan.midsagittal(found[largest])
        if math.isnan(x_star):
            notes.append("no cord voxels around the largest lesion: midsagittal measures are NaN")

    rows, slice_rows = [], []
    for lid, les in enumerate(found, start=1):
        row, srows = _measure_one(scan, les, x_star, img_rpi)
        rows.append({"scan_id": scan_id, "lesion_id": lid, **row})
        slice_rows += [{"scan_id": scan_id, "lesion_id": lid, **r} for r in srows]
        if row["fully_outside_cord"]:
            notes.append(f"lesion {lid} lies fully outside the cord mask")

    relabel = np.zeros(len(order) + 1, dtype=np.int32)
    for lid, i in enumerate(order, start=1):
        relabel[i + 1] = lid

    vox = scan.px * scan.py * scan.pz
    summary = ScanMorphometry(
        scan_id=scan_id,
        n_lesions=len(rows),
        total_volume_mm3=float(sum(r["volume_mm3"] for r in rows)),
        total_outside_cord_volume_mm3=float(sum(r["outside_cord_volume_mm3"] for r in rows)),
        total_length_mm=float(sum(r["length_mm"] for r in rows)),
        max_axial_damage_ratio=float(max((r["max_axial_damage_ratio"] for r in rows), default=0.0)),
        cord_volume_mm3=float(c_rpi.sum()) * vox,
        midsagittal_slice=x_star,
        threshold=float(threshold),
        angle_correction=angle_correction,
        notes=tuple(notes),
    )
    return LesionAnalysis(
        lesions=pa.Table.from_pylist(rows, schema=LESIONS_SCHEMA),
        slices=pa.Table.from_pylist(slice_rows, schema=LESION_SLICES_SCHEMA),
        summary=summary,
        _shape_rpi=c_rpi.shape,
        _rpi_affine=rpi_aff,
        _orientation=orientation_code(aff),
        _box=box,
        _crop_labels=crop_labels,
        _relabel=relabel,
    )


