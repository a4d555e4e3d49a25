"""Optional post-processing of the cord and lesion masks, none of which drops a lesion.

All options are off by default, as in SCT. SCT's ``-largest 1`` keeps the largest
component of *each* output, so of several lesions only the largest survives; here
``keep_largest_cord`` acts on the cord mask only: lesions are never removed, even
those outside the kept cord component (they stay in the lesion mask, and lesion
morphometry reports them as outside the cord). ``fill_holes`` only adds voxels.
``remove_small_mm3`` removes small *cord* components; small lesions are removed
only when asked separately (``remove_small_lesion_mm3``).

Components are 26-connected (3D, full connectivity), so diagonal contact joins
them and fewer pieces are removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from cohort_sciseg.errors import SegmentationError, format_error

__all__ = ["PostprocessOptions", "fill_holes", "keep_largest_component", "postprocess_masks", "remove_small"]

_FULL = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True, slots=True)
class PostprocessOptions:
    """What to do to the masks after prediction (all off by default, as SCT).

    Attributes
    ----------
    keep_largest_cord
        Keep only the largest 26-connected component of the cord mask. The lesion
        mask is left as is (a lesion outside the kept component is kept).
    fill_holes
        ``None`` (off), ``"3d"`` (:func:`scipy.ndimage.binary_fill_holes` on the
        volume) or ``"slice"`` (2D, on each slice along the image's last array axis),
        applied to both masks.
    remove_small_mm3
        Remove cord components smaller than this volume in mm3 (``None``: off).
    remove_small_lesion_mm3
        Remove lesion components smaller than this volume in mm3 (``None``: off, the
        only option that removes lesions, and only when given).
    """

    keep_largest_cord: bool = False
    fill_holes: Literal["3d", "slice"] | None = None
    remove_small_mm3: float | None = None
    remove_small_lesion_mm3: float | None = None

    def __post_init__(self) -> None:
        if self.fill_holes not in (None, "3d", "slice"):
            msg = format_error(f"fill_holes={self.fill_holes!r} is not valid", expected="None, '3d' or 'slice'",
                               fix="use --fill-holes (3D) or --fill-holes slice")
            raise SegmentationError(msg)
        for name in ("remove_small_mm3", "remove_small_lesion_mm3"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value >= 0):
                msg = format_error(f"{name}={value!r} is not valid", expected="a volume >= 0 in mm3",
                                   fix="pass a non-negative number of mm3, e.g. --remove-small 5")
                raise SegmentationError(msg)

    @property
    def active(self) -> bool:
        """Whether any option is on."""
        return any(v not in (None, False) for v in asdict(self).values())

    def as_dict(self) -> dict[str, Any]:
        """Settings for provenance."""
        return asdict(self)

    @classmethod
    def from_manifest(cls, value: Any, *, source: str) -> PostprocessOptions:
        """Options a model folder recommends (``model.json`` key ``postprocessing``).

        Raises
        ------
        SegmentationError
            Not a mapping of known option names to valid values.
        """
        known = set(cls.__dataclass_fields__)
        if not isinstance(value, dict) or set(value) - known:
            msg = format_error(
                f"the model's recommended post-processing is not valid: {value!r}",
                path=source, expected=f"a mapping with keys among {sorted(known)}",
                fix="correct the 'postprocessing' entry of model.json (and re-write its manifest), "
                "or pass the post-processing options explicitly",
            )
            raise SegmentationError(msg)
        return cls(**value)


def keep_largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean mask (empty stays empty; ties: lowest label)."""
    labels, n = ndimage.label(mask, structure=_FULL)
    if n <= 1:
        return mask.astype(bool, copy=True)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def fill_holes(mask: np.ndarray, mode: Literal["3d", "slice"] = "3d") -> np.ndarray:
    """Fill enclosed holes of a boolean mask, in 3D or slice by slice along the last axis."""
    if mode == "3d":
        return ndimage.binary_fill_holes(mask)
    out = np.empty_like(mask, dtype=bool)
    for k in range(mask.shape[-1]):
        out[..., k] = ndimage.binary_fill_holes(mask[..., k])
    return out


def remove_small(mask: np.ndarray, min_mm3: float, voxel_size_mm: Sequence[float]) -> np.ndarray:
    """Remove 26-connected components smaller than ``min_mm3`` (volume = voxels x voxel volume)."""
    labels, n = ndimage.label(mask, structure=_FULL)
    if n == 0:
        return mask.astype(bool, copy=True)
    voxel_mm3 = float(np.prod(voxel_size_mm))
    sizes = np.bincount(labels.ravel()) * voxel_mm3
    keep = sizes >= min_mm3
    keep[0] = False
    return keep[labels]


def postprocess_masks(
    cord: np.ndarray,
    lesion: np.ndarray,
    voxel_size_mm: Sequence[float],
    options: PostprocessOptions | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``options`` to boolean ``(cord, lesion)`` masks; return new boolean masks.

    Order: fill holes, remove small components, keep the largest cord component.
    The lesion mask is only changed by ``fill_holes`` (adds voxels) and
    ``remove_small_lesion_mm3``.
    """
    options = options or PostprocessOptions()
    cord = np.asarray(cord, dtype=bool)
    lesion = np.asarray(lesion, dtype=bool)
    if options.fill_holes is not None:
        cord = fill_holes(cord, options.fill_holes)
        lesion = fill_holes(lesion, options.fill_holes)
    if options.remove_small_mm3 is not None:
        cord = remove_small(cord, options.remove_small_mm3, voxel_size_mm)
    if options.remove_small_lesion_mm3 is not None:
        lesion = remove_small(lesion, options.remove_small_lesion_mm3, voxel_size_mm)
    if options.keep_largest_cord:
        cord = keep_largest_component(cord)
    return cord, lesion
