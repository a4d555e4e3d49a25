"""Figures, QC reportlets, the static HTML QC report and its ratings.

The public names load their module on first use (PEP 562): the workers of a run
import :mod:`cohort_sciseg.report.site` for each scan's QC page, and must not pay
for matplotlib (:mod:`~cohort_sciseg.report.figures`) or YAML
(:mod:`~cohort_sciseg.report.ratings`) on start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: Public name -> the submodule that defines it.
_MODULES = {
    **dict.fromkeys(
        ("bland_altman_figure", "correlation_figure", "raincloud_figure", "regression_figure", "save_figure"),
        "figures",
    ),
    **dict.fromkeys(
        ("RATING_COLUMNS", "RATINGS", "WORKLIST_COLUMNS", "excluded_scans", "prepare_corrections",
         "read_ratings", "worklist", "write_ratings"),
        "ratings",
    ),
    **dict.fromkeys(("Reportlet", "render_reportlets"), "reportlets"),
    **dict.fromkeys(
        ("INDEX_COLUMNS", "REPORT_DIRNAME", "ReportSummary", "build_report", "scan_flags", "scan_page_href",
         "write_scan_page"),
        "site",
    ),
}

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


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
