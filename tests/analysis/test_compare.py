"""``cohort-sciseg compare RUN_A RUN_B -o OUT``: two runs over the same synthetic scans, end to end.

Fast runs use the ``copy-manual`` stand-in as two "models" (the manual masks, and
the manual masks with lesions dilated by one voxel); the slow test compares the
bundled demo model with and without its recommended post-processing, as the issue
asks. Expectations are independent: Dice by numpy on the mask files, the
Bland-Altman bias as the pandas mean of B - A.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from cohort_sciseg.analysis.compare import (
    COMPARE_TABLE_SCHEMAS,
    COMPARED_BIOMARKERS,
    CompareLayout,
    biomarker_differences,
    compare_runs,
    moved_scans,
    pair_scans,
)
from cohort_sciseg.batch.runner import RunOptions, run_cohort
from cohort_sciseg.batch.segmenters import SegmenterSpec
from cohort_sciseg.cli import main
from cohort_sciseg.cli.commands import CompareCommand
from cohort_sciseg.discover import find_scans
from cohort_sciseg.errors import AnalysisError
from cohort_sciseg.synth import synthesize_cohort


@dataclass(frozen=True)
class Runs:
    manual: Path  # copy-manual: the manual masks as "model A"
    dilated: Path  # copy-manual with lesions dilated by one voxel: "model B"
    broken_a: Path  # copy-manual on a copy of the cohort where one image is truncated
    only_broken: Path  # that failed scan alone
    failed_scan: str


def _run(roots: list[Path], out: Path, spec: SegmenterSpec, **extra: object) -> Path:
    opts = RunOptions(segmenter=spec, workers=1, progress=False, validate=False, report=True, **extra)  # type: ignore[arg-type]
    run_cohort(roots, out, opts)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("compare")
    cohort = synthesize_cohort(root / "cohort", sites=2, subjects_per_site=2, seed=5)
    roots = [Path(r) for r in cohort.dataset_roots]
    broken = root / "broken" / "cohort"
    shutil.copytree(root / "cohort", broken)
    broken_roots = [broken / r.name for r in roots]
    scans = sorted(find_scans(broken_roots).scans, key=lambda s: s.scan_id)
    failed = scans[0]
    data = Path(failed.image_path).read_bytes()
    Path(failed.image_path).write_bytes(data[: len(data) // 3])
    manual = SegmenterSpec.make("copy-manual")
    return Runs(
        manual=_run(roots, root / "manual", manual),
        dilated=_run(roots, root / "dilated", SegmenterSpec.make("copy-manual", dilate_lesions=1)),
        broken_a=_run(broken_roots, root / "broken_a", manual),
        only_broken=_run(broken_roots, root / "only_broken", manual,
                         exclude_scans=tuple(s.scan_id for s in scans[1:])),
        failed_scan=failed.scan_id,
    )


@pytest.fixture(scope="module")
def dilated(runs: Runs, tmp_path_factory: pytest.TempPathFactory):
    return compare_runs(runs.manual, runs.dilated, tmp_path_factory.mktemp("cmp") / "out", top=3)


def _numpy_dice(a: Path, b: Path) -> float:
    x = np.asarray(nib.load(a).dataobj) > 0
    y = np.asarray(nib.load(b).dataobj) > 0
    total = x.sum() + y.sum()
    return 1.0 if total == 0 else 2.0 * np.logical_and(x, y).sum() / total


def _check_dice_by_hand(result, run_a: Path, run_b: Path) -> None:
    a = pd.read_parquet(Path(run_a) / "tables" / "scans")
    b = pd.read_parquet(Path(run_b) / "tables" / "scans")
    checked = 0
    for row in result.scans.itertuples():
        ra = a[a.scan_id == row.scan_id].iloc[0]
        rb = b[b.scan_id == row.scan_id].iloc[0]
        for what, column in (("cord_dice", "cord_seg_path"), ("lesion_dice", "lesion_seg_path")):
            expected = _numpy_dice(Path(run_a) / ra[column], Path(run_b) / rb[column])
            assert getattr(row, what) == pytest.approx(expected, abs=1e-12), (row.scan_id, what)
            checked += 1
    assert checked == 2 * len(result.scans) > 0


def _check_bias(result) -> None:
    s, summary = result.scans, result.biomarkers
    for name in ("total_volume_mm3", "total_length_mm", "max_axial_damage_ratio"):
        diff = s[f"{name}_b"] - s[f"{name}_a"]
        row = summary[(summary.biomarker == name) & (summary.stratum == "overall")].iloc[0]
        assert row.bias == pytest.approx(diff.mean(), abs=1e-9)
        assert row.median_difference == pytest.approx(diff.median(), abs=1e-9)
        assert row.n == diff.notna().sum()
        for site, group in s.groupby("site"):
            per = summary[(summary.biomarker == name) & (summary.stratum == f"site={site}")].iloc[0]
            d = group[f"{name}_b"] - group[f"{name}_a"]
            assert per.bias == pytest.approx(d.mean(), abs=1e-9)
            if d.notna().sum() >= 2:
                sd = d.std(ddof=1)
                assert per.loa_upper == pytest.approx(d.mean() + 1.96 * sd, abs=1e-9)


# ----------------------------------------------------------------------------- the stand-in pair (4 runs, ~45 s)


@pytest.mark.slow
def test_dice_against_numpy_on_the_mask_files(runs, dilated):
    _check_dice_by_hand(dilated, runs.manual, runs.dilated)
    assert (dilated.scans.cord_dice == 1.0).all()  # the cord masks are the same manual masks
    with_lesion = dilated.scans[dilated.scans.n_lesions_a > 0]
    assert len(with_lesion)
    assert (with_lesion.lesion_dice < 1.0).all()


@pytest.mark.slow
def test_bland_altman_bias_is_the_mean_difference(dilated):
    _check_bias(dilated)
    overall = dilated.biomarkers.set_index(["biomarker", "stratum"]).loc[("total_volume_mm3", "overall")]
    assert overall.bias > 0  # dilated lesions are larger


@pytest.mark.slow
def test_tables_figures_page_and_record(dilated):
    layout = CompareLayout(dilated.out_dir)
    for name, schema in COMPARE_TABLE_SCHEMAS.items():
        table = pd.read_parquet(layout.table(name))
        assert list(table.columns) == schema.names, name
    stats = pd.read_parquet(layout.table("statistics"))
    assert {"scipy.stats.wilcoxon", "bland_altman"} <= set(stats.test)
    assert stats.options.str.contains("zero_method").any()
    sites = sorted(dilated.scans.site.unique())
    strata = set(dilated.biomarkers.stratum)
    assert {"overall", *(f"site={s}" for s in sites)} == strata
    assert set(dilated.biomarkers.biomarker) == set(COMPARED_BIOMARKERS)
    assert (layout.figures / "bland_altman_total_volume_mm3.png").is_file()
    assert (layout.figures / "bland_altman_total_volume_mm3.svg").is_file()
    html = layout.page.read_text()
    assert "Bland-Altman" in html
    assert "figures/bland_altman_total_volume_mm3.png" in html
    assert "/manual/report/scans/" in html  # moved scans link to their page in each run's QC report
    assert (layout.assets / "report.css").is_file()
    assert layout.record.is_file()


@pytest.mark.slow
def test_each_runs_qc_report_links_the_comparison(runs, dilated, tmp_path):
    """The Cohort page of both runs' reports lists the page (and keeps it when the report is rebuilt)."""
    import re
    from urllib.parse import unquote

    from cohort_sciseg.io import RunLayout
    from cohort_sciseg.report import build_report

    page = CompareLayout(dilated.out_dir).page.resolve()
    for run, role in ((runs.manual, "A"), (runs.dilated, "B")):
        report = RunLayout(run).report
        for rebuilt in (False, True):
            if rebuilt:
                build_report(run, render_missing=False)
            html = (report / "cohort.html").read_text()
            assert "Comparisons with other runs" in html
            hrefs = [unquote(h) for h in re.findall(r'<li><a href="([^"]+)">', html)]
            targets = [(report / h).resolve() for h in hrefs]
            assert page in targets
            title = re.search(rf'href="[^"]*{re.escape(dilated.out_dir.name)}/compare.html">([^<]+)</a> '
                              rf'\(this run is {role}\)', html)
            assert title is not None
            assert "B: dilated" in title.group(1) or "dilated" in title.group(1)
    # the same comparison again: listed once; a comparison whose page is gone: not listed
    compare_runs(runs.manual, runs.dilated, dilated.out_dir, top=3)
    gone = compare_runs(runs.manual, runs.dilated, tmp_path / "gone", top=3)
    gone.page.unlink()
    build_report(runs.manual, render_missing=False)
    html = (RunLayout(runs.manual).report / "cohort.html").read_text()
    assert html.count(f"{dilated.out_dir.name}/compare.html") == 1
    assert "gone/compare.html" not in html


@pytest.mark.slow
def test_moved_scans_are_ranked_by_relative_volume_change(dilated):
    moved, scans = dilated.moved, dilated.scans
    assert len(moved) <= 3
    assert list(moved["rank"]) == list(range(1, len(moved) + 1))
    change = scans.set_index("scan_id").volume_change_pct
    expected = change[change.notna() & (change != 0)]
    expected = sorted(expected.index, key=lambda i: (-abs(expected[i]), i))[:3]
    assert list(moved.scan_id) == expected


@pytest.mark.slow
def test_a_run_compared_with_itself(runs, tmp_path):
    result = compare_runs(runs.manual, runs.manual, tmp_path / "same")
    s = result.scans
    assert len(s)
    assert (s.cord_dice == 1.0).all()
    assert (s.lesion_dice == 1.0).all()
    for name in COMPARED_BIOMARKERS:
        assert (s[f"{name}_diff"].dropna() == 0).all()
    assert result.moved.empty
    assert (result.biomarkers.n_changed == 0).all()
    assert result.labels == ("A: manual", "B: manual")
    assert set(s.closer_to_manual.dropna()) <= {"tie"}


@pytest.mark.slow
def test_a_scan_failed_in_a_is_listed_unpaired(runs, tmp_path):
    result = compare_runs(runs.broken_a, runs.manual, tmp_path / "out")
    row = result.unpaired.set_index("scan_id").loc[runs.failed_scan]
    assert row.reason == "failed in run A"
    assert row.status_a == "failed"
    assert row.status_b == "done"
    assert row.detail  # the run's failure message
    assert runs.failed_scan not in set(result.scans.scan_id)
    assert len(result.scans) == len(pd.read_parquet(runs.manual / "tables" / "scans")) - 1
    stored = pd.read_parquet(CompareLayout(result.out_dir).table("unpaired"))
    assert list(stored.scan_id) == [runs.failed_scan]


@pytest.mark.slow
def test_no_common_scan(runs, tmp_path):
    with pytest.raises(AnalysisError, match="no scan is done in both runs"):
        compare_runs(runs.only_broken, runs.manual, tmp_path / "out")


@pytest.mark.slow
def test_bad_arguments(runs, tmp_path):
    with pytest.raises(AnalysisError, match="top is 0"):
        compare_runs(runs.manual, runs.dilated, tmp_path / "out", top=0)
    with pytest.raises(AnalysisError, match="inside one"):
        compare_runs(runs.manual, runs.dilated, runs.manual / "cmp")
    with pytest.raises(AnalysisError, match="run folder not found"):
        compare_runs(tmp_path / "nowhere", runs.dilated, tmp_path / "out")


@pytest.mark.slow
def test_cli(runs, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["compare", str(runs.manual), str(runs.dilated), "-o", str(out), "--top", "2"]) == 0
    text = capsys.readouterr().out
    assert "scan(s) compared" in text
    assert "page:" in text
    assert (out / "compare.html").is_file()
    command = CompareCommand(runs.manual, runs.dilated, tmp_path / "cmd", top=1, figures=False)
    printed = io.StringIO()
    assert command.run(out=printed) == 0
    assert "moved most:" in printed.getvalue()
    assert not (tmp_path / "cmd" / "figures").exists()


@pytest.mark.slow
def test_cli_errors_exit_2_without_traceback(runs, tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nowhere"), str(runs.manual), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "run folder not found" in err
    assert "Traceback" not in err
    assert main(["compare", str(runs.only_broken), str(runs.manual), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no scan is done in both runs" in err
    assert "Fix:" in err


# ----------------------------------------------------------------------------- the demo model


@pytest.mark.slow
def test_demo_model_with_and_without_postprocessing(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare_demo")
    cohort = synthesize_cohort(root / "cohort", sites=2, subjects_per_site=2, seed=3)
    roots = [Path(r) for r in cohort.dataset_roots]
    # A: raw network output with non-overlapping tiles; B: the defaults (overlapping tiles, the model's
    # recommended post-processing). On these phantoms the post-processing alone changes nothing (one cord
    # component); the tiling moves some voxels, so the comparison has differences to find.
    raw = _run(roots, root / "raw",
               SegmenterSpec.make("nnunet", device="cpu", postprocessing="none", tile_step_size=1.0))
    post = _run(roots, root / "post", SegmenterSpec.make("nnunet", device="cpu"))
    result = compare_runs(raw, post, root / "out")
    assert (result.scans.lesion_dice < 1).any()
    assert not result.moved.empty
    top = result.scans.volume_change_pct.abs().max()
    assert abs(result.moved.volume_change_pct.iloc[0]) == top
    assert len(result.scans) == len(pd.read_parquet(raw / "tables" / "scans"))
    _check_dice_by_hand(result, raw, post)
    _check_bias(result)
    record = pd.read_json(CompareLayout(result.out_dir).record, typ="series")
    assert record["run_a"]["settings"] != record["run_b"]["settings"]
    assert (CompareLayout(result.out_dir).figures / "bland_altman_total_length_mm.png").is_file()


def test_the_parser_builds_the_compare_command():
    from dataclasses import fields

    from cohort_sciseg.cli import parser

    ns = parser.build_parser().parse_args(["compare", "a", "b", "-o", "o", "--top", "3", "--no-figures"])
    command = parser.command_from_namespace(ns)
    assert isinstance(command, CompareCommand)
    assert set(vars(ns)) - {"verbose", "command", "action", "command_class"} <= {f.name for f in fields(command)}
    assert (command.run_a, command.run_b, command.output, command.top, command.figures) == (
        Path("a"), Path("b"), Path("o"), 3, False)


# ----------------------------------------------------------------------------- fast: the computations on tables


def _scans(status: list[str], sites: list[str] | None = None) -> pd.DataFrame:
    n = len(status)
    return pd.DataFrame({
        "scan_id": [f"s{i}" for i in range(n)], "site": sites or ["x"] * n, "sub": [str(i) for i in range(n)],
        "ses": [None] * n, "status": status,
    })


def test_pair_scans_gives_every_unpaired_reason():
    a = _scans(["done", "done", "failed", "failed", "done"])
    b = _scans(["done", "failed", "done", "failed"]).assign(site=["x", "x", "x", "x"])
    b = pd.concat([b, _scans(["done"]).assign(scan_id="s9")], ignore_index=True)
    fail_a = pd.DataFrame({"site": ["x", "x"], "scan_id": ["s2", "s2"], "message": ["old", "new"],
                           "timestamp": ["2026-01-02", "2026-01-01"]})
    paired, unpaired = pair_scans(a, b, failures_a=fail_a, excluded_b=["s4"])
    assert list(paired.scan_id) == ["s0"]
    got = unpaired.set_index("scan_id")
    assert got.reason.to_dict() == {
        "s1": "failed in run B", "s2": "failed in run A", "s3": "failed in both runs",
        "s4": "only in run A", "s9": "only in run B",
    }
    assert got.loc["s2", "detail"] == "old"  # the latest failure (by timestamp)
    assert got.loc["s4", "detail"] == "excluded from run B"
    assert pd.isna(got.loc["s9", "status_a"])


def test_pair_scans_matches_on_site_too():
    a = _scans(["done"], sites=["x"])
    b = _scans(["done"], sites=["y"])
    paired, unpaired = pair_scans(a, b)
    assert paired.empty
    assert list(unpaired.reason) == ["only in run A", "only in run B"]


def test_moved_scans_ranking():
    scans = pd.DataFrame({
        "scan_id": ["d", "c", "b", "a", "e", "f"], "site": ["x"] * 6,
        "total_volume_mm3_a": [10.0, 10.0, 10.0, 0.0, 5.0, np.nan],
        "total_volume_mm3_b": [15.0, 5.0, 10.0, 3.0, 5.0, 1.0],
    })
    scans["total_volume_mm3_diff"] = scans.total_volume_mm3_b - scans.total_volume_mm3_a
    scans["volume_change_pct"] = [50.0, -50.0, 0.0, np.inf, 0.0, np.nan]  # 100 (b - a) / a by hand
    for col in ("n_lesions_a", "n_lesions_b", "lesion_dice", "lesion_f1"):
        scans[col] = 1
    moved = moved_scans(scans, top=5)
    assert list(moved.scan_id) == ["a", "c", "d"]  # inf first, then |50 %| with ties by scan_id
    assert list(moved["rank"]) == [1, 2, 3]
    assert list(moved_scans(scans, top=1).scan_id) == ["a"]
    assert moved_scans(scans.assign(volume_change_pct=0.0), top=5).empty


def test_biomarker_differences_against_pandas(rng):
    n = 12
    scans = pd.DataFrame({"scan_id": [f"s{i:02d}" for i in range(n)], "site": ["p", "q"] * (n // 2)})
    for name in COMPARED_BIOMARKERS:
        base = rng.uniform(1, 100, n)
        scans[f"{name}_a"] = base
        scans[f"{name}_b"] = base + rng.normal(2, 1, n)
    scans.loc[3, "total_bridge_width_mm_b"] = np.nan  # a scan without lesion in B: pair dropped
    summary, stats = biomarker_differences(scans, labels=("v1", "v2"))
    for name in COMPARED_BIOMARKERS:
        for stratum, sel in [("overall", scans), *((f"site={s}", g) for s, g in scans.groupby("site"))]:
            row = summary[(summary.biomarker == name) & (summary.stratum == stratum)].iloc[0]
            d = (sel[f"{name}_b"] - sel[f"{name}_a"]).dropna()
            assert row.n == len(d)
            assert row.bias == pytest.approx(d.mean())
            assert row.loa_lower == pytest.approx(d.mean() - 1.96 * d.std(ddof=1))
            assert row.median_difference == pytest.approx(d.median())
            assert row.wilcoxon_p < 0.05 if stratum == "overall" else 0 <= row.wilcoxon_p <= 1
    wilcoxon = stats[stats.test == "scipy.stats.wilcoxon"]
    assert len(wilcoxon) == len(summary)
    assert set(wilcoxon.a) == {"v1"}
    assert set(wilcoxon.b) == {"v2"}
