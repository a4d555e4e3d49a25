"""Per-scan uncertainty of the predicted cord and lesion, from the probabilities nnU-Net already computes.

Definitions (``tables/scans`` columns; :data:`UNCERTAINTY_COLUMNS`)
-----------------------------------------------------------------
For a structure (lesion, cord) let ``p`` be its probability per voxel of the image grid:
the sigmoid of its region channel for a region-based model (SCIseg: ``sc`` = region
(1, 2), ``lesion`` = region (2)), the sum of its labels' softmax probabilities for a
one-label-per-voxel model. Let ``M`` be the structure in nnU-Net's label map (before
post-processing: the mask the probabilities explain), ``B`` the voxels within
:data:`BAND_VOXELS` face-neighbour step of ``M`` (its border band, outside and on it)
and ``U`` the uncertain voxels, ``UNCERTAIN_LOW < p < UNCERTAIN_HIGH`` (0.2 < p < 0.8,
margin ``|2p - 1| < 0.6``). ``U`` is there so that a lesion the model nearly found
(``p`` up to 0.5, nothing predicted) still counts.

``<structure>_uncertainty``
    Mean binary entropy ``H(p) = -p log2 p - (1 - p) log2 (1 - p)`` (bits, 0..1) over
    the union of ``M``, ``B`` and ``U``; 0 when that set is empty (nothing predicted, nothing doubtful).
    Higher is more uncertain; a mean, so a large confident lesion is not "uncertain"
    for its size alone.
``<structure>_uncertain_volume_mm3``
    ``|U|`` times the voxel volume (mm³): how much of the image the model hesitates on.

Where and at what cost
----------------------
On the image grid, inside nnU-Net's crop box (the image's nonzero bounding box; outside
it every voxel is background with certainty: entropy 0, out of ``U``; the band is clipped
to the box). The probabilities come from the logits nnU-Net resamples back to the image
grid anyway to make the label map (:func:`labels_and_uncertainty` captures them from
nnU-Net's own call, so the label map is that call's, bit for bit): no second resampling,
only a sigmoid/softmax, a dilation of each mask's bounding box and the entropy of the
voxels in the set. The network grid would save nothing (no resampling is saved) and
would measure a different mask from the one written.

Disagreement across the folds of an ensemble and its test-time mirrorings (the
``*_disagreement`` columns, when asked) is :mod:`cohort_sciseg.segment.members`: nnU-Net
sums those members inside its predictor, so getting them means running them one by one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from cohort_sciseg.segment.model import LabelSplit

__all__ = [
    "BAND_VOXELS",
    "UNCERTAINTY_COLUMNS",
    "UNCERTAIN_HIGH",
    "UNCERTAIN_LOW",
    "ScanUncertainty",
    "binary_entropy",
    "labels_and_uncertainty",
    "structure_probabilities",
    "structure_uncertainty",
    "uncertainty_region",
]

#: Width of the border band around a predicted mask, in face-neighbour steps (voxels).
BAND_VOXELS = 1
#: Probabilities strictly between these are "uncertain" (margin |2p - 1| < 0.6).
UNCERTAIN_LOW = 0.2
UNCERTAIN_HIGH = 0.8

#: The ``tables/scans`` columns of :class:`ScanUncertainty`, in order.
UNCERTAINTY_COLUMNS: tuple[str, ...] = (
    "lesion_uncertainty",
    "lesion_uncertain_volume_mm3",
    "cord_uncertainty",
    "cord_uncertain_volume_mm3",
    "lesion_disagreement",
    "cord_disagreement",
)


@dataclass(frozen=True, slots=True)
class ScanUncertainty:
    """A scan's uncertainty columns (definitions in the module docstring).

    The disagreements (:mod:`cohort_sciseg.segment.members`) are ``None`` unless the
    engine ran the ensemble's members one by one (``disagreement=True``).
    """

    lesion_uncertainty: float
    lesion_uncertain_volume_mm3: float
    cord_uncertainty: float
    cord_uncertain_volume_mm3: float
    lesion_disagreement: float | None = None
    cord_disagreement: float | None = None

    def as_row(self) -> dict[str, float | None]:
        """The ``tables/scans`` columns (:data:`UNCERTAINTY_COLUMNS`)."""
        return asdict(self)


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """``H(p)`` in bits (float64), 0 at p = 0 and 1, 1 at p = 0.5; ``p`` is clipped to [0, 1]."""
    q = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(q * np.log2(q) + (1.0 - q) * np.log2(1.0 - q))
    return np.nan_to_num(h, nan=0.0)


def _bbox(mask: np.ndarray, pad: int) -> tuple[slice, ...] | None:
    """Bounding box of ``mask``, grown by ``pad`` voxels and clipped to the array; None when empty."""
    out = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hit.size == 0:
            return None
        out.append(slice(max(int(hit[0]) - pad, 0), min(int(hit[-1]) + pad + 1, mask.shape[axis])))
    return tuple(out)


def uncertainty_region(p: np.ndarray, predicted: np.ndarray, *, band: int = BAND_VOXELS) -> tuple[np.ndarray, np.ndarray]:
    """``(region, uncertain)``: the voxels a structure's uncertainty averages over (``M``, ``B``, ``U``) and ``U``.

    ``p`` is the structure's probability, ``predicted`` its mask (same shape); ``band``
    the border width in face-neighbour steps (0: the mask itself).
    """
    p = np.asarray(p)
    predicted = np.asarray(predicted, dtype=bool)
    if p.shape != predicted.shape:
        msg = f"probabilities of shape {p.shape} and a mask of shape {predicted.shape}: expected the same grid"
        raise ValueError(msg)
    uncertain = (p > UNCERTAIN_LOW) & (p < UNCERTAIN_HIGH)
    region = uncertain.copy()
    box = _bbox(predicted, band)
    if box is not None:
        grown = predicted[box]
        if band > 0:
            grown = ndimage.binary_dilation(grown, iterations=band)  # face connectivity
        region[box] |= grown
    return region, uncertain


def structure_uncertainty(
    p: np.ndarray, predicted: np.ndarray, voxel_volume_mm3: float, *, band: int = BAND_VOXELS
) -> tuple[float, float]:
    """``(mean entropy in bits, uncertain volume in mm³)`` of one structure (module docstring).

    Parameters
    ----------
    p
        The structure's probability per voxel.
    predicted
        Its predicted mask (same shape).
    voxel_volume_mm3
        Volume of one voxel.
    band
        Border band width in face-neighbour steps (0: the mask itself).
    """
    region, uncertain = uncertainty_region(p, predicted, band=band)
    n = int(np.count_nonzero(region))
    mean = float(binary_entropy(np.asarray(p)[region]).sum() / n) if n else 0.0
    return mean, float(np.count_nonzero(uncertain)) * float(voxel_volume_mm3)


def structure_probabilities(probabilities: Any, label_manager: Any, values: tuple[int, ...]) -> np.ndarray:
    """The probability of the structure made of the label ``values`` (channels first)."""
    if label_manager.has_regions:
        for i, region in enumerate(label_manager.foreground_regions):
            members = tuple(region) if isinstance(region, list | tuple) else (int(region),)
            if set(members) == set(values):
                return np.asarray(probabilities[i])
        msg = f"no region of the model is the label set {values!r} (regions {label_manager.foreground_regions!r})"
        raise ValueError(msg)
    return np.asarray(sum(probabilities[v] for v in values))


class _CapturingConfiguration:
    """A configuration manager whose ``resampling_fn_probabilities`` keeps what it returns.

    nnU-Net's ``convert_predicted_logits_to_segmentation_with_correct_shape`` reads only
    ``spacing`` and ``resampling_fn_probabilities`` from it; the rest is passed through.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.resampled: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def resampling_fn_probabilities(self) -> Callable[..., Any]:
        fn = self._inner.resampling_fn_probabilities

        def keep(*args: Any, **kwargs: Any) -> Any:
            self.resampled = fn(*args, **kwargs)
            return self.resampled

        return keep


def labels_and_uncertainty(
    logits: Any,
    plans_manager: Any,
    configuration_manager: Any,
    label_manager: Any,
    properties: Mapping[str, Any],
    split: LabelSplit,
    *,
    num_threads_torch: int,
) -> tuple[np.ndarray, ScanUncertainty]:
    """nnU-Net's label map of ``logits`` (its own call, unchanged) and the scan's uncertainty.

    The label map is ``convert_predicted_logits_to_segmentation_with_correct_shape``'s
    (z-y-x, before the engine's transpose and reorientation); the uncertainty is
    measured on the logits that call resampled to the image grid (module docstring).
    """
    import torch
    from nnunetv2.inference.export_prediction import (
        convert_predicted_logits_to_segmentation_with_correct_shape,
    )

    capture = _CapturingConfiguration(configuration_manager)
    seg = np.asarray(convert_predicted_logits_to_segmentation_with_correct_shape(
        logits, plans_manager, capture, label_manager, dict(properties),
        return_probabilities=False, num_threads_torch=num_threads_torch,
    ))
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads_torch)
    try:
        probabilities = label_manager.apply_inference_nonlin(capture.resampled).cpu().numpy()
    finally:
        torch.set_num_threads(previous)
    capture.resampled = None
    # the label map in the frame of the captured logits: transposed forward, cropped
    box = tuple(slice(int(a), int(b)) for a, b in properties["bbox_used_for_cropping"])
    cropped = seg.transpose(plans_manager.transpose_forward)[box]
    voxel = float(math.prod(float(s) for s in properties["spacing"]))
    out: dict[str, float] = {}
    for name, values in (("lesion", split.lesion_values), ("cord", split.cord_values)):
        p = structure_probabilities(probabilities, label_manager, values)
        mean, volume = structure_uncertainty(p, np.isin(cropped, values), voxel)
        out[f"{name}_uncertainty"], out[f"{name}_uncertain_volume_mm3"] = mean, volume
    return seg, ScanUncertainty(**out)
