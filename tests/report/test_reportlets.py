"""Per-scan QC reportlets: files, display orientation, contours, lesion numbering, errors.

Phantoms are built in SCT's RPI (nibabel LAS: x runs Right->left, y Posterior->anterior,
z Inferior->superior) on a non-cubic, anisotropic grid, then stored in other orientations by
transposing/flipping the array and composing the affine by hand (independent of the
package's ``reorient``). Expected pixel positions and sizes follow from the display
convention of the module docstring (sagittal: superior up, anterior left; axial: anterior
up, patient's right on the viewer's left).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from cohort_sciseg.errors import GeometryError, ReportError
from cohort_sciseg.morphometry import measure_lesions
from cohort_sciseg.report import Reportlet, render_reportlets
from cohort_sciseg.report.reportlets import (
    AXIAL_PANEL_PX,
    CORD_RGB,
    GAP_RGB,
    LESION_PANEL_PX,
    LESION_RGB,
    MAX_WIDTH_PX,
)

SHAPE = (40, 48, 30)  # RPI: x (R->L), y (P->A), z (I->S)
ZOOMS = (0.8, 0.6, 2.0)  # mm
CORD_XY = (20, 24)  # voxel centre of the tube
LESION_A = (slice(19, 22), slice(23, 26), slice(18, 21))  # 3 x 3 x 3 voxels, superior -> id 1
LESION_B = (slice(18, 23), slice(22, 27), slice(8, 12))  # 5 x 5 x 4 voxels, inferior -> id 2


def rpi_affine(zooms=ZOOMS, origin=(12.0, -30.0, -40.0)) -> np.ndarray:
    aff = np.diag([-zooms[0], zooms[1], zooms[2], 1.0])
    aff[:3, 3] = origin
    return aff


def store(data: np.ndarray, affine: np.ndarray, perm, flips) -> tuple[np.ndarray, np.ndarray]:
    """``data`` with axes ``perm`` (new axis a = old axis perm[a]), flipped along the new
    axes ``flips``, and the affine that keeps every voxel at its world position."""
    out = (
        np.flip(np.transpose(data, perm), axis=tuple(flips)) if flips else np.transpose(data, perm)
    )
    m = np.zeros((4, 4))
    m[3, 3] = 1.0
    for new_ax, old_ax in enumerate(perm):
        if new_ax in flips:
            m[old_ax, new_ax] = -1.0
            m[old_ax, 3] = data.shape[old_ax] - 1
        else:
            m[old_ax, new_ax] = 1.0
    return np.ascontiguousarray(out), affine @ m


def rotation_x(degrees: float) -> np.ndarray:
    t = math.radians(degrees)
    r = np.eye(4)
    r[1:3, 1:3] = [[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]]
    return r


def save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def phantom(rng, *, lesions=(LESION_A, LESION_B), cord=True):
    """Image, cord and lesion arrays (RPI) of a straight tube cord with box lesions."""
    x, y = np.meshgrid(np.arange(SHAPE[0]), np.arange(SHAPE[1]), indexing="ij")
    disc = ((x - CORD_XY[0]) * ZOOMS[0]) ** 2 + ((y - CORD_XY[1]) * ZOOMS[1]) ** 2 <= 4.0**2
    cord_arr = np.zeros(SHAPE, dtype=np.uint8)
    if cord:
        cord_arr[:, :, 3:27] = disc[:, :, None]
    lesion_arr = np.zeros(SHAPE, dtype=np.uint8)
    for box in lesions:
        lesion_arr[box] = 1
    image = 100.0 + 10.0 * rng.standard_normal(SHAPE)
    image[disc] += 200.0
    image[lesion_arr > 0] += 300.0
    return image.astype(np.float32), cord_arr, lesion_arr


def write_scan(tmp_path: Path, arrays, affine, perm=(0, 1, 2), flips=(), tag="rpi"):
    paths = []
    for name, arr in zip(("image", "cord", "lesion"), arrays, strict=True):
        data, aff = store(arr, affine, perm, flips)
        paths.append(save(tmp_path / f"{tag}_{name}.nii.gz", data, aff))
    return paths


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def colour_mask(rgb: np.ndarray, colour) -> np.ndarray:
    return np.all(rgb == np.asarray(colour, dtype=np.uint8), axis=2)


def panels(rgb: np.ndarray) -> list[np.ndarray]:
    """Split a mosaic at the full-height gap columns and full-width gap rows."""
    gap = colour_mask(rgb, GAP_RGB)

    def runs(keep: np.ndarray) -> list[slice]:
        idx = np.flatnonzero(keep)
        cuts = np.flatnonzero(np.diff(idx) > 1)
        starts = [idx[0], *idx[cuts + 1]]
        stops = [*idx[cuts], idx[-1]]
        return [slice(int(a), int(b) + 1) for a, b in zip(starts, stops, strict=True)]

    row_runs = runs(~gap.all(axis=1))
    col_runs = runs(~gap.all(axis=0))
    return [rgb[r, c] for r in row_runs for c in col_runs]


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


@pytest.fixture
def scan(tmp_path, rng):
    return write_scan(tmp_path, phantom(rng), rpi_affine())


def test_files_are_pngs_of_the_returned_size(scan, tmp_path):
    out = tmp_path / "qc"
    got = render_reportlets(*scan, out)
    assert [r.kind for r in got] == ["sagittal", "axial", "lesion", "lesion"]
    assert [r.file for r in got] == ["sagittal.png", "axial.png", "lesion-1.png", "lesion-2.png"]
    assert all(isinstance(r, Reportlet) for r in got)
    for r in got:
        with Image.open(out / r.file) as im:
            assert im.format == "PNG"
            assert im.mode == "RGB"
            assert im.size == (r.width, r.height)
            im.verify()
        assert r.width <= MAX_WIDTH_PX
        assert (out / r.file).stat().st_size < 200_000
    assert got[0].caption == f"Sagittal slices through the cord (3 of {SHAPE[0]})"
    assert (
        got[1].caption == f"Axial slices through the cord, superior to inferior (12 of {SHAPE[2]})"
    )
    # 12 axial panels of AXIAL_PANEL_PX in 2 rows of 6.
    ax = read_rgb(out / "axial.png")
    tiles = panels(ax)
    assert len(tiles) == 12
    assert all(t.shape[:2] == (AXIAL_PANEL_PX, AXIAL_PANEL_PX) for t in tiles)
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_lesion_ids_follow_the_morphometry_labelling(scan, tmp_path, rng):
    got = render_reportlets(*scan, tmp_path / "qc")
    lesions = [r for r in got if r.kind == "lesion"]
    cord = np.asarray(nib.load(scan[1]).dataobj)
    les = np.asarray(nib.load(scan[2]).dataobj)
    table = measure_lesions(cord, les, rpi_affine()).lesions.to_pylist()
    assert [r.lesion_id for r in lesions] == [row["lesion_id"] for row in table] == [1, 2]
    vox = math.prod(ZOOMS)
    # Lesion 1 is the superior one (A: z 18-20, 27 voxels); lesion 2 is B (z 8-11, 100 voxels).
    assert lesions[0].caption == f"Lesion 1: {27 * vox:.1f} mm3, slices 18-20"
    assert lesions[1].caption == f"Lesion 2: {100 * vox:.1f} mm3, slices 8-11"
    for r, row in zip(lesions, table, strict=True):
        assert f"{row['volume_mm3']:.1f} mm3" in r.caption
        assert r.file == f"lesion-{row['lesion_id']}.png"


def test_same_scan_in_any_stored_orientation_gives_identical_pngs(tmp_path, rng):
    arrays = phantom(rng)
    aff = rpi_affine()
    variants = {
        # tag: (perm, flips, nibabel axcodes it must have, affine)
        "rpi": ((0, 1, 2), (), ("L", "A", "S"), aff),
        "las": ((0, 1, 2), (0, 1, 2), ("R", "P", "I"), aff),  # SCT "LAS"
        "ail": ((1, 2, 0), (0, 2), ("P", "S", "R"), aff),  # as the real errsm scans
        "oblique": ((2, 0, 1), (1,), ("S", "R", "A"), rotation_x(10.0) @ aff),
    }
    images = {}
    for tag, (perm, flips, codes, affine) in variants.items():
        paths = write_scan(tmp_path, arrays, affine, perm, flips, tag=tag)
        assert nib.aff2axcodes(nib.load(paths[0]).affine) == codes
        out = tmp_path / f"qc_{tag}"
        got = render_reportlets(*paths, out)
        images[tag] = {r.file: read_rgb(out / r.file) for r in got}
    ref = images.pop("rpi")
    assert sorted(ref) == ["axial.png", "lesion-1.png", "lesion-2.png", "sagittal.png"]
    for tag, imgs in images.items():
        assert sorted(imgs) == sorted(ref), tag
        for name, arr in imgs.items():
            np.testing.assert_array_equal(arr, ref[name], err_msg=f"{tag}: {name}")


def test_display_orientation_sagittal_superior_up_anterior_left(tmp_path):
    # Bright plate in the superior-anterior quarter of every sagittal slice; no cord, so the
    # view is the whole field of view.
    img = np.zeros(SHAPE, dtype=np.float32)
    img[:, 36:, 22:] = 1000.0
    aff = rpi_affine()
    empty = np.zeros(SHAPE, dtype=np.uint8)
    paths = write_scan(tmp_path, (img, empty, empty), aff, (1, 2, 0), (0, 2), tag="ail")
    got = render_reportlets(*paths, tmp_path / "qc")
    assert "no cord found" in got[0].caption
    tiles = panels(read_rgb(tmp_path / "qc" / "sagittal.png"))
    assert len(tiles) == 3
    for t in tiles:
        h, w = t.shape[:2]
        bright = t[:, :, 0] > 128
        # Quarter of the plane: rows above 8/30 of the height, columns left of 12/48 of the width.
        r0, r1, c0, c1 = bbox(bright)
        assert (r0, c0) == (0, 0)
        assert r1 == pytest.approx(8 / 30 * h - 1, abs=1.5)
        assert c1 == pytest.approx(12 / 48 * w - 1, abs=1.5)


def test_display_orientation_axial_anterior_up_right_on_the_left(tmp_path):
    # Bright column anterior (y >= 36) and on the patient's right (x < 10, RPI x runs R->L).
    img = np.zeros(SHAPE, dtype=np.float32)
    img[:10, 36:, :] = 1000.0
    empty = np.zeros(SHAPE, dtype=np.uint8)
    paths = write_scan(tmp_path, (img, empty, empty), rpi_affine(), (0, 1, 2), (0, 1, 2), tag="las")
    # A 40 mm view holds the whole 32 x 28.8 mm plane.
    got = render_reportlets(*paths, tmp_path / "qc", size_mm=40.0)
    assert "no cord found" in got[1].caption
    tiles = panels(read_rgb(tmp_path / "qc" / "axial.png"))
    pix = 40.0 / AXIAL_PANEL_PX
    for t in tiles:
        r0, r1, c0, c1 = bbox(t[:, :, 0] > 128)
        # The plane (28.8 mm A-P rows, 32 mm R-L columns) is centred in the panel.
        top = AXIAL_PANEL_PX / 2 - 28.8 / 2 / pix
        left = AXIAL_PANEL_PX / 2 - 32.0 / 2 / pix
        assert r0 == pytest.approx(top, abs=1.5)
        assert r1 == pytest.approx(top + 12 * 0.6 / pix - 1, abs=1.5)
        assert c0 == pytest.approx(left, abs=1.5)
        assert c1 == pytest.approx(left + 10 * 0.8 / pix - 1, abs=1.5)


def test_lesion_contour_is_where_the_lesion_is(scan, tmp_path):
    out = tmp_path / "qc"
    got = render_reportlets(*scan, out, size_mm=30.0)
    pix = 30.0 / LESION_PANEL_PX
    les = read_rgb(out / "lesion-2.png")  # B: 5 x 5 x 4 voxels
    sag, ax = panels(les)
    assert sag.shape[:2] == ax.shape[:2] == (LESION_PANEL_PX, LESION_PANEL_PX)
    assert (got[3].width, got[3].height) == (2 * LESION_PANEL_PX + 4, LESION_PANEL_PX)
    centre = (LESION_PANEL_PX - 1) / 2
    # Sagittal: rows = S-I (4 slices of 2 mm), columns = A-P (5 voxels of 0.6 mm).
    r0, r1, c0, c1 = bbox(colour_mask(sag, LESION_RGB))
    assert r1 - r0 + 1 == pytest.approx(4 * 2.0 / pix, abs=2)
    assert c1 - c0 + 1 == pytest.approx(5 * 0.6 / pix, abs=2)
    assert (r0 + r1) / 2 == pytest.approx(centre, abs=1.5)
    assert (c0 + c1) / 2 == pytest.approx(centre, abs=1.5)
    # Axial: rows = A-P (5 x 0.6 mm), columns = R-L (5 x 0.8 mm).
    r0, r1, c0, c1 = bbox(colour_mask(ax, LESION_RGB))
    assert r1 - r0 + 1 == pytest.approx(5 * 0.6 / pix, abs=2)
    assert c1 - c0 + 1 == pytest.approx(5 * 0.8 / pix, abs=2)
    # A contour, not a fill: the lesion's centre keeps the image's grey.
    assert not colour_mask(ax, LESION_RGB)[int(centre), int(centre)]
    # The cord contour (a 4 mm radius disc) surrounds it in the axial view.
    r0, r1, c0, c1 = bbox(colour_mask(ax, CORD_RGB))
    assert r1 - r0 + 1 == pytest.approx(8.0 / pix, abs=0.6 / pix + 2)
    assert c1 - c0 + 1 == pytest.approx(8.0 / pix, abs=0.8 / pix + 2)
    # In the overview, lesion pixels are only in the middle sagittal panel (the lesions are
    # within 4 mm of the cord's centre, the side panels are 4 mm away).
    side1, mid, side2 = panels(read_rgb(out / "sagittal.png"))
    assert colour_mask(mid, LESION_RGB).any()
    assert not colour_mask(side1, LESION_RGB).any()
    assert not colour_mask(side2, LESION_RGB).any()


def test_empty_lesion_mask_draws_no_lesion_colour(tmp_path, rng):
    paths = write_scan(tmp_path, phantom(rng, lesions=()), rpi_affine())
    got = render_reportlets(*paths, tmp_path / "qc")
    assert [r.kind for r in got] == ["sagittal", "axial"]
    for r in got:
        rgb = read_rgb(tmp_path / "qc" / r.file)
        assert not colour_mask(rgb, LESION_RGB).any()
        assert colour_mask(rgb, CORD_RGB).any()
    # No lesion file at all is the same as an empty one.
    got2 = render_reportlets(paths[0], paths[1], None, tmp_path / "qc2")
    for a, b in zip(got, got2, strict=True):
        np.testing.assert_array_equal(
            read_rgb(tmp_path / "qc" / a.file), read_rgb(tmp_path / "qc2" / b.file)
        )


def test_empty_cord_still_renders(tmp_path, rng):
    paths = write_scan(tmp_path, phantom(rng, cord=False), rpi_affine())
    got = render_reportlets(*paths, tmp_path / "qc")
    assert [r.kind for r in got] == ["sagittal", "axial", "lesion", "lesion"]
    assert "no cord found" in got[0].caption
    assert "no cord found" in got[1].caption
    for r in got:
        rgb = read_rgb(tmp_path / "qc" / r.file)
        assert not colour_mask(rgb, CORD_RGB).any()
    # Lesions outside the (empty) cord: reported with their outside volume.
    assert (
        got[2].caption
        == f"Lesion 1: 0.0 mm3, slices 18-20 (+{27 * math.prod(ZOOMS):.1f} mm3 outside the cord)"
    )


def test_constant_image_gives_no_nan_or_warning(tmp_path):
    img = np.full(SHAPE, 7.0, dtype=np.float32)
    empty = np.zeros(SHAPE, dtype=np.uint8)
    paths = write_scan(tmp_path, (img, empty, empty), rpi_affine())
    with np.errstate(all="raise"):
        got = render_reportlets(*paths, tmp_path / "qc")
    for r in got:
        rgb = read_rgb(tmp_path / "qc" / r.file)
        assert set(np.unique(rgb[~colour_mask(rgb, GAP_RGB)])) <= {0}


@pytest.mark.parametrize(
    ("shape", "zooms"),
    [((1, 20, 160), (1.0, 2.0, 0.5)), ((1, 80, 40), (1.0, 0.5, 2.0))],
    ids=["2mm-AP", "2mm-SI"],
)
def test_view_size_follows_voxel_size(tmp_path, shape, zooms):
    # Both grids cover 40 mm A-P x 80 mm S-I: the one-slice sagittal view is twice as tall
    # as it is wide, whatever the voxel shape.
    img = np.arange(math.prod(shape), dtype=np.float32).reshape(shape)
    empty = np.zeros(shape, dtype=np.uint8)
    aff = rpi_affine(zooms)
    paths = [
        save(tmp_path / f"{n}.nii.gz", a, aff) for n, a in (("i", img), ("c", empty), ("l", empty))
    ]
    got = render_reportlets(*paths, tmp_path / "qc")
    sag = got[0]
    assert sag.caption == "Sagittal slices through the image centre (1 of 1); no cord found"
    assert (sag.width, sag.height) == (160, 320)


def test_max_lesions_keeps_the_largest_and_removes_stale_files(scan, tmp_path):
    out = tmp_path / "qc"
    render_reportlets(*scan, out)
    assert (out / "lesion-1.png").is_file()
    got = render_reportlets(*scan, out, max_lesions=1)
    assert [r.lesion_id for r in got if r.kind == "lesion"] == [2]  # B is larger
    assert sorted(p.name for p in out.iterdir()) == ["axial.png", "lesion-2.png", "sagittal.png"]
    got = render_reportlets(*scan, out, max_lesions=0)
    assert [r.kind for r in got] == ["sagittal", "axial"]
    assert sorted(p.name for p in out.iterdir()) == ["axial.png", "sagittal.png"]


def test_output_is_deterministic(scan, tmp_path):
    a = render_reportlets(*scan, tmp_path / "a")
    b = render_reportlets(*scan, tmp_path / "b")
    assert a == b
    for r in a:
        assert (tmp_path / "a" / r.file).read_bytes() == (tmp_path / "b" / r.file).read_bytes()


def test_single_frame_4d_image_and_soft_masks(scan, tmp_path, rng):
    img, cord, les = (np.asarray(nib.load(p).dataobj) for p in scan)
    aff = rpi_affine()
    soft = [
        save(tmp_path / "img4d.nii.gz", img[..., None], aff),
        save(tmp_path / "cord_soft.nii.gz", np.where(cord > 0, 0.6, 0.4).astype(np.float32), aff),
        save(tmp_path / "les_soft.nii.gz", np.where(les > 0, 0.9, 0.2).astype(np.float32), aff),
    ]
    a = render_reportlets(*scan, tmp_path / "a")
    b = render_reportlets(*soft, tmp_path / "b")
    assert a == b
    for r in a:
        np.testing.assert_array_equal(
            read_rgb(tmp_path / "a" / r.file), read_rgb(tmp_path / "b" / r.file)
        )


def test_mask_on_another_grid_raises_naming_the_file(scan, tmp_path):
    img, cord, les = scan
    other = save(
        tmp_path / "cord_other_grid.nii.gz", np.zeros((40, 48, 31), np.uint8), rpi_affine()
    )
    with pytest.raises(
        GeometryError, match=r"cord mask '.*cord_other_grid\.nii\.gz' does not match"
    ):
        render_reportlets(img, other, les, tmp_path / "qc")
    shifted = save(
        tmp_path / "les_shifted.nii.gz", np.zeros(SHAPE, np.uint8), rpi_affine(origin=(0, 0, 0))
    )
    with pytest.raises(GeometryError, match=r"lesion mask '.*les_shifted\.nii\.gz'.*origin"):
        render_reportlets(img, cord, shifted, tmp_path / "qc", scan_id="sub-01")
    assert not (tmp_path / "qc").exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_lesions": -1}, r"max_lesions=-1 is not valid; expected an integer >= 0"),
        ({"max_lesions": 2.5}, r"max_lesions=2\.5 is not valid"),
        ({"size_mm": 0.0}, r"size_mm=0\.0 is not valid; expected a finite number"),
        ({"size_mm": float("nan")}, r"size_mm=nan is not valid"),
    ],
)
def test_invalid_options_raise(scan, tmp_path, kwargs, match):
    with pytest.raises(ReportError, match=match):
        render_reportlets(*scan, tmp_path / "qc", **kwargs)


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("sub", "cord_suffix", "lesion_suffix"),
    [("sctfakelesion", "seg-scisegv2", "lesion-scisegv2"), ("errsm11", "seg-manual", None)],
)
def test_real_scan(spine_t2w, tmp_path, sub, cord_suffix, lesion_suffix):
    labels = spine_t2w / "derivatives" / "labels" / f"sub-{sub}" / "anat"
    image = spine_t2w / f"sub-{sub}" / "anat" / f"sub-{sub}_T2w.nii.gz"
    cord = labels / f"sub-{sub}_T2w_{cord_suffix}.nii.gz"
    lesion = None if lesion_suffix is None else labels / f"sub-{sub}_T2w_{lesion_suffix}.nii.gz"
    out = tmp_path / sub
    got = render_reportlets(image, cord, lesion, out, scan_id=sub)
    n_lesions = 0
    if lesion is not None:
        c, les = (np.asarray(nib.load(p).dataobj) for p in (cord, lesion))
        n_lesions = measure_lesions(c, les, nib.load(cord).affine).summary.n_lesions
        assert n_lesions >= 1
    assert [r.kind for r in got] == ["sagittal", "axial"] + ["lesion"] * n_lesions
    for r in got:
        assert re.fullmatch(r"(sagittal|axial|lesion-\d+)\.png", r.file)
        with Image.open(out / r.file) as im:
            assert im.size == (r.width, r.height)
        assert (out / r.file).stat().st_size > 1000
    assert "through the cord" in got[0].caption


def test_masks_and_analysis_in_memory_give_the_same_pngs_without_reading_or_measuring(
    scan, tmp_path, monkeypatch
):
    # What run hands over: the masks it holds and their morphometry; the reportlets only draw.
    import cohort_sciseg.report.reportlets as reportlets

    from_files = render_reportlets(*scan, tmp_path / "files")
    cord = np.asarray(nib.load(scan[1]).dataobj)
    les = np.asarray(nib.load(scan[2]).dataobj)
    analysis = measure_lesions(cord, les, rpi_affine())  # with angle correction, as run measures

    def no_measure(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(reportlets, "measure_lesions", no_measure)
    missing = tmp_path / "absent.nii.gz"  # the mask files are not read
    got = render_reportlets(scan[0], missing, missing, tmp_path / "memory", masks=(cord, les), analysis=analysis)
    assert [(r.file, r.caption) for r in got] == [(r.file, r.caption) for r in from_files]
    for r in got:
        assert (tmp_path / "memory" / r.file).read_bytes() == (tmp_path / "files" / r.file).read_bytes()
