"""Discovery on the real spine-t2w dataset (skipped when ../shared/data is absent).

Expected values are read independently from the files with nibabel, and from
the dataset's README: 8 scans; errsm11/18/21 have manual cord masks
(``_seg-manual``); sub-sctfakelesion has SCIsegV2 masks (``_seg-scisegv2``,
``_lesion-scisegv2``); sub-sctms is axial (0.69 x 0.69 x 7.5 mm); the others are
1 mm (0.8 mm) isotropic 3D acquisitions. The README's "PSR"/"LAS" are nibabel
axis codes; records use SCT naming, every letter flipped ("AIL"/"RPI").
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import pyarrow.parquet as pq
import pytest

from cohort_sciseg.discover import find_scans, format_summary, summarize, write_scans

pytestmark = pytest.mark.shared_data

_FLIP = str.maketrans("RLAPSI", "LRPAIS")
SUBJECTS = [
    "errsm11",
    "errsm18",
    "errsm20",
    "errsm21",
    "errsm22",
    "sctcrop",
    "sctfakelesion",
    "sctms",
]


def test_eight_scans_with_headers_matching_nibabel(spine_t2w: Path) -> None:
    disc = find_scans(spine_t2w)
    assert disc.problems == ()
    assert [s.sub for s in disc.scans] == SUBJECTS
    assert [s.scan_id for s in disc.scans] == [f"site-spinet2w_sub-{x}_T2w" for x in SUBJECTS]
    for s in disc.scans:
        img = nib.load(s.image_path)
        assert s.shape == img.shape
        assert len(set(s.shape)) > 1  # non-cubic
        assert s.voxel_size_mm == pytest.approx(
            tuple(float(z) for z in img.header.get_zooms()), abs=1e-5
        )
        assert s.orientation == "".join(nib.aff2axcodes(img.affine)).translate(_FLIP)
        assert s.participant_dict["participant_id"] == f"sub-{s.sub}"
        assert s.dataset_name.startswith("spine-t2w")


def test_orientations_and_planes(spine_t2w: Path) -> None:
    by_sub = {s.sub: s for s in find_scans(spine_t2w).scans}
    ms = by_sub["sctms"]
    assert ms.orientation == "RPI"  # nibabel LAS
    assert ms.acquisition_plane == "axial"
    assert ms.voxel_size_mm == pytest.approx((0.6875, 0.6875, 7.5))
    for sub in SUBJECTS[:-1]:
        s = by_sub[sub]
        assert s.orientation == "AIL"  # nibabel PSR: sagittal slices along the third axis
        assert (
            s.acquisition_plane == "isotropic"
        )  # 1 mm (0.8 mm) iso: the slice plane is not in the geometry
        assert s.shape[2] < s.shape[0]


def test_default_masks(spine_t2w: Path) -> None:
    by_sub = {s.sub: s for s in find_scans(spine_t2w).scans}
    with_cord = {sub for sub, s in by_sub.items() if s.cord_mask_path}
    assert with_cord == {"errsm11", "errsm18", "errsm21"}
    assert all(s.lesion_mask_path is None for s in by_sub.values())
    assert by_sub["errsm11"].cord_mask_path.endswith(
        "derivatives/labels/sub-errsm11/anat/sub-errsm11_T2w_seg-manual.nii.gz"
    )
    # sct_deepseg_sc output has its own suffix and is not a manual mask.
    assert by_sub["sctcrop"].cord_mask_path is None


def test_scisegv2_suffixes(spine_t2w: Path) -> None:
    disc = find_scans(
        spine_t2w, cord_suffixes=("seg-scisegv2",), lesion_suffixes=("lesion-scisegv2",)
    )
    with_masks = {s.sub for s in disc.scans if s.has_manual_masks}
    assert with_masks == {"sctfakelesion"}
    s = next(s for s in disc.scans if s.sub == "sctfakelesion")
    assert s.cord_mask_path.endswith("sub-sctfakelesion_T2w_seg-scisegv2.nii.gz")
    assert s.lesion_mask_path.endswith("sub-sctfakelesion_T2w_lesion-scisegv2.nii.gz")
    # Masks are on the image grid (checked independently of discovery).
    for mask in (s.cord_mask_path, s.lesion_mask_path):
        assert nib.load(mask).shape == s.shape


def test_outputs(spine_t2w: Path, tmp_path: Path) -> None:
    disc = find_scans(spine_t2w, participant_labels=["errsm11", "sub-sctms"])
    out = write_scans(disc, tmp_path / "scans.parquet")
    assert pq.read_table(out).column("sub").to_pylist() == ["errsm11", "sctms"]
    df = summarize(disc)
    assert set(zip(df["acquisition_plane"], df["orientation"], strict=True)) == {
        ("isotropic", "AIL"),
        ("axial", "RPI"),
    }
    assert "cord mask 1" in format_summary(disc)
