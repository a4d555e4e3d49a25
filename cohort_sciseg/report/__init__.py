"""Figures (reportlets) and, later, HTML reports."""

from cohort_sciseg.report.figures import (
    bland_altman_figure,
    correlation_figure,
    raincloud_figure,
    regression_figure,
    save_figure,
)

__all__ = [
    "bland_altman_figure",
    "correlation_figure",
    "raincloud_figure",
    "regression_figure",
    "save_figure",
]
