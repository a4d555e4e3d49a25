"""Clinical scores: valid ranges, and the burden-outcome correlations a cohort study looks for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cohort_sciseg.synth import (
    AIS_GRADES,
    CLINICAL_COLUMNS,
    injury_severity,
    plan_cohort,
    simulate_clinical_scores,
    synthesize_cohort,
)


def test_scores_in_range_and_consistent(rng):
    for _ in range(500):
        vol = float(rng.uniform(0, 1500))
        ratio = float(rng.uniform(0, 0.9))
        s = simulate_clinical_scores(vol, ratio, rng)
        assert tuple(s) == CLINICAL_COLUMNS
        assert 0 <= s["initial_LEMS"] <= 50
        assert 0 <= s["discharge_LEMS"] <= 50
        for k in ("pin_prick", "light_touch"):
            assert 0 <= s[f"initial_{k}_total"] <= 112
            assert 0 <= s[f"discharge_{k}_total"] <= 112
        assert s["initial_ais"] in AIS_GRADES
        assert s["discharge_ais"] in AIS_GRADES
        assert s["discharge_ais"] >= s["initial_ais"]  # grades never worsen
        if s["initial_ais"] == "A":
            assert s["initial_LEMS"] == 0
        if s["discharge_ais"] == "E":
            assert s["discharge_LEMS"] == 50
            assert s["discharge_pin_prick_total"] == 112


def test_severity_monotone():
    assert injury_severity(0.0, 0.0) == 0.0
    assert injury_severity(100.0, 0.2) < injury_severity(400.0, 0.2) < injury_severity(400.0, 0.6)
    assert injury_severity(1e6, 1.0) == pytest.approx(1.0)


def _planned(sites: int, n: int, seed: int) -> pd.DataFrame:
    rows = []
    for p in plan_cohort(sites=sites, subjects_per_site=n, seed=seed):
        rows.append({"volume": sum(les.volume_mm3 for les in p.lesions), **p.participant_dict})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1])
def test_lesion_volume_predicts_worse_outcome_60_subjects(seed):
    df = _planned(3, 20, seed)
    assert len(df) == 60
    for col in ("discharge_LEMS", "discharge_pin_prick_total", "discharge_light_touch_total"):
        rho, p = stats.spearmanr(df.volume, df[col])
        assert rho < -0.4, (col, rho)
        assert p < 1e-3, (col, p)
    # some spread in every score, and no deterministic relation
    assert df.discharge_LEMS.nunique() > 15
    assert df.initial_ais.nunique() >= 4
    assert stats.spearmanr(df.volume, df.discharge_LEMS)[0] > -0.98


@pytest.mark.slow
def test_measured_volume_predicts_worse_outcome_rendered_cohort(tmp_path):
    """The correlation holds with volumes measured from the written masks (as a user would)."""
    c = synthesize_cohort(tmp_path / "c", sites=3, subjects_per_site=20, seed=4)
    scans = pd.read_parquet(c.scans_table)
    scans = scans[scans.ses.isna() | (scans.ses == "01")]
    parts = pd.concat(
        pd.read_csv(root / "participants.tsv", sep="\t", dtype={"participant_id": str}).assign(
            site=root.name
        )
        for root in c.dataset_roots
    )
    parts["sub"] = parts.participant_id.str[4:]
    df = scans.merge(parts, on=["site", "sub"], validate="one_to_one")
    assert len(df) == 60
    rho, p = stats.spearmanr(df.total_lesion_volume_mm3, df.discharge_LEMS)
    assert rho < -0.4
    assert p < 1e-3
    rho, _ = stats.spearmanr(df.max_axial_damage_ratio, df.discharge_LEMS)
    assert rho < -0.3
    assert np.isfinite(df.total_lesion_volume_mm3).all()
