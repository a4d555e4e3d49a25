"""Generation speed: 100 scans well under a minute (slow; run with -m slow)."""

from __future__ import annotations

import time

import pytest

from cohort_sciseg.synth import synthesize_cohort


@pytest.mark.slow
def test_100_scans_under_a_minute(tmp_path):
    t0 = time.perf_counter()
    # 3 sites x 29 subjects + 14 follow-up sessions at site 2 = 101 scans
    c = synthesize_cohort(tmp_path / "c", sites=3, subjects_per_site=29, seed=1)
    elapsed = time.perf_counter() - t0
    assert c.n_scans == 101
    assert elapsed < 60.0, f"{c.n_scans} scans took {elapsed:.1f} s"
