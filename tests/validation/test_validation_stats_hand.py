"""Statistics on hand-computed values (small cases worked out on paper)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cohort_sciseg.errors import ValidationError
from cohort_sciseg.validation import stats as vs


def test_wilcoxon_all_positive_differences_exact_p():
    # differences 1..5, all positive: W- = 0, exact two-sided p = 2 / 2**5
    row = vs.wilcoxon_paired([0, 0, 0, 0, 0], [1, 2, 3, 4, 5], measure="x").iloc[0]
    assert row.statistic == 0
    assert row.p == pytest.approx(2 / 32)
    assert row.estimate == 3
    assert json.loads(row.options) == {
        "zero_method": "wilcox",
        "method": "auto",
        "alternative": "two-sided",
        "correction": False,
    }


def test_wilcoxon_drops_incomplete_pairs_and_notes_zero_differences():
    row = vs.wilcoxon_paired([1, 2, np.nan, 4, 5, 6], [2, 2, 3, np.nan, 7, 9], measure="x").iloc[0]
    assert row.n == 4
    assert "1 zero differences" in row.note
    all_zero = vs.wilcoxon_paired([1, 2, 3], [1, 2, 3], measure="x").iloc[0]
    assert np.isnan(all_zero.p)
    assert all_zero.note == "all differences are zero"


def test_bland_altman_by_hand():
    # d = [1, 0, 2, 0]: mean 0.75, SD (ddof 1) = sqrt(((.25)^2 + .75^2 + 1.25^2 + .75^2) / 3) = sqrt(2.75/3)
    row = vs.bland_altman([1, 2, 3, 4], [2, 2, 5, 4], measure="v").iloc[0]
    sd = np.sqrt(2.75 / 3)
    assert row.estimate == pytest.approx(0.75)
    assert row.lower == pytest.approx(0.75 - 1.96 * sd)
    assert row.upper == pytest.approx(0.75 + 1.96 * sd)
    assert row.n == 4


def test_normality_needs_eight_values():
    row = vs.normality([1, 2, 3, 4, 5, 6, 7, np.nan], measure="v").iloc[0]
    assert row.n == 7
    assert np.isnan(row.p)
    assert "8" in row.note


def test_spearman_perfect_monotone_and_n_after_dropping():
    out = vs.compare_paired([1, 2, 3, 4, np.nan], [1, 4, 9, 16, 25], measure="v")
    sp = out[out.test == "scipy.stats.spearmanr"].iloc[0]
    assert sp.n == 4
    assert sp.estimate == pytest.approx(1.0)
    assert list(out.columns) == list(vs.STATS_COLUMNS)
    assert len(out) == 7


def test_bonferroni_is_p_times_comparisons():
    rng = np.random.default_rng(1)
    base = rng.normal(size=15)
    t = pd.DataFrame(
        {
            "scan_id": np.tile(np.arange(15), 3),
            "method": np.repeat(["ref", "a", "b"], 15),
            "value": np.concatenate([base, base + 0.3 + rng.normal(0, 0.2, 15), base + rng.normal(0, 1, 15)]),
        }
    )
    out = vs.compare_methods(t, value="value", reference="ref")
    pairs = out[out.analysis == "pairwise"]
    assert list(pairs.b) == ["a", "b"]
    np.testing.assert_allclose(pairs.p_adjusted, np.minimum(1.0, pairs.p * 2))
    # a scan missing one method leaves every test
    out2 = vs.compare_methods(t[~((t.scan_id == 0) & (t.method == "b"))], value="value", reference="ref")
    assert set(out2.n) == {14}
    with pytest.raises(ValueError, match="reference"):
        vs.compare_methods(t, value="value", reference="nope")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("A", 1.0), ("e", 5.0), ("AIS C", 3.0), ("4", 4.0), (2, 2.0), ("", np.nan), ("n/a", np.nan), (None, np.nan)],
)
def test_ais_grades(value, expected):
    got = vs.ais_to_numeric([value]).iloc[0]
    if np.isnan(expected):
        assert np.isnan(got)  # missing stays missing
    else:
        assert got == expected


@pytest.mark.parametrize("bad", ["F", "7", "ASIA"])
def test_ais_invalid_names_the_column(bad):
    with pytest.raises(ValidationError, match="discharge_ais"):
        vs.ais_to_numeric(["A", bad], column="discharge_ais")


def test_improvement_thresholds_are_inclusive():
    p = pd.DataFrame(
        {
            "initial_LEMS": [10, 10, np.nan],
            "discharge_LEMS": [11, 10, 20],
            "initial_light_touch_total": [50, 50, 50],
            "discharge_light_touch_total": [62.95, 62.9, 40],
            "initial_pin_prick_total": [20, 20, 20],
            "discharge_pin_prick_total": [27.8, 27.7, 30],
            "initial_ais": ["A", "B", "C"],
            "discharge_ais": ["C", "B", "D"],
        }
    )
    out = vs.clinical_improvement(p)
    assert list(out.LEMS_improved.astype(object)) == [True, False, pd.NA]
    assert list(out.light_touch_total_improved.astype(object)) == [True, False, False]
    assert list(out.pin_prick_total_improved.astype(object)) == [True, False, True]
    assert list(out.ais_improvement) == [2.0, 0.0, 1.0]


def test_average_over_splits():
    t = pd.DataFrame(
        {
            "scan_id": ["s1", "s1", "s1", "s2"],
            "method": "m",
            "split": ["0", "1", "2", "0"],
            "value": [0.7, 0.8, 0.9, 0.5],
        }
    )
    out = vs.average_over_splits(t).set_index("scan_id")
    assert out.loc["s1", "value"] == pytest.approx(0.8)
    assert out.loc["s1", "n_splits"] == 3
    assert out.loc["s2", "value"] == 0.5
    assert "n_splits" in vs.average_over_splits(t.drop(columns="split"))


def test_summarize_mean_sd_per_site_and_overall():
    t = pd.DataFrame({"site": ["a", "a", "b", "b"], "metric": "Dice", "value": [0.6, 0.8, 0.9, np.nan]})
    out = vs.summarize(t, by=("metric",)).set_index("stratum")
    assert out.loc["overall", "n"] == 3
    assert out.loc["overall", "mean"] == pytest.approx(2.3 / 3)
    assert out.loc["site=a", "sd"] == pytest.approx(np.sqrt(0.02))
    assert out.loc["site=a", "mean_sd"] == "0.7 ± 0.141"
    assert out.loc["site=b", "n"] == 1


def test_cohort_table_counts_subjects_once():
    scans = pd.DataFrame(
        {
            "site": ["a", "a", "a", "b"],
            "sub": ["1", "1", "2", "3"],
            "age": [30, 30, 50, 40],
            "sex": ["M", "M", "F", "F"],
            "orientation": ["RPI", "PIR", "RPI", "RPI"],
        }
    )
    t = vs.cohort_table(scans).set_index(["characteristic", "category"])
    assert t.loc[("scans", ""), "a"] == "3"
    assert t.loc[("subjects", ""), "overall"] == "3"
    assert t.loc[("age (years)", ""), "overall"] == "40 ± 10 (30-50)"
    assert t.loc[("sex", "F"), "overall"] == "2 (67%)"
    assert t.loc[("orientation", "RPI"), "a"] == "2 (67%)"


def test_versions_recorded():
    import scipy
    import statsmodels

    row = vs.normality(np.arange(10.0), measure="v").iloc[0]
    v = json.loads(row.versions)
    assert v["scipy"] == scipy.__version__
    assert v["statsmodels"] == statsmodels.__version__


@pytest.mark.parametrize(
    ("x", "text"),
    [(1800.0, "1800"), (848.53, "849"), (12.5, "12.5"), (0.70711, "0.707"), (0.0, "0"), (-0.01234, "-0.0123")],
)
def test_numbers_have_three_significant_digits_and_no_exponent(x, text):
    assert vs.fmt_number(x) == text


def test_summary_of_large_volumes_is_not_scientific():
    out = vs.summarize(pd.DataFrame({"metric": "v", "value": [1234.0, 2345.0]}), by=("metric",), strata=())
    assert out.mean_sd.iloc[0] == "1790 ± 786"
