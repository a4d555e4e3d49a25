"""The paper's statistics, with every option and library version written down.

All tests are thin, explicit calls of :mod:`scipy.stats` and :mod:`statsmodels`;
what this module adds is the bookkeeping a paper needs: pairing by scan, ``n``
after dropping missing values, Bonferroni correction, averaging over splits,
per-site and overall summaries, and one tidy result table (:data:`STATS_COLUMNS`)
in which each row names its test, its options and the versions that computed it.

Conventions (``../shared/docs/REFERENCE.md`` §4-5)
--------------------------------------------------
- Normality: D'Agostino-Pearson :func:`scipy.stats.normaltest`; it needs at least
  8 values, below that the row has ``p = NaN`` and a note.
- Paired tests: Wilcoxon signed-rank with ``zero_method="wilcox"`` and
  ``method="auto"`` by default (both are written into ``options``, since scipy's
  ``method="auto"`` changed in 1.15).
- Bland-Altman: bias = mean(b - a), limits = bias ± 1.96·SD(b - a) (``ddof=1``).
- Method comparisons: Kruskal-Wallis across methods, then Wilcoxon of the
  reference method against each other method over the scans both have, p values
  Bonferroni-corrected (:func:`statsmodels.stats.multitest.multipletests`).
- Clinical scores: AIS grades A-E map to 1-5; improvement = discharge - initial,
  "improved" when it reaches the minimal detectable change (LEMS >= 1,
  light touch >= 12.95, pin prick >= 7.8).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import version
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from cohort_sciseg.errors import ValidationError, format_error
from cohort_sciseg.records import CLINICAL_COLUMNS

__all__ = [
    "AIS_GRADES",
    "BIOMARKERS",
    "CLINICAL_SCORES",
    "MDC_THRESHOLDS",
    "STATS_COLUMNS",
    "WilcoxonOptions",
    "ais_to_numeric",
    "average_over_splits",
    "bland_altman",
    "clinical_correlations",
    "clinical_improvement",
    "cohort_table",
    "compare_methods",
    "compare_paired",
    "fmt_number",
    "library_versions",
    "normality",
    "site_differences",
    "summarize",
    "wilcoxon_paired",
]

#: The paper's per-scan lesion biomarkers (columns of the biomarkers table).
BIOMARKERS = ("total_volume_mm3", "total_length_mm", "max_axial_damage_ratio")

#: ``participants.tsv`` clinical columns of REFERENCE.md §5.
CLINICAL_SCORES = CLINICAL_COLUMNS

#: AIS grade -> number.
AIS_GRADES = {"A": 1, "B": 2, "C": 3, "D": 4, "E": 5}

#: Minimal detectable change of each improvement score (inclusive thresholds).
MDC_THRESHOLDS = {"LEMS": 1.0, "light_touch_total": 12.95, "pin_prick_total": 7.8}

#: Columns of every statistics table, in order.
STATS_COLUMNS = (
    "analysis",  # agreement, normality, method_comparison, pairwise, clinical_correlation, site_difference
    "stratum",  # "overall", or "<column>=<value>" (e.g. "site=zurich")
    "measure",  # what is tested (a biomarker, a metric, a clinical score)
    "a",  # first sample (e.g. "manual", or the reference method)
    "b",  # second sample ("" for one-sample tests)
    "test",  # scipy/statsmodels function name
    "n",  # number of values (pairs) after dropping missing ones
    "statistic",
    "p",
    "p_adjusted",  # corrected p (Bonferroni) where a correction applies, else p
    "estimate",  # effect: median difference, bias, rho, r, ...
    "lower",  # lower limit (Bland-Altman) or NaN
    "upper",  # upper limit (Bland-Altman) or NaN
    "note",
    "options",  # JSON: the test's options
    "versions",  # JSON: the library versions
)


@cache
def library_versions() -> str:
    """JSON of the versions of the libraries that compute the statistics."""
    return json.dumps(
        {name: version(name) for name in ("numpy", "scipy", "statsmodels", "pandas")},
        sort_keys=True,
    )


@dataclass(frozen=True, slots=True)
class WilcoxonOptions:
    """Options of :func:`scipy.stats.wilcoxon`, pinned and recorded."""

    zero_method: Literal["wilcox", "pratt", "zsplit"] = "wilcox"
    method: Literal["auto", "exact", "approx"] = "auto"
    alternative: Literal["two-sided", "less", "greater"] = "two-sided"
    correction: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "zero_method": self.zero_method,
            "method": self.method,
            "alternative": self.alternative,
            "correction": self.correction,
        }


@dataclass(slots=True)
class _Row:
    analysis: str
    measure: str
    test: str
    n: int
    a: str = ""
    b: str = ""
    stratum: str = "overall"
    statistic: float = math.nan
    p: float = math.nan
    p_adjusted: float = math.nan
    estimate: float = math.nan
    lower: float = math.nan
    upper: float = math.nan
    note: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        p_adj = self.p if math.isnan(self.p_adjusted) else self.p_adjusted
        return {
            "analysis": self.analysis,
            "stratum": self.stratum,
            "measure": self.measure,
            "a": self.a,
            "b": self.b,
            "test": self.test,
            "n": int(self.n),
            "statistic": float(self.statistic),
            "p": float(self.p),
            "p_adjusted": float(p_adj),
            "estimate": float(self.estimate),
            "lower": float(self.lower),
            "upper": float(self.upper),
            "note": self.note,
            "options": json.dumps(self.options, sort_keys=True),
            "versions": library_versions(),
        }


def _frame(rows: Iterable[_Row | dict[str, Any]]) -> pd.DataFrame:
    dicts = [r.as_dict() if isinstance(r, _Row) else r for r in rows]
    df = pd.DataFrame(dicts, columns=list(STATS_COLUMNS))
    return df.astype({"n": "int64"}) if len(df) else df


def _floats(values: Any) -> np.ndarray:
    return np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)


def _paired(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = _floats(a), _floats(b)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length ({x.size} vs {y.size})")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


# ----------------------------------------------------------------------------- single tests


def normality(
    values: Any, *, measure: str, sample: str = "", stratum: str = "overall"
) -> pd.DataFrame:
    """D'Agostino-Pearson normality test of ``values`` (missing values dropped).

    Returns one row; ``p`` is NaN (with a note) below the 8 values the test needs
    or when all values are equal.
    """
    x = _floats(values)
    x = x[np.isfinite(x)]
    row = _Row("normality", measure, "scipy.stats.normaltest", x.size, a=sample, stratum=stratum)
    row.options = {"nan_policy": "omit"}
    if x.size < 8:
        row.note = f"n = {x.size} < 8: D'Agostino-Pearson needs at least 8 values"
    elif np.ptp(x) == 0:
        row.note = "all values equal"
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # kurtosistest warns below n = 20; the p value stands
            res = stats.normaltest(x)
        row.statistic, row.p = float(res.statistic), float(res.pvalue)
        if x.size < 20:
            row.note = "n < 20: kurtosis test approximate"
    return _frame([row])


def wilcoxon_paired(
    a: Any,
    b: Any,
    *,
    measure: str,
    labels: tuple[str, str] = ("a", "b"),
    options: WilcoxonOptions | None = None,
    stratum: str = "overall",
    analysis: str = "agreement",
) -> pd.DataFrame:
    """Wilcoxon signed-rank test of paired samples (pairs with a missing value dropped).

    ``estimate`` is the median of ``b - a``. Returns one row; ``p`` is NaN with a
    note when no pair is left or every difference is zero.
    """
    opts = options or WilcoxonOptions()
    x, y = _paired(a, b)
    row = _Row(
        analysis, measure, "scipy.stats.wilcoxon", x.size, a=labels[0], b=labels[1], stratum=stratum
    )
    row.options = opts.as_dict()
    d = y - x
    if x.size:
        row.estimate = float(np.median(d))
    if x.size == 0:
        row.note = "no complete pairs"
    elif opts.zero_method == "wilcox" and not np.any(d != 0):
        row.note = "all differences are zero"
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # small-sample and ties warnings: noted below
            res = stats.wilcoxon(
                y,
                x,
                zero_method=opts.zero_method,
                method=opts.method,
                alternative=opts.alternative,
                correction=opts.correction,
            )
        row.statistic, row.p = float(res.statistic), float(res.pvalue)
        if np.any(d == 0):
            row.note = f"{int(np.sum(d == 0))} zero differences ({opts.zero_method})"
    return _frame([row])


def bland_altman(
    a: Any, b: Any, *, measure: str, labels: tuple[str, str] = ("a", "b"), stratum: str = "overall"
) -> pd.DataFrame:
    """Bland-Altman bias (mean of ``b - a``) and 95% limits of agreement (bias ± 1.96·SD, ddof=1)."""
    x, y = _paired(a, b)
    row = _Row(
        "agreement", measure, "bland_altman", x.size, a=labels[0], b=labels[1], stratum=stratum
    )
    row.options = {"difference": "b - a", "limits": "bias +/- 1.96 SD", "ddof": 1}
    d = y - x
    if x.size:
        row.estimate = float(np.mean(d))
    if x.size >= 2:
        sd = float(np.std(d, ddof=1))
        row.lower, row.upper = row.estimate - 1.96 * sd, row.estimate + 1.96 * sd
    else:
        row.note = "fewer than 2 pairs: no limits of agreement"
    return _frame([row])


def _correlation(
    kind: Literal["spearman", "pearson"],
    a: Any,
    b: Any,
    *,
    measure: str,
    labels: tuple[str, str],
    stratum: str,
    analysis: str,
) -> _Row:
    x, y = _paired(a, b)
    fn = stats.spearmanr if kind == "spearman" else stats.pearsonr
    row = _Row(
        analysis,
        measure,
        f"scipy.stats.{fn.__name__}",
        x.size,
        a=labels[0],
        b=labels[1],
        stratum=stratum,
    )
    row.options = {"alternative": "two-sided", "nan_policy": "drop pairs"}
    if x.size < 3:
        row.note = f"n = {x.size} < 3: no correlation"
    elif np.ptp(x) == 0 or np.ptp(y) == 0:
        row.note = "a sample is constant: correlation undefined"
    else:
        res = fn(x, y)
        row.statistic = row.estimate = float(res.statistic)
        row.p = float(res.pvalue)
    return row


# ----------------------------------------------------------------------------- compositions


def compare_paired(
    a: Any,
    b: Any,
    *,
    measure: str,
    labels: tuple[str, str] = ("manual", "predicted"),
    options: WilcoxonOptions | None = None,
    stratum: str = "overall",
) -> pd.DataFrame:
    """Every agreement statistic of paired measurements (e.g. manual vs predicted volume).

    Rows: normality of ``a``, of ``b`` and of ``b - a``; Wilcoxon signed-rank;
    Bland-Altman; Spearman; Pearson. Pairs with a missing value are dropped.
    """
    x, y = _paired(a, b)
    parts = [
        normality(x, measure=measure, sample=labels[0], stratum=stratum),
        normality(y, measure=measure, sample=labels[1], stratum=stratum),
        normality(y - x, measure=measure, sample=f"{labels[1]} - {labels[0]}", stratum=stratum),
        wilcoxon_paired(x, y, measure=measure, labels=labels, options=options, stratum=stratum),
        bland_altman(x, y, measure=measure, labels=labels, stratum=stratum),
        _frame(
            [
                _correlation(
                    k, x, y, measure=measure, labels=labels, stratum=stratum, analysis="agreement"
                )
                for k in ("spearman", "pearson")
            ]
        ),
    ]
    return pd.concat(parts, ignore_index=True)


def compare_methods(
    table: pd.DataFrame,
    *,
    value: str,
    method: str = "method",
    key: str | Sequence[str] = "scan_id",
    reference: str,
    measure: str | None = None,
    options: WilcoxonOptions | None = None,
    correction: str = "bonferroni",
    stratum: str = "overall",
) -> pd.DataFrame:
    """Kruskal-Wallis across methods, then reference-vs-each Wilcoxon, corrected.

    Parameters
    ----------
    table
        Long table with one row per ``key`` x ``method`` and a ``value`` column.
    reference
        The method compared with every other one (e.g. ``"sciseg_3d"``).
    correction
        ``method`` of :func:`statsmodels.stats.multitest.multipletests`.

    Only scans every method has are used, so that all tests see the same scans.
    """
    keys = [key] if isinstance(key, str) else list(key)
    name = measure or value
    wide = table.pivot_table(index=keys, columns=method, values=value, aggfunc="mean")
    if reference not in wide.columns:
        raise ValueError(f"reference method {reference!r} not in {sorted(map(str, wide.columns))}")
    wide = wide.apply(pd.to_numeric, errors="coerce").dropna()
    others = [str(m) for m in wide.columns if m != reference]
    kw = _Row(
        "method_comparison",
        name,
        "scipy.stats.kruskal",
        len(wide),
        a=reference,
        b=",".join(others),
        stratum=stratum,
    )
    kw.options = {"groups": [str(c) for c in wide.columns], "complete_cases": True}
    samples = [wide[c].to_numpy(float) for c in wide.columns]
    if len(samples) < 2 or len(wide) < 2:
        kw.note = "needs at least 2 methods and 2 complete scans"
    elif np.ptp(np.concatenate(samples)) == 0:
        kw.note = "all values equal"
    else:
        res = stats.kruskal(*samples)
        kw.statistic, kw.p = float(res.statistic), float(res.pvalue)
    pair_frames = [
        wilcoxon_paired(
            wide[reference],
            wide[m],
            measure=name,
            labels=(reference, m),
            options=options,
            stratum=stratum,
            analysis="pairwise",
        )
        for m in others
    ]
    pairs = pd.concat(pair_frames, ignore_index=True) if pair_frames else _frame([])
    return pd.concat([_frame([kw]), _adjust(pairs, correction)], ignore_index=True)


def clinical_correlations(
    biomarkers: pd.DataFrame,
    clinical: pd.DataFrame,
    *,
    biomarker_columns: Sequence[str] = BIOMARKERS,
    scores: Sequence[str] | None = None,
    key: str = "sub",
    method_column: str = "method",
    kind: Literal["spearman", "pearson"] = "spearman",
    correction: str | None = None,
    stratum: str = "overall",
) -> pd.DataFrame:
    """Correlations of each biomarker (per method) with each clinical score.

    ``biomarkers`` holds one row per ``key`` x method; ``clinical`` one row per
    ``key`` (``participants.tsv`` with ``participant_id`` renamed to ``key``, or
    :func:`clinical_improvement`'s output). ``n`` is the number of subjects left
    after dropping missing values of that pair. ``measure`` is
    ``"<biomarker> (<method>)"``, ``a`` the biomarker, ``b`` the score. With
    ``correction`` (e.g. ``"bonferroni"``), ``p_adjusted`` is corrected over all
    rows of the result.
    """
    score_cols = [
        c for c in (scores if scores is not None else _numeric_scores(clinical)) if c in clinical
    ]
    clin = clinical.drop_duplicates(key).set_index(key)
    rows: list[_Row] = []
    for m, group in biomarkers.groupby(method_column, sort=True):
        per_sub = group.groupby(key)[list(biomarker_columns)].mean(numeric_only=True)
        joined = per_sub.join(clin[score_cols], how="left")
        for bio in biomarker_columns:
            for score in score_cols:
                row = _correlation(
                    kind,
                    joined[bio],
                    _clinical_numeric(joined[score], score),
                    measure=f"{bio} ({m})",
                    labels=(bio, score),
                    stratum=stratum,
                    analysis="clinical_correlation",
                )
                rows.append(row)
    out = _frame(rows)
    return _adjust(out, correction) if correction else out


def _adjust(table: pd.DataFrame, correction: str) -> pd.DataFrame:
    """Correct the p values of ``table`` for multiple comparisons (rows without p stay NaN)."""
    if not len(table):
        return table
    table = table.copy()
    ok = table["p"].notna().to_numpy()
    adjusted = np.full(len(table), np.nan)
    if ok.any():
        adjusted[ok] = multipletests(table.loc[ok, "p"].to_numpy(float), method=correction)[1]
    table["p_adjusted"] = adjusted
    table["options"] = [
        json.dumps(
            {**json.loads(o), "p_adjust": correction, "n_comparisons": int(ok.sum())},
            sort_keys=True,
        )
        for o in table["options"]
    ]
    return table


def _numeric_scores(clinical: pd.DataFrame) -> list[str]:
    known = [
        c
        for c in clinical.columns
        if c in CLINICAL_SCORES or c.endswith(("_improvement", "_improved"))
    ]
    return known


def _clinical_numeric(series: pd.Series, column: str) -> pd.Series:
    return (
        ais_to_numeric(series, column=column)
        if column.endswith("_ais")
        else pd.to_numeric(series, errors="coerce")
    )


def ais_to_numeric(values: Any, *, column: str = "ais") -> pd.Series:
    """AIS grades ``A``-``E`` (any case, or ``"AIS A"``) to 1-5; numbers 1-5 pass through.

    Missing values (empty, ``n/a``, NaN) stay missing. Anything else raises a
    :class:`~cohort_sciseg.errors.ValidationError` naming the column and the values.
    """
    s = pd.Series(values)
    text = s.astype("string").str.strip().str.upper().str.removeprefix("AIS").str.strip()
    missing = s.isna() | text.isin(["", "N/A", "NA", "NAN"])
    mapped = text.map(AIS_GRADES)
    numeric = pd.to_numeric(text, errors="coerce")
    numeric = numeric.where(numeric.isin([1, 2, 3, 4, 5]))
    out = mapped.astype("Float64").fillna(numeric.astype("Float64"))
    bad = ~missing & out.isna()
    if bad.any():
        values_bad = sorted(set(map(str, s[bad])))[:5]
        raise ValidationError(
            format_error(
                f"column {column!r} holds values that are not AIS grades: {values_bad}",
                expected="A, B, C, D, E (or 1-5), empty or n/a for missing",
                fix=f"correct {column!r} in participants.tsv",
            )
        )
    return out.where(~missing).astype(float)


def clinical_improvement(participants: pd.DataFrame) -> pd.DataFrame:
    """Add improvement (discharge - initial) and MDC ``*_improved`` columns.

    For each of LEMS, light touch and pin prick present as ``initial_X`` and
    ``discharge_X``: ``X_improvement`` and ``X_improved`` (improvement >= MDC, missing
    where either score is missing); AIS: ``ais_improvement`` in grades.
    """
    out = participants.copy()
    for score, mdc in MDC_THRESHOLDS.items():
        ini, dis = f"initial_{score}", f"discharge_{score}"
        if ini in out and dis in out:
            diff = pd.to_numeric(out[dis], errors="coerce") - pd.to_numeric(
                out[ini], errors="coerce"
            )
            out[f"{score}_improvement"] = diff
            out[f"{score}_improved"] = (diff >= mdc).astype("boolean").where(diff.notna())
    if "initial_ais" in out and "discharge_ais" in out:
        out["ais_improvement"] = ais_to_numeric(
            out["discharge_ais"], column="discharge_ais"
        ) - ais_to_numeric(out["initial_ais"], column="initial_ais")
    return out


# ----------------------------------------------------------------------------- tables


def average_over_splits(
    table: pd.DataFrame, *, split: str = "split", value: str | Sequence[str] = "value"
) -> pd.DataFrame:
    """Average each scan's values over the splits (seeds) it appears in.

    Rows are grouped by every column except ``split`` and the value column(s);
    ``n_splits`` counts the splits averaged (those with a value). A table without ``split`` comes back
    unchanged (with ``n_splits = 1``).
    """
    values = [value] if isinstance(value, str) else list(value)
    if split not in table:
        return table.assign(n_splits=1)
    keys = [c for c in table.columns if c not in (*values, split)]
    grouped = table.groupby(keys, dropna=False, sort=True)
    out = grouped[values].mean()
    has_value = table[values].notna().any(axis=1)
    counted = table[has_value].groupby(keys, dropna=False, sort=True)[split].nunique(dropna=False)
    out["n_splits"] = counted.reindex(out.index, fill_value=0).astype("int64")
    return out.reset_index()


def summarize(
    table: pd.DataFrame,
    *,
    value: str = "value",
    by: Sequence[str] = ("method", "structure", "metric"),
    strata: Sequence[str] = ("site",),
) -> pd.DataFrame:
    """Mean ± SD (and median, IQR, n) of ``value`` per group, per stratum and overall.

    For every column in ``strata`` the groups are split by that column's values
    (``stratum = "<column>=<value>"``); the ``"overall"`` rows pool all strata.
    Missing values are dropped and not counted.
    """
    frames = []
    group_cols = list(by)

    def _agg(
        df: pd.DataFrame, stratum: Callable[[Any], str] | str, extra: list[str]
    ) -> pd.DataFrame:
        cols = group_cols + extra
        if not cols:
            df = df.assign(_all="")
            cols = ["_all"]
        g = df.groupby(cols, dropna=False, sort=True)[value]
        res = g.agg(
            n="count",
            mean="mean",
            sd=lambda v: v.std(ddof=1),
            median="median",
            q1=lambda v: v.quantile(0.25),
            q3=lambda v: v.quantile(0.75),
            min="min",
            max="max",
        ).reset_index()
        if extra:
            col = extra[0]
            res.insert(0, "stratum", [f"{col}={v}" for v in res[col]])
            res = res.drop(columns=extra)
        else:
            res.insert(0, "stratum", stratum)
        return res.drop(columns=["_all"], errors="ignore")

    numeric = table.assign(**{value: pd.to_numeric(table[value], errors="coerce")})
    frames.append(_agg(numeric, "overall", []))
    for s in strata:
        if s in numeric:
            frames.append(
                _agg(numeric.assign(**{s: numeric[s].astype("string").fillna("n/a")}), "", [s])
            )
    out = pd.concat(frames, ignore_index=True)
    out["mean_sd"] = [_mean_sd(m, sd) for m, sd in zip(out["mean"], out["sd"], strict=True)]
    return out


def _mean_sd(mean: float, sd: float) -> str:
    if pd.isna(mean):
        return "n/a"
    return f"{fmt_number(mean)} ± {fmt_number(sd)}" if pd.notna(sd) else fmt_number(mean)


def fmt_number(x: float, significant: int = 3) -> str:
    """``x`` with ``significant`` digits, no trailing zeros, never an exponent (1800, 849, 12.5, 0.7)."""
    if not np.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    digits = max(0, significant - 1 - math.floor(math.log10(abs(x))))
    text = f"{round(x, digits):.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text  # as %g, without the exponent


def site_differences(
    table: pd.DataFrame,
    *,
    site: str = "site",
    numeric: Sequence[str] = ("age",),
    categorical: Sequence[str] = ("sex",),
) -> pd.DataFrame:
    """Differences between sites: Mann-Whitney U (2 sites) or Kruskal-Wallis (more)
    for numeric columns, chi-square of the contingency table for categorical ones."""
    rows: list[_Row] = []
    sites = sorted(table[site].dropna().astype(str).unique())
    for col in numeric:
        if col not in table:
            continue
        samples = [_floats(table.loc[table[site].astype(str) == s, col]) for s in sites]
        samples = [x[np.isfinite(x)] for x in samples]
        n = int(sum(x.size for x in samples))
        two = len(sites) == 2
        test = "scipy.stats.mannwhitneyu" if two else "scipy.stats.kruskal"
        row = _Row("site_difference", col, test, n, a=site, b=",".join(sites))
        row.options = {"alternative": "two-sided"} if two else {}
        if len(sites) < 2 or any(x.size == 0 for x in samples):
            row.note = "needs at least 2 sites with values"
        elif np.ptp(np.concatenate(samples)) == 0:
            row.note = "all values equal"
        else:
            res = (
                stats.mannwhitneyu(*samples, alternative="two-sided")
                if two
                else stats.kruskal(*samples)
            )
            row.statistic, row.p = float(res.statistic), float(res.pvalue)
        rows.append(row)
    for col in categorical:
        if col not in table:
            continue
        sub = table[[site, col]].dropna()
        ct = pd.crosstab(sub[site].astype(str), sub[col].astype(str))
        row = _Row(
            "site_difference",
            col,
            "scipy.stats.chi2_contingency",
            int(ct.to_numpy().sum()),
            a=site,
            b=",".join(sites),
        )
        row.options = {
            "correction": True,
            "table": {str(k): v for k, v in ct.to_dict(orient="index").items()},
        }
        if ct.shape[0] < 2 or ct.shape[1] < 2:
            row.note = "needs at least 2 sites and 2 categories"
        else:
            res = stats.chi2_contingency(ct.to_numpy())
            row.statistic, row.p = float(res.statistic), float(res.pvalue)
        rows.append(row)
    return _frame(rows)


#: Participant columns summarised by :func:`cohort_table` (first match wins), by characteristic.
_PARTICIPANT_NUMERIC = {
    "age (years)": ("age",),
    "days from injury to MRI": ("days_injury_to_mri", "days_from_injury", "time_since_injury_days"),
}
_PARTICIPANT_CATEGORICAL = {
    "sex": ("sex",),
    "etiology": ("etiology", "pathology"),
    "injury level": ("injury_level", "level_of_injury", "neurological_level"),
    "implants": ("implants", "implant", "surgery"),
}


def cohort_table(scans: pd.DataFrame, *, site: str = "site") -> pd.DataFrame:
    """The cohort characteristics table (paper Table 1), one column per site and ``overall``.

    ``scans`` is a flat scans table: one row per scan with the participant columns
    (``age``, ``sex``, ``etiology``, ...) and ``manufacturer``,
    ``magnetic_field_strength_t``, ``orientation``, ``acquisition_plane`` and
    ``voxel_x_mm``... columns (see :func:`cohort_sciseg.validation.flat_scans`).
    Participant characteristics count each subject once. Rows are characteristics
    (numeric: ``mean ± SD (min-max)``; categorical: one row per category with
    ``count (percent)``).
    """
    groups: dict[str, pd.DataFrame] = {"overall": scans}
    for s in sorted(scans[site].dropna().astype(str).unique()):
        groups[s] = scans[scans[site].astype(str) == s]
    records: list[dict[str, str]] = []

    def add(characteristic: str, category: str, per_group: Mapping[str, str]) -> None:
        records.append({"characteristic": characteristic, "category": category, **per_group})

    add("scans", "", {g: str(len(df)) for g, df in groups.items()})
    subjects = {
        g: df.drop_duplicates([site, "sub"]) if "sub" in df else df for g, df in groups.items()
    }
    add("subjects", "", {g: str(len(df)) for g, df in subjects.items()})
    for label, names in _PARTICIPANT_NUMERIC.items():
        col = next((c for c in names if c in scans), None)
        if col is not None:
            add(label, "", {g: _describe_numeric(df[col]) for g, df in subjects.items()})
    for label, names in _PARTICIPANT_CATEGORICAL.items():
        col = next((c for c in names if c in scans), None)
        if col is not None:
            _add_categorical(add, label, col, subjects)
    for label, col in (
        ("manufacturer", "manufacturer"),
        ("field strength (T)", "magnetic_field_strength_t"),
        ("orientation", "orientation"),
        ("acquisition plane", "acquisition_plane"),
    ):
        if col in scans:
            _add_categorical(add, label, col, groups)
    for axis in ("x", "y", "z"):
        col = f"voxel_{axis}_mm"
        if col in scans:
            add(
                f"voxel size {axis} (mm)",
                "",
                {g: _describe_numeric(df[col]) for g, df in groups.items()},
            )
    return pd.DataFrame(records, columns=["characteristic", "category", *groups]).fillna("")


def _describe_numeric(values: pd.Series) -> str:
    x = _floats(values)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return "n/a"
    sd = f" ± {fmt_number(float(np.std(x, ddof=1)))}" if x.size > 1 else ""
    lo, hi = fmt_number(float(np.min(x))), fmt_number(float(np.max(x)))
    return f"{fmt_number(float(np.mean(x)))}{sd} ({lo}-{hi})"


def _add_categorical(
    add: Callable[[str, str, Mapping[str, str]], None],
    label: str,
    col: str,
    groups: Mapping[str, pd.DataFrame],
) -> None:
    def norm(s: pd.Series) -> pd.Series:
        return s.astype("string").str.strip().replace({"": pd.NA, "n/a": pd.NA}).fillna("n/a")

    categories = sorted(norm(groups["overall"][col]).unique(), key=lambda c: (c == "n/a", c))
    for cat in categories:
        cells = {}
        for g, df in groups.items():
            v = norm(df[col])
            k = int((v == cat).sum())
            cells[g] = f"{k} ({100 * k / len(v):.0f}%)" if len(v) else "0"
        add(label, str(cat), cells)
