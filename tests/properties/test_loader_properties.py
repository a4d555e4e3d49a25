"""The safe loader on random, often broken, NIfTI headers (hypothesis).

Headers are written byte by byte (nibabel's writer would repair them): NIfTI-1 or
NIfTI-2, dim[0] 2..5 with dims 0..4, any dtype, pixdim/qfac including 0, negative,
NaN, inf, huge and tiny, sform/qform codes including unknown and negative ones,
sforms that are oblique, singular, NaN or absurdly scaled, quaternions outside the
unit ball, odd scl_slope/scl_inter/vox_offset, short files and extreme data values. For each file
:func:`read_header` and :func:`load_nifti`

* return or raise :class:`NiftiError`, nothing else, quickly;
* when they return, report the spacing the header states: the sform's column norms
  when ``sform_code > 0`` and the sform is valid (finite, every norm within the
  limits, not singular), else ``|pixdim[1..3]|``, within [MIN_VOXEL_MM, MAX_VOXEL_MM].
"""

from __future__ import annotations

import gzip
import tempfile
from datetime import timedelta
from pathlib import Path

import nibabel as nib
import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cohort_sciseg.errors import NiftiError
from cohort_sciseg.io import MAX_VOXEL_MM, MIN_VOXEL_MM, load_nifti, read_header

SETTINGS = settings(max_examples=150, deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow])

SPECIAL = [0.0, -0.0, -0.7, np.nan, np.inf, -np.inf, 1e30, -1e30, 1e-6, 0.049, MIN_VOXEL_MM, MAX_VOXEL_MM, 20.5]
TYPICAL = [0.3, 0.5, 0.69, 0.8, 1.0, 3.0, 7.5]


def mostly(valid, broken):
    """``valid`` seven times in eight, ``broken`` otherwise: many files get far enough to be read."""
    return st.integers(0, 7).flatmap(lambda k: broken if k == 0 else valid)


SPACING = mostly(
    st.sampled_from(TYPICAL),
    st.one_of(st.sampled_from(SPECIAL), st.floats(width=32, allow_nan=True, allow_infinity=True)),
)
CODES = mostly(st.sampled_from([0, 1, 2]), st.sampled_from([-1, 3, 4, 5, 7]))
DTYPES = mostly(
    st.sampled_from(["uint8", "int16", "float32"]),
    st.sampled_from(["int8", "uint16", "int32", "float64", "complex64"]),
)
EXTREMES = [np.nan, np.inf, -np.inf, 1e38, -1e38, 1e300, 0.0]


def _rotation(angles: tuple[float, float, float]) -> np.ndarray:
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rx @ ry @ rz


@st.composite
def sforms(draw) -> np.ndarray:
    """3x4 sform rows: valid oblique, axis-aligned at any scale, singular, NaN or arbitrary."""
    kind = draw(mostly(st.sampled_from(["oblique", "aligned"]), st.sampled_from(["singular", "nan", "arbitrary"])))
    out = np.zeros((3, 4))
    out[:, 3] = draw(st.tuples(*[st.floats(-200, 200)] * 3))
    if kind == "oblique":
        angles = draw(st.tuples(*[st.floats(-np.pi, np.pi)] * 3))
        out[:, :3] = _rotation(angles) @ np.diag(draw(st.tuples(*[st.sampled_from(TYPICAL)] * 3)))
    elif kind == "aligned":
        signs = draw(st.tuples(*[st.sampled_from([-1.0, 1.0])] * 3))
        out[:, :3] = np.diag(np.array(draw(st.tuples(*[SPACING] * 3))) * signs)
    elif kind == "singular":
        out[:, :3] = np.diag([0.5, 0.7, 3.0])
        i, j = draw(st.sampled_from([(0, 1), (1, 2), (2, 0)]))
        out[:, j] = out[:, i] * draw(st.sampled_from([0.0, 1.0, -2.0]))
    elif kind == "nan":
        out[:, :3] = np.diag([0.5, 0.7, 3.0])
        out[draw(st.integers(0, 2)), draw(st.integers(0, 3))] = np.nan
    else:
        out[:, :3] = np.array(draw(st.lists(st.floats(width=32), min_size=9, max_size=9))).reshape(3, 3)
    return out.astype(np.float32)


@st.composite
def headers(draw):
    """A header object with random fields and the data bytes to write after it."""
    klass = draw(st.sampled_from([nib.Nifti1Header, nib.Nifti2Header]))
    hdr = klass()
    ndim = draw(mostly(st.just(3), st.sampled_from([2, 4, 5])))
    sizes = mostly(st.integers(1, 4), st.integers(0, 4))
    shape = tuple(draw(st.lists(sizes, min_size=ndim, max_size=ndim)))
    dtype = np.dtype(draw(DTYPES))
    hdr.set_data_dtype(dtype)
    dim = np.ones(8, dtype=hdr["dim"].dtype)
    dim[0] = ndim
    dim[1 : ndim + 1] = shape
    hdr["dim"] = dim
    pixdim = np.ones(8)
    pixdim[0] = draw(mostly(st.sampled_from([1.0, -1.0]), st.sampled_from([0.0, 0.5, -2.0, np.nan])))
    pixdim[1:4] = draw(st.tuples(SPACING, SPACING, SPACING))
    hdr["pixdim"] = pixdim
    hdr["sform_code"], hdr["qform_code"] = draw(CODES), draw(CODES)
    rows = draw(sforms())
    hdr["srow_x"], hdr["srow_y"], hdr["srow_z"] = rows
    quat = draw(
        st.one_of(
            st.tuples(*[st.floats(-0.57, 0.57)] * 3),  # inside the unit ball
            st.tuples(*[st.one_of(st.floats(-2, 2), st.just(np.nan))] * 3),
        )
    )
    hdr["quatern_b"], hdr["quatern_c"], hdr["quatern_d"] = quat
    offset = mostly(st.sampled_from([0.0, -90.0, 12.5]), st.just(np.nan))
    hdr["qoffset_x"], hdr["qoffset_y"], hdr["qoffset_z"] = draw(st.tuples(offset, offset, offset))
    hdr["scl_slope"] = draw(mostly(st.sampled_from([0.0, 1.0]), st.sampled_from([2.5, -1.0, np.nan, np.inf, 1e38])))
    hdr["scl_inter"] = draw(mostly(st.just(0.0), st.sampled_from([1.0, -1e3, np.nan, np.inf])))
    hdr["xyzt_units"] = draw(st.sampled_from([0, 1, 2, 3, 10]))
    odd_offsets = [0, 100, 353, -16, 10**12] + ([np.nan, np.inf] if klass is nib.Nifti1Header else [])  # NIfTI-2: int64
    hdr["vox_offset"] = draw(mostly(st.just(klass.single_vox_offset), st.sampled_from(odd_offsets)))
    data = _data(draw, dtype, int(np.prod(shape)))
    return hdr, data


def _data(draw, dtype: np.dtype, n: int) -> bytes:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, n, endpoint=True).astype(dtype)
    else:
        arr = rng.normal(0, 1000, n).astype(dtype)
        if n and draw(mostly(st.just(False), st.just(True))):
            with np.errstate(over="ignore"):  # 1e300 becomes inf in float32
                arr[rng.integers(0, n)] = draw(st.sampled_from(EXTREMES))
    raw = arr.tobytes()
    cut = draw(mostly(st.just(0), st.sampled_from([1, len(raw) // 2])))  # sometimes a short file
    return raw[: len(raw) - cut]


def stated_spacing(hdr) -> np.ndarray | None:
    """The voxel spacing a header states (None when it states none)."""
    if int(hdr["sform_code"]) > 0:
        rows = np.array([hdr["srow_x"], hdr["srow_y"], hdr["srow_z"]], dtype=np.float64)
        m = rows[:, :3]
        norms = np.linalg.norm(m, axis=0)
        if (
            np.all(np.isfinite(rows))
            and np.all((norms >= MIN_VOXEL_MM) & (norms <= MAX_VOXEL_MM))
            and abs(np.linalg.det(m)) >= 1e-6 * np.prod(norms)
        ):
            return norms
    if int(hdr["qform_code"]) > 0:
        return np.abs(np.asarray(hdr["pixdim"][1:4], dtype=np.float64))
    return None


def _check_spacing(got: tuple[float, float, float], expected: np.ndarray | None) -> None:
    assert expected is not None, f"returned spacing {got} although the header states none"
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # Volume.voxel_size_mm is recomputed from the affine: allow its last-bit rounding.
    assert all(MIN_VOXEL_MM * (1 - 1e-12) <= z <= MAX_VOXEL_MM * (1 + 1e-12) for z in got), got


@SETTINGS
@given(case=headers(), gz=st.booleans())
def test_loader_returns_stated_spacing_or_raises_nifti_error(case, gz: bool) -> None:
    hdr, data = case
    expected = stated_spacing(hdr)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("img.nii.gz" if gz else "img.nii")
        raw = hdr.binaryblock + b"\0" * 4 + data
        path.write_bytes(gzip.compress(raw) if gz else raw)
        try:
            info = read_header(path)
        except NiftiError:
            info = None
            event("read_header raised NiftiError")
        else:
            event("read_header returned")
            _check_spacing(info.voxel_size_mm, expected)
            assert np.all(np.isfinite(info.affine))
        try:
            vol = load_nifti(path)
        except NiftiError:
            return
        event("load_nifti returned")
        assert info is not None, "load_nifti accepted a file that read_header rejected"
        _check_spacing(vol.voxel_size_mm, expected)
        assert vol.shape == info.shape
        np.testing.assert_array_equal(vol.affine, info.affine)
