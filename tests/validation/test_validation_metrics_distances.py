"""Distances against an independent brute-force implementation (cdist on voxel centres in mm)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from cohort_sciseg.validation.distances import contour
from cohort_sciseg.validation.metrics import compute_metrics

SHAPE = (14, 11, 9)
SPACING = (0.8, 1.3, 2.0)


def brute_surface(mask: np.ndarray) -> np.ndarray:
    """Surface voxel indices (ITK order: axis 0 fastest), by looking at each face neighbour."""
    pts = []
    nx, ny, nz = mask.shape
    for k, j, i in itertools.product(range(nz), range(ny), range(nx)):
        if not mask[i, j, k]:
            continue
        for di, dj, dk in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
            a, b, c = i + di, j + dj, k + dk
            if 0 <= a < nx and 0 <= b < ny and 0 <= c < nz and not mask[a, b, c]:
                pts.append((i, j, k))
                break
    return np.array(pts, dtype=float).reshape(-1, 3)


def brute(
    pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, float, float]
) -> dict[str, float]:
    sp = np.asarray(spacing)
    ps, rs = brute_surface(pred) * sp, brute_surface(ref) * sp
    d = cdist(ps, rs)
    d_p, d_r = d.min(axis=1), d.min(axis=0)
    # ANIMA's loops: the running minimum is never reset (and starts at 1e6).
    run_r = np.minimum.accumulate(np.minimum(d_r, 1e6))
    run_p = np.minimum.accumulate(np.minimum(d_p, 1e6))
    pv, rv = np.argwhere(pred) * sp, np.argwhere(ref) * sp
    whole = cdist(pv, rv)
    return {
        "assd": (d_p.sum() + d_r.sum()) / (d_p.size + d_r.size),
        "hd95": max(np.percentile(d_p, 95), np.percentile(d_r, 95)),
        "nsd1": (np.sum(d_p <= 1.0) + np.sum(d_r <= 1.0)) / (d_p.size + d_r.size),
        "cmd": max(d_p.mean(), d_r.mean()),
        "hd": max(whole.min(axis=1).max(), whole.min(axis=0).max()),
        "sd": (run_r.sum() + run_p.sum()) / (run_r.size + run_p.size),
    }


def blob(rng: np.random.Generator, shift: int = 0) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(SHAPE), 1.5)
    mask = field > np.quantile(field, 0.7)
    return np.roll(mask, shift, axis=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distances_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = blob(rng)
    pred = ref ^ (rng.random(SHAPE) < 0.08)
    res = compute_metrics(pred, ref, SPACING)
    exp = brute(pred, ref, SPACING)
    c, a = res.corrected, res.anima
    assert c["assd"] == pytest.approx(exp["assd"], rel=1e-9)
    assert c["hd95"] == pytest.approx(exp["hd95"], rel=1e-9)
    assert c["nsd_1mm"] == pytest.approx(exp["nsd1"], rel=1e-9)
    assert a["ContourMeanDistance"] == pytest.approx(exp["cmd"], rel=1e-9)
    assert a["HausdorffDistance"] == pytest.approx(exp["hd"], rel=1e-9)
    assert a["SurfaceDistance"] == pytest.approx(exp["sd"], rel=1e-9)


def test_surface_distance_running_minimum_collapses() -> None:
    # Two 4x4x4 cubes 3 voxels apart along axis 0 (unit grid): every contour voxel is >= 3
    # from the other contour, so the correct ASSD is >= 3 — and ANIMA's value equals it
    # only because no contour voxel touches. Overlapping them by one voxel layer makes the
    # first shared contour voxel zero the running minimum for every later voxel.
    ref = np.zeros((16, 7, 6), bool)
    ref[2:6, 1:5, 1:5] = True
    pred = np.zeros_like(ref)
    pred[5:9, 1:5, 1:5] = True
    res = compute_metrics(pred, ref, (1.0, 1.0, 1.0))
    exp = brute(pred, ref, (1.0, 1.0, 1.0))
    assert res.anima["SurfaceDistance"] == pytest.approx(exp["sd"])
    assert res.anima["SurfaceDistance"] < res.corrected["assd"]


def test_contour_excludes_the_image_border() -> None:
    m = np.zeros((6, 5, 4), bool)
    m[0:3] = True  # a slab filling y and z, touching the x = 0 border
    c = contour(m)
    assert c.sum() == 5 * 4
    assert c[2].all()
    assert not c[:2].any()
    assert {tuple(v) for v in np.argwhere(c)} == {tuple(v) for v in brute_surface(m).astype(int)}


def test_border_touching_slabs_have_analytic_distances() -> None:
    ref = np.zeros((6, 5, 4), bool)
    ref[0:3] = True
    pred = np.zeros_like(ref)
    pred[0:4] = True
    res = compute_metrics(pred, ref, (2.0, 1.0, 1.0))
    # Contours are the planes x = 2 and x = 3 only (the border is not background): 2 mm apart.
    assert res.anima["ContourMeanDistance"] == 2.0
    assert res.anima["HausdorffDistance"] == 2.0
    assert res.corrected["assd"] == 2.0
    assert res.corrected["nsd_1mm"] == 0.0


def test_units_voxel_versus_mm() -> None:
    ref = np.zeros((12, 9, 7), bool)
    ref[2:5, 2:5, 2:5] = True
    pred = np.zeros_like(ref)
    pred[4:7, 2:5, 2:5] = True
    mm = compute_metrics(pred, ref, (0.5, 1.0, 1.0), units="mm")
    vox = compute_metrics(pred, ref, (0.5, 1.0, 1.0), units="voxel")
    # A 2-voxel shift along axis 0: 1 mm at 0.5 mm spacing, 2 voxels on a unit grid.
    assert mm.anima["HausdorffDistance"] == 1.0
    assert vox.anima["HausdorffDistance"] == 2.0
    assert mm.corrected["hd95"] == 1.0
    assert vox.corrected["hd95"] == 2.0
    assert (mm.units, vox.units) == ("mm", "voxel")
    assert mm.voxel_size_mm == vox.voxel_size_mm == (0.5, 1.0, 1.0)
    # Overlap measures do not depend on units.
    assert mm.anima["Dice"] == vox.anima["Dice"]


def test_oblique_anisotropic_affine_uses_world_distances(tmp_path) -> None:
    """Files on an oblique, anisotropic grid: distances are world distances (affine applied)."""
    import nibabel as nib

    from cohort_sciseg.validation.metrics import compute_metrics_files

    angle = np.deg2rad(25.0)
    rot = np.array(
        [[np.cos(angle), 0.0, np.sin(angle)], [0.0, 1.0, 0.0], [-np.sin(angle), 0.0, np.cos(angle)]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(SPACING)
    affine[:3, 3] = (-12.5, 40.0, 3.25)
    rng = np.random.default_rng(7)
    ref = blob(rng)
    pred = np.roll(ref, 1, axis=2) ^ (rng.random(SHAPE) < 0.05)
    paths = []
    for name, mask in (("pred", pred), ("ref", ref)):
        paths.append(tmp_path / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), paths[-1])
    res = compute_metrics_files(paths[0], paths[1])
    affine = nib.load(paths[1]).affine  # as stored (float32 in the header)

    def world(idx: np.ndarray) -> np.ndarray:
        return idx @ affine[:3, :3].T + affine[:3, 3]

    d = cdist(world(brute_surface(pred)), world(brute_surface(ref)))
    d_p, d_r = d.min(axis=1), d.min(axis=0)
    assert res.corrected["assd"] == pytest.approx((d_p.sum() + d_r.sum()) / (d_p.size + d_r.size), rel=1e-6)  # float32 header
    assert res.corrected["hd95"] == pytest.approx(max(np.percentile(d_p, 95), np.percentile(d_r, 95)), rel=1e-6)  # float32 header
