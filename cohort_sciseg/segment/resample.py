"""Resampling to and from the model's spacing: nnU-Net's exact path, or the same operator on torch.

nnU-Net resamples twice per scan: the normalised image to the model's spacing
before the network (``resampling_fn_data``, cubic spline) and the logits back to
the image's grid after it (``resampling_fn_probabilities``, linear). Its default
function, ``resample_data_or_seg_to_shape``, runs ``skimage.transform.resize``
slice by slice in float64 on one CPU thread: on an anisotropic 320x256x19 scan
this is most of the CPU time outside the network (nnU-Net issues #2014, #2540).

``resampling="torch"`` computes the *same* operator with matrix products on torch
(the model's device, or CPU threads). The exact path is linear and separable:

* ``resize(..., order=k, mode="edge")`` is ``scipy.ndimage.zoom(..., grid_mode=True)``,
  i.e. per axis a B-spline prefilter (order > 1) and a tensor-product spline
  evaluation at ``(i + 0.5) * n_in / n_out - 0.5``, both linear in the samples; the
  1D operator of each axis is a small ``n_out x n_in`` matrix, built once by
  running scipy's own ``zoom`` on an identity matrix (so boundary handling and
  coordinate conventions are scipy's, by construction);
* across the slow axis of an anisotropic image nnU-Net takes the nearest slice
  (``map_coordinates(order=0, mode="nearest")``): a selection matrix, built the same way;
* the only non-linear step is skimage's clipping of each ``resize`` call's output to
  its input's range: per slice (separate-z) or per channel (3D), reproduced here.

Both paths compute in float64 and return float32, so the result equals the exact path
to float32 rounding (bit-equal on the images of ``benchmarks/bench_resample.py``; the
tests allow 1e-5) and the masks are the same; the engine setting and the
``--resampling`` option of ``segment``/``run`` choose it. Plans that name another
resampling function are left alone (only ``resample_data_or_seg_to_shape`` is
replaced).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

__all__ = ["RESAMPLING_MODES", "Resampling", "resample_to_shape", "with_resampling"]

logger = logging.getLogger(__name__)

Resampling = Literal["exact", "torch"]
#: Valid values of :attr:`~cohort_sciseg.segment.EngineSettings.resampling`.
RESAMPLING_MODES: tuple[str, ...] = ("exact", "torch")

#: nnU-Net's default (scipy/skimage) resampling function, the one this module reproduces.
EXACT_FUNCTION = "resample_data_or_seg_to_shape"


@functools.lru_cache(maxsize=256)
def _axis_operator(n_in: int, n_out: int, order: int, kind: str) -> np.ndarray:
    """The ``n_out x n_in`` float64 matrix of one axis of the exact path (read-only).

    ``kind="resize"``: ``skimage.transform.resize(order, mode="edge")`` along one axis
    (``scipy.ndimage.zoom`` with ``grid_mode=True``, ``mode="nearest"``).
    ``kind="slices"``: nnU-Net's step across the slow axis
    (``map_coordinates(order, mode="nearest")`` at ``(i + 0.5) * n_in / n_out - 0.5``).
    """
    from scipy import ndimage

    eye = np.eye(n_in, dtype=np.float64)
    if kind == "resize":
        op = ndimage.zoom(eye, (n_out / n_in, 1.0), order=order, mode="nearest", grid_mode=True)
    else:
        coords = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
        rows, cols = np.meshgrid(coords, np.arange(n_in, dtype=np.float64), indexing="ij")
        op = ndimage.map_coordinates(eye, np.stack([rows, cols]), order=order, mode="nearest")
    if op.shape != (n_out, n_in):  # zoom rounds the output shape; a mismatch would be a scipy change
        msg = f"operator shape {op.shape} for {n_in} -> {n_out}"
        raise RuntimeError(msg)
    op.setflags(write=False)
    return op


_device_ops: dict[tuple[int, int, int, str, str], Any] = {}
_device_lock = threading.Lock()


def _operator(n_in: int, n_out: int, order: int, kind: str, device: Any) -> Any:
    """:func:`_axis_operator` as a float64 tensor on ``device`` (cached per device)."""
    import torch

    key = (n_in, n_out, order, kind, str(device))
    with _device_lock:
        op = _device_ops.get(key)
    if op is None:
        op = torch.from_numpy(np.array(_axis_operator(n_in, n_out, order, kind))).to(device)
        with _device_lock:
            if len(_device_ops) > 512:
                _device_ops.clear()
            _device_ops[key] = op
    return op


def _selection(n_in: int, n_out: int, device: Any) -> Any:
    """Indices of nnU-Net's nearest-slice step (the order-0 ``"slices"`` operator as a gather)."""
    import torch

    op = _axis_operator(n_in, n_out, 0, "slices")
    return torch.from_numpy(np.argmax(op, axis=1)).to(device)


def _apply(x: Any, axis: int, op: Any) -> Any:
    """``op`` (n_out x n_in) applied along ``axis`` of ``x``."""
    import torch

    moved = torch.movedim(x, axis, -1)
    return torch.movedim(moved @ op.T, -1, axis)


def _plan_axes(shape: Sequence[int], new_shape: Sequence[int], axes: Sequence[int]) -> list[int]:
    """Axes to resample, the most shrinking first (fewer samples for the next products)."""
    todo = [a for a in axes if shape[a] != new_shape[a]]
    return sorted(todo, key=lambda a: new_shape[a] / shape[a])


def _resample_joint(x: Any, shape: tuple[int, ...], target: tuple[int, ...], order: int) -> Any:
    """3D resize of each channel (``x``: float64 ``(c, x, y, z)``), clipped to the channel's range."""
    import torch

    lo = torch.amin(x, dim=(1, 2, 3), keepdim=True)
    hi = torch.amax(x, dim=(1, 2, 3), keepdim=True)
    for a in _plan_axes(shape, target, (0, 1, 2)):
        x = _apply(x, a + 1, _operator(shape[a], target[a], order, "resize", x.device))
    return torch.maximum(torch.minimum(x, hi), lo)


def _resample_separate(
    x: Any, shape: tuple[int, ...], target: tuple[int, ...], slow: int, order: int, order_z: int
) -> Any:
    """2D resize of every slice across the ``slow`` axis (clipped to that slice's range), then across it."""
    import torch

    dim = slow + 1
    others = tuple(d for d in (1, 2, 3) if d != dim)
    lo = torch.amin(x, dim=others, keepdim=True)
    hi = torch.amax(x, dim=others, keepdim=True)
    across = shape[slow] != target[slow]
    # the nearest-slice step commutes with the per-slice ones: do it first when it drops slices
    first = across and order_z == 0 and target[slow] < shape[slow]
    if first:
        index = _selection(shape[slow], target[slow], x.device)
        x, lo, hi = (t.index_select(dim, index) for t in (x, lo, hi))
    for a in _plan_axes(shape, target, [a for a in (0, 1, 2) if a != slow]):
        x = _apply(x, a + 1, _operator(shape[a], target[a], order, "resize", x.device))
    x = torch.maximum(torch.minimum(x, hi), lo)
    if across and not first:
        if order_z == 0:
            x = x.index_select(dim, _selection(shape[slow], target[slow], x.device))
        else:
            x = _apply(x, dim, _operator(shape[slow], target[slow], order_z, "slices", x.device))
    return x


def resample_to_shape(
    data: Any,
    new_shape: Sequence[int],
    current_spacing: Sequence[float],
    new_spacing: Sequence[float],
    is_seg: bool = False,
    order: int = 3,
    order_z: int = 0,
    force_separate_z: bool | None = False,
    *,
    device: Any = "cpu",
    num_threads: int | None = None,
) -> Any:
    """nnU-Net's ``resample_data_or_seg_to_shape`` (images and logits), computed on torch.

    Parameters
    ----------
    data
        ``(c, x, y, z)`` array or tensor (nnU-Net's axis order).
    new_shape
        Spatial output shape.
    current_spacing, new_spacing
        Voxel sizes (mm) before and after, in the same axis order; they decide, as in
        nnU-Net, whether the anisotropic axis is handled apart (``order_z``).
    is_seg, order, order_z, force_separate_z
        As in nnU-Net. ``is_seg=True`` (label maps) is not needed at inference and is refused.
    device
        torch device of the products (``"cuda"`` on GPU workers).
    num_threads
        torch intra-op threads on CPU while resampling (``None``: unchanged).

    Returns
    -------
    The resampled data: a float32 numpy array for array input (as nnU-Net returns),
    a float32 tensor on the input's device for tensor input.
    """
    import torch
    from nnunetv2.preprocessing.resampling.default_resampling import determine_do_sep_z_and_axis

    if is_seg:
        msg = "torch resampling of label maps is not implemented (inference never resamples labels)"
        raise NotImplementedError(msg)
    was_numpy = isinstance(data, np.ndarray)
    shape = tuple(int(s) for s in data.shape[1:])
    target = tuple(int(s) for s in new_shape)
    if len(target) != 3 or len(shape) != 3:
        msg = f"expected (c, x, y, z) data and a 3D shape, got {tuple(data.shape)} -> {target}"
        raise ValueError(msg)
    if shape == target:
        return data
    separate, axis = determine_do_sep_z_and_axis(force_separate_z, current_spacing, new_spacing)
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        with torch.no_grad():
            source = torch.from_numpy(np.asarray(data)) if was_numpy else data
            x = source.to(device=device, dtype=torch.float64)
            if separate:
                x = _resample_separate(x, shape, target, int(axis), order, order_z)
            else:
                x = _resample_joint(x, shape, target, order)
            out = x.to(torch.float32)
    finally:
        torch.set_num_threads(previous)
    if was_numpy:
        return out.cpu().numpy()
    return out.to(source.device)


def _discarded_seg(seg: Any, new_shape: Sequence[int], *_: Any, **__: Any) -> np.ndarray:
    """Stand-in for the nonzero-mask resampling of nnU-Net's preprocessor at inference.

    ``DefaultPreprocessor.run_case_npy`` resamples the "segmentation" it made from the
    image's nonzero mask, and the inference adapters throw it away unless a previous
    cascade stage gave one (never in this engine: ``prepare`` passes none). Resampling it
    costs as much as the image's own resampling (0.43 s of 0.57 s on a 320x256x19 scan);
    this returns zeros of the right shape instead.
    """
    return np.zeros((int(seg.shape[0]), *(int(s) for s in new_shape)), dtype=np.int8)


def with_resampling(configuration_manager: Any, resampling: Resampling, *, device: Any, threads: int | None) -> Any:
    """nnU-Net's ``ConfigurationManager`` of a model with its resampling on torch (or unchanged).

    ``"exact"`` returns ``configuration_manager`` itself. ``"torch"`` returns a copy whose
    ``resampling_fn_data`` and ``resampling_fn_probabilities`` are :func:`resample_to_shape`
    with the plans' own options, where the plans name nnU-Net's default function; other
    functions (custom plans) are kept and logged. Its ``resampling_fn_seg`` skips the
    resampling of a mask that inference discards (:func:`_discarded_seg`): use it for
    inference without a previous cascade stage only, as the engine does.
    """
    if resampling == "exact":
        return configuration_manager
    cls = _torch_configuration_class()
    return cls(configuration_manager.configuration, device=device, threads=threads)


@functools.lru_cache(maxsize=1)
def _torch_configuration_class() -> type:
    from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

    class TorchResamplingConfiguration(ConfigurationManager):
        """A ``ConfigurationManager`` whose default resampling runs on torch."""

        def __init__(self, configuration: dict[str, Any], *, device: Any, threads: int | None) -> None:
            super().__init__(configuration)
            self._device = device
            self._threads = threads
            for which in ("resampling_fn_data", "resampling_fn_probabilities"):
                if configuration.get(which) != EXACT_FUNCTION:
                    logger.info("plans use %s=%r: kept (only %s has a torch path)",
                                which, configuration.get(which), EXACT_FUNCTION)

        def _torch_fn(self, which: str) -> Any:
            if self.configuration.get(which) != EXACT_FUNCTION:
                return getattr(super(), which)
            return functools.partial(
                resample_to_shape, **self.configuration[f"{which}_kwargs"],
                device=self._device, num_threads=self._threads,
            )

        @property
        def resampling_fn_data(self) -> Any:
            return self._torch_fn("resampling_fn_data")

        @property
        def resampling_fn_probabilities(self) -> Any:
            return self._torch_fn("resampling_fn_probabilities")

        @property
        def resampling_fn_seg(self) -> Any:
            return _discarded_seg

    return TorchResamplingConfiguration
