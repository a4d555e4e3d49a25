"""A tiny nnU-Net v2 model folder in SCIseg's layout, for tests and benchmarks.

:func:`make_tiny_model` writes, in seconds and without training,
``<out>/nnUNetTrainer__nnUNetPlans__3d_fullres/{dataset.json, plans.json,
fold_<k>/checkpoint_final.pth}`` and ``<out>/model.json``: a 3-stage
``PlainConvUNet`` (features 4-8-16, patch 32 x 32 x 32, ``ZScoreNormalization``)
with seeded random weights. The final convolution is scaled and biased so that
a fair share of the voxels of a textured image comes out as cord and some as
lesion: the masks are meaningless anatomically but non-trivial and depend on
the image content, which is what parity tests need.

The checkpoints name the base ``nnUNetTrainer`` so that nnU-Net's own command
line (``nnUNetv2_predict_from_modelfolder``) can load the same folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cohort_sciseg.segment.manifest import write_manifest
from cohort_sciseg.segment.model import plain_unet_stages

__all__ = ["TINY_TRAINER_FOLDER", "make_tiny_model", "textured_image", "tiny_dataset_json", "tiny_plans"]

TINY_TRAINER_FOLDER = "nnUNetTrainer__nnUNetPlans__3d_fullres"

_RESAMPLING = "resample_data_or_seg_to_shape"


def tiny_dataset_json(
    layout: Literal["regions", "labels"] = "regions", *, image_orientation: str | None = "RPI"
) -> dict[str, Any]:
    """``dataset.json`` of the tiny model: SCIseg's region layout, or plain labels.

    Parameters
    ----------
    layout
        ``"regions"``: ``{"background": 0, "sc": [1, 2], "lesion": 2}`` with
        ``regions_class_order [1, 2]`` (SCIseg); ``"labels"``:
        ``{"background": 0, "sc": 1, "lesion": 2}`` (softmax, one label per voxel).
    image_orientation
        SCT orientation code stored as ``image_orientation`` (``None``: key left out).
    """
    out: dict[str, Any] = {
        "channel_names": {"0": "T2w"},
        "numTraining": 1,
        "file_ending": ".nii.gz",
    }
    if layout == "regions":
        out["labels"] = {"background": 0, "sc": [1, 2], "lesion": 2}
        out["regions_class_order"] = [1, 2]
    else:
        out["labels"] = {"background": 0, "sc": 1, "lesion": 2}
    if image_orientation is not None:
        out["image_orientation"] = image_orientation
    return out


def tiny_plans(
    *,
    features: Sequence[int] = (4, 8, 16),
    patch_size: Sequence[int] = (32, 32, 32),
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
) -> dict[str, Any]:
    """Hand-written nnU-Net v2 plans with one ``3d_fullres`` ``PlainConvUNet`` configuration.

    ``spacing`` and ``patch_size`` are in nnU-Net (SimpleITK, z-y-x) axis order.
    """
    config = {
        "data_identifier": "nnUNetPlans_3d_fullres",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2,
        "patch_size": [int(p) for p in patch_size],
        "median_image_size_in_voxels": [int(p) for p in patch_size],
        "spacing": [float(s) for s in spacing],
        "normalization_schemes": ["ZScoreNormalization"],
        "use_mask_for_norm": [False],
        "resampling_fn_data": _RESAMPLING,
        "resampling_fn_seg": _RESAMPLING,
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": _RESAMPLING,
        "resampling_fn_probabilities_kwargs": {
            "is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None,
        },
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                **plain_unet_stages(features),
                "conv_bias": True,
                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                "norm_op_kwargs": {"eps": 1e-05, "affine": True},
                "dropout_op": None,
                "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU",
                "nonlin_kwargs": {"inplace": True},
            },
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        },
        "batch_dice": False,
    }
    return {
        "dataset_name": "Dataset999_Tiny",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [float(s) for s in spacing],
        "original_median_shape_after_transp": [int(p) for p in patch_size],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": config},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {
                "max": 1000.0, "mean": 100.0, "median": 100.0, "min": 0.0,
                "percentile_00_5": 0.0, "percentile_99_5": 900.0, "std": 50.0,
            }
        },
    }


def _tiny_weights(
    plans: dict[str, Any], n_outputs: int, seed: int, head_bias: Sequence[float]
) -> dict[str, Any]:
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    arch = plans["configurations"]["3d_fullres"]["architecture"]
    torch.manual_seed(seed)
    net = get_network_from_plans(
        arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
        1, n_outputs, allow_init=True, deep_supervision=False,
    )
    head = net.decoder.seg_layers[-1]
    with torch.no_grad():
        # Random He-initialised heads give logits of a few units; scale them up so most
        # voxels are far from the decision boundary (parity tests then compare masks, not
        # rounding noise), and shift them so both outputs have positive voxels.
        head.weight.mul_(4.0)
        head.bias.copy_(torch.as_tensor(list(head_bias), dtype=head.bias.dtype))
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def make_tiny_model(
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    layout: Literal["regions", "labels"] = "regions",
    image_orientation: str | None = "RPI",
    folds: Sequence[int | str] = (0,),
    checkpoint_name: str = "checkpoint_final.pth",
    trainer_folder: str = TINY_TRAINER_FOLDER,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    half: bool = False,
    compiled_prefix: bool = False,
    head_bias: Sequence[float] | None = None,
    manifest: bool = True,
) -> Path:
    """Write a tiny model folder in SCIseg's release layout; return the model folder.

    Parameters
    ----------
    out
        Model folder to create (the trainer folder goes inside).
    seed
        Seeds the random weights; fold ``k`` uses ``seed + k`` (``"all"``: ``seed + 99``).
    layout
        Label layout of ``dataset.json`` (see :func:`tiny_dataset_json`).
    image_orientation
        ``image_orientation`` of ``dataset.json`` (``None``: left out, SCT falls back to LPI).
    folds
        Fold folders to write (``fold_0``, ``fold_all``, ...).
    checkpoint_name
        ``checkpoint_final.pth`` or ``checkpoint_best.pth``.
    trainer_folder
        Name of the trainer folder.
    spacing
        Target spacing of the plans (z-y-x, mm).
    half
        Store fp16 weights (as exported release models do).
    compiled_prefix
        Prefix every weight name with ``_orig_mod.`` (a ``torch.compile``-d network's state dict).
    head_bias
        Bias of the final convolution per output channel (default: cord-ish positive,
        lesion-ish negative, so lesions are rarer than cord).
    manifest
        Write ``model.json`` (:func:`~cohort_sciseg.segment.manifest.write_manifest`).
    """
    import torch

    root = Path(out)
    trainer_dir = root / trainer_folder
    trainer_dir.mkdir(parents=True, exist_ok=True)
    plans = tiny_plans(spacing=spacing)
    dataset = tiny_dataset_json(layout, image_orientation=image_orientation)
    (trainer_dir / "plans.json").write_text(json.dumps(plans, indent=2))
    (trainer_dir / "dataset.json").write_text(json.dumps(dataset, indent=2))
    n_outputs = 2 if layout == "regions" else 3
    bias = head_bias if head_bias is not None else ((-1.0, -3.0) if layout == "regions" else (0.5, 0.0, -2.0))
    for fold in folds:
        fold_seed = seed + (99 if fold == "all" else int(fold))
        weights = _tiny_weights(plans, n_outputs, fold_seed, bias)
        if half:
            weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
        if compiled_prefix:
            weights = {f"_orig_mod.{k}": v for k, v in weights.items()}
        checkpoint = {
            "network_weights": weights,
            "init_args": {"configuration": "3d_fullres", "fold": fold},
            "trainer_name": "nnUNetTrainer",
            "inference_allowed_mirroring_axes": (0, 1, 2),
        }
        fold_dir = trainer_dir / f"fold_{fold}"
        fold_dir.mkdir(exist_ok=True)
        torch.save(checkpoint, fold_dir / checkpoint_name)
    if manifest:
        write_manifest(root, name=f"tiny-{layout}-seed{seed}", version="test")
    return root


def textured_image(shape: Sequence[int], *, seed: int = 0) -> np.ndarray:
    """A smooth random float32 image (blobs), so random networks give structured masks."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    noise = rng.normal(size=tuple(int(s) for s in shape))
    smooth = ndimage.gaussian_filter(noise, sigma=2.0)
    return (100.0 + 400.0 * smooth / (smooth.std() + 1e-9)).astype(np.float32)
