"""Statistical tests of the paper, with every option and library version written down.

All tests are thin, explicit calls of :mod:`scipy.stats` and :mod:`statsmodels`;
what this module adds is the bookkeeping a paper needs: pairing by scan, ``n``
after dropping missing values, Bonferroni correction, averaging over splits and
one tidy result table (:data:`STATS_COLUMNS`) in which each row names its test,
its options and the versions that computed it. Clinical scores are in
:mod:`cohort_sciseg.validation.clinical`, descriptive tables (Table 1, mean ± SD)
in :mod:`cohort_sciseg.validation.table1`.

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
- Site differences: Mann-Whitney U (2 sites) or Kruskal-Wallis (more) for numeric
  columns, chi-square of the contingency table for categorical ones.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import version
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

__all__ = [
    "STATS_COLUMNS",
    "StatsRow",
    "WilcoxonOptions",
    "adjust_p",
    "as_floats",
    "average_over_splits",
    "bland_altman",
    "compare_methods",
    "compare_paired",
    "correlation_row",
    "library_versions",
    "normality",
    "site_differences",
    "stats_frame",
    "wilcoxon_paired",
]

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
class StatsRow:
    """One row of a statistics table (:data:`STATS_COLUMNS`) being filled in; ``options`` as a dict."""

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


def stats_frame(rows: Iterable[StatsRow | dict[str, Any]]) -> pd.DataFrame:
    """The statistics table (columns :data:`STATS_COLUMNS`, ``n`` as int64) of ``rows``."""
    dicts = [r.as_dict() if isinstance(r, StatsRow) else r for r in rows]
    df = pd.DataFrame(dicts, columns=list(STATS_COLUMNS))
    return df.astype({"n": "int64"}) if len(df) else df


def as_floats(values: Any) -> np.ndarray:
    """``values`` as a float array; what is not a number becomes NaN."""
    return np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)


def _paired(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = as_floats(a), as_floats(b)
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
    x = as_floats(values)
    x = x[np.isfinite(x)]
    row = StatsRow(
        "normality", measure, "scipy.stats.normaltest", x.size, a=sample, stratum=stratum
    )
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
    return stats_frame([row])


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
    row = StatsRow(
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
    return stats_frame([row])


def bland_altman(
    a: Any, b: Any, *, measure: str, labels: tuple[str, str] = ("a", "b"), stratum: str = "overall"
) -> pd.DataFrame:
    """Bland-Altman bias (mean of ``b - a``) and 95% limits of agreement (bias ± 1.96·SD, ddof=1)."""
    x, y = _paired(a, b)
    row = StatsRow(
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
    return stats_frame([row])


def correlation_row(
    kind: Literal["spearman", "pearson"],
    a: Any,
    b: Any,
    *,
    measure: str,
    labels: tuple[str, str],
    stratum: str,
    analysis: str,
) -> StatsRow:
    """Spearman or Pearson correlation of paired samples (pairs with a missing value dropped).

    ``statistic`` and ``estimate`` are rho (r); ``p`` is NaN with a note below 3
    pairs or when a sample is constant.
    """
    x, y = _paired(a, b)
    fn = stats.spearmanr if kind == "spearman" else stats.pearsonr
    row = StatsRow(
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
        stats_frame(
            [
                correlation_row(
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
    kw = StatsRow(
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
    pairs = pd.concat(pair_frames, ignore_index=True) if pair_frames else stats_frame([])
    return pd.concat([stats_frame([kw]), adjust_p(pairs, correction)], ignore_index=True)


def adjust_p(table: pd.DataFrame, correction: str) -> pd.DataFrame:
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


def site_differences(
    table: pd.DataFrame,
    *,
    site: str = "site",
    numeric: Sequence[str] = ("age",),
    categorical: Sequence[str] = ("sex",),
) -> pd.DataFrame:
    """Differences between sites: Mann-Whitney U (2 sites) or Kruskal-Wallis (more)
    for numeric columns, chi-square of the contingency table for categorical ones."""
    rows: list[StatsRow] = []
    sites = sorted(table[site].dropna().astype(str).unique())
    for col in numeric:
        if col not in table:
            continue
        samples = [as_floats(table.loc[table[site].astype(str) == s, col]) for s in sites]
        samples = [x[np.isfinite(x)] for x in samples]
        n = int(sum(x.size for x in samples))
        two = len(sites) == 2
        test = "scipy.stats.mannwhitneyu" if two else "scipy.stats.kruskal"
        row = StatsRow("site_difference", col, test, n, a=site, b=",".join(sites))
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
        row = StatsRow(
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
    return stats_frame(rows)
