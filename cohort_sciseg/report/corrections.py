"""Starting points of manual corrections: the run's predicted masks copied to the manual-mask targets.

The file writing itself (atomic copy, sidecar, ``derivatives/labels`` description) is
:func:`cohort_sciseg.io.copy_mask_to_labels`; see :mod:`cohort_sciseg.report.ratings`
for the correction loop.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from cohort_sciseg._version import __version__
from cohort_sciseg.errors import ReportError, format_error
from cohort_sciseg.io import (
    copy_mask_to_labels,
    find_labels_masks,
    nifti_stem,
    preferred_mask,
    sha256_file,
)
from cohort_sciseg.report.qc_worklist import (
    STRUCTURES,
    WORKLIST_COLUMNS,
    dataset_folder,
    str_or_none,
)

__all__ = ["prepare_corrections"]

logger = logging.getLogger(__name__)

_SIDECAR_DESCRIPTION = "predicted mask copied for manual correction"


# --------------------------------------------------------------------------- starting points


def prepare_corrections(worklist_df: pd.DataFrame, *, overwrite: bool = False) -> list[Path]:
    """Copy each predicted mask to its manual-mask target, as the starting point of a correction.

    A target whose scan already has a manual mask of that structure (under any
    of discovery's suffixes) is left alone unless ``overwrite``; with
    ``overwrite`` the target is replaced, but a mask that discovery would read
    instead of the target (e.g. ``..._seg-manual.nii`` beside the target
    ``..._seg-manual.nii.gz``) is an error, as the copy would be ignored. Each
    copy is written atomically, with a JSON sidecar beside it
    (``<target stem>.json``: ``GeneratedBy``, ``SpatialReference``, the source
    prediction and its sha256, the rating and comment) so that a corrected mask's
    origin can be traced; a ``derivatives/labels`` folder without a
    ``dataset_description.json`` gets one (see
    :func:`cohort_sciseg.io.copy_mask_to_labels`).

    Parameters
    ----------
    worklist_df
        A frame from :func:`worklist`.
    overwrite
        Replace existing manual masks (default: never).

    Returns
    -------
    list of Path
        The masks written (not the sidecars), cord then lesion per scan; skipped
        targets are not listed.

    Raises
    ------
    ReportError
        A column is missing, a predicted mask is missing (the scan failed in the
        run, or the run folder moved), or with ``overwrite`` an existing mask
        would shadow the copy. Checked for every row before anything is written.
    """
    missing_cols = [c for c in WORKLIST_COLUMNS if c not in worklist_df.columns]
    if missing_cols:
        msg = format_error(
            f"the worklist has no column(s) {missing_cols!r}",
            expected=f"a frame from worklist() with the columns {', '.join(WORKLIST_COLUMNS)}",
            fix="build it with worklist(ratings, out_dir)",
        )
        raise ReportError(msg)
    plan: list[tuple[dict[str, Any], str, Path, Path]] = []
    absent: list[str] = []
    for r in worklist_df.to_dict("records"):
        image = Path(str(r["image_path"]))
        stem = nifti_stem(image)
        for structure, suffixes in STRUCTURES:
            pred = str_or_none(r[f"{structure}_seg_path"])
            target = Path(str(r[f"{structure}_target_path"]))
            if pred is None or not Path(pred).is_file():
                absent.append(f"{r['scan_id']} ({structure}: {pred!r})")
                continue
            root, _ = dataset_folder(
                str(r["scan_id"]), image, str(r["sub"]), str_or_none(r["ses"])
            )
            existing = find_labels_masks(root, image, suffixes)
            if existing and not overwrite:
                logger.info(
                    "%s: kept the existing manual %s mask %s", r["scan_id"], structure, existing[0]
                )
                continue
            # discovery reads the first by (suffix rank, path): a copy it would ignore is an error
            read = preferred_mask([*existing, target], stem, suffixes)
            if read != target:
                msg = format_error(
                    f"the manual {structure} mask {str(read)!r} would be read instead of the copy {str(target)!r}",
                    path=read,
                    scan_id=str(r["scan_id"]),
                    expected="no manual mask that discovery prefers over the target",
                    fix=f"correct {str(read)!r} in place, or move it away and prepare again",
                )
                raise ReportError(msg, path=read, scan_id=str(r["scan_id"]))
            plan.append((r, structure, Path(pred), target))
    if absent:
        shown = "; ".join(absent[:5]) + (f"; and {len(absent) - 5} more" if len(absent) > 5 else "")
        msg = format_error(
            f"{len(absent)} predicted mask(s) are missing: {shown}",
            expected="the predicted masks of the run (scans that segmented)",
            fix="re-run `cohort-sciseg run --resume` for these scans, or draw their masks from scratch "
            "at the target paths of the worklist and leave them out of this call",
        )
        raise ReportError(msg)
    written = []
    for row, structure, source, target in plan:
        copy_mask_to_labels(
            source, target, _sidecar(row, structure, source), generated_by=_generated_by()
        )
        logger.info("%s: predicted %s mask copied to %s", row["scan_id"], structure, target)
        written.append(target)
    return written


def _generated_by() -> list[dict[str, str]]:
    return [{"Name": "cohort-sciseg", "Version": __version__, "Description": _SIDECAR_DESCRIPTION}]


def _sidecar(row: dict[str, Any], structure: str, pred: Path) -> dict[str, Any]:
    image = Path(str(row["image_path"]))
    _, rel = dataset_folder(str(row["scan_id"]), image, str(row["sub"]), str_or_none(row["ses"]))
    return {
        "GeneratedBy": _generated_by(),
        "SpatialReference": f"bids::{(rel / image.name).as_posix()}",
        "Sources": [pred.as_uri()],
        "SourceSHA256": sha256_file(pred),
        "Structure": structure,
        "QC": {
            "scan_id": str(row["scan_id"]),
            "rating": str_or_none(row.get("rating")),
            "comment": str_or_none(row.get("comment")),
            "rated_at": str_or_none(row.get("rated_at")),
        },
    }
