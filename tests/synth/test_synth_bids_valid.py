"""The official BIDS validator (``bids-validator-deno``, schema-based 3.x, offline) accepts synth's datasets."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cohort_sciseg.synth import synthesize_cohort


def _validator() -> str:
    exe = shutil.which("bids-validator-deno") or str(Path(sys.executable).parent / "bids-validator-deno")
    if not Path(exe).is_file():
        pytest.skip("bids-validator-deno is not installed (pip install -e '.[test]')")
    return exe


def validation_errors(dataset: Path) -> list[tuple[str, str]]:
    """``(code, location)`` of every error the validator reports for ``dataset``."""
    proc = subprocess.run(
        [_validator(), "--format", "json", str(dataset)], capture_output=True, text=True, timeout=300, check=False
    )
    report = json.loads(proc.stdout)
    return [
        (i["code"], str(i.get("location", "")))
        for i in report["issues"]["issues"]
        if i["severity"] == "error"
    ]


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
