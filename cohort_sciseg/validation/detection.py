"""Lesion-wise detection: ANIMA's rule (``animaSegPerfAnalyzer -l``) and corrected variants.

ANIMA's rule, as read in Inria-Empenn/Anima-Public,
``Anima/segmentation/validation_tools/segmentation_performance_analyzer/``
(animaSegPerfCAnalyzer.cxx at 71b54bc / 03aa12c, animaSegPerfApp.cxx at 6f1de20):

1. Lesions are the connected components of each mask with face (6-)
   connectivity (``itk::ConnectedComponentImageFilter`` left at its default
   ``FullyConnected = false``; ``getOverlapTab``). The filter joins every
   non-zero voxel whatever its value, so on ANIMA's multi-label path lesions
   are the components of the union of the labels.
2. Components with fewer than ``n_min = floor(V / voxel volume) + 1`` voxels are
   removed from both masks, V = 3 mm3 by default (``-v``); the ``+ 1`` keeps
   only components *strictly* larger than V (``getOverlapTab``: ``minSizeInVoxel++``
   then ``itk::RelabelComponentImageFilter::SetMinimumObjectSize``, which keeps
   components of at least that size). Removed voxels count as background in
   everything below. With a 1 x 1 x 1 grid (model_seg_sci saved masks with an
   identity affine) n_min = 4, so components of 3 voxels or fewer are dropped.
3. An overlap table counts voxels for every pair (reference label, predicted
   label), background = label 0 on both sides.
4. A reference lesion is *detected* (``getTruePositiveLesions``) when

   a. the fraction of it covered by retained predicted lesions is **strictly
      greater** than alpha (``dfSensibility > m_dfDetectionThresholdAlpha``;
      ``-x``, default 0.10), and
   b. ``falsePositiveRatioTester`` passes: the predicted lesions are visited in
      decreasing order of their overlap with the lesion, while the accumulated
      share of the lesion's overlap is **strictly below** gamma (``-z``, default
      0.65). A visited predicted lesion fails the test when the fraction of its
      voxels outside every retained reference lesion is **strictly greater**
      than beta (``-y``, default 0.70); the first failure rejects the lesion.
      The lesion that brings the share to gamma or beyond is itself checked.
      The walk is also bounded by the number of rows of the table (lesions of
      the tested side + 1, ``k < pi_iNbLabelsRef``): when more predicted lesions
      would be needed, the rest are not checked and the lesion counts as
      detected. Shares are accumulated in double precision in the same order as
      ANIMA, so ties with a threshold (e.g. exactly 10 % coverage) resolve as in
      ANIMA. Equal overlaps are visited in label order here; ANIMA's
      ``std::sort`` leaves their order unspecified.

5. The same test with the roles swapped (transposed table) counts predicted
   lesions that are true positives. The two counts are independent (no
   one-to-one matching). No TP is counted unless both sides keep at least one
   lesion (``iNbLabelsRef>1 && iNbLabelsTest>1``).
6. Scores (``getDetectionMarks``, :func:`anima_detection_marks`), with N_ref,
   N_pred the retained lesions:

   * PPVL = TP_pred / N_pred, and **0** when N_pred = 0 (``iNbLabelsTest != 1``
     guards this division only);
   * SensL = TP_ref / N_ref, **NaN** (0/0) when N_ref = 0;
   * F1 = 2 PPVL SensL / (PPVL + SensL) when ``PPVL + SensL > 0``, else **0**
     (a NaN SensL fails the comparison, so F1 is 0 there too).

   Every combination: both sides with lesions -> the ratios; no predicted
   lesion -> PPVL 0, SensL 0, F1 0; a reference whose every component is
   smaller than n_min (N_ref = 0; an empty reference takes ANIMA's
   empty-reference path before any of this) -> SensL NaN, PPVL 0, F1 0,
   whether the prediction has lesions or not. REFERENCE.md §3.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

__all__ = [
    "ANIMA_ALPHA",
    "ANIMA_BETA",
    "ANIMA_GAMMA",
    "ANIMA_MIN_LESION_VOLUME_MM3",
    "AnimaDetection",
    "LesionMatching",
    "anima_detection_marks",
    "anima_lesion_detection",
    "anima_min_lesion_voxels",
    "label_lesions",
    "match_lesions",
    "overlap_table",
]

#: ANIMA ``-x`` default: minimum covered fraction of a lesion (strictly exceeded).
ANIMA_ALPHA = 0.10
#: ANIMA ``-y`` default: maximum fraction of an overlapping lesion lying outside (inclusive).
ANIMA_BETA = 0.70
#: ANIMA ``-z`` default: share of the overlap whose contributors are checked against beta.
ANIMA_GAMMA = 0.65
#: ANIMA ``-v`` default: lesions must be strictly larger than this volume, mm3.
ANIMA_MIN_LESION_VOLUME_MM3 = 3.0

_FACE = ndimage.generate_binary_structure(3, 1)


def anima_min_lesion_voxels(
    voxel_size: Sequence[float], min_volume: float = ANIMA_MIN_LESION_VOLUME_MM3
) -> int:
    """Smallest lesion size kept by ANIMA, in voxels: ``floor(min_volume / voxel volume) + 1``.

    Parameters
    ----------
    voxel_size
        Grid spacing along the three axes (mm, or ``(1, 1, 1)`` for voxel units).
    min_volume
        ANIMA's ``-v`` (mm3, default 3).
    """
    s = [float(v) for v in voxel_size]
    vol = s[0] * s[1] * s[2]  # multiplied in ANIMA's order
    return math.floor(min_volume / vol) + 1


def label_lesions(mask: np.ndarray, min_voxels: int = 1) -> tuple[np.ndarray, int]:
    """Label 6-connected components, dropping those with fewer than ``min_voxels`` voxels.

    Returns
    -------
    labels, n
        ``int32`` labels 1..n numbered by decreasing size (ties by first
        appearance in C order), 0 for background and removed components.
    """
    raw, n_raw = ndimage.label(np.asarray(mask, dtype=bool), structure=_FACE)
    if n_raw == 0:
        return raw.astype(np.int32, copy=False), 0
    sizes = np.bincount(raw.ravel(), minlength=n_raw + 1)[1:]
    keep = np.flatnonzero(sizes >= min_voxels)
    order = keep[np.argsort(-sizes[keep], kind="stable")]
    lut = np.zeros(n_raw + 1, dtype=np.int32)
    lut[order + 1] = np.arange(1, order.size + 1, dtype=np.int32)
    return lut[raw], int(order.size)


def overlap_table(
    ref_labels: np.ndarray, n_ref: int, pred_labels: np.ndarray, n_pred: int
) -> np.ndarray:
    """Voxel counts of every (reference label, predicted label) pair, shape ``(n_ref + 1, n_pred + 1)``."""
    flat = ref_labels.ravel().astype(np.int64) * (n_pred + 1) + pred_labels.ravel()
    return np.bincount(flat, minlength=(n_ref + 1) * (n_pred + 1)).reshape(n_ref + 1, n_pred + 1)


def _detected_rows(tab: np.ndarray, alpha: float, beta: float, gamma: float) -> np.ndarray:
    """ANIMA's ``getTruePositiveLesions`` on a table whose rows are the lesions tested."""
    n_rows, n_cols = tab.shape
    detected = np.zeros(n_rows - 1, dtype=bool)
    if n_rows < 2 or n_cols < 2:
        return detected
    col_sum = tab.sum(axis=0)
    outside = tab[0]
    for i in range(1, n_rows):
        row = tab[i]
        tp = int(row[1:].sum())
        fn = int(row[0])
        if not tp / (tp + fn) > alpha:
            continue
        order = np.argsort(-row[1:], kind="stable") + 1
        share = 0.0
        rejected = False
        k = 0
        while share < gamma and k < n_rows and k < order.size and not rejected:
            j = int(order[k])
            rejected = int(outside[j]) / int(col_sum[j]) > beta
            if not rejected:
                share += int(row[j]) / tp
            k += 1
        detected[i - 1] = not rejected
    return detected


@dataclass(frozen=True, slots=True)
class AnimaDetection:
    """Result of ANIMA's lesion detection.

    Attributes
    ----------
    n_min
        Smallest lesion size kept, voxels.
    n_ref, n_pred
        Retained lesions in the reference and the prediction.
    tp_ref
        Reference lesions detected.
    tp_pred
        Predicted lesions that pass the test against the reference.
    sensl, ppvl, f1
        Lesion-wise sensitivity, positive predictive value and F1, with ANIMA's
        values where a count is 0 (see :func:`anima_detection_marks`).
    volume_pred
        Total volume of the retained predicted lesions, in voxel-volume units
        (mm3, or voxels with a unit grid).
    """

    n_min: int
    n_ref: int
    n_pred: int
    tp_ref: int
    tp_pred: int
    sensl: float
    ppvl: float
    f1: float
    volume_pred: float


def anima_lesion_detection(
    pred: np.ndarray,
    ref: np.ndarray,
    voxel_size: Sequence[float],
    *,
    min_volume: float = ANIMA_MIN_LESION_VOLUME_MM3,
    alpha: float = ANIMA_ALPHA,
    beta: float = ANIMA_BETA,
    gamma: float = ANIMA_GAMMA,
) -> AnimaDetection:
    """ANIMA's lesion-wise SensL, PPVL and F1 (see the module docstring for every rule).

    Parameters
    ----------
    pred, ref
        Boolean 3D masks on the same grid (prediction, reference).
    voxel_size
        Grid spacing (mm; ``(1, 1, 1)`` reproduces model_seg_sci's identity affine).
    min_volume, alpha, beta, gamma
        ANIMA's ``-v``, ``-x``, ``-y``, ``-z``.

    Returns
    -------
    AnimaDetection
        SensL and PPVL are fractions in [0, 1] (higher is better). Reference:
        Commowick et al., Sci Rep 8, 13650 (2018), section "Detection metrics".
    """
    n_min = anima_min_lesion_voxels(voxel_size, min_volume)
    ref_lab, n_ref = label_lesions(ref, n_min)
    pred_lab, n_pred = label_lesions(pred, n_min)
    tab = overlap_table(ref_lab, n_ref, pred_lab, n_pred)
    if n_ref >= 1 and n_pred >= 1:
        tp_ref = int(_detected_rows(tab, alpha, beta, gamma).sum())
        tp_pred = int(_detected_rows(np.ascontiguousarray(tab.T), alpha, beta, gamma).sum())
    else:
        tp_ref = tp_pred = 0
    vox = float(np.prod([float(v) for v in voxel_size]))
    volume_pred = float(tab[:, 1:].sum()) * vox
    sensl, ppvl, f1 = anima_detection_marks(tp_ref, n_ref, tp_pred, n_pred)
    return AnimaDetection(n_min, n_ref, n_pred, tp_ref, tp_pred, sensl, ppvl, f1, volume_pred)


def anima_detection_marks(
    tp_ref: int, n_ref: int, tp_pred: int, n_pred: int
) -> tuple[float, float, float]:
    """ANIMA's SensL, PPVL and F1 from the lesion counts (rule 6 of the module docstring).

    Parameters
    ----------
    tp_ref, n_ref
        Detected reference lesions and retained reference lesions.
    tp_pred, n_pred
        True-positive predicted lesions and retained predicted lesions.

    Returns
    -------
    sensl, ppvl, f1
        SensL NaN when ``n_ref == 0``; PPVL 0 when ``n_pred == 0``; F1 0 unless
        ``PPVL + SensL > 0``. Reference: animaSegPerfCAnalyzer.cxx ``getDetectionMarks``.
    """
    ppvl = tp_pred / n_pred if n_pred else 0.0
    sensl = tp_ref / n_ref if n_ref else math.nan
    total = ppvl + sensl
    f1 = 2 * (ppvl * sensl) / total if total > 0.0 else 0.0
    return sensl, ppvl, f1


@dataclass(frozen=True, slots=True)
class LesionMatching:
    """Corrected lesion-wise detection (all 6-connected components, no size filter).

    Attributes
    ----------
    n_ref, n_pred
        Lesions (6-connected components) in the reference and the prediction.
    tp_1to1
        Pairs of a one-to-one assignment maximising the total overlap (Hungarian
        algorithm, :func:`scipy.optimize.linear_sum_assignment`) that overlap
        by at least one voxel.
    ref_found
        Reference lesions with at least ``coverage`` of their voxels in the prediction.
    pred_tp
        Predicted lesions with at least ``coverage`` of their voxels in the reference.
    """

    n_ref: int
    n_pred: int
    tp_1to1: int
    ref_found: int
    pred_tp: int

    @property
    def f1_1to1(self) -> float:
        """2 TP / (N_ref + N_pred); NaN when both masks have no lesion. Higher is better."""
        n = self.n_ref + self.n_pred
        return 2 * self.tp_1to1 / n if n else float("nan")

    @property
    def sensitivity(self) -> float:
        """Found reference lesions / N_ref (NaN without reference lesion)."""
        return self.ref_found / self.n_ref if self.n_ref else float("nan")

    @property
    def ppv(self) -> float:
        """True-positive predicted lesions / N_pred (NaN without predicted lesion)."""
        return self.pred_tp / self.n_pred if self.n_pred else float("nan")

    @property
    def f1(self) -> float:
        """Harmonic mean of :attr:`sensitivity` and :attr:`ppv`.

        0 when one side has lesions and the other none (all misses or all false
        positives), NaN when neither has lesions.
        """
        if self.n_ref == 0 and self.n_pred == 0:
            return float("nan")
        if self.n_ref == 0 or self.n_pred == 0:
            return 0.0
        s, p = self.sensitivity, self.ppv
        return 2 * s * p / (s + p) if s + p else 0.0


def match_lesions(pred: np.ndarray, ref: np.ndarray, *, coverage: float = 0.10) -> LesionMatching:
    """Corrected lesion detection: one-to-one matching and MetricsReloaded-style counts.

    Parameters
    ----------
    pred, ref
        Boolean 3D masks on the same grid.
    coverage
        Fraction (inclusive) of a lesion that must overlap the other mask for it
        to count as found / true positive (MetricsReloaded's 10 % default).

    Returns
    -------
    LesionMatching
        Reference: Maier-Hein et al., "Metrics reloaded", Nat Methods 21, 2024.
    """
    ref_lab, n_ref = label_lesions(ref)
    pred_lab, n_pred = label_lesions(pred)
    tab = overlap_table(ref_lab, n_ref, pred_lab, n_pred)
    inner = tab[1:, 1:]
    if n_ref and n_pred:
        rows, cols = linear_sum_assignment(inner, maximize=True)
        tp = int(np.count_nonzero(inner[rows, cols] > 0))
    else:
        tp = 0
    ref_size = tab[1:].sum(axis=1)
    pred_size = tab[:, 1:].sum(axis=0)
    # Ratios, not ``overlap >= coverage * size``: 3 / 30 is exactly the double 0.1, 0.1 * 30 is not 3.
    ref_found = int(np.count_nonzero(inner.sum(axis=1) / ref_size >= coverage)) if n_ref else 0
    pred_tp = int(np.count_nonzero(inner.sum(axis=0) / pred_size >= coverage)) if n_pred else 0
    return LesionMatching(
        n_ref=n_ref, n_pred=n_pred, tp_1to1=tp, ref_found=ref_found, pred_tp=pred_tp
    )
