"""Site labels that look like numbers stay text in every engine; absent tables are empty with their columns.

Discovery never makes such labels (``discover.entities.site_label``), but a run folder
made by another version or renamed by hand can hold ``site=01``; every hive reader that
infers the partition type would read it as the integer 1.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from cohort_sciseg.analysis import Run, open_run
from cohort_sciseg.analysis.run import PARTITIONED_TABLES
from cohort_sciseg.io import RunLayout

RENAMED = {"site1": "01", "site2": "1e5"}


@pytest.fixture(scope="module")
def numeric_run(run_case, tmp_path_factory) -> Run:
    out = tmp_path_factory.mktemp("numeric_sites") / "out"
    layout = RunLayout(out)
    shutil.copytree(RunLayout(run_case.out).tables, layout.tables)
    shutil.copytree(RunLayout(run_case.out).run_logs, layout.run_logs)
    for name in PARTITIONED_TABLES:
        for old, new in RENAMED.items():
            part = layout.table(name) / f"site={old}"
            if part.is_dir():
                part.rename(layout.table(name) / f"site={new}")
    for absent in ("failures", "metrics"):
        shutil.rmtree(layout.table(absent), ignore_errors=True)
    return open_run(out)


def _expected(run_case, name: str) -> Counter[str]:
    """Rows per renamed site, read by pyarrow from the original run."""
    t = ds.dataset(
        RunLayout(run_case.out).table(name), format="parquet", partitioning="hive"
    ).to_table()
    return Counter(RENAMED[s] for s in t.column("site").to_pylist())


def test_pandas_reads_numeric_looking_sites_as_text(numeric_run, run_case):
    for name in ("scans", "lesions", "lesion_slices", "biomarkers"):
        df = numeric_run.table(name)
        assert pd.api.types.is_string_dtype(df["site"]), name
        assert Counter(df["site"]) == _expected(run_case, name), name
    assert set(numeric_run.site_summary()["site"]) == {"01", "1e5"}


def test_duckdb_reads_numeric_looking_sites_as_varchar(numeric_run, run_case):
    pytest.importorskip("duckdb")
    con = numeric_run.duckdb()
    rows = con.sql(
        "select site, typeof(site), count(*) from scans group by all order by site"
    ).fetchall()
    assert rows == [(s, "VARCHAR", n) for s, n in sorted(_expected(run_case, "scans").items())]
    assert Counter(con.sql("select * from lesions").df()["site"]) == _expected(run_case, "lesions")


def test_polars_reads_numeric_looking_sites_as_string(numeric_run, run_case):
    pl = pytest.importorskip("polars")
    df = numeric_run.polars()["scans"].collect()
    assert df.schema["site"] == pl.String
    assert Counter(df["site"].to_list()) == _expected(run_case, "scans")


def test_absent_tables_are_empty_with_their_schema_columns(numeric_run):
    for name in ("failures", "metrics"):
        columns = [*PARTITIONED_TABLES[name].names]
        df = numeric_run.table(name)
        assert df.empty
        assert set(df.columns) == set(columns) | {"site"}
        assert df.attrs["descriptions"]["scan_id"]
    assert (
        numeric_run.excluded()["reason"].tolist().count("failed") == 1
    )  # the scans table still says failed


def test_absent_tables_in_duckdb_and_polars(numeric_run):
    pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    con = numeric_run.duckdb()
    for name in ("failures", "metrics"):
        rel = con.sql(f"select * from {name}")
        assert rel.fetchall() == []
        assert set(rel.columns) == set(PARTITIONED_TABLES[name].names) | {"site"}
        frame = numeric_run.polars()[name].collect()
        assert frame.height == 0
        assert frame.schema["site"] == pl.String
    assert (
        dict(con.sql("select table_name, table_type from information_schema.tables").fetchall())[
            "failures"
        ]
        == "BASE TABLE"
    )


def test_run_without_discovered_scans_still_opens(numeric_run, tmp_path):
    out = Path(tmp_path) / "out"
    shutil.copytree(numeric_run.root, out)
    RunLayout(out).discovered_scans.unlink()
    run = open_run(out)
    assert run.discovered.empty
    assert run.participants.empty
    assert list(run.participants.columns) == ["site", "participant_id"]
