"""cohort_sciseg.synth.tree: skeleton BIDS trees for tests and benchmarks."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cohort_sciseg.discover import find_scans
from cohort_sciseg.errors import SynthError
from cohort_sciseg.synth.tree import (
    SIDECAR_RULES,
    TEMPLATES,
    skeleton_scan_index,
    write_skeleton_tree,
)


def test_layout_and_counts(tmp_path: Path) -> None:
    root = write_skeleton_tree(
        tmp_path / "ds", n_subjects=12, sessions=("1", "2"), acquisitions=("sag", "ax", None)
    )
    assert root == tmp_path / "ds"
    images = sorted(root.glob("sub-*/ses-*/anat/*_T2w.nii.gz"))
    assert len(images) == 12 * 2 * 3
    assert (root / "sub-01" / "ses-2" / "anat" / "sub-01_ses-2_T2w.nii.gz").is_file()
    desc = json.loads((root / "dataset_description.json").read_text())
    assert desc["BIDSVersion"] == "1.9.0"
    assert desc["Name"] == "ds"
    rows = (root / "participants.tsv").read_text().splitlines()
    assert rows[0] == "participant_id\tage\tsex"
    assert len(rows) == 13
    labels = root / "derivatives" / "labels"
    n_cord = len(list(labels.glob("sub-*/ses-*/anat/*_seg-manual.nii.gz")))
    n_lesion = len(list(labels.glob("sub-*/ses-*/anat/*_lesion-manual.nii.gz")))
    assert n_cord == 36  # even running indices of 72
    assert n_lesion == 24  # multiples of 3


def test_images_are_valid_tiny_niftis(tmp_path: Path) -> None:
    root = write_skeleton_tree(
        tmp_path / "ds", n_subjects=6, acquisitions=("sag", "ax", "cor", "other"), shape=(3, 4, 5)
    )
    for path in root.glob("sub-*/anat/*.nii.gz"):
        raw = gzip.decompress(path.read_bytes())  # complete gzip stream, valid CRC
        img = nib.Nifti1Image.from_bytes(raw)
        assert img.shape == (3, 4, 5)
        assert img.header["sform_code"] == 1
        assert path.stat().st_size < 1000
    for path in root.glob("derivatives/labels/sub-*/anat/*.nii.gz"):
        data = np.asarray(nib.load(path).dataobj)
        assert set(np.unique(data)) == {0, 1}


def test_geometry_follows_the_acquisition(tmp_path: Path) -> None:
    root = write_skeleton_tree(
        tmp_path / "ds", n_subjects=20, acquisitions=("hires", "sag", "ax", "cor")
    )
    planes = {}
    for s in find_scans(root).scans:
        planes.setdefault(s.acq, set()).add(s.acquisition_plane)
    assert planes == {
        "sag": {"sagittal"},
        "ax": {"axial"},
        "cor": {"coronal"},
        "hires": {"isotropic"},
    }


def test_affines_are_varied(tmp_path: Path) -> None:
    root = write_skeleton_tree(tmp_path / "ds", n_subjects=30, acquisitions=("sag", "ax"))
    orientations = {s.orientation for s in find_scans(root).scans}
    assert len(orientations) >= 4
    t = TEMPLATES["sag"][2]
    aff = t.affine((4, 5, 6))
    assert np.sqrt((aff[:3, :3] ** 2).sum(axis=0)) == pytest.approx(t.zooms)
    assert aff[0, 0] != 0  # oblique: the P axis gets an R component


def test_sidecar_rules_match_discovery(tmp_path: Path) -> None:
    root = write_skeleton_tree(
        tmp_path / "ds", n_subjects=8, sessions=("a", "b"), acquisitions=("sag",)
    )
    scans = {(s.sub, s.ses): s for s in find_scans(root).scans}
    for si in range(8):
        for ki, ses in enumerate(("a", "b")):
            s = scans[(f"{si + 1:02d}", ses)]
            index = skeleton_scan_index(si, ki, 0, 2, 1)
            side = s.sidecar_dict
            subject_level = si % 4 == 0
            assert s.manufacturer == ("GE" if subject_level else "Siemens")
            assert s.magnetic_field_strength_t == (1.5 if subject_level else 3.0)
            assert json.loads(side["EchoTime"]) == (
                0.09 if index % 5 == 0 else SIDECAR_RULES["acq"]["EchoTime"]
            )
            assert ("ManufacturersModelName" in side) == (si % 3 == 0 and ki == 0)
            assert (s.cord_mask_path is not None) == (index % 2 == 0)
            assert (s.lesion_mask_path is not None) == (index % 3 == 0)


def test_sites_column_and_no_masks(tmp_path: Path) -> None:
    root = write_skeleton_tree(
        tmp_path / "ds", n_subjects=5, sites=("zurich", "toronto"), with_masks=False
    )
    assert not (root / "derivatives").exists()
    sites = {s.sub: s.site for s in find_scans(root).scans}
    assert sites == {
        "01": "zurich",
        "02": "toronto",
        "03": "zurich",
        "04": "toronto",
        "05": "zurich",
    }


def test_seed_is_reproducible(tmp_path: Path) -> None:
    a = write_skeleton_tree(tmp_path / "a", n_subjects=10, acquisitions=("sag", "ax"), seed=3)
    b = write_skeleton_tree(tmp_path / "b", n_subjects=10, acquisitions=("sag", "ax"), seed=3)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        if rel.name != "dataset_description.json":
            assert (a / rel).read_bytes() == (b / rel).read_bytes()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_subjects": 0}, r"n_subjects=0; expected an integer >= 1"),
        ({"n_subjects": True}, r"n_subjects=True"),
        ({"n_subjects": 2, "shape": (4, 5)}, r"shape=\(4, 5\); expected three integers >= 1"),
        ({"n_subjects": 2, "shape": (4, 0, 5)}, r"shape=\(4, 0, 5\)"),
        ({"n_subjects": 2, "acquisitions": ()}, "acquisitions is empty"),
        ({"n_subjects": 2, "acquisitions": ("a_b",)}, r"acquisition label 'a_b'"),
    ],
)
def test_invalid_options(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(SynthError, match=match):
        write_skeleton_tree(tmp_path / "ds", **kwargs)


def test_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "x").write_text("x", encoding="utf-8")
    with pytest.raises(SynthError, match="destination exists and is not an empty folder"):
        write_skeleton_tree(tmp_path / "ds", n_subjects=1)
    write_skeleton_tree(tmp_path / "empty", n_subjects=1)  # an empty existing folder is fine


@pytest.mark.slow
def test_ten_thousand_scans_quickly(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    root = write_skeleton_tree(
        tmp_path / "big", n_subjects=2500, sessions=("1", "2"), acquisitions=("sag", "ax")
    )
    t1 = time.perf_counter()
    disc = find_scans(root)
    t2 = time.perf_counter()
    assert len(disc.scans) == 10_000
    assert disc.problems == ()
    assert t1 - t0 < 120  # generous: CI machines are shared
    assert t2 - t1 < 120
