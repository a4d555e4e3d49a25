"""Vertebral levels of axial slices and of lesions, by SCT's rules (pure numpy).

SCT numbers vertebral levels 1..30 from C1 down to the coccyx
(``spinalcordtoolbox/types.py``, ``Centerline.labels_regions``): 1..7 are C1..C7,
8..19 T1..T12, 20..24 L1..L5, 25..29 S1..S5 and 30 Co. A vertebral labelling
comes in one of two forms, both read here as RPI arrays (axis 0 right->left,
axis 1 posterior->anterior, axis 2 inferior->superior):

* a labelled cord (``sct_label_vertebrae``'s ``<image>_seg_labeled.nii.gz``):
  every cord voxel holds the number of its vertebral level, 0 elsewhere;
  :func:`slice_levels_from_labeled_cord`;
* disc labels (``<image>_label-disc*.nii.gz``): single voxels whose value is
  the number of the disc, ``3`` being the C2/C3 disc, i.e. the disc at the top
  of vertebra 3; :func:`slice_levels_from_discs`.

Both give one level per axial slice (0 = no level); :func:`lesion_levels` turns
them into the levels a lesion spans and the level of its centroid, and
:func:`level_name` into SCT's names (``"C4"``).

Label values must be integers >= 0. Floats within ``1e-3`` of an integer are
rounded (a labelling stored as float32); any other value, a NaN, a negative
value or a boolean mask is refused with a :class:`~cohort_sciseg.errors.MorphometryError`,
as SCT would silently truncate or drop it (a labelling resampled with linear
interpolation holds fractional levels at every boundary).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from cohort_sciseg.errors import MorphometryError, format_error

__all__ = [
    "INTEGER_TOLERANCE",
    "SliceLevels",
    "lesion_levels",
    "level_name",
    "slice_levels_from_discs",
    "slice_levels_from_labeled_cord",
]

#: Largest distance to an integer at which a float label value is taken as that integer.
INTEGER_TOLERANCE = 1e-3
#: Largest level number (the per-slice levels are int16).
_MAX_LEVEL = int(np.iinfo(np.int16).max)
#: SCT's regions: (prefix, first level number, last level number); 30 is the coccyx.
_REGIONS = (("C", 1, 7), ("T", 8, 19), ("L", 20, 24), ("S", 25, 29), ("Co", 30, 30))

_RESAMPLE_FIX = (
    "; if it was resampled or reoriented, redo it with nearest-neighbour interpolation "
    "(e.g. `sct_resample -x nn` or `sct_apply_transfo -x label`)"
)


@dataclass(frozen=True, slots=True, eq=False)
class SliceLevels:
    """The vertebral level number of each RPI axial slice of a scan (0 = none) and the labelling that gave it.

    ``kind`` is ``"vertebrae"`` (a labelled cord) or ``"discs"`` (disc labels),
    the ``vert_labels`` value of the scan's summary.
    """

    levels: np.ndarray
    kind: Literal["vertebrae", "discs"]


def _labelled_voxels(
    arr: Any, *, name: str, expected: str, fix: str, scan_id: str | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(z, value, nz)``: RPI ``z`` and integer value (>= 1, int16) of each labelled voxel, and the slice count.

    Only the non-zero voxels are checked and converted (a labelling is sparse).
    """

    def fail(what: str) -> MorphometryError:
        msg = format_error(what, scan_id=scan_id, expected=expected, fix=fix)
        return MorphometryError(msg, scan_id=scan_id)

    a = np.asarray(arr)
    if a.ndim == 4 and a.shape[3] == 1:
        a = a[..., 0]
    if a.ndim != 3:
        raise fail(f"{name} has shape {a.shape}, not a 3D volume")
    if a.dtype.kind == "b":
        raise fail(f"{name} is a boolean mask, which holds no level numbers")
    if a.dtype.kind not in "iuf":
        raise fail(f"{name} has dtype {a.dtype}, not numbers")
    on = a != 0  # NaN included
    where = np.argwhere(on)  # C order, as a[on]
    values = a[on]

    def at(k: int) -> tuple[int, ...]:
        return tuple(int(i) for i in where[k])

    if a.dtype.kind == "f":
        bad = ~np.isfinite(values)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise fail(f"{name} holds the value {float(values[k])!r} at voxel {at(k)}")
        rounded = np.rint(values)
        off = np.abs(values - rounded) > INTEGER_TOLERANCE
        if off.any():
            k = int(np.flatnonzero(off)[0])
            raise fail(
                f"{name} holds the non-integer value {float(values[k])!r} at voxel {at(k)} "
                f"({int(np.count_nonzero(off))} voxel(s) more than {INTEGER_TOLERANCE:g} from an integer)"
            )
        values = rounded
    if values.size:
        k = int(np.argmin(values))
        if values[k] < 0:
            raise fail(f"{name} holds the negative value {values[k].item()!r} at voxel {at(k)}")
        k = int(np.argmax(values))
        if values[k] > _MAX_LEVEL:
            raise fail(
                f"{name} holds the value {values[k].item()!r} at voxel {at(k)}, above {_MAX_LEVEL}"
            )
    keep = values > 0  # a float within the tolerance of 0 is background
    return where[keep, 2], values[keep].astype(np.int16), int(a.shape[2])


def slice_levels_from_labeled_cord(labels: np.ndarray, *, scan_id: str | None = None) -> np.ndarray:
    """The vertebral level of every axial slice of a labelled cord.

    Parameters
    ----------
    labels
        RPI array of ``sct_label_vertebrae``'s labelled cord: each cord voxel
        holds its vertebral level number (integer >= 1), 0 is background.
        Floats within ``1e-3`` of an integer are rounded.
    scan_id
        Named in error messages.

    Returns
    -------
    numpy.ndarray
        Shape ``(nz,)``, int16: per axial slice ``z``, the most common non-zero
        value of ``labels[:, :, z]``; on a tie, the smaller level. 0 where the
        slice holds no label.

    Raises
    ------
    MorphometryError
        ``labels`` is not 3D, is boolean or not numeric, or holds a value that is
        negative, not finite or not an integer (the message names the value and
        its voxel).

    Notes
    -----
    SCT's ``sct_analyze_lesion.py`` (``_get_vertebral_level_for_slice``) takes
    :func:`numpy.unique` of the slice's values above 0 with their counts and the
    value at :func:`numpy.argmax` of the counts, so a tie goes to the smaller
    level; this function gives the same answer for all slices at once.
    """
    z, v, nz = _labelled_voxels(
        labels,
        name="vertebral labelling",
        expected="an integer vertebral level >= 1 in every cord voxel and 0 elsewhere",
        fix="pass sct_label_vertebrae's <image>_seg_labeled.nii.gz" + _RESAMPLE_FIX,
        scan_id=scan_id,
    )
    if z.size == 0:
        return np.zeros(nz, dtype=np.int16)
    values, index = np.unique(v, return_inverse=True)
    n = values.size
    counts = np.bincount(z * n + index.ravel(), minlength=nz * n).reshape(nz, n)
    # argmax returns the first maximum: values are ascending, so a tie gives the smaller level
    best = values[counts.argmax(axis=1)]
    return np.where(counts.any(axis=1), best, 0).astype(np.int16)


def slice_levels_from_discs(discs: np.ndarray, *, scan_id: str | None = None) -> np.ndarray:
    """The vertebral level of every axial slice, from disc labels.

    Parameters
    ----------
    discs
        RPI array of disc labels: single voxels whose value is the disc number
        (``3`` = the C2/C3 disc, at the top of vertebra 3), 0 elsewhere. Floats
        within ``1e-3`` of an integer are rounded.
    scan_id
        Named in error messages.

    Returns
    -------
    numpy.ndarray
        Shape ``(nz,)``, int16: slice ``z`` gets the value of the nearest disc
        strictly above it (the smallest disc ``z`` greater than it), so a disc's
        own slice belongs to the vertebra above the disc; 0 when no disc lies
        above (and everywhere when ``discs`` holds no label). When several labels
        share the nearest slice, the smallest value counts.

    Raises
    ------
    MorphometryError
        ``discs`` is not 3D, is boolean or not numeric, or holds a value that is
        negative, not finite or not an integer.

    Notes
    -----
    SCT's ``vertebrae/core.py``: ``label_vert`` lists the labelled voxels of
    the RPI image as ``(z, value)`` pairs and ``label_segmentation`` gives each
    axial slice ``iz`` the value of ``min((z, value) for discs with z > iz)``,
    0 when there is none. Every labelled voxel counts as a disc, as in SCT.
    """
    z, v, nz = _labelled_voxels(
        discs,
        name="disc labelling",
        expected="single voxels holding integer disc numbers >= 1 (3 = C2/C3) and 0 elsewhere",
        fix="pass the disc labels of sct_label_vertebrae or of a manual labelling "
        "(sct_label_utils -create-viewer)" + _RESAMPLE_FIX,
        scan_id=scan_id,
    )
    out = np.zeros(nz, dtype=np.int16)
    if z.size == 0:
        return out
    order = np.lexsort((v, z))  # by z, then value: the first of each z is min((z, value))
    z, v = z[order], v[order]
    first = np.ones(z.size, dtype=bool)
    first[1:] = z[1:] != z[:-1]
    disc_z, disc_v = z[first], v[first]
    # the nearest disc strictly above slice iz: the first disc_z > iz
    above = np.searchsorted(disc_z, np.arange(nz), side="right")
    has = above < disc_z.size
    out[has] = disc_v[above[has]]
    return out


def level_name(n: int) -> str:
    """SCT's name of vertebral level ``n``: ``"C1"``..``"C7"``, ``"T1"``..``"T12"``, ``"L1"``..``"L5"``, ``"S1"``..``"S5"``, ``"Co"``.

    Numbers follow ``spinalcordtoolbox/types.py`` (``labels_regions``): 1..7
    cervical, 8..19 thoracic, 20..24 lumbar, 25..29 sacral, 30 coccyx. Any other
    number gives ``"level <n>"``.
    """
    n = int(n)
    for prefix, first, last in _REGIONS:
        if first <= n <= last:
            return prefix if first == last else f"{prefix}{n - first + 1}"
    return f"level {n}"


def lesion_levels(
    slice_levels: np.ndarray, z_slices: np.ndarray, centroid_z: float
) -> tuple[list[str], str | None]:
    """The vertebral levels a lesion spans, and the level of its centroid.

    Parameters
    ----------
    slice_levels
        Per RPI axial slice level numbers, from
        :func:`slice_levels_from_labeled_cord` or :func:`slice_levels_from_discs`
        (0 = no level).
    z_slices
        The lesion's RPI axial slice indices (repeats allowed, e.g. the ``z`` of
        every lesion voxel).
    centroid_z
        The lesion centroid's RPI ``z``, in voxels.

    Returns
    -------
    (names, centroid_name)
        ``names``: the distinct level names over the lesion's slices, superior
        to inferior (ascending level number), slices without a level skipped.
        ``centroid_name``: the name of the level of slice ``round(centroid_z)``
        (Python's :func:`round`, as SCT's ``int(round(z))`` for lesion centres),
        ``None`` when that slice has no level, is outside ``slice_levels`` or
        ``centroid_z`` is not finite.

    Raises
    ------
    MorphometryError
        ``slice_levels`` is not 1D, or a slice of ``z_slices`` is not an integer
        index of ``slice_levels`` (the lesion and the labelling are on different
        grids).
    """
    levels = np.asarray(slice_levels)
    if levels.ndim != 1:
        msg = format_error(
            f"slice levels have shape {levels.shape}",
            expected="one level number per axial slice (a 1D array)",
            fix="pass the result of slice_levels_from_labeled_cord or slice_levels_from_discs",
        )
        raise MorphometryError(msg)
    nz = levels.shape[0]
    zs = np.unique(np.asarray(z_slices).ravel())
    if zs.size:
        whole = zs.dtype.kind in "iu" or (
            zs.dtype.kind == "f" and bool(np.all(np.isfinite(zs) & (zs == np.rint(zs))))
        )
        outside = [z for z in zs.tolist() if not (whole and 0 <= z < nz)]
        if outside:
            bad = outside[0]
            msg = format_error(
                f"lesion slice {bad!r} is not an axial slice of the vertebral labelling ({nz} slices)",
                expected=f"integer slice indices in [0, {nz - 1}]",
                fix="compute the slice levels on the lesion mask's RPI grid (resample the "
                "labelling onto the image with nearest-neighbour interpolation)",
            )
            raise MorphometryError(msg)
        zs = zs.astype(np.intp)
    spanned = np.unique(levels[zs])
    names = [level_name(int(n)) for n in spanned if n > 0]
    centroid: str | None = None
    if np.isfinite(centroid_z):
        zc = round(float(centroid_z))
        if 0 <= zc < nz and levels[zc] > 0:
            centroid = level_name(int(levels[zc]))
    return names, centroid
