"""The written cohort: BIDS layout, site acquisitions, masks, participants, ground-truth tables."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from cohort_sciseg.io import acquisition_plane, load_nifti, orientation_code
from cohort_sciseg.synth import (
    CLINICAL_COLUMNS,
    GT_LESIONS_SCHEMA,
    GT_SCANS_SCHEMA,
    PARTICIPANT_COLUMNS,
    plan_subject,
)


def _participants(root):
    return pd.read_csv(root / "participants.tsv", sep="\t", dtype=str, keep_default_na=False)


def test_counts_and_dataset_roots(small_cohort, gt_scans, gt_lesions):
    c = small_cohort
    assert [p.name for p in c.dataset_roots] == ["site1", "site2", "site3", "site4"]
    assert c.n_sites == 4
    assert c.n_subjects == 12
    # site 2 is the follow-up site: subject 02 has a second session
    assert c.n_scans == len(gt_scans) == 13
    assert c.n_lesions == len(gt_lesions)
    assert c.lesions_table == c.out_dir / "ground_truth" / "lesions.parquet"
    assert c.scans_table.is_file()
    assert (c.out_dir / "ground_truth" / "config.json").is_file()


def test_bids_layout(small_cohort, gt_scans):
    for root in small_cohort.dataset_roots:
        desc = json.loads((root / "dataset_description.json").read_text())
        assert desc["DatasetType"] == "raw"
        assert desc["BIDSVersion"]
        deriv = json.loads(
            (root / "derivatives" / "labels" / "dataset_description.json").read_text()
        )
        assert deriv["DatasetType"] == "derivative"
        assert (root / "README").is_file()
        assert (root / "participants.json").is_file()
    out = small_cohort.out_dir
    for row in gt_scans.itertuples():
        image = out / row.image_path
        assert image.name.endswith("_T2w.nii.gz")
        assert image.parent.name == "anat"
        stem = image.name[: -len(".nii.gz")]
        assert (image.parent / f"{stem}.json").is_file()
        labels = (
            out / row.site / "derivatives" / "labels" / image.parent.relative_to(out / row.site)
        )
        assert out / row.cord_mask_path == labels / f"{stem}_seg-manual.nii.gz"
        assert out / row.lesion_mask_path == labels / f"{stem}_lesion-manual.nii.gz"
        assert row.scan_id == f"site-{row.site}_{stem}"
    site2 = gt_scans[gt_scans.site == "site2"]
    assert set(site2.ses) == {"01", "02"}
    assert set(site2.acq) == {"ax"}
    assert (out / "site2" / "sub-02" / "sub-02_sessions.tsv").is_file()
    assert set(gt_scans[gt_scans.site == "site1"].acq) == {"sag"}
    assert gt_scans[gt_scans.site == "site3"].ses.isna().all()


EXPECTED = {
    # site: (plane, sorted voxel sizes, manufacturer, field strength, dtype)
    "site1": ("sagittal", (0.5, 0.5, 3.0), "Siemens", 3.0, np.int16),
    "site2": ("axial", (0.7, 0.7, 5.0), "GE", 1.5, np.int16),
    "site3": ("isotropic", (0.9, 0.9, 0.9), "Philips", 3.0, np.float32),
    "site4": ("sagittal", (0.5, 0.5, 3.0), "GE", 1.5, np.int16),  # site 1's geometry, next vendor
}


def test_site_acquisitions(small_cohort, gt_scans):
    orientations = set()
    oblique = 0
    for row in gt_scans.itertuples():
        plane, voxels, maker, field, dtype = EXPECTED[row.site]
        image = small_cohort.out_dir / row.image_path
        vol = load_nifti(image)
        assert vol.data.dtype == dtype
        assert tuple(sorted(vol.voxel_size_mm)) == pytest.approx(voxels)
        assert acquisition_plane(vol.affine) == plane == row.acquisition_plane
        if plane != "isotropic":  # the thick axis is LR (sagittal) or SI (axial)
            thick = int(np.argmax(vol.voxel_size_mm))
            world = int(np.argmax(np.abs(vol.affine[:3, thick])))
            assert world == (0 if plane == "sagittal" else 2)
        assert orientation_code(vol.affine) == row.orientation
        orientations.add(row.orientation)
        oblique += row.oblique_deg > 1.0
        side = json.loads(image.with_name(image.name.replace(".nii.gz", ".json")).read_text())
        assert side["Manufacturer"] == maker
        assert side["MagneticFieldStrength"] == field
        assert {"ManufacturersModelName", "RepetitionTime", "EchoTime"} <= set(side)
        assert vol.header.get_xyzt_units()[0] == "mm"
    assert len(orientations) >= 6
    assert oblique >= 1


def _masks(out, row):
    cord = load_nifti(out / row.cord_mask_path)
    lesion = load_nifti(out / row.lesion_mask_path)
    return cord, lesion


def test_masks_and_scan_table(small_cohort, gt_scans, gt_lesions):
    out = small_cohort.out_dir
    assert (gt_scans.n_lesions > 0).sum() >= 8
    for row in gt_scans.itertuples():
        cord, lesion = _masks(out, row)
        image = load_nifti(out / row.image_path)
        assert cord.data.dtype == np.uint8
        assert lesion.data.dtype == np.uint8
        assert set(np.unique(cord.data)) <= {0, 1}
        assert set(np.unique(lesion.data)) <= {0, 1}
        np.testing.assert_array_equal(cord.affine, image.affine)
        np.testing.assert_array_equal(lesion.affine, image.affine)
        assert np.array_equal(lesion.data & cord.data, lesion.data)  # lesion ∩ cord == lesion
        voxel_volume = float(np.prod(image.voxel_size_mm))
        assert (row.dim_x, row.dim_y, row.dim_z) == image.shape
        assert row.lesion_voxels == int(lesion.data.sum())
        assert row.total_lesion_volume_mm3 == pytest.approx(
            lesion.data.sum() * voxel_volume, rel=1e-12
        )
        assert row.cord_volume_mm3 == pytest.approx(cord.data.sum() * voxel_volume, rel=1e-12)
        per = gt_lesions[gt_lesions.scan_id == row.scan_id]
        assert len(per) == row.n_lesions <= 3
        assert per.n_voxels.sum() == row.lesion_voxels
        assert per.voxel_volume_mm3.sum() == pytest.approx(row.total_lesion_volume_mm3, rel=1e-12)
        assert (per.n_voxels > 0).all()
        # damage ratio, recomputed on axial slices of the canonical (RAS) arrays: the same
        # planes as RPI slices, so the same ratios
        c = np.asarray(nib.as_closest_canonical(nib.Nifti1Image(cord.data, cord.affine)).dataobj)
        ll = np.asarray(
            nib.as_closest_canonical(nib.Nifti1Image(lesion.data, lesion.affine)).dataobj
        )
        ca, la = c.sum(axis=(0, 1)), ll.sum(axis=(0, 1))
        ratio = float(np.max(np.where(ca > 0, la / np.maximum(ca, 1), 0.0)))
        assert row.max_axial_damage_ratio == pytest.approx(ratio, abs=1e-12)
        if row.n_lesions:
            assert row.analytic_max_axial_damage_ratio == pytest.approx(
                row.max_axial_damage_ratio, abs=0.15
            )


def test_lesion_table_geometry(small_cohort, gt_lesions):
    assert (gt_lesions.voxel_volume_mm3 > 0).all()
    np.testing.assert_allclose(
        gt_lesions.analytic_volume_mm3,
        4
        / 3
        * np.pi
        * gt_lesions.semi_axis_lr_mm
        * gt_lesions.semi_axis_ap_mm
        * gt_lesions.semi_axis_long_mm,
    )
    assert (gt_lesions.semi_axis_long_mm > gt_lesions.semi_axis_lr_mm).all()
    # well-resolved lesions (0.9 mm isotropic, every semi-axis >= 1.5 voxels): voxel volume
    # close to the ellipsoid volume
    iso = gt_lesions[gt_lesions.site == "site3"]
    assert len(iso) >= 2
    np.testing.assert_allclose(iso.voxel_volume_mm3, iso.analytic_volume_mm3, rtol=0.15)
    assert iso.voxel_volume_mm3.sum() == pytest.approx(iso.analytic_volume_mm3.sum(), rel=0.06)
    # the lesion centre is a lesion voxel, and the voxel z-extent brackets the analytic one
    out = small_cohort.out_dir
    for row in gt_lesions.itertuples():
        vol = load_nifti(out / row.lesion_mask_path)
        ijk = np.linalg.solve(vol.affine, [row.center_x_mm, row.center_y_mm, row.center_z_mm, 1.0])[
            :3
        ]
        assert vol.data[tuple(np.rint(ijk).astype(int))] == 1
        slice_mm = float(np.max(np.abs(vol.affine[2, :3])))
        assert row.voxel_z_extent_mm <= row.z_extent_mm + 2 * slice_mm
        # the sampled sections may miss the lesion's centre by half a voxel across: its
        # z-extent there shrinks by sqrt(1 - (h / r)^2)
        h = max(vol.voxel_size_mm) / 2
        shrink = np.sqrt(1 - min(1.0, h / min(row.semi_axis_lr_mm, row.semi_axis_ap_mm)) ** 2)
        assert row.voxel_z_extent_mm >= row.z_extent_mm * shrink - 2 * slice_mm


def test_tables_have_documented_schemas(small_cohort):
    for path, schema in (
        (small_cohort.lesions_table, GT_LESIONS_SCHEMA),
        (small_cohort.scans_table, GT_SCANS_SCHEMA),
    ):
        readme = (path.parent / "README.md").read_text()
        assert all(f"| `{name}` |" in readme for name in schema.names)
        table = pq.read_table(path)
        assert table.schema.equals(schema, check_metadata=False)
        for field in schema:
            assert field.metadata[b"description"]
            if field.name.endswith(("_mm", "_mm3")):
                assert field.metadata[b"unit"] in (b"mm", b"mm3")


def test_participants(small_cohort):
    for root in small_cohort.dataset_roots:
        p = _participants(root)
        assert tuple(p.columns) == PARTICIPANT_COLUMNS
        assert set(CLINICAL_COLUMNS) <= set(p.columns)
        assert list(p.participant_id) == ["sub-01", "sub-02", "sub-03"]
        assert p.etiology.isin(["traumatic", "ischemic", "hemorrhagic"]).all()
        assert p.sex.isin(["M", "F"]).all()
        assert p.implants.isin(["yes", "no"]).all()
        assert p.injury_level.str.fullmatch(r"C[3-7]").all()
        for col in ("initial_LEMS", "discharge_LEMS"):
            assert p[col].astype(int).between(0, 50).all()
        for col in CLINICAL_COLUMNS:
            if "pin_prick" in col or "light_touch" in col:
                assert p[col].astype(int).between(0, 112).all()
        assert p.initial_ais.isin(list("ABCDE")).all()
        assert p.discharge_ais.isin(list("ABCDE")).all()
        assert (p.discharge_ais >= p.initial_ais).all()  # never worse (A is worst)


def test_participants_match_plans_and_scans(small_cohort, small_options, gt_scans):
    """The written subjects are the planned ones (anatomy drawn before rendering)."""
    for root in small_cohort.dataset_roots:
        site_number = int(root.name[4:])
        for row in _participants(root).itertuples():
            plan = plan_subject(
                small_options["seed"],
                site_number,
                int(row.participant_id[4:]),
                implant_fraction=small_options["implant_fraction"],
            )
            assert plan.participant_dict["age"] == int(row.age)
            assert plan.participant_dict["discharge_LEMS"] == int(row.discharge_LEMS)
            scans = gt_scans[(gt_scans.site == root.name) & (gt_scans["sub"] == plan.sub)]
            assert len(scans) == len(plan.scans)
            assert (scans.implant == (row.implants == "yes")).all()
            assert (scans.n_lesions == len(plan.lesions)).all()


def test_follow_up_session_is_the_same_anatomy(small_cohort, gt_scans):
    """ses-01 and ses-02 of a subject differ in orientation but agree in world space."""
    out = small_cohort.out_dir
    pair = gt_scans[(gt_scans.site == "site2") & (gt_scans["sub"] == "02")].sort_values("ses")
    assert list(pair.ses) == ["01", "02"]
    assert pair.orientation.nunique() == 2
    centres = []
    for row in pair.itertuples():
        cord = load_nifti(out / row.cord_mask_path)
        data, aff = (cord.data, cord.affine)
        idx = np.argwhere(data)
        world = idx @ aff[:3, :3].T + aff[:3, 3]
        zs = np.unique(np.round(world[:, 2], 3))
        centres.append({z: world[np.round(world[:, 2], 3) == z, :2].mean(axis=0) for z in zs})
    a, b = centres
    zb = np.array(sorted(b))
    xb = np.array([b[z][0] for z in zb])
    yb = np.array([b[z][1] for z in zb])
    checked = 0
    for z, (x, y) in a.items():
        if zb[0] < z < zb[-1]:
            assert abs(np.interp(z, zb, xb) - x) <= 0.7  # one in-plane voxel
            assert abs(np.interp(z, zb, yb) - y) <= 0.7
            checked += 1
    assert checked >= 20
