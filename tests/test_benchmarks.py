"""The batch benchmarks still run against the code they measure (they patch the runner's internals)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_scale_runs_on_a_tiny_cohort(tmp_path):
    out = tmp_path / "scale.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_scale.py"), "--n", "12", "--baseline-n", "3",
         "--workers", "1", "--sites", "2", "--workdir", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    run = results["run_cohort"]
    assert run["n_scans"] == 12
    assert run["n_tasks"] == 12  # Dask's task stream saw one task per scan
    assert {"discover", "cluster_start", "schedule", "compact", "validate_report"} <= set(run["phases_s"])
    resume = results["run_cohort_resume_all_skipped"]
    assert resume["cluster_started"] is False  # a no-op resume starts no cluster
