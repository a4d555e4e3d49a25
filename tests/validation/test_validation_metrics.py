"""Overlap metrics, empty masks, serialisation, the files API and error branches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cohort_sciseg.errors import GeometryError, ValidationError
from cohort_sciseg.validation.metrics import (
    ANIMA_DETECTION_KEYS,
    ANIMA_SEGMENTATION_KEYS,
    ANIMA_SURFACE_KEYS,
    compute_metrics,
    compute_metrics_files,
)

SHAPE = (9, 8, 7)  # 504 voxels


def shifted_boxes() -> tuple[np.ndarray, np.ndarray]:
    """Reference 2x3x4 box, prediction the same box shifted by one voxel along axis 0."""
    ref = np.zeros(SHAPE, bool)
    ref[2:4, 2:5, 1:5] = True  # 24 voxels
    pred = np.zeros(SHAPE, bool)
    pred[3:5, 2:5, 1:5] = True  # 24 voxels, 12 shared
    return pred, ref


def test_overlap_measures_hand_counted() -> None:
    pred, ref = shifted_boxes()
    a = compute_metrics(pred, ref, (2.0, 1.0, 1.0)).anima
    # TP 12, FP 12, FN 12, union 36, TN 504 - 36 = 468.
    assert a["Jaccard"] == pytest.approx(12 / 36)
    assert a["Dice"] == pytest.approx(0.5)
    assert a["Sensitivity"] == 0.5
    assert a["PPV"] == 0.5
    assert a["Specificity"] == pytest.approx(468 / 480)
    assert a["NPV"] == pytest.approx(468 / 480)
    assert a["RelativeVolumeError"] == 0.0
    assert a["HausdorffDistance"] == 2.0  # one voxel along axis 0 at 2 mm
    assert list(a) == [*ANIMA_SEGMENTATION_KEYS, *ANIMA_SURFACE_KEYS]


def test_relative_volume_error_is_signed_percent() -> None:
    ref = np.zeros(SHAPE, bool)
    ref[1:5, 1:6, 1:6] = True  # 100 voxels
    pred = np.zeros(SHAPE, bool)
    pred[1:4, 1:6, 1:6] = True  # 75 voxels
    a = compute_metrics(pred, ref, (1.0, 1.0, 1.0)).anima
    assert a["RelativeVolumeError"] == -25.0
    assert a["Sensitivity"] == 0.75
    assert a["PPV"] == 1.0


def test_empty_prediction() -> None:
    _, ref = shifted_boxes()
    res = compute_metrics(np.zeros(SHAPE), ref, (1.0, 1.0, 1.0), lesion_detection=True)
    a = res.anima
    assert (a["Dice"], a["Jaccard"], a["Sensitivity"], a["RelativeVolumeError"]) == (
        0.0,
        0.0,
        0.0,
        -100.0,
    )
    assert a["PPV"] is None
    assert a["Specificity"] == 1.0
    assert a["NPV"] == pytest.approx(480 / 504)
    assert all(a[k] is None for k in ANIMA_SURFACE_KEYS)
    assert (a["PPVL"], a["SensL"], a["F1_score"]) == (0.0, 0.0, 0.0)
    assert res.anima_input.path == "empty_prediction"
    c = res.corrected
    assert c["assd"] is None
    assert c["hd95"] is None
    assert c["nsd_1mm"] is None
    assert (c["n_ref_lesions"], c["n_pred_lesions"], c["lesion_tp_1to1"]) == (1, 0, 0)


def test_empty_reference_reports_only_lesion_counts() -> None:
    pred = np.zeros(SHAPE, bool)
    pred[1:3, 1:3, 1:2] = True  # 4 voxels: kept (n_min 4 on a unit grid)
    pred[6:8, 6, 5] = True  # 2 voxels: dropped
    res = compute_metrics(
        pred, np.zeros(SHAPE, bool), (1.0, 1.0, 2.0), lesion_detection=True, units="mm"
    )
    # 2 mm3 voxels: n_min = floor(3 / 2) + 1 = 2, so both lesions are kept: 6 voxels, 12 mm3.
    assert res.anima == {"NbTestedLesions": 2, "VolTestedLesions": 12.0}
    assert (res.anima_input.path, res.anima_input.n_ref_labels) == ("empty_reference", 1)
    res_vox = compute_metrics(pred, np.zeros(SHAPE, bool), (1.0, 1.0, 2.0), units="voxel")
    assert res_vox.anima == {"NbTestedLesions": 1, "VolTestedLesions": 4.0}
    both_empty = compute_metrics(np.zeros(SHAPE), np.zeros(SHAPE), (1.0, 1.0, 1.0))
    assert both_empty.anima == {"NbTestedLesions": 0, "VolTestedLesions": 0.0}
    assert both_empty.corrected["assd"] is None


def test_anima_reading_and_threshold_are_separate() -> None:
    ref = np.zeros(SHAPE)
    ref[2:5, 2:5, 2:5] = 1.0
    soft = ref * 0.7  # a soft prediction: 0.7 inside
    res = compute_metrics(soft, ref, (1, 1, 1))
    # ANIMA truncates 0.7 to 0: its prediction is empty; the corrected metrics see 0.7 > 0.5.
    assert (res.anima["Dice"], res.anima_input.path) == (0.0, "empty_prediction")
    assert res.corrected["assd"] == 0.0
    # strictly above the threshold: 0.7 is not > 0.7, the corrected prediction is empty.
    assert compute_metrics(soft, ref, (1, 1, 1), threshold=0.7).corrected["assd"] is None
    # ANIMA remaps labels: {0, 2} is a binary mask whose label 2 is foreground ...
    assert compute_metrics(ref * 2, ref, (1, 1, 1)).anima["Dice"] == 1.0
    # ... and an image without 0 has its lowest value as background.
    res = compute_metrics(ref + 1, ref, (1, 1, 1))
    assert (res.anima["Dice"], res.anima_input.path) == (1.0, "binary")
    assert res.corrected["assd"] is None  # every voxel > 0.5: the corrected prediction fills the image


def test_lesion_keys_and_serialisation() -> None:
    pred, ref = shifted_boxes()
    res = compute_metrics(pred, ref, (1.0, 1.0, 1.0), lesion_detection=True)
    assert list(res.anima)[-3:] == list(ANIMA_DETECTION_KEYS)
    js = res.to_json()
    assert js["units"] == "mm"
    assert js["anima_input"] == {
        "path": "binary", "n_pred_labels": 2, "n_ref_labels": 2, "warning": None
    }
    assert js["corrected"]["n_ref_lesions"] == 1
    assert js["Dice"] == res.anima["Dice"]
    rows = res.to_rows("site1_sub-01", "lesion")
    assert len(rows) == len(res.anima) + len(res.corrected)
    assert {r["source"] for r in rows} == {"anima", "corrected"}
    assert all(r["units"] == "mm" and r["scan_id"] == "site1_sub-01" for r in rows)
    assert all(r["value"] is None or isinstance(r["value"], float) for r in rows)
    assert not any(k.startswith("lesion_") for k in compute_metrics(pred, ref, (1, 1, 1)).corrected)


def test_crop_does_not_change_values() -> None:
    # Same masks placed in a small and in a large image: identical metrics apart from TN-based ones.
    pred, ref = shifted_boxes()
    big_p = np.zeros((40, 33, 21), bool)
    big_r = np.zeros_like(big_p)
    big_p[10:19, 10:18, 5:12] = pred
    big_r[10:19, 10:18, 5:12] = ref
    small = compute_metrics(pred, ref, (0.7, 1.1, 2.3), lesion_detection=True)
    big = compute_metrics(big_p, big_r, (0.7, 1.1, 2.3), lesion_detection=True)
    for key in ("Dice", "HausdorffDistance", "ContourMeanDistance", "SurfaceDistance", "SensL"):
        assert big.anima[key] == small.anima[key]
    assert big.corrected == small.corrected


def test_files_api(write_mask: Callable[..., Path]) -> None:
    pred, ref = shifted_boxes()
    p = write_mask("pred.nii.gz", pred, zooms=(2.0, 1.0, 1.0))
    r = write_mask("ref.nii.gz", ref, zooms=(2.0, 1.0, 1.0))
    res = compute_metrics_files(p, r, lesion_detection=True, scan_id="s1")
    assert res.voxel_size_mm == (2.0, 1.0, 1.0)
    assert res.anima["HausdorffDistance"] == 2.0
    assert compute_metrics_files(p, r, units="voxel").anima["HausdorffDistance"] == 1.0


@pytest.mark.parametrize(
    ("zooms", "origin", "match"),
    [
        ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), "voxel sizes"),
        ((2.0, 1.0, 1.0), (0.0, 0.0, 0.4), "origin"),
    ],
)
def test_files_api_rejects_other_grids(
    write_mask: Callable[..., Path],
    zooms: tuple[float, float, float],
    origin: tuple[float, float, float],
    match: str,
) -> None:
    pred, ref = shifted_boxes()
    r = write_mask("ref.nii.gz", ref, zooms=(2.0, 1.0, 1.0))
    p = write_mask("pred.nii.gz", pred, zooms=zooms, origin=origin)
    with pytest.raises(GeometryError, match=match):
        compute_metrics_files(p, r, scan_id="s1")


def test_files_api_rejects_other_shape(write_mask: Callable[..., Path]) -> None:
    r = write_mask("ref.nii.gz", np.zeros(SHAPE))
    p = write_mask("pred.nii.gz", np.zeros((9, 8, 6)))
    with pytest.raises(GeometryError, match=r"shape \(9, 8, 6\)"):
        compute_metrics_files(p, r)


def test_errors() -> None:
    pred, ref = shifted_boxes()
    with pytest.raises(ValidationError, match="3D"):
        compute_metrics(pred[0], ref[0], (1, 1, 1))
    with pytest.raises(GeometryError, match="differs from reference shape"):
        compute_metrics(pred[:-1], ref, (1, 1, 1))
    with pytest.raises(ValidationError, match="units is 'cm'"):
        compute_metrics(pred, ref, (1, 1, 1), units="cm")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="voxel_size_mm"):
        compute_metrics(pred, ref, (1, 0, 1))
    with pytest.raises(ValidationError, match="voxel_size_mm"):
        compute_metrics(pred, ref, (1, 1))
    with pytest.raises(ValidationError, match="nsd_tolerance"):
        compute_metrics(pred, ref, (1, 1, 1), nsd_tolerance=0.0)
    with pytest.raises(ValidationError, match="dtype"):
        compute_metrics(pred.astype(complex), ref, (1, 1, 1))
