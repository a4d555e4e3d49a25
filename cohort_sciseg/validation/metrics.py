"""Segmentation metrics of a prediction against a manual reference, ANIMA-compatible and corrected.

The SCIseg paper validated its masks with ANIMA's ``animaSegPerfAnalyzer``
(cord: ``-d -s -X``; lesions: ``-d -s -l -X``). :func:`compute_metrics` returns
both

* ``anima``: ANIMA's measure names and values, quirks included (see
  :mod:`cohort_sciseg.validation.distances` and
  :mod:`cohort_sciseg.validation.detection`), so published numbers can be
  reproduced; and
* ``corrected``: clearly named correct metrics (pooled ASSD, HD95, NSD,
  one-to-one and MetricsReloaded-style lesion detection).

Sources read (Inria-Empenn/Anima-Public,
``Anima/segmentation/validation_tools/segmentation_performance_analyzer/``):
animaSegmentationMeasuresImageFilter.hxx (overlap measures),
animaSegPerfCAnalyzer.cxx (labels, distances, detection), animaSegPerfApp.cxx
(which measures are written, RVE x 100, default thresholds),
animaSegPerfResults.cxx (measure names). Rules of the later release that our
index lacks (empty reference: only ``NbTestedLesions`` and
``VolTestedLesions``; empty prediction: lesion scores 0) follow REFERENCE §3.

Spacing convention: with ``units="mm"`` distances are in mm and ANIMA's
minimum lesion size uses the real voxel volume; with ``units="voxel"`` the grid
is taken as 1 x 1 x 1, as model_seg_sci effectively did by saving its masks
with an identity affine before calling ANIMA (distances in voxels, n_min = 4
voxels). Every result records its convention.

Speed: counts are taken on the whole grid; contours, components and distances on
the bounding box of the union of both masks plus one voxel (what the contour
rule needs), clipped at the image border so that ANIMA's "border is not
background" rule is unchanged. About 32 ms for a 384 x 216 x 52 cord pair
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
from cohort_sciseg.validation.detection import (
    anima_lesion_detection,
    anima_min_lesion_voxels,
    label_lesions,
    match_lesions,
)
from cohort_sciseg.validation.distances import (
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
Binarization = Literal["threshold", "anima"]
Value = float | int | None
_UNITS = ("mm", "voxel")
_BINARIZATIONS = ("threshold", "anima")
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
        Correct metrics: ``assd``, ``hd95``, ``nsd_<tol>mm`` and, with lesion
        detection, ``lesion_tp_1to1``, ``lesion_f1_1to1``, ``lesion_sensitivity_mr``,
        ``lesion_ppv_mr``, ``lesion_f1_mr``, ``n_ref_lesions``, ``n_pred_lesions``.
        The ``_mm`` names are kept with ``units="voxel"``, where the values are
        in voxels: read ``units``.
    units
        ``"mm"`` or ``"voxel"``: the spacing convention of every distance.
    voxel_size_mm
        The real grid spacing of the inputs, mm.
    """

    anima: dict[str, Value]
    corrected: dict[str, Value]
    units: str
    voxel_size_mm: tuple[float, float, float]

    def to_json(self) -> dict[str, Any]:
        """ANIMA's measures at the top level, plus ``"corrected"`` and ``"units"``."""
        out: dict[str, Any] = dict(self.anima)
        out["corrected"] = dict(self.corrected)
        out["units"] = self.units
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


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("nan")


def _anima_binarize(data: np.ndarray) -> np.ndarray:
    # ANIMA reads masks as unsigned short (values truncated), maps the sorted distinct
    # values to labels 0, 1, 2, ... (formatLabels) and, when the two images have
    # different label counts, sets every non-zero label to 1 (checkNumberOfLabels):
    # the smallest value present is background, every other value foreground.
    arr = np.asarray(data)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    t = np.trunc(arr) if arr.dtype.kind == "f" else arr
    return np.asarray(t > t.min()) if t.size else np.zeros(arr.shape, dtype=bool)


def _as_mask(data: np.ndarray, what: str, threshold: float, rule: str) -> np.ndarray:
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
    if rule == "anima":
        return _anima_binarize(arr)
    return np.asarray(binarize(arr, threshold), dtype=bool)


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


def _crop_box(union: np.ndarray) -> tuple[slice, ...]:
    box = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(union.any(axis=others))
        lo = max(int(idx[0]) - _CROP_MARGIN, 0)
        hi = min(int(idx[-1]) + 1 + _CROP_MARGIN, union.shape[axis])
        box.append(slice(lo, hi))
    return tuple(box)


def compute_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    voxel_size_mm: Sequence[float],
    *,
    lesion_detection: bool = False,
    units: Units = "mm",
    threshold: float = 0.5,
    binarization: Binarization = "threshold",
    nsd_tolerance: float = 1.0,
) -> MetricsResult:
    """Compare a predicted mask with a reference mask on the same voxel grid.

    Parameters
    ----------
    pred, ref
        3D arrays on the same grid (prediction S, reference T).
    voxel_size_mm
        Grid spacing along the three array axes, mm.
    lesion_detection
        Add ANIMA's ``-l`` measures and the corrected lesion-wise metrics.
    units
        ``"mm"``: distances in mm, ANIMA's lesion minimum from the real voxel
        volume. ``"voxel"``: a 1 x 1 x 1 grid (model_seg_sci's identity affine).
    threshold
        Foreground is ``value > threshold`` (``binarization="threshold"``).
    binarization
        ``"threshold"`` (default) or ``"anima"``: ANIMA's reading, values
        truncated to integers, the smallest value present is background and
        every other value foreground (ANIMA's multi-label mode is not
        reproduced; labels are merged).
    nsd_tolerance
        Tolerance of the normalized surface distance, in ``units`` (default 1).

    Returns
    -------
    MetricsResult
        Definitions (S prediction, T reference, voxel counts):
        Jaccard = |S and T| / |S or T|; Dice = 2 J / (1 + J) (= 2 |S and T| / (|S| + |T|));
        Sensitivity = TP/(TP+FN); Specificity = TN/(TN+FP); PPV = TP/(TP+FP);
        NPV = TN/(TN+FN); RelativeVolumeError = 100 (|S|-|T|)/|T| (signed %).
        Distances: see :mod:`cohort_sciseg.validation.distances`; lesion
        scores: see :mod:`cohort_sciseg.validation.detection`.
        Reference: Commowick et al., Sci Rep 8, 13650 (2018); ANIMA
        animaSegmentationMeasuresImageFilter.hxx.

    Raises
    ------
    GeometryError
        The two arrays differ in shape.
    ValidationError
        Not 3D, unsupported dtype, bad spacing, units, binarization or tolerance.
    """
    if units not in _UNITS:
        msg = format_error(
            f"units is {units!r}",
            expected=f"one of {_UNITS}",
            fix="pass units='mm' or units='voxel'",
        )
        raise ValidationError(msg)
    if binarization not in _BINARIZATIONS:
        msg = format_error(
            f"binarization is {binarization!r}",
            expected=f"one of {_BINARIZATIONS}",
            fix="pass 'threshold' or 'anima'",
        )
        raise ValidationError(msg)
    if not (math.isfinite(nsd_tolerance) and nsd_tolerance > 0):
        msg = format_error(
            f"nsd_tolerance is {nsd_tolerance!r}",
            expected="a finite positive distance",
            fix="pass e.g. 1.0",
        )
        raise ValidationError(msg)
    vs = _spacing(voxel_size_mm)
    s = _as_mask(pred, "prediction", threshold, binarization)
    t = _as_mask(ref, "reference", threshold, binarization)
    if s.shape != t.shape:
        msg = format_error(
            f"prediction shape {s.shape} differs from reference shape {t.shape}",
            expected="both masks on the same voxel grid",
            fix="resample the prediction onto the reference grid (nearest neighbour)",
        )
        raise GeometryError(msg)
    spacing = vs if units == "mm" else (1.0, 1.0, 1.0)

    n_s = int(np.count_nonzero(s))
    n_t = int(np.count_nonzero(t))
    union = s | t
    if n_s + n_t:
        box = _crop_box(union)
        s, t = s[box], t[box]
    inter = int(np.count_nonzero(s & t))
    n_union = n_s + n_t - inter
    tn = union.size - n_union
    fp, fn = n_s - inter, n_t - inter

    anima: dict[str, float | int] = {}
    corrected: dict[str, float | int] = {}
    nsd_key = f"nsd_{nsd_tolerance:g}mm"
    have_maps = n_s > 0 and n_t > 0
    if have_maps:
        try:
            maps = distance_maps(s, t, spacing)
        except ValueError:  # a mask fills the image and has no contour
            have_maps = False

    if n_t == 0:
        # ANIMA writes only the lesion counts of the prediction for an empty reference.
        # Assumed (source not in our index): retained 6-connected lesions of the
        # prediction (>= n_min voxels) and their total volume in units**3.
        pred_lab, n_pred_lesions = label_lesions(s, anima_min_lesion_voxels(spacing))
        anima["NbTestedLesions"] = n_pred_lesions
        anima["VolTestedLesions"] = float(np.count_nonzero(pred_lab)) * float(np.prod(spacing))
    else:
        jac = inter / n_union
        anima["Jaccard"] = jac
        anima["Dice"] = 2.0 * jac / (1.0 + jac)
        anima["Sensitivity"] = _ratio(inter, inter + fn)
        anima["Specificity"] = _ratio(tn, tn + fp)
        anima["PPV"] = _ratio(inter, inter + fp)
        anima["NPV"] = _ratio(tn, tn + fn)
        anima["RelativeVolumeError"] = (n_s - n_t) / n_t * 100
        if have_maps:
            anima["HausdorffDistance"] = anima_hausdorff(maps)
            anima["ContourMeanDistance"] = anima_contour_mean_distance(maps)
            anima["SurfaceDistance"] = anima_surface_distance(maps)
        else:
            for key in ANIMA_SURFACE_KEYS:
                anima[key] = float("nan")
        if lesion_detection:
            det = anima_lesion_detection(s, t, spacing)
            anima["PPVL"] = det.ppvl
            anima["SensL"] = det.sensl
            anima["F1_score"] = det.f1

    if have_maps:
        sd = surface_distances(maps)
        corrected["assd"] = assd(sd)
        corrected["hd95"] = hd_percentile(sd, 95.0)
        corrected[nsd_key] = normalized_surface_distance(sd, nsd_tolerance)
    else:
        corrected["assd"] = corrected["hd95"] = corrected[nsd_key] = float("nan")
    if lesion_detection:
        m = match_lesions(s, t)
        corrected["lesion_tp_1to1"] = m.tp_1to1
        corrected["lesion_f1_1to1"] = m.f1_1to1
        corrected["lesion_sensitivity_mr"] = m.sensitivity
        corrected["lesion_ppv_mr"] = m.ppv
        corrected["lesion_f1_mr"] = m.f1
        corrected["n_ref_lesions"] = m.n_ref
        corrected["n_pred_lesions"] = m.n_pred

    return MetricsResult(
        anima={k: _clean(v) for k, v in anima.items()},
        corrected={k: _clean(v) for k, v in corrected.items()},
        units=units,
        voxel_size_mm=vs,
    )


def compute_metrics_files(
    pred_path: str | os.PathLike[str],
    ref_path: str | os.PathLike[str],
    *,
    lesion_detection: bool = False,
    units: Units = "mm",
    scan_id: str | None = None,
    threshold: float = 0.5,
    binarization: Binarization = "threshold",
    nsd_tolerance: float = 1.0,
) -> MetricsResult:
    """:func:`compute_metrics` on two NIfTI files, after checking they share a voxel grid.

    Unlike ANIMA (which compares truncated origins and ignores spacing), the
    shape, voxel sizes, orientation, axes and origin must all match within
    1e-3 mm.

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
    return compute_metrics(
        pred.data,
        ref.data,
        ref.voxel_size_mm,
        lesion_detection=lesion_detection,
        units=units,
        threshold=threshold,
        binarization=binarization,
        nsd_tolerance=nsd_tolerance,
    )
