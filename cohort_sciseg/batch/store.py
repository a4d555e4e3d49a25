"""Exactly-once record store of a run, and its compaction into hive-partitioned tables.

Workers write each scan's rows (one small Parquet file per table) into a folder
named by the scan's *key* (content hash of its inputs + model checksum +
settings), then commit by atomically replacing the scan's ``CURRENT.json``
pointer. Nothing else is ever read: a task that runs twice rewrites identical
files and the same pointer (no duplicate rows), a task killed half-way leaves an
uncommitted folder that nobody reads (no partial results), and a resumed run skips
a scan whose pointer already names the planned key with status ``done``.

Layout (inside the run's output folder)::

    .cohort-sciseg/records/<site>/<scan_id>/CURRENT.json          commit pointer
    .cohort-sciseg/records/<site>/<scan_id>/attempts.jsonl        one line per attempt (run, worker, start)
    .cohort-sciseg/records/<site>/<scan_id>/<key>/<table>.parquet  the rows

:func:`compact` turns the committed records into the user-facing tables::

    tables/<table>/site=<site>/part-0.parquet

one file per site and table, written atomically from the records alone (a pure
function of them, so it can be re-run at any time). The ``site`` column lives in
the folder name only (hive partitioning), as pandas, pyarrow, DuckDB and polars
expect; they infer its type from the folder names, which is why discovery never
gives a site label that reads as a number
(:func:`cohort_sciseg.discover.entities.site_label`). A table without rows has no
folder at all.

No Dask here: workers and the client call these functions directly.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cohort_sciseg.io import RunLayout, write_json, write_parquet

__all__ = [
    "Commit",
    "RecordStore",
]

_POINTER = "CURRENT.json"
_ATTEMPTS = "attempts.jsonl"
_PARTITION = "site="
_PART_FILE = "part-0.parquet"
_STATUSES = ("done", "failed")


@dataclass(frozen=True, slots=True)
class Commit:
    """The committed record of one scan (the content of its ``CURRENT.json``)."""

    scan_id: str
    site: str
    key: str
    status: str
    tables: dict[str, int]
    attempt: int = 1
    info: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "scan_id": self.scan_id,
            "site": self.site,
            "key": self.key,
            "status": self.status,
            "tables": self.tables,
            "attempt": self.attempt,
            "info": self.info or {},
        }


class RecordStore:
    """The records of one run folder (see the module docstring).

    Parameters
    ----------
    out_dir
        The run's output folder (a BIDS derivatives dataset).
    """

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.out_dir = Path(out_dir)
        self.root = RunLayout(self.out_dir).records

    def __reduce__(self) -> tuple[type[RecordStore], tuple[str]]:
        return (RecordStore, (os.fspath(self.out_dir),))

    def _scan_dir(self, site: str, scan_id: str) -> Path:
        return self.root / site / scan_id

    # ---------------------------------------------------------------- writing

    def commit(
        self,
        *,
        scan_id: str,
        site: str,
        key: str,
        status: str,
        tables: Mapping[str, pa.Table],
        attempt: int = 1,
        info: Mapping[str, Any] | None = None,
    ) -> Commit:
        """Write the rows of one scan and commit them (atomic, idempotent).

        ``tables`` maps table names (``"scans"``, ``"lesions"``, ...) to Arrow
        tables without a ``site`` column (the site is the partition). Earlier
        records of the scan under other keys are removed once the new one is
        committed.
        """
        if status not in _STATUSES:
            raise ValueError(f"status must be one of {_STATUSES}, not {status!r}")
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"invalid record key {key!r}")
        folder = self._scan_dir(site, scan_id) / key
        counts = {}
        for name, table in tables.items():
            if "site" in table.column_names:
                table = table.drop_columns(["site"])
            write_parquet(folder / f"{name}.parquet", table)
            counts[name] = table.num_rows
        commit = Commit(scan_id, site, key, status, counts, attempt, dict(info or {}))
        write_json(self._scan_dir(site, scan_id) / _POINTER, commit.as_dict())
        self._drop_stale(site, scan_id, keep=key)
        return commit

    def _drop_stale(self, site: str, scan_id: str, *, keep: str) -> None:
        for child in self._scan_dir(site, scan_id).iterdir():
            if child.is_dir() and child.name != keep:
                shutil.rmtree(child, ignore_errors=True)

    def start_attempt(self, site: str, scan_id: str, *, run_id: str, worker: str) -> int:
        """Note that ``worker`` starts on the scan now; return the run's attempt number (1 for the first).

        Each start appends one line (a single small ``write`` in append mode, so lines
        of concurrent writers do not interleave) and is never removed: an attempt
        whose worker was killed stays counted.
        """
        folder = self._scan_dir(site, scan_id)
        folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"run_id": run_id, "worker": worker, "started": _utc_now()}) + "\n"
        with open(folder / _ATTEMPTS, "a", encoding="utf-8") as f:
            f.write(line)
        return len(self.attempts(site, scan_id, run_id))

    def attempts(self, site: str, scan_id: str, run_id: str) -> list[dict[str, str]]:
        """The attempts of run ``run_id`` at the scan, oldest first (``worker``, ``started``)."""
        try:
            text = (self._scan_dir(site, scan_id) / _ATTEMPTS).read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                d = json.loads(line)
                if isinstance(d, dict) and d.get("run_id") == run_id:
                    out.append({"worker": str(d.get("worker", "")), "started": str(d.get("started", ""))})
        return out

    # ---------------------------------------------------------------- reading

    def current(self, site: str, scan_id: str) -> Commit | None:
        """The committed record of a scan, or ``None``."""
        path = self._scan_dir(site, scan_id) / _POINTER
        try:
            d = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return Commit(d["scan_id"], d["site"], d["key"], d["status"], dict(d["tables"]), d.get("attempt", 1), d.get("info"))

    def is_done(self, site: str, scan_id: str, key: str) -> bool:
        """Whether the scan is committed as ``done`` under ``key`` (what ``--resume`` skips)."""
        c = self.current(site, scan_id)
        return c is not None and c.key == key and c.status == "done"

    def commits(self) -> Iterator[Commit]:
        """Every committed record, ordered by site then scan id."""
        if not self.root.is_dir():
            return
        for site_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for scan_dir in sorted(p for p in site_dir.iterdir() if p.is_dir()):
                c = self.current(site_dir.name, scan_dir.name)
                if c is not None:
                    yield c

    def _read_many(self, commits: list[Commit], table: str) -> list[pa.Table | None]:
        """:meth:`read` of many records, in order, on a thread pool (Parquet reads release the GIL).

        A run of 10,000 scans compacts ~60,000 small files; one at a time the
        file-system round trips dominate.
        """
        if len(commits) < 32:
            return [self.read(c, table) for c in commits]
        with ThreadPoolExecutor(max_workers=min(16, 4 * (os.cpu_count() or 1))) as pool:
            return list(pool.map(lambda c: self.read(c, table), commits, chunksize=64))

    def read(self, commit: Commit, table: str) -> pa.Table | None:
        """The rows of ``table`` in a committed record (``None`` when it has none)."""
        if table not in commit.tables:
            return None
        # ParquetFile.read: ~15x less overhead per small file than read_table (no dataset discovery)
        with pq.ParquetFile(self._scan_dir(commit.site, commit.scan_id) / commit.key / f"{table}.parquet") as f:
            return f.read(use_threads=False)

    # ---------------------------------------------------------------- compaction

    def compact(
        self,
        schemas: Mapping[str, pa.Schema],
        *,
        tables_dir: str | os.PathLike[str] | None = None,
        only: Iterable[str] | None = None,
        extra: Mapping[str, pa.Table] | None = None,
    ) -> dict[str, Path]:
        """Write ``tables/<name>/site=<site>/part-0.parquet`` from the committed records.

        Parameters
        ----------
        schemas
            Each table's schema; its ``site`` field, if any, is left out of the
            files (it is the partition).
        tables_dir
            Where the tables go; default ``<out_dir>/tables``.
        only
            Rewrite only these sites; partitions of other sites are kept as they
            are, except those of sites that no longer have any committed record.
        extra
            Rows that are not records of a scan, per table, with a ``site``
            column (null: ``unknown``): the run's discovery problems go into
            ``failures`` this way. They are part of this compaction only.

        Returns
        -------
        dict of str to Path
            The folder of each table that has rows, in the order of ``schemas``.
            A table without a row at any site (``metrics`` when no scan has manual
            masks, ``failures`` when nothing failed) is left out and has no folder,
            so every path returned exists and reads as a table.

        Notes
        -----
        The tables are a pure function of the committed records: a site without
        rows in a table has no partition folder, and a partition or table folder
        left by an earlier compaction whose rows are all gone (every failed scan
        has since succeeded, say) is removed. Only ``site=*`` folders and their
        ``part-0.parquet`` are touched; a folder that still holds anything else
        is kept (but a table with no ``site=*/part-0.parquet`` is still not
        returned).
        """
        out = Path(tables_dir) if tables_dir is not None else RunLayout(self.out_dir).tables
        wanted = None if only is None else set(only)
        by_site: dict[str, list[Commit]] = {}
        for c in self.commits():
            by_site.setdefault(c.site, []).append(c)
        extras = {name: _split_by_site(t) for name, t in (extra or {}).items()}
        written: dict[str, list[str]] = {}
        for per_site in extras.values():
            for site in per_site:
                by_site.setdefault(site, [])
        # Sites whose committed records (and extra rows) are those of the last compaction, with
        # their files in place, are not rewritten: a resumed run that skips most scans compacts
        # only what changed.
        state_file = RunLayout(self.out_dir).compaction_state
        old_state = _load_state(state_file, schemas, out)
        fingerprints = {
            site: _fingerprint(commits, {n: per_site.get(site) for n, per_site in extras.items()})
            for site, commits in by_site.items()
        }
        new_state: dict[str, dict[str, Any]] = {}
        for site in by_site:
            before = old_state.get(site)
            if before is None:
                continue
            kept = wanted is not None and site not in wanted
            same = before.get("fingerprint") == fingerprints[site] and all(
                (out / n / f"{_PARTITION}{site}" / _PART_FILE).is_file() for n in before.get("files", [])
            )
            if kept or same:
                new_state[site] = before
        result = {}
        for name, schema in schemas.items():
            file_schema = _without_site(schema)
            folder = out / name
            for site, commits in by_site.items():
                if wanted is not None and site not in wanted:
                    continue
                if site in new_state:  # unchanged since the last compaction
                    continue
                parts = [t for t in self._read_many(commits, name) if t is not None and t.num_rows]
                if (more := extras.get(name, {}).get(site)) is not None:
                    parts.append(more)
                target = folder / f"{_PARTITION}{site}" / _PART_FILE
                if parts:
                    table = pa.concat_tables([_conform(t, file_schema) for t in parts])
                    write_parquet(target, table)
                    written.setdefault(site, []).append(name)
                else:
                    _remove_partition(target.parent)
            if not folder.is_dir():
                continue
            for part_dir in folder.iterdir():
                site = part_dir.name.removeprefix(_PARTITION)
                if site != part_dir.name and site not in by_site and part_dir.is_dir():
                    _remove_partition(part_dir)
            if any(folder.glob(f"{_PARTITION}*/{_PART_FILE}")):
                result[name] = folder
            else:
                # Empty once its partitions are gone; a folder holding anything else stays.
                with contextlib.suppress(OSError):
                    folder.rmdir()
        for site, names in written.items():
            new_state[site] = {"fingerprint": fingerprints[site], "files": names}
        for site in by_site:
            if site not in new_state and (wanted is None or site in wanted):
                new_state[site] = {"fingerprint": fingerprints[site], "files": []}
        if by_site:
            write_json(
                state_file, {"tables_dir": str(out.resolve()), "schemas": _schemas_digest(schemas), "sites": new_state}
            )
        return result




def _utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _schemas_digest(schemas: Mapping[str, pa.Schema]) -> str:
    text = json.dumps({name: str(schema) for name, schema in sorted(schemas.items())})
    return hashlib.sha256(text.encode()).hexdigest()


def _load_state(path: Path, schemas: Mapping[str, pa.Schema], out: Path) -> dict[str, dict[str, Any]]:
    """Per-site state of the last compaction (empty when absent, unreadable, or for other schemas or tables)."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if (
        not isinstance(state, dict)
        or state.get("schemas") != _schemas_digest(schemas)
        or state.get("tables_dir") != str(out.resolve())
    ):
        return {}
    sites = state.get("sites")
    return sites if isinstance(sites, dict) else {}


def _fingerprint(commits: list[Commit], extra: Mapping[str, pa.Table | None]) -> str:
    """Digest of a site's committed records (scan, key, status, row counts, run, attempts) and extra rows.

    The run id and the attempt count are in it because a scan redone under the same
    key (``--no-resume``, a retry) rewrites its rows with them.
    """
    h = hashlib.sha256()
    for c in commits:
        run_id = (c.info or {}).get("run_id")
        h.update(json.dumps([c.scan_id, c.key, c.status, sorted(c.tables.items()), run_id, c.attempt]).encode())
    for name in sorted(extra):
        t = extra[name]
        if t is not None and t.num_rows:
            h.update(name.encode())
            h.update(json.dumps(t.to_pylist(), default=str, sort_keys=True).encode())
    return h.hexdigest()


def _split_by_site(table: pa.Table) -> dict[str, pa.Table]:
    """Rows of ``table`` per value of its ``site`` column (null: ``unknown``), without that column."""
    if "site" not in table.column_names:
        return {"unknown": table} if table.num_rows else {}
    sites = [s if s else "unknown" for s in table.column("site").to_pylist()]
    rest = table.drop_columns(["site"])
    out = {}
    for site in sorted(set(sites)):
        out[site] = rest.filter(pa.array([s == site for s in sites]))
    return out


def _remove_partition(part_dir: Path) -> None:
    """Delete ``part_dir``'s part file, then the folder if nothing else is left in it."""
    with contextlib.suppress(FileNotFoundError):
        (part_dir / _PART_FILE).unlink()
    with contextlib.suppress(OSError):
        part_dir.rmdir()


def _without_site(schema: pa.Schema) -> pa.Schema:
    i = schema.get_field_index("site")
    return schema.remove(i) if i >= 0 else schema


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast ``table``'s columns to ``schema`` (missing nullable columns become nulls)."""
    cols = []
    for f in schema:
        if f.name in table.column_names:
            cols.append(table.column(f.name).cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=schema)
