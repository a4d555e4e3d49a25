"""Statistics of :mod:`cohort_sciseg.validation.stats` against independent computations.

The module calls :mod:`scipy.stats`; the expectations here never do. They come from
the published formulas (D'Agostino-Pearson K², Kruskal-Wallis H, Yates' chi-square,
Pearson's r of ranks, the t and chi-square tails through the incomplete beta and
gamma functions), from exact null distributions counted here (all sign assignments
of the Wilcoxon ranks, all splits of a Mann-Whitney sample), or from arithmetic
worked out in the test.
"""

from __future__ import annotations

import itertools
import json
import math
from importlib.metadata import version

import numpy as np
import pandas as pd
import pytest
from scipy.special import betainc, gammaincc

from cohort_sciseg.errors import ValidationError
from cohort_sciseg.validation import clinical, stat_tests, table1
from cohort_sciseg.validation import stats as vs

# ----------------------------------------------------------------------------- oracles


def avg_ranks(values):
    """1-based ranks, ties sharing the mean of their positions."""
    x = np.asarray(values, float)
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks = np.empty(len(x))
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def signed_rank_counts(n):
    """counts[w]: sign assignments of the ranks 1..n whose positive ranks sum to w (exact integers)."""
    counts = [1]
    for r in range(1, n + 1):
        new = counts + [0] * r
        for w, c in enumerate(counts):
            new[w + r] += c
        counts = new
    return counts


def brute_force_signed_rank(n):
    counts = [0] * (n * (n + 1) // 2 + 1)
    for signs in itertools.product((0, 1), repeat=n):
        counts[sum(r for r, s in zip(range(1, n + 1), signs, strict=True) if s)] += 1
    return counts


def exact_wilcoxon_p(r_plus, n, alternative="two-sided", *, brute=False):
    counts = brute_force_signed_rank(n) if brute else signed_rank_counts(n)
    total = 2**n
    le = sum(counts[: math.ceil(r_plus) + 1]) / total
    ge = sum(counts[math.floor(r_plus) :]) / total
    if alternative == "less":
        return le
    if alternative == "greater":
        return ge
    return min(1.0, 2 * min(le, ge))


def normal_sf(z):
    return 0.5 * math.erfc(z / math.sqrt(2))


def t_two_sided_p(t, df):
    return float(betainc(df / 2, 0.5, df / (df + t * t)))


def chi2_sf(x, df):
    return float(gammaincc(df / 2, x / 2))


def pearson(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx, dy = x - x.mean(), y - y.mean()
    return float((dx * dy).sum() / math.sqrt((dx * dx).sum() * (dy * dy).sum()))


def correlation_p(r, n):
    return t_two_sided_p(r * math.sqrt((n - 2) / (1 - r * r)), n - 2)


def dagostino_pearson(x):
    x = np.asarray(x, float)
    n = x.size
    d = x - x.mean()
    m2, m3, m4 = (d**2).mean(), (d**3).mean(), (d**4).mean()
    # skewness (D'Agostino 1970)
    b1 = m3 / m2**1.5
    y = b1 * math.sqrt((n + 1) * (n + 3) / (6.0 * (n - 2)))
    beta2 = (
        3.0 * (n * n + 27 * n - 70) * (n + 1) * (n + 3) / ((n - 2.0) * (n + 5) * (n + 7) * (n + 9))
    )
    w2 = -1 + math.sqrt(2 * (beta2 - 1))
    delta = 1 / math.sqrt(0.5 * math.log(w2))
    alpha = math.sqrt(2.0 / (w2 - 1))
    zs = delta * math.log(y / alpha + math.sqrt((y / alpha) ** 2 + 1))
    # kurtosis (Anscombe & Glynn 1983)
    b2 = m4 / m2**2
    e = 3.0 * (n - 1) / (n + 1)
    var = 24.0 * n * (n - 2) * (n - 3) / ((n + 1) ** 2 * (n + 3) * (n + 5))
    xk = (b2 - e) / math.sqrt(var)
    sb1 = (
        6.0
        * (n * n - 5 * n + 2)
        / ((n + 7) * (n + 9))
        * math.sqrt(6.0 * (n + 3) * (n + 5) / (n * (n - 2) * (n - 3)))
    )
    a = 6.0 + 8.0 / sb1 * (2.0 / sb1 + math.sqrt(1 + 4.0 / sb1**2))
    denom = 1 + xk * math.sqrt(2 / (a - 4.0))
    term2 = math.copysign(abs((1 - 2.0 / a) / denom) ** (1 / 3), denom)
    zk = (1 - 2 / (9.0 * a) - term2) / math.sqrt(2 / (9.0 * a))
    k2 = zs * zs + zk * zk
    return k2, math.exp(-k2 / 2)


def wilcoxon_oracle(
    a, b, zero_method="wilcox", alternative="two-sided", exact=True, correction=False
):
    """(statistic, p) of the signed-rank test of d = b - a, from the ranks and an exact count or z."""
    d = np.asarray(b, float) - np.asarray(a, float)
    if zero_method == "wilcox":
        d = d[d != 0]
    n, n0 = d.size, int(np.sum(d == 0))
    r = avg_ranks(np.abs(d))
    r_plus, r_minus = float(r[d > 0].sum()), float(r[d < 0].sum())
    statistic = min(r_plus, r_minus) if alternative == "two-sided" else r_plus
    if exact:
        return statistic, exact_wilcoxon_p(r_plus, n, alternative, brute=n <= 12)
    mean = n * (n + 1) / 4 - n0 * (n0 + 1) / 4
    var = (n * (n + 1) * (2 * n + 1) - n0 * (n0 + 1) * (2 * n0 + 1)) / 24
    z = r_plus - mean
    if correction:
        z -= (
            math.copysign(0.5, z)
            if alternative == "two-sided"
            else (0.5 if alternative == "greater" else -0.5)
        )
    z /= math.sqrt(var)
    if alternative == "greater":
        return statistic, normal_sf(z)
    if alternative == "less":
        return statistic, normal_sf(-z)
    return statistic, 2 * normal_sf(abs(z))


def kruskal_oracle(*samples):
    """(H, p): H = 12 / (N (N + 1)) sum R_i^2 / n_i - 3 (N + 1), ties corrected, chi-square k - 1."""
    values = np.concatenate([np.asarray(s, float) for s in samples])
    n = values.size
    ranks = avg_ranks(values)
    h, start = 0.0, 0
    for s in samples:
        h += ranks[start : start + len(s)].sum() ** 2 / len(s)
        start += len(s)
    h = 12 / (n * (n + 1)) * h - 3 * (n + 1)
    _, counts = np.unique(values, return_counts=True)
    h /= 1 - float(np.sum(counts**3 - counts)) / (n**3 - n)
    return h, chi2_sf(h, len(samples) - 1)


def spearman_oracle(x, y):
    """(n, rho, p) after dropping pairs with a missing value: Pearson's r of average ranks, t test."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    rho = pearson(avg_ranks(x[keep]), avg_ranks(y[keep]))
    return int(keep.sum()), rho, correlation_p(rho, int(keep.sum()))


def test_oracles_count_the_signed_rank_distribution_by_brute_force():
    # the counting recursion used for n > 12 agrees with enumerating every sign assignment
    for n in range(1, 11):
        assert signed_rank_counts(n) == brute_force_signed_rank(n)
    assert sum(signed_rank_counts(30)) == 2**30


def test_stats_reexports_the_role_modules():
    assert vs.normality is stat_tests.normality
    assert vs.compare_methods is stat_tests.compare_methods
    assert vs.clinical_improvement is clinical.clinical_improvement
    assert vs.cohort_table is table1.cohort_table
    for name in vs.__all__:
        assert getattr(vs, name) is not None


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


def test_normality_equals_the_dagostino_pearson_formulas(rng):
    x = rng.gamma(2.0, 1.0, 30)
    row = vs.normality(x, measure="v").iloc[0]
    k2, p = dagostino_pearson(x)
    assert row.n == 30
    assert row.statistic == pytest.approx(k2, rel=1e-10)
    assert row.p == pytest.approx(p, rel=1e-8)
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
    assert row.p == pytest.approx(dagostino_pearson(x)[1], rel=1e-8)


def test_normality_constant_input_gives_nan():
    row = vs.normality([3.0] * 12, measure="v").iloc[0]
    assert row.n == 12
    assert np.isnan(row.p)
    assert np.isnan(row.statistic)
    assert row.note


# ----------------------------------------------------------------------------- wilcoxon


def test_wilcoxon_default_is_the_exact_test_without_ties(paired):
    # 30 continuous differences: no ties, no zeros, so method="auto" is exact; the null
    # distribution of W+ is counted over all 2**30 sign assignments
    a, b = paired
    row = vs.wilcoxon_paired(a, b, measure="v").iloc[0]
    statistic, p = wilcoxon_oracle(a, b)
    assert row.statistic == statistic
    assert row.p == pytest.approx(p, rel=1e-9)
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
def test_wilcoxon_options_follow_the_rank_formulas(zero_method, method, alternative):
    # "wilcox" drops the 2 zeros (n = 10); "pratt" ranks them (the smallest |d|, ranks 1.5)
    # and drops them afterwards, with Cureton's mean and variance for the normal
    # approximation; "exact" counts every sign assignment of the ranks 1..n (brute force),
    # a non-integer W+ rounded conservatively
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0])
    b = a + np.array([0.3, -0.1, 0.0, 1.2, 0.7, 0.0, -0.4, 2.1, 0.9, 1.5, -0.2, 0.6])
    opts = vs.WilcoxonOptions(zero_method=zero_method, method=method, alternative=alternative)
    row = vs.wilcoxon_paired(a, b, measure="v", options=opts).iloc[0]
    statistic, p = wilcoxon_oracle(
        a, b, zero_method=zero_method, alternative=alternative, exact=method == "exact"
    )
    assert row.statistic == statistic
    assert row.p == pytest.approx(p, rel=1e-9)
    assert row.note == f"2 zero differences ({zero_method})"


def test_wilcoxon_zero_methods_by_hand():
    # d = [0.3, -0.1, 0, 1.2, 0.7, 0, -0.4, 2.1, 0.9, 1.5, -0.2, 0.6]
    # wilcox, |d| without zeros ranked 1..10: negatives 0.1 (1), 0.2 (2), 0.4 (4): W- = 7, W+ = 48
    a = np.arange(1.0, 13.0)
    b = a + np.array([0.3, -0.1, 0.0, 1.2, 0.7, 0.0, -0.4, 2.1, 0.9, 1.5, -0.2, 0.6])
    wilcox = vs.WilcoxonOptions(method="exact")
    assert vs.wilcoxon_paired(a, b, measure="v", options=wilcox).statistic.iloc[0] == 7
    # pratt: the zeros take ranks 1 and 2 (1.5 each), every other rank moves up by 2: W- = 13
    pratt = vs.WilcoxonOptions(zero_method="pratt", method="exact")
    assert vs.wilcoxon_paired(a, b, measure="v", options=pratt).statistic.iloc[0] == 13


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
    # |d| = 1..10, negatives 2, 5, 9: W+ = 39, mean 10 * 11 / 4 = 27.5,
    # SD sqrt(10 * 11 * 21 / 24); continuity correction 0.5 towards the mean
    z = (39 - 27.5 - 0.5) / math.sqrt(10 * 11 * 21 / 24)
    assert row.statistic == 16
    assert row.p == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-12)
    no_correction = vs.wilcoxon_paired(
        a, b, measure="v", options=vs.WilcoxonOptions(method="approx")
    ).iloc[0]
    z0 = (39 - 27.5) / math.sqrt(10 * 11 * 21 / 24)
    assert no_correction.p == pytest.approx(math.erfc(z0 / math.sqrt(2)), rel=1e-12)


def test_wilcoxon_drops_pairs_with_nan_on_either_side():
    a = np.array([1.0, np.nan, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    b = np.array([2.5, 2.0, np.nan, 3.0, 7.0, 6.5, 9.5, 7.2, 12.0, 14.0])
    row = vs.wilcoxon_paired(a, b, measure="v").iloc[0]
    # kept d = [1.5, -1, 2, 0.5, 2.5, -0.8, 3, 4]; |d| ranks: 0.5 1, 0.8 2, 1 3, ...
    # W- = 2 + 3 = 5; subsets of {1..8} summing to <= 5: {}, 1, 2, 3, 12, 4, 13, 5, 14, 23 -> 10
    assert row.n == 8
    assert row.statistic == 5
    assert row.p == pytest.approx(2 * 10 / 2**8, rel=1e-12)


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
    expected = dagostino_pearson(b - a)[1]
    assert _row(out, a="predicted - manual").p == pytest.approx(expected, rel=1e-8)


def test_compare_paired_correlations_equal_the_formulas(paired):
    a, b = paired
    out = vs.compare_paired(a, b, measure="volume")
    n, rho, p_rho = spearman_oracle(a, b)
    r = pearson(a, b)
    spr = _row(out, test="scipy.stats.spearmanr")
    per = _row(out, test="scipy.stats.pearsonr")
    assert spr.estimate == pytest.approx(rho, rel=1e-12)
    assert spr.p == pytest.approx(p_rho, rel=1e-8)
    assert per.estimate == pytest.approx(r, rel=1e-12)
    assert per.p == pytest.approx(correlation_p(r, n), rel=1e-8)


def test_correlations_of_five_pairs_by_hand():
    # ranks equal the values; d = [-1, 1, -1, 1, 0]: rho = 1 - 6 * 4 / (5 * 24) = 0.8 (= r);
    # t = 0.8 * sqrt(3 / 0.36), Student's t with 3 df: F(t) = 1/2 + (t / (sqrt 3 (1 + t^2 / 3))
    # + atan(t / sqrt 3)) / pi
    out = vs.compare_paired([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], measure="v")
    t = 0.8 * math.sqrt(3 / 0.36)
    cdf = 0.5 + (t / (math.sqrt(3) * (1 + t * t / 3)) + math.atan(t / math.sqrt(3))) / math.pi
    for test in ("scipy.stats.spearmanr", "scipy.stats.pearsonr"):
        row = _row(out, test=test)
        assert row.estimate == pytest.approx(0.8, rel=1e-12)
        assert row.p == pytest.approx(2 * (1 - cdf), rel=1e-9)


def test_compare_paired_drops_incomplete_pairs_everywhere(paired):
    a, b = paired
    a2, b2 = a.copy(), b.copy()
    a2[0], b2[5] = np.nan, np.nan
    out = vs.compare_paired(a2, b2, measure="volume")
    assert set(out.n) == {28}
    keep = np.ones(30, bool)
    keep[[0, 5]] = False
    assert _row(out, test="scipy.stats.spearmanr").estimate == pytest.approx(
        pearson(avg_ranks(a[keep]), avg_ranks(b[keep])), rel=1e-12
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


def test_compare_methods_kruskal_equals_the_h_formula(methods):
    out = vs.compare_methods(_long(methods), value="value", reference="ref")
    kw = _row(out, test="scipy.stats.kruskal")
    h, p = kruskal_oracle(*methods.values())
    assert kw.statistic == pytest.approx(h, rel=1e-10)
    assert kw.p == pytest.approx(p, rel=1e-8)
    assert kw.n == 15


def test_kruskal_by_hand():
    # ranks of [1, 2, 3 | 4, 5, 6]: sums 6 and 15; H = 12 / 42 * (36 / 3 + 225 / 3) - 21 = 27/7;
    # chi-square with 1 df: p = erfc(sqrt(H / 2))
    t = pd.DataFrame(
        {
            "scan_id": [0, 1, 2] * 2,
            "method": ["ref"] * 3 + ["m"] * 3,
            "value": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    kw = _row(vs.compare_methods(t, value="value", reference="ref"), test="scipy.stats.kruskal")
    assert kw.statistic == pytest.approx(27 / 7, rel=1e-12)
    assert kw.p == pytest.approx(math.erfc(math.sqrt(27 / 14)), rel=1e-10)


def test_compare_methods_pairwise_are_exact_wilcoxon_tests(methods):
    out = vs.compare_methods(_long(methods), value="value", reference="ref")
    pairs = out[out.analysis == "pairwise"]
    assert sorted(pairs.b) == ["m1", "m2", "m3"]
    assert set(pairs.a) == {"ref"}
    for m in ("m1", "m2", "m3"):
        statistic, p = wilcoxon_oracle(methods["ref"], methods[m])
        row = _row(pairs, b=m)
        assert row.statistic == statistic
        assert row.p == pytest.approx(p, rel=1e-9)
        assert row.estimate == pytest.approx(np.median(methods[m] - methods["ref"]))


def test_compare_methods_bonferroni_is_p_times_three(methods):
    out = vs.compare_methods(_long(methods), value="value", reference="ref")
    pairs = out[out.analysis == "pairwise"].sort_values("b")
    raw = np.array([wilcoxon_oracle(methods["ref"], methods[m])[1] for m in ("m1", "m2", "m3")])
    np.testing.assert_allclose(pairs.p_adjusted, np.minimum(1.0, raw * 3), rtol=1e-9)
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
    assert kw.p == pytest.approx(kruskal_oracle(*(v[keep] for v in methods.values()))[1], rel=1e-8)
    m2 = _row(out, b="m2")
    assert m2.p == pytest.approx(
        wilcoxon_oracle(methods["ref"][keep], methods["m2"][keep])[1], rel=1e-9
    )


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
            n, rho, p = spearman_oracle(bio[bio_col], clin[score])
            row = _row(out, a=bio_col, b=score)
            assert row.n == n
            assert row.estimate == pytest.approx(rho, rel=1e-12)
            assert row.p == pytest.approx(p, rel=1e-8)
            assert row.measure == f"{bio_col} (manual)"


def test_clinical_correlations_converts_ais_grades(clinical_data):
    bio, clin = clinical_data
    out = vs.clinical_correlations(bio, clin, biomarker_columns=["total_volume_mm3"])
    grades = [1, 2, 3, 4, 5, 3, 2, np.nan, 1, np.nan, 4, 2]
    n, rho, p = spearman_oracle(bio.total_volume_mm3, grades)
    row = _row(out, b="discharge_ais")
    assert row.n == n
    assert row.estimate == pytest.approx(rho, rel=1e-12)  # tied grades: average ranks
    assert row.p == pytest.approx(p, rel=1e-8)


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
    a, b = [30, 41, 25, 60, 52], [35, 70, 66, 48, 59]
    # U of site a = pairs (x in a, y in b) with x > y: 41>35, 60>35,48,59, 52>35,48 -> 6;
    # exact null: U over all C(10, 5) = 252 ways to split the 10 values
    values = a + b
    null = []
    for chosen in itertools.combinations(range(10), 5):
        first = [values[i] for i in chosen]
        second = [values[i] for i in range(10) if i not in chosen]
        null.append(sum(x > y for x in first for y in second))
    le = sum(u <= 6 for u in null) / 252
    ge = sum(u >= 6 for u in null) / 252
    assert row.test == "scipy.stats.mannwhitneyu"
    assert row.n == 10
    assert row.statistic == 6
    assert row.p == pytest.approx(min(1.0, 2 * min(le, ge)), rel=1e-12)


def test_site_differences_three_sites_kruskal():
    groups = {"a": [30, 41, 25, 60], "b": [35, 70, 66, 48], "c": [20, 22, 31, 27, 29]}
    t = pd.DataFrame([{"site": s, "age": v} for s, vals in groups.items() for v in vals])
    row = _row(vs.site_differences(t, categorical=()), measure="age")
    h, p = kruskal_oracle(*groups.values())
    assert row.test == "scipy.stats.kruskal"
    assert row.statistic == pytest.approx(h, rel=1e-10)
    assert row.p == pytest.approx(math.exp(-h / 2), rel=1e-10)  # chi-square, 2 df
    assert p == pytest.approx(math.exp(-h / 2), rel=1e-12)


def test_site_differences_sex_chi_square():
    t = pd.DataFrame(
        {
            "site": ["a"] * 10 + ["b"] * 12,
            "sex": list("MMMMMMMFFF") + list("MMMFFFFFFFFF"),
        }
    )
    row = _row(vs.site_differences(t, numeric=()), measure="sex")
    # rows a, b; columns F, M: [[3, 7], [9, 3]], margins 10, 12 and 12, 10 of 22.
    # Yates: every |O - E| = 27/11, so chi2 = (27/11 - 1/2)^2 * sum(1 / E), 1 df
    observed = np.array([[3, 7], [9, 3]])
    expected = np.outer([10, 12], [12, 10]) / 22
    chi2 = float(np.sum((np.abs(observed - expected) - 0.5) ** 2 / expected))
    assert chi2 == pytest.approx((27 / 11 - 0.5) ** 2 * float(np.sum(1 / expected)))
    assert row.test == "scipy.stats.chi2_contingency"
    assert row.n == 22
    assert row.statistic == pytest.approx(chi2, rel=1e-12)
    assert row.p == pytest.approx(math.erfc(math.sqrt(chi2 / 2)), rel=1e-10)


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
