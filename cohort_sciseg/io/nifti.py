"""Safe NIfTI reading and atomic NIfTI writing.

:func:`read_header` and :func:`load_nifti` check a file before anything large is
allocated: it exists and is not empty, the header parses, the image is 3D (a 4D
image with one frame is squeezed), dimensions and total size are within limits,
the voxel spacing is stated by the header and plausible (below), and (for
:func:`load_nifti`) the gzip stream is complete with a valid CRC and the data are
finite. Every failure raises :class:`~cohort_sciseg.errors.NiftiError` naming the
file, the header field and its value, what was expected and the fix.

Voxel spacing is never changed silently. The header is read as written (nibabel
repairs a loaded header in place: a ``pixdim`` of 0 becomes 1 mm, a negative one
its absolute value; these repairs and nibabel's log lines about them are kept out
of the reader, whose errors replace them). The voxel-to-world affine is:

* the sform (``srow_x/y/z``) when ``sform_code > 0`` and the sform is valid:
  finite, invertible (``|det| >= 1e-6`` times the product of its column norms) and
  every voxel size (column norm) within [:data:`MIN_VOXEL_MM`, :data:`MAX_VOXEL_MM`];
  ``pixdim`` is then ignored, as nibabel and FSL do;
* otherwise the qform, when ``qform_code > 0``: ``pixdim[1..3]`` with the quaternion
  (``quatern_b/c/d``), ``qoffset_x/y/z`` and ``qfac = -1`` when ``pixdim[0] < 0``,
  else 1 (nifti1_io's reading). A ``pixdim[1..3]`` that is zero, negative,
  non-finite or outside the limits is an error naming the field. An sform that is
  set but invalid is passed over with a logged warning;
* an error otherwise (no usable sform or qform), naming ``srow_x/y/z`` when an sform
  was set.

``NiftiInfo.voxel_size_mm`` is the spacing so chosen. NIfTI-1 and NIfTI-2 alike.
"""

from __future__ import annotations

import gzip
import io
import logging
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.arrayproxy import ArrayProxy
from nibabel.filebasedimages import ImageFileError
from nibabel.nifti1 import xform_codes
from nibabel.quaternions import quat2mat
from nibabel.spatialimages import HeaderDataError
from nibabel.wrapstruct import WrapStructError

from cohort_sciseg.errors import NiftiError, format_error
from cohort_sciseg.io.atomic import atomic_path
from cohort_sciseg.io.orientation import orientation_code, voxel_sizes

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_VOXELS",
    "MAX_VOXEL_MM",
    "MIN_VOXEL_MM",
    "NIFTI_EXTENSIONS",
    "NiftiInfo",
    "Volume",
    "load_nifti",
    "nifti_stem",
    "read_header",
    "save_nifti",
]

logger = logging.getLogger(__name__)

#: Largest image accepted by default, in voxels (512^3; a whole-spine 0.5 mm scan is ~40 M).
DEFAULT_MAX_VOXELS = 512**3
#: Largest uncompressed data accepted by default, in bytes (4 GiB).
DEFAULT_MAX_BYTES = 4 * 1024**3
#: Smallest voxel size accepted on a spatial axis, in mm. In vivo spinal cord MRI is
#: >= ~0.2 mm and ex vivo microscopy-MRI of cord tissue ~0.05 mm; a smaller size is
#: a unit error (metres, or a spacing written in the wrong field) or garbage.
MIN_VOXEL_MM = 0.05
#: Largest voxel size accepted on a spatial axis, in mm. The thickest clinical
#: slices (with gap) are ~10 mm; a larger size is a unit error (microns) or garbage.
MAX_VOXEL_MM = 20.0

_NIFTI_EXTS = (".nii.gz", ".nii")
_HEADER_ERRORS = (
    ImageFileError, HeaderDataError, WrapStructError, EOFError, gzip.BadGzipFile, zlib.error, OSError, ValueError, KeyError,
)
_REEXPORT_FIX = "re-export the image (e.g. with dcm2niix) or restore it from the source"
_LIMITS = f"between {MIN_VOXEL_MM:g} and {MAX_VOXEL_MM:g} mm"
_PIXDIM_FIX = (
    "set the voxel size from the acquisition protocol (see the JSON sidecar or the DICOM), "
    "e.g. `fslchpixdim IMG 0.5 0.5 3` (FSL), or re-convert from DICOM with dcm2niix"
)
_SFORM_FIX = (
    "re-convert from DICOM with dcm2niix, or write the right voxel-to-world matrix "
    "(e.g. `fslorient -setsform ...`, or nibabel `img.set_sform(affine, code=1)`)"
)
#: An sform is singular when |det| < this x the product of its column norms (axes collinear).
_MIN_DET_RATIO = 1e-6
#: sizeof_hdr of NIfTI-1 and NIfTI-2, the first 4 bytes of the file (either byte order).
_HEADER_CLASSES: dict[int, Any] = {348: nib.Nifti1Header, 540: nib.Nifti2Header}
_SPATIAL_UNITS = {1: "metre", 3: "micron"}  # xyzt_units & 7 that are not mm (2) or unknown (0)


@dataclass(frozen=True, slots=True, eq=False)
class NiftiInfo:
    """What the header of a NIfTI file says, read without the voxel data.

    Attributes
    ----------
    path
        The file.
    shape
        Spatial dimensions in voxels (a single-frame 4D image reports 3 dims).
    voxel_size_mm
        Voxel sizes along the array axes, in mm: the sform's column norms when the
        sform is used, else ``pixdim[1..3]`` (see the module docstring); each within
        [:data:`MIN_VOXEL_MM`, :data:`MAX_VOXEL_MM`].
    affine
        Voxel-to-world (RAS+ scanner, mm) affine: the sform if its code is set and it
        is valid, else the qform.
    orientation
        Axis orientation in SCT's naming (``"RPI"`` = nibabel ``"LAS"``).
    dtype
        On-disk data type (numpy name).
    """

    path: str
    shape: tuple[int, int, int]
    voxel_size_mm: tuple[float, float, float]
    affine: np.ndarray
    orientation: str
    dtype: str


@dataclass(frozen=True, slots=True, eq=False)
class Volume:
    """A checked 3D image in memory.

    Attributes
    ----------
    data
        3D array (native dtype, or float64 when the header has a scaling slope).
    affine
        Voxel-to-world affine, mm.
    header
        The NIfTI header (kept to write outputs with the input's header).
    path
        Where it was read from (``""`` for images built in memory).
    """

    data: np.ndarray
    affine: np.ndarray
    header: Any
    path: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        """Dimensions in voxels."""
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]

    @property
    def voxel_size_mm(self) -> tuple[float, float, float]:
        """Voxel sizes along the array axes, in mm."""
        return voxel_sizes(self.affine)

    @property
    def orientation(self) -> str:
        """Axis orientation in SCT's naming."""
        return orientation_code(self.affine)


#: File name endings of NIfTI images, longest first.
NIFTI_EXTENSIONS = (".nii.gz", ".nii")


def nifti_stem(path: str | os.PathLike[str]) -> str:
    """File name without ``.nii.gz`` / ``.nii`` (``sub-01_T2w.nii.gz`` -> ``sub-01_T2w``)."""
    name = os.path.basename(os.fspath(path))
    for ext in NIFTI_EXTENSIONS:
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def _fail(what: str, path: Path, expected: str | None, fix: str, scan_id: str | None) -> NiftiError:
    return NiftiError(
        format_error(what, path=path, scan_id=scan_id, expected=expected, fix=fix),
        path=path,
        scan_id=scan_id,
    )


def _check_file(path: Path, scan_id: str | None) -> None:
    if not path.name.endswith(_NIFTI_EXTS):
        raise _fail(
            f"file name does not end in .nii or .nii.gz ({path.name!r})",
            path,
            "a NIfTI-1/2 file",
            "convert the image to NIfTI (e.g. dcm2niix) and name it *.nii.gz",
            scan_id,
        )
    if not path.exists():
        raise _fail("file not found", path, None, "check the path and that the dataset is mounted", scan_id)
    if not path.is_file():
        raise _fail("is not a regular file", path, "a NIfTI file", "point to the image file", scan_id)
    if path.stat().st_size == 0:
        raise _fail("file is empty (0 bytes)", path, "a NIfTI file", _REEXPORT_FIX, scan_id)


def _spatial_shape(dims: tuple[int, ...], path: Path, scan_id: str | None) -> tuple[int, int, int]:
    shape: tuple[int, ...] = tuple(int(n) for n in dims)
    # Trailing singleton dimensions (a 4D image with one frame) are squeezed.
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        frames = f" with {shape[3]} frames" if len(shape) == 4 else ""
        raise _fail(
            f"image is {len(shape)}D{frames}, shape {shape}",
            path,
            "a 3D volume (or 4D with a single frame)",
            "extract one 3D volume (e.g. `sct_image -split t` or `fslroi`) and use it",
            scan_id,
        )
    if min(shape) < 1:
        raise _fail(f"image has an empty dimension, shape {shape}", path, "every dimension >= 1", _REEXPORT_FIX, scan_id)
    return shape


class _NibabelReports:
    """Takes nibabel's header-repair reports, which its global logger prints to the terminal
    on every read ("pixdim[1,2,3] should be non-zero; ..."): here they go to the debug log."""

    def log(self, level: int, msg: str) -> None:
        if level > 0 and msg:
            logger.debug("nibabel header check (level %d): %s", level, msg)


def _parse_header(buf: bytes, path: Path, scan_id: str | None, *, extensions: bool) -> Any:
    """The header as written (nibabel's repairs not applied), NIfTI-1 or NIfTI-2 by sizeof_hdr."""
    sizes = (int.from_bytes(buf[:4], "little"), int.from_bytes(buf[:4], "big"))
    klass = next((_HEADER_CLASSES[n] for n in sizes if n in _HEADER_CLASSES), None)
    if klass is None or len(buf) < klass.template_dtype.itemsize:
        what = (
            f"sizeof_hdr = {sizes[0]} is neither 348 (NIfTI-1) nor 540 (NIfTI-2)"
            if klass is None
            else f"the header is cut short ({len(buf)} bytes)"
        )
        raise _fail(f"cannot read the NIfTI header ({what})", path, "a valid NIfTI-1 or NIfTI-2 header", _REEXPORT_FIX, scan_id)
    if extensions:
        return klass.from_fileobj(io.BytesIO(buf), check=False)
    return klass(buf[: klass.template_dtype.itemsize], check=False)


def _repaired(raw: Any) -> Any:
    """A copy of ``raw`` with nibabel's repairs; nibabel's errors (level >= 40) are raised.

    qfac and the xform codes are first set to how this reader reads them, so that an
    output written with this header (a mask) keeps the input's geometry.
    """
    hdr = raw.copy()
    pixdim = np.array(raw["pixdim"])
    pixdim[0] = -1.0 if pixdim[0] < 0 else 1.0
    hdr["pixdim"] = pixdim
    for key in ("sform_code", "qform_code"):
        if int(raw[key]) > 0 and int(raw[key]) not in xform_codes.value_set():
            hdr[key] = 2  # set, but unknown to nibabel (which would drop it): "aligned"
    hdr.check_fix(logger=_NibabelReports(), error_level=40)
    return hdr


def _read_header_block(path: Path, scan_id: str | None) -> tuple[Any, Any]:
    """The raw and the repaired header of a file (no extensions, no data read)."""
    try:
        with gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb") as f:
            buf = f.read(max(k.template_dtype.itemsize for k in _HEADER_CLASSES.values()))
        raw = _parse_header(buf, path, scan_id, extensions=False)
        return raw, _repaired(raw)
    except _HEADER_ERRORS as exc:
        raise _fail(
            f"cannot read the NIfTI header ({type(exc).__name__}: {exc})",
            path,
            "a valid NIfTI-1 or NIfTI-2 header",
            _REEXPORT_FIX,
            scan_id,
        ) from exc


def _sform_problem(sform: np.ndarray) -> str | None:
    """Why the sform cannot give the voxel spacing, or None when it is valid."""
    if not np.all(np.isfinite(sform)):
        return "has non-finite values"
    zooms = voxel_sizes(sform)
    if not all(MIN_VOXEL_MM <= z <= MAX_VOXEL_MM for z in zooms):
        return "gives voxel sizes (" + ", ".join(f"{z:.4g}" for z in zooms) + ") mm"
    if abs(np.linalg.det(sform[:3, :3])) < _MIN_DET_RATIO * float(np.prod(zooms)):
        return "is singular (its axes are collinear)"
    return None


def _qform(hdr: Any, why: str, path: Path, scan_id: str | None) -> np.ndarray:
    """The qform affine from the raw header, every field checked (``why``: why not the sform)."""
    pixdim = np.asarray(hdr["pixdim"], dtype=np.float64)
    for i in (1, 2, 3):
        v = float(pixdim[i])
        if not (np.isfinite(v) and MIN_VOXEL_MM <= v <= MAX_VOXEL_MM):
            unit = _SPATIAL_UNITS.get(int(hdr["xyzt_units"]) & 7)
            raise _fail(
                f"voxel size pixdim[{i}] = {v:g}" + (f" (xyzt_units says {unit})" if unit else "")
                + f", pixdim[1..3] = ({pixdim[1]:g}, {pixdim[2]:g}, {pixdim[3]:g}); "
                f"the qform gives the spacing because {why}",
                path,
                f"pixdim[1..3] {_LIMITS}",
                _PIXDIM_FIX,
                scan_id,
            )
    names = ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z")
    vals = [float(hdr[k]) for k in names]
    bad = [f"{k} = {v:g}" for k, v in zip(names, vals, strict=True) if not np.isfinite(v)]
    if bad:
        raise _fail(f"qform has non-finite values ({', '.join(bad)})", path, "finite numbers", _REEXPORT_FIX, scan_id)
    try:
        quat = hdr.get_qform_quaternion()
    except ValueError as exc:
        raise _fail(
            "qform quaternion (quatern_b, quatern_c, quatern_d) = "
            f"({vals[0]:g}, {vals[1]:g}, {vals[2]:g}) has a norm above 1",
            path,
            "quatern_b^2 + quatern_c^2 + quatern_d^2 <= 1",
            _REEXPORT_FIX,
            scan_id,
        ) from exc
    zooms = pixdim[1:4].copy()
    zooms[2] *= -1.0 if pixdim[0] < 0 else 1.0  # qfac, read as nifti1_io does
    affine = np.eye(4)
    affine[:3, :3] = quat2mat(quat) * zooms  # columns scaled: R @ diag(zooms)
    affine[:3, 3] = vals[3:]
    return affine


def _header_affine(hdr: Any, path: Path, scan_id: str | None) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Voxel-to-world affine and voxel sizes (mm) from the raw header (module docstring)."""
    sform_code, qform_code = int(hdr["sform_code"]), int(hdr["qform_code"])
    if sform_code <= 0 and qform_code <= 0:
        raise _fail(
            f"header has neither an sform nor a qform (sform_code = {sform_code}, qform_code = {qform_code})",
            path,
            "a scanner-space affine",
            "re-convert from DICOM with dcm2niix, or set the qform from a trusted source "
            "(e.g. `sct_image -copy-header` or `fslorient -copyqform2sform`)",
            scan_id,
        )
    why = f"sform_code = {sform_code}"
    if sform_code > 0:
        sform = np.eye(4)
        sform[:3] = np.stack([np.asarray(hdr[k], dtype=np.float64) for k in ("srow_x", "srow_y", "srow_z")])
        problem = _sform_problem(sform)
        if problem is None:
            return sform, voxel_sizes(sform)
        if qform_code <= 0:
            raise _fail(
                f"the sform (srow_x/y/z, sform_code = {sform_code}) {problem} "
                f"and there is no qform (qform_code = {qform_code})",
                path,
                f"a finite, invertible sform with voxel sizes {_LIMITS}",
                _SFORM_FIX,
                scan_id,
            )
        why = f"the sform (srow_x/y/z) {problem}"
    affine = _qform(hdr, why, path, scan_id)
    if sform_code > 0:
        logger.warning("%s: %s; the qform gives the affine", path, why)
    pixdim = hdr["pixdim"]
    return affine, (float(pixdim[1]), float(pixdim[2]), float(pixdim[3]))


def _check_size(
    shape: tuple[int, ...], itemsize: int, path: Path, scan_id: str | None, max_voxels: int, max_bytes: int
) -> None:
    n = math.prod(shape)  # Python ints: NIfTI-2 dims can overflow int64
    if n > max_voxels:
        raise _fail(
            f"image has {n:,} voxels (shape {shape})",
            path,
            f"at most {max_voxels:,} voxels",
            "crop the image around the spinal cord (e.g. `sct_crop_image`) or raise max_voxels",
            scan_id,
        )
    if n * itemsize > max_bytes:
        raise _fail(
            f"image data take {n * itemsize:,} bytes",
            path,
            f"at most {max_bytes:,} bytes",
            "crop the image or raise max_bytes",
            scan_id,
        )


def read_header(
    path: str | os.PathLike[str],
    *,
    scan_id: str | None = None,
    max_voxels: int = DEFAULT_MAX_VOXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> NiftiInfo:
    """Read and check a NIfTI header without reading the voxel data.

    Parameters
    ----------
    path
        ``.nii`` or ``.nii.gz`` file.
    scan_id
        Named in error messages.
    max_voxels, max_bytes
        Size limits checked from the header.

    Raises
    ------
    NiftiError
        Missing, empty or unparsable file; not 3D; too large; no usable voxel spacing
        or affine (see the module docstring for the rules and
        :data:`MIN_VOXEL_MM` / :data:`MAX_VOXEL_MM`).
    """
    return _inspect(Path(path), scan_id, max_voxels, max_bytes)[0]


def _inspect(path: Path, scan_id: str | None, max_voxels: int, max_bytes: int) -> tuple[NiftiInfo, Any]:
    """:func:`read_header`'s checks; also returns the raw header."""
    _check_file(path, scan_id)
    raw, hdr = _read_header_block(path, scan_id)
    shape = _spatial_shape(hdr.get_data_shape(), path, scan_id)
    dtype = hdr.get_data_dtype()
    _check_size(shape, dtype.itemsize, path, scan_id, max_voxels, max_bytes)
    offset = float(raw["vox_offset"])
    if not (np.isfinite(offset) and offset >= 0):
        raise _fail(f"vox_offset = {offset:g}", path, "a byte offset >= 0 (352 for NIfTI-1)", _REEXPORT_FIX, scan_id)
    affine, zooms = _header_affine(raw, path, scan_id)
    info = NiftiInfo(
        path=str(path),
        shape=shape,
        voxel_size_mm=zooms,
        affine=affine,
        orientation=orientation_code(affine),
        dtype=dtype.name,
    )
    return info, raw


def _read_payload(path: Path, limit: int, scan_id: str | None) -> bytes:
    """Whole file content, decompressed and CRC-checked, never beyond ``limit`` bytes."""
    raw = path.read_bytes()
    if not path.name.endswith(".gz"):
        return raw
    out = bytearray()
    data = raw
    try:
        while data:
            d = zlib.decompressobj(wbits=31)  # gzip wrapper: checks CRC32 and length
            out += d.decompress(data, max(limit - len(out), 0) + 1)
            if len(out) > limit or d.unconsumed_tail:
                raise _fail(
                    "decompressed data are larger than the header declares",
                    path,
                    f"at most {limit:,} bytes",
                    _REEXPORT_FIX,
                    scan_id,
                )
            if not d.eof:
                raise _fail(
                    "gzip stream is truncated (the file was cut short, e.g. an interrupted copy)",
                    path,
                    "a complete .nii.gz file",
                    _REEXPORT_FIX + " or copy it again",
                    scan_id,
                )
            data = d.unused_data.lstrip(b"\x00")
    except zlib.error as exc:
        raise _fail(
            f"gzip data are corrupt ({exc})",
            path,
            "a valid gzip stream",
            _REEXPORT_FIX + " or copy it again",
            scan_id,
        ) from exc
    return bytes(out)


def load_nifti(
    path: str | os.PathLike[str],
    *,
    scan_id: str | None = None,
    max_voxels: int = DEFAULT_MAX_VOXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Volume:
    """Load a 3D NIfTI image after checking it (see the module docstring).

    Parameters
    ----------
    path
        ``.nii`` or ``.nii.gz`` file.
    scan_id
        Named in error messages.
    max_voxels, max_bytes
        Size limits, checked from the header before the data are read.

    Returns
    -------
    Volume
        Data in the on-disk dtype (float64 when the header has a scaling slope),
        affine, header and path.

    Raises
    ------
    NiftiError
        Any check fails (message names the file, the value, the expectation, the fix).
    """
    p = Path(path)
    info, raw = _inspect(p, scan_id, max_voxels, max_bytes)
    dtype = raw.get_data_dtype()
    n_bytes = int(np.prod(info.shape, dtype=np.int64)) * dtype.itemsize
    offset = int(raw.get_data_offset())
    payload = _read_payload(p, offset + n_bytes + 1024 * 1024, scan_id)
    if len(payload) < offset + n_bytes:
        raise _fail(
            f"file holds {len(payload) - offset:,} data bytes",
            p,
            f"{n_bytes:,} bytes for shape {info.shape} of {dtype.name}",
            _REEXPORT_FIX,
            scan_id,
        )
    try:
        # The header again, with its extensions (kept for outputs), repaired quietly.
        header = _repaired(_parse_header(payload, p, scan_id, extensions=True))
        data = np.asanyarray(ArrayProxy(io.BytesIO(payload), header, mmap=False))
    except _HEADER_ERRORS as exc:
        raise _fail(f"cannot decode the voxel data ({exc})", p, None, _REEXPORT_FIX, scan_id) from exc
    data = data.reshape(info.shape)
    if data.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            raise _fail(
                f"{bad:,} voxels are NaN or infinite",
                p,
                "finite intensities",
                "replace them (e.g. `fslmaths IMG -nan OUT`) and check how the image was produced",
                scan_id,
            )
    elif data.dtype.kind not in "iub":
        raise _fail(
            f"data type {data.dtype.name!r} is not supported",
            p,
            "an integer or floating-point image",
            "convert the image to float32 (e.g. `sct_image -type float32`)",
            scan_id,
        )
    return Volume(data=data, affine=info.affine, header=header, path=str(p))


def save_nifti(
    path: str | os.PathLike[str],
    data: np.ndarray,
    affine: np.ndarray,
    *,
    header: Any = None,
    dtype: Any = None,
) -> Path:
    """Write a NIfTI-1 image atomically (temporary file + rename).

    Parameters
    ----------
    path
        Destination, ``.nii.gz`` (deterministic gzip, no timestamp) or ``.nii``.
    data
        3D array.
    affine
        Voxel-to-world affine; written as both sform and qform (code 1, scanner).
    header
        Optional header to copy fields from (e.g. the input image's), so
        outputs keep the input's header as SCT does.
    dtype
        On-disk dtype; defaults to ``data.dtype``.
    """
    arr = np.asarray(data)
    hdr = header.copy() if header is not None else None
    img = nib.Nifti1Image(arr, np.asarray(affine, dtype=np.float64), header=hdr)
    img.set_data_dtype(np.dtype(dtype) if dtype is not None else arr.dtype)
    # Never inherit an intensity scaling from the copied header: values are written as given.
    img.header.set_slope_inter(1.0, 0.0)
    codes = (1, 1)
    if hdr is not None:
        codes = (int(hdr["sform_code"]) or 1, int(hdr["qform_code"]) or 1)
    img.set_sform(np.asarray(affine, dtype=np.float64), code=codes[0])
    img.set_qform(np.asarray(affine, dtype=np.float64), code=codes[1])
    with atomic_path(path) as tmp:
        img.to_filename(tmp)
    return Path(path)
