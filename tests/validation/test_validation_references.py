"""Manual masks that cannot serve as a reference are validation failures, not zeros in the statistics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cohort_sciseg.discover import find_scans
from cohort_sciseg.io import load_nifti, save_nifti
from cohort_sciseg.synth import synthesize_cohort
from cohort_sciseg.validation import Prediction, validate_scans


@pytest.fixture(scope="module")
def scan_with_lesion(tmp_path_factory):
    root = tmp_path_factory.mktemp("refs")
    c = synthesize_cohort(root / "cohort", sites=1, subjects_per_site=2, seed=5)
    scans = find_scans(c.dataset_roots).scans
    scan = next(s for s in scans if (load_nifti(s.lesion_mask_path).data > 0).any())
    return scan, root


def _validate(scan, tmp_path, *, cord=None, lesion=None, dtype=None):
    """Validate the manual masks (replaced by ``cord``/``lesion`` when given) against themselves as prediction."""
    c = load_nifti(scan.cord_mask_path)
    les = load_nifti(scan.lesion_mask_path)
    cord_data = c.data if cord is None else cord(c.data)
    lesion_data = les.data if lesion is None else lesion(les.data)
    mc = save_nifti(tmp_path / "manual_cord.nii.gz", cord_data, c.affine, dtype=dtype)
    ml = save_nifti(tmp_path / "manual_lesion.nii.gz", lesion_data, c.affine, dtype=dtype)
    pc = save_nifti(tmp_path / "pred_sc_seg.nii.gz", c.data, c.affine)
    pl = save_nifti(tmp_path / "pred_lesion_seg.nii.gz", les.data, c.affine)
    s = dataclasses.replace(scan, cord_mask_path=str(mc), lesion_mask_path=str(ml))
    return validate_scans([s], {s.scan_id: Prediction(str(pc), str(pl))})


def _failure(tables):
    assert len(tables.failures) == 1
    assert tables.metrics.num_rows == 0
    assert tables.biomarkers.num_rows == 0
    f = tables.failures[0]
    assert f.stage == "validation"
    assert "Fix:" in f.message
    assert "only its validation is excluded" in f.message
    return f


def test_soft_lesion_mask_below_threshold(scan_with_lesion, tmp_path):
    scan, _ = scan_with_lesion
    f = _failure(_validate(scan, tmp_path, lesion=lambda d: (d > 0) * 0.45, dtype=np.float32))
    assert "none above 0.5" in f.message
    assert "0.45" in f.message
    assert f.path.endswith("manual_lesion.nii.gz")


def test_lesion_mask_saved_with_minus_one(scan_with_lesion, tmp_path):
    scan, _ = scan_with_lesion
    f = _failure(_validate(scan, tmp_path, lesion=lambda d: -(d > 0).astype(np.int8), dtype=np.int8))
    assert "none above 0.5" in f.message
    assert "-1" in f.message


def test_empty_manual_cord(scan_with_lesion, tmp_path):
    scan, _ = scan_with_lesion
    f = _failure(_validate(scan, tmp_path, cord=lambda d: np.zeros_like(d)))
    assert "manual cord mask is empty after binarisation" in f.message
    assert f.path.endswith("manual_cord.nii.gz")


def test_lesion_fully_outside_the_manual_cord(scan_with_lesion, tmp_path):
    scan, _ = scan_with_lesion

    def far(d):
        out = np.zeros_like(d)
        out[:3, :3, :3] = 1  # a corner of the image: no cord there
        return out

    f = _failure(_validate(scan, tmp_path, lesion=far))
    assert "lie fully outside the manual cord mask" in f.message


def test_all_zero_lesion_mask_is_a_valid_reference(scan_with_lesion, tmp_path):
    """A scan without lesion is a valid reference (n_lesions 0 enters the statistics on purpose)."""
    scan, _ = scan_with_lesion
    tables = _validate(scan, tmp_path, lesion=lambda d: np.zeros_like(d))
    assert tables.failures == ()
    bio = tables.biomarkers.to_pandas()
    assert bio.loc[bio.method == "manual", "n_lesions"].tolist() == [0]


def test_soft_manual_masks_are_used_and_their_notes_kept(scan_with_lesion, tmp_path):
    scan, _ = scan_with_lesion
    tables = _validate(scan, tmp_path, lesion=lambda d: (d > 0) * 0.9, dtype=np.float32)
    assert tables.failures == ()
    notes = " ".join(tables.manual_notes[scan.scan_id])
    assert "lesion mask" in notes
    assert "0.9" in notes
