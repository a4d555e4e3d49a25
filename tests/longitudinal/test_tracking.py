"""Lesion matching across sessions (:mod:`cohort_sciseg.longitudinal.tracking`) on hand-made label maps.

Every expected event, track id and change is written out by hand from the boxes drawn below.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from cohort_sciseg.longitudinal import (
    CHANGES_SCHEMA,
    MEASURES,
    TRACKS_SCHEMA,
    Alignment,
    LongitudinalError,
    SessionLesions,
    track_lesions,
)

SHAPE = (12, 14, 40)  # non-cubic


def _labels(*boxes: tuple[int, int, int]) -> np.ndarray:
    """Label map with lesion ``i + 1`` = z slices [z0, z1) of a 4 x 4 column at x offset ``x0``."""
    out = np.zeros(SHAPE, dtype=np.int32)
    for i, (x0, z0, z1) in enumerate(boxes):
        out[x0:x0 + 4, 5:9, z0:z1] = i + 1
    return out


def _table(*rows: dict[str, float | None]) -> pd.DataFrame:
    """Lesions table with lesion ids 1..n; unspecified measures get distinct values."""
    out = []
    for i, row in enumerate(rows):
        full: dict[str, float | None] = {"lesion_id": i + 1}
        for k, m in enumerate(MEASURES):
            full[m] = row.get(m, float(10 * (i + 1) + k))
        out.append(full)
    return pd.DataFrame(out, columns=["lesion_id", *MEASURES])


def _ok() -> Alignment:
    return Alignment(np.eye(4), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 0.95, True, None, -0.5, 10, 0.1)


def _events(table: pa.Table) -> list[tuple[str, int, int | None, str, list[int]]]:
    cols = ("ses", "lesion_id", "track_id", "event", "parent_track_ids")
    return list(zip(*(table.column(c).to_pylist() for c in cols), strict=True))


def test_every_event_with_track_and_parent_ids():
    # baseline: A (z 0-5), B (z 10-15), C (z 20-25) and D (z 30-35) side by side at x 0
    # ses2: A persists (z 1-6); B and C merge into one (z 10-25); D splits in two (z 30-32, 33-35);
    #       E is new (x 6, z 0-5)
    # ses3: A resolved; the merged lesion persists; D1 persists; D2 persists; F new
    s1 = _labels((0, 0, 5), (0, 10, 15), (0, 20, 25), (0, 30, 35))
    s2 = _labels((0, 1, 6), (6, 0, 5), (0, 10, 25), (0, 30, 32), (0, 33, 35))
    s3 = _labels((0, 12, 22), (0, 30, 32), (0, 33, 35), (6, 36, 40))
    res = track_lesions(
        [SessionLesions("01", s1, _table({}, {}, {}, {})),
         SessionLesions("02", s2, _table({}, {}, {}, {}, {}), alignment=_ok()),
         SessionLesions("03", s3, _table({}, {}, {}, {}), alignment=_ok())],
        sub="sci01",
    )
    assert res.tracks.schema.equals(TRACKS_SCHEMA)
    assert res.changes.schema.equals(CHANGES_SCHEMA)
    assert _events(res.tracks) == [
        ("01", 1, 1, "baseline", []), ("01", 2, 2, "baseline", []), ("01", 3, 3, "baseline", []),
        ("01", 4, 4, "baseline", []),
        ("02", 1, 1, "persisting", []),  # A keeps track 1
        ("02", 2, 5, "new", []),  # E
        ("02", 3, 6, "merged", [2, 3]),  # B + C
        ("02", 4, 7, "split", [4]),  # D -> D1
        ("02", 5, 8, "split", [4]),  # D -> D2
        ("03", 1, 6, "persisting", []),
        ("03", 2, 7, "persisting", []),
        ("03", 3, 8, "persisting", []),
        ("03", 4, 9, "new", []),
    ]
    ch = res.changes.to_pandas()
    got = list(zip(ch.ses_to, ch.event, ch.track_id.astype("Int64"), ch.from_track_ids.map(list), ch.to_track_ids.map(list),
                   strict=True))
    assert got == [
        ("02", "persisting", 1, [1], [1]), ("02", "new", 5, [], [5]), ("02", "merged", 6, [2, 3], [6]),
        ("02", "split", 4, [4], [7, 8]),
        ("03", "persisting", 6, [6], [6]), ("03", "persisting", 7, [7], [7]), ("03", "persisting", 8, [8], [8]),
        ("03", "new", 9, [], [9]), ("03", "resolved", 1, [1], []), ("03", "resolved", 5, [5], []),
    ]


def test_n_to_m_is_a_complex_event():
    s1 = _labels((0, 0, 10), (0, 12, 20))
    s2 = np.zeros(SHAPE, dtype=np.int32)  # two lesions, each touching both baseline lesions
    s2[0:2, 5:9, 5:15] = 1
    s2[2:4, 5:9, 5:15] = 2
    res = track_lesions([SessionLesions("01", s1, _table({}, {})),
                         SessionLesions("02", s2, _table({}, {}), alignment=_ok())], sub="x")
    assert _events(res.tracks)[2:] == [("02", 1, 3, "complex", [1, 2]), ("02", 2, 4, "complex", [1, 2])]
    row = res.changes.to_pylist()[0]
    assert (row["event"], row["track_id"], row["from_track_ids"], row["to_track_ids"]) == ("complex", None, [1, 2], [3, 4])


def test_change_values_and_rates():
    # one persisting lesion, 730.5 days = 2 years apart; a merge with hand-set measures
    s1 = _labels((0, 0, 5), (0, 10, 15), (0, 20, 25))
    s2 = _labels((0, 0, 6), (0, 10, 25))
    t1 = _table(
        {"volume_mm3": 100.0, "length_mm": 5.0, "width_mm": 4.0, "max_axial_damage_ratio": 0.2,
         "dorsal_bridge_width_mm": 1.0, "ventral_bridge_width_mm": 2.0, "total_bridge_width_mm": 3.0},
        {"volume_mm3": 50.0, "length_mm": 5.0, "width_mm": 3.0, "max_axial_damage_ratio": 0.1,
         "dorsal_bridge_width_mm": 1.5, "ventral_bridge_width_mm": None, "total_bridge_width_mm": 2.5},
        {"volume_mm3": 30.0, "length_mm": 4.0, "width_mm": 5.0, "max_axial_damage_ratio": 0.3,
         "dorsal_bridge_width_mm": 0.5, "ventral_bridge_width_mm": 1.0, "total_bridge_width_mm": 4.0},
    )
    t2 = _table(
        {"volume_mm3": 130.0, "length_mm": 6.0, "width_mm": 4.5, "max_axial_damage_ratio": 0.25,
         "dorsal_bridge_width_mm": 0.8, "ventral_bridge_width_mm": 1.6, "total_bridge_width_mm": 2.4},
        {"volume_mm3": 90.0, "length_mm": 15.0, "width_mm": 5.0, "max_axial_damage_ratio": 0.4,
         "dorsal_bridge_width_mm": 0.3, "ventral_bridge_width_mm": 0.7, "total_bridge_width_mm": 1.0},
    )
    res = track_lesions([SessionLesions("01", s1, t1, time=10.0),
                         SessionLesions("02", s2, t2, time=740.5, alignment=_ok())], sub="x")
    rows = res.changes.to_pylist()
    persist, merged = rows
    assert persist["days"] == 730.5
    assert persist["volume_mm3_from"] == 100.0
    assert persist["volume_mm3_to"] == 130.0
    assert persist["volume_mm3_change"] == pytest.approx(30.0)
    assert persist["volume_mm3_change_per_year"] == pytest.approx(15.0)
    assert persist["total_bridge_width_mm_change"] == pytest.approx(-0.6)
    assert persist["total_bridge_width_mm_change_per_year"] == pytest.approx(-0.3)
    assert persist["max_axial_damage_ratio_change"] == pytest.approx(0.05)
    # merged: volumes summed (50 + 30), lengths/widths/ratio the maximum, bridges the minimum
    assert merged["event"] == "merged"
    assert merged["volume_mm3_from"] == 80.0
    assert merged["volume_mm3_change"] == pytest.approx(10.0)
    assert merged["length_mm_from"] == 5.0
    assert merged["width_mm_from"] == 5.0
    assert merged["max_axial_damage_ratio_from"] == 0.3
    assert merged["dorsal_bridge_width_mm_from"] == 0.5
    assert merged["total_bridge_width_mm_from"] == 2.5
    assert merged["ventral_bridge_width_mm_from"] is None  # one lesion has no ventral bridge
    assert merged["ventral_bridge_width_mm_change"] is None
    tracks = res.tracks.to_pandas()
    assert tracks.days_since_injury.tolist() == [10.0, 10.0, 10.0, 740.5, 740.5]
    assert tracks.days_from_baseline.tolist() == [0.0, 0.0, 0.0, 730.5, 730.5]
    assert tracks.loc[3, "volume_mm3"] == 130.0


def test_new_and_resolved_ends_and_dates():
    s1 = _labels((0, 0, 5))
    s2 = _labels((6, 20, 25))
    t1 = _table({"volume_mm3": 40.0})
    t2 = _table({"volume_mm3": 25.0, "total_bridge_width_mm": 2.0})
    res = track_lesions([SessionLesions("01", s1, t1, time=dt.date(2020, 1, 1)),
                         SessionLesions("02", s2, t2, time="2020-07-01", alignment=_ok())], sub="x")
    new, resolved = res.changes.to_pylist()
    assert new["event"] == "new"
    assert new["days"] == 182.0  # 2020 is a leap year
    assert (new["volume_mm3_from"], new["volume_mm3_to"], new["length_mm_from"]) == (0.0, 25.0, 0.0)
    assert new["total_bridge_width_mm_from"] is None
    assert new["volume_mm3_change_per_year"] == pytest.approx(25.0 / (182 / 365.25))
    assert resolved["event"] == "resolved"
    assert (resolved["volume_mm3_to"], resolved["volume_mm3_change"]) == (0.0, -40.0)
    assert res.tracks.column("days_since_injury").to_pylist() == [None, None]
    assert res.tracks.column("days_from_baseline").to_pylist() == [0.0, 182.0]


def test_one_session_and_no_time():
    s1 = _labels((0, 0, 5), (6, 10, 12))
    res = track_lesions([SessionLesions("01", s1, pa.Table.from_pandas(_table({}, {})))], sub="x")
    assert res.tracks.column("event").to_pylist() == ["baseline", "baseline"]
    assert res.tracks.column("track_id").to_pylist() == [1, 2]
    assert res.changes.num_rows == 0
    assert res.changes.schema.equals(CHANGES_SCHEMA)


def test_session_without_lesion():
    s1 = _labels((0, 0, 5))
    empty = np.zeros(SHAPE, dtype=np.int32)
    res = track_lesions([SessionLesions("01", s1, _table({"volume_mm3": 12.0}), time=0),
                         SessionLesions("02", empty, _table(), time=100, alignment=_ok()),
                         SessionLesions("03", s1, _table({}), time=200, alignment=_ok())], sub="x")
    assert _events(res.tracks) == [("01", 1, 1, "baseline", []), ("03", 1, 2, "new", [])]
    ch = res.changes.to_pylist()
    assert [(r["ses_from"], r["ses_to"], r["event"], r["track_id"]) for r in ch] == [
        ("01", "02", "resolved", 1), ("02", "03", "new", 2)]
    assert ch[0]["volume_mm3_change_per_year"] == pytest.approx(-12.0 / (100 / 365.25))
    # no lesion at all
    res = track_lesions([SessionLesions("01", empty, _table())], sub="x")
    assert res.tracks.num_rows == 0
    assert res.changes.num_rows == 0


def test_unaligned_follow_up_is_not_matched():
    s1 = _labels((0, 0, 5))
    failed = Alignment(np.eye(4), (0.0,) * 3, (0.0,) * 3, 0.2, False, "cord Dice 0.2", -0.1, 5, 0.1)  # type: ignore[arg-type]
    wrong_grid = np.zeros((3, 3, 3), dtype=np.int32)  # not on the baseline grid: never read
    wrong_grid[1, 1, 1] = 1
    res = track_lesions([SessionLesions("01", s1, _table({}), time=0),
                         SessionLesions("02", wrong_grid, _table({}), time=50, alignment=failed),
                         SessionLesions("03", s1, _table({}), time=100, alignment=_ok())], sub="x")
    assert _events(res.tracks) == [("01", 1, 1, "baseline", []), ("02", 1, None, "unaligned", []),
                                   ("03", 1, 1, "persisting", [])]
    (row,) = res.changes.to_pylist()  # ses 02 is skipped: 01 -> 03
    assert (row["ses_from"], row["ses_to"], row["days"], row["event"]) == ("01", "03", 100.0, "persisting")


def test_min_overlap_and_dilation():
    s1 = _labels((0, 0, 5))
    s2 = _labels((0, 6, 10))  # slices 0-4 and 6-9: one empty slice between them
    base = SessionLesions("01", s1, _table({}))
    follow = SessionLesions("02", s2, _table({}), alignment=_ok())
    assert track_lesions([base, follow], sub="x").tracks.column("event").to_pylist() == ["baseline", "new"]
    for d, event in ((1, "new"), (2, "persisting")):
        linked = track_lesions([base, follow], sub="x", dilation_voxels=d)
        assert linked.tracks.column("event").to_pylist() == ["baseline", event]
    s3 = _labels((0, 4, 10))  # shares one slice: 4 x 4 = 16 voxels
    follow = SessionLesions("02", s3, _table({}), alignment=_ok())
    assert track_lesions([base, follow], sub="x", min_overlap_voxels=16).tracks.column("event").to_pylist()[1] == "persisting"
    assert track_lesions([base, follow], sub="x", min_overlap_voxels=17).tracks.column("event").to_pylist()[1] == "new"


@pytest.mark.parametrize(
    ("sessions", "kw", "match"),
    [
        ([], {}, "has no session"),
        ([SessionLesions("01", _labels((0, 0, 5)), _table({}))], {"min_overlap_voxels": 0}, "min_overlap_voxels=0"),
        ([SessionLesions("01", _labels((0, 0, 5)), _table())], {}, r"lesion ids \[1\] that the lesions table lacks"),
        ([SessionLesions("01", _labels(), _table()), SessionLesions("02", np.zeros((3, 3, 3)), _table(), alignment=_ok())],
         {}, r"label map has shape \(3, 3, 3\), the baseline \(12, 14, 40\)"),
        ([SessionLesions("01", _labels(), pd.DataFrame({"lesion_id": []}))], {}, "lacks columns"),
        ([SessionLesions("01", _labels(), _table(), time=5), SessionLesions("02", _labels(), _table(), time="2020-01-01",
                                                                             alignment=_ok())], {}, "mixes numbers and dates"),
        ([SessionLesions("01", _labels(), _table(), time=50), SessionLesions("02", _labels(), _table(), time=20,
                                                                              alignment=_ok())], {}, "chronological order"),
        ([SessionLesions("01", _labels(), _table(), time="not a date")], {}, "has time 'not a date'"),
        ([SessionLesions("01", _labels(), _table(), alignment=Alignment(np.eye(4), (0.0,) * 3, (0.0,) * 3, 0.0, False,  # type: ignore[arg-type]
                                                                        "x", 0.0, 0, 0.0))], {}, "baseline session '01' has a failed alignment"),
    ],
)
def test_invalid_inputs_raise(sessions, kw, match):
    with pytest.raises(LongitudinalError, match=match):
        track_lesions(sessions, sub="x", **kw)
