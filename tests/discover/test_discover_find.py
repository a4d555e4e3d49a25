"""find_scans: datasets, sites, entities, filters, ids, hostile names, corrupt images."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nibabel as nib
import pytest

import cohort_sciseg.discover.find as find_module
from cohort_sciseg.discover import Discovery, find_scans
from cohort_sciseg.discover._fs import list_dir
from cohort_sciseg.errors import DiscoveryError
from cohort_sciseg.synth.tree import HOSTILE_LABELS, write_skeleton_tree

SHAPE = (7, 8, 9)  # the conftest images: non-cubic so axis mix-ups show

# nibabel names the direction an axis points to; SCT the one it comes from.
_FLIP = str.maketrans("RLAPSI", "LRPAIS")


def sct_orientation(path: str) -> str:
    """Independent SCT orientation code of a file, from nibabel."""
    return "".join(nib.aff2axcodes(nib.load(path).affine)).translate(_FLIP)


# ---------------------------------------------------------------- one dataset


def test_scan_record_fields(bids) -> None:
    ds = bids("zurich_2", name="Zurich SCI")
    img = ds.image(
        "01",
        ses="pre",
        entities=[("acq", "sag"), ("rec", "norm"), ("run", "2")],
        axcodes="PSR",
        zooms=(0.8, 0.9, 3.5),
    )
    disc = find_scans(ds.root)
    assert isinstance(disc, Discovery)
    (s,) = disc.scans
    assert s.scan_id == "site-zurich2_sub-01_ses-pre_acq-sag_rec-norm_run-2_T2w"
    assert s.site == "zurich2"
    assert s.dataset_name == "Zurich SCI"
    assert s.dataset_root == os.path.realpath(ds.root)
    assert s.image_path == str(img)
    assert os.path.isabs(s.image_path)
    assert (s.sub, s.ses, s.acq, s.run) == ("01", "pre", "sag", "2")
    assert s.entities == (
        ("sub", "01"),
        ("ses", "pre"),
        ("acq", "sag"),
        ("rec", "norm"),
        ("run", "2"),
    )
    assert s.suffix == "T2w"
    assert s.shape == SHAPE
    assert s.voxel_size_mm == pytest.approx((0.8, 0.9, 3.5))
    assert s.orientation == sct_orientation(s.image_path) == "AIL"
    assert s.acquisition_plane == "sagittal"
    assert disc.problems == ()
    assert [d.site for d in disc.datasets] == ["zurich2"]


@pytest.mark.parametrize(
    ("axcodes", "zooms", "plane"),
    [
        ("PSR", (0.8, 0.8, 3.0), "sagittal"),  # thickest axis points Right: sagittal slices
        ("LAS", (0.5, 0.5, 4.0), "axial"),
        ("RSA", (0.9, 0.9, 3.0), "coronal"),
        ("LAS", (1.0, 1.0, 1.2), "isotropic"),
        ("SAR", (3.0, 0.7, 0.7), "axial"),  # thick axis first
    ],
)
def test_plane_from_geometry_when_acq_says_nothing(
    bids, axcodes: str, zooms: tuple, plane: str
) -> None:
    ds = bids()
    ds.image("01", entities=[("acq", "hires")], axcodes=axcodes, zooms=zooms)
    (s,) = find_scans(ds.root).scans
    assert s.acquisition_plane == plane
    assert s.orientation == sct_orientation(s.image_path)


def test_plane_from_acq_label_wins_over_geometry(bids) -> None:
    ds = bids()
    ds.image("01", entities=[("acq", "sag")], axcodes="LAS", zooms=(0.5, 0.5, 4.0))
    ds.image("02", entities=[("acq", "ax")], axcodes="PSR", zooms=(0.8, 0.8, 3.0))
    planes = {s.sub: s.acquisition_plane for s in find_scans(ds.root).scans}
    assert planes == {"01": "sagittal", "02": "axial"}


def test_nii_and_sessions_and_no_sessions(bids) -> None:
    ds = bids()
    ds.image("01", ext=".nii")
    ds.image("01", ses="a")
    ds.image("02", ses="b", entities=[("acq", "ax")])
    ids = [s.scan_id for s in find_scans(ds.root).scans]
    assert ids == [
        "site-ds_sub-01_T2w",
        "site-ds_sub-01_ses-a_T2w",
        "site-ds_sub-02_ses-b_acq-ax_T2w",
    ]


def test_scans_are_sorted_and_deterministic(bids) -> None:
    ds = bids()
    for sub in ("10", "02", "b", "A", "01"):
        ds.image(sub)
    a = find_scans(ds.root)
    b = find_scans([str(ds.root)])
    ids = [s.scan_id for s in a.scans]
    assert ids == sorted(ids)
    assert a.scans == b.scans


def test_other_files_and_folders_are_ignored(bids, nifti) -> None:
    ds = bids()
    ds.image("01")
    ds.image("01", suffix="T1w")
    nifti(ds.root / "sub-01" / "anat" / ".sub-01_T2w.nii.gz")  # hidden (macOS resource fork)
    nifti(ds.root / "sub-01" / "dwi" / "sub-01_T2w.nii.gz")  # not anat
    nifti(ds.root / "derivatives" / "x" / "sub-01" / "anat" / "sub-01_T2w.nii.gz")
    (ds.root / "sub-02").write_text("not a folder", encoding="utf-8")
    (ds.root / "sub-").mkdir()
    (ds.root / "sub-01" / "anat" / "sub-01_T2w.nii.gz.md5").write_text("x", encoding="utf-8")
    (ds.root / "sub-01" / "anat" / "sub-03_acq-x_T2w.nii").mkdir()  # a folder with an image name
    disc = find_scans(ds.root)
    assert [s.scan_id for s in disc.scans] == ["site-ds_sub-01_T2w"]
    assert disc.problems == ()


def test_dataset_name_falls_back_to_the_folder(bids) -> None:
    ds = bids("my_data", name=None)
    ds.image("01")
    assert find_scans(ds.root).scans[0].dataset_name == "my_data"


def test_broken_dataset_description_is_a_problem(bids) -> None:
    ds = bids("mydata")
    ds.image("01")
    (ds.root / "dataset_description.json").write_text("{oops", encoding="utf-8")
    disc = find_scans(ds.root)
    assert disc.scans[0].dataset_name == "mydata"
    message = disc.problems[0].message
    assert "cannot read dataset_description.json: not valid JSON (line 1" in message


# ---------------------------------------------------------------- dataset errors


def test_not_a_bids_dataset(tmp_path: Path) -> None:
    (tmp_path / "sub-01").mkdir()
    with pytest.raises(
        DiscoveryError, match=r"not a BIDS dataset: dataset_description\.json is missing.*Fix: pass"
    ):
        find_scans(tmp_path)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match=r"nope'.*does not exist"):
        find_scans(tmp_path / "nope")


def test_file_instead_of_folder(tmp_path: Path) -> None:
    f = tmp_path / "file.txt"
    f.write_text("x", encoding="utf-8")
    with pytest.raises(DiscoveryError, match="is a file, not a BIDS dataset folder"):
        find_scans(f)


def test_no_dataset_given() -> None:
    with pytest.raises(DiscoveryError, match="no BIDS dataset given"):
        find_scans([])


def test_same_dataset_twice(bids, tmp_path: Path) -> None:
    ds = bids("zurich")
    ds.image("01")
    link = tmp_path / "alias"
    link.symlink_to(ds.root)
    with pytest.raises(
        DiscoveryError, match=r"dataset listed twice: '.*zurich' and '.*alias' are the same folder"
    ):
        find_scans([ds.root, link])
    with pytest.raises(DiscoveryError, match="dataset listed twice"):
        find_scans([ds.root, str(ds.root) + "/"])


def test_same_scan_twice_nii_and_niigz(bids) -> None:
    ds = bids()
    a = ds.image("01")
    b = ds.image("01", ext=".nii")
    with pytest.raises(DiscoveryError, match="two images give the same scan id") as info:
        find_scans(ds.root, on_problem="raise")
    assert str(a) in str(info.value)
    assert str(b) in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"on_problem": "ignore"},
            r"on_problem='ignore' is not a valid policy; expected one of \('record', 'raise'\)",
        ),
        ({"image_suffix": "T2w.nii"}, r"image_suffix='T2w.nii' is not a BIDS suffix"),
        ({"image_suffix": ""}, "is not a BIDS suffix"),
        ({"cord_suffixes": ("seg-manual", "")}, r"cord_suffixes contains ''"),
        ({"lesion_suffixes": (None,)}, r"lesion_suffixes contains None"),
        ({"cord_suffixes": ("a/b",)}, r"cord_suffixes contains 'a/b'"),
        (
            {"cord_suffixes": ("x",), "lesion_suffixes": ("x",)},
            r"suffixes \['x'\] are both cord and lesion",
        ),
        ({"max_workers": 0}, r"max_workers=0 is not valid"),
        ({"max_workers": 2.5}, r"max_workers=2.5 is not valid"),
        ({"participant_labels": []}, r"the sub-\* filter is an empty list"),
        ({"participant_labels": ["sub-"]}, r"empty label 'sub-'"),
        ({"sessions": [" "]}, r"empty label ' ' in the ses-\* filter"),
    ],
)
def test_invalid_options(bids, kwargs: dict, match: str) -> None:
    ds = bids()
    ds.image("01")
    with pytest.raises(ValueError, match=match):
        find_scans(ds.root, **kwargs)


# ---------------------------------------------------------------- sites


def test_two_sites_with_the_same_subject_label(bids) -> None:
    z, t = bids("zurich"), bids("toronto")
    z.image("01")
    t.image("01")
    disc = find_scans([z.root, t.root])
    assert [s.scan_id for s in disc.scans] == ["site-toronto_sub-01_T2w", "site-zurich_sub-01_T2w"]
    assert {s.site for s in disc.scans} == {"zurich", "toronto"}
    assert [d.site for d in disc.datasets] == ["zurich", "toronto"]


def test_folder_label_collision_gets_a_suffix(bids, caplog) -> None:
    a, b, c = bids("a/data"), bids("b/data"), bids("c/da-ta")
    for ds in (a, b, c):
        ds.image("01")
    with caplog.at_level("WARNING", logger="cohort_sciseg.discover"):
        disc = find_scans([a.root, b.root, c.root])
    assert [d.site for d in disc.datasets] == ["data", "data2", "data3"]
    assert {s.site: s.dataset_root for s in disc.scans} == {
        "data": str(a.root),
        "data2": str(b.root),
        "data3": str(c.root),
    }
    assert "already used by another dataset" in caplog.text


def test_folder_without_alphanumerics(bids) -> None:
    ds = bids("___")
    ds.image("01")
    assert find_scans(ds.root).scans[0].site == "dataset"


def test_site_column(bids) -> None:
    ds = bids("multi")
    for sub in ("01", "02", "03", "04", "05"):
        ds.image(sub)
    ds.participants(
        "participant_id\tsite\tage\n"
        "sub-01\tZurich\t30\n"
        "sub-02\tsite_Toronto-1\t40\n"
        "sub-03\tn/a\t50\n"
        "sub-04\t\t60\n"
    )
    disc = find_scans(ds.root)
    sites = {s.sub: s.site for s in disc.scans}
    # n/a, empty and unlisted subjects fall back to the dataset's folder label.
    assert sites == {
        "01": "Zurich",
        "02": "siteToronto1",
        "03": "multi",
        "04": "multi",
        "05": "multi",
    }
    assert {s.sub: s.scan_id for s in disc.scans}["02"] == "site-siteToronto1_sub-02_T2w"
    assert disc.datasets[0].site_column
    assert disc.scans[0].participant_dict["site"] == "Zurich"  # raw value kept
    assert disc.problems == ()


def test_numeric_dataset_folder_gets_a_prefixed_site(bids) -> None:
    ds = bids("001")
    ds.image("01")
    disc = find_scans(ds.root)
    (s,) = disc.scans
    assert s.site == "site001"
    assert s.scan_id == "site-site001_sub-01_T2w"
    assert [d.site for d in disc.datasets] == ["site001"]
    assert disc.problems == ()


def test_numeric_dataset_folders_stay_distinct(bids, caplog) -> None:
    a, b, c, d = bids("1"), bids("01"), bids("x/001"), bids("y/site001")
    for ds in (a, b, c, d):
        ds.image("01")
    with caplog.at_level("WARNING", logger="cohort_sciseg.discover"):
        disc = find_scans([a.root, b.root, c.root, d.root])
    # folder "site001" reduces to the label folder "001" got first: it gets a suffix
    assert [ds.site for ds in disc.datasets] == ["site1", "site01", "site001", "site0012"]
    assert "already used by another dataset" in caplog.text


def test_numeric_site_column_values_get_a_prefix(bids) -> None:
    ds = bids("multi")
    for sub in ("01", "02", "03", "04", "05"):
        ds.image(sub)
    ds.participants(
        "participant_id\tsite\n"
        "sub-01\t001\n"
        "sub-02\t2\n"
        "sub-03\t 01 \n"
        "sub-04\t1e5\n"
        "sub-05\tn/a\n"
    )
    disc = find_scans(ds.root)
    assert {s.sub: s.site for s in disc.scans} == {
        "01": "site001",
        "02": "site2",
        "03": "site01",
        "04": "site1e5",
        "05": "multi",
    }
    assert {s.sub: s.scan_id for s in disc.scans}["01"] == "site-site001_sub-01_T2w"
    assert {s.sub: s.participant_dict["site"] for s in disc.scans}["01"] == "001"  # raw kept
    assert disc.problems == ()


def test_folder_label_avoids_a_prefixed_site_column_value(bids) -> None:
    plain, multi = bids("site2"), bids("multi")
    plain.image("01")
    multi.image("01")
    multi.participants("participant_id\tsite\nsub-01\t2\n")
    disc = find_scans([plain.root, multi.root])
    assert {s.dataset_root: s.site for s in disc.scans} == {
        str(plain.root): "site22",
        str(multi.root): "site2",
    }


def test_site_column_values_giving_one_label_are_one_site_with_a_warning(bids, caplog) -> None:
    a, b = bids("batch1"), bids("batch2")
    a.image("01")
    b.image("02")
    b.image("03")
    a.participants("participant_id\tsite\nsub-01\t01\n")
    b.participants("participant_id\tsite\nsub-02\tsite_01\nsub-03\tsite01\n")
    with caplog.at_level("WARNING", logger="cohort_sciseg.discover"):
        disc = find_scans([a.root, b.root])
    assert {s.site for s in disc.scans} == {"site01"}
    assert "site values ['01', 'site01', 'site_01'] all give the site label 'site01'" in caplog.text


def test_site_column_value_without_alphanumerics(bids) -> None:
    ds = bids("multi")
    ds.image("01")
    ds.participants("participant_id\tsite\nsub-01\t---\n")
    disc = find_scans(ds.root)
    assert disc.scans[0].site == "multi"
    assert "site '---' of sub-01 has no letters or digits" in disc.problems[0].message


def test_site_column_shared_across_datasets_is_allowed(bids) -> None:
    a, b = bids("batch1"), bids("batch2")
    a.image("01")
    b.image("02")
    a.participants("participant_id\tsite\nsub-01\tzurich\n")
    b.participants("participant_id\tsite\nsub-02\tzurich\n")
    disc = find_scans([a.root, b.root])
    assert [s.scan_id for s in disc.scans] == ["site-zurich_sub-01_T2w", "site-zurich_sub-02_T2w"]


def test_site_column_mapping_to_the_same_scan_id_is_an_error(bids) -> None:
    a, b = bids("batch1"), bids("batch2")
    ia = a.image("01")
    ib = b.image("01")
    a.participants("participant_id\tsite\nsub-01\tzurich\n")
    b.participants("participant_id\tsite\nsub-01\tzurich\n")
    with pytest.raises(DiscoveryError, match="same scan id 'site-zurich_sub-01_T2w'") as info:
        find_scans([a.root, b.root], on_problem="raise")
    assert str(ia) in str(info.value)
    assert str(ib) in str(info.value)
    assert "site column" in str(info.value)


def test_folder_label_avoids_another_datasets_site_column(bids) -> None:
    plain, multi = bids("zurich"), bids("multi")
    plain.image("01")
    multi.image("01")
    multi.participants("participant_id\tsite\nsub-01\tzurich\n")
    disc = find_scans([plain.root, multi.root])
    assert {s.dataset_root: s.site for s in disc.scans} == {
        str(plain.root): "zurich2",
        str(multi.root): "zurich",
    }


# ---------------------------------------------------------------- filters


def _cohort(bids):
    ds = bids("site")
    for sub in ("01", "02", "03"):
        ds.image(sub, ses="1")
        ds.image(sub, ses="2")
    ds.image("04")
    return ds


def test_participant_filter_with_and_without_prefix(bids) -> None:
    ds = _cohort(bids)
    disc = find_scans(ds.root, participant_labels=["sub-01", "03"])
    assert {s.sub for s in disc.scans} == {"01", "03"}
    assert disc.filters["participant_labels"] == ["01", "03"]
    assert find_scans(ds.root, participant_labels="sub-04").scans[0].sub == "04"


def test_session_filter_drops_scans_without_session(bids) -> None:
    ds = _cohort(bids)
    disc = find_scans(ds.root, sessions=["ses-2"])
    assert [s.scan_id for s in disc.scans] == [f"site-site_sub-0{i}_ses-2_T2w" for i in (1, 2, 3)]
    assert disc.filters["sessions"] == ["2"]


def test_include_list_by_scan_id_or_stem(bids) -> None:
    ds = _cohort(bids)
    disc = find_scans(ds.root, include=["site-site_sub-01_ses-1_T2w", "sub-04_T2w"])
    assert [s.scan_id for s in disc.scans] == ["site-site_sub-01_ses-1_T2w", "site-site_sub-04_T2w"]
    assert disc.problems == ()


def test_include_and_exclude_files(bids, tmp_path: Path) -> None:
    ds = _cohort(bids)
    inc = tmp_path / "include.txt"
    inc.write_text(
        "# scans that passed QC\n\nsite-site_sub-01_ses-1_T2w\n  site-site_sub-02_ses-1_T2w  \nsub-03_ses-2_T2w\n",
        encoding="utf-8",
    )
    exc = tmp_path / "exclude.txt"
    exc.write_text("#motion\nsite-site_sub-02_ses-1_T2w\n", encoding="utf-8")
    disc = find_scans(ds.root, include=inc, exclude=str(exc))
    assert [s.scan_id for s in disc.scans] == [
        "site-site_sub-01_ses-1_T2w",
        "site-site_sub-03_ses-2_T2w",
    ]
    assert disc.filters["include_file"] == str(inc)
    assert disc.filters["exclude"] == ["site-site_sub-02_ses-1_T2w"]


def test_exclude_list(bids) -> None:
    ds = _cohort(bids)
    disc = find_scans(ds.root, exclude=["sub-04_T2w", "site-site_sub-01_ses-1_T2w"])
    assert len(disc.scans) == 5


def test_include_entry_that_matches_nothing_is_a_problem(bids) -> None:
    ds = _cohort(bids)
    disc = find_scans(ds.root, include=["sub-04_T2w", "sub-99_T2w"])
    assert len(disc.scans) == 1
    (p,) = disc.problems
    assert "include entry 'sub-99_T2w' matches no scan" in p.message
    with pytest.raises(DiscoveryError, match="include entry 'sub-99_T2w' matches no scan"):
        find_scans(ds.root, include=["sub-04_T2w", "sub-99_T2w"], on_problem="raise")


def test_include_file_missing(bids, tmp_path: Path) -> None:
    ds = _cohort(bids)
    with pytest.raises(DiscoveryError, match=r"include list file not found.*pass a list"):
        find_scans(ds.root, include=tmp_path / "nope.txt")


def test_exclude_file_not_utf8(bids, tmp_path: Path) -> None:
    ds = _cohort(bids)
    bad = tmp_path / "ex.txt"
    bad.write_bytes(b"sub-\xff\n")
    with pytest.raises(DiscoveryError, match="cannot read the exclude list"):
        find_scans(ds.root, exclude=bad)


def test_nothing_found_lists_filters_and_datasets(bids) -> None:
    ds = _cohort(bids)
    with pytest.raises(
        DiscoveryError,
        match=r"no T2w images found in 1 dataset\(s\) \['.*site'\] with filters participant_labels=\['99'\]; sessions=\['1'\]",
    ):
        find_scans(ds.root, participant_labels=["99"], sessions=["1"])
    empty = bids("empty")
    with pytest.raises(
        DiscoveryError,
        match=r"no T2w images found.*image_suffix='T2w'.*Fix: check the dataset paths",
    ):
        find_scans(empty.root)
    with pytest.raises(DiscoveryError, match=r"no T1w images found"):
        find_scans(ds.root, image_suffix="T1w")


def test_nothing_found_mentions_recorded_problems(bids) -> None:
    ds = bids()
    bad = ds.root / "sub-01" / "anat"
    bad.mkdir(parents=True)
    (bad / "sub-01_bad_T2w.nii.gz").write_bytes(b"x")
    with pytest.raises(
        DiscoveryError,
        match=r"no T2w images found.*1 problem\(s\) recorded, first:.*not a valid BIDS name",
    ):
        find_scans(ds.root)


def test_other_image_suffix(bids) -> None:
    ds = bids()
    ds.image("01", suffix="T1w")
    ds.image("01")
    (s,) = find_scans(ds.root, image_suffix="T1w").scans
    assert s.scan_id == "site-ds_sub-01_T1w"
    assert s.suffix == "T1w"


def test_numeric_image_suffix_is_not_prefixed_like_a_site(bids) -> None:
    # suffixes are checked as BIDS alphanumerics, not turned into site labels
    ds = bids()
    ds.image("01", suffix="2")
    (s,) = find_scans(ds.root, image_suffix="2").scans
    assert s.scan_id == "site-ds_sub-01_2"


# ---------------------------------------------------------------- bad files


def test_corrupt_image_is_a_problem_and_the_batch_goes_on(bids, truncate) -> None:
    ds = bids()
    ds.image("01")
    bad = truncate(ds.image("02"))
    ds.image("03")
    empty = ds.image("04")
    empty.write_bytes(b"")
    disc = find_scans(ds.root)
    assert [s.sub for s in disc.scans] == ["01", "03"]
    assert [p.scan_id for p in disc.problems] == ["site-ds_sub-02_T2w", "site-ds_sub-04_T2w"]
    p = disc.problems[0]
    assert p.stage == "discover"
    assert p.error_type == "NiftiError"
    assert p.path == str(bad)
    assert p.site == "ds"
    assert "cannot read the NIfTI header" in p.message
    assert "empty" in disc.problems[1].message


def test_corrupt_image_raises_with_raise_policy(bids, truncate) -> None:
    ds = bids()
    ds.image("01")
    truncate(ds.image("02"))
    with pytest.raises(
        DiscoveryError, match=r"scan 'site-ds_sub-02_T2w'.*cannot read the NIfTI header"
    ) as info:
        find_scans(ds.root, on_problem="raise")
    assert type(info.value.__cause__).__name__ == "NiftiError"


def test_all_images_corrupt_gives_empty_scans_and_problems(bids, truncate) -> None:
    ds = bids()
    truncate(ds.image("01"))
    disc = find_scans(ds.root)
    assert disc.scans == ()
    assert len(disc.problems) == 1


def test_invalid_bids_name_and_folder_mismatch(bids, nifti) -> None:
    ds = bids()
    ds.image("01")
    anat = ds.root / "sub-01" / "anat"
    nifti(anat / "sub-01_acq_T2w.nii.gz")
    nifti(anat / "sub-02_T2w.nii.gz")
    nifti(ds.root / "sub-01" / "ses-1" / "anat" / "sub-01_T2w.nii.gz")
    disc = find_scans(ds.root)
    assert [s.scan_id for s in disc.scans] == ["site-ds_sub-01_T2w"]
    messages = sorted(p.message for p in disc.problems)
    assert len(messages) == 3
    assert any("'sub-01_acq_T2w.nii.gz' is not a valid BIDS name" in m for m in messages)
    assert any("sub='02', ses=None) do not match its folder 'sub-01/anat'" in m for m in messages)
    assert any(
        "do not match its folder 'sub-01/ses-1/anat'" in m and "sub-01 and ses-1" in m
        for m in messages
    )


def test_unlistable_folder_is_a_problem(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x", encoding="utf-8")
    entries, problems = list_dir(str(f), str(tmp_path))
    assert entries == []
    assert "cannot list the folder" in str(problems[0])


# ---------------------------------------------------------------- hostile names and symlinks

_SAFE_ID = re.compile(r"^[A-Za-z0-9%_-]+$")


def test_hostile_labels(tmp_path: Path) -> None:
    root = write_skeleton_tree(
        tmp_path / "evil site",
        n_subjects=8,
        hostile=True,
        sessions=("x y",),
        acquisitions=("sag", "<b>"),
    )
    disc = find_scans(root)
    assert disc.problems == ()
    assert len(disc.scans) == 16
    assert {s.sub for s in disc.scans} == {*HOSTILE_LABELS, "07", "08"}
    assert {s.ses for s in disc.scans} == {"x y"}
    assert {s.acq for s in disc.scans} == {"sag", "<b>"}
    out = tmp_path / "out"
    for s in disc.scans:
        assert _SAFE_ID.match(s.scan_id), s.scan_id
        assert s.site == "evilsite"
        target = (out / s.scan_id).resolve()
        assert target.parent == out.resolve()
        assert os.path.realpath(s.image_path).startswith(os.path.realpath(root) + os.sep)
    ids = {s.sub: s.scan_id for s in disc.scans if s.acq == "sag"}
    assert ids[".."] == "site-evilsite_sub-%2E%2E_ses-x%20y_acq-sag_T2w"
    assert ids["%41"] == "site-evilsite_sub-%2541_ses-x%20y_acq-sag_T2w"
    assert ids["<script>alert(1)<\\script>"].startswith(
        "site-evilsite_sub-%3Cscript%3Ealert%281%29%3C%5Cscript%3E_"
    )
    # Masks and sidecars of hostile subjects are found like any other.
    assert any(s.cord_mask_path for s in disc.scans if s.sub == "a b")
    assert {s.manufacturer for s in disc.scans if s.sub == "a b"} == {"GE"}


def test_symlinks_leaving_the_dataset_are_not_followed(bids, nifti, tmp_path: Path) -> None:
    ds = bids()
    ds.image("01")
    outside = nifti(tmp_path / "elsewhere" / "secret_T2w.nii.gz")
    outside_dir = tmp_path / "elsewhere" / "sub-99"
    nifti(outside_dir / "anat" / "sub-99_T2w.nii.gz")
    (ds.root / "sub-01" / "anat" / "sub-01_acq-link_T2w.nii.gz").symlink_to(outside)
    (ds.root / "sub-99").symlink_to(outside_dir)
    (ds.root / "sourcedata").symlink_to(tmp_path / "elsewhere")  # not used by discovery: no problem
    disc = find_scans(ds.root)
    assert [s.scan_id for s in disc.scans] == ["site-ds_sub-01_T2w"]
    msgs = [p.message for p in disc.problems]
    assert len(msgs) == 2
    assert all("symlink points outside the dataset" in m and "not followed" in m for m in msgs)
    with pytest.raises(DiscoveryError, match="symlink points outside the dataset"):
        find_scans(ds.root, on_problem="raise")


def test_top_level_files_leaving_the_dataset(bids, tmp_path: Path) -> None:
    ds = bids("zurich")
    ds.image("01")
    outside = tmp_path / "participants_elsewhere.tsv"
    outside.write_text("participant_id\tsite\nsub-01\tevil\n", encoding="utf-8")
    (ds.root / "participants.tsv").symlink_to(outside)
    desc = ds.root / "dataset_description.json"
    moved = tmp_path / "desc.json"
    desc.rename(moved)
    desc.symlink_to(moved)
    disc = find_scans(ds.root)
    (scan,) = disc.scans
    assert scan.site == "zurich"
    assert scan.participant == ()
    assert scan.dataset_name == "zurich"
    assert len(disc.problems) == 2
    assert all("symlink points outside the dataset" in p.message for p in disc.problems)


def test_symlinks_inside_the_dataset_are_followed(bids) -> None:
    ds = bids()
    real = ds.image("01")
    (ds.root / "sub-01" / "anat" / "sub-01_acq-copy_T2w.nii.gz").symlink_to(real)
    (ds.root / "sourcedata").mkdir()
    moved = ds.root / "sourcedata" / "sub-02"
    (ds.root / "sub-02" / "anat").mkdir(parents=True)
    (ds.root / "sub-02" / "anat").rename(moved)
    (moved / "sub-02_T2w.nii.gz").write_bytes(real.read_bytes())
    (ds.root / "sub-02" / "anat").symlink_to(moved)
    disc = find_scans(ds.root)
    assert [s.scan_id for s in disc.scans] == [
        "site-ds_sub-01_T2w",
        "site-ds_sub-01_acq-copy_T2w",
        "site-ds_sub-02_T2w",
    ]
    assert disc.problems == ()


def test_labels_folder_leaving_the_dataset(bids, tmp_path: Path) -> None:
    ds = bids()
    img = ds.image("01")
    other = bids("other")
    other_img = other.image("01")
    other.mask(other_img, "seg-manual")
    (ds.root / "derivatives").mkdir()
    (ds.root / "derivatives" / "labels").symlink_to(other.root / "derivatives" / "labels")
    disc = find_scans(ds.root)
    assert disc.scans[0].cord_mask_path is None
    assert "derivatives/labels points outside the dataset" in disc.problems[0].message
    assert img.exists()


# ---------------------------------------------------------------- many scans


def test_thread_pool_gives_the_same_result(tmp_path: Path) -> None:
    root = write_skeleton_tree(tmp_path / "big", n_subjects=40, acquisitions=("sag", "ax"))
    serial = find_scans(root, max_workers=1)
    pooled = find_scans(root, max_workers=4)
    auto = find_scans(root)
    assert len(serial.scans) == 80
    assert serial.scans == pooled.scans == auto.scans


def test_thread_pool_records_corrupt_images(tmp_path: Path, truncate) -> None:
    root = write_skeleton_tree(tmp_path / "big", n_subjects=70)
    truncate(root / "sub-33" / "anat" / "sub-33_acq-sag_T2w.nii.gz")
    disc = find_scans(root, max_workers=3)
    assert len(disc.scans) == 69
    assert [p.scan_id for p in disc.problems] == ["site-big_sub-33_acq-sag_T2w"]


@pytest.mark.parametrize(("ratio", "pooled"), [(0.0, True), (float("inf"), False)])
def test_automatic_pool_follows_the_probe(
    tmp_path: Path, monkeypatch, ratio: float, pooled: bool
) -> None:
    used = []
    real_pool = find_module.ThreadPoolExecutor

    def spy(*args, **kwargs):
        used.append(kwargs.get("max_workers"))
        return real_pool(*args, **kwargs)

    root = write_skeleton_tree(tmp_path / "big", n_subjects=70)
    reference = find_scans(root, max_workers=1)
    monkeypatch.setattr(find_module, "ThreadPoolExecutor", spy)
    # ratio 0: any wait counts as waiting on storage -> threads; inf: never -> serial.
    monkeypatch.setattr(find_module, "_IO_BOUND_RATIO", ratio)
    disc = find_scans(root)
    assert disc.scans == reference.scans
    assert bool(used) is pooled
