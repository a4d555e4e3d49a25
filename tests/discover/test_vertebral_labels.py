"""Vertebral labellings and disc labels in derivatives/labels (suffixes may be fnmatch patterns)."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cohort_sciseg.cli import main
from cohort_sciseg.discover import (
    DEFAULT_CORD_SUFFIXES,
    DEFAULT_DISC_SUFFIXES,
    DEFAULT_LESION_SUFFIXES,
    DEFAULT_VERTEBRAL_SUFFIXES,
    find_scans,
    write_scans,
)
from cohort_sciseg.discover.masks import is_pattern, mask_image_stem
from cohort_sciseg.errors import DiscoveryError
from cohort_sciseg.records import SCANS_SCHEMA, scans_from_table, scans_to_table

ALL_DEFAULTS = (
    DEFAULT_CORD_SUFFIXES
    + DEFAULT_LESION_SUFFIXES
    + DEFAULT_VERTEBRAL_SUFFIXES
    + DEFAULT_DISC_SUFFIXES
)


def test_defaults() -> None:
    assert DEFAULT_VERTEBRAL_SUFFIXES == ("*seg*_labeled",)
    assert DEFAULT_DISC_SUFFIXES == ("label-disc*", "labels-disc*", "*_labeled_disc*")
    assert not any(is_pattern(s) for s in DEFAULT_CORD_SUFFIXES + DEFAULT_LESION_SUFFIXES)
    assert all(is_pattern(s) for s in DEFAULT_VERTEBRAL_SUFFIXES + DEFAULT_DISC_SUFFIXES)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # cord and lesion masks stay what they are
        ("sub-01_T2w_seg-manual.nii.gz", ("sub-01_T2w", "seg-manual")),
        ("sub-01_T2w_label-SC_seg.nii.gz", ("sub-01_T2w", "label-SC_seg")),
        ("sub-01_T2w_lesion-manual.nii", ("sub-01_T2w", "lesion-manual")),
        # labelled cords: never swallowed by a cord suffix
        ("sub-01_T2w_seg_labeled.nii.gz", ("sub-01_T2w", "*seg*_labeled")),
        ("sub-01_T2w_seg-manual_labeled.nii.gz", ("sub-01_T2w", "*seg*_labeled")),
        ("sub-01_acq-sag_T2w_label-SC_seg_labeled.nii", ("sub-01_acq-sag_T2w", "*seg*_labeled")),
        # disc labels: never a labelled cord
        ("sub-01_T2w_label-disc.nii.gz", ("sub-01_T2w", "label-disc*")),
        ("sub-01_T2w_label-discs_dlabel.nii.gz", ("sub-01_T2w", "label-disc*")),
        ("sub-01_ses-1_T2w_labels-disc-manual.nii.gz", ("sub-01_ses-1_T2w", "labels-disc*")),
        ("sub-01_T2w_seg_labeled_discs.nii.gz", ("sub-01_T2w", "*_labeled_disc*")),
        ("sub-01_T2w_seg-manual_labeled_disc.nii", ("sub-01_T2w", "*_labeled_disc*")),
        # not ours
        ("sub-01_T1w_seg_labeled.nii.gz", None),
        ("sub-01_T2w_seg_labeled.json", None),
        ("sub-01_T2w_labeled.nii.gz", None),  # no "seg": not a labelled cord
        ("sub-01_T2w_Label-disc.nii.gz", None),  # patterns are case-sensitive
        ("_T2w_label-disc.nii.gz", None),
        ("T2w_label-disc.nii.gz", None),
        ("sub-01_T2w_.nii.gz", None),
    ],
)
def test_default_suffixes_do_not_overlap(name: str, expected: tuple[str, str] | None) -> None:
    assert mask_image_stem(name, ALL_DEFAULTS, "T2w") == expected
    if expected is not None:
        # the same kind whatever the order of the lists: no default fits two kinds
        fitting = [s for s in ALL_DEFAULTS if mask_image_stem(name, (s,), "T2w") is not None]
        assert fitting == [expected[1]]


def test_pattern_matches_the_whole_tail_after_the_image_suffix() -> None:
    assert mask_image_stem("sub-01_T2w_label-disc.nii.gz", ("disc*",), "T2w") is None
    assert mask_image_stem("sub-01_T2w_label-disc.nii.gz", ("*disc",), "T2w") == (
        "sub-01_T2w",
        "*disc",
    )
    assert mask_image_stem("sub-01_T2w_label-disc3.nii", ("label-disc?",), "T2w") == (
        "sub-01_T2w",
        "label-disc?",
    )
    assert mask_image_stem("sub-01_T2w_label-discX.nii", ("label-disc[0-9]",), "T2w") is None


def test_exact_suffix_wins_over_an_earlier_pattern() -> None:
    assert mask_image_stem("sub-01_T2w_seg-manual.nii.gz", ("*seg*", "seg-manual"), "T2w") == (
        "sub-01_T2w",
        "seg-manual",
    )


def _files(bids, *, ses: str | None = None):
    ds = bids()
    img = ds.image("01", ses=ses)
    return ds, img


def test_sct_outputs_found_beside_manual_masks(bids) -> None:
    ds = bids()
    a = ds.image("01", entities=[("acq", "sag")])
    b = ds.image("02", ses="1")
    c = ds.image("03")
    cord = ds.mask(a, "seg-manual")
    lesion = ds.mask(a, "lesion-manual")
    vert_a = ds.mask(a, "seg-manual_labeled")
    disc_a = ds.mask(a, "label-discs_dlabel")
    vert_b = ds.mask(b, "seg_labeled", ext=".nii")
    disc_b = ds.mask(b, "seg_labeled_discs")
    disc = find_scans(ds.root)
    assert disc.problems == ()
    by_sub = {s.sub: s for s in disc.scans}
    s01 = by_sub["01"]
    assert (s01.cord_mask_path, s01.lesion_mask_path) == (str(cord), str(lesion))
    assert (s01.vert_labels_path, s01.disc_labels_path) == (str(vert_a), str(disc_a))
    assert by_sub["02"].cord_mask_path is None
    assert (by_sub["02"].vert_labels_path, by_sub["02"].disc_labels_path) == (
        str(vert_b),
        str(disc_b),
    )
    s03 = by_sub["03"]
    assert (s03.vert_labels_path, s03.disc_labels_path) == (None, None)
    assert c.name == "sub-03_T2w.nii.gz"
    assert disc.filters["vertebral_suffixes"] == ["*seg*_labeled"]
    assert disc.filters["disc_suffixes"] == ["label-disc*", "labels-disc*", "*_labeled_disc*"]


def test_first_preference_wins_then_the_smaller_path(bids) -> None:
    ds, img = _files(bids)
    d_manual = ds.mask(img, "labels-disc-manual")
    d_sct = ds.mask(img, "seg_labeled_discs")
    d_b = ds.mask(img, "label-disc-b")
    d_a = ds.mask(img, "label-disc-a")
    (scan,) = find_scans(ds.root).scans
    assert scan.disc_labels_path == str(d_a)  # "label-disc*" first; -a before -b
    (scan,) = find_scans(ds.root, disc_suffixes=("labels-disc*", "label-disc*")).scans
    assert scan.disc_labels_path == str(d_manual)
    (scan,) = find_scans(ds.root, disc_suffixes=["*_labeled_disc*"]).scans
    assert scan.disc_labels_path == str(d_sct)
    (scan,) = find_scans(ds.root, disc_suffixes="label-disc-b").scans  # exact, one string
    assert scan.disc_labels_path == str(d_b)


def test_a_pattern_listed_first_ranks_a_file_it_shares_with_an_exact_suffix(bids) -> None:
    ds, img = _files(bids)
    exact = ds.mask(img, "seg_labeled")
    other = ds.mask(img, "seg-auto_labeled")
    # "seg_labeled" fits both: its rank is that of the pattern, listed first
    (scan,) = find_scans(ds.root, vertebral_suffixes=("*_labeled", "seg_labeled")).scans
    assert scan.vert_labels_path == str(other)  # "seg-auto..." < "seg_..."
    (scan,) = find_scans(ds.root, vertebral_suffixes=("seg_labeled", "*_labeled")).scans
    assert scan.vert_labels_path == str(exact)


def test_custom_suffixes(bids) -> None:
    ds, img = _files(bids, ses="2")
    vert = ds.mask(img, "vertebrae", ext=".nii")
    discs = ds.mask(img, "desc-discs_mask")
    (scan,) = find_scans(ds.root).scans  # the defaults do not fit these names
    assert (scan.vert_labels_path, scan.disc_labels_path) == (None, None)
    (scan,) = find_scans(
        ds.root, vertebral_suffixes="vertebrae", disc_suffixes=["desc-disc?_*"]
    ).scans
    assert (scan.vert_labels_path, scan.disc_labels_path) == (str(vert), str(discs))
    (scan,) = find_scans(ds.root, vertebral_suffixes=(), disc_suffixes=()).scans
    assert (scan.vert_labels_path, scan.disc_labels_path) == (None, None)


def test_patterns_of_two_kinds_fitting_one_file(bids) -> None:
    ds, img = _files(bids)
    cord = ds.mask(img, "seg-manual")
    vert = ds.mask(img, "seg-manual_labeled")
    # a broad cord pattern also fits the labelled cord: which kind it is stays open
    disc = find_scans(ds.root, cord_suffixes=("seg-manual*",))
    (scan,) = disc.scans
    assert (scan.cord_mask_path, scan.vert_labels_path) == (str(cord), None)
    (problem,) = disc.problems
    assert problem.path == str(vert)
    assert (
        "file name fits the cord suffix 'seg-manual*' and vertebral suffix '*seg*_labeled'; "
        "not used" in problem.message
    )
    assert "add its exact suffix 'seg-manual_labeled' to the list of its kind" in problem.message
    # ... until an exact suffix says
    disc = find_scans(
        ds.root, cord_suffixes=("seg-manual*",), vertebral_suffixes=("seg-manual_labeled",)
    )
    assert disc.problems == ()
    assert (disc.scans[0].cord_mask_path, disc.scans[0].vert_labels_path) == (str(cord), str(vert))
    # a broad pattern never takes a file that an exact suffix of another kind fits
    disc = find_scans(ds.root, vertebral_suffixes=("*",))
    assert disc.problems == ()
    assert (disc.scans[0].cord_mask_path, disc.scans[0].vert_labels_path) == (str(cord), str(vert))


def test_labelling_without_image_is_a_problem(bids) -> None:
    ds, img = _files(bids)
    ds.mask(img, "seg_labeled")
    missing = ds.root / "sub-01" / "anat" / "sub-01_acq-ax_T2w.nii.gz"
    orphan_vert = ds.mask(missing, "seg_labeled")
    orphan_disc = ds.mask(missing, "label-disc")
    disc = find_scans(ds.root)
    (scan,) = disc.scans
    assert scan.vert_labels_path is not None
    assert scan.disc_labels_path is None
    by_path = {p.path: p for p in disc.problems}
    assert set(by_path) == {str(orphan_vert), str(orphan_disc)}
    expected = os.path.join(str(ds.root), "sub-01", "anat", "sub-01_acq-ax_T2w.nii.gz")
    vert_msg = by_path[str(orphan_vert)].message
    assert "vertebral labelling ('*seg*_labeled') has no matching image" in vert_msg
    assert f"expected the image {expected!r}" in vert_msg
    assert "rename the vertebral labelling after its image" in vert_msg
    assert (
        "disc labelling ('label-disc*') has no matching image" in by_path[str(orphan_disc)].message
    )
    assert all(p.stage == "discover" for p in disc.problems)
    with pytest.raises(DiscoveryError, match=r"labelling \('.*'\) has no matching image"):
        find_scans(ds.root, on_problem="raise")


def test_labelling_of_a_filtered_scan_is_not_an_orphan(bids) -> None:
    ds = bids()
    a = ds.image("01")
    b = ds.image("02")
    ds.mask(a, "seg_labeled")
    ds.mask(b, "label-disc")
    disc = find_scans(ds.root, participant_labels=["01"])
    assert disc.problems == ()
    assert disc.scans[0].vert_labels_path is not None


def test_broken_symlink_labelling_is_a_problem(bids) -> None:
    ds, img = _files(bids)
    link = ds.mask(img, "label-disc")
    link.unlink()
    link.symlink_to("gone.nii.gz")
    disc = find_scans(ds.root)
    assert disc.scans[0].disc_labels_path is None
    (problem,) = disc.problems
    assert problem.path == str(link)
    assert "disc labelling is a broken symlink" in problem.message


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vertebral_suffixes": ("",)}, r"vertebral_suffixes contains ''"),
        ({"disc_suffixes": ("a/*",)}, r"disc_suffixes contains 'a/\*'"),
        ({"disc_suffixes": (3,)}, r"disc_suffixes contains 3"),
        (
            {"vertebral_suffixes": ("seg-manual",)},
            r"suffixes \['seg-manual'\] are both cord and vertebral suffixes; "
            r"expected disjoint cord_suffixes and vertebral_suffixes",
        ),
        (
            {"lesion_suffixes": ("label-disc*",)},
            r"suffixes \['label-disc\*'\] are both lesion and disc suffixes",
        ),
        (
            {"vertebral_suffixes": ("x*",), "disc_suffixes": ("x*", "y")},
            r"suffixes \['x\*'\] are both vertebral and disc suffixes",
        ),
    ],
)
def test_invalid_suffixes(bids, kwargs: dict, match: str) -> None:
    ds, _ = _files(bids)
    with pytest.raises(ValueError, match=match):
        find_scans(ds.root, **kwargs)


def test_parquet_round_trip(bids, tmp_path: Path) -> None:
    ds = bids()
    a = ds.image("01")
    b = ds.image("02")
    vert = ds.mask(a, "seg_labeled")
    discs = ds.mask(b, "labels-disc-manual")
    disc = find_scans(ds.root)
    out = write_scans(disc, tmp_path / "out" / "scans.parquet")
    table = pq.read_table(out)
    assert table.schema.equals(SCANS_SCHEMA, check_metadata=False)
    for name in ("vert_labels_path", "disc_labels_path"):
        f = SCANS_SCHEMA.field(name)
        assert f.type == pa.string()
        assert f.nullable
    assert table.column("vert_labels_path").to_pylist() == [str(vert), None]
    assert table.column("disc_labels_path").to_pylist() == [None, str(discs)]
    assert tuple(scans_from_table(table)) == disc.scans
    # a scans table written before the two columns existed reads with None
    old = scans_to_table(disc.scans).drop_columns(["vert_labels_path", "disc_labels_path"])
    back = scans_from_table(old)
    assert [(s.vert_labels_path, s.disc_labels_path) for s in back] == [(None, None)] * 2
    assert [s.image_path for s in back] == [s.image_path for s in disc.scans]


def test_cli_vert_and_disc_suffixes(bids, tmp_path: Path, capsys) -> None:
    ds, img = _files(bids)
    vert = ds.mask(img, "vertebrae")
    discs = ds.mask(img, "label-disc")
    out = tmp_path / "t" / "scans.parquet"
    assert main(["discover", str(ds.root), "-o", str(out), "--vert-suffix", "vert*", "x"]) == 0
    (row,) = pq.read_table(out).to_pylist()
    assert (row["vert_labels_path"], row["disc_labels_path"]) == (str(vert), str(discs))
    assert main(["discover", str(ds.root), "-o", str(out), "--disc-suffix", "nothing*"]) == 0
    (row,) = pq.read_table(out).to_pylist()
    assert (row["vert_labels_path"], row["disc_labels_path"]) == (None, None)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["discover", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--vert-suffix SUFFIX [SUFFIX ...]" in text
    assert "(default: '*seg*_labeled')" in text
    assert "(default: 'label-disc*' 'labels-disc*' '*_labeled_disc*')" in text
