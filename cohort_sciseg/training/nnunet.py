"""nnU-Net v2's own pipeline, from Python: planning, preprocessing, training, export.

Fingerprint extraction, planning (3d_fullres only, 1 mm isotropic target spacing),
the plans reduced to a small ``PlainConvUNet`` (:func:`reduce_plans`), preprocessing,
then training with an ``nnUNetTrainer`` subclass instantiated directly (trainer
lookup by name needs torchvision, which cannot be imported with CPU-only torch) on a
short schedule (:func:`train_once`). :func:`export_model` writes the result
inference-only in SCIseg's release layout (fp16 weights, ``trainer_name`` the base
``nnUNetTrainer`` so nnU-Net's own tools load it).

nnU-Net reads ``nnUNet_raw``/``nnUNet_preprocessed``/``nnUNet_results`` when
``nnunetv2.paths`` is first imported, so every nnU-Net import here is deferred until
those variables point into the work folder (:func:`set_nnunet_environment`).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cohort_sciseg.errors import SegmentationError, format_error
from cohort_sciseg.io import write_json
from cohort_sciseg.segment.loading import load_network_weights
from cohort_sciseg.segment.model import plain_unet_stages
from cohort_sciseg.training.settings import (
    CONFIGURATION,
    DATASET_ID,
    DATASET_NAME,
    TRAINER_FOLDER,
    TrainSettings,
)

__all__ = [
    "export_checkpoint",
    "export_model",
    "plan_and_preprocess",
    "quiet_stdout",
    "reduce_plans",
    "set_nnunet_environment",
    "train_once",
]


def set_nnunet_environment(work: Path) -> None:
    """Point nnU-Net at ``work`` and keep it light; must run before nnunetv2 is imported."""
    imported = [m for m in ("nnunetv2.paths",) if m in sys.modules]
    env = {
        "nnUNet_raw": str(work / "nnUNet_raw"),
        "nnUNet_preprocessed": str(work / "nnUNet_preprocessed"),
        "nnUNet_results": str(work / "nnUNet_results"),
    }
    if imported and any(os.environ.get(k) != v for k, v in env.items()):
        msg = format_error(
            "nnunetv2 was imported before its folders were set",
            expected="nnUNet_raw/nnUNet_preprocessed/nnUNet_results set before `import nnunetv2`",
            fix="run training in a fresh process (`python -m cohort_sciseg.training`)",
        )
        raise SegmentationError(msg)
    os.environ.update(env)
    os.environ["nnUNet_compile"] = "false"  # noqa: SIM112 (nnU-Net's spelling)
    os.environ.setdefault("nnUNet_def_n_proc", str(os.cpu_count() or 1))


@contextlib.contextmanager
def quiet_stdout(log: Path) -> Iterator[None]:
    """Send nnU-Net's prints to ``log`` (nnU-Net prints everywhere)."""
    with open(log, "a", encoding="utf-8") as fh, contextlib.redirect_stdout(fh):
        yield


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (nnU-Net's data loader draws from the global state)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def reduce_plans(
    plans: Mapping[str, Any],
    *,
    patch_size: Sequence[int] = (64, 64, 48),
    features: Sequence[int] = (8, 16, 32, 64),
    batch_size: int = 2,
    spacing_mm: float = 1.0,
) -> dict[str, Any]:
    """nnU-Net plans reduced to the small demo network (3d_fullres only).

    Parameters
    ----------
    plans
        Plans written by nnU-Net's ``ExperimentPlanner`` (not modified).
    patch_size
        Patch in voxels, nnU-Net axis order; each side divisible by ``2 ** (stages - 1)``.
    features
        Feature maps per stage; the number of stages is ``len(features)``.
    batch_size
        Patches per iteration.
    spacing_mm
        Isotropic target spacing.

    Returns
    -------
    dict
        New plans: only ``3d_fullres``, no axis transposition, ``SimpleITKIO``
        (what SCT's path assumes), ``PlainConvUNet`` with 3 x 3 x 3 kernels,
        stride 2 between stages, two convolutions per stage.
    """
    n = len(features)
    step = 2 ** (n - 1)
    if n < 2 or any(int(p) % step for p in patch_size) or len(patch_size) != 3:
        msg = format_error(
            f"patch_size={tuple(patch_size)!r} does not fit {n} stages",
            expected=f"three sides divisible by {step} (2 ** (stages - 1)) and at least 2 stages",
            fix="e.g. patch_size=(64, 64, 48) with features=(8, 16, 32, 64)",
        )
        raise SegmentationError(msg)
    out = json.loads(json.dumps(plans))
    cfg = out["configurations"][CONFIGURATION]
    out["configurations"] = {CONFIGURATION: cfg}
    out["transpose_forward"] = [0, 1, 2]
    out["transpose_backward"] = [0, 1, 2]
    out["image_reader_writer"] = "SimpleITKIO"
    cfg["patch_size"] = [int(p) for p in patch_size]
    cfg["batch_size"] = int(batch_size)
    cfg["spacing"] = [float(spacing_mm)] * 3
    cfg["batch_dice"] = False
    arch = cfg["architecture"]
    arch["network_class_name"] = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
    kw = arch["arch_kwargs"]
    kw.update(plain_unet_stages(features))
    kw.pop("n_blocks_per_stage", None)
    return out


def plan_and_preprocess(settings: TrainSettings, work: Path, n_cases: int) -> dict[str, Any]:
    """nnU-Net fingerprint, plans (then reduced, :func:`reduce_plans`) and preprocessing."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset,
        plan_experiment_dataset,
        preprocess_dataset,
    )

    nproc = max(1, min(2, os.cpu_count() or 1))
    extract_fingerprint_dataset(DATASET_ID, num_processes=nproc, show_progress_bar=False)
    spacing = (settings.spacing_mm,) * 3
    plan_experiment_dataset(DATASET_ID, overwrite_target_spacing=spacing)
    plans_path = work / "nnUNet_preprocessed" / DATASET_NAME / "nnUNetPlans.json"
    plans = reduce_plans(
        json.loads(plans_path.read_text()),
        patch_size=settings.patch_size,
        features=settings.features,
        batch_size=settings.batch_size,
        spacing_mm=settings.spacing_mm,
    )
    write_json(plans_path, plans)
    preprocess_dataset(
        DATASET_ID,
        configurations=(CONFIGURATION,),
        num_processes=(nproc,),
        show_progress_bar=False,
    )
    # One fold: train on every case; a few of them double as nnU-Net's (logging-only) validation.
    keys = sorted(
        p.name[: -len(".nii.gz")]
        for p in (work / "nnUNet_raw" / DATASET_NAME / "labelsTr").glob("*.nii.gz")
    )
    val = keys[:: max(1, len(keys) // 4)][:4]
    write_json(
        work / "nnUNet_preprocessed" / DATASET_NAME / "splits_final.json",
        [{"train": keys, "val": val}],
    )
    return plans


def train_once(
    settings: TrainSettings, work: Path, *, seed: int, epochs: int, resume: Path | None = None,
    init_weights: Path | None = None,
) -> Path:
    """Train one model from the preprocessed data; returns its ``checkpoint_final.pth``.

    ``resume``: a training checkpoint to continue from (copied first, since the
    results folder is replaced). ``init_weights``: a checkpoint whose network
    weights start a new schedule (fine-tuning).
    """
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    class DemoTrainer(nnUNetTrainer):
        """nnUNetTrainer on CPU with a short schedule and no architecture plot."""

        def plot_network_architecture(self) -> None:  # needs hiddenlayer/graphviz
            return None

    # augmentation in the main process: deterministic, and no worker processes on 2 cores
    # (set here, not earlier: nnU-Net's planner sets torch threads to this number)
    os.environ["nnUNet_n_proc_DA"] = "0"  # noqa: SIM112 (nnU-Net's spelling)
    _seed_everything(seed)
    torch.set_num_threads(settings.threads or os.cpu_count() or 1)
    pre = work / "nnUNet_preprocessed" / DATASET_NAME
    results = work / "nnUNet_results" / DATASET_NAME
    if resume is not None:
        kept = work / "resume_checkpoint.pth"
        if resume.absolute() != kept.absolute():
            shutil.copyfile(resume, kept)
        resume = kept
    if results.exists():
        shutil.rmtree(results)
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False
    ds_json = json.loads((pre / "dataset.json").read_text())
    trainer = DemoTrainer(
        plans=plans, configuration=CONFIGURATION, fold=0, dataset_json=ds_json,
        device=torch.device("cpu"),
    )
    trainer.num_epochs = int(epochs)
    trainer.num_iterations_per_epoch = int(settings.iterations_per_epoch)
    trainer.num_val_iterations_per_epoch = int(settings.val_iterations_per_epoch)
    trainer.initial_lr = float(settings.initial_lr)
    # by default more patches centred on foreground than nnU-Net's 0.33: the lesion class is tiny
    trainer.oversample_foreground_percent = float(settings.oversample_foreground)
    trainer.save_every = 10**9
    if resume is not None:
        trainer.load_checkpoint(str(resume))
    elif init_weights is not None:
        trainer.initialize()
        trainer.network.load_state_dict(load_network_weights(init_weights))
    trainer.run_training()
    return Path(trainer.output_folder) / "checkpoint_final.pth"


def export_model(checkpoint_path: Path, work: Path, model_dir: Path) -> Path:
    """Write the inference-only model folder (SCIseg's layout) into ``model_dir``."""
    import torch

    pre = work / "nnUNet_preprocessed" / DATASET_NAME
    target = model_dir / TRAINER_FOLDER
    if target.exists():
        shutil.rmtree(target)
    (target / "fold_0").mkdir(parents=True)
    ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    torch.save(export_checkpoint(ckpt), target / "fold_0" / "checkpoint_final.pth")
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    plans.pop("continue_training", None)
    write_json(target / "plans.json", plans)
    write_json(target / "dataset.json", json.loads((pre / "dataset.json").read_text()))
    return target



def export_checkpoint(checkpoint: Mapping[str, Any], *, half: bool = True) -> dict[str, Any]:
    """Inference-only copy of an nnU-Net training checkpoint.

    Parameters
    ----------
    checkpoint
        As saved by ``nnUNetTrainer.save_checkpoint``.
    half
        Store floating-point weights as float16 (nnU-Net casts them back on load).

    Returns
    -------
    dict
        ``network_weights``, ``init_args`` (``configuration`` and ``fold`` only),
        ``trainer_name`` = ``"nnUNetTrainer"`` (the base trainer, so nnU-Net's own
        tools resolve it without importing torchvision), and
        ``inference_allowed_mirroring_axes``. No optimizer state, no logs.
    """
    weights = {}
    # nnU-Net's state dict lists some tensors under several names (``conv.weight`` and
    # ``all_modules.0.weight``; the decoder's view of the encoder): convert each tensor
    # once so the copies stay shared and are stored once.
    converted: dict[tuple[Any, ...], Any] = {}
    for key, value in checkpoint["network_weights"].items():
        is_float = getattr(value, "is_floating_point", lambda: False)()
        if not (half and is_float):
            weights[key] = value
            continue
        ident = (value.data_ptr(), tuple(value.shape), tuple(value.stride()), value.dtype)
        if ident not in converted:
            converted[ident] = value.half()
        weights[key] = converted[ident]
    return {
        "network_weights": weights,
        "init_args": {"configuration": CONFIGURATION, "fold": 0},
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": checkpoint.get("inference_allowed_mirroring_axes"),
    }

