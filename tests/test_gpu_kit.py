"""The GPU measurement kit (benchmarks/gpu/) cannot rot while no GPU is at hand.

Its CPU dry run (``run.sh OUTDIR --cpu --small``) goes through the same code as the run on the
GPU machine: every step must finish without error and write its figures; the values of the
figures are not asserted (timings never are), only their presence and the correctness goal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GPU = REPO / "benchmarks" / "gpu"


def _kit_module(name: str) -> object:
    import importlib

    sys.path.insert(0, str(GPU))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(GPU))


def test_committed_sciseg_size_plan_is_what_nnunets_planner_makes() -> None:
    """sciseg_size_plans.json must stay nnU-Net's own plan for the kit's fingerprint."""
    model = _kit_module("sciseg_size_model")
    fresh = model.make_plans()  # type: ignore[attr-defined]
    committed = json.loads((GPU / "sciseg_size_plans.json").read_text())
    assert fresh["configurations"]["3d_fullres"] == committed["configurations"]["3d_fullres"]
    plan = model.describe(committed)  # type: ignore[attr-defined]
    assert plan["network"].endswith("PlainConvUNet")
    assert plan["features_per_stage"][0] == 32
    assert max(plan["features_per_stage"]) == 320  # nnU-Net's default 3D cap


def test_sciseg_size_model_loads_in_the_engine_and_gives_empty_masks(tmp_path: Path) -> None:
    import nibabel as nib
    import numpy as np

    from cohort_sciseg.io import load_nifti
    from cohort_sciseg.segment import SegmentationEngine, clear_cache
    from cohort_sciseg.segment.testing import textured_image

    model = _kit_module("sciseg_size_model")
    folder = model.write_model(tmp_path / "m", small=True)  # type: ignore[attr-defined]
    image = tmp_path / "img.nii.gz"
    nib.save(nib.Nifti1Image(textured_image((30, 41, 22)), np.diag([-0.9, 0.8, 1.1, 1.0])), image)
    clear_cache()
    try:
        engine = SegmentationEngine(model=str(folder), device="cpu", resampling="torch")
        assert engine.describe()["integrity"] == "verified"
        labels = engine.predict_labels(load_nifti(image))
    finally:
        clear_cache()
    assert labels.shape == (30, 41, 22)
    assert not labels.any()  # zeroed head: no random "lesions" to measure (see the module docstring)


@pytest.mark.slow
def test_gpu_kit_dry_run_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(
        [str(GPU / "run.sh"), str(out), "--cpu", "--small", "--budget", "1500", "--work", str(tmp_path / "work")],
        env=env, capture_output=True, text=True, timeout=2400, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    doc = json.loads((out / "kit.json").read_text())
    steps = doc["steps"]
    for name in ("environment", "models", "site_styles", "correctness", "latency", "throughput"):
        assert "result" in steps[name], (name, steps[name])
    assert (out / "env.txt").is_file()
    assert "[kit] throughput" in (out / "kit.log").read_text()

    correctness = steps["correctness"]["result"]
    assert len(correctness["scans"]) >= 3  # the three site styles (+ real scans when ../shared/data is here)
    assert correctness["min_dice"] >= 0.999
    assert correctness["goal_met"] is True

    latency = steps["latency"]["result"]
    assert {k.split("/")[0] for k in latency} == {"sciseg-size", "demo"}
    assert {k.split("/")[2] for k in latency} == {"exact", "torch"}
    for row in latency.values():
        assert row["network_s"] > 0
        assert row["rest_s"] > 0

    throughput = steps["throughput"]["result"]
    n = throughput["n_scans"]
    assert n >= 3
    ways = throughput["sciseg-size"]
    for way, scans in (("run", n), ("per_process", 2), ("nnUNetv2_predict", n)):
        assert "error" not in ways[way], (way, ways[way])
        assert ways[way]["scans"] == scans, way
        assert ways[way]["scans_per_s"] > 0
    assert ways["run_exact_resampling"] == {"skipped": "--small"}
    assert ways["run"]["failed"] == 0
    (busy,) = ways["run"]["device_busy"].values()  # one (emulated) GPU worker ran the model
    assert busy["scans"] == n
    ratios = ways["ratios"]
    assert all(ratios[k] is not None for k in ("run_vs_per_process", "run_vs_nnUNetv2_predict"))
