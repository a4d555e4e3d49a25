"""Disagreement between the members of an nnU-Net ensemble: its folds and test-time mirrorings.

nnU-Net averages an ensemble inside its predictor: the logits of each fold's
parameters, and with test-time augmentation (``tta``) those of every mirroring of each
patch along the model's allowed mirror axes (identity plus each non-empty combination
of axes: 8 in 3D), all with equal weight. :func:`predict_members` runs those members
one by one instead: each fold's parameters, and for each mirroring nnU-Net's own sliding
window with its per-patch step (``_internal_maybe_mirror_and_predict``) replaced, for
that pass, by that one mirroring (flip the patch, run the network, flip back). It returns

- their mean logits: the ensemble's logits as nnU-Net computes them, up to rounding
  (nnU-Net accumulates each sliding window in float16: once per fold there, once per
  member here; on a test model 99.97 % of the label map agreed, the rest where two labels were within that rounding). The
  masks are made from these, as usual;
- the disagreement of each structure (cord, lesion) between the members.

Definition (``tables/scans`` ``lesion_disagreement``, ``cord_disagreement``)
---------------------------------------------------------------------------
For a structure with member probabilities ``p_1 .. p_n`` per voxel (sigmoid of its
region channel, or its labels' summed softmax: :func:`~cohort_sciseg.segment.uncertainty.structure_probabilities`)
and mean ``p = mean(p_m)``, the mutual information between the prediction and the
member, ``I = H(p) - mean(H(p_m))`` (bits, 0..1; ``H`` the binary entropy), is the part
of the predictive entropy that comes from the members disagreeing (BALD: Houlsby et al.
2011; the epistemic part of Gal's decomposition). ``<structure>_disagreement`` is the
mean of ``I`` over the same voxels as ``<structure>_uncertainty`` (the structure
predicted from the mean logits, its 1-voxel border and ``0.2 < p < 0.8``), measured on the
network's grid (where the members exist; no member is resampled). 0 when all members
agree or the set is empty.

Cost: the same network evaluations as nnU-Net's own ensemble (folds x mirrorings), plus
a sigmoid/softmax and two running sums per structure per member on the network grid.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from cohort_sciseg.segment.model import LabelSplit
from cohort_sciseg.segment.uncertainty import (
    binary_entropy,
    structure_probabilities,
    uncertainty_region,
)

__all__ = ["member_mirrorings", "n_members", "predict_members"]

_STRUCTURES = ("lesion", "cord")


def member_mirrorings(allowed_axes: Sequence[int] | None, tta: bool) -> list[tuple[int, ...]]:
    """The mirrorings of each fold, as nnU-Net's predictor makes them: ``()`` and, with ``tta``, every combination."""
    axes = list(allowed_axes or ()) if tta else []
    return [()] + [c for i in range(len(axes)) for c in itertools.combinations(axes, i + 1)]


def n_members(n_folds: int, allowed_axes: Sequence[int] | None, tta: bool) -> int:
    """How many members an ensemble of ``n_folds`` folds has (folds x mirrorings)."""
    return n_folds * len(member_mirrorings(allowed_axes, tta))


def _load(predictor: Any, params: Any) -> None:
    network = getattr(predictor.network, "_orig_mod", predictor.network)  # a torch.compile'd network
    network.load_state_dict(params)


def _one_mirroring(predictor: Any, axes: tuple[int, ...]) -> Any:
    """nnU-Net's per-patch step for a single mirroring (``axes`` spatial; patches are (batch, channels, ...))."""
    import torch

    dims = [a + 2 for a in axes]
    if not dims:
        return lambda x: predictor.network(x)
    return lambda x: torch.flip(predictor.network(torch.flip(x, dims)), dims)


def predict_members(predictor: Any, data: Any, label_manager: Any, split: LabelSplit) -> tuple[Any, dict[str, float]]:
    """``(mean logits, {"lesion_disagreement": ..., "cord_disagreement": ...})`` of ``data`` (module docstring).

    Parameters
    ----------
    predictor
        An initialised ``nnUNetPredictor``; its ``use_mirroring`` says whether the
        mirrorings are members. The caller holds its lock (the per-patch step is
        swapped during the call and restored).
    data
        nnU-Net's preprocessed image (channels, z, y, x), tensor or array.
    label_manager
        The model's label manager (regions or labels).
    split
        Which labels are the cord and the lesion.
    """
    import torch

    x = data if isinstance(data, torch.Tensor) else torch.from_numpy(np.asarray(data))
    mirrorings = member_mirrorings(predictor.allowed_mirroring_axes, bool(predictor.use_mirroring))
    values = {"lesion": split.lesion_values, "cord": split.cord_values}
    total: Any = None
    sum_p: dict[str, np.ndarray] = {}
    sum_h: dict[str, np.ndarray] = {}
    try:
        for params in predictor.list_of_parameters:
            _load(predictor, params)
            for axes in mirrorings:
                predictor._internal_maybe_mirror_and_predict = _one_mirroring(predictor, axes)  # this pass's step
                logits = predictor.predict_sliding_window_return_logits(x).to("cpu")
                total = logits.clone() if total is None else total.add_(logits)
                probabilities = label_manager.apply_inference_nonlin(logits).numpy()
                for name in _STRUCTURES:
                    p = structure_probabilities(probabilities, label_manager, values[name]).astype(np.float32)
                    h = binary_entropy(p).astype(np.float32)
                    if name in sum_p:
                        sum_p[name] += p
                        sum_h[name] += h
                    else:
                        sum_p[name], sum_h[name] = p, h
    finally:
        predictor.__dict__.pop("_internal_maybe_mirror_and_predict", None)  # nnU-Net's method again
    n = len(predictor.list_of_parameters) * len(mirrorings)
    mean = total / n
    seg = np.asarray(label_manager.convert_logits_to_segmentation(mean))
    out: dict[str, float] = {}
    for name in _STRUCTURES:
        p_bar = sum_p[name] / n
        region, _ = uncertainty_region(p_bar, np.isin(seg, values[name]))
        k = int(np.count_nonzero(region))
        mutual = binary_entropy(p_bar[region]) - sum_h[name][region] / n
        out[f"{name}_disagreement"] = float(np.clip(mutual, 0.0, None).sum() / k) if k else 0.0
    return mean, out
