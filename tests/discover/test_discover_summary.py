"""write_scans, summarize and format_summary."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cohort_sciseg.discover import (
    SUMMARY_COLUMNS,
    Discovery,
    find_scans,
    format_summary,
    summarize,
    write_failures,
    write_scans,
)
from cohort_sciseg.records import (
    FAILURES_SCHEMA,
    SCANS_SCHEMA,
    failures_from_table,
    scans_from_table,
)
from cohort_sciseg.synth.tree import write_skeleton_tree


@pytest.fixture
def two_sites(tmp_path: Path) -> Discovery:
    a = write_skeleton_tree(tmp_path / "zurich", n_subjects=6, acquisitions=("sag", "ax"), seed=1)
    b = write_skeleton_tree(
        tmp_path / "toronto", n_subjects=3, sessions=("1", "2"), acquisitions=("ax",), seed=2
    )
    (b / "sub-01" / "ses-1" / "anat" / "sub-01_ses-1_acq-ax_T2w.nii.gz").write_bytes(b"")
    return find_scans([a, b])


def test_write_scans_round_trip(two_sites: Discovery, tmp_path: Path) -> None:
    out = write_scans(two_sites, tmp_path / "out" / "scans.parquet")
    assert out == tmp_path / "out" / "scans.parquet"
    table = pq.read_table(out)
    assert table.schema.equals(SCANS_SCHEMA, check_metadata=False)
    assert table.num_rows == len(two_sites.scans) == 17
    assert tuple(scans_from_table(table)) == two_sites.scans
    assert [p.name for p in out.parent.iterdir()] == ["scans.parquet"]  # no temporary file left


def test_write_failures_round_trip(two_sites: Discovery, tmp_path: Path) -> None:
    out = write_failures(two_sites, tmp_path / "failures.parquet")
    table = pq.read_table(out)
    assert table.schema.equals(FAILURES_SCHEMA, check_metadata=False)
    assert tuple(failures_from_table(table)) == two_sites.problems
    (row,) = table.to_pylist()
    assert row["stage"] == "discover"
    assert row["error_type"] == "NiftiError"
    assert row["scan_id"] == "site-toronto_sub-01_ses-1_acq-ax_T2w"
    empty = write_failures(Discovery(scans=()), tmp_path / "none.parquet")
    assert pq.read_table(empty).num_rows == 0


def test_summarize_counts(two_sites: Discovery) -> None:
    df = summarize(two_sites)
    assert tuple(df.columns) == SUMMARY_COLUMNS
    # Independent count straight from the records.
    expected = Counter((s.site, s.acquisition_plane, s.orientation) for s in two_sites.scans)
    got = {(r.site, r.acquisition_plane, r.orientation): r.n_scans for r in df.itertuples()}
    assert got == dict(expected)
    assert df["n_scans"].sum() == 17
    for r in df.itertuples():
        group = [
            s
            for s in two_sites.scans
            if (s.site, s.acquisition_plane, s.orientation)
            == (r.site, r.acquisition_plane, r.orientation)
        ]
        assert r.n_with_cord_mask == sum(s.cord_mask_path is not None for s in group)
        assert r.n_without_cord_mask == sum(s.cord_mask_path is None for s in group)
        assert r.n_with_lesion_mask == sum(s.lesion_mask_path is not None for s in group)
        assert r.n_without_lesion_mask == sum(s.lesion_mask_path is None for s in group)
        assert r.n_with_both_masks == sum(s.has_manual_masks for s in group)
    keys = list(zip(df["site"], df["acquisition_plane"], df["orientation"], strict=True))
    assert keys == sorted(keys)
    assert str(df["n_scans"].dtype) == "int64"


def test_summarize_empty() -> None:
    df = summarize(Discovery(scans=()))
    assert df.empty
    assert tuple(df.columns) == SUMMARY_COLUMNS


def test_format_summary(two_sites: Discovery) -> None:
    text = format_summary(two_sites)
    assert text.startswith("Discovery: 17 scan(s) from 2 dataset(s), 2 site(s); 1 problem(s)")
    assert "'zurich' at" in text
    assert "site 'toronto'" in text
    n_tor = sum(s.site == "toronto" for s in two_sites.scans)
    cord_tor = sum(s.site == "toronto" and s.cord_mask_path is not None for s in two_sites.scans)
    assert f"toronto  {n_tor} scan(s), cord mask {cord_tor}" in text
    planes = Counter(s.acquisition_plane for s in two_sites.scans)
    assert f"Acquisition planes: axial {planes['axial']}, sagittal {planes['sagittal']}" in text
    assert "Orientations: " in text
    assert "Manual masks: cord " in text
    assert "Problems: 1" in text
    assert "[NiftiError]" in text
    assert "Filters" not in text


def test_format_summary_filters_and_many_problems(tmp_path: Path) -> None:
    root = write_skeleton_tree(tmp_path / "s", n_subjects=9)
    for i in range(1, 8):
        (root / f"sub-0{i}" / "anat" / f"sub-0{i}_acq-sag_T2w.nii.gz").write_bytes(b"")
    disc = find_scans(root, exclude=["sub-09_acq-sag_T2w"])
    text = format_summary(disc)
    assert "Problems: 7" in text
    assert text.count("[NiftiError]") == 5
    assert "... and 2 more" in text
    assert "Filters: exclude=['sub-09_acq-sag_T2w'] (1)" in text


def test_format_summary_empty() -> None:
    text = format_summary(Discovery(scans=()))
    assert "0 scan(s)" in text
    assert "Sites:\n  none" in text
    assert "Acquisition planes: none" in text
