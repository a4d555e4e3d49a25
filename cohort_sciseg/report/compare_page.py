"""The page and figures of ``cohort-sciseg compare`` (two runs over the same scans).

:func:`write_compare_figures` draws one Bland-Altman figure per biomarker (B - A
against the mean, :func:`~cohort_sciseg.report.figures.bland_altman_figure` with
the runs' names); :func:`write_compare_page` renders ``compare.html`` from the
comparison's tables (:mod:`cohort_sciseg.analysis.compare` computes them; this
module takes plain DataFrames, as the report layer sits below the analysis).

The page lives in the comparison's own folder, not in a run's report: it is about
two runs, and a run's report is rebuilt from that run's tables alone. Each run's
report lists it on its Cohort page (:mod:`cohort_sciseg.report.comparisons`). It links
each moved or unpaired scan to its page in both runs' QC reports (where they have
one) and uses the reports' stylesheet (copied to ``assets/``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import matplotlib
import numpy as np
import pandas as pd

from cohort_sciseg._version import __version__
from cohort_sciseg.io import RunLayout, atomic_write_text
from cohort_sciseg.report.figures import bland_altman_figure, save_figure
from cohort_sciseg.report.site import _env, _fmt, scan_page_href

__all__ = ["write_compare_figures", "write_compare_page"]

_SCAN_COLUMNS = (
    "scan_id", "site", "cord_dice", "lesion_dice", "lesion_f1", "n_lesions_a", "n_lesions_b",
    "total_volume_mm3_a", "total_volume_mm3_b", "volume_change_pct", "closer_to_manual",
)  # fmt: skip
_SUMMARY_COLUMNS = (
    "biomarker", "unit", "stratum", "n", "n_changed", "mean_a", "mean_b", "median_difference",
    "wilcoxon_p", "bias", "loa_lower", "loa_upper", "note",
)  # fmt: skip


def write_compare_figures(
    scans: pd.DataFrame,
    biomarkers: Sequence[str],
    folder: str | os.PathLike[str],
    *,
    labels: tuple[str, str] = ("A", "B"),
    units: Mapping[str, str] | None = None,
) -> list[Path]:
    """One Bland-Altman figure per biomarker with complete pairs: ``bland_altman_<biomarker>.png|.svg``.

    ``scans`` has ``<biomarker>_a`` and ``<biomarker>_b`` columns; the difference
    drawn is B - A, the lines the bias and its 95 % limits (the biomarkers table's numbers).
    """
    matplotlib.rcParams["svg.hashsalt"] = "cohort-sciseg"
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    la, lb = labels
    for name in biomarkers:
        a = scans[f"{name}_a"].to_numpy(float)
        b = scans[f"{name}_b"].to_numpy(float)
        n = int(np.count_nonzero(np.isfinite(a) & np.isfinite(b)))
        if not n:
            continue
        unit = (units or {}).get(name, "")
        fig = bland_altman_figure(a, b, measure=name, unit=unit)
        u = f" [{unit}]" if unit and unit != "1" else ""
        ax = fig.axes[0]
        ax.set_xlabel(f"mean of {la} and {lb}{u}")
        ax.set_ylabel(f"{lb} - {la}{u}")
        ax.set_title(f"Bland-Altman: {name}, {lb} vs {la} (n = {n})", fontsize="medium")
        written += save_figure(fig, out / f"bland_altman_{name}")
    return written


def _records(df: pd.DataFrame, columns: Sequence[str]) -> dict[str, Any]:
    cols = [c for c in columns if c in df.columns]
    return {"columns": cols, "rows": [[_fmt(v) for v in row] for row in df[cols].itertuples(index=False)]}


def _report_link(page: Path, run: Path, site: str, scan_id: str) -> str:
    """The scan's page in a run's QC report, relative to ``page`` ("" when the run has no report)."""
    report = RunLayout(run).report
    if not report.is_dir():
        return ""
    rel = os.path.relpath(report, page.parent).replace(os.sep, "/")
    return f"{quote(rel)}/{scan_page_href(site, scan_id)}"


def _linked_rows(page: Path, df: pd.DataFrame, columns: Sequence[str], runs: tuple[Path, Path]) -> dict[str, Any]:
    view = _records(df, columns)
    view["links"] = [
        [_report_link(page, run, str(site), str(scan)) for run in runs]
        for site, scan in zip(df["site"], df["scan_id"], strict=True)
    ]
    return view


def _site_agreement(scans: pd.DataFrame) -> pd.DataFrame:
    """Median mask agreement per site and overall."""
    cols = ["cord_dice", "lesion_dice", "lesion_f1"]
    per_site = scans.groupby("site", sort=True)[cols].median()
    per_site.insert(0, "n", scans.groupby("site", sort=True).size())
    overall = pd.DataFrame([[len(scans), *scans[cols].median().tolist()]], columns=["n", *cols], index=["all"])
    out = pd.concat([per_site, overall]).rename(columns={c: f"median_{c}" for c in cols})
    return out.rename_axis("site").reset_index()


def write_compare_page(
    path: str | os.PathLike[str],
    *,
    record: Mapping[str, Any],
    scans: pd.DataFrame,
    unpaired: pd.DataFrame,
    biomarkers: pd.DataFrame,
    moved: pd.DataFrame,
    figures: Sequence[Path],
    runs: tuple[Path, Path],
) -> Path:
    """Write the comparison page at ``path`` (and the report stylesheet beside it, ``assets/report.css``).

    ``record`` is the comparison's ``compare.json`` (runs, options, counts);
    ``runs`` the two run folders (links into their QC reports).
    """
    page = Path(path)
    assets = page.parent / RunLayout.REPORT_ASSETS
    assets.mkdir(parents=True, exist_ok=True)
    css = resources.files("cohort_sciseg.report").joinpath("assets", "report.css").read_text(encoding="utf-8")
    atomic_write_text(assets / "report.css", css)
    run_a, run_b = record["run_a"], record["run_b"]
    reports = []
    for info, run in zip((run_a, run_b), runs, strict=True):
        index = RunLayout(run).report_index
        href = quote(os.path.relpath(index, page.parent).replace(os.sep, "/")) if index.is_file() else ""
        reports.append({"label": info["label"], "path": info["path"], "href": href,
                        "segmenters": ", ".join(info["segmenters"]), "done": info["done"]})  # fmt: skip
    html = _env.get_template("compare.html").render(
        version=__version__, runs=reports, counts=record["counts"], options=record["options"],
        wilcoxon=", ".join(f"{k}={v}" for k, v in record["options"]["wilcoxon"].items()),
        agreement=_records(_site_agreement(scans), ["site", "n", "median_cord_dice", "median_lesion_dice",
                                                    "median_lesion_f1"]),
        summary=_records(biomarkers, _SUMMARY_COLUMNS),
        moved=_linked_rows(page, moved, ("rank", *_SCAN_COLUMNS), runs),
        unpaired=_linked_rows(page, unpaired, ("scan_id", "site", "status_a", "status_b", "reason", "detail"), runs),
        scans=_linked_rows(page, scans, _SCAN_COLUMNS, runs),
        figures=[{"src": quote(os.path.relpath(f, page.parent).replace(os.sep, "/")),
                  "caption": f.stem.replace("_", " ")} for f in figures],
    )  # fmt: skip
    return atomic_write_text(page, html)
