"""Validation against manual masks and clinical scores (pure numpy/scipy/statsmodels).

- :func:`compute_metrics` / :func:`compute_metrics_files`: ANIMA-compatible overlap,
  distance and lesion-detection metrics (``animaSegPerfAnalyzer -d -s [-l]``) and
  corrected ones (ASSD, HD95, NSD, one-to-one and MetricsReloaded lesion metrics);
  :class:`AnimaInput` records which of ANIMA's input paths a pair took
  (:mod:`cohort_sciseg.validation.anima`).
- :func:`find_predictions` / :func:`validate_scans`: the same over a cohort, as tidy tables.
- :mod:`cohort_sciseg.validation.stat_tests`, :mod:`~cohort_sciseg.validation.clinical`,
  :mod:`~cohort_sciseg.validation.table1`: the paper's statistics (all re-exported by
  :mod:`cohort_sciseg.validation.stats`).
"""

from cohort_sciseg.validation.anima import AnimaInput
from cohort_sciseg.validation.cohort import (
    Prediction,
    ValidationTables,
    find_predictions,
    validate_scans,
)
from cohort_sciseg.validation.metrics import MetricsResult, compute_metrics, compute_metrics_files

__all__ = [
    "AnimaInput",
    "MetricsResult",
    "Prediction",
    "ValidationTables",
    "compute_metrics",
    "compute_metrics_files",
    "find_predictions",
    "validate_scans",
]
