"""The QC report in a real headless Chromium: index, scan pages, ratings, export, screenshots."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _report_cohort import HOSTILE_NAME, HOSTILE_VALUE

from cohort_sciseg.report import read_ratings


def _url(path: Path) -> str:
    return path.resolve().as_uri()


def _ready(page) -> None:
    page.wait_for_selector("body[data-ready='1']", timeout=15000)


def _non_blank(png: bytes) -> None:
    """A screenshot with content: many grey levels, not one flat colour."""
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    assert img.std() > 10
    assert len(np.unique(img)) > 20


def _press_and_load(page, key: str) -> None:
    """Press a key that navigates; wait for the next page to be ready."""
    with page.expect_navigation():
        page.keyboard.press(key)
    _ready(page)


def _rows(page) -> list[str]:
    return page.locator("#rows tr[data-k] td:first-child").all_inner_texts()


def test_index_loads_filters_sorts_and_navigates(page, hostile_run):
    out = hostile_run["out"]
    scans = pd.read_parquet(out / "tables" / "scans")
    page.goto(_url(out / "report" / "index.html"))
    _ready(page)
    assert page.inner_text("#count") == f"{len(scans)} of {len(scans)} scans"
    assert sorted(_rows(page)) == sorted(scans.scan_id)
    # filter by site, then by status, then search
    page.select_option("#f-site", "site1")
    assert set(_rows(page)) == set(scans[scans.site == "site1"].scan_id)
    page.select_option("#f-site", "")
    page.select_option("#f-status", "failed")
    assert _rows(page) == list(scans[scans.status == "failed"].scan_id)
    page.select_option("#f-status", "")
    page.fill("#q", "sub-02")
    assert set(_rows(page)) == {s for s in scans.scan_id if "sub-02" in s}
    page.fill("#q", "")
    # sort by lesion volume, descending on the second click; empty (failed) rows last
    page.click("th[data-key=total_volume_mm3]")
    page.click("th[data-key=total_volume_mm3]")
    done = scans[scans.status == "done"].sort_values("total_volume_mm3", ascending=False)
    assert _rows(page)[: len(done)] == list(done.scan_id)
    # keyboard: j moves the selection, Enter opens the scan's page
    page.focus("#grid")
    page.keyboard.press("j")
    assert page.locator("#rows tr.selected td:first-child").inner_text() == done.scan_id.iloc[1]
    _press_and_load(page, "Enter")
    assert re.search(r"/scans/.*\.html$", page.url)
    assert page.locator("h1").inner_text() == done.scan_id.iloc[1]
    # next / previous follow the index's order
    _press_and_load(page, "j")
    assert page.locator("h1").inner_text() == done.scan_id.iloc[2]
    _press_and_load(page, "k")
    _press_and_load(page, "k")
    assert page.locator("h1").inner_text() == done.scan_id.iloc[0]
    _press_and_load(page, "i")  # back to the index, its filters and sort kept
    assert page.get_attribute("th[data-key=total_volume_mm3]", "aria-sort") == "descending"


def test_scan_page_shows_its_images_and_hostile_text_as_text(page, hostile_run):
    out = hostile_run["out"]
    first = sorted((out / "report" / "scans" / "site1").glob("*.html"))[0]
    page.goto(_url(first))
    _ready(page)
    images = page.locator("figure.reportlet img")
    assert images.count() >= 2
    for i in range(images.count()):
        img = images.nth(i)
        img.scroll_into_view_if_needed()
        page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=img.element_handle())
    body = page.inner_text("main")
    assert HOSTILE_VALUE.split(" ")[0] in body  # the participants.tsv value, shown literally
    assert "<img src=x onerror=alert(1)>" in body  # the folder name in the provenance
    assert page.locator("main script, main img[src='x']").count() == 0


def test_a_rating_survives_a_reload_and_exports(page, hostile_run, tmp_path):
    out = hostile_run["out"]
    pages = sorted((out / "report" / "scans").glob("*/*.html"))
    first, second = pages[0], pages[1]
    comment = 'bad cord, "see C5", <b>x</b>\nsecond line'
    page.goto(_url(first))
    _ready(page)
    page.keyboard.press("f")
    page.fill("#comment", comment)
    page.locator("#comment").blur()
    page.reload()
    _ready(page)
    assert page.get_attribute("button[data-rating=fail]", "aria-pressed") == "true"
    assert page.input_value("#comment") == comment
    page.goto(_url(second))
    _ready(page)
    page.click("button[data-rating=pass]")
    # the index shows both and exports them
    page.goto(_url(out / "report" / "index.html"))
    _ready(page)
    page.select_option("#f-rating", "fail")
    assert _rows(page) == [first.stem]
    page.select_option("#f-rating", "")
    with page.expect_download() as dl:
        page.click("#export-csv")
    csv = tmp_path / dl.value.suggested_filename
    dl.value.save_as(csv)
    with page.expect_download() as dl:
        page.click("#export-yaml")
    yml = tmp_path / dl.value.suggested_filename
    dl.value.save_as(yml)
    for path in (csv, yml):
        got = read_ratings(path).set_index("scan_id")
        assert got.loc[first.stem, "rating"] == "fail"
        assert got.loc[first.stem, "comment"] == comment
        assert got.loc[second.stem, "rating"] == "pass"
        assert got.loc[first.stem, "site"] == first.parent.name
    # ratings from the index itself (keyboard), on the selected row
    page.focus("#grid")
    page.keyboard.press("a")
    assert page.locator("#rows tr.selected td.rating-artifact").count() == 1


@pytest.mark.parametrize("kind", ["index", "scan", "failures", "cohort"])
def test_screenshot_of_each_page_kind_has_content(page, hostile_run, kind, tmp_path):
    out = hostile_run["out"] / "report"
    target = {
        "index": out / "index.html",
        "scan": sorted((out / "scans").glob("*/*.html"))[0],
        "failures": out / "failures.html",
        "cohort": out / "cohort.html",
    }[kind]
    page.goto(_url(target))
    page.wait_for_load_state("load")
    if kind in ("index", "scan"):
        _ready(page)
    png = page.screenshot(full_page=True)
    (tmp_path / f"{kind}.png").write_bytes(png)
    _non_blank(png)
    if kind == "failures":
        assert page.locator("table.failures tbody tr").count() == 1
    if kind == "cohort":
        assert page.locator("text=Table 1").count() == 1
        assert HOSTILE_NAME not in page.content()  # never raw HTML
