"""ANIMA's lesion detection rules and the corrected lesion metrics, on hand-built masks.

Every expected value is counted by hand from the drawing in the test; the rules
are those of animaSegPerfCAnalyzer.cxx (see cohort_sciseg/validation/detection.py).
A unit grid (1 x 1 x 1 mm) gives n_min = floor(3 / 1) + 1 = 4 voxels.
"""

from __future__ import annotations

import numpy as np
import pytest

from cohort_sciseg.validation.detection import (
    anima_lesion_detection,
    anima_min_lesion_voxels,
    label_lesions,
    match_lesions,
)
from cohort_sciseg.validation.metrics import compute_metrics

SHAPE = (34, 17, 13)
UNIT = (1.0, 1.0, 1.0)


def empty() -> np.ndarray:
    return np.zeros(SHAPE, dtype=bool)


def put(mask: np.ndarray, x: tuple[int, int], y: tuple[int, int], z: tuple[int, int]) -> np.ndarray:
    """Set the half-open box [x0, x1) x [y0, y1) x [z0, z1)."""
    mask[x[0] : x[1], y[0] : y[1], z[0] : z[1]] = True
    return mask


@pytest.mark.parametrize(
    ("spacing", "expected"),
    [
        ((1.0, 1.0, 1.0), 4),  # 3 / 1 = 3 -> 3 + 1
        ((0.5, 0.5, 3.0), 5),  # 3 / 0.75 = 4 exactly -> 4 + 1: a lesion must be > 3 mm3
        ((0.3, 0.3, 1.0), 34),  # 3 / 0.09 = 33.3 -> 33 + 1
        ((2.0, 2.0, 2.0), 1),  # 3 / 8 -> 0 + 1: every voxel counts
    ],
)
def test_min_lesion_voxels(spacing: tuple[float, float, float], expected: int) -> None:
    assert anima_min_lesion_voxels(spacing) == expected


def test_full_overlap_is_detected_both_ways() -> None:
    ref = put(empty(), (2, 7), (2, 4), (2, 3))
    det = anima_lesion_detection(ref.copy(), ref, UNIT)
    assert (det.n_ref, det.n_pred, det.tp_ref, det.tp_pred) == (1, 1, 1, 1)
    assert (det.sensl, det.ppvl, det.f1) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize(("overlap", "detected"), [(2, False), (3, True)])
def test_alpha_is_strict(overlap: int, detected: bool) -> None:
    # Reference lesion of 20 voxels (x 0..19 on one row); the predicted lesion has 4 voxels,
    # `overlap` of them on the reference row, the rest on the next row (outside).
    ref = put(empty(), (0, 20), (5, 6), (5, 6))
    pred = empty()
    pred[0:overlap, 5, 5] = True
    pred[0 : 4 - overlap, 6, 5] = True
    det = anima_lesion_detection(pred, ref, UNIT)
    # 2 / 20 == 0.10 is not > 0.10; 3 / 20 = 0.15 is. The predicted lesion is at most
    # 2/4 outside (<= beta), so alpha alone decides.
    assert det.tp_ref == int(detected)
    assert det.sensl == float(detected)


@pytest.mark.parametrize(("n_inside", "detected"), [(3, True), (2, False)])
def test_beta_is_inclusive(n_inside: int, detected: bool) -> None:
    # Reference lesion of 10 voxels; the predicted lesion has 10 voxels, `n_inside` inside.
    ref = put(empty(), (0, 10), (5, 6), (5, 6))
    pred = empty()
    pred[0:n_inside, 5, 5] = True  # inside the reference row
    pred[0 : 10 - n_inside, 6, 5] = True  # outside, joined through x = 0
    assert pred.sum() == 10
    assert (pred & ref).sum() == n_inside
    det = anima_lesion_detection(pred, ref, UNIT)
    # Coverage 0.3 or 0.2 > alpha; outside fraction 7/10 == 0.70 passes (not > beta), 8/10 fails.
    assert det.tp_ref == int(detected)


def _gamma_case(a: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference lesion of 40 voxels (x 0..19, y 5..6); clean lesion A with `a` voxels of
    overlap on row y=5, bad lesion B with 20 - a voxels on row y=6 plus 3 rows outside."""
    ref = put(empty(), (0, 20), (5, 7), (5, 6))
    pred = empty()
    pred[0:a, 5, 5] = True  # A: inside the reference
    pred[a:20, 6, 5] = True  # B: touches A only diagonally (separate with 6-connectivity)
    pred[a:20, 7:10, 5] = True  # B: outside part, 3 x (20 - a) voxels: 75 % outside
    return pred, ref


@pytest.mark.parametrize(("a", "detected"), [(13, True), (12, False)])
def test_gamma_stops_the_walk_once_reached(a: int, detected: bool) -> None:
    pred, ref = _gamma_case(a)
    det = anima_lesion_detection(pred, ref, UNIT)
    assert det.n_pred == 2
    # A's share of the overlap: 13/20 == 0.65 reaches gamma, B is never checked;
    # 12/20 = 0.60 < 0.65, B is visited and is 75 % outside (> beta): missed.
    assert det.tp_ref == int(detected)
    # Roles swapped: both predicted lesions cover > 10 % of themselves with the reference,
    # and the reference lesion is 50 % outside the prediction (<= beta): both are TP.
    assert det.tp_pred == 2
    assert det.ppvl == 1.0


def test_face_connectivity_splits_diagonal_neighbours() -> None:
    pred, _ = _gamma_case(13)
    _, n6 = label_lesions(pred)
    assert n6 == 2
    # The same voxels are one lesion with 26-connectivity (A and B touch along an edge).
    from scipy import ndimage

    assert ndimage.label(pred, structure=np.ones((3, 3, 3)))[1] == 1


def _walk_bound_case() -> tuple[np.ndarray, np.ndarray]:
    ref = put(empty(), (0, 30), (0, 1), (0, 1))  # a line of 30 voxels
    pred = empty()
    pred[0:8, 0, 0] = True  # G1: 8 inside
    pred[9:16, 0, 0] = True  # G2: 7 inside
    pred[17:23, 0:5, 0] = True  # B3: 6 inside, 24 outside (0.8)
    pred[24:29, 0:5, 0] = True  # B4: 5 inside, 20 outside (0.8)
    return pred, ref


def test_walk_is_bounded_by_the_number_of_rows() -> None:
    # ANIMA's loop runs while k < (lesions of the tested side + 1): with one reference
    # lesion only G1 and G2 are checked (share 15/26 < gamma) and the lesion counts as detected.
    pred, ref = _walk_bound_case()
    det = anima_lesion_detection(pred, ref, UNIT)
    assert (det.n_ref, det.n_pred, det.tp_ref) == (1, 4, 1)
    # A second, unrelated reference lesion widens the bound: B3 is visited and fails beta.
    ref2 = put(ref.copy(), (0, 3), (10, 12), (10, 12))
    det2 = anima_lesion_detection(pred, ref2, UNIT)
    assert (det2.n_ref, det2.tp_ref) == (2, 0)


def test_small_components_are_removed_from_both_masks() -> None:
    ref = put(empty(), (2, 7), (2, 4), (2, 3))  # 10 voxels
    ref = put(ref, (20, 23), (10, 11), (8, 9))  # 3 voxels: below n_min = 4, dropped
    pred = ref.copy()
    pred = put(pred, (28, 31), (14, 15), (11, 12))  # 3-voxel false positive: dropped
    det = anima_lesion_detection(pred, ref, UNIT)
    assert (det.n_ref, det.n_pred, det.sensl, det.ppvl) == (1, 1, 1.0, 1.0)
    pred4 = put(pred.copy(), (28, 32), (14, 15), (11, 12))  # 4 voxels: kept, a false positive
    det4 = anima_lesion_detection(pred4, ref, UNIT)
    assert (det4.n_pred, det4.ppvl) == (2, 0.5)
    assert det4.f1 == pytest.approx(2 * 0.5 / 1.5)


def test_n_min_follows_anisotropic_spacing() -> None:
    # A 4-voxel lesion is kept on a unit grid (n_min 4) but dropped at 0.5 x 0.5 x 3 mm
    # (0.75 mm3 voxels, 4 voxels = 3 mm3, not > 3 mm3; n_min 5).
    ref = put(empty(), (2, 7), (2, 4), (2, 3))
    pred = put(ref.copy(), (20, 24), (10, 11), (8, 9))
    assert anima_lesion_detection(pred, ref, UNIT).n_pred == 2
    assert anima_lesion_detection(pred, ref, (0.5, 0.5, 3.0)).n_pred == 1
    mm = compute_metrics(pred, ref, (0.5, 0.5, 3.0), lesion_detection=True, units="mm").anima
    vox = compute_metrics(pred, ref, (0.5, 0.5, 3.0), lesion_detection=True, units="voxel").anima
    assert mm["PPVL"] == 1.0
    assert vox["PPVL"] == 0.5


def test_merged_and_split_lesions() -> None:
    # Two reference lesions bridged by one predicted lesion (merge).
    ref = put(empty(), (2, 6), (4, 6), (4, 5))
    ref = put(ref, (8, 12), (4, 6), (4, 5))
    pred = put(empty(), (2, 12), (4, 6), (4, 5))
    det = anima_lesion_detection(pred, ref, UNIT)
    # Each reference lesion is fully covered; the bridge is 4/20 outside: both detected.
    assert (det.n_ref, det.n_pred, det.tp_ref, det.tp_pred) == (2, 1, 2, 1)
    m = match_lesions(pred, ref)
    assert (m.n_ref, m.n_pred, m.tp_1to1) == (2, 1, 1)
    assert m.f1_1to1 == pytest.approx(2 / 3)
    assert (m.sensitivity, m.ppv, m.f1) == (1.0, 1.0, 1.0)
    # Split: roles swapped.
    det_s = anima_lesion_detection(ref, pred, UNIT)
    assert (det_s.tp_ref, det_s.tp_pred) == (1, 2)
    assert match_lesions(ref, pred).tp_1to1 == 1


def test_hungarian_matching_maximises_total_overlap() -> None:
    # R1 overlaps P1 by 6 and P2 by 4; R2 overlaps P1 only, by 5. Greedy on R1 would take P1 and
    # leave R2 unmatched; the optimal assignment is R1-P2, R2-P1 (4 + 5 > 6).
    ref = put(empty(), (0, 12), (0, 1), (0, 1))  # R1: x 0..11 on row y=0
    ref = put(ref, (0, 5), (4, 5), (0, 1))  # R2: x 0..4 on row y=4
    pred = empty()
    pred[0:6, 0, 0] = True  # P1 on R1: 6
    pred[0, 1:4, 0] = True  # P1 connector, outside both
    pred[0:5, 4, 0] = True  # P1 on R2: 5
    pred[7:11, 0, 0] = True  # P2 on R1: 4 (gap at x = 6)
    m = match_lesions(pred, ref)
    assert (m.n_ref, m.n_pred) == (2, 2)
    assert m.tp_1to1 == 2


@pytest.mark.parametrize(("covered", "found"), [(1, False), (2, True)])
def test_metrics_reloaded_coverage_is_inclusive(covered: int, found: bool) -> None:
    ref = put(empty(), (0, 20), (5, 6), (5, 6))  # 20 voxels
    pred = empty()
    pred[0:covered, 5, 5] = True  # 1/20 = 5 % or 2/20 = 10 % of the reference
    pred[0:20, 4, 5] = True  # joined outside row: the predicted lesion itself is < 10 % inside
    m = match_lesions(pred, ref)
    assert m.ref_found == int(found)
    assert m.sensitivity == float(found)


def test_empty_prediction_scores_zero() -> None:
    ref = put(empty(), (2, 7), (2, 4), (2, 3))
    det = anima_lesion_detection(empty(), ref, UNIT)
    assert (det.sensl, det.ppvl, det.f1) == (0.0, 0.0, 0.0)
    m = match_lesions(empty(), ref)
    assert (m.tp_1to1, m.f1_1to1, m.sensitivity, m.f1) == (0, 0.0, 0.0, 0.0)
    assert np.isnan(m.ppv)


def test_no_lesion_anywhere() -> None:
    m = match_lesions(empty(), empty())
    assert (m.n_ref, m.n_pred) == (0, 0)
    assert np.isnan(m.f1_1to1)
    assert np.isnan(m.f1)
