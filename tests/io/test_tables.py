"""Reading the site-partitioned run tables."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from cohort_sciseg.io import read_partitioned_table


def test_site_is_read_back_as_the_exact_text(tmp_path):
    for site, values in (("001", [1, 2]), ("true", [3])):
        folder = tmp_path / "t" / f"site={site}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"x": values}), folder / "part-0.parquet")
    table = read_partitioned_table(tmp_path / "t")
    assert table.schema.field("site").type == pa.string()
    assert sorted(zip(table["site"].to_pylist(), table["x"].to_pylist(), strict=True)) == [
        ("001", 1), ("001", 2), ("true", 3)
    ]


def test_no_part_file_is_none(tmp_path):
    assert read_partitioned_table(tmp_path / "missing") is None
    (tmp_path / "empty" / "site=a").mkdir(parents=True)
    assert read_partitioned_table(tmp_path / "empty") is None
