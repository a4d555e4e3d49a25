"""The paper's statistics (the names of one module, kept for the README and users' scripts).

The code lives in three modules, by role:

- :mod:`cohort_sciseg.validation.stat_tests`: normality, Wilcoxon, Bland-Altman,
  Spearman/Pearson, Kruskal-Wallis + Bonferroni, Mann-Whitney, chi-square,
  averaging over splits, and the tidy result table (:data:`STATS_COLUMNS`);
- :mod:`cohort_sciseg.validation.clinical`: AIS grades A-E -> 1-5, improvements,
  minimal detectable change, clinical correlations;
- :mod:`cohort_sciseg.validation.table1`: the cohort characteristics table
  (Table 1) and mean ± SD summaries.
"""

from cohort_sciseg.validation.clinical import (
    AIS_GRADES,
    BIOMARKERS,
    CLINICAL_SCORES,
    MDC_THRESHOLDS,
    ais_to_numeric,
    clinical_correlations,
    clinical_improvement,
)
from cohort_sciseg.validation.stat_tests import (
    STATS_COLUMNS,
    WilcoxonOptions,
    average_over_splits,
    bland_altman,
    compare_methods,
    compare_paired,
    library_versions,
    normality,
    site_differences,
    wilcoxon_paired,
)
from cohort_sciseg.validation.table1 import cohort_table, fmt_number, summarize

__all__ = [
    "AIS_GRADES",
    "BIOMARKERS",
    "CLINICAL_SCORES",
    "MDC_THRESHOLDS",
    "STATS_COLUMNS",
    "WilcoxonOptions",
    "ais_to_numeric",
    "average_over_splits",
    "bland_altman",
    "clinical_correlations",
    "clinical_improvement",
    "cohort_table",
    "compare_methods",
    "compare_paired",
    "fmt_number",
    "library_versions",
    "normality",
    "site_differences",
    "summarize",
    "wilcoxon_paired",
]
