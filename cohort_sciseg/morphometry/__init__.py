"""Lesion morphometrics: masks -> per-lesion and per-scan measures (pure numpy/scipy).

:func:`measure_lesions` reproduces SCT's ``sct_analyze_lesion`` definitions
(REFERENCE.md §2) and never crashes on lesions outside the cord, empty masks or
soft masks; :func:`analyze_lesion_files` does the same from NIfTI files with
geometry checks, and :func:`write_lesion_analysis` writes the tables.
:func:`cord_plausibility` says why a predicted cord cannot be a spinal cord.
"""

from cohort_sciseg.morphometry.centerline import CenterlineAngles, centerline_angles
from cohort_sciseg.morphometry.files import (
    analyze_lesion_files,
    scan_nli_slice,
    scan_vertebral_labels,
    write_lesion_analysis,
)
from cohort_sciseg.morphometry.lesions import LesionAnalysis, measure_lesions, slice_levels
from cohort_sciseg.morphometry.levels import SliceLevels
from cohort_sciseg.morphometry.plausibility import cord_plausibility

__all__ = [
    "CenterlineAngles",
    "LesionAnalysis",
    "SliceLevels",
    "analyze_lesion_files",
    "centerline_angles",
    "cord_plausibility",
    "measure_lesions",
    "scan_nli_slice",
    "scan_vertebral_labels",
    "slice_levels",
    "write_lesion_analysis",
]
