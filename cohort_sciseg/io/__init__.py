"""Safe NIfTI I/O: checked loading, orientation, geometry checks, atomic writes."""

from cohort_sciseg.io.atomic import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    sha256_file,
    write_json,
    write_parquet,
)
from cohort_sciseg.io.geometry import (
    DEFAULT_ATOL_MM,
    DEFAULT_THRESHOLD,
    MaskReport,
    binarize,
    check_same_geometry,
    grid_differences,
    inspect_mask,
)
from cohort_sciseg.io.nifti import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_VOXELS,
    NiftiInfo,
    Volume,
    load_nifti,
    read_header,
    save_nifti,
)
from cohort_sciseg.io.orientation import (
    RPI,
    acquisition_plane,
    axis_directions,
    from_nibabel_axcodes,
    orientation_code,
    reorient,
    to_nibabel_axcodes,
    voxel_sizes,
)

__all__ = [
    "DEFAULT_ATOL_MM",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_VOXELS",
    "DEFAULT_THRESHOLD",
    "RPI",
    "MaskReport",
    "NiftiInfo",
    "Volume",
    "acquisition_plane",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "axis_directions",
    "binarize",
    "check_same_geometry",
    "from_nibabel_axcodes",
    "grid_differences",
    "inspect_mask",
    "load_nifti",
    "orientation_code",
    "read_header",
    "reorient",
    "save_nifti",
    "sha256_file",
    "to_nibabel_axcodes",
    "voxel_sizes",
    "write_json",
    "write_parquet",
]
