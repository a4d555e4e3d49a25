"""Parity with nnU-Net's own command line on the same model and files (Dice >= 0.999).

``nnUNetv2_predict_from_modelfolder`` reads the file with SimpleITK; on an image
already in the model's orientation that is exactly what SCT's path (reorient,
transpose [2, 1, 0], reversed spacing) feeds ``predict_single_npy_array``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cohort_sciseg.io import load_nifti
from cohort_sciseg.segment import SegmentationEngine
from cohort_sciseg.segment.testing import TINY_TRAINER_FOLDER


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


@pytest.mark.slow
def test_same_masks_as_nnunet_cli(
    tiny_model: Path, write_image: Callable[..., Path], tmp_path: Path, fresh_cache: None
) -> None:
    cli = Path(sys.executable).with_name("nnUNetv2_predict_from_modelfolder")
    if not cli.is_file():
        found = shutil.which("nnUNetv2_predict_from_modelfolder")
        if found is None:
            pytest.skip("nnUNetv2_predict_from_modelfolder is not installed beside this Python")
        cli = Path(found)
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    image = write_image("in/case_0000.nii.gz")  # RPI: the model's orientation
    env = {**os.environ, "nnUNet_def_n_proc": "1"}
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[var] = str(tmp_path / var)
    proc = subprocess.run(
        [str(cli), "-i", str(in_dir), "-o", str(out_dir), "-m", str(tiny_model / TINY_TRAINER_FOLDER),
         "-f", "0", "-device", "cpu", "--disable_tta", "-step_size", "0.5", "-npp", "1", "-nps", "1",
         "--disable_progress_bar"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    theirs = np.asarray(nib.load(out_dir / "case.nii.gz").dataobj)
    ours = SegmentationEngine(model=str(tiny_model)).predict_labels(load_nifti(image))
    assert theirs.shape == ours.shape
    assert set(np.unique(theirs)) == {0, 1, 2}
    for value in (1, 2):
        assert _dice(ours >= value, theirs >= value) >= 0.999, value
    assert _dice(ours == 2, theirs == 2) >= 0.999
