"""A 100-scan synthetic cohort (slow; run with -m slow). Its speed is not asserted: tests never assert
wall-clock times (a loaded CI machine made this test fail at 62 s against a 60 s limit)."""

from __future__ import annotations

import pytest

from cohort_sciseg.synth import synthesize_cohort


@pytest.mark.slow
def test_a_100_scan_cohort(tmp_path):
    # 3 sites x 29 subjects + 14 follow-up sessions at site 2 = 101 scans
    c = synthesize_cohort(tmp_path / "c", sites=3, subjects_per_site=29, seed=1)
    assert c.n_scans == 101
    assert len(list((tmp_path / "c").glob("site*/sub-*/**/anat/*_T2w.nii.gz"))) == 101
