"""Figures, QC reportlets, the static HTML QC report and its ratings."""

from cohort_sciseg.report.figures import (
    bland_altman_figure,
    correlation_figure,
    raincloud_figure,
    regression_figure,
    save_figure,
)
from cohort_sciseg.report.ratings import (
    RATING_COLUMNS,
    RATINGS,
    WORKLIST_COLUMNS,
    excluded_scans,
    prepare_corrections,
    read_ratings,
    worklist,
    write_ratings,
)
from cohort_sciseg.report.reportlets import Reportlet, render_reportlets
from cohort_sciseg.report.site import (
    INDEX_COLUMNS,
    REPORT_DIRNAME,
    ReportSummary,
    build_report,
    scan_flags,
    scan_page_href,
    write_scan_page,
)

__all__ = [
    "INDEX_COLUMNS",
    "RATINGS",
    "RATING_COLUMNS",
    "REPORT_DIRNAME",
    "WORKLIST_COLUMNS",
    "ReportSummary",
    "Reportlet",
    "bland_altman_figure",
    "build_report",
    "correlation_figure",
    "excluded_scans",
    "prepare_corrections",
    "raincloud_figure",
    "read_ratings",
    "regression_figure",
    "render_reportlets",
    "save_figure",
    "scan_flags",
    "scan_page_href",
    "worklist",
    "write_ratings",
    "write_scan_page",
]
