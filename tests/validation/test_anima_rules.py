"""ANIMA's input and edge rules (REFERENCE.md §3), one hand-built pair per rule.

Sources: animaSegPerfCAnalyzer.cxx (formatLabels, checkNumberOfLabels,
contourDectection, computeHausdorffDist, computeMeanDist,
computeAverageSurfaceDistance, getDetectionMarks), animaSegPerfApp.cxx (play,
processAnalyze), animaSegmentationMeasuresImageFilter.hxx (pooled measures).
Every expected value is counted by hand in the comments, or computed by the
brute-force loops of this file.
"""

from __future__ import annotations

import io
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from cohort_sciseg.errors import ValidationError
from cohort_sciseg.validation.anima import (
    anima_overlap_measures,
    check_number_of_labels,
    label_contour,
    read_anima_labels,
)
from cohort_sciseg.validation.detection import anima_detection_marks
from cohort_sciseg.validation.metrics import (
    ANIMA_EMPTY_REFERENCE_KEYS,
    ANIMA_SEGMENTATION_KEYS,
    ANIMA_SURFACE_KEYS,
    compute_metrics,
)

SHAPE = (9, 8, 7)
UNIT = (1.0, 1.0, 1.0)


def line(values: Sequence[float], axis: int = 0) -> np.ndarray:
    """A 3D image that is one line of voxels along ``axis`` (the other two axes have size 1)."""
    shape = [1, 1, 1]
    shape[axis] = len(values)
    return np.asarray(values, dtype=float).reshape(shape)


# --- 1. Reading: truncation toward zero as unsigned short -----------------------------------


@pytest.mark.parametrize(
    ("value", "foreground"),
    [(0.4, False), (0.6, False), (0.99, False), (1.0, True), (1.7, True), (-0.5, False)],
)
def test_values_are_truncated_like_unsigned_short(value: float, foreground: bool) -> None:
    img = np.zeros(SHAPE)
    img[4, 3, 2] = value
    read = read_anima_labels(img)
    # 0.4 / 0.6 / 0.99 / -0.5 -> 0 (a constant image: one label); 1.0 / 1.7 -> 1.
    assert read.n_labels == (2 if foreground else 1)
    assert bool(read.foreground[4, 3, 2]) is foreground
    assert int(read.foreground.sum()) == int(foreground)


def test_soft_prediction_counts_from_one() -> None:
    # Five isolated voxels on a unit grid; ANIMA keeps the two >= 1 (1.0, 1.7), the corrected
    # metrics the four > 0.5 (0.6, 0.99, 1.0, 1.7). The reference has all five.
    pred = np.zeros(SHAPE)
    ref = np.zeros(SHAPE)
    spots = [(1, 1, 1), (1, 5, 1), (4, 1, 4), (7, 5, 1), (7, 1, 5)]
    for spot, v in zip(spots, (0.4, 0.6, 0.99, 1.0, 1.7), strict=True):
        pred[spot] = v
        ref[spot] = 1.0
    res = compute_metrics(pred, ref, UNIT, lesion_detection=True)
    a = res.anima
    # TP 2, FN 3, FP 0: Jaccard 2/5, Dice 2*2/(2+5) = 4/7, sensitivity 2/5, PPV 1,
    # RVE 100 * (2 - 5) / 5 = -60.
    assert a["Jaccard"] == pytest.approx(2 / 5)
    assert a["Dice"] == pytest.approx(4 / 7)
    assert a["Sensitivity"] == pytest.approx(2 / 5)
    assert a["PPV"] == 1.0
    assert a["RelativeVolumeError"] == pytest.approx(-60.0)
    assert res.anima_input.path == "binary"
    # Corrected (value > 0.5): 4 predicted single-voxel lesions, 5 reference ones.
    assert (res.corrected["n_pred_lesions"], res.corrected["n_ref_lesions"]) == (4, 5)


# --- 2. Labels: sorted distinct values -> 0..n-1 -------------------------------------------


def test_label_mapping_of_gapped_values() -> None:
    img = np.zeros(SHAPE, dtype=np.int32)
    img[0:2] = 5  # 2 * 8 * 7 = 112 voxels
    img[8] = 9  # 56 voxels
    read = read_anima_labels(img)
    # {0, 5, 9} -> {0, 1, 2}
    assert read.n_labels == 3
    assert read.counts.tolist() == [504 - 112 - 56, 112, 56]
    assert set(np.unique(read.labels[0:2])) == {1}
    assert set(np.unique(read.labels[8])) == {2}
    # {3, 7} without 0: 3 becomes the background.
    two = np.full(SHAPE, 3, dtype=np.uint16)
    two[4, 4, 4] = 7
    r2 = read_anima_labels(two)
    assert (r2.n_labels, int(r2.foreground.sum()), bool(r2.foreground[4, 4, 4])) == (2, 1, True)


def test_reference_filling_the_image_is_an_empty_reference() -> None:
    ref = np.ones(SHAPE)  # no zero voxel: its only value maps to label 0
    pred = np.zeros(SHAPE)
    pred[1:3, 1:3, 1] = 1.0  # 4 voxels: one lesion (n_min = 4 on a unit grid)
    pred[6, 6, 2:4] = 1.0  # 2 voxels: dropped
    res = compute_metrics(pred, ref, UNIT, lesion_detection=True)
    assert res.anima == {"NbTestedLesions": 1, "VolTestedLesions": 4.0}
    assert tuple(res.anima) == ANIMA_EMPTY_REFERENCE_KEYS
    assert (res.anima_input.path, res.anima_input.n_ref_labels) == ("empty_reference", 1)
    # Corrected: the reference fills the image (no surface): distances undefined.
    assert res.corrected["assd"] is None


def test_reference_without_zero_loses_its_smallest_value() -> None:
    ref = np.ones(SHAPE)
    ref[2:4, 2:4, 2:4] = 2.0  # 8 voxels of value 2: ANIMA's label 1; value 1 is background
    pred = np.zeros(SHAPE, dtype=np.uint8)
    pred[3:5, 2:4, 2:4] = 1  # 8 voxels, 4 shared with the value-2 box
    res = compute_metrics(pred, ref, UNIT)
    a = res.anima
    # TP 4, FP 4, FN 4: Jaccard 4/12, Dice 8/16; TN = 504 - 12 = 492.
    assert res.anima_input.path == "binary"
    assert a["Jaccard"] == pytest.approx(1 / 3)
    assert a["Dice"] == pytest.approx(0.5)
    assert a["Specificity"] == pytest.approx(492 / 496)
    assert a["RelativeVolumeError"] == 0.0
    # Corrected: every reference voxel is > 0.5; the reference fills the image.
    assert res.corrected["hd95"] is None


# --- 3. Multi-label path: the same n > 2 labels on both sides --------------------------------

#                index: 0  1  2  3  4  5  6  7  8  9 10 11 12 13
MULTI_REF = [0, 1, 1, 1, 0, 0, 0, 0, 2, 2, 2, 0, 0, 0]
MULTI_PRED = [0, 0, 1, 1, 2, 0, 0, 0, 0, 2, 2, 2, 2, 0]


@pytest.mark.parametrize("axis", [0, 2])
def test_multilabel_path_by_hand(axis: int) -> None:
    spacing = [1.0, 1.0, 1.0]
    spacing[axis] = 0.5  # mm along the line
    res = compute_metrics(line(MULTI_PRED, axis), line(MULTI_REF, axis), spacing)
    a = res.anima
    assert (res.anima_input.path, res.anima_input.n_pred_labels, res.anima_input.n_ref_labels) == (
        "multilabel",
        3,
        3,
    )
    # Label 1: ref {1,2,3}, pred {2,3}: I=2, U=3. Label 2: ref {8,9,10}, pred {4,9,10,11,12}:
    # I=2, U=|{4,8,...,12}|=6. Jaccard = 4/9, Dice = 2J/(1+J) = 8/13.
    assert a["Jaccard"] == pytest.approx(4 / 9)
    assert a["Dice"] == pytest.approx(8 / 13)
    # Sensitivity = 4 / |T != 0| = 4/6; PPV = 4 / |S != 0| = 4/7.
    assert a["Sensitivity"] == pytest.approx(4 / 6)
    assert a["PPV"] == pytest.approx(4 / 7)
    # TN = |S=0 and T=0| = |{0,5,6,7,13}| = 5. SC: label 1 none, label 2 {4,11,12} -> 3;
    # TC: label 1 {1}, label 2 {8} -> 2. numberOfLabels = 2:
    # Specificity = 5 / (5 + 3/2) = 10/13 (binary would be 5/8), NPV = 5 / (5 + 2/2) = 5/6.
    assert a["Specificity"] == pytest.approx(10 / 13)
    assert a["NPV"] == pytest.approx(5 / 6)
    # RVE over non-zero voxels: 100 (7 - 6) / 6.
    assert a["RelativeVolumeError"] == pytest.approx(100 / 6)
    # Hausdorff on the union of non-zero voxels: pred 12 -> ref 10 is 2 voxels, the largest
    # (per label it would be 4: pred label-2 voxel 4 -> ref label-2 voxel 8). 2 x 0.5 mm.
    assert a["HausdorffDistance"] == pytest.approx(1.0)
    # Label contours (another label is a different label; the border is not background):
    # ref label 1 {1, 3}, label 2 {8, 10}; pred label 1 {2, 3} (3 touches label 2 at 4),
    # label 2 {4, 9, 12}. Contour mean distance on the union of contours:
    # pred -> ref: 2:1, 3:0, 4:1, 9:1, 12:2 -> mean 1; ref -> pred: 1:1, 3:0, 8:1, 10:1 -> 3/4.
    assert a["ContourMeanDistance"] == pytest.approx(1.0 * 0.5)
    # Surface distance per label, running minimum reset for each label (ITK order):
    # label 1: ref {1,3} -> pred {2,3}: 1, 0 -> running 1, 0; pred {2,3} -> ref {1,3}: 1, 0 -> 1, 0.
    # label 2: ref {8,10} -> pred {4,9,12}: 1, 1 -> 1, 1; pred {4,9,12} -> ref {8,10}: 4, 1, 2
    # -> running 4, 1, 1. Total (1 + 0 + 1 + 0 + 1 + 1 + 4 + 1 + 1) / 9 = 10/9 voxels.
    # (Without the reset label 2's terms would all be 0: 2/9.)
    assert a["SurfaceDistance"] == pytest.approx(10 / 9 * 0.5)


def test_label_contour_marks_label_boundaries() -> None:
    lab = line(MULTI_PRED).astype(np.uint16)
    assert np.flatnonzero(label_contour(lab).ravel()).tolist() == [2, 3, 4, 9, 12]


def test_overlap_measures_divide_by_the_consecutive_label_count() -> None:
    # C[a, b] = voxels with prediction label a and reference label b.
    c = np.array([[5, 1, 1], [0, 2, 0], [1, 0, 2]])
    m = anima_overlap_measures(c)
    # TN 5. Label 1: |S=1| 2 (row), |T=1| 3 (column), I 2, U 3. Label 2: |S=2| 3, |T=2| 3,
    # I 2, U 4. J = 4/7; SC = 0 + 1; TC = 1 + 1; k = 2; RVE = 100 (5 - 6) / 6.
    assert m["Jaccard"] == pytest.approx(4 / 7)
    assert m["Specificity"] == pytest.approx(5 / (5 + 1 / 2))
    assert m["NPV"] == pytest.approx(5 / (5 + 2 / 2))
    assert m["RelativeVolumeError"] == pytest.approx(-100 / 6)
    assert list(m) == list(ANIMA_SEGMENTATION_KEYS)
    # Labels 1 and 3 present, 2 absent: ANIMA's count stops at the gap, k = 1.
    gap = np.zeros((4, 4), dtype=int)
    gap[0, 0], gap[1, 1], gap[3, 3] = 5, 2, 2
    gap[3, 0] = 1  # SC of label 3
    gap[0, 1] = 1  # TC of label 1
    g = anima_overlap_measures(gap)
    assert g["Specificity"] == pytest.approx(5 / (5 + 1 / 1))
    assert g["NPV"] == pytest.approx(5 / (5 + 1 / 1))


# Brute force for random label images: loops over voxels in ITK order (axis 0 fastest).


def brute_label_contour(lab: np.ndarray, sp: np.ndarray) -> list[tuple[np.ndarray, int]]:
    pts = []
    nx, ny, nz = lab.shape
    for k, j, i in itertools.product(range(nz), range(ny), range(nx)):
        v = lab[i, j, k]
        if v == 0:
            continue
        for di, dj, dk in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
            a, b, c = i + di, j + dj, k + dk
            if 0 <= a < nx and 0 <= b < ny and 0 <= c < nz and lab[a, b, c] != v:
                pts.append((np.array([i, j, k]) * sp, int(v)))
                break
    return pts


def brute_multilabel(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    sp = np.asarray(spacing)
    labels = range(1, int(max(pred.max(), ref.max())) + 1)
    inter = sum(int(np.sum((pred == lab) & (ref == lab))) for lab in labels)
    union = sum(int(np.sum((pred == lab) | (ref == lab))) for lab in labels)
    sc = sum(int(np.sum((pred == lab) & (ref != lab))) for lab in labels)
    tc = sum(int(np.sum((ref == lab) & (pred != lab))) for lab in labels)
    tn = int(np.sum((pred == 0) & (ref == 0)))
    jac = inter / union
    pc, rc = brute_label_contour(pred, sp), brute_label_contour(ref, sp)
    d = cdist(np.array([p for p, _ in pc]), np.array([r for r, _ in rc]))
    sd_sum, sd_n = 0.0, 0
    for lab in labels:
        for src, dst in ((rc, pc), (pc, rc)):
            run = 1e6  # reset for each label, never between voxels
            for p, lp in src:
                if lp != lab:
                    continue
                for q, lq in dst:
                    if lq == lab:
                        run = min(run, float(np.linalg.norm(p - q)))
                sd_sum += run
                sd_n += 1
    whole = cdist(np.argwhere(pred > 0) * sp, np.argwhere(ref > 0) * sp)
    return {
        "Jaccard": jac,
        "Dice": 2 * jac / (1 + jac),
        "Sensitivity": inter / int(np.sum(ref > 0)),
        "Specificity": tn / (tn + sc / len(labels)),
        "PPV": inter / int(np.sum(pred > 0)),
        "NPV": tn / (tn + tc / len(labels)),
        "RelativeVolumeError": 100 * (int(np.sum(pred > 0)) - int(np.sum(ref > 0))) / int(np.sum(ref > 0)),
        "HausdorffDistance": max(whole.min(axis=1).max(), whole.min(axis=0).max()),
        "ContourMeanDistance": max(d.min(axis=1).mean(), d.min(axis=0).mean()),
        "SurfaceDistance": sd_sum / sd_n,
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_multilabel_path_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(SHAPE), 1.5)
    ref = np.digitize(field, np.quantile(field, [0.6, 0.8])).astype(np.uint8)  # labels 0, 1, 2
    pred = ref.copy()
    flip = rng.random(SHAPE) < 0.1
    pred[flip] = rng.integers(0, 3, size=int(flip.sum()))
    spacing = (0.8, 1.3, 2.0)
    res = compute_metrics(pred, ref, spacing)
    assert res.anima_input.path == "multilabel"
    exp = brute_multilabel(pred, ref, spacing)
    for key, value in exp.items():
        assert res.anima[key] == pytest.approx(value, rel=1e-12), key


# --- 4. Unequal label counts: the side(s) with > 2 labels are binarised ------------------------


@pytest.mark.parametrize(
    ("pred_values", "ref_values", "binarised"),
    [
        (MULTI_PRED, [min(v, 1) for v in MULTI_REF], "prediction"),
        ([min(v, 1) for v in MULTI_PRED], MULTI_REF, "reference"),
        (MULTI_PRED, [3 if i == 13 else v for i, v in enumerate(MULTI_REF)], "prediction and the reference"),
    ],
)
def test_unequal_label_counts_binarise(
    pred_values: list[int], ref_values: list[int], binarised: str
) -> None:
    res = compute_metrics(line(pred_values), line(ref_values), UNIT)
    info = res.anima_input
    assert info.path == "binary"
    assert info.warning is not None
    assert f"ANIMA binarises the {binarised} " in info.warning
    a = res.anima
    if binarised != "prediction and the reference":
        # Binary masks pred {2,3,4,9,10,11,12}, ref {1,2,3,8,9,10}: TP 4, FP 3, FN 2,
        # union 9, TN 5 ({0,5,6,7,13}): Jaccard 4/9, Specificity 5/8, NPV 5/7.
        assert a["Jaccard"] == pytest.approx(4 / 9)
        assert a["Specificity"] == pytest.approx(5 / 8)
        assert a["NPV"] == pytest.approx(5 / 7)
    else:
        # Reference {0,1,2,3} also binarised: voxel 13 joins it. TP 4, FP 3, FN 3, TN 4.
        assert (info.n_pred_labels, info.n_ref_labels) == (3, 4)
        assert a["Jaccard"] == pytest.approx(4 / 10)
        assert a["Specificity"] == pytest.approx(4 / 7)


def test_check_number_of_labels_keeps_equal_counts() -> None:
    p = read_anima_labels(line(MULTI_PRED))
    r = read_anima_labels(line(MULTI_REF))
    pair = check_number_of_labels(p, r)
    assert pair.info.warning is None
    assert pair.pred is p
    assert pair.ref is r


# --- 5. Lesion detection marks (getDetectionMarks) -------------------------------------------


@pytest.mark.parametrize(
    ("tp_ref", "n_ref", "tp_pred", "n_pred", "expected"),
    [
        (1, 2, 1, 1, (0.5, 1.0, 2 * 0.5 / 1.5)),  # both sides have lesions
        (0, 2, 0, 3, (0.0, 0.0, 0.0)),  # nothing detected: F1 0 (0 + 0 is not > 0)
        (0, 2, 0, 0, (0.0, 0.0, 0.0)),  # no predicted lesion: PPVL guarded -> 0
        (0, 0, 0, 3, (math.nan, 0.0, 0.0)),  # no reference lesion: SensL 0/0, F1 0
        (0, 0, 0, 0, (math.nan, 0.0, 0.0)),  # neither
    ],
)
def test_detection_marks_every_combination(
    tp_ref: int, n_ref: int, tp_pred: int, n_pred: int, expected: tuple[float, float, float]
) -> None:
    got = anima_detection_marks(tp_ref, n_ref, tp_pred, n_pred)
    np.testing.assert_equal(got, expected)


def _small_reference() -> np.ndarray:
    ref = np.zeros(SHAPE, bool)
    ref[1:4, 1, 1] = True  # 3 voxels
    ref[6, 2:5, 4] = True  # 3 voxels: both below n_min = 4 on a unit grid
    return ref


@pytest.mark.parametrize("pred_kind", ["lesion", "small", "empty"])
def test_reference_with_only_small_components(pred_kind: str) -> None:
    ref = _small_reference()
    pred = np.zeros(SHAPE, bool)
    if pred_kind == "lesion":
        pred[1:6, 1, 1] = True  # 5 voxels, covers the first reference component
    elif pred_kind == "small":
        pred[1:3, 1, 1] = True  # 2 voxels, dropped
    res = compute_metrics(pred, ref, UNIT, lesion_detection=True)
    a = res.anima
    # No retained reference lesion: SensL = 0/0 (None), PPVL 0, F1 0 whatever the prediction.
    assert (a["SensL"], a["PPVL"], a["F1_score"]) == (None, 0.0, 0.0)
    expected_path = "empty_prediction" if pred_kind == "empty" else "binary"
    assert res.anima_input.path == expected_path


def test_empty_prediction_scores_zero() -> None:
    ref = np.zeros(SHAPE, bool)
    ref[2:4, 2:4, 2:4] = True  # 8 voxels: retained
    res = compute_metrics(np.zeros(SHAPE), ref, UNIT, lesion_detection=True)
    assert (res.anima["PPVL"], res.anima["SensL"], res.anima["F1_score"]) == (0.0, 0.0, 0.0)
    assert all(res.anima[k] is None for k in ANIMA_SURFACE_KEYS)


@pytest.mark.parametrize("fill", [0.8, 1.0, 3.0])
def test_constant_prediction_is_an_empty_prediction(fill: float) -> None:
    # A soft prediction below 1 truncates to 0; a prediction filling the image with one value
    # maps that value to label 0. Reference: labels 1 {1,2,3} and 2 {8,9,10} (not binarised on
    # this path). TN = 8, TC = 6, numberOfLabels 2: NPV = 8 / (8 + 6/2) = 8/11.
    pred = np.full((14, 1, 1), fill)
    res = compute_metrics(pred, line(MULTI_REF), UNIT)
    a = res.anima
    assert (res.anima_input.path, res.anima_input.n_ref_labels) == ("empty_prediction", 3)
    assert (a["Dice"], a["Jaccard"], a["Sensitivity"], a["Specificity"]) == (0.0, 0.0, 0.0, 1.0)
    assert a["PPV"] is None
    assert a["NPV"] == pytest.approx(8 / 11)
    assert a["RelativeVolumeError"] == -100.0


# --- 6. Values ANIMA cannot read ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "dtype", "match"),
    [
        (-1.0, np.float32, r"value -1 \(minimum\), which ANIMA cannot read"),
        (-2.5, np.float64, r"value -2\.5 \(minimum\)"),
        (np.nan, np.float32, r"1 voxel\(s\) with value NaN"),
        (np.inf, np.float64, r"value inf \(maximum\)"),
        (65536.0, np.float32, r"value 65536 \(maximum\)"),
        (-1, np.int16, r"wraps around \(-1 -> 65535\)"),
        (70000, np.int32, r"value 70000 \(maximum\)"),
    ],
)
def test_unreadable_values_raise(value: float, dtype: type, match: str) -> None:
    pred: np.ndarray = np.zeros(SHAPE, dtype=dtype)
    pred[2, 2, 2] = value
    ref = np.zeros(SHAPE, dtype=np.uint8)
    ref[2:4, 2:4, 2:4] = 1
    with pytest.raises(ValidationError, match=match):
        compute_metrics(pred, ref, UNIT)
    with pytest.raises(ValidationError, match="reference has 1 voxel"):
        compute_metrics(ref, pred, UNIT)


def test_unreadable_values_skipped_on_request_keep_the_corrected_metrics() -> None:
    ref = np.zeros(SHAPE, dtype=np.int16)
    ref[2:4, 2:4, 2:4] = 1
    pred = np.where(ref > 0, 1, -1).astype(np.int16)  # -1 background: wraps to 65535 in ANIMA
    res = compute_metrics(pred, ref, UNIT, lesion_detection=True, unreadable="skip")
    assert res.anima == {}
    assert res.anima_input.path == "unreadable"
    assert res.anima_input.warning is not None
    assert "wraps around (-1 -> 65535)" in res.anima_input.warning
    # the thresholded masks are identical: perfect corrected scores, counted by hand
    assert res.corrected["assd"] == 0.0
    assert res.corrected["lesion_f1_mr"] == 1.0
    assert res.corrected["n_ref_lesions"] == res.corrected["n_pred_lesions"] == 1
    assert {r["source"] for r in res.to_rows("s", "lesion")} == {"corrected"}
    with pytest.raises(ValidationError, match=r"unreadable is 'ignore'"):
        compute_metrics(pred, ref, UNIT, unreadable="ignore")  # type: ignore[arg-type]


def test_files_api_names_the_unreadable_file(tmp_path: Path) -> None:
    from cohort_sciseg.validation.metrics import compute_metrics_files

    good = np.zeros(SHAPE, dtype=np.int16)
    good[2:4, 2:4, 2:4] = 1
    bad = good.copy()
    bad[0, 0, 0] = -1
    for name, data in (("good", good), ("bad", bad)):
        nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / f"{name}.nii.gz")
    with pytest.raises(ValidationError, match=r"scan 's1' '.*bad\.nii\.gz': reference has 1 voxel"):
        compute_metrics_files(tmp_path / "good.nii.gz", tmp_path / "bad.nii.gz", scan_id="s1")
    with pytest.raises(ValidationError, match=r"^units is 'cm'"):
        compute_metrics_files(tmp_path / "good.nii.gz", tmp_path / "good.nii.gz", units="cm")  # type: ignore[arg-type]


def test_largest_readable_values_are_accepted() -> None:
    pred = np.zeros(SHAPE, dtype=np.float32)
    pred[2:4, 2:4, 2:4] = 65535.9  # truncates to 65535
    pred[0, 0, 0] = -0.999  # truncates to 0
    ref = (pred > 1).astype(np.uint16) * 65535
    res = compute_metrics(pred, ref, UNIT)
    assert (res.anima["Dice"], res.anima_input.path) == (1.0, "binary")


# --- 7. CLI and serialisation --------------------------------------------------------------------


def test_cli_reports_the_path_and_the_warning(tmp_path: Path) -> None:
    from cohort_sciseg.cli import MetricsCommand

    affine = np.diag([0.5, 1.0, 1.0, 1.0])
    paths = {}
    for name, values in (("pred", MULTI_PRED), ("ref", [min(v, 1) for v in MULTI_REF])):
        paths[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(line(values).astype(np.uint8), affine), paths[name])
    out = io.StringIO()
    cmd = MetricsCommand(pred=paths["pred"], ref=paths["ref"], output=tmp_path / "m.json")
    assert cmd.run(out) == 0
    text = out.getvalue()
    assert "anima path: binary (labels read: prediction 3, reference 2)" in text
    assert "warning: the prediction has 3 labels and the reference 2" in text
    js = json.loads((tmp_path / "m.json").read_text())
    assert js["anima_input"]["path"] == "binary"
    assert js["Jaccard"] == pytest.approx(4 / 9)


def test_rows_keep_their_schema_on_every_path() -> None:
    res = compute_metrics(np.zeros(SHAPE), np.ones(SHAPE), UNIT)
    rows = res.to_rows("s1", "lesion")
    assert [r["metric"] for r in rows][:2] == list(ANIMA_EMPTY_REFERENCE_KEYS)
    assert all(set(r) == {"scan_id", "structure", "metric", "value", "source", "units"} for r in rows)
    assert all(isinstance(v, int | float) or v is None for v in res.anima.values())
