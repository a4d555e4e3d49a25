"""Statistics of :mod:`cohort_sciseg.validation.stats` against independent computations.

Every expected number comes from a direct scipy/statsmodels call on data filtered by
hand, or from arithmetic worked out in the test; never from the module itself.
"""

from __future__ import annotations

import json
from importlib.metadata import version

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from cohort_sciseg.errors import ValidationError
from cohort_sciseg.validation import stats as vs


@pytest.fixture
def paired(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a = rng.normal(10.0, 2.0, 30)
    b = a + rng.normal(0.5, 1.0, 30)
    return a, b


def _row(df: pd.DataFrame, **match: str) -> pd.Series:
    sel = df
    for col, val in match.items():
        sel = sel[sel[col] == val]
    assert len(sel) == 1, f"expected one row matching {match}, got {len(sel)}"
    return sel.iloc[0]


# ----------------------------------------------------------------------------- normality


def test_normality_equals_scipy_normaltest(rng):
    x = rng.gamma(2.0, 1.0, 30)
    row = vs.normality(x, measure="v").iloc[0]
    ref = stats.normaltest(x)
    assert row.n == 30
    assert row.statistic == pytest.approx(ref.statistic)
    assert row.p == pytest.approx(ref.pvalue)
    assert row.test == "scipy.stats.normaltest"


def test_normality_below_eight_values_gives_nan_with_note():
    row = vs.normality([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0], measure="v").iloc[0]
    assert row.n == 7
    assert np.isnan(row.p)
    assert "8" in row.note


def test_normality_drops_missing_values_and_counts_finite_only(rng):
    x = rng.normal(size=30)
    with_missing = np.concatenate([x, [np.nan, np.inf, np.nan]])
    row = vs.normality(pd.Series(with_missing), measure="v").iloc[0]
    assert row.n == 30
    assert row.p == pytest.approx(stats.normaltest(x).pvalue)


def test_normality_constant_input_gives_nan():
    row = vs.normality([3.0] * 12, measure="v").iloc[0]
    assert row.n == 12
    assert np.isnan(row.p)
    assert np.isnan(row.statistic)
    assert row.note


# ----------------------------------------------------------------------------- wilcoxon


def _scipy_wilcoxon(a, b, **kw):
    return stats.wilcoxon(b, a, **kw)


def test_wilcoxon_default_equals_scipy(paired):
    a, b = paired
    row = vs.wilcoxon_paired(a, b, measure="v").iloc[0]
    ref = _scipy_wilcoxon(a, b, zero_method="wilcox", method="auto", alternative="two-sided")
    assert row.statistic == pytest.approx(ref.statistic)
    assert row.p == pytest.approx(ref.pvalue)
    assert row.n == 30


@pytest.mark.parametrize(
    ("zero_method", "method", "alternative"),
    [
        ("pratt", "exact", "two-sided"),
        ("wilcox", "exact", "two-sided"),
        ("wilcox", "approx", "two-sided"),
        ("pratt", "approx", "greater"),
        ("wilcox", "exact", "less"),
    ],
)
def test_wilcoxon_options_equal_scipy(zero_method, method, alternative):
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0])
    b = a + np.array([0.3, -0.1, 0.0, 1.2, 0.7, 0.0, -0.4, 2.1, 0.9, 1.5, -0.2, 0.6])
    opts = vs.WilcoxonOptions(zero_method=zero_method, method=method, alternative=alternative)
    row = vs.wilcoxon_paired(a, b, measure="v", options=opts).iloc[0]
    ref = _scipy_wilcoxon(a, b, zero_method=zero_method, method=method, alternative=alternative)
    assert row.statistic == pytest.approx(ref.statistic)
    assert row.p == pytest.approx(ref.pvalue)
    assert row.note == f"2 zero differences ({zero_method})"


def test_wilcoxon_options_column_records_every_option():
    opts = vs.WilcoxonOptions(
        zero_method="pratt", method="approx", alternative="less", correction=True
    )
    row = vs.wilcoxon_paired([1, 2, 3, 4, 5], [2, 1, 5, 7, 6], measure="v", options=opts).iloc[0]
    assert json.loads(row.options) == {
        "zero_method": "pratt",
        "method": "approx",
        "alternative": "less",
        "correction": True,
    }


def test_wilcoxon_correction_passed_to_scipy():
    a = np.arange(10.0)
    b = a + np.array([1.0, -2.0, 3.0, 4.0, -5.0, 6.0, 7.0, 8.0, -9.0, 10.0])
    opts = vs.WilcoxonOptions(method="approx", correction=True)
    row = vs.wilcoxon_paired(a, b, measure="v", options=opts).iloc[0]
    ref = _scipy_wilcoxon(a, b, method="approx", correction=True)
    assert row.p == pytest.approx(ref.pvalue)


def test_wilcoxon_drops_pairs_with_nan_on_either_side():
    a = np.array([1.0, np.nan, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    b = np.array([2.5, 2.0, np.nan, 3.0, 7.0, 6.5, 9.5, 7.2, 12.0, 14.0])
    row = vs.wilcoxon_paired(a, b, measure="v").iloc[0]
    keep = np.isfinite(a) & np.isfinite(b)
    ref = _scipy_wilcoxon(a[keep], b[keep])
    assert row.n == 8
    assert row.p == pytest.approx(ref.pvalue)
    assert row.statistic == pytest.approx(ref.statistic)


def test_wilcoxon_estimate_is_median_of_b_minus_a():
    a = [1.0, 2.0, 3.0, 4.0]
    b = [3.0, 2.5, 10.0, 4.0]  # b - a = [2, 0.5, 7, 0] -> median (0.5 + 2) / 2
    row = vs.wilcoxon_paired(a, b, measure="v").iloc[0]
    assert row.estimate == pytest.approx(1.25)


def test_wilcoxon_all_zero_differences_gives_nan_p_with_note():
    row = vs.wilcoxon_paired([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], measure="v").iloc[0]
    assert np.isnan(row.p)
    assert "zero" in row.note
    assert row.estimate == 0


def test_wilcoxon_hand_computed_all_positive_differences():
    # d = 1..5, all positive: W- = 0 (scipy reports min(W+, W-)), exact p = 2 / 2**5
    row = vs.wilcoxon_paired([0] * 5, [1, 2, 3, 4, 5], measure="v").iloc[0]
    assert row.statistic == 0
    assert row.p == pytest.approx(2 / 32)
    assert row.n == 5


# ----------------------------------------------------------------------------- bland-altman


def test_bland_altman_by_hand():
    # d = b - a = [1, 0, 2, 0]; mean 0.75; squared deviations .0625+.5625+1.5625+.5625 = 2.75
    row = vs.bland_altman([1, 2, 3, 4], [2, 2, 5, 4], measure="v").iloc[0]
    sd = np.sqrt(2.75 / 3)
    assert row.estimate == pytest.approx(0.75)
    assert row.lower == pytest.approx(0.75 - 1.96 * sd)
    assert row.upper == pytest.approx(0.75 + 1.96 * sd)
    assert row.n == 4


# ----------------------------------------------------------------------------- compare_paired


def test_compare_paired_rows_and_columns(paired):
    a, b = paired
    out = vs.compare_paired(a, b, measure="volume")
    assert list(out.columns) == list(vs.STATS_COLUMNS)
    assert len(out) == 7
    assert list(out.test) == [
        "scipy.stats.normaltest",
        "scipy.stats.normaltest",
        "scipy.stats.normaltest",
        "scipy.stats.wilcoxon",
        "bland_altman",
        "scipy.stats.spearmanr",
        "scipy.stats.pearsonr",
    ]
    assert list(out.a[:3]) == ["manual", "predicted", "predicted - manual"]
    assert _row(out, a="predicted - manual").p == pytest.approx(stats.normaltest(b - a).pvalue)


def test_compare_paired_correlations_equal_scipy(paired):
    a, b = paired
    out = vs.compare_paired(a, b, measure="volume")
    sp, pe = stats.spearmanr(a, b), stats.pearsonr(a, b)
    spr = _row(out, test="scipy.stats.spearmanr")
    per = _row(out, test="scipy.stats.pearsonr")
    assert spr.estimate == pytest.approx(sp.statistic)
    assert spr.p == pytest.approx(sp.pvalue)
    assert per.estimate == pytest.approx(pe.statistic)
    assert per.p == pytest.approx(pe.pvalue)


def test_compare_paired_drops_incomplete_pairs_everywhere(paired):
    a, b = paired
    a2, b2 = a.copy(), b.copy()
    a2[0], b2[5] = np.nan, np.nan
    out = vs.compare_paired(a2, b2, measure="volume")
    assert set(out.n) == {28}
    keep = np.ones(30, bool)
    keep[[0, 5]] = False
    assert _row(out, test="scipy.stats.spearmanr").estimate == pytest.approx(
        stats.spearmanr(a[keep], b[keep]).statistic
    )


def test_versions_column_records_installed_libraries(paired):
    out = vs.compare_paired(*paired, measure="volume")
    for v in out.versions:
        recorded = json.loads(v)
        assert recorded["scipy"] == version("scipy")
        assert recorded["statsmodels"] == version("statsmodels")


# ----------------------------------------------------------------------------- compare_methods


def _long(wide: dict[str, list[float]]) -> pd.DataFrame:
    n = len(next(iter(wide.values())))
    rows = [
        {"scan_id": f"s{i:02d}", "method": m, "value": v}
        for m, values in wide.items()
        for i, v in zip(range(n), values, strict=True)
        if not np.isnan(v)
    ]
    return pd.DataFrame(rows)


@pytest.fixture
def methods(rng) -> dict[str, np.ndarray]:
    ref = rng.uniform(0.6, 0.9, 15)
    return {
        "ref": ref,
        "m1": ref - rng.uniform(0.0, 0.1, 15),
        "m2": ref + rng.normal(0.0, 0.05, 15),
        "m3": ref - rng.uniform(0.05, 0.2, 15),
    }


def test_compare_methods_kruskal_equals_scipy(methods):
    out = vs.compare_methods(_long(methods), value="value", reference="ref")
    kw = _row(out, test="scipy.stats.kruskal")
    ref = stats.kruskal(*methods.values())
    assert kw.statistic == pytest.approx(ref.statistic)
    assert kw.p == pytest.approx(ref.pvalue)
    assert kw.n == 15


def test_compare_methods_pairwise_equal_scipy_wilcoxon(methods):
    out = vs.compare_methods(_long(methods), value="value", reference="ref")
    pairs = out[out.analysis == "pairwise"]
    assert sorted(pairs.b) == ["m1", "m2", "m3"]
    assert set(pairs.a) == {"ref"}
    for m in ("m1", "m2", "m3"):
        ref = stats.wilcoxon(methods[m], methods["ref"])
        row = _row(pairs, b=m)
        assert row.statistic == pytest.approx(ref.statistic)
        assert row.p == pytest.approx(ref.pvalue)
        assert row.estimate == pytest.approx(np.median(methods[m] - methods["ref"]))


def test_compare_methods_bonferroni_equals_statsmodels_and_hand_rule(methods):
    out = vs.compare_methods(_long(methods), value="value", reference="ref")
    pairs = out[out.analysis == "pairwise"].sort_values("b")
    raw = np.array([stats.wilcoxon(methods[m], methods["ref"]).pvalue for m in ("m1", "m2", "m3")])
    expected = multipletests(raw, method="bonferroni")[1]
    np.testing.assert_allclose(pairs.p_adjusted, expected)
    np.testing.assert_allclose(pairs.p_adjusted, np.minimum(1.0, raw * 3))
    assert all(json.loads(o)["n_comparisons"] == 3 for o in pairs.options)


def test_compare_methods_drops_scans_missing_a_method(methods):
    incomplete = {m: v.copy() for m, v in methods.items()}
    incomplete["m1"][[2, 7]] = np.nan
    incomplete["m3"][11] = np.nan
    out = vs.compare_methods(_long(incomplete), value="value", reference="ref")
    keep = np.ones(15, bool)
    keep[[2, 7, 11]] = False
    assert set(out.n) == {12}
    kw = _row(out, test="scipy.stats.kruskal")
    assert kw.p == pytest.approx(stats.kruskal(*(v[keep] for v in methods.values())).pvalue)
    m2 = _row(out, b="m2")
    assert m2.p == pytest.approx(stats.wilcoxon(methods["m2"][keep], methods["ref"][keep]).pvalue)


def test_compare_methods_unknown_reference_raises(methods):
    with pytest.raises(ValueError, match="nope"):
        vs.compare_methods(_long(methods), value="value", reference="nope")


# ----------------------------------------------------------------------------- clinical


@pytest.fixture
def clinical_data(rng) -> tuple[pd.DataFrame, pd.DataFrame]:
    subs = [f"sub-{i:02d}" for i in range(12)]
    bio = pd.DataFrame(
        {
            "sub": subs,
            "method": "manual",
            "total_volume_mm3": rng.uniform(50, 500, 12),
            "total_length_mm": rng.uniform(5, 40, 12),
        }
    )
    lems = rng.integers(0, 50, 12).astype(float)
    lems[[1, 4]] = np.nan
    pin = rng.integers(0, 112, 12).astype(float)
    pin[[0, 4, 7, 9]] = np.nan
    ais = np.array(["A", "B", "C", "D", "E", "c", "AIS B", "n/a", "A", "", "D", "B"], dtype=object)
    clin = pd.DataFrame(
        {
            "sub": subs,
            "discharge_LEMS": lems,
            "discharge_pin_prick_total": pin,
            "discharge_ais": ais,
        }
    )
    return bio, clin


def _expected_spearman(x, y) -> tuple[int, float, float]:
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    res = stats.spearmanr(x[keep], y[keep])
    return int(keep.sum()), res.statistic, res.pvalue


def test_clinical_correlations_n_per_pair_after_dropping_missing(clinical_data):
    bio, clin = clinical_data
    out = vs.clinical_correlations(bio, clin, biomarker_columns=["total_volume_mm3"])
    assert _row(out, b="discharge_LEMS").n == 10
    assert _row(out, b="discharge_pin_prick_total").n == 8
    assert _row(out, b="discharge_ais").n == 10


def test_clinical_correlations_rho_equals_scipy_on_filtered_data(clinical_data):
    bio, clin = clinical_data
    out = vs.clinical_correlations(
        bio, clin, biomarker_columns=["total_volume_mm3", "total_length_mm"]
    )
    for bio_col in ("total_volume_mm3", "total_length_mm"):
        for score in ("discharge_LEMS", "discharge_pin_prick_total"):
            n, rho, p = _expected_spearman(bio[bio_col], clin[score])
            row = _row(out, a=bio_col, b=score)
            assert row.n == n
            assert row.estimate == pytest.approx(rho)
            assert row.p == pytest.approx(p)
            assert row.measure == f"{bio_col} (manual)"


def test_clinical_correlations_converts_ais_grades(clinical_data):
    bio, clin = clinical_data
    out = vs.clinical_correlations(bio, clin, biomarker_columns=["total_volume_mm3"])
    grades = [1, 2, 3, 4, 5, 3, 2, np.nan, 1, np.nan, 4, 2]
    n, rho, p = _expected_spearman(bio.total_volume_mm3, grades)
    row = _row(out, b="discharge_ais")
    assert row.n == n
    assert row.estimate == pytest.approx(rho)
    assert row.p == pytest.approx(p)


def test_clinical_correlations_bonferroni_over_all_rows(clinical_data):
    bio, clin = clinical_data
    out = vs.clinical_correlations(
        bio,
        clin,
        biomarker_columns=["total_volume_mm3", "total_length_mm"],
        correction="bonferroni",
    )
    assert len(out) == 6
    k = int(out.p.notna().sum())
    assert k == 6
    np.testing.assert_allclose(out.p_adjusted, np.minimum(1.0, out.p * k))


# ----------------------------------------------------------------------------- ais_to_numeric


def test_ais_to_numeric_accepts_grades_numbers_and_missing():
    values = ["A", "B", "c", "d", "AIS E", " ais b ", "3", 4, 5.0, "", "n/a", None, np.nan]
    out = vs.ais_to_numeric(pd.Series(values, dtype=object))
    expected = [1, 2, 3, 4, 5, 2, 3, 4, 5, np.nan, np.nan, np.nan, np.nan]
    np.testing.assert_array_equal(out.to_numpy(float), np.array(expected, float))


@pytest.mark.parametrize("bad", ["F", "7", "0", "AIS X"])
def test_ais_to_numeric_invalid_raises_naming_column(bad):
    with pytest.raises(ValidationError, match="discharge_ais"):
        vs.ais_to_numeric(["A", bad], column="discharge_ais")


# ----------------------------------------------------------------------------- improvement


def test_clinical_improvement_is_discharge_minus_initial():
    df = pd.DataFrame({"initial_LEMS": [10.0, 20.0, np.nan], "discharge_LEMS": [15.0, 20.0, 30.0]})
    out = vs.clinical_improvement(df)
    np.testing.assert_array_equal(out.LEMS_improvement.to_numpy(float), [5.0, 0.0, np.nan])
    assert out.LEMS_improved.tolist()[:2] == [True, False]
    assert pd.isna(out.LEMS_improved.iloc[2])


@pytest.mark.parametrize(
    ("score", "at", "below"),
    [("LEMS", 1.0, 0.99), ("light_touch_total", 12.95, 12.94), ("pin_prick_total", 7.8, 7.79)],
)
def test_clinical_improvement_threshold_is_inclusive(score, at, below):
    df = pd.DataFrame({f"initial_{score}": [0.0, 0.0], f"discharge_{score}": [at, below]})
    out = vs.clinical_improvement(df)
    assert out[f"{score}_improved"].tolist() == [True, False]


def test_clinical_improvement_integer_scores_around_light_touch_threshold():
    # integer totals: +13 reaches 12.95, +12 does not
    df = pd.DataFrame(
        {"initial_light_touch_total": [40, 40, 40], "discharge_light_touch_total": [53, 52, "n/a"]}
    )
    out = vs.clinical_improvement(df)
    assert out.light_touch_total_improved.tolist()[:2] == [True, False]
    assert pd.isna(out.light_touch_total_improved.iloc[2])
    assert pd.isna(out.light_touch_total_improvement.iloc[2])


def test_clinical_improvement_ais_in_grades():
    df = pd.DataFrame(
        {"initial_ais": ["A", "B", "C", "D", None], "discharge_ais": ["C", "B", "AIS D", "e", "A"]}
    )
    out = vs.clinical_improvement(df)
    np.testing.assert_array_equal(out.ais_improvement.to_numpy(float), [2, 0, 1, 1, np.nan])


# ----------------------------------------------------------------------------- splits


def test_average_over_splits_means_a_scan_across_splits():
    t = pd.DataFrame(
        {
            "scan_id": ["s1", "s1", "s1", "s2"],
            "metric": "dice",
            "split": [0, 1, 2, 1],
            "value": [0.7, 0.8, 0.9, 0.55],
        }
    )
    out = vs.average_over_splits(t).set_index("scan_id")
    assert out.loc["s1", "value"] == pytest.approx(0.8)
    assert out.loc["s1", "n_splits"] == 3
    assert out.loc["s2", "value"] == 0.55
    assert out.loc["s2", "n_splits"] == 1
    assert "split" not in out


def test_average_over_splits_without_split_column_is_unchanged():
    t = pd.DataFrame({"scan_id": ["s1", "s2"], "value": [0.3, 0.4]})
    out = vs.average_over_splits(t)
    pd.testing.assert_frame_equal(out.drop(columns="n_splits"), t)
    assert out.n_splits.tolist() == [1, 1]


def test_average_over_splits_ignores_nan_values():
    t = pd.DataFrame({"scan_id": "s1", "split": [0, 1, 2], "value": [0.6, np.nan, 0.8]})
    out = vs.average_over_splits(t)
    assert out.value.iloc[0] == pytest.approx(0.7)


def test_average_over_splits_n_splits_counts_only_averaged_values():
    t = pd.DataFrame({"scan_id": "s1", "split": [0, 1, 2], "value": [0.6, np.nan, 0.8]})
    assert vs.average_over_splits(t).n_splits.iloc[0] == 2


# ----------------------------------------------------------------------------- summarize


@pytest.fixture
def dice_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "method": "sciseg",
            "metric": "dice",
            "site": ["zurich", "zurich", "zurich", "muc", "muc", "muc"],
            "value": [0.5, 0.7, 0.9, 0.4, 0.6, np.nan],
        }
    )


def test_summarize_overall_mean_sd_by_hand(dice_table):
    out = vs.summarize(dice_table, by=("method", "metric"))
    overall = _row(out, stratum="overall")
    # values 0.5 0.7 0.9 0.4 0.6: mean 0.62, squared deviations .0144+.0064+.0784+.0484+.0004 = .148
    assert overall.n == 5
    assert overall["mean"] == pytest.approx(0.62)
    assert overall.sd == pytest.approx(np.sqrt(0.148 / 4))


def test_summarize_per_site_strata(dice_table):
    out = vs.summarize(dice_table, by=("method", "metric"))
    assert sorted(out.stratum) == ["overall", "site=muc", "site=zurich"]
    zurich = _row(out, stratum="site=zurich")
    assert zurich.n == 3
    assert zurich["mean"] == pytest.approx(0.7)
    assert zurich.sd == pytest.approx(0.2)
    muc = _row(out, stratum="site=muc")
    assert muc.n == 2  # the NaN is not counted
    assert muc["mean"] == pytest.approx(0.5)
    assert muc.sd == pytest.approx(np.sqrt(0.02))


# ----------------------------------------------------------------------------- site differences


def test_site_differences_two_sites_mann_whitney():
    t = pd.DataFrame(
        {
            "site": ["a"] * 5 + ["b"] * 6,
            "age": [30, 41, 25, 60, 52, 35, 70, 66, 48, 59, np.nan],
        }
    )
    row = _row(vs.site_differences(t, categorical=()), measure="age")
    ref = stats.mannwhitneyu([30, 41, 25, 60, 52], [35, 70, 66, 48, 59], alternative="two-sided")
    assert row.test == "scipy.stats.mannwhitneyu"
    assert row.n == 10
    assert row.statistic == pytest.approx(ref.statistic)
    assert row.p == pytest.approx(ref.pvalue)


def test_site_differences_three_sites_kruskal():
    groups = {"a": [30, 41, 25, 60], "b": [35, 70, 66, 48], "c": [20, 22, 31, 27, 29]}
    t = pd.DataFrame([{"site": s, "age": v} for s, vals in groups.items() for v in vals])
    row = _row(vs.site_differences(t, categorical=()), measure="age")
    ref = stats.kruskal(*groups.values())
    assert row.test == "scipy.stats.kruskal"
    assert row.statistic == pytest.approx(ref.statistic)
    assert row.p == pytest.approx(ref.pvalue)


def test_site_differences_sex_chi_square():
    t = pd.DataFrame(
        {
            "site": ["a"] * 10 + ["b"] * 12,
            "sex": list("MMMMMMMFFF") + list("MMMFFFFFFFFF"),
        }
    )
    row = _row(vs.site_differences(t, numeric=()), measure="sex")
    ref = stats.chi2_contingency(np.array([[3, 7], [9, 3]]))  # rows a, b; columns F, M
    assert row.test == "scipy.stats.chi2_contingency"
    assert row.n == 22
    assert row.statistic == pytest.approx(ref.statistic)
    assert row.p == pytest.approx(ref.pvalue)


# ----------------------------------------------------------------------------- cohort table


@pytest.fixture
def scans() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "site": ["zur", "zur", "zur", "zur", "muc", "muc"],
            "sub": ["sub-01", "sub-01", "sub-02", "sub-03", "sub-01", "sub-02"],
            "age": [30.0, 30.0, 40.0, 50.0, 22.0, 26.0],
            "sex": ["M", "M", "F", "M", "F", "n/a"],
            "manufacturer": ["Siemens", "Siemens", "GE", "Siemens", "Philips", "Philips"],
        }
    )


def _cell(table: pd.DataFrame, characteristic: str, column: str, category: str = "") -> str:
    row = table[(table.characteristic == characteristic) & (table.category == category)]
    assert len(row) == 1
    return row.iloc[0][column]


def test_cohort_table_counts_scans_and_subjects_once(scans):
    t = vs.cohort_table(scans)
    assert list(t.columns) == ["characteristic", "category", "overall", "muc", "zur"]
    assert [_cell(t, "scans", c) for c in ("overall", "muc", "zur")] == ["6", "2", "4"]
    assert [_cell(t, "subjects", c) for c in ("overall", "muc", "zur")] == ["5", "2", "3"]


def test_cohort_table_age_mean_sd_range(scans):
    t = vs.cohort_table(scans)
    # zur subjects: 30, 40, 50 -> mean 40, SD 10; muc: 22, 26 -> mean 24, SD sqrt(8) = 2.83
    assert _cell(t, "age (years)", "zur") == "40 ± 10 (30-50)"
    assert _cell(t, "age (years)", "muc") == "24 ± 2.83 (22-26)"
    # overall subjects: 30 40 50 22 26 -> mean 33.6, SD sqrt(515.2 / 4) = 11.35
    assert _cell(t, "age (years)", "overall") == "33.6 ± 11.3 (22-50)"


def test_cohort_table_categorical_count_percent(scans):
    t = vs.cohort_table(scans)
    # sex per subject: zur M F M, muc F n/a
    assert _cell(t, "sex", "zur", "M") == "2 (67%)"
    assert _cell(t, "sex", "overall", "F") == "2 (40%)"
    assert _cell(t, "sex", "muc", "n/a") == "1 (50%)"
    # manufacturer is per scan: Siemens in 3 of 6 scans
    assert _cell(t, "manufacturer", "overall", "Siemens") == "3 (50%)"
    assert _cell(t, "manufacturer", "muc", "Siemens") == "0 (0%)"


def test_cohort_table_days_from_injury_above_1000_not_scientific():
    scans = pd.DataFrame(
        {"site": ["a", "a"], "sub": ["sub-01", "sub-02"], "days_injury_to_mri": [1200.0, 2400.0]}
    )
    cell = _cell(vs.cohort_table(scans), "days from injury to MRI", "a")
    # mean 1800, SD sqrt(2 * 600**2) = 848.5
    assert "e+" not in cell
    assert cell.startswith("1800 ± 849")
