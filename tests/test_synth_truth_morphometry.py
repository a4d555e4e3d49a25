"""Morphometry of the synthetic cohort's manual masks against the generator's own ground truth.

The generator measures its lesions independently (``cohort_sciseg.synth.ground_truth``,
per-lesion voxel counts and per-slice damage ratios computed while rendering), so this
checks ``measure_lesions`` against a second implementation on curved cords, several
orientations, anisotropic and oblique grids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cohort_sciseg.io import load_nifti
from cohort_sciseg.morphometry import measure_lesions
from cohort_sciseg.synth import synthesize_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return synthesize_cohort(tmp_path_factory.mktemp("c") / "cohort", sites=3, subjects_per_site=3, seed=11)


def test_scan_totals_match_ground_truth(cohort):
    truth = pd.read_parquet(cohort.scans_table)
    assert len(truth) >= 9
    checked = 0
    for row in truth.itertuples():
        cord = load_nifti(cohort.out_dir / row.cord_mask_path)
        lesion = load_nifti(cohort.out_dir / row.lesion_mask_path)
        res = measure_lesions(cord.data, lesion.data, cord.affine, scan_id=row.scan_id)
        s = res.summary
        voxel = float(np.prod(cord.voxel_size_mm))
        # Synthetic lesions lie inside the cord: nothing outside, volumes exact.
        assert s.total_outside_cord_volume_mm3 == 0.0
        assert s.total_volume_mm3 == pytest.approx(row.lesion_voxels * voxel, rel=1e-9)
        assert s.cord_volume_mm3 == pytest.approx(row.cord_voxels * voxel, rel=1e-9)
        assert s.max_axial_damage_ratio == pytest.approx(row.max_axial_damage_ratio, rel=1e-9)
        # Touching ellipsoids may merge into one component, never split.
        assert s.n_lesions <= row.n_lesions
        assert (s.n_lesions == 0) == (row.n_lesions == 0)
        checked += 1
    assert checked == len(truth)


def test_lesion_volumes_match_ground_truth(cohort):
    truth = pd.read_parquet(cohort.lesions_table)
    scans = pd.read_parquet(cohort.scans_table).set_index("scan_id")
    compared = 0
    for scan_id, lesions in truth.groupby("scan_id"):
        s = scans.loc[scan_id]
        cord = load_nifti(cohort.out_dir / s.cord_mask_path)
        lesion = load_nifti(cohort.out_dir / s.lesion_mask_path)
        got = measure_lesions(cord.data, lesion.data, cord.affine).lesions.to_pandas()
        if len(got) != len(lesions):
            continue  # merged lesions: covered by the totals test
        want = lesions[lesions.n_voxels > 0].sort_values("center_z_mm", ascending=False)
        np.testing.assert_allclose(got["volume_mm3"].to_numpy(), want["voxel_volume_mm3"].to_numpy(), rtol=1e-9)
        np.testing.assert_allclose(
            got["max_axial_damage_ratio"].to_numpy(), want["max_axial_damage_ratio"].to_numpy(), rtol=1e-9
        )
        compared += len(got)
    assert compared >= 5
