"""Fixtures of the synthetic-cohort tests: one small cohort written once per session."""

from __future__ import annotations

import pandas as pd
import pytest

from cohort_sciseg.synth import SynthCohort, synthesize_cohort

SMALL = {"sites": 4, "subjects_per_site": 3, "seed": 11, "implant_fraction": 0.5}


@pytest.fixture(scope="session")
def small_options() -> dict[str, int | float]:
    """Options of :func:`small_cohort`."""
    return dict(SMALL)


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthCohort:
    """Four sites (the three protocols + one repeat) of three subjects each."""
    return synthesize_cohort(tmp_path_factory.mktemp("cohort") / "out", **SMALL)


@pytest.fixture(scope="session")
def gt_scans(small_cohort: SynthCohort) -> pd.DataFrame:
    """Ground-truth scans table of the small cohort."""
    return pd.read_parquet(small_cohort.scans_table)


@pytest.fixture(scope="session")
def gt_lesions(small_cohort: SynthCohort) -> pd.DataFrame:
    """Ground-truth lesions table of the small cohort."""
    return pd.read_parquet(small_cohort.lesions_table)
