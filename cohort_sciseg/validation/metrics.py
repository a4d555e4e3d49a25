"""Segmentation metrics of a prediction against a manual reference, ANIMA-compatible and corrected.

The SCIseg paper validated its masks with ANIMA's ``animaSegPerfAnalyzer``
(cord: ``-d -s -X``; lesions: ``-d -s -l -X``). :func:`compute_metrics` returns
both

* ``anima``: ANIMA's measure names and values, quirks included, computed from
  ANIMA's own reading of the input arrays (values truncated to unsigned short,
  labels renumbered, one of four paths: see :mod:`cohort_sciseg.validation.anima`;
  distances: :mod:`cohort_sciseg.validation.distances`; lesion detection:
  :mod:`cohort_sciseg.validation.detection`), so published numbers can be
  reproduced; and
* ``corrected``: clearly named correct metrics (pooled ASSD, HD95, NSD,
  one-to-one and MetricsReloaded-style lesion detection) of the masks
  ``value > threshold`` (0.5 by default).

The path ANIMA took (``binary``, ``multilabel``, ``empty_reference``,
``empty_prediction``), the label counts and ANIMA's binarisation warning are in
:attr:`MetricsResult.anima_input`.

Sources read (Inria-Empenn/Anima-Public,
``Anima/segmentation/validation_tools/segmentation_performance_analyzer/``):
animaSegmentationMeasuresImageFilter.hxx (overlap measures),
animaSegPerfCAnalyzer.cxx (labels, distances, detection), animaSegPerfApp.cxx
(``play``: which path, which measures are written, RVE x 100, default
thresholds), animaSegPerfResults.cxx (measure names). REFERENCE.md §3.

Spacing convention: with ``units="mm"`` distances are in mm and ANIMA's
minimum lesion size uses the real voxel volume; with ``units="voxel"`` the grid
is taken as 1 x 1 x 1, as model_seg_sci effectively did by saving its masks
with an identity affine before calling ANIMA (distances in voxels, n_min = 4
voxels). Every result records its convention.

Speed: counts are taken on the whole grid; contours, components and distances on
the bounding box of the union of both masks plus one voxel (what the contour
rule needs), clipped at the image border so that ANIMA's "border is not
background" rule is unchanged. When ANIMA's reading gives the same masks as the
threshold (0/1 masks, the usual case) both families share one set of distance
computations. About 32 ms for a 384 x 216 x 52 cord pair
(benchmarks/bench_metrics.py).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from cohort_sciseg.errors import GeometryError, ValidationError, format_error
from cohort_sciseg.io import binarize, check_same_geometry, load_nifti
from cohort_sciseg.validation.anima import (
    AnimaInput,
    AnimaLabels,
    AnimaPair,
    anima_label_contour_mean_distance,
    anima_label_surface_distance,
    anima_overlap_measures,
    check_number_of_labels,
    confusion_matrix,
    read_anima_labels,
)
from cohort_sciseg.validation.detection import (
    anima_lesion_detection,
    anima_min_lesion_voxels,
    label_lesions,
    match_lesions,
)
from cohort_sciseg.validation.distances import (
    DistanceMaps,
    anima_contour_mean_distance,
    anima_hausdorff,
    anima_surface_distance,
    assd,
    distance_maps,
    hd_percentile,
    normalized_surface_distance,
    surface_distances,
)

__all__ = [
    "ANIMA_DETECTION_KEYS",
    "ANIMA_EMPTY_REFERENCE_KEYS",
    "ANIMA_SEGMENTATION_KEYS",
    "ANIMA_SURFACE_KEYS",
    "MetricsResult",
    "compute_metrics",
    "compute_metrics_files",
    "dice",
]

#: ANIMA ``-s`` measures, in ANIMA's output order.
ANIMA_SEGMENTATION_KEYS = (
    "Jaccard",
    "Dice",
    "Sensitivity",
    "Specificity",
    "PPV",
    "NPV",
    "RelativeVolumeError",
)
#: ANIMA ``-d`` measures.
ANIMA_SURFACE_KEYS = ("HausdorffDistance", "ContourMeanDistance", "SurfaceDistance")
#: ANIMA ``-l`` measures.
ANIMA_DETECTION_KEYS = ("PPVL", "SensL", "F1_score")
#: What ANIMA writes when the reference is empty.
ANIMA_EMPTY_REFERENCE_KEYS = ("NbTestedLesions", "VolTestedLesions")

Units = Literal["mm", "voxel"]
Value = float | int | None
_UNITS = ("mm", "voxel")
#: Margin (voxels) kept around the union of both masks when cropping; 1 keeps
#: the background face neighbours that the contour rule needs.
_CROP_MARGIN = 1


@dataclass(frozen=True, slots=True)
class MetricsResult:
    """Metrics of one prediction against one reference.

    Attributes
    ----------
    anima
        ANIMA's measure names -> values, in ANIMA's order. Keys are absent where
        ANIMA writes none; NaN is stored as None. Overlap measures are fractions
        (higher is better, except ``RelativeVolumeError``: signed %, 0 is best);
        distances are in ``units`` (lower is better).
    corrected
        Correct metrics of the masks ``value > threshold``: ``assd``, ``hd95``,
        ``nsd_<tol>mm`` and, with lesion detection, ``lesion_tp_1to1``,
        ``lesion_f1_1to1``, ``lesion_sensitivity_mr``, ``lesion_ppv_mr``,
        ``lesion_f1_mr``, ``n_ref_lesions``, ``n_pred_lesions``.
        The ``_mm`` names are kept with ``units="voxel"``, where the values are
        in voxels: read ``units``.
    units
        ``"mm"`` or ``"voxel"``: the spacing convention of every distance.
    voxel_size_mm
        The real grid spacing of the inputs, mm.
    anima_input
        ANIMA's path for this pair (``binary``, ``multilabel``,
        ``empty_reference``, ``empty_prediction``), the label counts it read
        and its warning when a side was binarised.
    """

    anima: dict[str, Value]
    corrected: dict[str, Value]
    units: str
    voxel_size_mm: tuple[float, float, float]
    anima_input: AnimaInput

    def to_json(self) -> dict[str, Any]:
        """ANIMA's measures at the top level, then ``corrected``, ``units`` and ``anima_input``."""
        out: dict[str, Any] = dict(self.anima)
        out["corrected"] = dict(self.corrected)
        out["units"] = self.units
        out["anima_input"] = self.anima_input.to_json()
        return out

    def to_rows(self, scan_id: str, structure: str) -> list[dict[str, Any]]:
        """Long-format rows: scan_id, structure, metric, value (float or None), source, units."""
        rows = []
        for source, table in (("anima", self.anima), ("corrected", self.corrected)):
            for metric, value in table.items():
                rows.append(
                    {
                        "scan_id": scan_id,
                        "structure": structure,
                        "metric": metric,
                        "value": None if value is None else float(value),
                        "source": source,
                        "units": self.units,
                    }
                )
        return rows


def _clean(value: float | int) -> Value:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _check_array(data: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(data)
    if arr.ndim != 3:
        msg = format_error(
            f"{what} has {arr.ndim} dimensions (shape {arr.shape})",
            expected="a 3D array",
            fix="pass one 3D volume (squeeze singleton axes, split 4D series)",
        )
        raise ValidationError(msg)
    if arr.dtype.kind not in "biuf":
        msg = format_error(
            f"{what} has dtype {arr.dtype.name!r}",
            expected="a boolean, integer or floating-point mask",
            fix="convert the mask to uint8 or float32",
        )
        raise ValidationError(msg)
    return arr


def _check_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p_arr, r_arr = _check_array(pred, "prediction"), _check_array(ref, "reference")
    if p_arr.shape != r_arr.shape:
        msg = format_error(
            f"prediction shape {p_arr.shape} differs from reference shape {r_arr.shape}",
            expected="both masks on the same voxel grid",
            fix="resample the prediction onto the reference grid (nearest neighbour)",
        )
        raise GeometryError(msg)
    return p_arr, r_arr


def _spacing(voxel_size_mm: Sequence[float]) -> tuple[float, float, float]:
    try:
        vs = tuple(float(v) for v in voxel_size_mm)
    except (TypeError, ValueError):
        vs = ()
    if len(vs) != 3 or not all(math.isfinite(v) and v > 0 for v in vs):
        msg = format_error(
            f"voxel_size_mm is {voxel_size_mm!r}",
            expected="three finite positive spacings in mm",
            fix="pass the spacing of the grid, e.g. `Volume.voxel_size_mm`",
        )
        raise ValidationError(msg)
    return vs[0], vs[1], vs[2]


def _check_options(units: str, nsd_tolerance: float) -> None:
    if units not in _UNITS:
        msg = format_error(
            f"units is {units!r}",
            expected=f"one of {_UNITS}",
            fix="pass units='mm' or units='voxel'",
        )
        raise ValidationError(msg)
    if not (math.isfinite(nsd_tolerance) and nsd_tolerance > 0):
        msg = format_error(
            f"nsd_tolerance is {nsd_tolerance!r}",
            expected="a finite positive distance",
            fix="pass e.g. 1.0",
        )
        raise ValidationError(msg)


def _crop_box(union: np.ndarray) -> tuple[slice, ...]:
    box = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(union.any(axis=others))
        lo = max(int(idx[0]) - _CROP_MARGIN, 0)
        hi = min(int(idx[-1]) + 1 + _CROP_MARGIN, union.shape[axis])
        box.append(slice(lo, hi))
    return tuple(box)


@dataclass(frozen=True, slots=True, eq=False)
class _Pair:
    """Two boolean masks (whole and cropped to their union plus margin), counts, distance maps."""

    s_full: np.ndarray
    t_full: np.ndarray
    s: np.ndarray
    t: np.ndarray
    n_s: int
    n_t: int
    inter: int
    size: int
    box: tuple[slice, ...]
    maps: DistanceMaps | None

    @property
    def confusion(self) -> np.ndarray:
        """``[[TN, FN], [FP, TP]]``: rows prediction 0/1, columns reference 0/1."""
        fp, fn = self.n_s - self.inter, self.n_t - self.inter
        tn = self.size - (self.n_s + self.n_t - self.inter)
        return np.array([[tn, fn], [fp, self.inter]], dtype=np.int64)


def _make_pair(s: np.ndarray, t: np.ndarray, spacing: tuple[float, float, float]) -> _Pair:
    n_s, n_t, size = int(np.count_nonzero(s)), int(np.count_nonzero(t)), int(s.size)
    box: tuple[slice, ...] = tuple(slice(0, n) for n in s.shape)
    if n_s + n_t:
        box = _crop_box(s | t)
    sc, tc = s[box], t[box]
    maps = None
    if n_s and n_t:
        try:
            maps = distance_maps(sc, tc, spacing)
        except ValueError:  # a mask fills the image and has no contour
            maps = None
    inter = int(np.count_nonzero(sc & tc))
    return _Pair(s, t, sc, tc, n_s, n_t, inter, size, box, maps)


def _same_as_threshold(image: AnimaLabels, mask: np.ndarray, n_mask: int, threshold: float) -> bool:
    """Whether ANIMA's foreground (non-zero labels) is the mask ``value > threshold``."""
    if image.labels is mask:  # boolean input: both are the input array itself
        return True
    if int(image.counts[1:].sum()) != n_mask:
        return False
    if 0 <= threshold < 1:
        # ANIMA's foreground has truncated values >= 1, so it lies inside ``value > threshold``:
        # equal counts mean equal masks.
        return True
    return bool(np.array_equal(image.foreground, mask))


def _anima_pair(
    reading: AnimaPair, pair: _Pair, threshold: float, spacing: tuple[float, float, float]
) -> _Pair:
    """The masks ANIMA compares: ``pair`` itself when they equal the thresholded ones."""
    if _same_as_threshold(reading.pred, pair.s_full, pair.n_s, threshold) and _same_as_threshold(
        reading.ref, pair.t_full, pair.n_t, threshold
    ):
        return pair  # the usual 0/1 masks: one set of distance computations
    return _make_pair(reading.pred.foreground, reading.ref.foreground, spacing)


def _corrected_metrics(
    pair: _Pair, nsd_tolerance: float, lesion_detection: bool
) -> dict[str, float | int]:
    nsd_key = f"nsd_{nsd_tolerance:g}mm"
    out: dict[str, float | int] = {}
    if pair.maps is not None:
        sd = surface_distances(pair.maps)
        out["assd"] = assd(sd)
        out["hd95"] = hd_percentile(sd, 95.0)
        out[nsd_key] = normalized_surface_distance(sd, nsd_tolerance)
    else:
        out["assd"] = out["hd95"] = out[nsd_key] = math.nan
    if lesion_detection:
        m = match_lesions(pair.s, pair.t)
        out["lesion_tp_1to1"] = m.tp_1to1
        out["lesion_f1_1to1"] = m.f1_1to1
        out["lesion_sensitivity_mr"] = m.sensitivity
        out["lesion_ppv_mr"] = m.ppv
        out["lesion_f1_mr"] = m.f1
        out["n_ref_lesions"] = m.n_ref
        out["n_pred_lesions"] = m.n_pred
    return out


def _anima_confusion(reading: AnimaPair, pair: _Pair) -> np.ndarray:
    """Label confusion matrix of ANIMA's images on the whole grid."""
    path = reading.info.path
    if path == "empty_prediction":  # every voxel is label 0 in the prediction
        return reading.ref.counts[np.newaxis, :]
    if path == "binary":
        return pair.confusion
    n = reading.pred.n_labels
    c = confusion_matrix(reading.pred.labels[pair.box], reading.ref.labels[pair.box], n, n)
    c[0, 0] += pair.size - pair.s.size  # outside the crop box both images are background
    return c


def _anima_distances(
    reading: AnimaPair, pair: _Pair, spacing: tuple[float, float, float]
) -> dict[str, float]:
    path = reading.info.path
    if path == "empty_prediction" or pair.maps is None:
        # m_uiNbLabels = 1: computeHausdorffDist, computeMeanDist and
        # computeAverageSurfaceDistance return NaN.
        return dict.fromkeys(ANIMA_SURFACE_KEYS, math.nan)
    if path == "binary":
        return {
            "HausdorffDistance": anima_hausdorff(pair.maps),
            "ContourMeanDistance": anima_contour_mean_distance(pair.maps),
            "SurfaceDistance": anima_surface_distance(pair.maps),
        }
    # Multi-label: Hausdorff distance of the non-zero voxels (the binary maps of
    # the union), the two contour distances on ITK's label contours.
    p_lab, r_lab = reading.pred.labels[pair.box], reading.ref.labels[pair.box]
    return {
        "HausdorffDistance": anima_hausdorff(pair.maps),
        "ContourMeanDistance": anima_label_contour_mean_distance(p_lab, r_lab, spacing),
        "SurfaceDistance": anima_label_surface_distance(
            p_lab, r_lab, reading.pred.n_labels, spacing
        ),
    }


def _anima_metrics(
    reading: AnimaPair,
    thresholded: _Pair,
    threshold: float,
    spacing: tuple[float, float, float],
    lesion_detection: bool,
) -> dict[str, float | int]:
    """ANIMA's output for its path (animaSegPerfApp.cxx ``play`` / ``processAnalyze``)."""
    pair = _anima_pair(reading, thresholded, threshold, spacing)
    if reading.info.path == "empty_reference":
        # computeEmptyGroundTruthMeasures: retained 6-connected lesions of the
        # prediction (>= n_min voxels) and their total volume in units**3.
        pred_lab, n_pred = label_lesions(pair.s, anima_min_lesion_voxels(spacing))
        volume = float(np.count_nonzero(pred_lab)) * float(np.prod(spacing))
        return {"NbTestedLesions": n_pred, "VolTestedLesions": volume}
    out: dict[str, float | int] = dict(anima_overlap_measures(_anima_confusion(reading, pair)))
    out.update(_anima_distances(reading, pair, spacing))
    if lesion_detection:
        det = anima_lesion_detection(pair.s, pair.t, spacing)
        out["PPVL"] = det.ppvl
        out["SensL"] = det.sensl
        out["F1_score"] = det.f1
    return out


def compute_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    voxel_size_mm: Sequence[float],
    *,
    lesion_detection: bool = False,
    units: Units = "mm",
    threshold: float = 0.5,
    nsd_tolerance: float = 1.0,
    unreadable: Literal["raise", "skip"] = "raise",
) -> MetricsResult:
    """Compare a predicted mask with a reference mask on the same voxel grid.

    Parameters
    ----------
    pred, ref
        3D arrays on the same grid (prediction S, reference T): boolean, integer
        or floating point (0/1 masks, soft masks, label maps).
    voxel_size_mm
        Grid spacing along the three array axes, mm.
    lesion_detection
        Add ANIMA's ``-l`` measures and the corrected lesion-wise metrics.
    units
        ``"mm"``: distances in mm, ANIMA's lesion minimum from the real voxel
        volume. ``"voxel"``: a 1 x 1 x 1 grid (model_seg_sci's identity affine).
    threshold
        Foreground of the corrected metrics is ``value > threshold``. The ANIMA
        values ignore it: they follow ANIMA's reading (below).
    nsd_tolerance
        Tolerance of the normalized surface distance, in ``units`` (default 1).
    unreadable
        Values ANIMA cannot read as unsigned short (NaN, infinite, <= -1, >= 65536,
        negative integers): ``"raise"`` (default, what a drop-in must do) or
        ``"skip"``: no ANIMA value, ``anima_input.path == "unreadable"`` with the
        reason, the corrected metrics still computed (the cohort validation).

    Returns
    -------
    MetricsResult
        ``anima`` follows ANIMA's input rules (REFERENCE.md §3,
        :mod:`cohort_sciseg.validation.anima`): values truncated to unsigned
        short (a soft prediction counts where ``value >= 1``), each image's
        sorted distinct values renumbered 0..n-1 (``formatLabels``), then
        ``checkNumberOfLabels``'s path, recorded in ``anima_input``:

        * ``binary``: Jaccard = |S and T| / |S or T|; Dice = 2 J / (1 + J); Sensitivity,
          Specificity, PPV, NPV; RelativeVolumeError = 100 (|S|-|T|)/|T| (signed %);
          distances: :mod:`cohort_sciseg.validation.distances`;
        * ``multilabel`` (the same n > 2 labels on both sides): pooled overlap
          (:func:`~cohort_sciseg.validation.anima.anima_overlap_measures`),
          Hausdorff distance of the non-zero voxels, label-contour distances;
        * ``empty_prediction``: overlap measures, distances NaN;
        * ``empty_reference``: only ``NbTestedLesions`` and ``VolTestedLesions``.

        Lesion scores: :mod:`cohort_sciseg.validation.detection`. ``corrected``: from
        ``value > threshold``. Reference: Commowick et al., Sci Rep 8, 13650 (2018).

    Raises
    ------
    GeometryError
        The two arrays differ in shape.
    ValidationError
        Not 3D, unsupported dtype, values ANIMA cannot read as unsigned short
        (NaN, infinite, <= -1, >= 65536; negative integers), bad spacing, units
        or tolerance.
    """
    _check_options(units, nsd_tolerance)
    vs = _spacing(voxel_size_mm)
    p_arr, r_arr = _check_pair(pred, ref)
    spacing = vs if units == "mm" else (1.0, 1.0, 1.0)
    if unreadable not in ("raise", "skip"):
        msg = format_error(
            f"unreadable is {unreadable!r}", expected="'raise' or 'skip'", fix="pass unreadable='skip'"
        )
        raise ValidationError(msg)
    reading: AnimaPair | None = None
    try:
        reading = check_number_of_labels(
            read_anima_labels(p_arr, "prediction"), read_anima_labels(r_arr, "reference")
        )
        info = reading.info
    except ValidationError as exc:
        if unreadable == "raise":
            raise
        info = AnimaInput("unreadable", 0, 0, str(exc))
    s, t = (np.asarray(binarize(a, threshold), dtype=bool) for a in (p_arr, r_arr))
    pair = _make_pair(s, t, spacing)
    anima = {} if reading is None else _anima_metrics(reading, pair, threshold, spacing, lesion_detection)
    corrected = _corrected_metrics(pair, nsd_tolerance, lesion_detection)
    return MetricsResult(
        anima={k: _clean(v) for k, v in anima.items()},
        corrected={k: _clean(v) for k, v in corrected.items()},
        units=units,
        voxel_size_mm=vs,
        anima_input=info,
    )


def compute_metrics_files(
    pred_path: str | os.PathLike[str],
    ref_path: str | os.PathLike[str],
    *,
    lesion_detection: bool = False,
    units: Units = "mm",
    scan_id: str | None = None,
    threshold: float = 0.5,
    nsd_tolerance: float = 1.0,
) -> MetricsResult:
    """:func:`compute_metrics` on two NIfTI files, after checking they share a voxel grid.

    Unlike ANIMA (which compares truncated origins and ignores spacing), the
    shape, voxel sizes, orientation, axes and origin must all match within
    1e-3 mm. The ANIMA values follow ANIMA's reading of the voxel values
    (see :func:`compute_metrics`).

    Raises
    ------
    GeometryError
        The prediction is not on the reference grid; the message lists what differs.
    NiftiError
        A file cannot be read safely.
    ValidationError
        See :func:`compute_metrics`.
    """
    ref = load_nifti(ref_path, scan_id=scan_id)
    pred = load_nifti(pred_path, scan_id=scan_id)
    check_same_geometry(ref, pred, what="prediction", scan_id=scan_id)
    try:
        return compute_metrics(
            pred.data,
            ref.data,
            ref.voxel_size_mm,
            lesion_detection=lesion_detection,
            units=units,
            threshold=threshold,
            nsd_tolerance=nsd_tolerance,
        )
    except ValidationError as exc:  # name the file a value error is about
        side = str(exc).split(" ", 1)[0]
        if side not in ("prediction", "reference"):
            raise
        path = pred_path if side == "prediction" else ref_path
        where = f"scan {scan_id!r} {str(path)!r}" if scan_id else repr(str(path))
        raise ValidationError(f"{where}: {exc}", path=path, scan_id=scan_id) from exc


def dice(pred: np.typing.ArrayLike, ref: np.typing.ArrayLike) -> float:
    """Dice coefficient of two masks: ``2 |P & R| / (|P| + |R|)``.

    The plain overlap, without ANIMA's input reading or thresholds (for those, use
    :func:`compute_metrics`): any non-zero voxel is foreground.

    Parameters
    ----------
    pred, ref
        Masks of the same shape (boolean, 0/1 or labels; non-zero is foreground).

    Returns
    -------
    float
        In [0, 1], higher is better; 1.0 when both masks are empty (nothing to find,
        nothing found), 0.0 when exactly one is.

    Raises
    ------
    ValidationError
        The masks differ in shape.

    References
    ----------
    Dice LR. Measures of the amount of ecologic association between species.
    Ecology 1945;26(3):297-302.
    """
    a = np.asarray(pred).astype(bool)
    b = np.asarray(ref).astype(bool)
    if a.shape != b.shape:
        msg = format_error(
            f"prediction shape {a.shape} differs from reference shape {b.shape}",
            expected="two masks on the same voxel grid",
            fix="resample the prediction onto the reference grid first",
        )
        raise ValidationError(msg)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total
