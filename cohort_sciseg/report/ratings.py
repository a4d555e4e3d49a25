"""QC ratings read back: worklists of scans to correct, manual-mask starting points, exclusions.

Reviewers rate each scan of the HTML QC report *pass*, *fail* or *artifact*, with a
comment, and export the ratings from the browser in one of two fixed formats.

CSV (RFC 4180 quoting; a comment may hold commas, quotes and newlines; ``ses`` is
empty for scans without a session)::

    scan_id,site,sub,ses,rating,comment,rated_at
    site-site1_sub-01_acq-sag_T2w,site1,01,,fail,"lesion missed, see C4",2024-05-01T12:00:00.000Z

YAML (values are quoted strings, as a JSON-style flow mapping writes them; an
unquoted ``sub: 01`` would be read by YAML as the number 1)::

    report: <report id>
    exported_at: 2024-05-01T12:05:00.000Z
    ratings:
      - {scan_id: "site-site1_sub-01_acq-sag_T2w", site: "site1", sub: "01", ses: "", rating: "fail",
         comment: "lesion missed", rated_at: "2024-05-01T12:00:00.000Z"}

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
