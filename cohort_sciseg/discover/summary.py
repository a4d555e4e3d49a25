"""Outputs of discovery: ``scans.parquet``, a count table and a readable summary."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pandas as pd

from cohort_sciseg.discover.find import Discovery
from cohort_sciseg.io import write_parquet
from cohort_sciseg.records import failures_to_table, scans_to_table

__all__ = ["SUMMARY_COLUMNS", "format_summary", "summarize", "write_failures", "write_scans"]

#: Columns of :func:`summarize`, in order.
SUMMARY_COLUMNS = (
    "site",
    "acquisition_plane",
    "orientation",
    "n_scans",
    "n_with_cord_mask",
    "n_without_cord_mask",
    "n_with_lesion_mask",
    "n_without_lesion_mask",
    "n_with_both_masks",
)

_SHOWN_PROBLEMS = 5


def write_scans(discovery: Discovery, out_path: str | os.PathLike[str]) -> Path:
    """Write the scans of ``discovery`` to Parquet (schema :data:`~cohort_sciseg.records.SCANS_SCHEMA`).

    The file is written atomically (temporary file + rename), so a reader never
    sees a partial table.

    Parameters
    ----------
    discovery
        Result of :func:`~cohort_sciseg.discover.find_scans`.
    out_path
        Destination, e.g. ``"out/scans.parquet"``; parent folders are created.

    Returns
    -------
    Path
        ``out_path``.
    """
    return write_parquet(out_path, scans_to_table(discovery.scans))


def write_failures(discovery: Discovery, out_path: str | os.PathLike[str]) -> Path:
    """Write the problems of ``discovery`` to Parquet (schema :data:`~cohort_sciseg.records.FAILURES_SCHEMA`).

    Written atomically, like :func:`write_scans`; an empty table when there was no problem.

    Parameters
    ----------
    discovery
        Result of :func:`~cohort_sciseg.discover.find_scans`.
    out_path
        Destination, e.g. ``"out/failures.parquet"``; parent folders are created.

    Returns
    -------
    Path
        ``out_path``.
    """
    return write_parquet(out_path, failures_to_table(discovery.problems))


def summarize(discovery: Discovery) -> pd.DataFrame:
    """Scan counts per site x acquisition plane x orientation, with and without manual masks.

    Returns
    -------
    pandas.DataFrame
        One row per (``site``, ``acquisition_plane``, ``orientation``) present,
        sorted, with the columns of :data:`SUMMARY_COLUMNS` (counts are scans).
    """
    rows = [
        {
            "site": s.site,
            "acquisition_plane": s.acquisition_plane,
            "orientation": s.orientation,
            "cord": s.cord_mask_path is not None,
            "lesion": s.lesion_mask_path is not None,
        }
        for s in discovery.scans
    ]
    if not rows:
        return pd.DataFrame(
            {
                c: pd.Series(dtype="int64" if c.startswith("n_") else "object")
                for c in SUMMARY_COLUMNS
            }
        )
    df = pd.DataFrame(rows)
    df["both"] = df["cord"] & df["lesion"]
    out = (
        df.groupby(["site", "acquisition_plane", "orientation"], sort=True)
        .agg(
            n_scans=("cord", "size"),
            n_with_cord_mask=("cord", "sum"),
            n_with_lesion_mask=("lesion", "sum"),
            n_with_both_masks=("both", "sum"),
        )
        .reset_index()
    )
    out["n_without_cord_mask"] = out["n_scans"] - out["n_with_cord_mask"]
    out["n_without_lesion_mask"] = out["n_scans"] - out["n_with_lesion_mask"]
    out = out[list(SUMMARY_COLUMNS)]
    for c in SUMMARY_COLUMNS[3:]:
        out[c] = out[c].astype("int64")
    return out


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"


def format_summary(discovery: Discovery) -> str:
    """A readable text summary of ``discovery`` (for logs and the CLI).

    Lists the datasets, the scans per site (with mask counts), acquisition
    planes, orientations, mask totals, the active filters, and the number of
    problems with the first few messages.
    """
    scans = discovery.scans
    n = len(scans)
    sites = Counter(s.site for s in scans)
    lines = [
        f"Discovery: {n} scan(s) from {len(discovery.datasets)} dataset(s), {len(sites)} site(s); "
        f"{len(discovery.problems)} problem(s)"
    ]
    per_root = Counter(s.dataset_root for s in scans)
    if discovery.datasets:
        lines.append("Datasets:")
        for ds in discovery.datasets:
            column = ", sites from participants.tsv" if ds.site_column else ""
            lines.append(
                f"  {ds.name!r} at {ds.root!r}: {per_root[ds.root]} scan(s), site {ds.site!r}{column}"
            )
    lines.append("Sites:")
    cord = Counter(s.site for s in scans if s.cord_mask_path is not None)
    lesion = Counter(s.site for s in scans if s.lesion_mask_path is not None)
    width = max((len(s) for s in sites), default=0)
    for site in sorted(sites):
        lines.append(
            f"  {site:<{width}}  {sites[site]} scan(s), cord mask {cord[site]}, lesion mask {lesion[site]}"
        )
    if not sites:
        lines.append("  none")
    lines.append(f"Acquisition planes: {_counts(Counter(s.acquisition_plane for s in scans))}")
    lines.append(f"Orientations: {_counts(Counter(s.orientation for s in scans))}")
    both = sum(s.has_manual_masks for s in scans)
    lines.append(
        f"Manual masks: cord {sum(cord.values())}/{n}, lesion {sum(lesion.values())}/{n}, both {both}/{n}"
    )
    verts = sum(s.vert_labels_path is not None for s in scans)
    discs = sum(s.disc_labels_path is not None for s in scans)
    if verts or discs:
        lines.append(f"Vertebral labels: labelled cord {verts}/{n}, disc labels {discs}/{n}")
    active = {
        k: v
        for k, v in discovery.filters.items()
        if k in ("participant_labels", "sessions", "include", "exclude") and v is not None
    }
    if active:
        shown = "; ".join(
            f"{k}={v[:5]!r}{' ...' if len(v) > 5 else ''} ({len(v)})"
            for k, v in sorted(active.items())
        )
        lines.append(f"Filters: {shown}")
    lines.append(f"Problems: {len(discovery.problems)}")
    for f in discovery.problems[:_SHOWN_PROBLEMS]:
        lines.append(f"  - [{f.error_type}] {f.message}")
    if len(discovery.problems) > _SHOWN_PROBLEMS:
        lines.append(f"  ... and {len(discovery.problems) - _SHOWN_PROBLEMS} more")
    return "\n".join(lines)
