"""Alignment of a follow-up session to its baseline (:mod:`cohort_sciseg.longitudinal.align`).

Expected motions come from the test's own construction: the scene of ``longitudinal_scene.py`` is rendered
analytically on each grid, the follow-up through a known rigid motion.
"""

from __future__ import annotations

import numpy as np
import pytest
from longitudinal_scene import oblique_affine, render, rigid, world_grid
from scipy import ndimage
from scipy.spatial.transform import Rotation

from cohort_sciseg.io import Volume, load_nifti
from cohort_sciseg.longitudinal import (
    Alignment,
    LongitudinalError,
    align_sessions,
    resample_to_baseline,
)

SHAPE = (40, 44, 56)  # non-cubic on purpose
VOXEL = (0.9, 1.0, 1.3)
MOTION = ((3.0, -2.0, 4.0), (2.0, -1.5, 3.0))  # degrees about x, y, z; mm


def _pair(b_angles, f_angles, motion=MOTION):
    b_aff = oblique_affine(SHAPE, VOXEL, b_angles)
    f_aff = oblique_affine(SHAPE, VOXEL, f_angles)
    true = rigid(*motion)  # follow-up world -> scene (= baseline world)
    b_img, b_cord = render(SHAPE, b_aff)
    f_img, f_cord = render(SHAPE, f_aff, true)
    return Volume(b_img, b_aff, None), b_cord, Volume(f_img, f_aff, None), f_cord, true


def _errors(result: Alignment, true: np.ndarray, f_aff: np.ndarray, f_cord: np.ndarray) -> tuple[float, float]:
    """(rotation error in degrees, largest displacement error over the follow-up cord in mm)."""
    rot_err = np.degrees(Rotation.from_matrix(result.matrix[:3, :3].T @ true[:3, :3]).magnitude())
    pts = np.c_[world_grid(SHAPE, f_aff)[f_cord], np.ones(int(f_cord.sum()))]
    disp_err = np.abs(pts @ result.matrix.T - pts @ true.T).max()
    return float(rot_err), float(disp_err)


@pytest.mark.parametrize(
    ("b_angles", "f_angles"),
    [((0, 0, 0), (0, 0, 0)), ((0, 0, 0), (15, -10, 5)), ((10, 5, -20), (-5, 12, 5))],
    ids=["axis-aligned", "oblique-follow-up", "both-oblique"],
)
def test_recovers_known_rigid_motion(b_angles, f_angles):
    base, b_cord, follow, f_cord, true = _pair(b_angles, f_angles)
    result = align_sessions(base, b_cord, follow, f_cord)
    assert result.ok, result.message
    assert result.message is None
    rot_err, disp_err = _errors(result, true, follow.affine, f_cord)
    assert rot_err < 1.0
    assert disp_err < min(VOXEL)
    # reported motion: the rotation of the known motion, the displacement at the follow-up cord centroid
    np.testing.assert_allclose(result.rotation_deg, Rotation.from_matrix(true[:3, :3]).as_euler("xyz", degrees=True),
                               atol=1.0)
    centroid = np.append(world_grid(SHAPE, follow.affine)[f_cord].mean(axis=0), 1.0)
    np.testing.assert_allclose(result.translation_mm, (true @ centroid - centroid)[:3], atol=min(VOXEL))
    assert result.cord_dice > 0.85
    assert result.iterations > 0
    assert result.seconds > 0
    assert np.isfinite(result.metric_value)


def test_affine_and_mean_squares_options():
    base, b_cord, follow, f_cord, true = _pair((0, 0, 0), (15, -10, 5))
    for kw in ({"transform": "affine"}, {"metric": "mean_squares"}):
        result = align_sessions(base, b_cord, follow, f_cord, **kw)
        assert result.ok, (kw, result.message)
        assert _errors(result, true, follow.affine, f_cord)[1] < min(VOXEL)


def test_same_inputs_give_the_same_alignment():
    base, b_cord, follow, f_cord, _ = _pair((0, 0, 0), (15, -10, 5))
    a = align_sessions(base, b_cord, follow, f_cord)
    b = align_sessions(base, b_cord, follow, f_cord)
    np.testing.assert_allclose(a.matrix, b.matrix, rtol=0, atol=1e-9)


def test_empty_follow_up_cord_is_not_ok():
    base, b_cord, follow, f_cord, _ = _pair((0, 0, 0), (0, 0, 0))
    result = align_sessions(base, b_cord, follow, np.zeros_like(f_cord), scan_id="sub-01_ses-02")
    assert not result.ok
    assert result.message is not None
    assert "scan 'sub-01_ses-02': follow-up cord mask is empty" in result.message
    assert "Fix:" in result.message
    np.testing.assert_array_equal(result.matrix, np.eye(4))
    assert result.cord_dice == 0.0


def test_mask_off_the_image_grid_is_not_ok():
    base, b_cord, follow, f_cord, _ = _pair((0, 0, 0), (0, 0, 0))
    result = align_sessions(base, b_cord[:-1], follow, f_cord)
    assert not result.ok
    assert result.message is not None
    assert "baseline cord mask has shape (39, 44, 56), its image (40, 44, 56)" in result.message


def test_unrelated_follow_up_is_flagged():
    # a follow-up "cord" that is a 3 mm ball in noise: nothing to align, the cord Dice says so
    base, b_cord, follow, _, _ = _pair((0, 0, 0), (0, 0, 0))
    rng = np.random.default_rng(7)
    noise = rng.normal(200, 50, SHAPE).astype(np.float32)
    pts = world_grid(SHAPE, follow.affine)
    ball = np.linalg.norm(pts - (5.0, 5.0, 0.0), axis=-1) <= 3.0
    result = align_sessions(base, b_cord, Volume(noise, follow.affine, None), ball, min_cord_dice=0.7)
    assert not result.ok
    assert result.message is not None
    # the optimiser wanders (no convergence) or stops somewhere: either way the cord does not match
    assert ("cord Dice after alignment is" in result.message and "expected >= 0.7" in result.message) or (
        "the optimiser did not converge" in result.message)
    assert result.cord_dice < 0.7


def test_simpleitk_failure_becomes_a_message():
    # one-voxel cords and no margin: too few samples for the metric, SimpleITK raises
    base, _, follow, _, _ = _pair((0, 0, 0), (0, 0, 0))
    dot = np.zeros(SHAPE, dtype=bool)
    dot[20, 22, 28] = True
    result = align_sessions(base, dot, follow, dot, margin_mm=0.0)
    assert not result.ok
    assert result.message is not None
    assert "SimpleITK registration failed" in result.message
    assert "Traceback" not in result.message


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"transform": "bspline"}, "transform='bspline'"), ({"metric": "ncc"}, "metric='ncc'"),
     ({"min_cord_dice": 1.5}, "min_cord_dice=1.5"), ({"margin_mm": -1.0}, "margin_mm=-1.0"),
     ({"threads": 0}, "threads=0"), ({"sampling": 0.0}, "sampling=0.0")],
)
def test_invalid_options_raise(kw, match):
    base, b_cord, follow, f_cord, _ = _pair((0, 0, 0), (0, 0, 0))
    with pytest.raises(LongitudinalError, match=match):
        align_sessions(base, b_cord, follow, f_cord, **kw)


def test_resample_to_baseline_moves_labels_by_the_matrix():
    # follow-up grid = baseline grid shifted by (2, -3, 1) voxels; motion = identity
    b_aff = oblique_affine(SHAPE, VOXEL, (10, 0, 5))
    f_aff = b_aff.copy()
    f_aff[:3, 3] += b_aff[:3, :3] @ np.array([2.0, -3.0, 1.0])
    labels = np.zeros(SHAPE, dtype=np.int32)
    labels[10:14, 10:20, 5:9] = 3
    labels[30:33, 30:35, 40:50] = 7
    out = resample_to_baseline(labels, f_aff, np.eye(4), SHAPE, b_aff)
    assert out.dtype == np.int32
    expected = np.zeros(SHAPE, dtype=np.int32)
    expected[12:16, 7:17, 6:10] = 3
    expected[32:35, 27:32, 41:51] = 7
    np.testing.assert_array_equal(out, expected)
    # a translation of the world by one voxel along array axis 0 undoes a one-voxel grid shift
    move = np.eye(4)
    move[:3, 3] = -b_aff[:3, :3] @ np.array([2.0, -3.0, 1.0])
    back = resample_to_baseline(labels > 0, f_aff, move, SHAPE, b_aff)
    assert back.dtype == np.bool_
    np.testing.assert_array_equal(back, labels > 0)


def test_resample_to_baseline_rejects_4d():
    with pytest.raises(LongitudinalError, match="mask has 4 dimensions"):
        resample_to_baseline(np.zeros((2, 2, 2, 2)), np.eye(4), np.eye(4), (2, 2, 2), np.eye(4))


# --------------------------------------------------------------------------- real scan


def _moved(data: np.ndarray, affine: np.ndarray, motion: np.ndarray, order: int) -> np.ndarray:
    """``data`` as seen after the subject moved: follow-up voxel v shows baseline world motion(A v)."""
    vox = np.linalg.inv(affine) @ motion @ affine
    return ndimage.affine_transform(np.asarray(data, dtype=np.float32), vox[:3, :3], offset=vox[:3, 3],
                                    order=order, mode="constant", cval=0.0)


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_scan_known_motion_is_recovered(spine_t2w):
    image = load_nifti(spine_t2w / "sub-errsm11" / "anat" / "sub-errsm11_T2w.nii.gz")
    cord_path = next((spine_t2w / "derivatives" / "labels" / "sub-errsm11" / "anat").glob("*seg-manual*"))
    cord = np.asarray(load_nifti(cord_path).data) > 0.5
    aff = image.affine
    centre = tuple((aff @ np.append(np.argwhere(cord).mean(axis=0), 1.0))[:3])
    true = rigid((3.0, 1.0, -1.5), (1.0, 2.5, -2.0), centre)
    follow = Volume(_moved(image.data, aff, true, 1), aff, None)
    f_cord = _moved(cord, aff, true, 1) > 0.5
    result = align_sessions(image, cord, follow, f_cord)
    assert result.ok, result.message
    rot_err = np.degrees(Rotation.from_matrix(result.matrix[:3, :3].T @ true[:3, :3]).magnitude())
    pts = np.c_[np.argwhere(f_cord), np.ones(int(f_cord.sum()))] @ aff.T
    disp_err = np.abs(pts @ result.matrix.T - pts @ true.T).max()
    assert rot_err < 1.0
    assert disp_err < min(image.voxel_size_mm)


def test_thick_slice_axial_sessions_of_the_synthetic_cohort(tmp_path):
    """Site 2 of synthesize_cohort: axial 0.7 x 0.7 x 5 mm, the follow-up in another orientation, no motion.

    Mattes mutual information wanders off on these thick slices; the mean-squares retry must give a
    transform within a slice of the identity (the truth: the subject did not move).
    """
    import nibabel as nib

    from cohort_sciseg.io import load_nifti
    from cohort_sciseg.synth import synthesize_cohort

    cohort = synthesize_cohort(tmp_path / "c", sites=2, subjects_per_site=2, seed=0, implant_fraction=0.0)
    root = cohort.out_dir / "site2"
    vols, cords = [], []
    for ses in ("01", "02"):
        vols.append(load_nifti(root / "sub-02" / f"ses-{ses}" / "anat" / f"sub-02_ses-{ses}_acq-ax_T2w.nii.gz"))
        label = next((root / "derivatives" / "labels" / "sub-02" / f"ses-{ses}" / "anat").glob("*seg-manual*"))
        cords.append(np.asarray(load_nifti(label).data) > 0)
    a = align_sessions(vols[0], cords[0], vols[1], cords[1])
    assert a.ok, a.message
    xyz = nib.affines.apply_affine(vols[1].affine, np.argwhere(cords[1]))
    shift = np.linalg.norm(nib.affines.apply_affine(a.matrix, xyz) - xyz, axis=1)
    assert shift.max() < 5.0  # within one slice
