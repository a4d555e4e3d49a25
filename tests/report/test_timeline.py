"""Per-subject timeline pages: session images coloured by track, the page, links, the subjects index."""

from __future__ import annotations

import html
import re
import shutil
from importlib import resources
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image

from cohort_sciseg.errors import ReportError
from cohort_sciseg.longitudinal import CHANGES_SCHEMA, TRACKS_SCHEMA
from cohort_sciseg.report.site import scan_page_href
from cohort_sciseg.report.timeline import (
    TRACK_PALETTE,
    UNTRACKED_RGB,
    TimelineSession,
    subject_page_href,
    subject_summary,
    track_colour,
    write_subject_timeline,
    write_subjects_index,
)

SHAPE = (21, 24, 30)  # R-L, A-P, S-I in RAS (non-cubic: axis mix-ups fail)
RAS = np.diag([0.8, 0.8, 2.0, 1.0])
#: The same grid stored left-posterior-inferior first (LPI flips x, y and z): any orientation must give the same view.
FLIPPED = np.array([[-0.8, 0, 0, 16.0], [0, -0.8, 0, 18.4], [0, 0, -2.0, 58.0], [0, 0, 0, 1]])
#: Lesions (x, y, z slices in RAS voxels): 1 superior, 2 inferior, 3 in between.
LESIONS = {
    "sup": (slice(9, 12), slice(11, 14), slice(20, 24)),
    "inf": (slice(9, 12), slice(11, 14), slice(6, 9)),
    "mid": (slice(9, 12), slice(11, 14), slice(13, 16)),
}


def _session(rng, ses: str, lesions: dict[int, str], *, flipped: bool = False, aligned: bool = True,
             dice: float | None = None, days: float | None = 0.0) -> TimelineSession:
    """A cord tube along S-I with the given lesions (lesion_id -> LESIONS key), built in RAS."""
    x, y = np.meshgrid(np.arange(SHAPE[0]), np.arange(SHAPE[1]), indexing="ij")
    disc = (x - 10) ** 2 + (y - 12) ** 2 <= 9
    cord = np.repeat(disc[:, :, None], SHAPE[2], axis=2)
    labels = np.zeros(SHAPE, np.int16)
    for lid, where in lesions.items():
        labels[LESIONS[where]] = lid
    image = rng.normal(100, 5, SHAPE) + 200 * cord - 120 * (labels > 0)
    affine = RAS
    if flipped:  # the same anatomy, stored with every axis reversed
        image, cord, labels = image[::-1, ::-1, ::-1], cord[::-1, ::-1, ::-1], labels[::-1, ::-1, ::-1]
        affine = FLIPPED
    return TimelineSession(ses=ses, scan_id=f"sub-01_ses-{ses}_T2w", site="site1", image=image, affine=affine,
                           cord=cord, lesion_labels=labels, days_from_baseline=days, aligned=aligned,
                           cord_dice=dice)


def _tracks(rows: list[dict]) -> pd.DataFrame:
    base = {"sub": "01", "parent_track_ids": []}
    return pa.Table.from_pylist([base | r for r in rows], schema=TRACKS_SCHEMA).to_pandas()


def _changes(rows: list[dict]) -> pd.DataFrame:
    base = {"sub": "01", "from_lesion_ids": [], "to_lesion_ids": []}
    return pa.Table.from_pylist([base | r for r in rows], schema=CHANGES_SCHEMA).to_pandas()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def three_sessions(rng, tmp_path):
    """Baseline (tracks 1, 2), ses-02 (1 persists, 2 resolves, 3 is new), ses-03 not aligned."""
    sessions = [
        _session(rng, "02", {1: "sup", 2: "mid"}, flipped=True, dice=0.912, days=180.0),
        _session(rng, "01", {1: "sup", 2: "inf"}, days=0.0),
        _session(rng, "03", {1: "sup"}, aligned=False, dice=0.41, days=365.0),
    ]  # not in time order: the page orders them
    tracks = _tracks([
        {"ses": "01", "session_index": 0, "days_from_baseline": 0.0, "lesion_id": 1, "track_id": 1,
         "event": "baseline", "volume_mm3": 15.36},
        {"ses": "01", "session_index": 0, "days_from_baseline": 0.0, "lesion_id": 2, "track_id": 2,
         "event": "baseline", "volume_mm3": 11.52},
        {"ses": "02", "session_index": 1, "days_from_baseline": 180.0, "lesion_id": 1, "track_id": 1,
         "event": "persisting", "volume_mm3": 15.36},
        {"ses": "02", "session_index": 1, "days_from_baseline": 180.0, "lesion_id": 2, "track_id": 3,
         "event": "new", "volume_mm3": 11.52},
        {"ses": "03", "session_index": 2, "days_from_baseline": 365.0, "lesion_id": 1, "track_id": None,
         "event": "unaligned", "volume_mm3": 15.36},
    ])
    interval = {"ses_from": "01", "ses_to": "02", "session_index_from": 0, "session_index_to": 1, "days": 180.0}
    changes = _changes([
        interval | {"event": "persisting", "track_id": 1, "from_track_ids": [1], "to_track_ids": [1],
                    "volume_mm3_from": 15.36, "volume_mm3_to": 15.36, "volume_mm3_change": 0.0},
        interval | {"event": "new", "track_id": 3, "from_track_ids": [], "to_track_ids": [3],
                    "volume_mm3_from": 0.0, "volume_mm3_to": 11.52, "volume_mm3_change": 11.52},
        interval | {"event": "resolved", "track_id": 2, "from_track_ids": [2], "to_track_ids": [],
                    "volume_mm3_from": 11.52, "volume_mm3_to": 0.0, "volume_mm3_change": -11.52},
    ])
    report = tmp_path / "report"
    page = write_subject_timeline(report, site="site1", sub="01", sessions=sessions, tracks=tracks, changes=changes)
    return {"report": report, "page": page, "sessions": sessions, "tracks": tracks, "changes": changes}


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _where(rgb: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.argwhere((rgb == np.asarray(colour, np.uint8)).all(axis=2))


def test_session_images_colour_lesions_by_track(three_sessions):
    folder = three_sessions["report"] / "subjects" / "site1" / "01"
    assert sorted(p.name for p in folder.iterdir()) == ["ses-01.png", "ses-02.png", "ses-03.png"]
    s1, s2, s3 = (_png(folder / f"ses-0{i}.png") for i in (1, 2, 3))
    assert s1.shape == s2.shape
    assert s1.shape[1] <= 300
    t1, t2, t3 = (track_colour(t) for t in (1, 2, 3))
    assert len({t1, t2, t3}) == 3
    assert t1 == TRACK_PALETTE[0]
    # track 1 persists: the same colour at the same place in both sessions (ses-02 is stored flipped)
    a, b = _where(s1, t1), _where(s2, t1)
    assert len(a) > 20
    assert len(b) > 20
    np.testing.assert_allclose(a.mean(axis=0), b.mean(axis=0), atol=1.0)
    # track 2 resolves, track 3 is new; superior is up: 1 above 3 above 2
    assert len(_where(s1, t2)) > 20
    assert len(_where(s2, t2)) == 0
    assert len(_where(s1, t3)) == 0
    assert len(_where(s2, t3)) > 20
    assert a[:, 0].mean() < _where(s2, t3)[:, 0].mean() < _where(s1, t2)[:, 0].mean()
    # the fill inside the outline is the track's colour blended with the image
    r, c = np.round(a.mean(axis=0)).astype(int)
    inner = s1[r, c].astype(int)
    assert tuple(inner) != t1
    assert inner[2] - inner[0] > 10
    # the unaligned session: no track colour, a dashed grey outline
    assert all(len(_where(s3, colour)) == 0 for colour in TRACK_PALETTE)
    assert len(_where(s3, UNTRACKED_RGB)) > 10


def _links(text: str) -> list[str]:
    return [html.unescape(v) for v in re.findall(r'(?:href|src)="([^"]+)"', text)]


def test_page_names_sessions_warns_and_tables(three_sessions):
    text = three_sessions["page"].read_text(encoding="utf-8")
    assert three_sessions["page"] == three_sessions["report"] / "subjects" / "site1" / "01.html"
    order = [text.index(f"ses-0{i}, day {d}") for i, d in ((1, 0), (2, 180), (3, 365))]
    assert order == sorted(order)  # left to right in time order
    assert "cord Dice after alignment 0.912" in text
    assert "cord Dice after alignment 0.41" in text
    assert text.count('role="alert"') == 1
    assert "not aligned to the baseline" in text
    assert 'data-page="subjects"' in text
    assert 'data-root="../../"' in text
    # legend: events over time, the resolved track included
    assert "ses-01: baseline → ses-02: persisting → ses-03" not in text  # unaligned rows have no track
    assert "ses-01: baseline → ses-02: persisting" in text
    assert "ses-01: baseline → ses-02: resolved" in text
    assert "ses-02: new" in text
    # tables: one row per lesion per session, one per change; units from the schemas
    tables = re.findall(r"<tbody>(.*?)</tbody>", text, flags=re.S)
    assert [t.count("<tr>") for t in tables] == [3, 5, 3]
    assert "volume_mm3 (mm3)" not in text  # the unit is in the name
    assert "days (day)" in text
    assert "days_from_baseline (day)" in text
    assert "-11.52" in text
    assert "volume_mm3_change_per_year" not in text  # a column with no value is left out


def test_links_resolve(three_sessions):
    report, page = three_sessions["report"], three_sessions["page"]
    links = _links(page.read_text(encoding="utf-8"))
    scans = {(page.parent / unquote(h)).resolve() for h in links if "/scans/" in h}
    assert scans == {(report / unquote(scan_page_href("site1", s.scan_id))).resolve()
                     for s in three_sessions["sessions"]}
    images = [h for h in links if h.endswith(".png")]
    assert len(images) == 3
    assert all((page.parent / unquote(h)).is_file() for h in images)
    for h in links:
        target = (page.parent / unquote(h)).resolve()
        assert target.is_relative_to(report.resolve()), h
    assert (page.parent / "../../subjects.html").resolve() == (report / "subjects.html").resolve()
    assert "../../subjects.html" in links
    assert "../../index.html" in links


def test_subjects_index_links_each_page(three_sessions, rng):
    report = three_sessions["report"]
    one = [_session(rng, "01", {})]
    hostile = 'x<b>"&/..'
    write_subject_timeline(report, site="site2", sub=hostile, sessions=one, tracks=_tracks([]), changes=_changes([]))
    rows = [
        subject_summary(site="site1", sub="01", sessions=three_sessions["sessions"],
                        tracks=three_sessions["tracks"], changes=three_sessions["changes"]),
        subject_summary(site="site2", sub=hostile, sessions=one, tracks=_tracks([]), changes=_changes([])),
    ]
    assert rows[0]["n_sessions"] == 3
    assert rows[0]["n_tracks"] == 3
    assert rows[0]["failed_alignment"]
    assert rows[0]["events"] == "1 new, 1 persisting, 1 resolved"
    index = write_subjects_index(report, rows)
    assert index == report / "subjects.html"
    text = index.read_text(encoding="utf-8")
    assert "<b>" not in text
    assert "x&lt;b&gt;&#34;&amp;/.." in text
    hrefs = [h for h in _links(text) if h.startswith("subjects/")]
    assert hrefs == [subject_page_href("site1", "01"), subject_page_href("site2", hostile)]
    assert all((report / unquote(h)).is_file() for h in hrefs)
    assert text.count(">failed<") == 1


def test_one_session_without_lesion(rng, tmp_path):
    page = write_subject_timeline(tmp_path, site="s", sub="02", sessions=[_session(rng, "01", {}, days=None)],
                                  tracks=pd.DataFrame(), changes=pd.DataFrame())
    text = page.read_text(encoding="utf-8")
    assert "ses-01, day ?" in text
    assert "no lesion" in text
    assert "No tracked lesion." in text
    assert 'role="alert"' not in text
    rgb = _png(page.with_suffix("") / "ses-01.png")
    assert all(len(_where(rgb, colour)) == 0 for colour in TRACK_PALETTE)
    assert len(_where(rgb, (255, 255, 0))) > 0  # the cord contour


def test_stale_session_images_are_removed(three_sessions, rng):
    report = three_sessions["report"]
    write_subject_timeline(report, site="site1", sub="01", sessions=[_session(rng, "01", {})],
                           tracks=pd.DataFrame(), changes=pd.DataFrame())
    assert [p.name for p in (report / "subjects" / "site1" / "01").iterdir()] == ["ses-01.png"]


def test_bad_input_raises(rng, tmp_path):
    s = _session(rng, "01", {1: "sup"})
    call = dict(site="s", sub="01", tracks=pd.DataFrame(), changes=pd.DataFrame())
    with pytest.raises(ReportError, match="has no session"):
        write_subject_timeline(tmp_path, sessions=[], **call)
    with pytest.raises(ReportError, match="repeated sessions"):
        write_subject_timeline(tmp_path, sessions=[s, s], **call)
    bad = TimelineSession(**{**s.__dict__, "cord": s.cord[:-1]})
    with pytest.raises(ReportError, match="3D image, cord and lesion_labels on one grid"):
        write_subject_timeline(tmp_path, sessions=[bad], **call)
    with pytest.raises(ReportError, match=r"lacks columns \['track_id'\]"):
        write_subject_timeline(tmp_path, sessions=[s], site="s", sub="01", changes=pd.DataFrame(),
                               tracks=pd.DataFrame({"ses": ["01"], "lesion_id": [1]}))
    with pytest.raises(ReportError, match="row 0 has no site or sub"):
        write_subjects_index(tmp_path, [{"site": "s"}])


def test_page_loads_in_browser(page, three_sessions):
    """The page with the report's assets, in a real Chromium: no script or console error, images loaded."""
    report = three_sessions["report"]
    (report / "assets").mkdir()
    for name in ("report.css", "report.js"):
        src = resources.files("cohort_sciseg.report").joinpath("assets", name)
        with resources.as_file(src) as p:
            shutil.copy(p, report / "assets" / name)
    (report / "data").mkdir()
    (report / "data" / "meta.js").write_text('window.COHORT_SCISEG_META = {"report": "t"};\n')
    page.goto(three_sessions["page"].resolve().as_uri())
    page.wait_for_load_state("load")
    assert page.locator(".timeline-session").count() == 3
    widths = page.eval_on_selector_all(".timeline-session img", "els => els.map(e => e.naturalWidth)")
    assert all(w > 0 for w in widths)
    assert page.locator(".timeline-warn").inner_text().startswith("⚠ not aligned")
