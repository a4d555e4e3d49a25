"""The static QC report (no browser): pages, escaping, flags, incremental updates."""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from _report_cohort import HOSTILE_DIR, HOSTILE_NAME, HOSTILE_VALUE, make_hostile_run

from cohort_sciseg.batch.runner import RunOptions, load_summary, run_cohort
from cohort_sciseg.batch.segmenters import SegmenterSpec
from cohort_sciseg.errors import ReportError
from cohort_sciseg.report.site import (
    INDEX_COLUMNS,
    _js_data,
    _outliers,
    build_report,
    scan_flags,
    scan_page_href,
)


def _index(out: Path) -> pd.DataFrame:
    text = (out / "report" / "data" / "index.js").read_text()
    data = json.loads(text[text.index("=") + 1 :].strip().rstrip(";"))
    assert data["columns"] == list(INDEX_COLUMNS)
    return pd.DataFrame(data["rows"], columns=data["columns"])


def test_every_scan_in_the_index_and_done_scans_have_pages(hostile_run):
    out = hostile_run["out"]
    scans = pd.read_parquet(out / "tables" / "scans")
    index = _index(out)
    assert sorted(index.scan_id) == sorted(scans.scan_id)
    done = index[index.status == "done"]
    assert len(done) == len(scans) - 1
    for row in done.itertuples():
        page = out / "report" / row.href
        assert page.is_file()
        html = page.read_text()
        imgs = re.findall(r'<img src="([^"]+)"', html)
        assert len(imgs) >= 2  # sagittal and axial at least
        for src in imgs:
            assert (page.parent / src).is_file()
    failed = index[index.status == "failed"]
    assert len(failed) == 1
    assert failed.href.iloc[0].startswith("failures.html#")
    assert "failed" in failed["flags"].iloc[0]


def test_failures_page_has_the_error_and_the_fix(hostile_run):
    out = hostile_run["out"]
    html = (out / "report" / "failures.html").read_text()
    failure = pd.read_parquet(out / "tables" / "failures").iloc[0]
    broken_id = failure.scan_id
    assert f'id="scan-{broken_id}"' in html
    # the fix column holds the failure's own fix: the text after " Fix: " in its message
    fix = failure.message.partition(" Fix: ")[2].strip()
    assert fix
    row = re.search(rf'<tr id="scan-{re.escape(broken_id)}">(.*?)</tr>', html, re.S).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    assert html_lib.unescape(re.sub(r"<[^>]+>", "", cells[4])).strip() == fix


def test_hostile_strings_are_escaped_everywhere(hostile_run):
    out = hostile_run["out"]
    files = [p for p in (out / "report").rglob("*") if p.suffix in (".html", ".js") and "assets" not in p.parts]
    assert len(files) > 5
    raw = ("<img src=x onerror", "<script>alert", "<b onmouseover")
    for p in files:
        text = p.read_text()
        for bad in raw:
            assert bad not in text, f"{bad!r} unescaped in {p}"
    # ... and still there, as text: the folder name in the provenance, the participants.tsv value
    page = next((out / "report" / "scans").glob("site1/*.html")).read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;script&gt;alert(" in page
    assert "../../etc/passwd" in page  # shown as text, never used as a path
    assert HOSTILE_DIR
    assert HOSTILE_VALUE
    assert HOSTILE_NAME


def test_js_data_cannot_close_its_script():
    text = _js_data("X", {"a": "</script><script>alert(1)</script>", "b": "\u2028&"})
    assert "<" not in text
    assert ">" not in text
    assert "&" not in text
    assert "\u2028" not in text
    assert json.loads(text[text.index("=") + 1 :].strip().rstrip(";"))["a"].startswith("</script>")


def test_scan_page_href_is_one_path_component_per_label():
    assert scan_page_href("site1", "a b#c?d") == "scans/site1/a%20b%23c%3Fd.html"
    assert scan_page_href("..", "../x") == "scans/_../_.._x.html"
    assert "/" not in scan_page_href("../..", "x/../../y")[len("scans/"):].split("/", 1)[1]


def test_flags_from_one_row():
    assert scan_flags({"status": "failed"}) == ["failed"]
    assert scan_flags({"status": "done", "cord_volume_mm3": 0.0, "total_outside_cord_volume_mm3": 0.0}) == [
        "empty-cord"
    ]
    assert scan_flags({"status": "done", "cord_volume_mm3": 9.0, "total_outside_cord_volume_mm3": 1.5}) == [
        "lesion-outside-cord"
    ]
    assert scan_flags({"status": "done", "cord_volume_mm3": 9.0, "total_outside_cord_volume_mm3": float("nan")}) == []


def test_outlier_volume_is_robust_per_site():
    vols = [100, 110, 90, 105, 95, 1000, 5000, 5100, 4900, 5050, 4950, 5000]
    scans = pd.DataFrame({"site": ["a"] * 6 + ["b"] * 6, "status": "done", "total_volume_mm3": vols})
    flagged = _outliers(scans)
    assert list(flagged[flagged].index) == [5]  # 1000 in site a; site b's 5000s are normal there
    small = pd.DataFrame({"site": ["a"] * 4, "status": "done", "total_volume_mm3": [1, 1, 1, 1000]})
    assert not _outliers(small).any()  # too few scans to call an outlier


def test_report_of_a_folder_without_tables_is_an_error(tmp_path):
    with pytest.raises(ReportError, match=r"not the output of a run.*Fix"):
        build_report(tmp_path)


def test_cohort_page_has_table1_and_figures(hostile_run):
    out = hostile_run["out"]
    html = (out / "report" / "cohort.html").read_text()
    assert "Table 1" in html
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert srcs
    from urllib.parse import unquote

    for src in srcs:
        assert (out / "report" / unquote(src)).is_file()


@pytest.mark.slow
def test_adding_scans_rewrites_no_existing_scan_page(tmp_path):
    """A resumed run with new scans writes their pages only; the index gains them."""
    first = make_hostile_run(tmp_path, subjects_per_site=2)
    out, roots = first["out"], first["roots"]
    pages = {p: p.stat().st_mtime_ns for p in (out / "report" / "scans").rglob("*") if p.is_file()}
    assert pages
    # a new subject joins site 1
    src = sorted(p for p in roots[0].glob("sub-*") if p.is_dir())[0]
    new = roots[0] / "sub-99"
    shutil.copytree(src, new)
    for p in new.rglob("*"):
        if p.is_file() and src.name in p.name:
            p.rename(p.with_name(p.name.replace(src.name, "sub-99")))
    labels = roots[0] / "derivatives" / "labels"
    shutil.copytree(labels / src.name, labels / "sub-99")
    for p in (labels / "sub-99").rglob("*"):
        if p.is_file():
            p.rename(p.with_name(p.name.replace(src.name, "sub-99")))
    tsv = roots[0] / "participants.tsv"
    t = pd.read_csv(tsv, sep="\t", dtype=str)
    row = t[t.participant_id == src.name].assign(participant_id="sub-99")
    pd.concat([t, row]).to_csv(tsv, sep="\t", index=False)
    summary = run_cohort(roots, out, RunOptions(segmenter=SegmenterSpec.make("copy-manual", dilate_lesions=1),
                                                workers=1, progress=False))
    assert summary.counts["done"] == 1
    after = {p: p.stat().st_mtime_ns for p in pages}
    assert after == pages  # not one byte of an existing scan page rewritten
    index = _index(out)
    assert index["sub"].eq("99").sum() == 1
    record = load_summary(out)
    assert record["report"]["pages_written"] == 0  # the worker made the new page; the build only checked
    assert record["report"]["pages_current"] == len(index[index.status == "done"])


def test_report_command_remakes_only_missing_pages(hostile_run, capsys):
    from cohort_sciseg.cli import main

    out = hostile_run["out"]
    pages = sorted((out / "report" / "scans").glob("*/*.html"))
    kept = {p: p.stat().st_mtime_ns for p in pages[1:]}
    by_worker = pages[0].read_text()
    pages[0].unlink()
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"1 scan page(s) made, {len(pages) - 1} already current" in text
    assert pages[0].read_text() == by_worker  # the same page as the worker made (participant, settings)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert "file://" in text


def test_report_command_error_names_the_folder(tmp_path, capsys):
    from cohort_sciseg.cli import main

    assert main(["report", str(tmp_path)]) != 0
    assert "not the output of a run" in capsys.readouterr().err


def test_report_package_exports_load_lazily_and_all_resolve():
    """Importing the QC page writer (what each worker does) loads neither matplotlib nor YAML."""
    import subprocess
    import sys

    code = (
        "import sys, cohort_sciseg.report.site, cohort_sciseg.batch.tasks;"
        "print('matplotlib' in sys.modules, 'yaml' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    import cohort_sciseg.report as report

    for name in report.__all__:
        assert getattr(report, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        report.nope  # noqa: B018
