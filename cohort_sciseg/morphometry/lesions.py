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
``length_midsagittal_mm``, ``width_midsagittal_mm``, ``dorsal/ventral/total_bridge_width_mm``,
``dorsal/ventral_bridge_ratio_pct``, ``bridge_fallback``
    Measures in the interpolated midsagittal slice and tissue bridges (Huber et
    al., Ann Neurol 2017; Pfyffer et al., Neurology 2019), as SCT master
    computes them, including the interpolation that falls back to the one
    available slice (PR #5202) and the NLI slice: see
    :mod:`cohort_sciseg.morphometry.bridges` (mm; bridges: higher is better).
``vert_levels``, ``vert_level_centroid``
    Vertebral levels of the lesion's axial slices and of its centroid slice,
    when a vertebral labelling is given (SCT 7.2 ``vert_level``): see
    :mod:`cohort_sciseg.morphometry.levels`.

Conventions that differ from SCT, on purpose:
- a lesion fully outside the cord is reported (``fully_outside_cord``, volume 0,
  damage ratio 0, its geometry measured on the component itself, bridges NaN)
  instead of crashing;
- an empty lesion mask gives zeros, never NaN, and tables with zero rows;
- soft masks are binarised (``value > threshold``, default 0.5);
- the midsagittal search window is clipped to the image (SCT issue #5300);
- bridge ratios are NaN, not 0 %, when the total bridge is 0 (bridges.py).
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
from cohort_sciseg.morphometry.bridges import (
    Interpolation,
    ap_diameter,
    first_last,
    line_bridges,
    midsagittal_bridges,
    midsagittal_extent,
    midsagittal_from_lesion,
    midsagittal_from_slice,
    nli_rpi_slice,
    sagittal_bridges,
)
from cohort_sciseg.morphometry.centerline import DEFAULT_SMOOTH, CenterlineAngles, centerline_angles
from cohort_sciseg.morphometry.levels import (
    SliceLevels,
    lesion_levels,
    level_name,
    slice_levels_from_discs,
    slice_levels_from_labeled_cord,
)
from cohort_sciseg.records import LESION_SLICES_SCHEMA, LESIONS_SCHEMA, ScanMorphometry

__all__ = ["LesionAnalysis", "measure_lesions", "slice_levels"]

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


def _check_same_shape(name: str, arr: np.ndarray, shape: tuple[int, ...], scan_id: str | None) -> None:
    if arr.shape != shape:
        msg = format_error(
            f"{name} shape {arr.shape} differs from the cord mask shape {shape}",
            scan_id=scan_id,
            expected="all inputs on the same voxel grid",
            fix=f"resample the {name} onto the cord mask's grid, or pass the matching files",
        )
        raise MorphometryError(msg, scan_id=scan_id)


def _check_inputs(
    cord: Any, lesion: Any, affine: Any, image: Any, scan_id: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    c = _as_3d("cord mask", cord, scan_id)
    les = _as_3d("lesion mask", lesion, scan_id)
    img = None if image is None else _as_3d("image", image, scan_id)
    for name, arr in (("lesion mask", les), ("image", img)):
        if arr is not None:
            _check_same_shape(name, arr, c.shape, scan_id)
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


class _Scan:
    """RPI arrays and per-scan quantities shared by all lesions."""

    def __init__(self, cord: np.ndarray, affine: np.ndarray, angles: CenterlineAngles) -> None:
        self.cord = cord
        self.affine = affine
        self.px, self.py, self.pz = voxel_sizes(affine)
        self.cos3d = np.cos(angles.theta_3d)
        self.cos_sag = np.cos(angles.theta_sagittal)
        self.cord_per_z = cord.sum(axis=(0, 1))


def _basic_measures(scan: _Scan, les: _Lesion, image: np.ndarray | None) -> dict[str, Any]:
    """Volume, length, width, diameter, damage ratio, centroid and intensity of one lesion."""
    px, py, pz = scan.px, scan.py, scan.pz
    m = les.measured
    ox, oy, oz = les.offset
    xi, yi, zi = np.nonzero(m)
    z_slices = np.unique(zi + oz)

    length = float(np.sum(pz / scan.cos3d[z_slices]))
    y_first, y_last, y_has = first_last(np.asarray(m.any(axis=0)), axis=0)  # over (y, z) of the box
    zb = np.flatnonzero(y_has)
    width = float(np.max((y_last[zb] - y_first[zb] + 1) * py * scan.cos_sag[zb + oz]))
    area_z = m.sum(axis=(0, 1))[zb] * px * py
    diameter = 2.0 * math.sqrt(float(np.max(area_z * scan.cos3d[zb + oz])) / math.pi)
    ratio = float(np.max(m.sum(axis=(0, 1))[zb] / scan.cord_per_z[zb + oz])) if les.n_inside else 0.0

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
        "_z_slices": z_slices,
        "_z_centroid": float(zi.mean() + oz),
    }
    if image is not None:
        vals = image[xi + ox, yi + oy, zi + oz].astype(np.float64)  # float32 sums drift
        vals = vals[vals != 0]  # SCT drops voxels where the image is 0
        if vals.size:
            row["mean_intensity"] = float(np.mean(vals))
            row["std_intensity"] = float(np.std(vals))
    return row


def _midsagittal_measures(
    scan: _Scan, les: _Lesion, interp: Interpolation | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Midsagittal length/width, interpolated bridges and per-sagittal-slice bridges (bridges.py)."""
    nan = math.nan
    row: dict[str, Any] = {
        "length_midsagittal_mm": nan, "width_midsagittal_mm": nan, "dorsal_bridge_width_mm": nan,
        "ventral_bridge_width_mm": nan, "total_bridge_width_mm": nan,
        "dorsal_bridge_ratio_pct": nan, "ventral_bridge_ratio_pct": nan,
    }
    if interp is None or math.isnan(interp.x_star) or not les.n_inside:
        return row, []
    m = les.measured
    length, width = midsagittal_extent(m, les.offset, interp, scan.py, scan.pz, scan.cos_sag)
    lines = line_bridges(scan.cord, m, les.offset)
    slice_rows = sagittal_bridges(lines, scan.py, scan.cos_sag)
    d_w, v_w, fallback = midsagittal_bridges(lines, scan.cord, interp, scan.py, scan.cos_sag)
    tot = d_w + v_w
    row.update(
        length_midsagittal_mm=length,
        width_midsagittal_mm=width,
        dorsal_bridge_width_mm=d_w,
        ventral_bridge_width_mm=v_w,
        total_bridge_width_mm=tot,
        dorsal_bridge_ratio_pct=100.0 * d_w / tot if tot > 0 else nan,
        ventral_bridge_ratio_pct=100.0 * v_w / tot if tot > 0 else nan,
        bridge_fallback=fallback,
    )
    return row, slice_rows


def _interpolation(
    scan: _Scan, found: list[_Lesion], nli_z: int | None, notes: list[str]
) -> Interpolation | None:
    """The interpolated midsagittal slice: from the NLI slice when given, else the largest lesion."""
    if nli_z is not None:
        x_star = midsagittal_from_slice(scan.cord, nli_z)
        if math.isnan(x_star):
            notes.append(f"no cord at the NLI slice (RPI z = {nli_z}): midsagittal measures are NaN")
        return Interpolation(x_star)
    if not found:
        return None
    largest = found[max(range(len(found)), key=lambda i: (found[i].n_inside, found[i].n_total, -i))]
    z_centre = float(np.nonzero(largest.measured)[2].mean()) + largest.offset[2]
    x_star = midsagittal_from_lesion(scan.cord, z_centre)
    if math.isnan(x_star):
        notes.append("no cord voxels around the largest lesion: midsagittal measures are NaN")
    return Interpolation(x_star)


def slice_levels(
    vert_labels: np.ndarray | None, disc_labels: np.ndarray | None, affine: np.ndarray, *, scan_id: str | None = None
) -> SliceLevels | None:
    """The vertebral level of each RPI axial slice from a labelled cord (preferred) or disc labels, on any grid.

    ``None`` without a labelling. Raises :class:`~cohort_sciseg.errors.MorphometryError`
    for label values that are not integers (see :mod:`cohort_sciseg.morphometry.levels`).
    """
    if vert_labels is not None:
        rpi = reorient(np.asarray(vert_labels), affine, RPI)[0]
        return SliceLevels(slice_levels_from_labeled_cord(rpi, scan_id=scan_id), "vertebrae")
    if disc_labels is not None:
        rpi = reorient(np.asarray(disc_labels), affine, RPI)[0]
        return SliceLevels(slice_levels_from_discs(rpi, scan_id=scan_id), "discs")
    return None


def measure_lesions(
    cord: np.ndarray,
    lesion: np.ndarray,
    affine: np.ndarray,
    *,
    image: np.ndarray | None = None,
    threshold: float = 0.5,
    angle_correction: bool = True,
    smooth: float = DEFAULT_SMOOTH,
    nli_slice: int | None = None,
    vert_labels: np.ndarray | None = None,
    disc_labels: np.ndarray | None = None,
    levels: SliceLevels | None = None,
    scan_id: str | None = None,
) -> LesionAnalysis:
    """Measure every lesion of a scan as SCT's ``sct_analyze_lesion -m LESION -s CORD [-i IMAGE] [-nli-slice N]``.

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
    nli_slice
        Axial slice of the neurological level of injury, an index along the
        image's S-I axis in the input orientation (SCT 7.3 ``-nli-slice``): it
        fixes the interpolated midsagittal slice, and the cord A-P diameter
        there is the scan's ``nli_ap_diameter_mm`` (the bridge proxy of a scan
        without lesion); see :mod:`cohort_sciseg.morphometry.bridges`.
    vert_labels, disc_labels
        Optional vertebral labelling on the same grid: SCT's labelled cord
        (``*_seg_labeled``, voxel value = level) or disc labels (value 3 = C2/C3
        disc); gives each lesion's ``vert_levels`` and ``vert_level_centroid``
        and the summary's ``lesion_vert_levels`` (see
        :mod:`cohort_sciseg.morphometry.levels`). Null columns without them.
    levels
        The same, already turned into per-slice levels (:func:`slice_levels`, e.g.
        by :func:`~cohort_sciseg.morphometry.scan_vertebral_labels`); instead of
        ``vert_labels``/``disc_labels``.
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
        Inputs that are not 3D, differ in shape, an unusable affine, an NLI
        slice outside the image, or vertebral labels that are not integers.
    """
    c_in, l_in, aff, img_in = _check_inputs(cord, lesion, affine, image, scan_id)
    for name, arr in (("vertebral labels", vert_labels), ("disc labels", disc_labels)):
        if arr is not None:
            _check_same_shape(name, _as_3d(name, arr, scan_id), c_in.shape, scan_id)
    nli_z = None if nli_slice is None else nli_rpi_slice(nli_slice, aff, c_in.shape, scan_id=scan_id)
    notes = []
    for name, arr in (("cord mask", c_in), ("lesion mask", l_in)):
        desc = inspect_mask(arr, threshold=threshold).describe()
        if desc:
            notes.append(f"{name}: {desc}")
    c_rpi, rpi_aff = reorient(binarize(c_in, threshold), aff, RPI)
    l_rpi, _ = reorient(binarize(l_in, threshold), aff, RPI)
    img_rpi = None if img_in is None else reorient(img_in, aff, RPI)[0]
    if levels is None:
        levels = slice_levels(vert_labels, disc_labels, aff, scan_id=scan_id)
    elif vert_labels is not None or disc_labels is not None or levels.levels.shape != (c_rpi.shape[2],):
        msg = format_error(
            f"slice levels of shape {levels.levels.shape} given"
            + (" with vertebral or disc labels" if vert_labels is not None or disc_labels is not None else ""),
            expected=f"one level per RPI axial slice ({c_rpi.shape[2]}) and no labels besides",
            fix="pass either the labels or slice_levels(...) of them on this grid",
            scan_id=scan_id,
        )
        raise MorphometryError(msg, scan_id=scan_id)
    levels_kind = None if levels is None else levels.kind
    slice_level = None if levels is None else levels.levels

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
    interp = _interpolation(scan, found, nli_z, notes)

    rows, slice_rows = [], []
    lesion_slices: set[int] = set()
    for lid, les in enumerate(found, start=1):
        row = _basic_measures(scan, les, img_rpi)
        mid, srows = _midsagittal_measures(scan, les, interp)
        row.update(mid)
        z_slices, z_centroid = row.pop("_z_slices"), row.pop("_z_centroid")
        lesion_slices.update(int(z) for z in z_slices)
        row["vert_levels"], row["vert_level_centroid"] = (
            (None, None) if slice_level is None else lesion_levels(slice_level, z_slices, z_centroid)
        )
        rows.append({"scan_id": scan_id, "lesion_id": lid, **row})
        slice_rows += [{"scan_id": scan_id, "lesion_id": lid, **r} for r in srows]
        if row["fully_outside_cord"]:
            notes.append(f"lesion {lid} lies fully outside the cord mask")

    relabel = np.zeros(len(order) + 1, dtype=np.int32)
    for lid, i in enumerate(order, start=1):
        relabel[i + 1] = lid

    nli_diameter = None
    if nli_z is not None and interp is not None and not math.isnan(interp.x_star):
        nli_diameter = ap_diameter(c_rpi, nli_z, interp, scan.py, scan.cos_sag)
        if nli_diameter is None:
            notes.append("no cord on the two interpolation slices at the NLI slice: no A-P diameter")
    lesion_vert_levels = None
    if slice_level is not None:
        numbers = sorted({int(slice_level[z]) for z in lesion_slices if slice_level[z] > 0})
        lesion_vert_levels = tuple(level_name(n) for n in numbers)
        if rows and not numbers:
            notes.append(f"vertebral labels ({levels_kind}) do not cover any lesion slice")

    vox = scan.px * scan.py * scan.pz
    summary = ScanMorphometry(
        scan_id=scan_id,
        n_lesions=len(rows),
        total_volume_mm3=float(sum(r["volume_mm3"] for r in rows)),
        total_outside_cord_volume_mm3=float(sum(r["outside_cord_volume_mm3"] for r in rows)),
        total_length_mm=float(sum(r["length_mm"] for r in rows)),
        max_axial_damage_ratio=float(max((r["max_axial_damage_ratio"] for r in rows), default=0.0)),
        cord_volume_mm3=float(c_rpi.sum()) * vox,
        midsagittal_slice=math.nan if interp is None else interp.x_star,
        threshold=float(threshold),
        angle_correction=angle_correction,
        nli_slice=None if nli_slice is None else int(nli_slice),
        nli_ap_diameter_mm=nli_diameter,
        vert_labels=levels_kind,
        lesion_vert_levels=lesion_vert_levels,
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
