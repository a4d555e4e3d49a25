"""The record store: atomic commits, no duplicates on re-runs, hive tables every reader agrees on."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from cohort_sciseg.batch.store import RecordStore
from cohort_sciseg.discover import find_scans, site_label

SCHEMA = pa.schema([("scan_id", pa.string()), ("site", pa.string()), ("lesion_id", pa.int32()), ("v", pa.float64())])


def _rows(scan_id: str, n: int, v: float = 1.0) -> pa.Table:
    return pa.table(
        {"scan_id": [scan_id] * n, "lesion_id": list(range(1, n + 1)), "v": [v] * n},
        schema=pa.schema([("scan_id", pa.string()), ("lesion_id", pa.int32()), ("v", pa.float64())]),
    )


def test_commit_is_idempotent_and_replaces_older_keys(tmp_path):
    store = RecordStore(tmp_path)
    for _ in range(3):  # a task that runs three times
        store.commit(scan_id="s1", site="a", key="k1", status="done", tables={"lesions": _rows("s1", 2)})
    store.commit(scan_id="s2", site="a", key="k9", status="done", tables={"lesions": _rows("s2", 1)})
    store.commit(scan_id="s1", site="a", key="k2", status="done", tables={"lesions": _rows("s1", 3, 2.0)})
    assert store.is_done("a", "s1", "k2")
    assert not store.is_done("a", "s1", "k1")
    assert not (tmp_path / ".cohort-sciseg/records/a/s1/k1").exists()
    store.compact({"lesions": SCHEMA})
    t = pq.read_table(tmp_path / "tables/lesions").to_pandas()
    assert sorted(t.scan_id) == ["s1", "s1", "s1", "s2"]
    assert set(t[t.scan_id == "s1"].v) == {2.0}


def test_uncommitted_rows_are_never_read(tmp_path):
    store = RecordStore(tmp_path)
    store.commit(scan_id="s1", site="a", key="k1", status="done", tables={"lesions": _rows("s1", 1)})
    # a worker killed after writing its rows but before the pointer
    folder = tmp_path / ".cohort-sciseg/records/a/s2/k5"
    folder.mkdir(parents=True)
    pq.write_table(_rows("s2", 4), folder / "lesions.parquet")
    # and a temporary file left by a killed writer
    (tmp_path / ".cohort-sciseg/records/a/s1/k1/.lesions.abc.tmp.parquet").write_bytes(b"partial")
    store.compact({"lesions": SCHEMA})
    t = pq.read_table(tmp_path / "tables/lesions")
    assert t.column("scan_id").to_pylist() == ["s1"]
    assert [c.scan_id for c in store.commits()] == ["s1"]


def test_failed_records_are_not_done(tmp_path):
    store = RecordStore(tmp_path)
    store.commit(scan_id="s1", site="a", key="k1", status="failed", tables={})
    assert store.current("a", "s1").status == "failed"
    assert not store.is_done("a", "s1", "k1")
    with pytest.raises(ValueError, match="status"):
        store.commit(scan_id="s1", site="a", key="k1", status="maybe", tables={})


def test_every_reader_sees_site_as_string(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")

    store = RecordStore(tmp_path)
    store.commit(scan_id="s1", site="zurich", key="k", status="done", tables={"lesions": _rows("s1", 2)})
    store.commit(scan_id="s2", site="site2", key="k", status="done", tables={"lesions": _rows("s2", 1)})
    store.compact({"lesions": SCHEMA})
    folder = tmp_path / "tables/lesions"
    df = pd.read_parquet(folder)
    assert len(df) == 3
    assert sorted(map(str, df.site.unique())) == ["site2", "zurich"]
    assert pa.types.is_string(pq.read_table(folder).schema.field("site").type.value_type)
    d = duckdb.sql(f"select site, count(*) from read_parquet('{folder}/**/*.parquet', hive_partitioning=true) group by site order by site").fetchall()
    assert d == [("site2", 1), ("zurich", 2)]
    p = pl.read_parquet(f"{folder}/**/*.parquet", hive_partitioning=True)
    assert p.schema["site"] == pl.String
    assert p.height == 3


def test_sites_without_rows_lose_their_partition(tmp_path):
    store = RecordStore(tmp_path)
    store.commit(scan_id="s1", site="a", key="k", status="done", tables={"lesions": _rows("s1", 1)})
    store.commit(scan_id="s2", site="b", key="k", status="done", tables={"lesions": _rows("s2", 2)})
    assert store.compact({"lesions": SCHEMA}) == {"lesions": tmp_path / "tables/lesions"}
    assert (tmp_path / "tables/lesions/site=a/part-0.parquet").exists()
    store.commit(scan_id="s1", site="a", key="k2", status="done", tables={"lesions": _rows("s1", 0)})
    assert store.compact({"lesions": SCHEMA}) == {"lesions": tmp_path / "tables/lesions"}
    # the whole partition folder goes, not only its file: no empty site=a/ for readers to list
    assert not (tmp_path / "tables/lesions/site=a").exists()
    assert sorted(p.name for p in (tmp_path / "tables/lesions").iterdir()) == ["site=b"]
    assert pd.read_parquet(tmp_path / "tables/lesions").scan_id.tolist() == ["s2", "s2"]


# ---------------------------------------------------------------- numeric site labels

# The four readers infer the type of a hive partition column from the folder names.
# Discovery never gives a site label that any of them reads as a non-string; these are
# the raw names (dataset folders, participants.tsv site values) that would otherwise be
# read as an integer ("001" even as 1), a float, a boolean or a date.
NUMERIC_LOOKING = [
    ("001", "site001"),
    ("2", "site2"),
    ("01", "site01"),
    ("20200101", "site20200101"),
    ("1e5", "site1e5"),
    ("0x1F", "site0x1F"),
    ("0b101", "site0b101"),
    ("inf", "siteinf"),
    ("Infinity", "siteInfinity"),
    ("NaN", "siteNaN"),
    ("true", "sitetrue"),
    ("FALSE", "siteFALSE"),
    ("epoch", "siteepoch"),
]


def _assert_every_reader_sees(folder: Path, expected: dict[str, int]) -> None:
    """pandas, pyarrow.dataset, DuckDB and polars all read ``site`` as these exact strings.

    ``expected`` maps each site label to its number of rows. No reader is given a
    schema: each infers the partition column's type from the folder names.
    """
    duckdb = pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    want = sorted(expected.items())

    df = pd.read_parquet(folder)
    assert isinstance(df.site.dtype, pd.CategoricalDtype)
    assert pd.api.types.is_string_dtype(df.site.cat.categories)
    assert sorted(df.site.astype(object).value_counts().items()) == want

    t = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
    assert pa.types.is_string(t.schema.field("site").type)
    assert sorted(Counter(t.column("site").to_pylist()).items()) == want

    rows = duckdb.sql(
        f"select site, typeof(site), count(*) from read_parquet('{folder}/**/*.parquet', "
        "hive_partitioning=true) group by all order by site"
    ).fetchall()
    assert rows == [(site, "VARCHAR", n) for site, n in want]

    for p in (
        pl.read_parquet(f"{folder}/**/*.parquet", hive_partitioning=True),
        pl.scan_parquet(f"{folder}/**/*.parquet", hive_partitioning=True).collect(),
    ):
        assert p.schema["site"] == pl.String
        assert sorted(Counter(p["site"].to_list()).items()) == want


@pytest.mark.parametrize(("raw", "label"), NUMERIC_LOOKING)
def test_numeric_looking_site_labels_read_back_as_the_exact_string(tmp_path, raw, label):
    site = site_label(raw)
    assert site == label
    store = RecordStore(tmp_path)
    store.commit(scan_id="s1", site=site, key="k", status="done", tables={"lesions": _rows("s1", 2)})
    store.commit(scan_id="s2", site=site, key="k", status="done", tables={"lesions": _rows("s2", 1)})
    store.compact({"lesions": SCHEMA})
    assert [p.name for p in (tmp_path / "tables/lesions").iterdir()] == [f"site={label}"]
    _assert_every_reader_sees(tmp_path / "tables/lesions", {label: 3})


def _nifti(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros((7, 8, 9), np.int16), np.diag([0.5, 0.6, 3.0, 1.0])), path)


def test_discovered_numeric_sites_end_to_end(tmp_path):
    # A dataset folder named 001 whose participants.tsv gives sub-02 the site "02".
    bids = tmp_path / "bids" / "001"
    bids.mkdir(parents=True)
    (bids / "dataset_description.json").write_text('{"Name": "numeric", "BIDSVersion": "1.9.0"}')
    (bids / "participants.tsv").write_text("participant_id\tsite\nsub-01\tn/a\nsub-02\t02\nsub-03\t02\n")
    for sub in ("01", "02", "03"):
        _nifti(bids / f"sub-{sub}" / "anat" / f"sub-{sub}_T2w.nii.gz")
    scans = find_scans(bids).scans
    assert {s.sub: s.site for s in scans} == {"01": "site001", "02": "site02", "03": "site02"}

    out = tmp_path / "out"
    store = RecordStore(out)
    for s in scans:
        store.commit(scan_id=s.scan_id, site=s.site, key="k", status="done", tables={"lesions": _rows(s.scan_id, 2)})
    store.compact({"lesions": SCHEMA})
    assert sorted(p.name for p in (out / "tables/lesions").iterdir()) == ["site=site001", "site=site02"]
    _assert_every_reader_sees(out / "tables/lesions", {"site001": 2, "site02": 4})


# ---------------------------------------------------------------- empty tables

ALL_SCHEMAS = {"lesions": SCHEMA, "failures": SCHEMA, "metrics": SCHEMA}


def _failure(scan_id: str) -> pa.Table:
    return _rows(scan_id, 1, v=-1.0)


def test_table_without_rows_has_no_folder_and_is_not_returned(tmp_path):
    store = RecordStore(tmp_path)
    store.commit(scan_id="s1", site="a", key="k", status="done", tables={"lesions": _rows("s1", 2), "metrics": _rows("s1", 0)})
    store.commit(scan_id="s2", site="b", key="k", status="done", tables={"lesions": _rows("s2", 1)})
    result = store.compact(ALL_SCHEMAS)
    assert result == {"lesions": tmp_path / "tables/lesions"}
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["lesions"]
    assert all(path.is_dir() for path in result.values())


def test_no_commits_gives_no_tables(tmp_path):
    assert RecordStore(tmp_path).compact(ALL_SCHEMAS) == {}
    assert not (tmp_path / "tables").exists()


def test_failures_table_is_removed_when_every_scan_later_succeeds(tmp_path):
    store = RecordStore(tmp_path)
    # run 1: s1 (site a) and s3 (site c) fail, s2 (site b) is done
    store.commit(scan_id="s1", site="a", key="k1", status="failed", tables={"failures": _failure("s1")})
    store.commit(scan_id="s2", site="b", key="k1", status="done", tables={"lesions": _rows("s2", 1)})
    store.commit(scan_id="s3", site="c", key="k1", status="failed", tables={"failures": _failure("s3")})
    result = store.compact(ALL_SCHEMAS)
    assert list(result) == ["lesions", "failures"]
    assert sorted(pd.read_parquet(result["failures"]).scan_id) == ["s1", "s3"]

    # run 2: s1 succeeds; site a's failures partition goes, site c's stays
    store.commit(scan_id="s1", site="a", key="k2", status="done", tables={"lesions": _rows("s1", 2)})
    result = store.compact(ALL_SCHEMAS)
    assert list(result) == ["lesions", "failures"]
    assert sorted(p.name for p in (tmp_path / "tables/failures").iterdir()) == ["site=c"]
    assert pd.read_parquet(result["failures"]).scan_id.tolist() == ["s3"]

    # run 3: s3 succeeds too; the failures table is gone and no longer listed
    store.commit(scan_id="s3", site="c", key="k2", status="done", tables={"lesions": _rows("s3", 1)})
    result = store.compact(ALL_SCHEMAS)
    assert result == {"lesions": tmp_path / "tables/lesions"}
    assert not (tmp_path / "tables/failures").exists()
    assert sorted(pd.read_parquet(result["lesions"]).scan_id) == ["s1", "s1", "s2", "s3"]


def test_partitions_of_sites_without_records_are_removed(tmp_path):
    store = RecordStore(tmp_path)
    store.commit(scan_id="s1", site="a", key="k", status="failed", tables={"failures": _failure("s1")})
    store.compact(ALL_SCHEMAS)
    shutil.rmtree(tmp_path / ".cohort-sciseg/records/a")  # site a dropped from the run
    assert store.compact(ALL_SCHEMAS) == {}
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == []


def test_only_rewrites_the_named_sites(tmp_path):
    store = RecordStore(tmp_path)
    store.commit(scan_id="s1", site="a", key="k1", status="failed", tables={"failures": _failure("s1")})
    store.commit(scan_id="s2", site="b", key="k1", status="failed", tables={"failures": _failure("s2")})
    store.compact(ALL_SCHEMAS)
    store.commit(scan_id="s1", site="a", key="k2", status="done", tables={"lesions": _rows("s1", 1)})
    store.commit(scan_id="s2", site="b", key="k2", status="done", tables={"lesions": _rows("s2", 1)})
    result = store.compact(ALL_SCHEMAS, only=["a"])
    # site b was not rewritten: its old failures partition stays until it is
    assert sorted(p.name for p in (tmp_path / "tables/failures").iterdir()) == ["site=b"]
    assert sorted(p.name for p in (tmp_path / "tables/lesions").iterdir()) == ["site=a"]
    assert list(result) == ["lesions", "failures"]
    result = store.compact(ALL_SCHEMAS, only=["b"])
    assert result == {"lesions": tmp_path / "tables/lesions"}
    assert not (tmp_path / "tables/failures").exists()


def test_other_files_in_a_table_folder_are_kept(tmp_path):
    store = RecordStore(tmp_path)
    store.commit(scan_id="s1", site="a", key="k1", status="failed", tables={"failures": _failure("s1")})
    store.compact(ALL_SCHEMAS)
    note = tmp_path / "tables/failures/README.txt"
    note.write_text("kept")
    extra = tmp_path / "tables/failures/site=a/notes.txt"
    extra.write_text("kept")
    store.commit(scan_id="s1", site="a", key="k2", status="done", tables={"lesions": _rows("s1", 1)})
    result = store.compact(ALL_SCHEMAS)
    assert "failures" not in result  # no rows, though the folder stays for the user's files
    assert note.read_text() == "kept"
    assert extra.read_text() == "kept"
    assert not (tmp_path / "tables/failures/site=a/part-0.parquet").exists()


def test_extra_rows_join_their_site_partition_for_this_compaction_only(tmp_path):
    store = RecordStore(tmp_path)
    store.commit(scan_id="s1", site="a", key="k", status="done", tables={"lesions": _rows("s1", 2)})
    extra = pa.table({"scan_id": ["bad1", "dataset:x"], "site": ["a", None], "lesion_id": [0, 0], "v": [0.0, 0.0]},
                     schema=SCHEMA)
    result = store.compact({"lesions": SCHEMA}, extra={"lesions": extra})
    got = pd.read_parquet(result["lesions"]).astype({"site": str})
    assert sorted(zip(got.site, got.scan_id, strict=True)) == [("a", "bad1"), ("a", "s1"), ("a", "s1"), ("unknown", "dataset:x")]
    store.compact({"lesions": SCHEMA})  # the next compaction without them: gone, and so is the empty partition
    got = pd.read_parquet(tmp_path / "tables" / "lesions").astype({"site": str})
    assert sorted(got.scan_id) == ["s1", "s1"]
    assert not (tmp_path / "tables" / "lesions" / "site=unknown").exists()


def test_compaction_rewrites_only_the_sites_whose_records_changed(tmp_path):
    store = RecordStore(tmp_path)
    for site in ("a", "b"):
        store.commit(scan_id=f"{site}1", site=site, key="k", status="done", tables={"lesions": _rows(f"{site}1", 2)})
    store.compact({"lesions": SCHEMA})
    part = {site: tmp_path / "tables" / "lesions" / f"site={site}" / "part-0.parquet" for site in ("a", "b")}
    stamp = {site: p.stat().st_mtime_ns for site, p in part.items()}
    store.compact({"lesions": SCHEMA})  # nothing changed: nothing rewritten
    assert {site: p.stat().st_mtime_ns for site, p in part.items()} == stamp
    store.commit(scan_id="b2", site="b", key="k", status="done", tables={"lesions": _rows("b2", 1)})
    store.compact({"lesions": SCHEMA})
    assert part["a"].stat().st_mtime_ns == stamp["a"]
    assert part["b"].stat().st_mtime_ns != stamp["b"]
    got = pd.read_parquet(tmp_path / "tables" / "lesions").astype({"site": str})
    assert sorted(got.scan_id) == ["a1", "a1", "b1", "b1", "b2"]
    part["a"].unlink()  # a partition lost since: rewritten from the records
    store.compact({"lesions": SCHEMA})
    assert part["a"].is_file()
    other = store.compact({"lesions": SCHEMA}, tables_dir=tmp_path / "elsewhere")  # another target: full
    assert sorted(pd.read_parquet(other["lesions"]).scan_id) == ["a1", "a1", "b1", "b1", "b2"]
