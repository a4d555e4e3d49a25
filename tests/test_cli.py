"""The command line, called in-process (fast) and once as a real console script."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cohort_sciseg.cli import DemoCommand, DiscoverCommand, SynthCommand, main
from cohort_sciseg.records import FAILURES_SCHEMA, SCANS_SCHEMA
from cohort_sciseg.synth.tree import write_skeleton_tree


@pytest.fixture
def tree(tmp_path) -> Path:
    return write_skeleton_tree(tmp_path / "siteA", n_subjects=3, sessions=("1",), seed=1)


def test_discover_writes_tables_and_summary(tree, tmp_path):
    out = io.StringIO()
    rc = DiscoverCommand(bids_dirs=[tree], output=tmp_path / "t" / "scans.parquet").run(out)
    assert rc == 0
    table = pq.read_table(tmp_path / "t" / "scans.parquet")
    assert table.schema.equals(SCANS_SCHEMA)
    assert table.num_rows == 3
    assert pq.read_table(tmp_path / "t" / "failures.parquet").schema.equals(FAILURES_SCHEMA)
    text = out.getvalue()
    assert "3 scan(s)" in text
    assert "scans table:" in text


def test_discover_problems_exit_1(tree, tmp_path):
    img = next(tree.rglob("*_T2w.nii.gz"))
    img.write_bytes(b"")  # an empty image: recorded, not fatal
    out = io.StringIO()
    rc = DiscoverCommand(bids_dirs=[tree], output=tmp_path / "scans.parquet").run(out)
    assert rc == 1
    failures = pq.read_table(tmp_path / "failures.parquet").to_pylist()
    assert len(failures) == 1
    assert "empty" in failures[0]["message"]
    assert pq.read_table(tmp_path / "scans.parquet").num_rows == 2


def test_main_fatal_error_exit_2(tmp_path, capsys):
    rc = main(["discover", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "not a BIDS dataset" in err
    assert "Fix:" in err


def test_main_strict_stops_at_first_problem(tree, capsys):
    next(tree.rglob("*_T2w.nii.gz")).write_bytes(b"")
    assert main(["discover", str(tree), "--strict"]) == 2
    assert "empty" in capsys.readouterr().err


def test_main_filters(tree, capsys):
    assert main(["discover", str(tree), "--participant-label", "nobody"]) == 2
    err = capsys.readouterr().err
    assert "no T2w images found" in err
    assert "nobody" in err


def test_main_discover_filters_pass_through(tree, tmp_path, capsys):
    rc = main(["discover", str(tree), "-o", str(tmp_path / "s.parquet"), "--session", "1"])
    assert rc == 0
    assert pq.read_table(tmp_path / "s.parquet").num_rows == 3


def test_version(capsys):
    with pytest.raises(SystemExit) as ei:
        main(["--version"])
    assert ei.value.code == 0
    assert "cohort-sciseg" in capsys.readouterr().out


def test_synth_then_discover(tmp_path):
    out = io.StringIO()
    assert SynthCommand(out=tmp_path / "c", sites=2, subjects_per_site=2, seed=3).run(out) == 0
    roots = sorted(p for p in (tmp_path / "c").iterdir() if (p / "dataset_description.json").is_file())
    assert len(roots) == 2
    rc = DiscoverCommand(bids_dirs=roots, output=tmp_path / "scans.parquet").run(io.StringIO())
    assert rc == 0
    df = pq.read_table(tmp_path / "scans.parquet").to_pandas()
    assert df["site"].nunique() == 2
    assert df["cord_mask_path"].notna().all()
    assert df["lesion_mask_path"].notna().all()


def test_demo_runs_and_resumes(tmp_path):
    """The demo pipeline end to end (with the fast stand-in segmenter; the bundled model is tested in tests/segment)."""
    import pandas as pd

    kw = {"out": tmp_path / "demo", "subjects_per_site": 1, "segmenter": "copy-manual", "workers": 2, "progress": False}
    out = io.StringIO()
    assert DemoCommand(**kw).run(out) == 0
    scans = pd.read_parquet(tmp_path / "demo" / "derivatives" / "tables" / "scans")
    assert len(scans) >= 3
    assert set(map(str, scans.site)) == {"site1", "site2", "site3"}
    assert "validation against the manual masks" in out.getvalue()
    assert (tmp_path / "demo" / "derivatives" / "validation" / "stats" / "agreement.csv").is_file()
    out2 = io.StringIO()
    assert DemoCommand(**kw).run(out2) == 0
    assert "reusing" in out2.getvalue()
    assert f"0 done, {len(scans)} already done" in out2.getvalue()


def test_console_script_installed(tree):
    exe = Path(sys.executable).parent / "cohort-sciseg"
    if not exe.exists():
        exe = Path(shutil.which("cohort-sciseg") or "missing")
    if not exe.exists():
        pytest.skip("console script not installed (pip install -e .)")
    r = subprocess.run([str(exe), "discover", str(tree)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "3 scan(s)" in r.stdout
