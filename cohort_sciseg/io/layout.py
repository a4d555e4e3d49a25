"""The run folder's layout: every path a run writes, named in one place.

``OUT/`` (the ``-o`` of ``cohort-sciseg run``) holds one BIDS derivative dataset per
site and, beside them, the cohort-level outputs::

    OUT/<site>/                                   derivative dataset of one site (masks, sidecars)
    OUT/tables/<table>/site=<site>/part-0.parquet  the compacted tables (hive-partitioned)
    OUT/tables/discovered_scans.parquet            the scans discovery found (with participants.tsv)
    OUT/logs/<scan_id>.log                         each scan's log records (written by the worker)
    OUT/logs/dask-performance-<time>.html          Dask's performance report of the run
    OUT/logs/runs/run-<time>-<pid>.log|.json       each run's log, and its record (configuration,
                                                  environment, counts)
    OUT/report/{index,cohort,failures}.html        the QC report; scans/<site>/<scan_id>.html its
    OUT/report/{scans,data,assets}/                scan pages, data/ its data, assets/ its CSS and JS
    OUT/validation/{stats,figures}/                the validation study (when manual masks exist)
    OUT/.cohort-sciseg/records/                    the record store (:mod:`cohort_sciseg.batch.store`)
    OUT/.cohort-sciseg/compaction.json             what the last compaction wrote
    OUT/.cohort-sciseg/previous-layout/            masks of a run folder of an earlier layout

What goes inside a site's dataset is :mod:`cohort_sciseg.batch.layout`'s. No I/O
here: :class:`RunLayout` only names paths.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

__all__ = ["RunLayout"]


@dataclass(frozen=True, slots=True, init=False)
class RunLayout:
    """The paths of one run folder (see the module docstring).

    Parameters
    ----------
    root
        The run's output folder.

    Examples
    --------
    >>> RunLayout("out").table("scans").as_posix()
    'out/tables/scans'
    """

    root: Path

    TABLES: ClassVar[str] = "tables"
    LOGS: ClassVar[str] = "logs"
    RUN_LOGS: ClassVar[str] = "runs"
    REPORT: ClassVar[str] = "report"
    SCAN_PAGES: ClassVar[str] = "scans"
    REPORT_DATA: ClassVar[str] = "data"
    REPORT_ASSETS: ClassVar[str] = "assets"
    VALIDATION: ClassVar[str] = "validation"
    VALIDATION_STATS: ClassVar[str] = "stats"
    VALIDATION_FIGURES: ClassVar[str] = "figures"
    LONGITUDINAL: ClassVar[str] = "longitudinal"
    SUBJECT_PAGES: ClassVar[str] = "subjects"
    STATE: ClassVar[str] = ".cohort-sciseg"
    RECORDS: ClassVar[str] = "records"
    DISCOVERED_SCANS: ClassVar[str] = "discovered_scans"
    #: Top-level folders of the cohort-level outputs: every other visible folder is a site's dataset.
    COHORT_FOLDERS: ClassVar[tuple[str, ...]] = (TABLES, LOGS, REPORT, VALIDATION, LONGITUDINAL)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))

    # ---------------------------------------------------------------- sites

    def site_dataset(self, site: str) -> Path:
        """``OUT/<site>``: the derivative dataset of ``site``."""
        return self.root / site

    # ---------------------------------------------------------------- tables

    @property
    def tables(self) -> Path:
        """``OUT/tables``."""
        return self.root / self.TABLES

    def table(self, name: str) -> Path:
        """``OUT/tables/<name>``: a hive-partitioned table (one folder per site)."""
        return self.tables / name

    def table_file(self, name: str) -> Path:
        """``OUT/tables/<name>.parquet``: a table in one file."""
        return self.tables / f"{name}.parquet"

    @property
    def discovered_scans(self) -> Path:
        """``OUT/tables/discovered_scans.parquet``: every scan discovery found, as records."""
        return self.table_file(self.DISCOVERED_SCANS)

    # ---------------------------------------------------------------- logs

    @property
    def logs(self) -> Path:
        """``OUT/logs``."""
        return self.root / self.LOGS

    def scan_log(self, scan_id: str) -> Path:
        """``OUT/logs/<scan_id>.log``: the log records of one scan's stages."""
        return self.logs / f"{scan_id}.log"

    def dask_performance(self, stamp: str) -> Path:
        """``OUT/logs/dask-performance-<stamp>.html``: Dask's performance report of one run."""
        return self.logs / f"dask-performance-{stamp}.html"

    @property
    def run_logs(self) -> Path:
        """``OUT/logs/runs``: one log and one record per run."""
        return self.logs / self.RUN_LOGS

    def run_log(self, stamp: str, pid: int) -> Path:
        """``OUT/logs/runs/run-<stamp>-<pid>.log``: every log record of one run's process."""
        return self.run_logs / f"run-{stamp}-{pid}.log"

    def run_record(self, stamp: str, pid: int) -> Path:
        """``OUT/logs/runs/run-<stamp>-<pid>.json``: one run's configuration, environment and counts."""
        return self.run_logs / f"run-{stamp}-{pid}.json"

    def run_logs_of(self, pid: int) -> list[Path]:
        """The run logs that process ``pid`` wrote, oldest first."""
        return sorted(self.run_logs.glob(f"run-*-{pid}.log"))

    def run_records(self) -> list[Path]:
        """The run records in the folder, oldest first (their names sort by time)."""
        return sorted(self.run_logs.glob("run-*.json"))

    # ---------------------------------------------------------------- report

    @property
    def report(self) -> Path:
        """``OUT/report``: the HTML QC report."""
        return self.root / self.REPORT

    @property
    def report_index(self) -> Path:
        """``OUT/report/index.html``: the report's first page."""
        return self.report / "index.html"

    @property
    def scan_pages(self) -> Path:
        """``OUT/report/scans``: one page (and folder of images) per scan."""
        return self.report / self.SCAN_PAGES

    @property
    def report_data(self) -> Path:
        """``OUT/report/data``: the data the report's pages load."""
        return self.report / self.REPORT_DATA

    @property
    def report_assets(self) -> Path:
        """``OUT/report/assets``: the report's CSS and JavaScript."""
        return self.report / self.REPORT_ASSETS

    @property
    def subject_pages(self) -> Path:
        """``OUT/report/subjects``: the timeline of each subject with several sessions."""
        return self.report / self.SUBJECT_PAGES

    # ---------------------------------------------------------------- validation

    @property
    def validation(self) -> Path:
        """``OUT/validation``: the validation study of the predictions against manual masks."""
        return self.root / self.VALIDATION

    @property
    def validation_stats(self) -> Path:
        """``OUT/validation/stats``: the study's statistics tables."""
        return self.validation / self.VALIDATION_STATS

    @property
    def validation_figures(self) -> Path:
        """``OUT/validation/figures``: the study's figures."""
        return self.validation / self.VALIDATION_FIGURES

    @property
    def longitudinal(self) -> Path:
        """``OUT/longitudinal``: per-subject changes between sessions and their statistics."""
        return self.root / self.LONGITUDINAL

    # ---------------------------------------------------------------- the tool's own state

    @property
    def state(self) -> Path:
        """``OUT/.cohort-sciseg``: the tool's own bookkeeping (hidden from BIDS tools)."""
        return self.root / self.STATE

    @property
    def records(self) -> Path:
        """``OUT/.cohort-sciseg/records``: the record store."""
        return self.state / self.RECORDS

    @property
    def compaction_state(self) -> Path:
        """``OUT/.cohort-sciseg/compaction.json``: what the last compaction wrote, from which records."""
        return self.state / "compaction.json"

    @property
    def previous_layout(self) -> Path:
        """``OUT/.cohort-sciseg/previous-layout``: the files a layout migration moved aside."""
        return self.state / "previous-layout"

    @property
    def write_probe(self) -> Path:
        """``OUT/.cohort-sciseg-write-test``: written and removed to check the folder is writable."""
        return self.root / f"{self.STATE}-write-test"
