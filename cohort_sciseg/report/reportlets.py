"""Per-scan QC reportlets: small PNG views of the image with cord and lesion contours.

:func:`render_reportlets` writes, for one scan,

``sagittal.png``
    Three sagittal slices through the cord (at the cord's left-right centre of
    mass and :data:`SAGITTAL_STEP_MM` to either side), cropped to the cord's
    superior-inferior extent and anterior-posterior extent plus a margin.
``axial.png``
    Up to :data:`N_AXIAL` axial slices evenly spaced over the cord's
    superior-inferior extent, superior first (reading order), each a
    ``size_mm`` square centred on the cord's centroid in that slice.
``lesion-<id>.png``
    Per lesion, the sagittal slice through its centroid and the axial slice with
    its largest area, side by side, each a square centred on the lesion's
    centroid. ``<id>`` is the ``lesion_id`` of the lesions table of
    :func:`~cohort_sciseg.morphometry.measure_lesions` (the labelling is that
    function's own, so the numbers always agree).

Display convention (the same for every scan, whatever its stored orientation):
the image and masks are reoriented to :data:`DISPLAY_ORIENTATION` (SCT ``"SAR"``:
array axes Superior->inferior, Anterior->posterior, Right->left; exact, no
resampling), so that

- sagittal views have superior up and anterior on the viewer's left; the three
  sagittal panels go from the patient's right (left panel) to left;
- axial views have anterior up and the patient's right on the viewer's left
  (radiological convention).

Oblique images are shown on their voxel grid in the nearest axis-aligned
orientation (as :func:`~cohort_sciseg.io.reorient`). Each 2D view is resampled
to square display pixels (nearest neighbour, image and masks alike), so
anisotropic voxels do not squash the anatomy, and mosaics are at most
:data:`MAX_WIDTH_PX` wide. The grey levels map the 0.5 and 99.5 percentiles of
the image within each panel to black and white. Masks are binarised with
``value > 0.5``; the cord is drawn as a one-pixel contour in :data:`CORD_RGB` and
lesions in :data:`LESION_RGB` (contours, not filled, so the anatomy stays
visible). Output is 8-bit RGB PNG, deterministic for the same inputs, written
atomically. Pure numpy/scipy + Pillow (no matplotlib: a scan takes well under a
second).
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from cohort_sciseg.errors import ReportError, format_error
from cohort_sciseg.io import (
    Volume,
    atomic_path,
    binarize,
    check_same_geometry,
    load_nifti,
    reorient,
    voxel_sizes,
)
from cohort_sciseg.morphometry import LesionAnalysis, measure_lesions

__all__ = [
    "AXIAL_PANEL_PX",
    "CORD_RGB",
    "DISPLAY_ORIENTATION",
    "GAP_RGB",
    "LESION_PANEL_PX",
    "LESION_RGB",
    "MAX_WIDTH_PX",
    "N_AXIAL",
    "SAGITTAL_STEP_MM",
    "Reportlet",
    "render_reportlets",
]

logger = logging.getLogger(__name__)

#: SCT orientation the views are cut from: axis 0 Superior->inferior, 1 Anterior->posterior,
#: 2 Right->left. A sagittal slice ``a[:, :, r]`` then has superior up and anterior left,
#: an axial slice ``a[s]`` has anterior up and the patient's right on the left.
DISPLAY_ORIENTATION = "SAR"
#: Colour of the cord contour (yellow).
CORD_RGB = (255, 255, 0)
#: Colour of the lesion contour (pure red: never a grey level, so it can be detected).
LESION_RGB = (255, 0, 0)
#: Colour of the gaps between panels (dark grey, distinct from the black background).
GAP_RGB = (48, 48, 48)
#: Widest mosaic, in pixels.
MAX_WIDTH_PX = 900
#: Tallest sagittal mosaic, in pixels.
MAX_HEIGHT_PX = 900
#: Sagittal panels are upsampled to at least this height (small fields of view).
MIN_SAGITTAL_HEIGHT_PX = 320
#: Side of each axial panel, in pixels (six per row fit in :data:`MAX_WIDTH_PX`).
AXIAL_PANEL_PX = 144
#: Side of each of the two panels of a lesion reportlet, in pixels.
LESION_PANEL_PX = 256
#: Most axial slices in ``axial.png``.
N_AXIAL = 12
#: Distance between the three sagittal slices, mm (at least one voxel).
SAGITTAL_STEP_MM = 4.0
#: Margin around the cord in the sagittal views: superior-inferior and anterior-posterior, mm.
SAGITTAL_MARGIN_MM = (10.0, 25.0)
#: Margin around a lesion larger than ``size_mm``, mm on each side.
LESION_MARGIN_MM = 5.0

_GAP_PX = 4
_LESION_FILE = re.compile(r"^lesion-(\d+)\.png$")


@dataclass(frozen=True, slots=True)
class Reportlet:
    """One QC image written by :func:`render_reportlets`.

    Attributes
    ----------
    kind
        ``"sagittal"``, ``"axial"`` or ``"lesion"``.
    file
        File name relative to the output folder (``"sagittal.png"``, ``"lesion-1.png"``).
    caption
        Short human text for the report.
    width, height
        Size of the PNG, pixels.
    lesion_id
        ``lesion_id`` of the lesions table for ``kind == "lesion"``, else None.
    """

    kind: str
    file: str
    caption: str
    width: int
    height: int
    lesion_id: int | None = None


@dataclass(frozen=True, slots=True)
class _Axis:
    """Output-pixel centres of one panel axis in (centre-based) voxel coordinates."""

    coords: np.ndarray  # float64, one per output pixel

    @classmethod
    def centred(cls, centre_vox: float, n_px: int, pix_mm: float, voxel_mm: float) -> _Axis:
        """``n_px`` pixels of ``pix_mm`` centred on voxel coordinate ``centre_vox``."""
        offsets = (np.arange(n_px, dtype=np.float64) + 0.5 - n_px / 2.0) * (pix_mm / voxel_mm)
        return cls(centre_vox + offsets)

    def nearest(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Nearest voxel index of each pixel (clipped) and whether it lies inside the image."""
        inside = (self.coords >= -0.5) & (self.coords < n - 0.5)
        idx = np.clip(np.floor(self.coords + 0.5), 0, n - 1).astype(np.intp)
        return idx, inside


class _Scan:
    """Image, cord mask and lesion labels in the display orientation."""

    def __init__(
        self,
        image: np.ndarray,
        cord: np.ndarray,
        labels: np.ndarray,
        spacing: tuple[float, float, float],
    ) -> None:
        self.image = image
        self.cord = cord
        self.labels = labels
        self.lesion = labels > 0
        self.spacing = spacing
        self.shape: tuple[int, int, int] = (
            int(image.shape[0]),
            int(image.shape[1]),
            int(image.shape[2]),
        )

    def panel(self, plane: str, index: int, rows: _Axis, cols: _Axis) -> np.ndarray:
        """RGB panel (h, w, 3) of sagittal slice ``r = index`` or axial slice ``s = index``."""
        if plane == "sagittal":
            img2d, cord2d, les2d = (a[:, :, index] for a in (self.image, self.cord, self.lesion))
        else:
            img2d, cord2d, les2d = (a[index] for a in (self.image, self.cord, self.lesion))
        return _overlay(img2d, cord2d, les2d, rows, cols)


def _sample_image(a: np.ndarray, rows: _Axis, cols: _Axis) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour samples of the 2D slice ``a`` (float32), and their inside mask.

    Nearest, not linear: the reader sees the acquired voxels, and replicated pixels
    make PNGs 2-4x smaller than interpolated ones.
    """
    ri, rin = rows.nearest(a.shape[0])
    ci, cin = cols.nearest(a.shape[1])
    return a[np.ix_(ri, ci)].astype(np.float32), rin[:, None] & cin[None, :]


def _sample_mask(m: np.ndarray, rows: _Axis, cols: _Axis) -> np.ndarray:
    """Nearest-neighbour samples of the boolean 2D slice ``m`` (False outside the image)."""
    ri, rin = rows.nearest(m.shape[0])
    ci, cin = cols.nearest(m.shape[1])
    return m[np.ix_(ri, ci)] & rin[:, None] & cin[None, :]


def _grey(values: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """8-bit grey levels: 0.5 and 99.5 percentiles of the inside pixels -> 0 and 255."""
    out = np.zeros(values.shape, dtype=np.uint8)
    vals = values[inside]
    if not vals.size:
        return out
    lo, hi = (float(v) for v in np.percentile(vals, [0.5, 99.5]))
    if hi > lo:
        scaled = np.clip((values - lo) * (255.0 / (hi - lo)) + 0.5, 0.0, 255.0)
    else:  # constant (or almost binary) image: no division by zero
        scaled = np.where(values > lo, 255.0, 0.0)
    out[inside] = scaled[inside].astype(np.uint8)
    return out


def _contour(mask: np.ndarray) -> np.ndarray:
    """One-pixel inner boundary of a 2D mask; the panel edge does not count as a boundary."""
    if not mask.any():
        return mask
    return mask & ~ndimage.binary_erosion(mask, border_value=1)


def _overlay(
    img2d: np.ndarray, cord2d: np.ndarray, les2d: np.ndarray, rows: _Axis, cols: _Axis
) -> np.ndarray:
    values, inside = _sample_image(img2d, rows, cols)
    grey = _grey(values, inside)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    rgb[_contour(_sample_mask(cord2d, rows, cols))] = CORD_RGB
    rgb[_contour(_sample_mask(les2d, rows, cols))] = LESION_RGB  # lesions on top of the cord
    return rgb


def _mosaic(panels: list[np.ndarray], n_cols: int) -> np.ndarray:
    """Panels of equal size on a grid, row by row, separated by :data:`GAP_RGB` gaps."""
    h, w = panels[0].shape[:2]
    n_rows = math.ceil(len(panels) / n_cols)
    canvas = np.empty(
        (n_rows * h + (n_rows - 1) * _GAP_PX, n_cols * w + (n_cols - 1) * _GAP_PX, 3), np.uint8
    )
    canvas[...] = GAP_RGB
    for k, p in enumerate(panels):
        r, c = divmod(k, n_cols)
        y, x = r * (h + _GAP_PX), c * (w + _GAP_PX)
        canvas[y : y + h, x : x + w] = p
    return canvas


def _write_png(path: Path, rgb: np.ndarray) -> tuple[int, int]:
    """Write an RGB array as PNG atomically; return (width, height)."""
    img = Image.fromarray(np.ascontiguousarray(rgb))
    with atomic_path(path) as tmp:
        # Level 6: 2-7x faster than optimize=True for 1-2 % more bytes on these images.
        img.save(tmp, format="PNG", compress_level=6)
    return img.width, img.height


def _round(x: float) -> int:
    """Round half up (not to even), so indices do not depend on numpy/Python rounding."""
    return math.floor(x + 0.5)


def _extent(mask_any: np.ndarray | np.bool_) -> tuple[int, int] | None:
    """First and last True index of a 1D mask (None when empty)."""
    idx = np.flatnonzero(np.asarray(mask_any))
    return (int(idx[0]), int(idx[-1])) if idx.size else None


def _sagittal(scan: _Scan) -> tuple[np.ndarray, str]:
    ns, na, nr = scan.shape
    ps, pa, pr = scan.spacing
    cord = scan.cord
    s_ext = _extent(cord.any(axis=(1, 2)))
    a_ext = _extent(cord.any(axis=(0, 2)))
    has_cord = s_ext is not None and a_ext is not None
    if s_ext is not None and a_ext is not None:
        per_r = cord.sum(axis=(0, 1), dtype=np.int64)
        r_centre = float(np.arange(nr) @ per_r) / float(per_r.sum())
        m_s, m_a = SAGITTAL_MARGIN_MM
        s_lo, s_hi = max(s_ext[0] - m_s / ps, -0.5), min(s_ext[1] + m_s / ps, ns - 0.5)
        a_lo, a_hi = max(a_ext[0] - m_a / pa, -0.5), min(a_ext[1] + m_a / pa, na - 0.5)
    else:
        r_centre = (nr - 1) / 2.0
        s_lo, s_hi, a_lo, a_hi = -0.5, ns - 0.5, -0.5, na - 0.5
    step = max(1, _round(SAGITTAL_STEP_MM / pr))
    rc = _round(r_centre)
    r_slices = sorted({min(max(rc + k * step, 0), nr - 1) for k in (-1, 0, 1)})

    h_mm, w_mm = (s_hi - s_lo) * ps, (a_hi - a_lo) * pa
    n = len(r_slices)
    # An integer upsampling of the finer in-plane voxel (crisp, compresses well), enough to
    # reach the minimum height, then capped by the maximum mosaic size.
    pix = min(ps, pa)
    pix /= max(1, math.ceil(MIN_SAGITTAL_HEIGHT_PX * pix / h_mm))
    pix = max(pix, h_mm / MAX_HEIGHT_PX, n * w_mm / (MAX_WIDTH_PX - (n - 1) * _GAP_PX))
    rows = _Axis.centred((s_lo + s_hi) / 2.0, max(1, _round(h_mm / pix)), pix, ps)
    cols = _Axis.centred((a_lo + a_hi) / 2.0, max(1, _round(w_mm / pix)), pix, pa)
    panels = [scan.panel("sagittal", r, rows, cols) for r in r_slices]
    caption = f"Sagittal slices through the cord ({n} of {nr})"
    if not has_cord:
        caption = f"Sagittal slices through the image centre ({n} of {nr}); no cord found"
    return _mosaic(panels, n), caption


def _axial(scan: _Scan, size_mm: float) -> tuple[np.ndarray, str]:
    ns, na, nr = scan.shape
    _, pa, pr = scan.spacing
    cord = scan.cord
    per_s = cord.sum(axis=(1, 2), dtype=np.int64)
    with_cord = np.flatnonzero(per_s)
    if with_cord.size:
        first, last = int(with_cord[0]), int(with_cord[-1])
        sum_a = np.tensordot(cord.sum(axis=2, dtype=np.int64), np.arange(na), axes=(1, 0))
        sum_r = np.tensordot(cord.sum(axis=1, dtype=np.int64), np.arange(nr), axes=(1, 0))
        cent_a = sum_a[with_cord] / per_s[with_cord]
        cent_r = sum_r[with_cord] / per_s[with_cord]
    else:
        first, last = 0, ns - 1
    n = min(N_AXIAL, last - first + 1)
    s_slices = sorted({_round(v) for v in np.linspace(first, last, n)})
    pix = size_mm / AXIAL_PANEL_PX
    panels = []
    for s in s_slices:
        if with_cord.size:
            # Slices without cord (gaps in the mask) are centred between their neighbours.
            a_c = float(np.interp(s, with_cord, cent_a))
            r_c = float(np.interp(s, with_cord, cent_r))
        else:
            a_c, r_c = (na - 1) / 2.0, (nr - 1) / 2.0
        rows = _Axis.centred(a_c, AXIAL_PANEL_PX, pix, pa)
        cols = _Axis.centred(r_c, AXIAL_PANEL_PX, pix, pr)
        panels.append(scan.panel("axial", s, rows, cols))
    n_cols = min(len(panels), (MAX_WIDTH_PX + _GAP_PX) // (AXIAL_PANEL_PX + _GAP_PX))
    where = "the cord" if with_cord.size else "the image centre"
    caption = f"Axial slices through {where}, superior to inferior ({len(panels)} of {ns})"
    if not with_cord.size:
        caption += "; no cord found"
    return _mosaic(panels, n_cols), caption


def _lesion(scan: _Scan, box: tuple[slice, ...], lesion_id: int, size_mm: float) -> np.ndarray:
    ps, pa, pr = scan.spacing
    comp = scan.labels[box] == lesion_id
    idx = np.nonzero(comp)
    s_c, a_c, r_c = (float(i.mean()) + b.start for i, b in zip(idx, box, strict=True))
    ext_s, ext_a, ext_r = ((b.stop - b.start) * p for b, p in zip(box, (ps, pa, pr), strict=True))
    # The axial slice with the largest lesion area (the most superior one on ties).
    s_max = int(np.argmax(comp.sum(axis=(1, 2)))) + box[0].start
    r_sag = _round(r_c)

    side = max(size_mm, max(ext_s, ext_a) + 2 * LESION_MARGIN_MM)
    pix = side / LESION_PANEL_PX
    sag = scan.panel(
        "sagittal",
        r_sag,
        _Axis.centred(s_c, LESION_PANEL_PX, pix, ps),
        _Axis.centred(a_c, LESION_PANEL_PX, pix, pa),
    )
    side = max(size_mm, max(ext_a, ext_r) + 2 * LESION_MARGIN_MM)
    pix = side / LESION_PANEL_PX
    ax = scan.panel(
        "axial",
        s_max,
        _Axis.centred(a_c, LESION_PANEL_PX, pix, pa),
        _Axis.centred(r_c, LESION_PANEL_PX, pix, pr),
    )
    return _mosaic([sag, ax], 2)


def _lesion_caption(row: dict[str, Any]) -> str:
    vol = float(row["volume_mm3"])
    outside = float(row["outside_cord_volume_mm3"])
    text = f"Lesion {row['lesion_id']}: {vol:.1f} mm3, slices {row['z_min_slice']}-{row['z_max_slice']}"
    if outside > 0:
        text += f" (+{outside:.1f} mm3 outside the cord)"
    return text


def _check_options(max_lesions: int, size_mm: float) -> None:
    if (
        isinstance(max_lesions, bool)
        or not isinstance(max_lesions, int | np.integer)
        or max_lesions < 0
    ):
        msg = format_error(
            f"max_lesions={max_lesions!r} is not valid",
            expected="an integer >= 0",
            fix="pass e.g. max_lesions=12 (0 writes no lesion reportlet)",
        )
        raise ReportError(msg)
    if not (isinstance(size_mm, int | float) and math.isfinite(size_mm) and size_mm > 0):
        msg = format_error(
            f"size_mm={size_mm!r} is not valid",
            expected="a finite number of millimetres > 0",
            fix="pass e.g. size_mm=60.0 (the side of the axial and lesion views)",
        )
        raise ReportError(msg)


def _remove_stale_lesion_files(out: Path, keep: set[str]) -> None:
    """Delete ``lesion-<n>.png`` left by an earlier run of the same scan with more lesions."""
    if not out.is_dir():
        return
    for p in out.iterdir():
        if _LESION_FILE.match(p.name) and p.name not in keep:
            logger.debug("removing stale reportlet %s", p)
            p.unlink(missing_ok=True)


def _masks_of(
    image: Volume,
    cord_path: str | os.PathLike[str] | None,
    lesion_path: str | os.PathLike[str] | None,
    masks: tuple[np.ndarray, np.ndarray] | None,
    scan_id: str | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The binarised cord and lesion masks: given in memory (on the image grid), else read and checked."""
    if masks is not None and all(tuple(m.shape) == tuple(image.shape) for m in masks):
        return binarize(masks[0]), binarize(masks[1])
    cord_raw = np.zeros(image.shape, dtype=bool)
    if cord_path is not None:
        cord_vol = load_nifti(cord_path, scan_id=scan_id)
        check_same_geometry(image, cord_vol, what="cord mask", scan_id=scan_id)
        cord_raw = binarize(cord_vol.data)
    lesion_raw = None
    if lesion_path is not None:
        lesion_vol = load_nifti(lesion_path, scan_id=scan_id)
        check_same_geometry(image, lesion_vol, what="lesion mask", scan_id=scan_id)
        lesion_raw = binarize(lesion_vol.data)
    return cord_raw, lesion_raw


def render_reportlets(
    image_path: str | os.PathLike[str],
    cord_path: str | os.PathLike[str] | None,
    lesion_path: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    *,
    max_lesions: int = 12,
    size_mm: float = 60.0,
    scan_id: str | None = None,
    masks: tuple[np.ndarray, np.ndarray] | None = None,
    analysis: LesionAnalysis | None = None,
    image: Volume | None = None,
) -> list[Reportlet]:
    """Write the QC images of one scan: sagittal and axial mosaics and one image per lesion.

    Parameters
    ----------
    image_path
        The T2w image (``.nii``/``.nii.gz``; 3D, or 4D with one volume; any
        stored orientation, anisotropic or oblique).
    cord_path
        Cord mask on the image grid (foreground ``value > 0.5``), or None. An
        empty (or absent) cord mask centres the views on the image and says
        "no cord found" in the captions.
    lesion_path
        Lesion mask on the image grid (foreground ``value > 0.5``), or None for
        no lesion contours and no lesion reportlets.
    out_dir
        Folder to write ``sagittal.png``, ``axial.png`` and ``lesion-<id>.png``
        into (created if needed). ``lesion-<n>.png`` files there that this call
        does not write (left by an earlier run) are deleted.
    max_lesions
        Most lesion reportlets; when there are more lesions, those with the
        largest volume (inside plus outside the cord, ties by ``lesion_id``)
        are drawn.
    size_mm
        Side of the square field of view of the axial and lesion panels, mm (a
        lesion larger than that gets a view of its size plus
        :data:`LESION_MARGIN_MM` on each side).
    scan_id
        Named in error messages.
    masks, analysis
        What ``run`` already holds in memory: the cord and lesion masks on the
        image grid (then the mask files are not read) and their
        :func:`~cohort_sciseg.morphometry.measure_lesions` result (then nothing is
        measured again: the reportlets only draw).
    image
        The image at ``image_path`` already in memory (then it is not read again).

    Returns
    -------
    list of Reportlet
        ``sagittal``, ``axial``, then the lesions by increasing ``lesion_id``
        (the ids of :func:`~cohort_sciseg.morphometry.measure_lesions`:
        superior lesion first). Lesion captions give the volume inside the cord
        (``volume_mm3`` of the lesions table) and the axial slice range in RPI
        indices (``z_min_slice``-``z_max_slice``, inferior = 0).

    Raises
    ------
    NiftiError
        A file cannot be read safely (missing, corrupt, not 3D, ...).
    GeometryError
        The cord or lesion mask is not on the image's voxel grid; the message
        names the mask file and every difference.
    ReportError
        ``max_lesions`` or ``size_mm`` is not valid.

    Notes
    -----
    Display convention and colours: see the module docstring. The same scan
    stored in any orientation gives pixel-identical images.
    """
    t0 = time.perf_counter()
    _check_options(max_lesions, size_mm)
    if image is None:
        image = load_nifti(image_path, scan_id=scan_id)
    cord_raw, lesion_raw = _masks_of(image, cord_path, lesion_path, masks, scan_id)

    rows: list[dict[str, Any]] = []
    labels_raw = np.zeros(image.shape, dtype=np.int32)
    if analysis is not None and lesion_raw is not None and lesion_raw.any():
        rows = analysis.lesions.to_pylist()  # the run's own numbering: drawn, not measured again
        labels_raw = analysis.labels
    elif lesion_raw is not None and lesion_raw.any():
        # The lesion numbering of the lesions table, from the same function (no angle
        # correction: it changes measures, never the labels or their order).
        analysis = measure_lesions(
            cord_raw, lesion_raw, image.affine, angle_correction=False, scan_id=scan_id
        )
        rows = analysis.lesions.to_pylist()
        labels_raw = analysis.labels

    img, disp_affine = reorient(image.data, image.affine, DISPLAY_ORIENTATION)
    cord, _ = reorient(cord_raw, image.affine, DISPLAY_ORIENTATION)
    labels, _ = reorient(labels_raw, image.affine, DISPLAY_ORIENTATION)
    scan = _Scan(img, cord, labels, voxel_sizes(disp_affine))

    out = Path(out_dir)
    written: list[Reportlet] = []
    for kind, (rgb, caption) in (
        ("sagittal", _sagittal(scan)),
        ("axial", _axial(scan, float(size_mm))),
    ):
        w, h = _write_png(out / f"{kind}.png", rgb)
        written.append(Reportlet(kind, f"{kind}.png", caption, w, h))

    chosen = sorted(
        rows,
        key=lambda r: (
            -(float(r["volume_mm3"]) + float(r["outside_cord_volume_mm3"])),
            r["lesion_id"],
        ),
    )[: int(max_lesions)]
    chosen.sort(key=lambda r: int(r["lesion_id"]))
    boxes = ndimage.find_objects(labels, max_label=len(rows)) if chosen else []
    for row in chosen:
        lid = int(row["lesion_id"])
        box = boxes[lid - 1]
        if box is None:  # cannot happen: every table row has voxels in the label map
            continue
        name = f"lesion-{lid}.png"
        w, h = _write_png(out / name, _lesion(scan, box, lid, float(size_mm)))
        written.append(Reportlet("lesion", name, _lesion_caption(row), w, h, lesion_id=lid))
    _remove_stale_lesion_files(out, {r.file for r in written})
    logger.debug(
        "wrote %d reportlets of %s to %s in %.3f s",
        len(written),
        image_path,
        out,
        time.perf_counter() - t0,
    )
    return written
