"""Voxel spacing of the safe loader: sform when valid, else qform; never a silent change.

Headers are written byte by byte (nibabel's writer would repair them), NIfTI-1 and
NIfTI-2, with anisotropic, non-cubic images; expected spacings are the values put in
the header, and affines are checked against nibabel's own qform/sform arithmetic.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cohort_sciseg.errors import NiftiError
from cohort_sciseg.io import MAX_VOXEL_MM, MIN_VOXEL_MM, load_nifti, read_header

SHAPE = (7, 8, 9)
ZOOMS = (0.5, 0.7, 3.0)
HEADERS = pytest.mark.parametrize("klass", [nib.Nifti1Header, nib.Nifti2Header], ids=["nifti1", "nifti2"])


def _affine(zooms=ZOOMS, angle: float = 0.0) -> np.ndarray:
    """Oblique (rotation ``angle`` about z) affine with the given column norms."""
    c, s = np.cos(angle), np.sin(angle)
    aff = np.eye(4)
    aff[:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag(zooms)
    aff[:3, 3] = (-10.0, 20.0, 5.0)
    return aff


def write_raw(
    path: Path,
    *,
    klass=nib.Nifti1Header,
    data: np.ndarray | None = None,
    affine: np.ndarray | None = None,
    sform_code: int = 1,
    qform_code: int = 1,
    pixdim: dict[int, float] | None = None,
    srow: dict[str, np.ndarray] | None = None,
    **fields,
) -> Path:
    """A NIfTI file whose header fields are exactly as given (nibabel's repairs bypassed)."""
    arr = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE) if data is None else data
    hdr = klass()
    hdr.set_data_shape(arr.shape)
    hdr.set_data_dtype(arr.dtype)
    aff = _affine() if affine is None else affine
    hdr.set_sform(aff, code=1)
    hdr.set_qform(aff, code=1)
    hdr["sform_code"], hdr["qform_code"] = sform_code, qform_code
    pd = hdr["pixdim"].copy()
    for i, v in (pixdim or {}).items():
        pd[i] = v
    hdr["pixdim"] = pd
    for k, v in {**(srow or {}), **fields}.items():
        hdr[k] = v
    hdr["vox_offset"] = klass.single_vox_offset
    raw = hdr.binaryblock + b"\0" * 4 + arr.tobytes(order="F")
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


# --- pixdim when the qform gives the spacing --------------------------------------------


@HEADERS
@pytest.mark.parametrize(
    ("axis", "value", "shown"),
    [
        (2, 0.0, "0"),
        (1, -0.5, "-0.5"),
        (3, np.nan, "nan"),
        (3, np.inf, "inf"),
        (1, 1e-3, "0.001"),
        (2, 25.0, "25"),
        (3, 1e30, "1e\\+30"),
    ],
)
def test_bad_pixdim_with_qform_is_named(tmp_path, klass, axis, value, shown):
    p = write_raw(tmp_path / "a.nii.gz", klass=klass, sform_code=0, pixdim={axis: value})
    for read in (read_header, load_nifti):
        with pytest.raises(NiftiError, match=rf"pixdim\[{axis}\] = {shown}\b") as exc:
            read(p, scan_id="site-a_sub-01_T2w")
        msg = str(exc.value)
        assert "because sform_code = 0" in msg
        assert "expected pixdim[1..3] between 0.05 and 20 mm" in msg
        assert "Fix: set the voxel size" in msg
        assert "fslchpixdim" in msg
        assert msg.startswith("scan 'site-a_sub-01_T2w'")
        assert exc.value.path == str(p)


def test_pixdim_zero_is_no_longer_read_as_one_mm(tmp_path, capfd):
    # Before: nibabel repaired pixdim[2] = 0 to 1 mm (a 0.7 mm axis became 1 mm) and
    # printed "pixdim[1,2,3] should be non-zero; setting 0 dims to 1" on every read.
    p = write_raw(tmp_path / "a.nii", sform_code=0, pixdim={2: 0.0})
    with pytest.raises(NiftiError, match=r"pixdim\[2\] = 0, pixdim\[1\.\.3\] = \(0\.5, 0, 3\)"):
        load_nifti(p)
    assert "pixdim" not in capfd.readouterr().err


def test_units_other_than_mm_are_named(tmp_path):
    p = write_raw(tmp_path / "a.nii", sform_code=0, pixdim={1: 500.0}, xyzt_units=3)  # micron
    with pytest.raises(NiftiError, match=r"pixdim\[1\] = 500 \(xyzt_units says micron\)"):
        read_header(p)


@pytest.mark.parametrize("value", [MIN_VOXEL_MM, MAX_VOXEL_MM])
def test_limits_are_inclusive(tmp_path, value):
    zooms = (value, 0.7, 3.0)
    for sform_code, qform_code in ((1, 0), (0, 1)):
        p = write_raw(tmp_path / f"s{sform_code}.nii", affine=_affine(zooms), sform_code=sform_code, qform_code=qform_code)
        assert read_header(p).voxel_size_mm == pytest.approx(zooms, rel=1e-6)


@pytest.mark.parametrize("value", [0.049, 20.5])
def test_just_outside_limits_rejected(tmp_path, value):
    p = write_raw(tmp_path / "q.nii", sform_code=0, pixdim={3: value})
    with pytest.raises(NiftiError, match=rf"pixdim\[3\] = {value}"):
        read_header(p)
    p = write_raw(tmp_path / "s.nii", affine=_affine((0.5, 0.7, value)), qform_code=0)
    with pytest.raises(NiftiError, match=rf"srow_x/y/z.*gives voxel sizes \(0\.5, 0\.7, {value}\) mm"):
        read_header(p)


# --- the sform --------------------------------------------------------------------------


@HEADERS
@pytest.mark.parametrize("pix", [0.0, -0.7, np.nan, 1e30])
def test_valid_sform_wins_over_bad_pixdim(tmp_path, capfd, klass, pix):
    p = write_raw(tmp_path / "a.nii.gz", klass=klass, affine=_affine(angle=0.3), pixdim={2: pix})
    info = read_header(p)
    vol = load_nifti(p)
    assert info.voxel_size_mm == pytest.approx(ZOOMS, rel=1e-6)
    assert vol.voxel_size_mm == pytest.approx(ZOOMS, rel=1e-6)
    np.testing.assert_allclose(info.affine, _affine(angle=0.3), rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(vol.affine, info.affine)
    assert capfd.readouterr().err == ""  # nibabel's repair messages stay out of the terminal


@pytest.mark.parametrize("angle", [0.0, 0.4, 2.5])
def test_oblique_sform_spacing_is_its_column_norms(tmp_path, angle):
    zooms = (0.3, 0.9, 4.5)
    p = write_raw(tmp_path / "a.nii", affine=_affine(zooms, angle), qform_code=0)
    assert read_header(p).voxel_size_mm == pytest.approx(zooms, rel=1e-6)


def _bad_srows(kind: str) -> dict[str, np.ndarray]:
    aff = _affine()
    if kind == "tiny":
        aff[:3, :3] *= 1e-3  # metres written as mm
    elif kind == "singular":
        aff[:3, 1] = aff[:3, 0] * 1.4  # column 1 parallel to column 0 (0.7 mm long)
    elif kind == "nan":
        aff[1, 3] = np.nan
    return {"srow_x": aff[0], "srow_y": aff[1], "srow_z": aff[2]}


@HEADERS
@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("tiny", r"gives voxel sizes \(0\.0005, 0\.0007, 0\.003\) mm"),
        ("singular", r"is singular \(its axes are collinear\)"),
        ("nan", r"has non-finite values"),
    ],
)
def test_bad_sform_without_qform_names_srow(tmp_path, klass, kind, problem):
    p = write_raw(tmp_path / "a.nii.gz", klass=klass, qform_code=0, srow=_bad_srows(kind))
    with pytest.raises(NiftiError, match=rf"the sform \(srow_x/y/z, sform_code = 1\) {problem} and there is no qform") as exc:
        read_header(p)
    assert "between 0.05 and 20 mm" in str(exc.value)
    assert "Fix: re-convert from DICOM with dcm2niix" in str(exc.value)


@pytest.mark.parametrize("kind", ["tiny", "singular", "nan"])
def test_bad_sform_falls_back_to_valid_qform(tmp_path, caplog, kind):
    p = write_raw(tmp_path / "a.nii", srow=_bad_srows(kind))
    with caplog.at_level(logging.WARNING, logger="cohort_sciseg.io.nifti"):
        info = read_header(p)
    assert info.voxel_size_mm == pytest.approx(ZOOMS, rel=1e-6)
    np.testing.assert_allclose(info.affine, _affine(), atol=1e-5)
    assert "the sform (srow_x/y/z)" in caplog.text
    assert "the qform gives the affine" in caplog.text


def test_bad_sform_and_bad_pixdim_names_both(tmp_path):
    p = write_raw(tmp_path / "a.nii", srow=_bad_srows("tiny"), pixdim={1: 0.0})
    with pytest.raises(NiftiError, match=r"pixdim\[1\] = 0.*because the sform \(srow_x/y/z\) gives voxel sizes"):
        load_nifti(p)


def test_unknown_positive_sform_code_counts_as_set(tmp_path):
    # nifti1_io uses the sform whenever sform_code > 0; nibabel would drop code 7.
    p = write_raw(tmp_path / "a.nii", affine=_affine(angle=0.5), sform_code=7, pixdim={1: 0.0})
    info = read_header(p)
    np.testing.assert_allclose(info.affine, _affine(angle=0.5), atol=1e-5)
    assert int(load_nifti(p).header["sform_code"]) > 0  # outputs written with it keep the sform


def test_negative_codes_count_as_unset(tmp_path):
    p = write_raw(tmp_path / "a.nii", sform_code=-1, qform_code=-2)
    with pytest.raises(NiftiError, match=r"neither an sform nor a qform \(sform_code = -1, qform_code = -2\)"):
        read_header(p)


# --- the qform --------------------------------------------------------------------------


@HEADERS
@pytest.mark.parametrize(("qfac", "sign"), [(1.0, 1.0), (-1.0, -1.0), (0.0, 1.0), (-0.5, -1.0), (2.0, 1.0)])
def test_qform_affine_and_qfac(tmp_path, klass, qfac, sign):
    p = write_raw(tmp_path / "a.nii", klass=klass, affine=_affine(angle=0.6), sform_code=0, pixdim={0: qfac})
    info = read_header(p)
    # Independent arithmetic: nibabel's qform with qfac set to nifti1_io's reading (sign).
    with p.open("rb") as f:
        ref = klass.from_fileobj(f, check=False)
    pd = ref["pixdim"].copy()
    pd[0] = sign
    ref["pixdim"] = pd
    np.testing.assert_allclose(info.affine, ref.get_qform(), rtol=1e-6, atol=1e-6)
    assert info.voxel_size_mm == pytest.approx(ZOOMS, rel=1e-6)
    assert load_nifti(p).header["pixdim"][0] == sign  # written outputs keep this handedness


def test_qform_quaternion_out_of_range(tmp_path):
    p = write_raw(tmp_path / "a.nii", sform_code=0, quatern_b=0.9, quatern_c=0.9, quatern_d=0.0)
    with pytest.raises(NiftiError, match=r"quaternion \(quatern_b, quatern_c, quatern_d\) = \(0\.9, 0\.9, 0\) has a norm above 1"):
        read_header(p)


@pytest.mark.parametrize("field", ["quatern_c", "qoffset_y"])
def test_qform_nonfinite_fields(tmp_path, field):
    p = write_raw(tmp_path / "a.nii", sform_code=0, **{field: np.nan})
    with pytest.raises(NiftiError, match=rf"qform has non-finite values \({field} = nan\)"):
        read_header(p)


def test_nibabel_repairs_are_not_printed(tmp_path, capfd):
    p = write_raw(tmp_path / "a.nii.gz", pixdim={0: 0.5, 1: -0.5, 2: 0.0}, qform_code=9)
    read_header(p)
    load_nifti(p)
    assert capfd.readouterr().err == ""


# --- real scans -------------------------------------------------------------------------


@pytest.mark.shared_data
def test_real_scans_keep_their_spacing(spine_t2w):
    files = sorted(spine_t2w.rglob("*.nii.gz"))
    assert len(files) >= 8
    for f in files:
        img = nib.load(f)  # every real file has a valid sform: nibabel's affine is the reference
        info = read_header(f)
        assert info.voxel_size_mm == pytest.approx(img.header.get_zooms()[:3], rel=1e-5), f.name
        np.testing.assert_array_equal(info.affine, img.affine)
        np.testing.assert_array_equal(load_nifti(f).affine, img.affine)
