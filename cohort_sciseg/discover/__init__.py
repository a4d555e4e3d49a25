"""BIDS datasets -> scan records: sites, entities, sidecars, participants, manual masks and vertebral labels.

:func:`find_scans` searches one or many BIDS datasets for T2w images and returns
a :class:`Discovery` (scans, problems, active filters, datasets).
:func:`write_scans` and :func:`write_failures` write ``scans.parquet`` and
``failures.parquet``; :func:`summarize` and :func:`format_summary` give a count
table and a readable summary.
"""

from cohort_sciseg.discover.datasets import expand_dataset_folders
from cohort_sciseg.discover.entities import encode_label, parse_name, scan_id, site_label
from cohort_sciseg.discover.find import Dataset, Discovery, OnProblem, find_scans
from cohort_sciseg.discover.masks import (
    DEFAULT_CORD_SUFFIXES,
    DEFAULT_DISC_SUFFIXES,
    DEFAULT_LESION_SUFFIXES,
    DEFAULT_VERTEBRAL_SUFFIXES,
)
from cohort_sciseg.discover.participants import Participants, read_participants
from cohort_sciseg.discover.sidecars import SidecarFile, merge_sidecars, parse_field_strength
from cohort_sciseg.discover.summary import (
    SUMMARY_COLUMNS,
    format_summary,
    summarize,
    write_failures,
    write_scans,
)

__all__ = [
    "DEFAULT_CORD_SUFFIXES",
    "DEFAULT_DISC_SUFFIXES",
    "DEFAULT_LESION_SUFFIXES",
    "DEFAULT_VERTEBRAL_SUFFIXES",
    "SUMMARY_COLUMNS",
    "Dataset",
    "Discovery",
    "OnProblem",
    "Participants",
    "SidecarFile",
    "encode_label",
    "expand_dataset_folders",
    "find_scans",
    "format_summary",
    "merge_sidecars",
    "parse_field_strength",
    "parse_name",
    "read_participants",
    "scan_id",
    "site_label",
    "summarize",
    "write_failures",
    "write_scans",
]
