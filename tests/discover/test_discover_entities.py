"""BIDS names, percent-encoded scan ids and site labels."""

from __future__ import annotations

import itertools
import urllib.parse

import pytest

from cohort_sciseg.discover import encode_label, parse_name, scan_id, site_label
from cohort_sciseg.discover.entities import acq_plane, split_extension

HOSTILE = [
    "a b",
    "<script>",
    "q'\"x",
    "..",
    ".",
    "%",
    "%41",
    "a/b",
    "été",
    "x\\y",
    "",
    "a-b",
    "A",
    "\t",
]


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("sub-01_T2w", ((("sub", "01"),), "T2w")),
        (
            "sub-01_ses-02_acq-sag_run-3_T2w",
            ((("sub", "01"), ("ses", "02"), ("acq", "sag"), ("run", "3")), "T2w"),
        ),
        ("sub-01_rec-x_ce-gd_T2w", ((("sub", "01"), ("rec", "x"), ("ce", "gd")), "T2w")),
        ("sub-a b_acq-<x>_T2w", ((("sub", "a b"), ("acq", "<x>")), "T2w")),
        ("sub-a-b_T2w", ((("sub", "a-b"),), "T2w")),  # only the first '-' separates the key
        ("T2w", ((), "T2w")),
    ],
)
def test_parse_name(stem: str, expected: tuple) -> None:
    assert parse_name(stem) == expected


@pytest.mark.parametrize(
    "stem",
    [
        "sub-01_bad_T2w",
        "sub-_T2w",
        "-01_T2w",
        "sub-01_sub-02_T2w",
        "sub-01_",
        "sub-01_T2w-x",
        "_T2w",
    ],
)
def test_parse_name_rejects(stem: str) -> None:
    assert parse_name(stem) is None


def test_split_extension() -> None:
    assert split_extension("a_T2w.nii.gz") == ("a_T2w", ".nii.gz")
    assert split_extension("a_T2w.nii") == ("a_T2w", ".nii")
    assert split_extension("a_T2w.json") is None


@pytest.mark.parametrize("label", HOSTILE)
def test_encode_label_is_safe_and_reversible(label: str) -> None:
    enc = encode_label(label)
    assert all(c.isascii() and (c.isalnum() or c == "%") for c in enc)
    # Percent-decoding (an independent implementation) gives the label back.
    assert urllib.parse.unquote(enc, errors="strict") == label


def test_encode_label_is_injective() -> None:
    encoded = [encode_label(x) for x in HOSTILE]
    assert len(set(encoded)) == len(HOSTILE)
    assert encode_label("%41") != encode_label("A")
    assert encode_label("..") == "%2E%2E"
    assert encode_label("abcXYZ019") == "abcXYZ019"


def test_scan_id_is_a_single_safe_path_component() -> None:
    for sub, acq in itertools.product(HOSTILE[:-3], ["sag", "..", "a/b"]):
        sid = scan_id("zurich", (("sub", sub), ("acq", acq)), "T2w")
        assert "/" not in sid
        assert "\\" not in sid
        assert sid not in (".", "..")
        assert sid.startswith("site-zurich_sub-")
        assert sid.endswith("_T2w")
    assert (
        scan_id("zurich", (("sub", "01"), ("acq", "sag")), "T2w")
        == "site-zurich_sub-01_acq-sag_T2w"
    )
    assert scan_id("s", (("sub", "a b"),), "T2w") == "site-s_sub-a%20b_T2w"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("zurich", "zurich"),
        ("site_Zurich-2", "siteZurich2"),
        ("été 3", "t3"),
        ("---", ""),
        ("..", ""),
        # Labels that hive-partition inference would read as a number, boolean or date
        # get the prefix "site"; digits are kept as written.
        ("001", "site001"),
        ("2", "site2"),
        ("0_1", "site01"),
        ("1.5", "site15"),
        ("é1", "site1"),
        ("١٢", ""),  # non-ASCII digits are not BIDS alphanumerics
        ("1e5", "site1e5"),
        ("12E3", "site12E3"),
        ("0x1F", "site0x1F"),
        ("0b101", "site0b101"),
        ("0o17", "site0o17"),
        ("inf", "siteinf"),
        ("Infinity", "siteInfinity"),
        ("NaN", "siteNaN"),
        ("true", "sitetrue"),
        ("False", "siteFalse"),
        ("epoch", "siteepoch"),
        # ... and only those: a digit first is not enough
        ("3T", "3T"),
        ("1e5x", "1e5x"),
        ("0xZZ", "0xZZ"),
        ("e5", "e5"),
        ("truth", "truth"),
        ("site001", "site001"),
    ],
)
def test_site_label(name: str, expected: str) -> None:
    assert site_label(name) == expected
    assert site_label(expected) == expected  # a label is its own label


def test_numeric_site_labels_stay_distinct() -> None:
    raws = ["1", "01", "001", "1e1", "10"]
    labels = [site_label(r) for r in raws]
    assert labels == ["site1", "site01", "site001", "site1e1", "site10"]


@pytest.mark.parametrize(
    ("acq", "plane"),
    [
        ("sag", "sagittal"),
        ("sagCerv", "sagittal"),
        ("ax", "axial"),
        ("axial", "axial"),
        ("tra", "axial"),
        ("cor", "coronal"),
        ("hires", None),
        (None, None),
        ("", None),
    ],
)
def test_acq_plane(acq: str | None, plane: str | None) -> None:
    assert acq_plane(acq) == plane
