"""Where a run puts its outputs: the run folder's layout, named in one place.

``OUT/`` holds one BIDS derivative dataset per site (the official validator accepts
each) and, beside them, the cohort-level outputs::

    OUT/<site>/dataset_description.json       DatasetType derivative, GeneratedBy (model, checksum),
                                              SourceDatasets (that site's BIDS dataset)
    OUT/<site>/sub-<sub>/[ses-<ses>/]anat/<source entities>_label-SC_mask.nii.gz     (+ .json)
    OUT/<site>/sub-<sub>/[ses-<ses>/]anat/<source entities>_label-lesion_mask.nii.gz (+ .json)
    OUT/tables/  OUT/logs/  OUT/report/  OUT/validation/  OUT/.cohort-sciseg/

(the cohort-level paths are named by :class:`cohort_sciseg.io.RunLayout`).

``<source entities>`` are the image's own (``sub-01_ses-01_acq-sag_run-1``); binary
masks are BIDS derivatives' ``_mask`` suffix with a ``label-`` entity. With
``naming="sct"`` the masks keep SCT's names instead (``<scan_id>_sc_seg.nii.gz``,
``_lesion_seg.nii.gz``) for scripts that expect them; those are not BIDS-valid.

Segmenters write SCT's names to a hidden work prefix in the scan's folder
(:func:`work_prefix`); :func:`place_masks` moves them (and their JSON sidecars) to
the final names with atomic renames.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Literal

from cohort_sciseg.errors import BatchError, format_error
from cohort_sciseg.io import RunLayout
from cohort_sciseg.records import Scan

__all__ = [
    "MASK_NAMINGS",
    "MaskNaming",
    "check_naming",
    "mask_paths",
    "migrate_previous_layout",
    "place_masks",
    "scan_folder",
    "site_dataset",
    "work_prefix",
]

logger = logging.getLogger(__name__)

MaskNaming = Literal["bids", "sct"]
MASK_NAMINGS: tuple[str, ...] = ("bids", "sct")

#: Entities of the BIDS mask names (cord, lesion).
_BIDS_LABELS = ("label-SC_mask", "label-lesion_mask")
_SCT_SUFFIXES = ("sc_seg", "lesion_seg")


def check_naming(value: str) -> MaskNaming:
    """``value`` as a :data:`MaskNaming`, or a :class:`~cohort_sciseg.errors.BatchError` naming the valid ones."""
    if value not in MASK_NAMINGS:
        msg = format_error(f"mask naming {value!r} is not valid", expected=f"one of {MASK_NAMINGS}",
                           fix="pass --mask-names bids (default) or sct")
        raise BatchError(msg)
    return value  # type: ignore[return-value]


def site_dataset(out_dir: str | os.PathLike[str], site: str) -> Path:
    """The derivative dataset of ``site`` inside the run folder."""
    return RunLayout(out_dir).site_dataset(site)


def scan_folder(out_dir: str | os.PathLike[str], scan: Scan) -> Path:
    """``OUT/<site>/sub-<sub>/[ses-<ses>/]anat``."""
    folder = site_dataset(out_dir, scan.site) / f"sub-{scan.sub}"
    if scan.ses:
        folder = folder / f"ses-{scan.ses}"
    return folder / "anat"


def mask_paths(out_dir: str | os.PathLike[str], scan: Scan, naming: MaskNaming = "bids") -> tuple[Path, Path]:
    """Final paths of the scan's predicted (cord, lesion) masks (see the module docstring)."""
    folder = scan_folder(out_dir, scan)
    if naming == "sct":
        return tuple(folder / f"{scan.scan_id}_{s}.nii.gz" for s in _SCT_SUFFIXES)  # type: ignore[return-value]
    stem = "_".join(f"{k}-{v}" for k, v in scan.entities)
    return tuple(folder / f"{stem}_{label}.nii.gz" for label in _BIDS_LABELS)  # type: ignore[return-value]


def work_prefix(out_dir: str | os.PathLike[str], scan: Scan) -> Path:
    """Hidden prefix the segmenter writes to (``.work-<scan_id>``; the BIDS validator skips dot-files)."""
    folder = scan_folder(out_dir, scan)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f".work-{scan.scan_id}"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name[: -len(".nii.gz")] + ".json") if path.name.endswith(".nii.gz") else path.with_suffix(".json")


def place_masks(
    written: tuple[str, str], out_dir: str | os.PathLike[str], scan: Scan, naming: MaskNaming = "bids"
) -> tuple[str, str]:
    """Move the masks a segmenter wrote (and their JSON sidecars) to their final names; return those."""
    final = mask_paths(out_dir, scan, naming)
    for src, dst in zip(written, final, strict=True):
        s = Path(src)
        if s.resolve() == dst.resolve():
            continue
        for a, b in ((_sidecar(s), _sidecar(dst)), (s, dst)):  # the mask last: its presence means complete
            if a.exists():
                os.replace(a, b)
    return str(final[0]), str(final[1])


def migrate_previous_layout(out_dir: str | os.PathLike[str]) -> int:
    """Move the masks of a run folder made before the per-site derivative layout out of the way.

    Such a folder has one ``dataset_description.json`` at its top and masks named
    ``<scan_id>_sc_seg.nii.gz`` (SCT's names) under ``<site>/``; the BIDS validator
    rejects both. Their masks, sidecars and ``_morphometry.json`` files move to
    ``.cohort-sciseg/previous-layout/`` (kept, not deleted), the top description is
    removed, and the run redoes the scans under the new names (their key names the
    layout). Returns the number of files moved (0: nothing to migrate).
    """
    out = Path(out_dir)
    previous = RunLayout(out).previous_layout
    top = out / "dataset_description.json"
    try:
        if json.loads(top.read_text(encoding="utf-8")).get("Name") != "cohort-sciseg derivatives":
            return 0  # not ours (or absent): never touched
    except (OSError, ValueError, AttributeError):
        return 0
    moved = 0
    for site in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if site.name in RunLayout.COHORT_FOLDERS:
            continue
        for path in sorted(site.rglob("site-*")):
            name = path.name
            if path.is_file() and name.endswith(("_sc_seg.nii.gz", "_lesion_seg.nii.gz", "_sc_seg.json",
                                                 "_lesion_seg.json", "_morphometry.json")):
                target = previous / path.relative_to(out)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(path), target)
                moved += 1
    previous.mkdir(parents=True, exist_ok=True)
    top.replace(previous / "dataset_description.json")
    if moved:
        logger.warning(
            "%s was made by an earlier cohort-sciseg (one dataset, masks named <scan_id>_sc_seg): its %d mask "
            "file(s) moved to %s and its scans are redone with BIDS names (one derivative dataset per site)",
            out, moved, previous,
        )
    return moved
