"""Reading the run's site-partitioned Parquet tables (``<table>/site=<label>/part-*.parquet``)."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

__all__ = ["read_partitioned_table"]


def read_partitioned_table(folder: str | os.PathLike[str]) -> pa.Table | None:
    """The table under ``folder`` with its ``site`` column as text, or None without part files.

    ``site`` is declared a string: hive readers that infer partition types would turn
    a label such as ``001`` into the number 1. Raises what pyarrow raises on
    unreadable files (``OSError``, ``pyarrow.ArrowException``).
    """
    path = Path(folder)
    if not any(path.glob("site=*/*.parquet")):
        return None
    part = ds.partitioning(pa.schema([("site", pa.string())]), flavor="hive")
    return ds.dataset(path, format="parquet", partitioning=part).to_table()
