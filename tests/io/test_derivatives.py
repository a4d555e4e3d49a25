"""BIDS derivatives: the manual-mask path rule, dataset_description.json, copies into labels.

Expected paths are spelled out literally, and the mask that the helpers prefer is
checked against what discovery (an independent walk of the tree) reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cohort_sciseg.batch.standin import _manual
from cohort_sciseg.discover import DEFAULT_CORD_SUFFIXES, DEFAULT_LESION_SUFFIXES, find_scans
from cohort_sciseg.io import (
    copy_mask_to_labels,
    find_labels_masks,
    image_folder,
    labels_mask_path,
    preferred_mask,
    write_dataset_description,
)
from cohort_sciseg.synth.tree import write_skeleton_tree

# ----------------------------------------------------------------------------- naming


@pytest.mark.parametrize(
    ("image", "suffix", "extension", "expected"),
    [
        (
            "/d/ds/sub-01/anat/sub-01_T2w.nii.gz",
            "seg-manual",
            ".nii.gz",
            "/d/ds/derivatives/labels/sub-01/anat/sub-01_T2w_seg-manual.nii.gz",
        ),
        (
            "sub-01/ses-02/anat/sub-01_ses-02_acq-sag_T2w.nii",
            "lesion-manual",
            ".nii",
            "/d/ds/derivatives/labels/sub-01/ses-02/anat/sub-01_ses-02_acq-sag_T2w_lesion-manual.nii",
        ),
    ],
)
def test_labels_mask_path_spelled_out(image, suffix, extension, expected):
    got = labels_mask_path("/d/ds", image, suffix, extension=extension)
    assert got.as_posix() == expected


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"suffix": "label-disc*"}, r"mask suffix 'label-disc\*': expected a plain suffix"),
        ({"suffix": ""}, r"mask suffix '': expected a plain suffix"),
        ({"extension": ".mgz"}, r"extension '\.mgz': expected one of \['\.nii\.gz', '\.nii'\]"),
        (
            {"image": "/elsewhere/sub-01/anat/sub-01_T2w.nii.gz"},
            r"is not inside the dataset '/d/ds'",
        ),
    ],
)
def test_labels_mask_path_errors(kwargs, match):
    args = {"image": "sub-01/anat/sub-01_T2w.nii.gz", "suffix": "seg-manual"} | kwargs
    with pytest.raises(ValueError, match=match):
        labels_mask_path("/d/ds", args.pop("image"), args.pop("suffix"), **args)


def test_image_folder():
    root, rel = image_folder("/d/ds/sub-01/ses-02/anat/sub-01_ses-02_T2w.nii.gz")
    assert (root.as_posix(), rel.as_posix()) == ("/d/ds", "sub-01/ses-02/anat")
    root, rel = image_folder("/d/sub-project/ds/sub-01/anat/sub-01_T2w.nii.gz")
    assert (root.as_posix(), rel.as_posix()) == ("/d/sub-project/ds", "sub-01/anat")
    for bad in (
        "/d/ds/sub-01/sub-01_T2w.nii.gz",  # no anat folder
        "/d/ds/x/anat/x_T2w.nii.gz",  # anat not in a subject
        "/d/ds/sub-01/ses-01/func/sub-01_ses-01_bold.nii.gz",
    ):
        with pytest.raises(ValueError, match=r"is not in a BIDS folder; expected <dataset>/sub-"):
            image_folder(bad)


def test_preferred_mask_first_suffix_then_smaller_path():
    stem = "sub-01_T2w"
    a = Path(f"/x/{stem}_label-SC_seg.nii")
    b = Path(f"/x/{stem}_seg-manual.nii.gz")
    c = Path(f"/x/{stem}_seg-manual.nii")
    assert preferred_mask([a, b], stem, DEFAULT_CORD_SUFFIXES) == b  # suffix rank first
    assert preferred_mask([a, b, c], stem, DEFAULT_CORD_SUFFIXES) == c  # '.nii' < '.nii.gz'
    assert preferred_mask([Path(f"/x/{stem}_other.nii"), a], stem, DEFAULT_CORD_SUFFIXES) == a
    with pytest.raises(ValueError, match="at least one path"):
        preferred_mask([], stem, DEFAULT_CORD_SUFFIXES)


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_find_labels_masks_order_and_regular_files_only(tmp_path):
    image = tmp_path / "ds" / "sub-01" / "anat" / "sub-01_T2w.nii.gz"
    labels = tmp_path / "ds" / "derivatives" / "labels" / "sub-01" / "anat"
    assert find_labels_masks(tmp_path / "ds", image, DEFAULT_CORD_SUFFIXES) == []
    second = _touch(labels / "sub-01_T2w_label-SC_seg.nii.gz")
    gz = _touch(labels / "sub-01_T2w_seg-manual.nii.gz")
    plain = _touch(labels / "sub-01_T2w_seg-manual.nii")
    (labels / "sub-01_T2w_seg-manual.nii.gz.bak").write_bytes(b"")  # not a mask name
    (labels / "sub-02_T2w_seg-manual.nii.gz").mkdir()  # another image; and a folder
    got = find_labels_masks(tmp_path / "ds", image, DEFAULT_CORD_SUFFIXES)
    assert got == [plain, gz, second]
    plain.unlink()
    plain.mkdir()  # a folder with a mask's name is not a mask
    assert find_labels_masks(tmp_path / "ds", image, DEFAULT_CORD_SUFFIXES) == [gz, second]


def test_helpers_and_stand_in_read_what_discovery_reads(tmp_path):
    root = write_skeleton_tree(
        tmp_path / "ds", n_subjects=6, sessions=("1",), acquisitions=("sag", None), seed=2
    )
    # add a competing '.nii' cord mask for one scan: discovery prefers it (smaller path)
    first = sorted(root.glob("derivatives/labels/sub-*/ses-*/anat/*_seg-manual.nii.gz"))[0]
    plain = first.with_name(first.name.removesuffix(".gz"))
    plain.write_bytes(first.read_bytes())
    scans = find_scans([root]).scans
    assert scans
    with_masks = 0
    for s in scans:
        for suffixes, found in (
            (DEFAULT_CORD_SUFFIXES, s.cord_mask_path),
            (DEFAULT_LESION_SUFFIXES, s.lesion_mask_path),
        ):
            mine = find_labels_masks(s.dataset_root, s.image_path, suffixes)
            assert (str(mine[0]) if mine else None) == found
            got = _manual(Path(s.image_path), suffixes)
            assert (str(got) if got else None) == found
            with_masks += found is not None
    assert with_masks > 0
    assert any(s.cord_mask_path == str(plain) for s in scans)


# ----------------------------------------------------------------------------- dataset_description


def test_write_dataset_description_keys_in_order(tmp_path):
    path = write_dataset_description(
        tmp_path / "new",
        name="labels",
        dataset_type="derivative",
        license="CC0",
        generated_by=[{"Name": "tool", "Version": "1"}],
        source_datasets=["../../", "file:///d/ds"],
    )
    assert path == tmp_path / "new" / "dataset_description.json"
    text = path.read_text(encoding="utf-8")
    assert list(json.loads(text)) == [
        "Name",
        "BIDSVersion",
        "DatasetType",
        "License",
        "GeneratedBy",
        "SourceDatasets",
    ]
    assert json.loads(text) == {
        "Name": "labels",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "License": "CC0",
        "GeneratedBy": [{"Name": "tool", "Version": "1"}],
        "SourceDatasets": [{"URL": "../../"}, {"URL": "file:///d/ds"}],
    }
    raw = write_dataset_description(tmp_path / "raw", name="r")
    assert json.loads(raw.read_text()) == {
        "Name": "r",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
    }
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["dataset_description.json"]
    with pytest.raises(ValueError, match=r"dataset_type='study'; expected 'raw' or 'derivative'"):
        write_dataset_description(tmp_path, name="x", dataset_type="study")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- copies into labels


def test_copy_mask_to_labels_writes_mask_sidecar_and_description_once(tmp_path):
    source = _touch(tmp_path / "run" / "pred.nii.gz", b"mask bytes")
    labels = tmp_path / "ds" / "derivatives" / "labels"
    target = labels / "sub-01" / "anat" / "sub-01_T2w_seg-manual.nii.gz"
    by = [{"Name": "cohort-sciseg", "Version": "0"}]
    assert copy_mask_to_labels(source, target, {"Structure": "cord"}, generated_by=by) == target
    assert target.read_bytes() == b"mask bytes"
    assert json.loads(target.with_name("sub-01_T2w_seg-manual.json").read_text()) == {
        "Structure": "cord"
    }
    desc = json.loads((labels / "dataset_description.json").read_text())
    assert desc == {
        "Name": "manual labels of ds",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": by,
        "SourceDatasets": [{"URL": "../../"}],
    }
    # an existing description (the dataset's own) is never replaced
    (labels / "dataset_description.json").write_text('{"Name": "theirs"}')
    copy_mask_to_labels(source, target.with_name("sub-01_T2w_lesion-manual.nii.gz"), {})
    assert (labels / "dataset_description.json").read_text() == '{"Name": "theirs"}'
    with pytest.raises(ValueError, match=r"is not under a dataset's derivatives/labels folder"):
        copy_mask_to_labels(source, tmp_path / "ds" / "sub-01" / "anat" / "m.nii.gz", {})
    assert not (tmp_path / "ds" / "sub-01").exists()  # nothing written
