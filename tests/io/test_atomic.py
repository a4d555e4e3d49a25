"""Atomic writes leave either the old file or the new one, never a partial file."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cohort_sciseg.io import atomic_path, atomic_write_text, write_json, write_parquet


def test_write_json_nan_as_null(tmp_path):
    p = write_json(tmp_path / "sub" / "a.json", {"x": float("nan"), "y": np.float32(1.5), "z": [np.inf]})
    assert json.loads(p.read_text()) == {"x": None, "y": 1.5, "z": [None]}


def test_write_json_rejects_unknown_type_and_leaves_nothing(tmp_path):
    with pytest.raises(TypeError, match="cannot write 'object' to JSON"):
        write_json(tmp_path / "a.json", {"x": object()})
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_old_file(tmp_path):
    dest = tmp_path / "t.txt"
    atomic_write_text(dest, "old")

    def interrupted_write() -> None:
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        interrupted_write()
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


def test_temp_keeps_extension(tmp_path):
    with atomic_path(tmp_path / "x.nii.gz") as tmp:
        assert tmp.name.endswith(".tmp.nii.gz")
        assert tmp.parent == tmp_path
        tmp.write_bytes(b"1")


def test_parquet_twice_is_idempotent(tmp_path):
    t = pa.table({"a": [1, 2, 3]})
    write_parquet(tmp_path / "t.parquet", t)
    write_parquet(tmp_path / "t.parquet", t)
    assert pq.read_table(tmp_path / "t.parquet").equals(t)
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]
