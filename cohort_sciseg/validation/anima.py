"""ANIMA's reading of its two input images, its four computation paths and its multi-label measures.

``animaSegPerfAnalyzer`` does not compare the arrays it is given but its own
reading of them (REFERENCE.md §3, "Inputs"). Sources read (Inria-Empenn/Anima-Public,
``Anima/segmentation/validation_tools/segmentation_performance_analyzer/``):
animaSegPerfCAnalyzer.cxx (constructor, ``formatLabels``, ``checkNumberOfLabels``,
``contourDectection``, ``computeHausdorffDist``, ``computeMeanDist``,
``computeAverageSurfaceDistance``, ``computeEmptyGroundTruthMeasures``),
animaSegPerfApp.cxx (``play``, ``processAnalyze``) and
animaSegmentationMeasuresImageFilter.hxx (pooled overlap measures).

1. **Reading** (:func:`read_anima_labels`). Both images are read as
   ``itk::Image<unsigned short, 3>``: every voxel is cast to unsigned short,
   which truncates toward zero (0.4, 0.6, 0.99 -> 0; 1.0, 1.7 -> 1), so a soft
   prediction is in effect thresholded at ``>= 1``.
2. **Labels** (``formatLabels``). The sorted distinct values of each image are
   mapped to 0, 1, ..., n - 1. An image without a zero voxel loses its smallest
   value to the background: a mask filling the image becomes empty, a mask of
   values {1, 2} becomes the binary mask ``value == 2``.
3. **Path** (``checkNumberOfLabels``, ``play``; :func:`check_number_of_labels`):

   * reference with one label (empty after mapping) -> ``"empty_reference"``:
     only ``NbTestedLesions`` and ``VolTestedLesions`` are written;
   * otherwise prediction with one label -> ``"empty_prediction"`` (ANIMA's
     ``m_uiNbLabels = 1``): overlap measures and lesion detection are
     computed, the three distances are NaN;
   * the same number n of labels on both sides: n = 2 -> ``"binary"``, n > 2
     -> ``"multilabel"`` (pooled overlap over labels, label contours,
     per-label surface distance, Hausdorff distance of the non-zero voxels);
   * different numbers: each side with more than 2 labels is binarised (every
     non-zero label -> 1) with a warning, and the pair takes the binary path.

Values that ANIMA cannot read (our decision; REFERENCE §3 does not cover
them): C++ defines the float -> unsigned short cast only
where the truncated value lies in 0..65535, i.e. for floats in (-1, 65536);
elsewhere (<= -1, >= 65536, NaN, infinities) it is undefined behaviour, and a
negative integer wraps around (-1 -> 65535, a foreground label). Such inputs
raise :class:`~cohort_sciseg.errors.ValidationError` instead of producing a
number ANIMA would not reproducibly give. Floats in (-1, 0), such as the
-1e-7 ringing of a resampled mask, truncate to 0 as in ANIMA.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.spatial import cKDTree

from cohort_sciseg.errors import ValidationError, format_error
from cohort_sciseg.validation.distances import ANIMA_DISTANCE_INIT, itk_order_points

__all__ = [
    "ANIMA_MAX_VALUE",
    "ANIMA_PATHS",
    "AnimaInput",
    "AnimaLabels",
    "AnimaPair",
    "AnimaPath",
    "anima_label_contour_mean_distance",
    "anima_label_surface_distance",
    "anima_overlap_measures",
    "binarize_labels",
    "check_number_of_labels",
    "confusion_matrix",
    "label_contour",
    "read_anima_labels",
]

#: Largest value an unsigned short holds.
ANIMA_MAX_VALUE = 65535

AnimaPath = Literal["binary", "multilabel", "empty_reference", "empty_prediction", "unreadable"]
#: The four computation paths of ``animaSegPerfAnalyzer`` (see the module docstring).
ANIMA_PATHS: tuple[AnimaPath, ...] = ("binary", "multilabel", "empty_reference", "empty_prediction")


@dataclass(frozen=True, slots=True, eq=False)
class AnimaLabels:
    """One image as ANIMA holds it after ``formatLabels``.

    Attributes
    ----------
    labels
        Labels 0..n-1 on the input grid: boolean when ``n_labels <= 2`` (True is
        label 1), ``uint16`` otherwise.
    n_labels
        Number of distinct values of the image (1 for a constant image).
    counts
        Voxels per label 0..n-1 (``int64``, length ``n_labels``).
    """

    labels: np.ndarray
    n_labels: int
    counts: np.ndarray

    @property
    def foreground(self) -> np.ndarray:
        """Boolean mask of the non-zero labels (the voxels ITK's filters take as objects)."""
        if self.labels.dtype == bool:
            return self.labels
        return self.labels > 0


@dataclass(frozen=True, slots=True)
class AnimaInput:
    """Which ANIMA path a pair of images took, and why.

    Attributes
    ----------
    path
        ``"binary"``, ``"multilabel"``, ``"empty_reference"`` or ``"empty_prediction"``;
        ``"unreadable"`` when values ANIMA cannot read were skipped
        (``compute_metrics(..., unreadable="skip")``; no ANIMA value then).
    n_pred_labels, n_ref_labels
        Distinct values of each image as read by ANIMA (background included),
        before any binarisation.
    warning
        Plain-language note when a side was binarised because the label counts
        differ (ANIMA prints a warning then), or why the values are unreadable,
        else None.
    """

    path: AnimaPath
    n_pred_labels: int
    n_ref_labels: int
    warning: str | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"path", "n_pred_labels", "n_ref_labels", "warning"}``."""
        return {
            "path": self.path,
            "n_pred_labels": self.n_pred_labels,
            "n_ref_labels": self.n_ref_labels,
            "warning": self.warning,
        }


@dataclass(frozen=True, slots=True, eq=False)
class AnimaPair:
    """Both images after ``checkNumberOfLabels`` (binarised where ANIMA binarises them)."""

    info: AnimaInput
    pred: AnimaLabels
    ref: AnimaLabels


def _unreadable(what: str, value: str, count: int, why: str) -> ValidationError:
    msg = format_error(
        f"{what} has {count:,} voxel(s) with value {value}, which ANIMA cannot read "
        f"as unsigned short ({why})",
        expected=f"finite values > -1 and < {ANIMA_MAX_VALUE + 1} (integers 0..{ANIMA_MAX_VALUE})",
        fix="save the mask as 0/1 or as non-negative integer labels "
        "(replace NaN by 0, clip negative values to 0)",
    )
    return ValidationError(msg)


def _check_readable(arr: np.ndarray, what: str) -> tuple[float, float]:
    """Min and max of ``arr``; raise where ANIMA's cast to unsigned short is undefined or wraps."""
    mn, mx = float(arr.min()), float(arr.max())  # NaN propagates through both
    if math.isnan(mn) or math.isnan(mx):
        n_nan = int(np.count_nonzero(np.isnan(arr)))
        raise _unreadable(what, "NaN", n_nan, "the cast of NaN is undefined")
    if arr.dtype.kind == "f":
        too_low, too_high = mn <= -1, mx >= ANIMA_MAX_VALUE + 1
        why = "the cast of a float outside (-1, 65536) is undefined"
    else:
        too_low, too_high = mn < 0, mx > ANIMA_MAX_VALUE
        why = "the cast of an integer outside 0..65535 wraps around (-1 -> 65535)"
    if too_low:  # counted only on failure: the check itself is two reductions
        n_low = int(np.count_nonzero(arr <= -1 if arr.dtype.kind == "f" else arr < 0))
        raise _unreadable(what, f"{mn:g} (minimum)", n_low, why)
    if too_high:
        limit = ANIMA_MAX_VALUE + 1 if arr.dtype.kind == "f" else ANIMA_MAX_VALUE + 0.5
        raise _unreadable(what, f"{mx:g} (maximum)", int(np.count_nonzero(arr >= limit)), why)
    return mn, mx


def read_anima_labels(data: np.ndarray, what: str = "mask") -> AnimaLabels:
    """Read an array as ANIMA reads a mask: cast to unsigned short, then ``formatLabels``.

    Parameters
    ----------
    data
        Boolean, integer or floating-point array.
    what
        Name used in error messages (``"prediction"``, ``"reference"``).

    Returns
    -------
    AnimaLabels
        Labels 0..n-1 (sorted distinct truncated values), their number and voxel counts.

    Raises
    ------
    ValidationError
        NaN, infinite, ``<= -1`` or ``>= 65536`` floats; negative or ``> 65535`` integers.

    Notes
    -----
    ITK's reader casts each voxel (truncation toward zero), animaSegPerfCAnalyzer.cxx
    ``formatLabels`` maps the sorted distinct values to 0..n-1; REFERENCE.md §3.
    Values below 2 (the usual 0/1 or soft masks) take a fast path without sorting.
    """
    src = np.asarray(data)
    arr = src.view(np.uint8) if src.dtype == bool else src
    if arr.size == 0:
        return AnimaLabels(np.zeros(arr.shape, bool), 0, np.zeros(0, np.int64))
    mn, mx = _check_readable(arr, what)
    if mx < 2:  # truncated values in {0, 1}: label 1 is ``value >= 1`` when both are present
        n = int(mn < 1) + int(mx >= 1)
        if n == 1:
            return AnimaLabels(np.zeros(arr.shape, bool), 1, np.array([arr.size], np.int64))
        fg = src if src.dtype == bool else arr >= 1
        n_fg = int(np.count_nonzero(fg))
        return AnimaLabels(fg, 2, np.array([arr.size - n_fg, n_fg], np.int64))
    values = (np.trunc(arr) if arr.dtype.kind == "f" else arr).astype(np.uint16)
    hist = np.bincount(values.ravel(), minlength=int(mx) + 1)
    present = np.flatnonzero(hist)
    lut = np.zeros(hist.size, np.uint16)
    lut[present] = np.arange(present.size, dtype=np.uint16)
    labels = lut[values]
    counts = hist[present].astype(np.int64)
    if present.size <= 2:
        labels = labels.astype(bool)
    return AnimaLabels(labels, int(present.size), counts)


def binarize_labels(image: AnimaLabels) -> AnimaLabels:
    """Every non-zero label -> 1, as ``checkNumberOfLabels`` binarises an image."""
    if image.n_labels <= 2:
        return image
    counts = np.array([image.counts[0], image.counts[1:].sum()], np.int64)
    return AnimaLabels(image.foreground, 2, counts)


def check_number_of_labels(pred: AnimaLabels, ref: AnimaLabels) -> AnimaPair:
    """Choose ANIMA's path from the label counts (``checkNumberOfLabels`` and ``play``).

    Parameters
    ----------
    pred, ref
        The prediction (ANIMA's tested image) and the reference, as read by
        :func:`read_anima_labels`.

    Returns
    -------
    AnimaPair
        The path, the label counts, a warning when a side was binarised, and the
        images as ANIMA goes on with them. Reference: animaSegPerfCAnalyzer.cxx
        ``checkNumberOfLabels``; animaSegPerfApp.cxx ``play`` (``nbLabels == 0``:
        empty ground truth); REFERENCE.md §3.
    """
    n_p, n_r = pred.n_labels, ref.n_labels
    if n_r <= 1:
        return AnimaPair(AnimaInput("empty_reference", n_p, n_r), pred, ref)
    if n_p <= 1:
        return AnimaPair(AnimaInput("empty_prediction", n_p, n_r), pred, ref)
    if n_p == n_r:
        return AnimaPair(AnimaInput("binary" if n_p == 2 else "multilabel", n_p, n_r), pred, ref)
    sides = [name for name, n in (("prediction", n_p), ("reference", n_r)) if n > 2]
    warning = (
        f"the prediction has {n_p} labels and the reference {n_r} (background included): "
        f"ANIMA binarises the {' and the '.join(sides)} (every non-zero label -> 1) "
        "and compares binary masks"
    )
    info = AnimaInput("binary", n_p, n_r, warning)
    return AnimaPair(info, binarize_labels(pred), binarize_labels(ref))


def confusion_matrix(
    pred_labels: np.ndarray, ref_labels: np.ndarray, n_pred: int, n_ref: int
) -> np.ndarray:
    """Voxel counts ``C[a, b] = |{S == a and T == b}|``, shape ``(n_pred, n_ref)``."""
    flat = pred_labels.ravel().astype(np.int64) * n_ref + ref_labels.ravel()
    return np.bincount(flat, minlength=n_pred * n_ref).reshape(n_pred, n_ref)


def _div(num: float, den: float) -> float:
    """IEEE division as in C++: x / 0 is +-inf, 0 / 0 is NaN."""
    if den:
        return num / den
    return math.nan if num == 0 or math.isnan(num) else math.copysign(math.inf, num)


def _consecutive_labels(present: np.ndarray) -> int:
    """ANIMA's ``numberOfLabels``: labels 1, 2, ... found in its map before the first gap."""
    k = 0
    while k + 1 < present.size and present[k + 1]:
        k += 1
    return k


def anima_overlap_measures(confusion: np.ndarray) -> dict[str, float]:
    """ANIMA's pooled overlap measures from a label confusion matrix.

    Parameters
    ----------
    confusion
        ``C[a, b]`` = voxels with prediction label a and reference label b
        (labels 0..n-1, 0 the background; any rectangular shape).

    Returns
    -------
    dict
        ``Jaccard``, ``Dice``, ``Sensitivity``, ``Specificity``, ``PPV``, ``NPV``
        (fractions, higher is better) and ``RelativeVolumeError`` (signed %, 0 is
        best), in ANIMA's output order. Per label l >= 1: I_l = |S=l and T=l|,
        U_l = |S=l or T=l|, SC_l = |S=l, T!=l|, TC_l = |T=l, S!=l|; TN = |S=0 and T=0|;
        k = ``numberOfLabels`` (labels 1, 2, ... present before the first gap).
        Jaccard = sum I / sum U; Dice = 2 J / (1 + J); Sensitivity = sum I / sum |T=l|;
        PPV = sum I / sum |S=l|; Specificity = TN / (TN + sum SC / k);
        NPV = TN / (TN + sum TC / k); RelativeVolumeError = 100 (sum |S=l| - sum |T=l|) / sum |T=l|.
        With two labels these are the usual binary definitions. Division by zero
        gives NaN (0/0) or infinity, as in C++.

    Notes
    -----
    animaSegmentationMeasuresImageFilter.hxx (``getUnionOverlap``, ``getMeanOverlap``,
    ``getSensitivity``, ``getSpecificity``, ``getPPV``, ``getNPV``,
    ``getRelativeVolumeError``); the x 100 is animaSegPerfApp.cxx's. REFERENCE.md §3.
    """
    c = np.asarray(confusion, dtype=np.int64)
    n = max(c.shape)
    full = np.zeros((n, n), np.int64)
    full[: c.shape[0], : c.shape[1]] = c
    source, target, inter = full.sum(axis=1), full.sum(axis=0), np.diag(full)
    union = source + target - inter
    k = _consecutive_labels(source + target > 0)
    tn = float(full[0, 0])
    i_sum = float(inter[1:].sum())
    s_sum, t_sum = float(source[1:].sum()), float(target[1:].sum())
    sc_sum, tc_sum = s_sum - i_sum, t_sum - i_sum
    jac = _div(i_sum, float(union[1:].sum()))
    return {
        "Jaccard": jac,
        "Dice": 2.0 * jac / (1.0 + jac),
        "Sensitivity": _div(i_sum, t_sum),
        "Specificity": _div(tn, _div(sc_sum, k) + tn),
        "PPV": _div(i_sum, s_sum),
        "NPV": _div(tn, _div(tc_sum, k) + tn),
        "RelativeVolumeError": _div(s_sum - t_sum, t_sum) * 100,
    }


def label_contour(labels: np.ndarray) -> np.ndarray:
    """Contour voxels of a label image (``itk::LabelContourImageFilter``, face connectivity).

    A non-zero voxel is on the contour when one of its 6 face neighbours inside
    the image carries a different label (background or another label); the
    image border is not background. Returns a boolean array; the contour voxel
    keeps its label in ANIMA's contour image (``labels[contour]``).

    Reference: animaSegPerfCAnalyzer.cxx ``contourDectection`` (``m_uiNbLabels != 2``,
    ``SetFullyConnected(0)``); ITK itkLabelContourImageFilter.
    """
    lab = np.asarray(labels)
    out = np.zeros(lab.shape, dtype=bool)
    for axis in range(lab.ndim):
        n = lab.shape[axis]
        if n < 2:
            continue
        lo = [slice(None)] * lab.ndim
        hi = [slice(None)] * lab.ndim
        lo[axis] = slice(0, n - 1)
        hi[axis] = slice(1, n)
        a, b = lab[tuple(lo)], lab[tuple(hi)]
        diff = a != b
        out[tuple(lo)] |= diff & (a != 0)
        out[tuple(hi)] |= diff & (b != 0)
    return out


def _nearest(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearest target; ANIMA's initial 1e6 when there is none."""
    if not len(points):
        return np.zeros(0)
    if not len(targets):
        return np.full(len(points), ANIMA_DISTANCE_INIT)
    return np.asarray(cKDTree(targets).query(points)[0], dtype=float)


def anima_label_contour_mean_distance(
    pred_labels: np.ndarray, ref_labels: np.ndarray, spacing: Sequence[float]
) -> float:
    """ANIMA's ``ContourMeanDistance`` on the multi-label path.

    ``itk::ContourMeanDistanceImageFilter`` takes the non-zero voxels of the two
    label contour images (:func:`label_contour`) as two point sets, whatever
    their labels: the mean distance from each contour voxel of one image to the
    nearest contour voxel of the other, per direction, and the larger of the two
    means. As on the binary path (see
    :func:`cohort_sciseg.validation.distances.anima_contour_mean_distance`), the
    contour images are compared as point sets.

    Units: those of ``spacing``. Lower is better. NaN when a side has no contour.
    Reference: animaSegPerfCAnalyzer.cxx ``computeMeanDist``.
    """
    sp = np.asarray([float(s) for s in spacing])
    p_pts = np.argwhere(label_contour(pred_labels)) * sp
    r_pts = np.argwhere(label_contour(ref_labels)) * sp
    if not len(p_pts) or not len(r_pts):
        return math.nan
    return float(max(_nearest(p_pts, r_pts).mean(), _nearest(r_pts, p_pts).mean()))


def anima_label_surface_distance(
    pred_labels: np.ndarray, ref_labels: np.ndarray, n_labels: int, spacing: Sequence[float]
) -> float:
    """ANIMA's ``SurfaceDistance`` on the multi-label path: per-label running minima, pooled.

    For each label i = 1..n-1, the contour voxels of label i in the reference and
    in the prediction contour images (:func:`label_contour`), in ITK iteration
    order (axis 0 fastest). Each reference voxel gets the distance to the nearest
    prediction voxel of the same label, and vice versa, through an accumulator
    that starts at 1,000,000 for each label and is never reset between voxels
    (the running minimum of
    :func:`cohort_sciseg.validation.distances.anima_surface_distance`). The
    value is the sum of all stored terms over all labels divided by their
    number. A label with no contour voxel on one side leaves 1e6 for every voxel
    of the other side, as ANIMA does.

    Units: those of ``spacing``. Reference: animaSegPerfCAnalyzer.cxx
    ``computeAverageSurfaceDistance`` (the accumulators ``fDistanceTemp1`` /
    ``fDistanceTemp2`` are declared inside the label loop). REFERENCE.md §3.
    """
    sp = np.asarray([float(s) for s in spacing])
    p_pts = itk_order_points(label_contour(pred_labels))
    r_pts = itk_order_points(label_contour(ref_labels))
    p_lab, r_lab = pred_labels[tuple(p_pts.T)], ref_labels[tuple(r_pts.T)]
    total, count = 0.0, 0
    for label in range(1, n_labels):
        r_i, p_i = r_pts[r_lab == label] * sp, p_pts[p_lab == label] * sp
        run_r = np.minimum.accumulate(np.minimum(_nearest(r_i, p_i), ANIMA_DISTANCE_INIT))
        run_p = np.minimum.accumulate(np.minimum(_nearest(p_i, r_i), ANIMA_DISTANCE_INIT))
        total += float(run_r.sum()) + float(run_p.sum())
        count += run_r.size + run_p.size
    return total / count if count else math.nan
