"""QC ratings read back: worklists of scans to correct, manual-mask starting points, exclusions.

Reviewers rate each scan of the HTML QC report *pass*, *fail* or *artifact* and export
the ratings as CSV or YAML (formats: :mod:`~cohort_sciseg.report.rating_files`).

The correction loop: :func:`worklist` lists the failed scans with their image, the
predicted masks of the run and the manual-mask paths that discovery reads
(``<dataset>/derivatives/labels/sub-X/[ses-Y/]anat/<image stem>_seg-manual.nii.gz``
and ``..._lesion-manual.nii.gz``); :func:`prepare_corrections` copies the predicted
masks there as starting points (never over an existing manual mask unless asked);
the reviewer edits them (FSLeyes, ITK-SNAP) and re-runs ``cohort-sciseg run ...
--resume``, which finds them as manual masks and redoes those scans (a scan's key
holds the hashes of its manual masks). :func:`excluded_scans` gives the scan ids
that ``cohort-sciseg run --exclude-ratings`` leaves out.

The roles live in their own modules: :mod:`~cohort_sciseg.report.rating_files`
(reading and writing ratings files, exclusions), :mod:`~cohort_sciseg.report.qc_worklist`
and :mod:`~cohort_sciseg.report.corrections`; this module gathers their public names.
"""

from cohort_sciseg.report.corrections import prepare_corrections
from cohort_sciseg.report.qc_worklist import WORKLIST_COLUMNS, worklist
from cohort_sciseg.report.rating_files import (
    RATING_COLUMNS,
    RATINGS,
    Rating,
    excluded_scans,
    read_ratings,
    write_ratings,
)

__all__ = [
    "RATINGS",
    "RATING_COLUMNS",
    "WORKLIST_COLUMNS",
    "Rating",
    "excluded_scans",
    "prepare_corrections",
    "read_ratings",
    "worklist",
    "write_ratings",
]
