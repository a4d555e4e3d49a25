"""The record store: atomic commits, no duplicates on re-runs, hive tables every reader agrees on."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cohort_sciseg.batch.store import RecordStore

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
    import pandas as pd

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
    store.compact({"lesions": SCHEMA})
    assert (tmp_path / "tables/lesions/site=a/part-0.parquet").exists()
    store.commit(scan_id="s1", site="a", key="k2", status="done", tables={"lesions": _rows("s1", 0)})
    store.compact({"lesions": SCHEMA})
    assert not (tmp_path / "tables/lesions/site=a/part-0.parquet").exists()
