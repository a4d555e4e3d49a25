"""Manual masks in derivatives/labels."""

from __future__ import annotations

import os

import pytest

from cohort_sciseg.discover import find_scans
from cohort_sciseg.discover.masks import mask_image_stem
from cohort_sciseg.errors import DiscoveryError


def test_default_suffixes(bids) -> None:
    ds = bids()
    a = ds.image("01", entities=[("acq", "sag")])
    b = ds.image("02")
    c = ds.image("03")
    ma = ds.mask(a, "seg-manual")
    mb = ds.mask(b, "label-SC_seg")
    ml = ds.mask(b, "lesion-manual")
    by_sub = {s.sub: s for s in find_scans(ds.root).scans}
    assert by_sub["01"].cord_mask_path == str(ma)
    assert by_sub["01"].lesion_mask_path is None
    assert by_sub["02"].cord_mask_path == str(mb)
    assert by_sub["02"].lesion_mask_path == str(ml)
    assert by_sub["02"].has_manual_masks
    assert by_sub["03"].cord_mask_path is None
    assert not by_sub["03"].has_manual_masks
    assert c.name == "sub-03_T2w.nii.gz"


def test_first_matching_suffix_wins(bids) -> None:
    ds = bids()
    img = ds.image("01")
    second = ds.mask(img, "label-SC_seg")
    first = ds.mask(img, "seg-manual")
    (scan,) = find_scans(ds.root).scans
    assert scan.cord_mask_path == str(first)
    (scan,) = find_scans(ds.root, cord_suffixes=("label-SC_seg", "seg-manual")).scans
    assert scan.cord_mask_path == str(second)


def test_custom_suffixes_and_sessions_and_nii(bids) -> None:
    ds = bids()
    img = ds.image("01", ses="2", ext=".nii")
    cord = ds.mask(img, "seg-scisegv2", ext=".nii")
    lesion = ds.mask(img, "lesion-scisegv2")
    (scan,) = find_scans(
        ds.root, cord_suffixes="seg-scisegv2", lesion_suffixes=["lesion-scisegv2"]
    ).scans
    assert scan.cord_mask_path == str(cord)
    assert scan.lesion_mask_path == str(lesion)
    (scan,) = find_scans(ds.root).scans  # default suffixes do not match these files
    assert scan.cord_mask_path is None
    assert scan.lesion_mask_path is None


def test_mask_without_image_is_a_problem_naming_the_expected_image(bids) -> None:
    ds = bids()
    img = ds.image("01")
    ds.mask(img, "seg-manual")
    orphan = ds.mask(ds.root / "sub-01" / "anat" / "sub-01_acq-ax_T2w.nii.gz", "seg-manual")
    disc = find_scans(ds.root)
    assert len(disc.scans) == 1
    (problem,) = disc.problems
    assert problem.path == str(orphan)
    expected = os.path.join(str(ds.root), "sub-01", "anat", "sub-01_acq-ax_T2w.nii.gz")
    assert f"expected the image {expected!r}" in problem.message
    assert "has no matching image" in problem.message
    with pytest.raises(DiscoveryError, match=r"seg-manual.*has no matching image"):
        find_scans(ds.root, on_problem="raise")


def test_mask_in_the_wrong_folder_is_an_orphan(bids, nifti) -> None:
    ds = bids()
    ds.image("01", ses="1")
    wrong = ds.root / "derivatives" / "labels" / "sub-01" / "anat"
    nifti(wrong / "sub-01_ses-1_T2w_seg-manual.nii.gz")
    disc = find_scans(ds.root)
    assert disc.scans[0].cord_mask_path is None
    assert "sub-01/anat/sub-01_ses-1_T2w.nii.gz" in disc.problems[0].message


def test_masks_of_filtered_scans_are_not_orphans(bids) -> None:
    ds = bids()
    a = ds.image("01", ses="1")
    b = ds.image("02", ses="2")
    ds.mask(a, "seg-manual")
    ds.mask(b, "seg-manual")
    disc = find_scans(ds.root, participant_labels=["01"])
    assert disc.problems == ()
    disc = find_scans(ds.root, sessions=["2"])
    assert disc.problems == ()
    assert disc.scans[0].cord_mask_path is not None


def test_other_files_in_labels_are_ignored(bids, nifti) -> None:
    ds = bids()
    img = ds.image("01")
    ds.mask(img, "seg-deepsegsc")  # unknown suffix
    labels = ds.root / "derivatives" / "labels"
    (labels / "dataset_description.json").write_text("{}", encoding="utf-8")
    (labels / "sub-01" / "anat" / "sub-01_T2w_seg-manual.json").write_text("{}", encoding="utf-8")
    nifti(labels / "sub-01" / "anat" / "sub-01_T1w_seg-manual.nii.gz")  # a T1w mask
    disc = find_scans(ds.root)
    assert disc.problems == ()
    assert disc.scans[0].cord_mask_path is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sub-01_T2w_seg-manual.nii.gz", ("sub-01_T2w", "seg-manual")),
        ("sub-01_acq-sag_T2w_seg-manual.nii", ("sub-01_acq-sag_T2w", "seg-manual")),
        ("sub-01_T2w_label-SC_seg.nii.gz", ("sub-01_T2w", "label-SC_seg")),
        ("sub-01_T2w_lesion-manual.nii.gz", ("sub-01_T2w", "lesion-manual")),
        ("sub-01_T1w_seg-manual.nii.gz", None),
        ("sub-01_T2w_seg-manual.json", None),
        ("_T2w_seg-manual.nii.gz", None),
        ("T2w_seg-manual.nii.gz", None),
    ],
)
def test_mask_image_stem(name: str, expected: tuple[str, str] | None) -> None:
    assert mask_image_stem(name, ("seg-manual", "label-SC_seg", "lesion-manual"), "T2w") == expected


def test_short_suffix_does_not_swallow_a_longer_one() -> None:
    # "seg" also ends "..._label-SC_seg", but then the image stem would not end in _T2w.
    assert mask_image_stem("sub-01_T2w_label-SC_seg.nii.gz", ("seg", "label-SC_seg"), "T2w") == (
        "sub-01_T2w",
        "label-SC_seg",
    )


def test_mask_symlink_leaving_the_dataset(bids, nifti, tmp_path) -> None:
    ds = bids()
    img = ds.image("01")
    inside_mask = ds.mask(img, "lesion-manual")
    outside = nifti(tmp_path / "elsewhere" / "m.nii.gz")
    link = inside_mask.parent / "sub-01_T2w_seg-manual.nii.gz"
    link.symlink_to(outside)
    (inside_mask.parent / "notes_elsewhere.txt").symlink_to(outside)  # not a mask name: ignored
    disc = find_scans(ds.root)
    (scan,) = disc.scans
    assert scan.cord_mask_path is None
    assert scan.lesion_mask_path == str(inside_mask)
    (problem,) = disc.problems
    assert problem.path == str(link)
    assert "symlink points outside the dataset" in problem.message
