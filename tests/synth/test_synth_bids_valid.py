"""The official BIDS validator (``bids-validator-deno``, schema-based 3.x, offline) accepts synth's datasets."""

from __future__ import annotations

import shutil
from pathlib import Path

from bids_validation import validation_errors

from cohort_sciseg.synth import synthesize_cohort


def test_synth_datasets_are_valid_bids(tmp_path):
    cohort = synthesize_cohort(tmp_path / "c", sites=3, subjects_per_site=2, seed=7)
    for root in cohort.dataset_roots:
        assert validation_errors(Path(root)) == [], root


def test_the_validator_does_find_errors(tmp_path):
    """The check can fail: a file name that is not BIDS is an error."""
    cohort = synthesize_cohort(tmp_path / "c", sites=1, subjects_per_site=1, seed=7)
    root = Path(cohort.dataset_roots[0])
    image = next(root.glob("sub-*/anat/*_T2w.nii.gz"))
    shutil.copy(image, image.with_name("sub-01_notanentity_T2w.nii.gz"))
    codes = {code for code, _ in validation_errors(root)}
    assert codes
