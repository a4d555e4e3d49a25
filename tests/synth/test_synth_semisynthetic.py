"""Semi-synthetic mode on the real scans of spine-t2w (skipped when they are absent)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from cohort_sciseg.io import binarize, load_nifti
from cohort_sciseg.synth import insert_lesions, insert_lesions_into_arrays
from cohort_sciseg.synth._grid import acquisition_grid, world_coordinates

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def semi(spine_t2w, tmp_path_factory):
    src_files = sorted(p for p in spine_t2w.rglob("*") if p.is_file())
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in src_files}
    out = insert_lesions(
        spine_t2w, tmp_path_factory.mktemp("semi") / "out", seed=1, lesions_per_scan=(2, 3)
    )
    after = {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(q for q in spine_t2w.rglob("*") if q.is_file())
    }
    return out, before, after


def test_source_untouched(semi):
    _, before, after = semi
    assert before == after


def test_one_output_per_manually_masked_scan(semi, spine_t2w):
    out, _, _ = semi
    scans = pd.read_parquet(out.scans_table)
    assert sorted(scans["sub"]) == ["errsm11", "errsm18", "errsm21"]  # the `_seg-manual` ones
    assert out.n_scans == 3
    assert out.n_sites == 1
    root = out.dataset_roots[0]
    assert root.name == spine_t2w.name
    parts = pd.read_csv(root / "participants.tsv", sep="\t")
    assert sorted(parts.participant_id) == ["sub-errsm11", "sub-errsm18", "sub-errsm21"]
    assert (scans.n_lesions >= 1).all()
    assert (scans.n_lesions <= 3).all()


def test_images_masks_and_ground_truth(semi, spine_t2w):
    out, _, _ = semi
    scans = pd.read_parquet(out.scans_table)
    lesions = pd.read_parquet(out.lesions_table)
    for row in scans.itertuples():
        src_img = load_nifti(row.source_image_path)
        src_cord = load_nifti(
            spine_t2w
            / "derivatives"
            / "labels"
            / f"sub-{row.sub}"
            / "anat"
            / f"sub-{row.sub}_T2w_seg-manual.nii.gz"
        )
        img = load_nifti(out.out_dir / row.image_path)
        cord = load_nifti(out.out_dir / row.cord_mask_path)
        lesion = load_nifti(out.out_dir / row.lesion_mask_path)
        # same grid, header and on-disk type as the source
        np.testing.assert_array_equal(img.affine, src_img.affine)
        np.testing.assert_array_equal(lesion.affine, src_img.affine)
        assert img.data.dtype == src_img.data.dtype == np.int16
        assert img.header.get_zooms() == src_img.header.get_zooms()
        assert img.header["descrip"] == src_img.header["descrip"]
        assert cord.data.dtype == np.uint8
        assert lesion.data.dtype == np.uint8
        real_cord = binarize(src_cord.data)
        np.testing.assert_array_equal(cord.data.astype(bool), real_cord)
        les = lesion.data.astype(bool)
        # strictly inside the real cord: inside it, and off its boundary
        assert not np.any(les & ~ndimage.binary_erosion(real_cord))
        # intensities change only in the cord, and only up (hyperintense)
        diff = img.data.astype(np.int32) - src_img.data.astype(np.int32)
        assert not np.any(diff[~real_cord])
        assert diff.min() >= 0
        assert np.all(diff[les] > 0)
        assert np.median(img.data[les]) > 1.4 * np.median(src_img.data[les])
        # ground truth equals the mask
        vox = float(np.prod(img.voxel_size_mm))
        per = lesions[lesions.scan_id == row.scan_id]
        assert per.n_voxels.sum() == les.sum() == row.lesion_voxels
        assert row.total_lesion_volume_mm3 == pytest.approx(les.sum() * vox, rel=1e-12)
        labels, n = ndimage.label(les, structure=np.ones((3, 3, 3)))
        assert n == len(per)  # separate components
        assert sorted(np.bincount(labels.ravel())[1:]) == sorted(per.n_voxels)
        np.testing.assert_allclose(per.voxel_volume_mm3, per.analytic_volume_mm3, rtol=0.35)


def test_arrays_api_on_a_synthetic_cord(rng):
    """insert_lesions_into_arrays: oblique anisotropic grid, non-cubic, exact containment."""
    affine, shape = acquisition_grid(
        "PSR", (0.8, 0.6, 1.1), (20.0, 24.0, 60.0), (0.0, 0.0, 0.0), oblique_deg=9.0
    )
    x, y, z = (np.broadcast_to(c, shape) for c in world_coordinates(affine, shape))
    cord = ((x - 0.3 * np.sin(z / 20)) / 4.5) ** 2 + (y / 3.5) ** 2 <= 1.0
    image = np.where(cord, 300.0, 900.0) + rng.normal(0, 10, shape)
    new, labels, lesions = insert_lesions_into_arrays(image, cord, affine, n_lesions=2, rng=rng)
    assert len(lesions) == 2
    assert labels.dtype == np.uint8
    assert not np.any((labels > 0) & ~ndimage.binary_erosion(cord))
    np.testing.assert_array_equal(new[~cord], image[~cord])
    for i, les in enumerate(lesions, start=1):
        want = np.broadcast_to(les.q(x, y, z) <= 1.0, shape)
        np.testing.assert_array_equal(labels == i, want)
        np.testing.assert_allclose(les.rotation[:, 2], [0, 0, 1], atol=0.2)  # along the cord
    none = insert_lesions_into_arrays(image, cord, affine, n_lesions=0, rng=rng)
    assert none[2] == ()
    assert not none[1].any()


def test_the_cord_mask_is_the_one_discovery_reads(tmp_path):
    """With a ``.nii`` and a ``.nii.gz`` cord mask, lesions go into the mask discovery validates against."""
    import nibabel as nib

    from cohort_sciseg.discover import find_scans
    from cohort_sciseg.synth.semisynthetic import find_masked_images

    root = tmp_path / "ds"
    anat = root / "sub-01" / "anat"
    labels = root / "derivatives" / "labels" / "sub-01" / "anat"
    anat.mkdir(parents=True)
    labels.mkdir(parents=True)
    img = nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4))
    nib.save(img, anat / "sub-01_T2w.nii.gz")
    (root / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.9.0"}')
    for ext in (".nii.gz", ".nii"):
        nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.uint8), np.eye(4)), labels / f"sub-01_T2w_seg-manual{ext}")
    ((_, mask),) = find_masked_images(root, "seg-manual")
    assert mask.name == "sub-01_T2w_seg-manual.nii"  # discovery's rule: the smaller path first
    (scan,) = find_scans([root]).scans
    assert scan.cord_mask_path == str(mask)
