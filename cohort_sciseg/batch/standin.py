"""A fast stand-in segmenter plugin (``copy-manual``) for scale tests and benchmarks.

It "predicts" the manual masks that discovery would find for the image
(``derivatives/labels/sub-*/[ses-*/]anat/<stem>_seg-manual`` and ``_lesion-manual``),
optionally with every lesion dilated, and empty masks where there are none. It is
a plugin like any other (registered as ``copy-manual``): the runner has no code
path for it. Costs a few milliseconds per scan, so a run measures the runner's
own overhead.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from cohort_sciseg.discover import DEFAULT_CORD_SUFFIXES, DEFAULT_LESION_SUFFIXES
from cohort_sciseg.io import (
    check_same_geometry,
    find_labels_masks,
    image_folder,
    load_nifti,
    save_nifti,
)

__all__ = ["CopyManualSegmenter"]


def _manual(image: Path, suffixes: tuple[str, ...]) -> Path | None:
    """The manual mask discovery would read for ``image`` (same rule: :mod:`cohort_sciseg.io.derivatives`)."""
    try:
        root, _ = image_folder(image)
    except ValueError:
        return None  # not in a BIDS anat folder: no manual mask, an empty prediction
    found = find_labels_masks(root, image, suffixes)
    return found[0] if found else None


class CopyManualSegmenter:
    """Copy the manual masks as the prediction (optionally dilating lesions).

    Parameters
    ----------
    dilate_lesions
        Binary dilation iterations applied to the lesion mask (0: exact copy).
    delay_s
        Extra sleep per scan, to emulate a slower model in tests.
    kill_on
        Fault injection for tests: when the image file name contains this text, the
        process kills itself (SIGKILL), as a worker killed by the kernel's OOM killer
        would die. Empty (the default): never.
    kill_once
        With ``kill_on``: die only at the first attempt (a marker file
        ``<out_prefix>.killed`` remembers it), so the retry succeeds.
    """

    def __init__(
        self, dilate_lesions: int = 0, delay_s: float = 0.0, kill_on: str = "", kill_once: bool = False
    ) -> None:
        self.dilate_lesions = int(dilate_lesions)
        self.delay_s = float(delay_s)
        self.kill_on = str(kill_on)
        self.kill_once = bool(kill_once)

    def describe(self) -> dict[str, Any]:
        return {
            "name": "copy-manual",
            "checksum": f"copy-manual-d{self.dilate_lesions}",
            "settings": {"dilate_lesions": self.dilate_lesions},
        }

    def segment(self, image_path: str, out_prefix: str) -> tuple[str, str]:
        image = Path(image_path)
        if self.kill_on and self.kill_on in image.name:
            marker = Path(f"{out_prefix}.killed")
            if not (self.kill_once and marker.exists()):
                marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)
        info = load_nifti(image)  # read the voxels as a real model would (and fail as it would)
        shape = tuple(info.shape[:3])
        cord = np.zeros(shape, np.uint8)
        lesion = np.zeros(shape, np.uint8)
        if (p := _manual(image, DEFAULT_CORD_SUFFIXES)) is not None:
            m = load_nifti(p)
            check_same_geometry(info, m, what="manual cord mask (the stand-in's prediction)")
            cord = (m.data > 0.5).astype(np.uint8)
        if (p := _manual(image, DEFAULT_LESION_SUFFIXES)) is not None:
            m = load_nifti(p)
            check_same_geometry(info, m, what="manual lesion mask (the stand-in's prediction)")
            les = m.data > 0.5
            if self.dilate_lesions and les.any():
                les = ndimage.binary_dilation(les, iterations=self.dilate_lesions) & (cord > 0)
            lesion = les.astype(np.uint8)
        if self.delay_s:
            time.sleep(self.delay_s)
        c = save_nifti(f"{out_prefix}_sc_seg.nii.gz", cord, info.affine)
        q = save_nifti(f"{out_prefix}_lesion_seg.nii.gz", lesion, info.affine)
        return str(c), str(q)
