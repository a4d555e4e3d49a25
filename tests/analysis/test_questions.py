"""The analysis questions on hand-made tables, checked against numpy/scipy computed here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cohort_sciseg.analysis import questions
from cohort_sciseg.errors import AnalysisError

N_SCANS = 12


def _biomarkers(rng: np.random.Generator) -> pd.DataFrame:
    """12 scans at 2 sites: manual, method ``a`` with two splits, method ``b`` with none."""
    rows = []
    for i in range(N_SCANS):
        scan, site, sub = f"s{i:02d}", "siteA" if i < 7 else "siteB", f"{i:02d}"
        manual = {"total_volume_mm3": rng.uniform(50, 900), "total_length_mm": rng.uniform(5, 60),
                  "max_axial_damage_ratio": rng.uniform(0.05, 0.9)}  # fmt: skip
        rows.append({"scan_id": scan, "site": site, "sub": sub, "method": "manual", "split": None,
                     "n_lesions": 1, **manual})  # fmt: skip
        for split in ("0", "1"):
            pred = {k: v * rng.uniform(0.7, 1.3) for k, v in manual.items()}
            rows.append({"scan_id": scan, "site": site, "sub": sub, "method": "a", "split": split,
                         "n_lesions": 1, **pred})  # fmt: skip
        pred = {k: v + rng.normal(0, 0.1 * v) for k, v in manual.items()}
        rows.append(
            {
                "scan_id": scan,
                "site": site,
                "sub": sub,
                "method": "b",
                "split": None,
                "n_lesions": 1,
                **pred,
            }
        )
    df = pd.DataFrame(rows)
    # scan s03 has no predicted length for method a (both splits): that pair is dropped
    df.loc[(df.scan_id == "s03") & (df.method == "a"), "total_length_mm"] = np.nan
    return df


def _pairs(bio: pd.DataFrame, method: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    manual = bio[bio.method == "manual"].set_index("scan_id")[column]
    pred = bio[bio.method == method].groupby("scan_id")[column].mean()  # the mean over splits
    both = pd.concat([manual, pred], axis=1, keys=["m", "p"]).dropna()
    return both["m"].to_numpy(float), both["p"].to_numpy(float)


def test_biomarker_agreement_matches_hand_computation(rng):
    bio = _biomarkers(rng)
    table = questions.biomarker_agreement(bio)
    assert list(table.columns) == list(questions.AGREEMENT_COLUMNS)
    assert list(zip(table.method, table.biomarker, strict=True)) == [
        (m, b)
        for m in ("a", "b")
        for b in ("total_volume_mm3", "total_length_mm", "max_axial_damage_ratio")
    ]
    assert set(table.stratum) == {"overall"}
    for row in table.itertuples():
        x, y = _pairs(bio, row.method, row.biomarker)
        d = y - x
        assert (
            row.n
            == x.size
            == (N_SCANS - 1 if (row.method, row.biomarker) == ("a", "total_length_mm") else N_SCANS)
        )
        assert (
            row.unit
            == {"total_volume_mm3": "mm3", "total_length_mm": "mm", "max_axial_damage_ratio": "1"}[
                row.biomarker
            ]
        )
        assert row.bias == pytest.approx(np.mean(d))
        sd = np.std(d, ddof=1)
        assert row.loa_lower == pytest.approx(np.mean(d) - 1.96 * sd)
        assert row.loa_upper == pytest.approx(np.mean(d) + 1.96 * sd)
        w = stats.wilcoxon(d)
        assert (row.wilcoxon_statistic, row.wilcoxon_p) == pytest.approx((w.statistic, w.pvalue))
        assert row.median_difference == pytest.approx(np.median(d))
        assert row.spearman_rho == pytest.approx(stats.spearmanr(x, y).statistic)
        assert row.pearson_r == pytest.approx(np.corrcoef(x, y)[0, 1])
        fit = stats.linregress(x, y)
        assert (row.slope, row.intercept) == pytest.approx((fit.slope, fit.intercept))
        assert row.normality_p_manual == pytest.approx(stats.normaltest(x).pvalue)
        assert row.normality_p_difference == pytest.approx(stats.normaltest(d).pvalue)
        assert (row.mean_manual, row.mean_predicted) == pytest.approx((x.mean(), y.mean()))


def test_biomarker_agreement_per_site_and_one_method(rng):
    bio = _biomarkers(rng)
    table = questions.biomarker_agreement(bio, method="b", by_site=True)
    assert set(table.method) == {"b"}
    assert sorted(set(table.stratum)) == ["overall", "site=siteA", "site=siteB"]
    vol = table[table.biomarker == "total_volume_mm3"].set_index("stratum")
    assert vol.loc["site=siteA", "n"] == 7
    assert vol.loc["site=siteB", "n"] == 5
    sel = bio[bio.site == "siteB"]
    x, y = _pairs(sel, "b", "total_volume_mm3")
    assert vol.loc["site=siteB", "bias"] == pytest.approx(np.mean(y - x))
    assert "n = 5 < 8" in vol.loc["site=siteB", "note"]  # too few values for the normality test
    assert np.isnan(vol.loc["site=siteB", "normality_p_manual"])


def test_tidy_agreement_is_the_package_statistics_table(rng):
    bio = _biomarkers(rng)
    tidy = questions.agreement_statistics(bio, method="a")
    assert set(tidy.test) == {
        "scipy.stats.normaltest", "scipy.stats.wilcoxon", "bland_altman", "scipy.stats.spearmanr", "scipy.stats.pearsonr",
    }  # fmt: skip
    assert (
        len(tidy) == 3 * 7
    )  # 3 biomarkers x (3 normality + Wilcoxon + Bland-Altman + 2 correlations)
    assert (
        '"zero_method": "wilcox"'
        in tidy.loc[tidy.test == "scipy.stats.wilcoxon", "options"].iloc[0]
    )


def test_tissue_bridges_are_compared_when_present(rng):
    bio = _biomarkers(rng)
    bio["total_bridge_width_mm"] = rng.uniform(1, 5, len(bio))
    table = questions.biomarker_agreement(bio, method="b")
    row = table[table.biomarker == "total_bridge_width_mm"].iloc[0]
    x, y = _pairs(bio, "b", "total_bridge_width_mm")
    assert (row.n, row.unit) == (N_SCANS, "mm")
    assert row.bias == pytest.approx(np.mean(y - x))


def test_biomarker_agreement_without_rows_or_with_an_unknown_method(rng):
    empty = questions.biomarker_agreement(pd.DataFrame())
    assert empty.empty
    assert list(empty.columns) == list(questions.AGREEMENT_COLUMNS)
    with pytest.raises(
        AnalysisError, match=r"method 'c'.*one of \['a', 'b'\].*Fix: pass one of the listed"
    ):
        questions.biomarker_agreement(_biomarkers(rng), method="c")


def _participants() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "site": ["siteA", "siteA", "siteA", "siteB", "siteB"],
            "participant_id": ["sub-00", "sub-01", "sub-02", "sub-07", "sub-08"],
            "initial_LEMS": [10.0, 20.0, np.nan, 5.0, 30.0],
            "discharge_LEMS": [15.0, 28.0, 40.0, np.nan, 31.0],
            "initial_ais": ["A", "C", "B", "n/a", "D"],
        }
    )


def test_clinical_correlations_count_subjects_after_missing_values(rng):
    bio = _biomarkers(rng)
    bio.loc[(bio.scan_id == "s01") & (bio.method == "manual"), "total_volume_mm3"] = np.nan
    parts = _participants()
    table = questions.clinical_correlations(
        bio, parts, scores=["initial_LEMS", "discharge_LEMS"], method="manual"
    )
    assert set(table.method) == {"manual"}
    assert list(table.columns[:3]) == ["method", "biomarker", "score"]
    got = table.set_index(["biomarker", "score"])
    # subjects with a biomarker: sub-00..sub-11 (s01's volume is missing); with a score: the 5 above
    by_hand = {
        ("total_volume_mm3", "initial_LEMS"): [
            "00",
            "07",
            "08",
        ],  # 01: no volume, 02: no initial_LEMS
        ("total_volume_mm3", "discharge_LEMS"): ["00", "02", "08"],
        ("total_length_mm", "initial_LEMS"): ["00", "01", "07", "08"],
        ("total_length_mm", "discharge_LEMS"): ["00", "01", "02", "08"],
    }
    manual = bio[bio.method == "manual"].set_index("sub")
    clin = parts.assign(sub=parts.participant_id.str.removeprefix("sub-")).set_index("sub")
    for (biomarker, score), subs in by_hand.items():
        row = got.loc[(biomarker, score)]
        assert row["n"] == len(subs)
        rho = stats.spearmanr(manual.loc[subs, biomarker], clin.loc[subs, score]).statistic
        assert row["estimate"] == pytest.approx(rho)


def test_clinical_default_scores_include_improvements_and_ais(rng):
    table = questions.clinical_correlations(_biomarkers(rng), _participants())
    assert set(table.method) == {"manual", "a", "b"}
    assert {
        "initial_LEMS",
        "discharge_LEMS",
        "initial_ais",
        "LEMS_improvement",
        "LEMS_improved",
    } <= set(table.score)
    ais = table[
        (table.score == "initial_ais")
        & (table.biomarker == "total_length_mm")
        & (table.method == "manual")
    ]
    assert ais["n"].iloc[0] == 4  # n/a dropped


def test_clinical_unknown_score_or_method_raise(rng):
    bio, parts = _biomarkers(rng), _participants()
    with pytest.raises(
        AnalysisError, match=r"\['LEMS'\] not among the participants' columns.*initial_LEMS"
    ):
        questions.clinical_correlations(bio, parts, scores=["LEMS"])
    with pytest.raises(AnalysisError, match=r"no biomarkers of method 'c'"):
        questions.clinical_correlations(bio, parts, method="c")


def test_participants_table_one_row_per_subject_with_numbers_parsed():
    pairs = [
        ("participant_id", "sub-01"),
        ("age", "41"),
        ("sex", "M"),
        ("LEMS", "n/a"),
        ("site", "Zurich"),
    ]
    discovered = pd.DataFrame(
        {
            "site": ["01", "01", "02", "02"],
            "sub": ["01", "01", "01", "03"],
            "participant": [
                pairs,
                pairs,  # a second session of the same subject
                [("participant_id", "sub-01"), ("age", "x"), ("sex", "F"), ("LEMS", "12")],
                [],  # no participants.tsv row
            ],
        }
    )
    table = questions.participants_table(discovered)
    assert list(table.columns) == [
        "site",
        "participant_id",
        "age",
        "sex",
        "LEMS",
        "participant_site",
    ]
    assert table[["site", "participant_id"]].to_numpy().tolist() == [
        ["01", "sub-01"],
        ["02", "sub-01"],
        ["02", "sub-03"],
    ]
    assert pd.api.types.is_string_dtype(table["site"])
    assert not pd.api.types.is_numeric_dtype(
        table["age"]
    )  # "x" does not parse: the column stays text
    assert table["age"].tolist()[:2] == ["41", "x"]
    assert pd.api.types.is_numeric_dtype(table["LEMS"])  # n/a is missing, 12 a number
    assert np.isnan(table["LEMS"][0])
    assert table["LEMS"][1] == 12
    assert table["participant_site"][0] == "Zurich"


def _scans() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "scan_id": ["a1", "a2", "a3", "b1", "b2"],
            "site": ["01", "01", "01", "1e5", "1e5"],
            "status": ["done", "done", "failed", "done", "done"],
            "validation": ["validated", "excluded", None, "incomplete", "validated"],
            "suspect": [False, False, None, True, False],
            "suspect_reasons": [None, None, None, "no spinal cord found", None],
            "notes": [
                None,
                None,
                None,
                "manual lesion mask without a manual cord mask; other note",
                None,
            ],
            "n_lesions": [2, 1, None, 0, 3],
            "total_volume_mm3": [100.0, 50.0, np.nan, 0.0, 300.0],
            "total_length_mm": [10.0, 20.0, np.nan, 0.0, 30.0],
            "cord_dice": [0.9, 0.5, np.nan, np.nan, 0.8],
            "lesion_dice": [0.7, 0.1, np.nan, np.nan, np.nan],
            "segmenter": "m",
            "sub": ["1", "2", "3", "1", "2"],
            "max_axial_damage_ratio": 0.1,
        }
    )


def _failures() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "scan_id": ["a3", "a3", "a2", "dataset:/data/x"],
            "site": ["01", "01", "01", None],
            "stage": ["io", "io", "validation", "discover"],
            "message": [
                "first try",
                "image truncated. Fix: copy",
                "mask none above 0.5",
                "bad participants.tsv",
            ],
            "attempt": [1, 2, 1, 1],
            "timestamp": [
                "2024-01-01T00:00:00",
                "2024-01-01T00:01:00",
                "2024-01-01T00:00:00",
                "2024-01-01T00:00:00",
            ],
        }
    )


def test_excluded_scans_name_each_reason():
    table = questions.excluded_scans(_scans(), _failures(), excluded_ids=["site-zz_sub-9_T2w"])
    assert list(table.columns) == ["scan_id", "site", "reason", "detail"]
    got = [tuple(r) for r in table.to_numpy().tolist()]
    assert got == [
        ("dataset:/data/x", "", "discovery problem", "bad participants.tsv"),
        ("a2", "01", "validation excluded", "mask none above 0.5"),
        ("a3", "01", "failed", "image truncated. Fix: copy"),  # the last attempt's message
        ("b1", "1e5", "validation incomplete", "manual lesion mask without a manual cord mask"),
        ("b1", "1e5", "suspect", "no spinal cord found"),
        (
            "site-zz_sub-9_T2w",
            "zz",
            "excluded from the run",
            "left out of the latest run (its exclusion list)",
        ),
    ]
    assert pd.api.types.is_string_dtype(table["site"])


def test_excluded_scans_of_a_clean_run_is_empty():
    scans = _scans().iloc[[0, 4]]
    table = questions.excluded_scans(scans, _failures().iloc[:0])
    assert table.empty
    assert list(table.columns) == ["scan_id", "site", "reason", "detail"]


def test_site_summary_counts_and_medians_by_hand():
    lesions = pd.DataFrame(
        {"scan_id": ["a1", "a1", "a2", "b2", "b2", "b2"], "site": ["01"] * 3 + ["1e5"] * 3}
    )
    table = questions.site_summary(_scans(), lesions).set_index("site")
    assert table.index.tolist() == ["01", "1e5"]
    assert table.loc[
        "01", ["scans_total", "scans_done", "scans_failed", "scans_suspect", "scans_validated"]
    ].tolist() == [3, 2, 1, 0, 1]
    assert table.loc[
        "1e5", ["scans_total", "scans_done", "scans_failed", "scans_suspect", "scans_validated"]
    ].tolist() == [2, 2, 0, 1, 1]
    assert table["n_lesions"].tolist() == [3, 3]
    assert table.loc["01", "median_total_volume_mm3"] == pytest.approx(
        75.0
    )  # done scans: 100 and 50
    assert table.loc["1e5", "median_total_length_mm"] == pytest.approx(15.0)
    assert table.loc["01", "median_cord_dice"] == pytest.approx(0.9)  # validated only
    assert np.isnan(table.loc["1e5", "median_lesion_dice"])


def test_predicted_biomarkers_leave_out_failed_and_suspect_scans():
    bio = questions.predicted_biomarkers(_scans())
    assert bio["scan_id"].tolist() == ["a1", "a2", "b2"]
    assert set(bio["method"]) == {"m"}
