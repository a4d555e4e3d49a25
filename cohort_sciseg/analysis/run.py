"""A finished run folder as tables, statistics and queries: :func:`open_run` and :class:`Run`.

``run = open_run(OUT)`` reads nothing but the checks that ``OUT`` is a finished
run (``tables/scans`` and a run record in ``logs/runs``); each table is read on
first use (:mod:`pyarrow.dataset`, hive partitioning, ``site`` declared a string so
that a site ``01`` stays ``"01"``) and kept. Every table DataFrame carries its
columns' units and descriptions from the Arrow field metadata
(``df.attrs["units"]``, ``df.attrs["descriptions"]``; :mod:`cohort_sciseg.records`).

DuckDB and polars (the ``analysis`` extra) get views / lazy frames over the same
Parquet files (:meth:`Run.duckdb`, :meth:`Run.polars`): nothing is copied.
The questions a paper asks (agreement, per-site summary, clinical correlations,
Table 1, exclusions) are methods computed by :mod:`cohort_sciseg.analysis.questions`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from cohort_sciseg.errors import AnalysisError, format_error
from cohort_sciseg.io import RunLayout
from cohort_sciseg.records import RUN_TABLE_SCHEMAS, SCANS_SCHEMA
from cohort_sciseg.schemas import LONGITUDINAL_TABLE_SCHEMAS

if TYPE_CHECKING:
    import duckdb as _duckdb
    import polars as _polars

__all__ = ["PARTITIONED_TABLES", "TABLE_NAMES", "Run", "open_run"]

#: The hive-partitioned tables of a run (``tables/<name>/site=<site>/``) and their schemas.
PARTITIONED_TABLES: dict[str, pa.Schema] = {**RUN_TABLE_SCHEMAS, **LONGITUDINAL_TABLE_SCHEMAS}

#: Every table name :meth:`Run.table` takes (``discovered`` is an alias of ``discovered_scans``).
TABLE_NAMES = (*PARTITIONED_TABLES, RunLayout.DISCOVERED_SCANS, "participants")

_SITE = pa.field("site", pa.string(), metadata={"description": "site label (the hive partition)"})
_INSTALL = 'pip install "cohort-sciseg[analysis]"'
_RECOMPACT = (
    "delete {compaction} and run `cohort-sciseg run BIDS_DIR ... -o {root}` again: "
    "it rewrites every table from the run's records (scans already done are not redone)"
)


def open_run(root: str | os.PathLike[str]) -> Run:
    """Open the finished run in ``root`` (the ``-o`` folder of ``cohort-sciseg run``).

    Parameters
    ----------
    root
        The run folder.

    Returns
    -------
    Run

    Raises
    ------
    AnalysisError
        When ``root`` does not exist, is not a folder, has no ``tables/scans`` or
        no run record in ``logs/runs`` (the run never finished): the message names
        what is missing, the path and the fix.

    Examples
    --------
    >>> run = open_run("OUT")  # doctest: +SKIP
    >>> run.scans.groupby("site").status.value_counts()  # doctest: +SKIP
    """
    return Run(root)


class Run:
    """The tables, statistics and records of a finished run (see the module docstring).

    Parameters
    ----------
    root
        The run folder (kept as an absolute path: :attr:`root`); :func:`open_run`
        is the usual way in.

    Notes
    -----
    Table properties return the same (cached) DataFrame at each access: copy it
    before changing it in place.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        # absolute now: tables are read later, and the working folder may have changed by then
        self.root = Path(root).absolute()
        self._layout = RunLayout(self.root)
        _check_run_folder(self._layout)
        self._frames: dict[str, pd.DataFrame] = {}
        self._statistics: dict[str, pd.DataFrame] | None = None

    def __repr__(self) -> str:
        return f"open_run({os.fspath(self.root)!r})"

    # ---------------------------------------------------------------- tables

    @property
    def table_names(self) -> tuple[str, ...]:
        """The names :meth:`table`, :meth:`duckdb` and :meth:`polars` know."""
        return TABLE_NAMES

    def table(self, name: str) -> pd.DataFrame:
        """The table ``name`` (one of :attr:`table_names`) as pandas, read on first use.

        A table the run has no file for (``failures`` when nothing failed, ``metrics``
        without manual masks) is empty, with its schema's columns.
        """
        key = RunLayout.DISCOVERED_SCANS if name == "discovered" else name
        if key not in TABLE_NAMES:
            msg = format_error(
                f"no table {name!r} in a run",
                path=self.root,
                expected=f"one of {', '.join(TABLE_NAMES)}",
                fix="pass one of these names (run.table_names)",
            )
            raise AnalysisError(msg, path=self.root)
        if key not in self._frames:
            self._frames[key] = self._read(key)
        return self._frames[key]

    def _read(self, name: str) -> pd.DataFrame:
        if name == "participants":
            from cohort_sciseg.analysis.questions import participants_table

            df = participants_table(self.discovered)
            df.attrs["descriptions"] = {
                "site": "site label (the run's)",
                "participant_id": "participants.tsv participant_id",
            }
            df.attrs["units"] = {}
            return df
        if name == RunLayout.DISCOVERED_SCANS:
            return _to_pandas(self._read_discovered(), SCANS_SCHEMA)
        return _to_pandas(self._read_partitioned(name), PARTITIONED_TABLES[name])

    def _read_partitioned(self, name: str) -> pa.Table:
        folder = self._layout.table(name)
        files = _part_files(folder)
        if not files:
            return _empty(PARTITIONED_TABLES[name])
        try:
            schema = pa.unify_schemas([pq.read_schema(f) for f in files])
            schema = schema.append(_SITE) if "site" not in schema.names else schema
            part = ds.partitioning(pa.schema([_SITE]), flavor="hive")
            dataset = ds.dataset(
                [os.fspath(f) for f in files], schema=schema, format="parquet",
                partitioning=part, partition_base_dir=os.fspath(folder),
            )  # fmt: skip
            return dataset.to_table()
        except (OSError, pa.ArrowException) as exc:
            raise _unreadable(folder, self.root, exc) from exc

    def _read_discovered(self) -> pa.Table:
        path = self._layout.discovered_scans
        if not path.is_file():
            return SCANS_SCHEMA.empty_table()
        try:
            return pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise _unreadable(path, self.root, exc) from exc

    @property
    def scans(self) -> pd.DataFrame:
        """``tables/scans``: one row per scan of the run (status, biomarkers, Dice, suspect, validation)."""
        return self.table("scans")

    @property
    def lesions(self) -> pd.DataFrame:
        """``tables/lesions``: one row per predicted lesion (SCT ``sct_analyze_lesion`` measures)."""
        return self.table("lesions")

    @property
    def lesion_tracks(self) -> pd.DataFrame:
        """``tables/lesion_tracks``: each lesion of a subject with several sessions, per session, with its track."""
        return self.table("lesion_tracks")

    @property
    def lesion_changes(self) -> pd.DataFrame:
        """``tables/lesion_changes``: per track and interval between sessions, each measure's change."""
        return self.table("lesion_changes")

    @property
    def lesion_slices(self) -> pd.DataFrame:
        """``tables/lesion_slices``: per-sagittal-slice minimum tissue bridges of each lesion."""
        return self.table("lesion_slices")

    @property
    def metrics(self) -> pd.DataFrame:
        """``tables/metrics``: predicted vs manual masks, one row per scan x method x structure x metric."""
        return self.table("metrics")

    @property
    def biomarkers(self) -> pd.DataFrame:
        """``tables/biomarkers``: per-scan biomarkers of the manual masks and the prediction."""
        return self.table("biomarkers")

    @property
    def failures(self) -> pd.DataFrame:
        """``tables/failures``: failed scans, validation exclusions and discovery problems."""
        return self.table("failures")

    @property
    def discovered(self) -> pd.DataFrame:
        """``tables/discovered_scans.parquet``: the scans discovery found (with ``participant`` maps)."""
        return self.table(RunLayout.DISCOVERED_SCANS)

    @property
    def participants(self) -> pd.DataFrame:
        """One row per (site, participant_id): ``participants.tsv`` (:func:`.questions.participants_table`)."""
        return self.table("participants")

    # ---------------------------------------------------------------- validation and records

    @property
    def statistics(self) -> dict[str, pd.DataFrame]:
        """``validation/stats/<name>.parquet`` by name (``{}`` when the run had no validation)."""
        if self._statistics is None:
            files = sorted(self._layout.validation_stats.glob("*.parquet"))
            self._statistics = {f.stem: _read_stat(f, self.root) for f in files}
        return dict(self._statistics)

    @property
    def validation(self) -> dict[str, Any] | None:
        """``validation/validation.json`` (options, versions, counts), or None without validation."""
        path = self._layout.validation / "validation.json"
        return _read_json(path, self.root) if path.is_file() else None

    @property
    def records(self) -> list[dict[str, Any]]:
        """Every run record ``logs/runs/run-*.json`` (configuration, environment, counts), oldest first."""
        return [_read_json(p, self.root) for p in self._layout.run_records()]

    @property
    def summary(self) -> dict[str, Any]:
        """The latest run record."""
        return _read_json(self._layout.run_records()[-1], self.root)

    # ---------------------------------------------------------------- other engines

    def duckdb(
        self, connection: _duckdb.DuckDBPyConnection | None = None
    ) -> _duckdb.DuckDBPyConnection:
        """A DuckDB connection with one view per table over the Parquet files (no copy).

        Parameters
        ----------
        connection
            Where to create the views (default: a new in-memory database).

        Returns
        -------
        _duckdb.DuckDBPyConnection
            Views ``scans``, ``lesions``, ``lesion_slices``, ``metrics``, ``biomarkers``,
            ``failures`` (``site`` a VARCHAR, whatever the site names look like),
            ``discovered_scans``; ``participants`` is the registered DataFrame. A
            table the run has no file for is an empty table with its schema's columns.

        Examples
        --------
        >>> con = run.duckdb()  # doctest: +SKIP
        >>> con.sql("select site, count(*) from lesions group by site").df()  # doctest: +SKIP
        """
        duckdb = _require("duckdb")
        con = connection if connection is not None else duckdb.connect()
        for name, schema in PARTITIONED_TABLES.items():
            folder = self._layout.table(name)
            if _part_files(folder):
                source = (
                    f"read_parquet({_sql_text(folder.as_posix() + '/**/*.parquet')}, hive_partitioning=true, "
                    "hive_types={'site': VARCHAR}, union_by_name=true)"
                )
                con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {source}")
            else:
                _create_empty(con, name, _empty(schema))
        discovered = self._layout.discovered_scans
        if discovered.is_file():
            source = f"read_parquet({_sql_text(discovered.as_posix())})"
            con.execute(
                f"CREATE OR REPLACE VIEW {RunLayout.DISCOVERED_SCANS} AS SELECT * FROM {source}"
            )
        else:
            _create_empty(con, RunLayout.DISCOVERED_SCANS, SCANS_SCHEMA.empty_table())
        con.register("participants", self.participants)
        return con

    def polars(self) -> dict[str, _polars.LazyFrame]:
        """A polars LazyFrame per table (``pl.scan_parquet``, hive partitioning, ``site`` a ``pl.String``).

        Keys are :attr:`table_names`; ``participants`` is the pandas table made lazy,
        an absent table an empty frame with its schema's columns.
        """
        pl = _require("polars")
        frames: dict[str, _polars.LazyFrame] = {}
        for name, schema in PARTITIONED_TABLES.items():
            folder = self._layout.table(name)
            if _part_files(folder):
                frames[name] = pl.scan_parquet(
                    f"{folder.as_posix()}/**/*.parquet",
                    hive_partitioning=True,
                    hive_schema={"site": pl.String},
                )
            else:
                frames[name] = pl.from_arrow(_empty(schema)).lazy()
        discovered = self._layout.discovered_scans
        frames[RunLayout.DISCOVERED_SCANS] = (
            pl.scan_parquet(discovered)
            if discovered.is_file()
            else pl.from_arrow(SCANS_SCHEMA.empty_table()).lazy()
        )
        frames["participants"] = pl.from_pandas(self.participants).lazy()
        return frames

    # ---------------------------------------------------------------- the common questions

    def biomarker_agreement(
        self, method: str | None = None, *, by_site: bool = False, tidy: bool = False
    ) -> pd.DataFrame:
        """Manual vs predicted biomarkers (volume, length, axial damage ratio; bridges where present).

        Parameters
        ----------
        method
            The predicted method (default: every one in the biomarkers table).
        by_site
            Add one row per site (``stratum = "site=<site>"``) after the overall rows.
        tidy
            Return the statistics table's rows (``STATS_COLUMNS``, with options and
            versions; with ``by_site`` the same rows as ``statistics["agreement"]``)
            instead of one row per biomarker.

        Returns
        -------
        pandas.DataFrame
            :func:`~cohort_sciseg.analysis.questions.biomarker_agreement`: ``n``,
            normality, Wilcoxon, Bland-Altman bias and limits, Spearman, Pearson,
            least-squares line, per method x biomarker x stratum.
        """
        from cohort_sciseg.analysis import questions

        fn = questions.agreement_statistics if tidy else questions.biomarker_agreement
        return fn(self.biomarkers, method=method, by_site=by_site)

    def site_summary(self) -> pd.DataFrame:
        """Per site: scans total / done / failed / suspect / validated, lesions, median biomarkers and Dice.

        See :func:`~cohort_sciseg.analysis.questions.site_summary`.
        """
        from cohort_sciseg.analysis.questions import site_summary

        return site_summary(self.scans, self.lesions)

    def clinical_correlations(
        self,
        scores: Sequence[str] | None = None,
        method: str | None = None,
        *,
        source: Literal["biomarkers", "scans"] = "biomarkers",
    ) -> pd.DataFrame:
        """Spearman correlations of the biomarkers with the clinical scores, per subject.

        Parameters
        ----------
        scores
            Columns of :attr:`participants` (default: every ``initial_*``,
            ``discharge_*`` score and their ``*_improvement`` / ``*_improved``).
        method
            ``"manual"`` or a predicted method (default: all).
        source
            ``"biomarkers"``: the validated scans' manual and predicted biomarkers
            (the validation study's choice); ``"scans"``: the predicted biomarkers
            of every done, not suspect scan (``tables/scans``), with or without
            manual masks.

        Returns
        -------
        pandas.DataFrame
            ``method``, ``biomarker``, ``score`` and the statistics columns; ``n`` is
            the number of subjects left after dropping missing values.
        """
        from cohort_sciseg.analysis import questions

        bio = (
            self.biomarkers
            if source == "biomarkers"
            else questions.predicted_biomarkers(self.scans)
        )
        return questions.clinical_correlations(bio, self.participants, scores=scores, method=method)

    def table1(self, by: str = "site") -> pd.DataFrame:
        """Table 1 of the cohort (the discovered scans of the latest run), one column per ``by`` value.

        See :func:`~cohort_sciseg.analysis.questions.table1`.
        """
        from cohort_sciseg.analysis.questions import table1

        return table1(self.discovered, by=by)

    def excluded(self) -> pd.DataFrame:
        """The scans an analysis leaves out and why (``scan_id``, ``site``, ``reason``, ``detail``).

        Failed scans, discovery problems, validation excluded or incomplete, suspect
        scans, and the scans the latest run excluded; see
        :func:`~cohort_sciseg.analysis.questions.excluded_scans`.
        """
        from cohort_sciseg.analysis.questions import excluded_scans

        ids = self.summary.get("excluded", {}).get("scan_ids", [])
        return excluded_scans(self.scans, self.failures, excluded_ids=[str(i) for i in ids])


# ----------------------------------------------------------------------------- helpers


def _check_run_folder(layout: RunLayout) -> None:
    """Raise :class:`AnalysisError` unless ``layout.root`` holds a finished run."""
    root = layout.root
    if not root.is_dir():
        what = "run folder not found" if not root.exists() else "not a folder"
        fix = "pass the output folder of `cohort-sciseg run` (its -o OUT_DIR)"
        raise AnalysisError(
            format_error(what, path=root, expected="a run folder", fix=fix), path=root
        )
    if not _part_files(layout.table("scans")):
        nested = [
            p
            for p in sorted(root.iterdir())
            if p.is_dir() and _part_files(RunLayout(p).table("scans"))
        ]
        fix = (
            f"open the run folder inside it: open_run({os.fspath(nested[0])!r})"
            if nested
            else f"run `cohort-sciseg run BIDS_DIR ... -o {root}` to the end (it writes the tables when it finishes)"
        )
        what = (
            f"no scans table ({RunLayout.TABLES}/scans/site=*/part-0.parquet): not a finished run"
        )
        raise AnalysisError(
            format_error(what, path=root, expected="a finished run folder", fix=fix), path=root
        )
    if not layout.run_records():
        what = "no run record (logs/runs/run-*.json): the run did not finish"
        fix = f"run `cohort-sciseg run BIDS_DIR ... -o {root}` again: it resumes and writes the record at the end"
        raise AnalysisError(
            format_error(what, path=root, expected="a finished run folder", fix=fix), path=root
        )


def _part_files(folder: Path) -> list[Path]:
    """The partition files of a table (``site=*/*.parquet``), sorted."""
    return sorted(folder.glob("site=*/*.parquet")) if folder.is_dir() else []


def _empty(schema: pa.Schema) -> pa.Table:
    """An empty table of ``schema`` with a ``site`` column (the partition)."""
    return (schema if "site" in schema.names else schema.append(_SITE)).empty_table()


def _column_order(names: Sequence[str], schema: pa.Schema) -> list[str]:
    """``names`` in ``schema``'s order (``site`` after ``scan_id`` when the schema has none); others last."""
    order = list(schema.names)
    if "site" not in order:
        order.insert(order.index("scan_id") + 1 if "scan_id" in order else 0, "site")
    return [n for n in order if n in names] + [n for n in names if n not in order]


def _to_pandas(table: pa.Table, schema: pa.Schema) -> pd.DataFrame:
    """``table`` as pandas in the schema's column order, with units and descriptions in ``attrs``."""
    table = table.select(_column_order(table.column_names, schema))
    df = table.to_pandas()
    if "site" in df.columns:
        df["site"] = df["site"].astype("str")
    units: dict[str, str] = {}
    descriptions: dict[str, str] = {}
    for f in table.schema:
        meta = dict(f.metadata or {})
        if not meta and f.name in schema.names:
            meta = dict(schema.field(f.name).metadata or {})
        if not meta and f.name == "site":
            meta = dict(_SITE.metadata)
        if b"unit" in meta:
            units[f.name] = meta[b"unit"].decode()
        if b"description" in meta:
            descriptions[f.name] = meta[b"description"].decode()
    df.attrs["units"] = units
    df.attrs["descriptions"] = descriptions
    return df


def _create_empty(con: _duckdb.DuckDBPyConnection, name: str, empty: pa.Table) -> None:
    """Create table ``name`` with ``empty``'s columns and no row."""
    temp = f"__cohort_sciseg_empty_{name}"
    con.register(temp, empty)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM {temp}")
    finally:
        con.unregister(temp)


def _sql_text(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _require(module: str) -> ModuleType:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = format_error(
            f"{module} is not installed",
            expected=f"{module} (part of the `analysis` extra)",
            fix=f"install it: {_INSTALL}",
        )
        raise AnalysisError(msg) from exc


def _unreadable(path: Path, root: Path, exc: BaseException) -> AnalysisError:
    fix = _RECOMPACT.format(compaction=RunLayout(root).compaction_state, root=root)
    msg = format_error(
        f"cannot read the table: {exc}", path=path, expected="Parquet files", fix=fix
    )
    return AnalysisError(msg, path=path)


def _read_stat(path: Path, root: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise _unreadable(path, root, exc) from exc


def _read_json(path: Path, root: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        fix = "restore the file from a backup, or move it out of the folder (the other records stay readable)"
        msg = format_error(
            f"cannot read the record: {exc}", path=path, expected="a JSON object", fix=fix
        )
        raise AnalysisError(msg, path=path) from exc
    return dict(data)
