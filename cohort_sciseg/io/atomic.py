"""Atomic, idempotent writes (and content hashes of files).

Every file the tool writes goes to a temporary file in the destination folder and
is then renamed over the destination (:func:`os.replace`, atomic on POSIX). A
reader therefore sees either the old file or the complete new one, never a partial
file, and a task that runs twice (Dask may re-run a task after a worker dies)
leaves exactly one complete file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "sha256_file",
    "sweep_partial_files",
    "write_json",
    "write_parquet",
]

_MULTI_SUFFIXES = (".nii.gz", ".tar.gz")


def _split_ext(name: str) -> tuple[str, str]:
    for ext in _MULTI_SUFFIXES:
        if name.endswith(ext):
            return name[: -len(ext)], ext
    stem, ext = os.path.splitext(name)
    return stem, ext


def _fsync_dir(folder: Path) -> None:
    # Persist the rename itself; not possible on every platform/filesystem.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary name keeps the extension (``.nii.gz``, ``.parquet``) so writers
    that choose a format from the name behave the same. On error the temporary
    file is removed and ``path`` is left untouched.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stem, ext = _split_ext(dest.name)
    tmp = dest.with_name(f".{stem}.{uuid.uuid4().hex[:12]}.tmp{ext}")
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; return the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    msg = f"cannot write {type(obj).__name__!r} to JSON"
    raise TypeError(msg)


def write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically (NaN/inf written as ``null``); return the path."""
    text = json.dumps(_nan_to_none(obj), indent=indent, default=_json_default, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, np.floating) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def write_parquet(path: str | os.PathLike[str], table: pa.Table, **kwargs: Any) -> Path:
    """Write an Arrow table to Parquet atomically; extra options go to ``pyarrow.parquet``."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **kwargs)
    return Path(path)


def sha256_file(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp(\.[A-Za-z0-9.]+)?$")


def sweep_partial_files(out_dir: str | os.PathLike[str]) -> int:
    """Delete the temporary files of atomic writes whose writer was killed; return how many.

    Only names made by :func:`atomic_path` (``.<stem>.<12 hex>.tmp<ext>``)
    are touched. Call it when no task is running.
    """
    n = 0
    for dirpath, _dirs, files in os.walk(out_dir):
        for name in files:
            if _TEMP_NAME.match(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))
                    n += 1
    return n
