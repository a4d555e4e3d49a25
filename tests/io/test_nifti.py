"""Safe NIfTI loading: every check, on anisotropic non-cubic images."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cohort_sciseg.errors import NiftiError
from cohort_sciseg.io import load_nifti, read_header, save_nifti

SHAPE = (7, 8, 9)


def _affine() -> np.ndarray:
    aff = np.diag([0.5, 0.7, 3.0, 1.0])
    aff[:3, 3] = (-10.0, 20.0, 5.0)
    return aff


def _write(path: Path, data: np.ndarray, affine: np.ndarray | None = None, **hdr: int) -> Path:
    img = nib.Nifti1Image(data, _affine() if affine is None else affine)
    for k, v in hdr.items():
        img.header[k] = v
    nib.save(img, path)
    return path


def test_load_roundtrip_values_affine(tmp_path, rng):
    data = rng.normal(size=SHAPE).astype(np.float32)
    vol = load_nifti(_write(tmp_path / "a.nii.gz", data))
    np.testing.assert_array_equal(vol.data, data)
    np.testing.assert_allclose(vol.affine, _affine())
    assert vol.shape == SHAPE
    assert vol.voxel_size_mm == pytest.approx((0.5, 0.7, 3.0))
    assert vol.orientation == "LPI"  # nibabel RAS+ is SCT LPI


def test_uncompressed_nii(tmp_path, rng):
    data = rng.integers(0, 100, SHAPE).astype(np.int16)
    vol = load_nifti(_write(tmp_path / "a.nii", data))
    np.testing.assert_array_equal(vol.data, data)


def test_single_frame_4d_is_squeezed(tmp_path, rng):
    data = rng.normal(size=(*SHAPE, 1)).astype(np.float32)
    vol = load_nifti(_write(tmp_path / "a.nii.gz", data))
    assert vol.shape == SHAPE
    assert read_header(tmp_path / "a.nii.gz").shape == SHAPE


def test_4d_multi_frame_rejected(tmp_path):
    path = _write(tmp_path / "a.nii.gz", np.zeros((*SHAPE, 3), np.float32))
    with pytest.raises(NiftiError, match=r"4D with 3 frames.*expected a 3D volume.*Fix: extract one 3D"):
        load_nifti(path)


def test_2d_rejected(tmp_path):
    path = _write(tmp_path / "a.nii.gz", np.zeros((7, 8), np.float32))
    with pytest.raises(NiftiError, match=r"image is 2D"):
        read_header(path)


def test_missing_file(tmp_path):
    with pytest.raises(NiftiError, match=r"file not found.*Fix: check the path"):
        load_nifti(tmp_path / "nope.nii.gz", scan_id="site-a_sub-01_T2w")


def test_missing_file_names_scan(tmp_path):
    with pytest.raises(NiftiError, match=r"^scan 'site-a_sub-01_T2w'"):
        read_header(tmp_path / "nope.nii.gz", scan_id="site-a_sub-01_T2w")


def test_wrong_extension(tmp_path):
    p = tmp_path / "a.mgz"
    p.write_bytes(b"x")
    with pytest.raises(NiftiError, match=r"does not end in \.nii"):
        load_nifti(p)


def test_directory_rejected(tmp_path):
    d = tmp_path / "dir.nii.gz"
    d.mkdir()
    with pytest.raises(NiftiError, match="not a regular file"):
        load_nifti(d)


def test_empty_file(tmp_path):
    p = tmp_path / "a.nii.gz"
    p.write_bytes(b"")
    with pytest.raises(NiftiError, match=r"empty \(0 bytes\)"):
        load_nifti(p)


def test_garbage_header(tmp_path):
    p = tmp_path / "a.nii"
    p.write_bytes(b"not a nifti file at all" * 30)
    with pytest.raises(NiftiError, match="cannot read the NIfTI header"):
        read_header(p)


def test_truncated_gzip(tmp_path, rng):
    p = _write(tmp_path / "a.nii.gz", rng.normal(size=(40, 50, 30)).astype(np.float32))
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    read_header(p)  # the header itself is intact: discovery can list the scan
    with pytest.raises(NiftiError, match=r"gzip stream is truncated"):
        load_nifti(p)


def test_corrupt_gzip_crc(tmp_path, rng):
    p = _write(tmp_path / "a.nii.gz", rng.normal(size=(40, 50, 30)).astype(np.float32))
    raw = bytearray(p.read_bytes())
    raw[-6] ^= 0xFF  # inside the CRC32 trailer
    p.write_bytes(bytes(raw))
    with pytest.raises(NiftiError, match=r"gzip data are corrupt"):
        load_nifti(p)


def test_short_uncompressed_data(tmp_path, rng):
    p = _write(tmp_path / "a.nii", rng.normal(size=SHAPE).astype(np.float32))
    raw = p.read_bytes()
    p.write_bytes(raw[:-100])
    with pytest.raises(NiftiError, match=r"data bytes; expected .* bytes for shape \(7, 8, 9\)"):
        load_nifti(p)


def test_gzip_bomb_stops_at_limit(tmp_path):
    # A valid header followed by far more data than it declares.
    p = _write(tmp_path / "a.nii", np.zeros(SHAPE, np.uint8))
    payload = p.read_bytes() + b"\0" * (5 * 1024 * 1024)
    q = tmp_path / "b.nii.gz"
    q.write_bytes(gzip.compress(payload))
    with pytest.raises(NiftiError, match="larger than the header declares"):
        load_nifti(q)


def test_too_many_voxels_checked_before_reading(tmp_path):
    p = _write(tmp_path / "a.nii.gz", np.zeros(SHAPE, np.uint8))
    with pytest.raises(NiftiError, match=r"504 voxels.*at most 100 voxels.*sct_crop_image"):
        load_nifti(p, max_voxels=100)
    with pytest.raises(NiftiError, match=r"at most 10 bytes"):
        read_header(p, max_bytes=10)


def test_no_sform_no_qform(tmp_path):
    img = nib.Nifti1Image(np.zeros(SHAPE, np.float32), _affine())
    img.set_sform(None, code=0)
    img.set_qform(None, code=0)
    p = tmp_path / "a.nii.gz"
    nib.save(img, p)
    with pytest.raises(NiftiError, match=r"neither an sform nor a qform.*dcm2niix"):
        read_header(p)


def test_qform_only_is_used(tmp_path):
    img = nib.Nifti1Image(np.zeros(SHAPE, np.float32), _affine())
    img.set_sform(None, code=0)
    img.set_qform(_affine(), code=1)
    p = tmp_path / "a.nii.gz"
    nib.save(img, p)
    np.testing.assert_allclose(read_header(p).affine, _affine(), atol=1e-5)


def test_zero_voxel_size(tmp_path):
    # nibabel refuses to write such a header, so patch the bytes of a valid file:
    # qform_code (offset 252) = 0 and srow_z[2] (offset 320) = 0.
    p = _write(tmp_path / "a.nii", np.zeros(SHAPE, np.float32))
    raw = bytearray(p.read_bytes())
    raw[252:254] = np.int16(0).tobytes()
    raw[320:324] = np.float32(0).tobytes()
    p.write_bytes(bytes(raw))
    with pytest.raises(NiftiError, match=r"sform \(srow_x/y/z.* gives voxel sizes \(0\.5, 0\.7, 0\) mm.*no qform"):
        read_header(p)


def test_nonfinite_affine(tmp_path):
    aff = _affine()
    aff[0, 3] = np.nan
    img = nib.Nifti1Image(np.zeros(SHAPE, np.float32), aff)
    p = tmp_path / "a.nii.gz"
    nib.save(img, p)
    with pytest.raises(NiftiError, match=r"non-finite"):
        read_header(p)


def test_nan_data(tmp_path):
    data = np.zeros(SHAPE, np.float32)
    data[1, 2, 3] = np.nan
    data[0, 0, 0] = np.inf
    with pytest.raises(NiftiError, match=r"2 voxels are NaN or infinite.*fslmaths"):
        load_nifti(_write(tmp_path / "a.nii.gz", data))


def test_complex_dtype_rejected(tmp_path):
    p = _write(tmp_path / "a.nii.gz", np.zeros(SHAPE, np.complex64))
    with pytest.raises(NiftiError, match=r"data type 'complex64' is not supported"):
        load_nifti(p)


def test_scaled_ints_are_scaled(tmp_path):
    data = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE)
    img = nib.Nifti1Image(data, _affine())
    img.header.set_slope_inter(2.0, 1.0)
    p = tmp_path / "a.nii.gz"
    nib.save(img, p)
    np.testing.assert_allclose(load_nifti(p).data, data * 2.0 + 1.0)


def test_save_nifti_keeps_header_not_scaling(tmp_path, rng):
    src = nib.Nifti1Image(rng.integers(0, 9, SHAPE).astype(np.int16), _affine())
    src.header.set_slope_inter(2.0, 0.0)
    src.header["descrip"] = b"source"
    mask = (rng.random(SHAPE) > 0.5).astype(np.uint8)
    out = save_nifti(tmp_path / "m.nii.gz", mask, _affine(), header=src.header)
    back = load_nifti(out)
    np.testing.assert_array_equal(back.data, mask)
    assert back.data.dtype == np.uint8
    assert back.header["descrip"].tobytes().rstrip(b"\0") == b"source"
    assert not list(tmp_path.glob(".*tmp*")), "temporary file left behind"


def test_save_nifti_deterministic_bytes(tmp_path, rng):
    data = rng.normal(size=SHAPE).astype(np.float32)
    a = save_nifti(tmp_path / "a.nii.gz", data, _affine())
    b = save_nifti(tmp_path / "b.nii.gz", data, _affine())
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.shared_data
def test_real_scans_load(spine_t2w):
    vol = load_nifti(spine_t2w / "sub-sctms" / "anat" / "sub-sctms_T2w.nii.gz")
    assert vol.shape == (320, 256, 19)
    assert vol.voxel_size_mm == pytest.approx((0.69, 0.69, 7.5), abs=0.01)
    assert vol.orientation == "RPI"  # nibabel LAS
    errsm = read_header(spine_t2w / "sub-errsm11" / "anat" / "sub-errsm11_T2w.nii.gz")
    # nibabel axcodes ("PSR") flipped letter by letter give SCT's name.
    assert errsm.orientation == "AIL"


def test_nifti2_is_read(tmp_path, rng):
    data = rng.normal(size=SHAPE).astype(np.float32)
    p = tmp_path / "a.nii.gz"
    nib.save(nib.Nifti2Image(data, _affine()), p)
    vol = load_nifti(p)
    np.testing.assert_array_equal(vol.data, data)
    assert read_header(p).shape == SHAPE


@pytest.mark.parametrize(
    ("value", "message"),
    [(np.nan, r"vox_offset = nan; expected a byte offset >= 0"), (-16.0, r"vox offset -16 too low")],
)
def test_bad_vox_offset(tmp_path, value, message):
    # NIfTI-1 stores vox_offset as float32 at byte 108; nibabel would fail on int(nan) later.
    p = _write(tmp_path / "a.nii", np.zeros(SHAPE, np.float32))
    raw = bytearray(p.read_bytes())
    raw[108:112] = np.float32(value).tobytes()
    p.write_bytes(bytes(raw))
    with pytest.raises(NiftiError, match=message):
        read_header(p)
