"""Per-scan uncertainty (segment.uncertainty): analytic values, the engine's masks unchanged, nnU-Net's probabilities."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from cohort_sciseg.io import load_nifti
from cohort_sciseg.segment import SegmentationEngine
from cohort_sciseg.segment.testing import make_tiny_model
from cohort_sciseg.segment.uncertainty import (
    UNCERTAINTY_COLUMNS,
    ScanUncertainty,
    binary_entropy,
    structure_uncertainty,
)


def _h(p: float) -> float:
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def test_binary_entropy_analytic_values() -> None:
    got = binary_entropy(np.array([0.0, 0.5, 1.0, 0.25, 0.9, -0.1, 1.2]))
    assert got == pytest.approx([0.0, 1.0, 0.0, 0.8112781244591328, _h(0.9), 0.0, 0.0])


def test_structure_uncertainty_by_hand() -> None:
    # deliberately non-cubic: a lesion voxel whose 6 face neighbours are doubtful
    p = np.zeros((7, 8, 9))
    pred = np.zeros(p.shape, dtype=bool)
    pred[3, 4, 5] = True
    p[3, 4, 5] = 0.9
    for axis in range(3):
        for step in (-1, 1):
            idx = [3, 4, 5]
            idx[axis] += step
            p[tuple(idx)] = 0.3
    p[0, 0, 0] = 0.01  # confident background far away: outside the set
    mean, volume = structure_uncertainty(p, pred, 0.5)
    assert mean == pytest.approx((_h(0.9) + 6 * _h(0.3)) / 7)
    assert volume == pytest.approx(6 * 0.5)


def test_band_counts_confident_border_voxels() -> None:
    p = np.zeros((5, 6, 7))
    pred = np.zeros(p.shape, dtype=bool)
    pred[2, 3, 3] = True
    p[2, 3, 3] = 0.6  # in U; its 6 face neighbours (p = 0) join through the band, entropy 0
    assert structure_uncertainty(p, pred, 1.0) == pytest.approx((1.0 / 7 * _h(0.6), 1.0))
    assert structure_uncertainty(p, pred, 1.0, band=0) == pytest.approx((_h(0.6), 1.0))


def test_missed_lesion_counts_and_nothing_is_zero() -> None:
    p = np.zeros((4, 5, 6))
    none = np.zeros(p.shape, dtype=bool)
    assert structure_uncertainty(p, none, 2.0) == (0.0, 0.0)
    p[1, 2, 3:6] = 0.45  # a lesion nearly found: no predicted voxel
    mean, volume = structure_uncertainty(p, none, 2.0)
    assert mean == pytest.approx(_h(0.45))
    assert volume == pytest.approx(6.0)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="expected the same grid"):
        structure_uncertainty(np.zeros((2, 3, 4)), np.zeros((2, 3, 5), dtype=bool), 1.0)


def test_columns_are_in_the_scans_schema() -> None:
    from cohort_sciseg.records import RUN_SCANS_SCHEMA

    for c in UNCERTAINTY_COLUMNS:
        assert RUN_SCANS_SCHEMA.field(c).type == "double"
    assert tuple(ScanUncertainty(1.0, 2.0, 3.0, 4.0).as_row()) == UNCERTAINTY_COLUMNS


def _reference(engine: SegmentationEngine, predicted: object) -> ScanUncertainty:
    """The same measure from nnU-Net's own probabilities path (``return_probabilities=True``), uncropped."""
    from nnunetv2.inference.export_prediction import (
        convert_predicted_logits_to_segmentation_with_correct_shape,
    )

    plans = engine.plans()
    props = predicted.prepared.properties  # type: ignore[attr-defined]
    seg, probs = convert_predicted_logits_to_segmentation_with_correct_shape(
        predicted.logits, plans.plans_manager, engine._configuration_manager(),  # type: ignore[attr-defined]
        plans.label_manager, props, return_probabilities=True, num_threads_torch=1,
    )
    split, lm = engine.folder.labels, plans.label_manager
    voxel = float(np.prod(props["spacing"]))
    out = {}
    for name, values in (("lesion", split.lesion_values), ("cord", split.cord_values)):
        if lm.has_regions:
            i = [tuple(np.atleast_1d(r)) for r in lm.foreground_regions].index(tuple(values))
            p = probs[i]
        else:
            p = sum(probs[v] for v in values)
        mean, vol = structure_uncertainty(p, np.isin(seg, values), voxel)
        out[f"{name}_uncertainty"], out[f"{name}_uncertain_volume_mm3"] = mean, vol
    return ScanUncertainty(**out)


@pytest.mark.parametrize("layout", ["regions", "labels"])
def test_engine_masks_unchanged_and_uncertainty_matches_nnunet_probabilities(
    layout: Literal["regions", "labels"], write_image: Callable[..., Path], tmp_path: Path, fresh_cache: None
) -> None:
    model = make_tiny_model(tmp_path / "m", layout=layout)
    engine = SegmentationEngine(model=str(model), threads=1)
    predicted = engine.infer(engine.prepare(load_nifti(write_image())))
    plain = engine.labels(predicted)
    labels, found = engine.labels_with_uncertainty(predicted)
    assert np.array_equal(plain, labels)
    plain_out = engine.write_outputs(predicted, tmp_path / "a")
    with_out = engine.write_outputs(predicted, tmp_path / "b", uncertainty=True)
    assert plain_out.masks.uncertainty is None
    assert with_out.masks.uncertainty == found
    for attr in ("cord", "lesion", "label_map"):
        assert np.array_equal(getattr(plain_out.masks, attr), getattr(with_out.masks, attr))
    ref = _reference(engine, predicted)
    for c in UNCERTAINTY_COLUMNS:
        if c.endswith("_disagreement"):  # not asked: null (segment.members)
            assert getattr(found, c) is None
        else:
            assert getattr(found, c) == pytest.approx(getattr(ref, c), rel=1e-6, abs=1e-9)
    assert 0.0 <= found.lesion_uncertainty <= 1.0
    assert 0.0 <= found.cord_uncertainty <= 1.0


def _scan_row(tmp_path: Path, name: str, plugin: str, **options: object) -> dict[str, object]:
    """The ``tables/scans`` row ``process_scan`` commits for one synthetic scan with manual masks."""
    from cohort_sciseg.batch.segmenters import SegmenterSpec
    from cohort_sciseg.batch.store import RecordStore
    from cohort_sciseg.batch.tasks import TaskConfig, process_scan
    from cohort_sciseg.discover import find_scans
    from cohort_sciseg.synth import synthesize_cohort

    cohort_dir = tmp_path / "cohort"
    if not cohort_dir.is_dir():
        synthesize_cohort(cohort_dir, sites=1, subjects_per_site=1, seed=11)
    scan = next(s for s in find_scans(sorted(cohort_dir.glob("site*"))).scans if s.has_manual_masks)
    out = tmp_path / name
    spec = SegmenterSpec.make(plugin, **options)
    outcome = process_scan(scan, TaskConfig(out_dir=str(out), segmenter=spec, run_id="r", report=False))
    assert outcome.status == "done", outcome.message
    store = RecordStore(out)
    commit = store.current(scan.site, scan.scan_id)
    assert commit is not None
    table = store.read(commit, "scans")
    assert table is not None
    return table.to_pylist()[0]


@pytest.mark.parametrize("plugin", ["nnunet", "copy-manual"])
def test_process_scan_fills_the_columns_of_engines_only(plugin: str, tmp_path: Path, fresh_cache: None) -> None:
    options = {"device": "cpu", "threads": 1} if plugin == "nnunet" else {}
    row = _scan_row(tmp_path, "run", plugin, **options)
    if plugin == "nnunet":
        assert 0.0 <= row["lesion_uncertainty"] <= 1.0  # type: ignore[operator]
        assert 0.0 <= row["cord_uncertainty"] <= 1.0  # type: ignore[operator]
        assert row["cord_uncertain_volume_mm3"] >= 0.0  # type: ignore[operator]
    else:  # no probabilities: null, as the scans of runs made before the columns
        assert all(row[c] is None for c in UNCERTAINTY_COLUMNS)


def test_process_scan_fills_the_disagreement_when_asked(tmp_path: Path, fresh_cache: None) -> None:
    """``run --segmenter-option disagreement=true``: the two columns in the scan's row; without it, null."""
    model = str(make_tiny_model(tmp_path / "m", folds=(0, 1), seed=2))
    rows = {asked: _scan_row(tmp_path, f"run{asked}", "nnunet", model=model, device="cpu", threads=1,
                             disagreement=asked) for asked in (True, False)}
    assert 0.0 <= rows[True]["cord_disagreement"] <= 1.0  # type: ignore[operator]
    assert 0.0 <= rows[True]["lesion_disagreement"] <= 1.0  # type: ignore[operator]
    assert rows[False]["cord_disagreement"] is None
    assert rows[False]["lesion_disagreement"] is None
    assert rows[True]["cord_uncertainty"] is not None


@pytest.mark.slow
def test_ranking_is_informative_on_the_synthetic_cohort(tmp_path: Path) -> None:
    """On a cohort of uneven image quality the most uncertain scans are the worst segmented.

    The benchmark's ranking on ``quality_spread=0.7`` (benchmarks/results/uncertainty.json:
    rho -0.61, p 0.007 there): Spearman's rho of the lesion uncertainty against the lesion
    Dice is clearly negative, and correcting the top 3 fixes more Dice mass than 3 random
    scans on average. (On the default cohort, where the demo model's errors are small and
    even, it is not: the benchmark reports that too.)
    """
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "u.json"
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "bench_uncertainty.py"), "--skip-cost", "--draws", "2000",
         "--quality-spread", "0.7", "--workdir", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranking = json.loads(out.read_text())["ranking"]["quality_spread=0.7"]
    assert ranking["cohort"]["n_with_lesion_dice"] >= 10
    assert all(0.0 <= r["lesion_uncertainty"] <= 1.0 for r in ranking["per_scan"])
    rho = ranking["spearman_lesion_uncertainty_vs_lesion_dice"]
    assert rho["rho"] < -0.3, rho
    top3 = next(d for d in ranking["dice_mass"] if d["k"] == 3)
    assert top3["top_k_dice_mass_fixed"] > top3["random_k_mean"], top3
