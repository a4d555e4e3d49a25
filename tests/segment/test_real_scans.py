"""Real scans of ../shared/data/spine-t2w end to end (skipped with the reason when absent)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cohort_sciseg.segment import SegmentationEngine, demo_model_path


def _check_outputs(image: Path, prefix: Path, engine: SegmentationEngine) -> None:
    out = engine.segment_file(image, prefix)
    src = nib.load(image)
    for mask in (out.cord, out.lesion):
        got = nib.load(mask)
        assert got.shape == src.shape
        assert np.array_equal(got.affine, src.affine)
        assert got.header.get_zooms() == src.header.get_zooms()
        assert got.get_data_dtype() == np.uint8
    entry = json.loads(out.cord_sidecar.read_text())["GeneratedBy"][0]
    assert entry["ModelChecksum"] == engine.describe()["checksum"]


@pytest.mark.shared_data
def test_cropped_real_scan_end_to_end(spine_t2w: Path, tiny_model: Path, tmp_path: Path, fresh_cache: None) -> None:
    image = spine_t2w / "sub-sctcrop" / "anat" / "sub-sctcrop_T2w.nii.gz"  # PSR in nibabel terms, 60x55x52
    _check_outputs(image, tmp_path / "sub-sctcrop_T2w", SegmentationEngine(model=str(tiny_model)))


@pytest.mark.slow
@pytest.mark.shared_data
def test_full_real_scan_end_to_end(spine_t2w: Path, tiny_model: Path, tmp_path: Path, fresh_cache: None) -> None:
    """errsm11 (384 x 216 x 52) with the demo model when installed, else the tiny one."""
    model = demo_model_path() if demo_model_path().is_dir() else tiny_model
    image = spine_t2w / "sub-errsm11" / "anat" / "sub-errsm11_T2w.nii.gz"
    _check_outputs(image, tmp_path / "sub-errsm11_T2w", SegmentationEngine(model=str(model), tile_step_size=1.0))
