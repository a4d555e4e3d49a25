"""JSON sidecars: BIDS inheritance order, broken files, scanner fields."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cohort_sciseg.discover import find_scans, merge_sidecars, parse_field_strength
from cohort_sciseg.discover.sidecars import (
    LEVEL_DATASET,
    LEVEL_DATATYPE,
    LEVEL_SESSION,
    SidecarCache,
    applies,
    sidecar_file,
)
from cohort_sciseg.errors import DiscoveryError


def write_json(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def _levels(ds_root: Path) -> dict[str, Path]:
    """Sidecars at every level for sub-01/ses-1/anat/sub-01_ses-1_acq-sag_T2w."""
    anat = ds_root / "sub-01" / "ses-1" / "anat"
    return {
        "dataset": write_json(
            ds_root / "T2w.json",
            {
                "A": "dataset",
                "B": "dataset",
                "C": "dataset",
                "D": "dataset",
                "E": "dataset",
                "F": "dataset",
            },
        ),
        "dataset_acq": write_json(
            ds_root / "acq-sag_T2w.json",
            {
                "B": "dataset_acq",
                "C": "dataset_acq",
                "D": "dataset_acq",
                "E": "dataset_acq",
                "F": "dataset_acq",
            },
        ),
        "subject": write_json(
            ds_root / "sub-01" / "sub-01_T2w.json",
            {"C": "subject", "D": "subject", "E": "subject", "F": "subject"},
        ),
        "session": write_json(
            ds_root / "sub-01" / "ses-1" / "sub-01_ses-1_T2w.json",
            {"D": "session", "E": "session", "F": "session"},
        ),
        "anat_acq": write_json(
            anat / "sub-01_acq-sag_T2w.json", {"E": "anat_acq", "F": "anat_acq"}
        ),
        "file": write_json(anat / "sub-01_ses-1_acq-sag_T2w.json", {"F": "file"}),
        # Do not apply: other acq, other subject, other suffix.
        "other_acq": write_json(ds_root / "acq-ax_T2w.json", {"A": "WRONG"}),
        "other_sub": write_json(ds_root / "sub-01" / "sub-02_T2w.json", {"A": "WRONG"}),
        "other_suffix": write_json(ds_root / "T1w.json", {"A": "WRONG"}),
    }


def test_inheritance_order_closest_wins(bids) -> None:
    ds = bids("siteA")
    ds.image("01", ses="1", entities=[("acq", "sag")])
    files = _levels(ds.root)
    (scan,) = find_scans(ds.root).scans
    got = {k: json.loads(v) for k, v in scan.sidecar}
    assert got == {
        "A": "dataset",
        "B": "dataset_acq",
        "C": "subject",
        "D": "session",
        "E": "anat_acq",
        "F": "file",
    }
    assert scan.sidecar_path == str(files["file"])


def test_without_file_level_the_most_specific_applicable_is_the_path(bids) -> None:
    ds = bids()
    ds.image("01", entities=[("acq", "ax")])
    write_json(ds.root / "T2w.json", {"Manufacturer": "Siemens"})
    acq = write_json(ds.root / "acq-ax_T2w.json", {"EchoTime": 0.1})
    (scan,) = find_scans(ds.root).scans
    assert scan.sidecar_path == str(acq)
    assert scan.manufacturer == "Siemens"


def test_scanner_fields_and_json_encoded_values(bids) -> None:
    ds = bids()
    ds.image("01")
    write_json(
        ds.root / "T2w.json",
        {
            "Manufacturer": "Philips",
            "MagneticFieldStrength": 3,
            "EchoTime": 0.12,
            "Flags": [1, "x"],
            "Nested": {"b": 1, "a": None},
        },
    )
    (scan,) = find_scans(ds.root).scans
    assert scan.manufacturer == "Philips"
    assert scan.magnetic_field_strength_t == 3.0
    assert isinstance(scan.magnetic_field_strength_t, float)
    side = scan.sidecar_dict
    assert side["EchoTime"] == "0.12"
    assert side["Manufacturer"] == '"Philips"'
    assert json.loads(side["Flags"]) == [1, "x"]
    assert json.loads(side["Nested"]) == {"a": None, "b": 1}
    assert [k for k, _ in scan.sidecar] == sorted(side)


def test_no_sidecar(bids) -> None:
    ds = bids()
    ds.image("01")
    (scan,) = find_scans(ds.root).scans
    assert scan.sidecar == ()
    assert scan.sidecar_path is None
    assert scan.manufacturer is None
    assert scan.magnetic_field_strength_t is None


def test_broken_sidecar_is_a_problem_and_the_scan_is_kept(bids) -> None:
    ds = bids()
    ds.image("01")
    ds.image("02")
    write_json(ds.root / "T2w.json", {"Manufacturer": "GE"})
    broken = ds.root / "sub-01" / "anat" / "sub-01_T2w.json"
    broken.write_text('{"EchoTime": 0.1,,}', encoding="utf-8")
    disc = find_scans(ds.root)
    assert [s.sub for s in disc.scans] == ["01", "02"]
    s1 = disc.scans[0]
    assert s1.manufacturer == "GE"  # the dataset-level sidecar still applies
    assert "EchoTime" not in s1.sidecar_dict
    assert s1.sidecar_path == str(ds.root / "T2w.json")
    (problem,) = disc.problems
    assert problem.stage == "discover"
    assert problem.error_type == "DiscoveryError"
    assert problem.path == str(broken)
    assert "not valid JSON (line 1" in problem.message
    assert "Fix:" in problem.message
    assert "json.tool" in problem.message


def test_broken_dataset_level_sidecar_is_reported_once(bids) -> None:
    ds = bids()
    for sub in ("01", "02", "03"):
        ds.image(sub)
    (ds.root / "T2w.json").write_text("[1, 2]", encoding="utf-8")
    disc = find_scans(ds.root)
    assert len(disc.scans) == 3
    assert len(disc.problems) == 1
    assert "JSON list, not an object" in disc.problems[0].message


def test_sidecar_not_utf8(bids) -> None:
    ds = bids()
    ds.image("01")
    (ds.root / "T2w.json").write_bytes(b'{"Manufacturer": "Sie\xffmens"}')
    disc = find_scans(ds.root)
    assert len(disc.scans) == 1
    assert "not UTF-8" in disc.problems[0].message


def test_broken_sidecar_raises_with_raise_policy(bids) -> None:
    ds = bids()
    ds.image("01")
    (ds.root / "T2w.json").write_text("{", encoding="utf-8")
    with pytest.raises(DiscoveryError, match=r"T2w\.json'.*not valid JSON"):
        find_scans(ds.root, on_problem="raise")


def test_bad_field_strength_is_reported_on_the_file_that_sets_it(bids) -> None:
    ds = bids()
    ds.image("01")
    write_json(ds.root / "T2w.json", {"MagneticFieldStrength": 3})
    bad = write_json(ds.root / "sub-01" / "sub-01_T2w.json", {"MagneticFieldStrength": "three"})
    disc = find_scans(ds.root)
    (scan,) = disc.scans
    assert scan.magnetic_field_strength_t is None
    (problem,) = disc.problems
    assert problem.path == str(bad)
    assert "MagneticFieldStrength is 'three'" in problem.message
    assert "positive number in tesla" in problem.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3.0),
        (1.5, 1.5),
        ("3", 3.0),
        ("1.5T", 1.5),
        (" 7 T ", 7.0),
        ("three", None),
        (True, None),
        (0, None),
        (-3, None),
        (math.nan, None),
        (None, None),
        ([3], None),
        ("", None),
    ],
)
def test_parse_field_strength(value: object, expected: float | None) -> None:
    assert parse_field_strength(value) == expected


def test_sidecar_file_and_applies(tmp_path: Path) -> None:
    assert sidecar_file("T2w.json", "p", LEVEL_DATASET, "T2w") is not None
    assert sidecar_file("T1w.json", "p", LEVEL_DATASET, "T2w") is None
    assert sidecar_file("dataset_description.json", "p", LEVEL_DATASET, "T2w") is None
    assert sidecar_file("participants.json", "p", LEVEL_DATASET, "T2w") is None
    assert sidecar_file("sub-01_T2w.nii.gz", "p", LEVEL_DATASET, "T2w") is None
    sf = sidecar_file("acq-sag_T2w.json", "p", LEVEL_DATASET, "T2w")
    assert sf is not None
    assert applies(sf, {"sub": "01", "acq": "sag"})
    assert not applies(sf, {"sub": "01", "acq": "ax"})
    assert not applies(sf, {"sub": "01"})


def test_merge_within_one_level_more_entities_win(tmp_path: Path) -> None:
    a = write_json(tmp_path / "sub-01_T2w.json", {"X": "sub"})
    b = write_json(tmp_path / "sub-01_acq-sag_T2w.json", {"X": "sub+acq"})
    c = write_json(tmp_path / "sub-01_acq-sag_run-1_T2w.json", {"Y": "run"})
    files = [
        sidecar_file(p.name, str(p), LEVEL_DATATYPE, "T2w")
        for p in (c, b, a)  # given out of order
    ]
    merged = merge_sidecars([f for f in files if f], {"sub": "01", "acq": "sag"}, SidecarCache())
    assert merged.values == {"X": "sub+acq"}
    assert merged.path == str(b)
    assert merged.sources == {"X": str(b)}


def test_levels_are_ordered_before_entity_counts(tmp_path: Path) -> None:
    deep = write_json(tmp_path / "d" / "T2w.json", {"X": "datatype, no entities"})
    shallow = write_json(tmp_path / "sub-01_acq-sag_T2w.json", {"X": "dataset, two entities"})
    files = [
        sidecar_file(deep.name, str(deep), LEVEL_DATATYPE, "T2w"),
        sidecar_file(shallow.name, str(shallow), LEVEL_SESSION, "T2w"),
    ]
    merged = merge_sidecars([f for f in files if f], {"sub": "01", "acq": "sag"}, SidecarCache())
    assert merged.values == {"X": "datatype, no entities"}
    assert merged.path == str(deep)


def test_cache_reads_each_file_once(tmp_path: Path) -> None:
    p = write_json(tmp_path / "T2w.json", {"X": 1})
    cache = SidecarCache()
    assert cache.load(str(p)) == {"X": 1}
    p.write_text("{broken", encoding="utf-8")
    assert cache.load(str(p)) == {"X": 1}
    missing = cache.load(str(tmp_path / "missing.json"))
    assert missing is None
    assert "cannot read the sidecar" in str(cache.problems[0])
