"""Safe NIfTI reading and atomic NIfTI writing.

:func:`read_header` and :func:`load_nifti` check a file before anything large is
allocated: it exists and is not empty, the header parses, the image is 3D (a 4D
image with one frame is squeezed), dimensions and total size are within limits,
voxel sizes are finite and positive, there is a usable sform or qform, and (for
:func:`load_nifti`) the gzip stream is complete with a valid CRC and the data are
finite. Every failure raises :class:`~cohort_sciseg.errors.NiftiError` naming the
file, the bad value, what was expected and the fix.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from cohort_sciseg.errors import NiftiError, format_error
from cohort_sciseg.io.atomic import atomic_path
from cohort_sciseg.io.orientation import orientation_code, voxel_sizes

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_VOXELS",
    "NIFTI_EXTENSIONS",
    "NiftiInfo",
    "Volume",
    "load_nifti",
    "nifti_stem",
    "read_header",
    "save_nifti",
]

#: Largest image accepted by default, in voxels (512^3; a whole-spine 0.5 mm scan is ~40 M).
DEFAULT_MAX_VOXELS = 512**3
#: Largest uncompressed data accepted by default, in bytes (4 GiB).
DEFAULT_MAX_BYTES = 4 * 1024**3

_NIFTI_EXTS = (".nii.gz", ".nii")
_HEADER_ERRORS = (
    ImageFileError,
    HeaderDataError,
    EOFError,
    gzip.BadGzipFile,
    zlib.error,
    OSError,
    ValueError,
)
_REEXPORT_FIX = "re-export the image (e.g. with dcm2niix) or restore it from the source"


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
        Voxel sizes along the array axes, in mm (from the affine's column norms).
    affine
        Voxel-to-world (RAS+ scanner, mm) affine: the sform if its code is set,
        else the qform.
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


def _spatial_shape(img: Any, path: Path, scan_id: str | None) -> tuple[int, int, int]:
    shape: tuple[int, ...] = tuple(int(n) for n in img.shape)
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


def _usable_affine(img: Any, path: Path, scan_id: str | None) -> np.ndarray:
    hdr = img.header
    sform_code = int(hdr["sform_code"]) if "sform_code" in hdr else 0
    qform_code = int(hdr["qform_code"]) if "qform_code" in hdr else 0
    if sform_code == 0 and qform_code == 0:
        raise _fail(
            "header has neither an sform nor a qform (sform_code = qform_code = 0)",
            path,
            "a scanner-space affine",
            "re-convert from DICOM with dcm2niix, or set the qform from a trusted source "
            "(e.g. `sct_image -copy-header` or `fslorient -copyqform2sform`)",
            scan_id,
        )
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)):
        raise _fail(f"affine has non-finite values: {affine.tolist()!r}", path, "finite numbers", _REEXPORT_FIX, scan_id)
    zooms = voxel_sizes(affine)
    if not all(np.isfinite(z) and z > 0 for z in zooms):
        raise _fail(
            "voxel sizes are (" + ", ".join(f"{z:.4g}" for z in zooms) + ") mm",
            path,
            "finite, positive voxel sizes in mm",
            "fix pixdim/sform in the header (e.g. `sct_image -set-header`), or re-export the image",
            scan_id,
        )
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise _fail("affine is singular (axes are collinear)", path, "an invertible affine", _REEXPORT_FIX, scan_id)
    return affine


def _open_header(path: Path, scan_id: str | None) -> Any:
    try:
        # NIfTI-1 directly (skips nibabel's format sniffing, ~40% of a header read);
        # anything else (NIfTI-2, ...) through the generic loader.
        nifti1: Any = nib.Nifti1Image
        return nifti1.load(path)
    except _HEADER_ERRORS:
        pass
    try:
        return nib.load(path)
    except _HEADER_ERRORS as exc:
        raise _fail(
            f"cannot read the NIfTI header ({type(exc).__name__}: {exc})",
            path,
            "a valid NIfTI-1 or NIfTI-2 header",
            _REEXPORT_FIX,
            scan_id,
        ) from exc


def _check_size(
    shape: tuple[int, ...], itemsize: int, path: Path, scan_id: str | None, max_voxels: int, max_bytes: int
) -> None:
    n = int(np.prod(shape, dtype=np.int64))
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
        Missing, empty or unparsable file; not 3D; too large; unusable affine.
    """
    p = Path(path)
    _check_file(p, scan_id)
    img = _open_header(p, scan_id)
    shape = _spatial_shape(img, p, scan_id)
    dtype = img.header.get_data_dtype()
    _check_size(shape, dtype.itemsize, p, scan_id, max_voxels, max_bytes)
    affine = _usable_affine(img, p, scan_id)
    return NiftiInfo(
        path=str(p),
        shape=shape,
        voxel_size_mm=voxel_sizes(affine),
        affine=affine,
        orientation=orientation_code(affine),
        dtype=dtype.name,
    )


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
    info = read_header(p, scan_id=scan_id, max_voxels=max_voxels, max_bytes=max_bytes)
    proxy_img: Any = _open_header(p, scan_id)
    hdr0 = proxy_img.header
    n_bytes = int(np.prod(info.shape, dtype=np.int64)) * hdr0.get_data_dtype().itemsize
    offset = int(getattr(proxy_img.dataobj, "offset", hdr0.get_data_offset()))
    payload = _read_payload(p, offset + n_bytes + 1024 * 1024, scan_id)
    if len(payload) < offset + n_bytes:
        raise _fail(
            f"file holds {len(payload) - offset:,} data bytes",
            p,
            f"{n_bytes:,} bytes for shape {info.shape} of {hdr0.get_data_dtype().name}",
            _REEXPORT_FIX,
            scan_id,
        )
    try:
        img = type(proxy_img).from_bytes(payload)
        data = np.asanyarray(img.dataobj)
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
    return Volume(data=data, affine=info.affine, header=img.header, path=str(p))


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
