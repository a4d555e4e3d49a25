"""RunLayout names the paths of a run folder (no I/O)."""

from __future__ import annotations

import pickle
from pathlib import Path

from cohort_sciseg.io import RunLayout


def test_run_layout_paths_are_under_the_root():
    layout = RunLayout("out")
    assert layout.root == Path("out")
    assert layout.table("scans") == Path("out/tables/scans")
    assert layout.discovered_scans == Path("out/tables/discovered_scans.parquet")
    assert layout.scan_log("site-a_sub-01_T2w") == Path("out/logs/site-a_sub-01_T2w.log")
    assert layout.run_log("20240101T000000", 12) == Path("out/logs/runs/run-20240101T000000-12.log")
    assert layout.run_record("20240101T000000", 12) == Path("out/logs/runs/run-20240101T000000-12.json")
    assert layout.dask_performance("T") == Path("out/logs/dask-performance-T.html")
    assert layout.scan_pages == Path("out/report/scans")
    assert layout.validation_stats == Path("out/validation/stats")
    assert layout.records == Path("out/.cohort-sciseg/records")
    assert layout.compaction_state.parent == layout.state
    assert layout.site_dataset("site1") == Path("out/site1")
    assert {layout.root / n for n in RunLayout.COHORT_FOLDERS} == {
        layout.tables, layout.logs, layout.report, layout.validation, layout.longitudinal}
    assert layout.longitudinal == Path("out/longitudinal")
    assert layout.subject_pages == Path("out/report/subjects")


def test_run_layout_is_a_value(tmp_path):
    layout = RunLayout(tmp_path)
    assert layout == RunLayout(str(tmp_path))
    assert pickle.loads(pickle.dumps(layout)) == layout
    assert layout.run_records() == []  # no folder yet: nothing, no error
