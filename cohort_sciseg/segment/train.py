"""Train the bundled demo model: a small SCIseg-format nnU-Net v2 model, from scratch.

``python -m cohort_sciseg.segment.train --out DIR [--seed 0] [--epochs N] ...``

What it does, in order:

1. **Data.** Real T2w scans of ``../shared/data/spine-t2w`` with their cord masks
   (the held-out subjects excluded), each written once as is and several times with
   synthetic lesions inserted into the real cord
   (:func:`cohort_sciseg.synth.insert_lesions_into_arrays`, a different draw per
   copy), plus synthetic phantoms of the three site styles
   (:func:`cohort_sciseg.synth.synthesize_cohort`). Without the real data (or with
   ``--quick``) only phantoms are used. Every image is reoriented to RPI (what SCT
   feeds SCIseg); real scans keep their whole field of view (optionally cropped to the
   cord's bounding box plus a margin: cropping taught the first demo model to call
   everything near the cord "cord", 0.43 cord Dice on a held-out real scan vs 0.65 uncropped).
2. **nnU-Net raw dataset** with SCIseg's label layout: label map 0 background,
   1 cord, 2 lesion; ``dataset.json`` regions ``sc = [1, 2]``, ``lesion = 2``,
   ``regions_class_order [1, 2]``, ``image_orientation "RPI"``.
3. **nnU-Net's own pipeline** from Python: fingerprint extraction, planning
   (3d_fullres only, 1 mm isotropic target spacing), the plans reduced to a small
   ``PlainConvUNet`` (features 8-16-32-64, 4 stages, patch 64 x 64 x 48 voxels,
   batch size 2), preprocessing, then training with an ``nnUNetTrainer`` subclass
   instantiated directly (trainer lookup by name needs torchvision, which cannot be
   imported with CPU-only torch) on a short schedule.
4. **Evaluation** of the exported model on data it never saw, through SCT's path
   (reorient to RPI, transpose ``[2, 1, 0]``, reversed spacing,
   ``predict_single_npy_array``): cord Dice on held-out real scans, lesion Dice on
   synthetic lesions inserted into held-out real cords, cord and lesion Dice of
   ``sub-sctfakelesion`` against its SCIsegV2 masks, and both on held-out phantoms.
5. **Lesion gate.** Short schedules sometimes never learn the lesion channel. A
   model whose lesion Dice on held-out synthetic lesions is below
   ``--min-lesion-dice``, or that predicts no lesion where there is one, is not
   exported: training is retried with the next seed and 50 % more epochs, up to
   ``--max-attempts``, then the script fails.
6. **Export** inference-only in SCIseg's release layout
   ``DIR/nnUNetTrainer__nnUNetPlans__3d_fullres/{dataset.json, plans.json,
   fold_0/checkpoint_final.pth}`` (fp16 weights, ``trainer_name`` the base
   ``nnUNetTrainer`` so nnU-Net's own tools load it), ``DIR/model.json``
   (:func:`cohort_sciseg.segment.manifest.write_manifest`) and ``DIR/MODEL_CARD.md``.

nnU-Net reads ``nnUNet_raw``/``nnUNet_preprocessed``/``nnUNet_results`` when
``nnunetv2.paths`` is first imported, so every nnU-Net import here is deferred until
those variables point into the work folder (:func:`_set_nnunet_environment`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cohort_sciseg._version import __version__
from cohort_sciseg.errors import SegmentationError, format_error
from cohort_sciseg.io import (
    binarize,
    load_nifti,
    reorient,
    save_nifti,
    voxel_sizes,
    write_json,
)
from cohort_sciseg.segment.loading import load_network_weights
from cohort_sciseg.segment.manifest import MANIFEST_NAME, check_manifest, write_manifest
from cohort_sciseg.segment.model import plain_unet_stages
from cohort_sciseg.synth import find_masked_images, insert_lesions_into_arrays, synthesize_cohort

__all__ = [
    "CONFIGURATION",
    "DATASET_JSON",
    "DEFAULT_HOLDOUT",
    "TRAINER_FOLDER",
    "Case",
    "TrainResult",
    "TrainSettings",
    "dataset_json",
    "dice",
    "export_checkpoint",
    "label_map",
    "lesion_gate",
    "main",
    "reduce_plans",
    "train_demo_model",
]

# named explicitly: under `python -m` this module is __main__
logger = logging.getLogger("cohort_sciseg.segment.train")

CONFIGURATION = "3d_fullres"
#: Folder of the exported model, as in SCIseg's release.
TRAINER_FOLDER = "nnUNetTrainer__nnUNetPlans__3d_fullres"
DATASET_ID = 901
DATASET_NAME = f"Dataset{DATASET_ID:03d}_CohortSciSegDemo"
#: Held out from training by default: a manual-mask real scan and the SCIsegV2 pair.
DEFAULT_HOLDOUT = ("sub-errsm21", "sub-sctfakelesion")
MODEL_NAME = "cohort-sciseg-demo"

#: ``dataset.json`` of SCIseg (region-based: cord = labels 1 and 2, lesion = label 2).
DATASET_JSON: dict[str, Any] = {
    "channel_names": {"0": "T2w"},
    "labels": {"background": 0, "sc": [1, 2], "lesion": 2},
    "regions_class_order": [1, 2],
    "file_ending": ".nii.gz",
    "image_orientation": "RPI",
}

#: Cord-mask suffixes of the real dataset, in order of preference (manual first).
_CORD_SUFFIXES = ("seg-manual", "seg-deepsegsc", "seg-scisegv2")
#: Seed of the lesions inserted into held-out real cords: fixed, so metrics compare across runs.
_EVAL_SEED = 20240729
_EVAL_LESION_DRAWS = 3


@dataclass(frozen=True, slots=True)
class TrainSettings:
    """Everything that determines a training run (written into the manifest).

    Attributes
    ----------
    seed
        Seed of the first attempt; later attempts use ``seed + attempt``.
    epochs, iterations_per_epoch, val_iterations_per_epoch
        nnU-Net schedule of the first attempt (later attempts get 50 % more epochs).
    data
        Real BIDS dataset (``spine-t2w``), or None for phantoms only.
    holdout
        Subjects of ``data`` never used in training (evaluated on).
    lesion_copies
        Copies of each real training scan with synthetic lesions (plus the scan as is).
    synth_subjects_per_site
        Subjects per site of the training phantoms (three site styles).
    patch_size
        Network patch, voxels, nnU-Net axis order (I-S, P-A, R-L after RPI + transpose).
    features
        Feature maps per stage of the ``PlainConvUNet``.
    batch_size
        Patches per iteration.
    spacing_mm
        Target spacing of nnU-Net's preprocessing.
    crop_margin_mm
        Margin around the cord's bounding box when cropping real scans (``None``:
        no cropping, the default).
    min_lesion_dice
        Lesion gate (0 disables it, e.g. for ``--quick``).
    max_attempts
        Trainings tried before giving up on the lesion gate.
    quick
        The CI smoke schedule (phantoms only, few epochs, no gate).
    from_checkpoint
        Continue this nnU-Net training checkpoint (optimizer state, epoch, logs; e.g.
        ``checkpoint_best.pth`` of an interrupted run with the same settings and work
        folder, whose preprocessed data and plans are reused) up to ``epochs`` in the
        first attempt, instead of starting from scratch. Not bit-identical to an
        uninterrupted run (the data loader's random state restarts from ``seed``).
    init_weights
        Fine-tune: start from the network weights of this checkpoint (a training
        checkpoint or an exported model's ``checkpoint_final.pth``; same plans, hence
        the same work folder) with a fresh optimizer and a new schedule of ``epochs``
        epochs from ``initial_lr``. Exclusive with ``from_checkpoint``.
    initial_lr
        Initial learning rate of nnU-Net's poly schedule (nnU-Net's default 0.01).
    oversample_foreground
        Share of patches centred on a foreground voxel (nnU-Net's default 0.33).
    threads
        torch threads for training and evaluation (0: all cores). One thread avoids
        OpenMP stalls when the cores are shared with other work.
    """

    seed: int = 0
    epochs: int = 50
    iterations_per_epoch: int = 25
    val_iterations_per_epoch: int = 4
    data: Path | None = None
    holdout: tuple[str, ...] = DEFAULT_HOLDOUT
    lesion_copies: int = 4
    synth_subjects_per_site: int = 4
    patch_size: tuple[int, int, int] = (64, 64, 48)
    features: tuple[int, ...] = (8, 16, 32, 64)
    batch_size: int = 2
    spacing_mm: float = 1.0
    crop_margin_mm: float | None = None
    min_lesion_dice: float = 0.3
    max_attempts: int = 2
    quick: bool = False
    from_checkpoint: Path | None = None
    init_weights: Path | None = None
    initial_lr: float = 0.01
    oversample_foreground: float = 0.66
    threads: int = 0

    def as_json(self) -> dict[str, Any]:
        """JSON-friendly dict (paths as strings, tuples as lists)."""
        out = asdict(self)
        out["data"] = None if self.data is None else self.data.as_posix()
        for key in ("from_checkpoint", "init_weights"):
            value = getattr(self, key)
            out[key] = None if value is None else value.as_posix()
        return json.loads(json.dumps(out))


@dataclass(frozen=True, slots=True)
class Case:
    """One image with its label map, in RPI.

    Attributes
    ----------
    name
        Case identifier (nnU-Net case name; letters, digits, ``_``).
    image
        Intensities, float32, RPI.
    labels
        0 background, 1 cord, 2 lesion (``uint8``), same grid.
    affine
        Voxel-to-world affine of the RPI arrays (mm).
    kind
        ``"real"``, ``"real+lesions"`` (synthetic lesions in a real cord) or ``"synthetic"``.
    reference
        Where the labels come from (e.g. ``"seg-manual"``, ``"phantom"``).
    has_lesion_reference
        Whether the lesion channel of ``labels`` is a reference (False for a real
        scan without a lesion mask: its labels say nothing about lesions).
    """

    name: str
    image: npt.NDArray[np.float32]
    labels: npt.NDArray[np.uint8]
    affine: npt.NDArray[np.float64]
    kind: str
    reference: str
    has_lesion_reference: bool = True


@dataclass(frozen=True, slots=True)
class TrainResult:
    """Outcome of :func:`train_demo_model`.

    Attributes
    ----------
    model_dir
        The exported model folder.
    metrics
        Evaluation of the exported model (see :func:`summarize`).
    attempts
        One dict per training attempt (seed, epochs, gate outcome, seconds).
    wall_s
        Wall time of the whole run, seconds.
    """

    model_dir: Path
    metrics: dict[str, Any]
    attempts: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    wall_s: float = 0.0


# --------------------------------------------------------------------------- pure parts


def label_map(cord: npt.ArrayLike, lesion: npt.ArrayLike | None = None) -> npt.NDArray[np.uint8]:
    """SCIseg's label map: 0 background, 1 cord, 2 lesion.

    Parameters
    ----------
    cord, lesion
        Boolean (or 0/1) masks on the same grid; ``lesion`` may be None.

    Returns
    -------
    numpy.ndarray
        ``uint8``; lesion voxels are 2 even outside the cord mask (SCIseg's
        regions make lesion a part of the cord: ``sc = [1, 2]``).
    """
    cord_b = np.asarray(cord).astype(bool)
    out = cord_b.astype(np.uint8)
    if lesion is not None:
        les_b = np.asarray(lesion).astype(bool)
        if les_b.shape != cord_b.shape:
            msg = format_error(
                f"lesion mask shape {les_b.shape} differs from cord mask shape {cord_b.shape}",
                expected="both masks on the same voxel grid",
                fix="resample the masks onto the image grid first",
            )
            raise SegmentationError(msg)
        out[les_b] = 2
    return out


def dataset_json(n_training: int) -> dict[str, Any]:
    """The nnU-Net ``dataset.json`` of the training set (SCIseg's layout).

    Parameters
    ----------
    n_training
        Number of training cases (>= 1).
    """
    if not isinstance(n_training, int) or isinstance(n_training, bool) or n_training < 1:
        msg = format_error(
            f"n_training={n_training!r} is not valid",
            expected="a positive number of training cases",
            fix="build at least one training case",
        )
        raise SegmentationError(msg)
    body = json.loads(json.dumps(DATASET_JSON))
    body["numTraining"] = n_training
    return body


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


def dice(pred: npt.ArrayLike, ref: npt.ArrayLike) -> float:
    """Dice coefficient of two binary masks (1.0 when both are empty)."""
    a = np.asarray(pred).astype(bool)
    b = np.asarray(ref).astype(bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def lesion_gate(metrics: Mapping[str, Any], min_lesion_dice: float) -> tuple[bool, str]:
    """Did the lesion channel learn? (the check that keeps a dud model from shipping).

    Parameters
    ----------
    metrics
        From :func:`summarize`: ``gate_lesion_dice`` (mean lesion Dice on held-out
        synthetic lesions) and ``gate_empty_lesion_predictions`` (cases with a
        reference lesion but no predicted lesion voxel).
    min_lesion_dice
        Threshold; 0 disables the gate.

    Returns
    -------
    (passed, reason)
    """
    if min_lesion_dice <= 0:
        return True, "lesion gate disabled"
    value = metrics.get("gate_lesion_dice")
    empty = int(metrics.get("gate_empty_lesion_predictions", 0))
    if value is None or not np.isfinite(value):
        return False, "no held-out case with synthetic lesions to check the lesion channel on"
    if empty:
        return False, f"{empty} held-out case(s) with lesions got an empty lesion prediction"
    if value < min_lesion_dice:
        return False, f"lesion Dice {value:.3f} on held-out synthetic lesions < {min_lesion_dice}"
    return True, f"lesion Dice {value:.3f} >= {min_lesion_dice}"


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Summary metrics from per-case evaluation rows.

    Keys: ``cord_dice_real`` (mean over held-out real scans against manual or
    automatic cord masks, without inserted lesions; ``cord_dice_real_raw``: the
    same of the raw network output), ``lesion_dice_real_synthetic``
    and ``cord_dice_real_synthetic`` (held-out real cords with inserted lesions),
    ``cord_dice_synthetic``/``lesion_dice_synthetic`` (held-out phantoms),
    ``scisegv2_cord_dice``/``scisegv2_lesion_dice`` (cases whose reference is
    SCIsegV2's prediction), ``cord_dice_real_train`` (real *training* scans: the
    fit, never a held-out figure), the gate inputs, and ``cases`` (the rows).
    """

    def mean(kind: str, key: str, reference: str | None = None) -> float | None:
        vals = [
            float(r[key])
            for r in rows
            if r["kind"] == kind
            and r.get(key) is not None
            and (reference is None or r["reference"] == reference)
        ]
        return float(np.mean(vals)) if vals else None

    real_plain = [r for r in rows if r["kind"] == "real" and r["reference"] != "scisegv2"]
    raw_plain = [r["cord_dice_raw"] for r in real_plain if r.get("cord_dice_raw") is not None]
    out: dict[str, Any] = {
        "cord_dice_real": (
            float(np.mean([r["cord_dice"] for r in real_plain])) if real_plain else None
        ),
        "cord_dice_real_raw": float(np.mean(raw_plain)) if raw_plain else None,
        "cord_dice_real_synthetic": mean("real+lesions", "cord_dice"),
        "lesion_dice_real_synthetic": mean("real+lesions", "lesion_dice"),
        "cord_dice_synthetic": mean("synthetic", "cord_dice"),
        "lesion_dice_synthetic": mean("synthetic", "lesion_dice"),
        "scisegv2_cord_dice": mean("real", "cord_dice", "scisegv2"),
        "scisegv2_lesion_dice": mean("real", "lesion_dice", "scisegv2"),
        "cord_dice_real_train": mean("real-train", "cord_dice"),
    }
    gate_kind = "real+lesions" if out["lesion_dice_real_synthetic"] is not None else "synthetic"
    gate_rows = [r for r in rows if r["kind"] == gate_kind and r.get("lesion_dice") is not None]
    out["gate_cases"] = gate_kind
    out["gate_lesion_dice"] = (
        float(np.mean([r["lesion_dice"] for r in gate_rows])) if gate_rows else None
    )
    out["gate_empty_lesion_predictions"] = sum(
        1 for r in gate_rows if r["lesion_ref_voxels"] > 0 and r["lesion_pred_voxels"] == 0
    )
    out["cases"] = [dict(r) for r in rows]
    return out


def _case_name(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


# --------------------------------------------------------------------------- data


def _to_rpi(
    data: npt.NDArray[Any], affine: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]:
    arr, aff = reorient(np.asarray(data), np.asarray(affine, dtype=np.float64), "RPI")
    return np.ascontiguousarray(arr), np.asarray(aff, dtype=np.float64)


def _crop_to_cord(case: Case, margin_mm: float) -> Case:
    """Crop to the cord's bounding box plus ``margin_mm`` (affine shifted accordingly)."""
    idx = np.argwhere(case.labels > 0)
    if idx.size == 0:
        return case
    vox = voxel_sizes(case.affine)
    margin = np.ceil(margin_mm / np.asarray(vox)).astype(int)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, case.labels.shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    aff = case.affine.copy()
    aff[:3, 3] = case.affine[:3, :3] @ lo + case.affine[:3, 3]
    return replace(
        case,
        image=np.ascontiguousarray(case.image[sl]),
        labels=np.ascontiguousarray(case.labels[sl]),
        affine=aff,
    )


def find_real_scans(data_dir: Path) -> list[tuple[str, Path, Path, str, Path | None]]:
    """Real T2w scans with a cord mask: ``(subject, image, cord mask, suffix, lesion mask)``.

    Cord masks are looked up with the suffixes ``seg-manual``, ``seg-deepsegsc``,
    ``seg-scisegv2`` (first found wins); the lesion mask is
    ``<stem>_lesion-<same source>.nii.gz`` when present.
    """
    found: dict[Path, tuple[str, Path, Path, str, Path | None]] = {}
    for suffix in _CORD_SUFFIXES:
        for img, mask in find_masked_images(data_dir, suffix):
            if img in found:
                continue
            source = suffix.split("-", 1)[1]
            lesion = mask.with_name(mask.name.replace(f"_{suffix}", f"_lesion-{source}"))
            sub = img.name.split("_", 1)[0]
            found[img] = (sub, img, mask, source, lesion if lesion.is_file() else None)
    return [found[k] for k in sorted(found)]


def _load_real(img: Path, mask: Path, lesion: Path | None, sub: str, source: str) -> Case:
    vol = load_nifti(img, scan_id=sub)
    cord = binarize(load_nifti(mask, scan_id=sub).data)
    les = binarize(load_nifti(lesion, scan_id=sub).data) if lesion is not None else None
    image, aff = _to_rpi(vol.data.astype(np.float32), vol.affine)
    labels, _ = _to_rpi(label_map(cord, les), vol.affine)
    return Case(
        name=_case_name(sub),
        image=image,
        labels=labels,
        affine=aff,
        kind="real",
        reference=source,
        has_lesion_reference=les is not None,
    )


def _with_lesions(case: Case, rng: np.random.Generator, name: str) -> Case:
    cord = case.labels > 0
    new, ids, _ = insert_lesions_into_arrays(
        case.image, cord, case.affine, n_lesions=int(rng.integers(1, 4)), rng=rng
    )
    return replace(
        case,
        name=name,
        image=new.astype(np.float32),
        labels=label_map(cord, ids > 0),
        kind="real+lesions",
        has_lesion_reference=True,
    )


def real_training_cases(settings: TrainSettings) -> list[Case]:
    """Real scans not held out: each as is plus ``lesion_copies`` copies with synthetic lesions.

    Real scans without a lesion mask go in as is too (cord only, no lesion: the
    network must also learn that most cords have none); lesion draws are seeded
    with ``(seed, crc32(subject), copy)``.
    """
    if settings.data is None:
        return []
    cases = []
    for sub, img, mask, source, lesion in find_real_scans(settings.data):
        if sub in settings.holdout:
            continue
        base = _load_real(img, mask, lesion, sub, source)
        if settings.crop_margin_mm is not None:
            base = _crop_to_cord(base, settings.crop_margin_mm)
        cases.append(base)
        if lesion is not None:  # real lesions already: no synthetic ones on top
            continue
        for k in range(settings.lesion_copies):
            rng = np.random.default_rng([settings.seed, zlib.crc32(sub.encode()), k])
            cases.append(_with_lesions(base, rng, f"{base.name}_les{k}"))
    return cases


def synthetic_cases(
    work: Path, *, seed: int, subjects_per_site: int, prefix: str
) -> list[Case]:
    """Phantoms of the three site styles (:func:`synthesize_cohort`), in RPI."""
    if work.exists():
        shutil.rmtree(work)
    cohort = synthesize_cohort(work, sites=3, subjects_per_site=subjects_per_site, seed=seed)
    cases = []
    for root in cohort.dataset_roots:
        for img, mask in find_masked_images(root, "seg-manual"):
            lesion_path = mask.with_name(mask.name.replace("_seg-manual", "_lesion-manual"))
            vol = load_nifti(img)
            cord = binarize(load_nifti(mask).data)
            les = binarize(load_nifti(lesion_path).data) if lesion_path.is_file() else None
            image, aff = _to_rpi(vol.data.astype(np.float32), vol.affine)
            labels, _ = _to_rpi(label_map(cord, les), vol.affine)
            stem = img.name.split(".nii")[0].replace("_T2w", "")
            cases.append(
                Case(
                    name=_case_name(f"{prefix}_{root.name}_{stem}"),
                    image=image,
                    labels=labels,
                    affine=aff,
                    kind="synthetic",
                    reference="phantom",
                )
            )
    return cases


def evaluation_cases(settings: TrainSettings, work: Path) -> list[Case]:
    """Evaluation cases: held-out real scans (as is and with inserted lesions), new phantoms, and
    the real training scans as is (kind ``real-train``: the fit, summarised apart)."""
    cases: list[Case] = []
    fit: list[Case] = []  # the real training scans as is: how well the network fits what it saw
    if settings.data is not None:
        for sub, img, mask, source, lesion in find_real_scans(settings.data):
            if sub not in settings.holdout and lesion is not None:
                continue
            base = _load_real(img, mask, lesion, sub, source)
            if sub not in settings.holdout:
                fit.append(replace(base, name=f"{base.name}_train", kind="real-train"))
                continue
            cases.append(base)
            if lesion is not None:
                continue
            for k in range(_EVAL_LESION_DRAWS):
                rng = np.random.default_rng([_EVAL_SEED, zlib.crc32(sub.encode()), k])
                cases.append(_with_lesions(base, rng, f"{base.name}_evalles{k}"))
    cases += fit
    cases += synthetic_cases(
        work / "eval_phantoms", seed=settings.seed + 10_000, subjects_per_site=1, prefix="eval"
    )
    return cases


def write_raw_dataset(raw_dir: Path, cases: Sequence[Case]) -> Path:
    """Write ``cases`` as an nnU-Net raw dataset (``imagesTr``, ``labelsTr``, ``dataset.json``)."""
    if raw_dir.exists():
        shutil.rmtree(raw_dir)
    for case in cases:
        save_nifti(raw_dir / "imagesTr" / f"{case.name}_0000.nii.gz", case.image, case.affine)
        save_nifti(raw_dir / "labelsTr" / f"{case.name}.nii.gz", case.labels, case.affine)
    write_json(raw_dir / "dataset.json", dataset_json(len(cases)))
    return raw_dir


# --------------------------------------------------------------------------- nnU-Net


def _set_nnunet_environment(work: Path) -> None:
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
            fix="run training in a fresh process (`python -m cohort_sciseg.segment.train`)",
        )
        raise SegmentationError(msg)
    os.environ.update(env)
    os.environ["nnUNet_compile"] = "false"  # noqa: SIM112 (nnU-Net's spelling)
    os.environ.setdefault("nnUNet_def_n_proc", str(os.cpu_count() or 1))


@contextlib.contextmanager
def _quiet(log: Path) -> Iterator[None]:
    """Send nnU-Net's prints to ``log`` (nnU-Net prints everywhere)."""
    with open(log, "a", encoding="utf-8") as fh, contextlib.redirect_stdout(fh):
        yield


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (nnU-Net's data loader draws from the global state)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


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


def load_predictor(trainer_dir: Path) -> Any:
    """``nnUNetPredictor`` with SCT's settings (step 0.5, Gaussian, no mirroring, CPU)."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=False,
        perform_everything_on_device=False,
        device=torch.device("cpu"),
        allow_tqdm=False,
    )
    predictor.initialize_from_trained_model_folder(str(trainer_dir), use_folds=(0,))
    return predictor


def predict_rpi(predictor: Any, image: npt.NDArray[Any], affine: npt.NDArray[np.float64]) -> Any:
    """SCT's path on an RPI image: transpose ``[2, 1, 0]``, reversed spacing, predict, back."""
    spacing = [float(s) for s in voxel_sizes(affine)][::-1]
    arr = np.ascontiguousarray(np.asarray(image, np.float32).transpose(2, 1, 0))[None]
    seg = predictor.predict_single_npy_array(arr, {"spacing": spacing})
    return np.asarray(seg).transpose(2, 1, 0)


def evaluate(trainer_dir: Path, cases: Sequence[Case], log: Path) -> dict[str, Any]:
    """Cord and lesion Dice of the exported model on ``cases`` (see :func:`summarize`).

    Each row has the cord Dice of the raw network output (``cord_dice_raw``) and of
    its largest component (``cord_dice_largest``); ``cord_dice`` is the one of the
    post-processing :func:`choose_postprocessing` picks on the training scans.
    """
    from cohort_sciseg.segment.postprocess import keep_largest_component

    rows = []
    with _quiet(log):
        predictor = load_predictor(trainer_dir)
        for case in cases:
            seg = predict_rpi(predictor, case.image, case.affine)
            raw = dice(seg > 0, case.labels > 0)
            row: dict[str, Any] = {
                "case": case.name,
                "kind": case.kind,
                "reference": case.reference,
                "cord_dice": raw,
                "cord_dice_raw": raw,
                "cord_dice_largest": dice(keep_largest_component(seg > 0), case.labels > 0),
                "lesion_dice": None,
                "lesion_ref_voxels": int((case.labels == 2).sum()),
                "lesion_pred_voxels": int((seg == 2).sum()),
            }
            if case.has_lesion_reference:
                row["lesion_dice"] = dice(seg == 2, case.labels == 2)
            rows.append(row)
    choice = choose_postprocessing(rows)
    if choice.get("keep_largest_cord"):
        rows = [{**r, "cord_dice": r["cord_dice_largest"]} for r in rows]
    out = summarize(rows)
    out["postprocessing"] = choice
    return out


def choose_postprocessing(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Post-processing to recommend in the manifest, chosen on the real *training* scans only.

    As nnU-Net's own ``determine_postprocessing`` does on its training folds: keep the
    largest cord component when that raises the mean cord Dice of the training scans
    (``real-train`` rows); never chosen on held-out data. Lesions are never removed by
    it. Returns ``{}`` (no post-processing) without training-scan rows.
    """
    fit = [r for r in rows if r["kind"] == "real-train"]
    if not fit:
        return {}
    raw = float(np.mean([r["cord_dice_raw"] for r in fit]))
    largest = float(np.mean([r["cord_dice_largest"] for r in fit]))
    return {"keep_largest_cord": True} if largest > raw else {}


# --------------------------------------------------------------------------- driver


def _foreground_patches(settings: TrainSettings) -> int:
    """Patches per batch nnU-Net centres on foreground (its data loader rounds the share per batch)."""
    return settings.batch_size - round(settings.batch_size * (1 - settings.oversample_foreground))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def write_model_card(
    model_dir: Path,
    settings: TrainSettings,
    metrics: Mapping[str, Any],
    attempts: Sequence[Mapping[str, Any]],
    command: str,
    data_summary: Mapping[str, Any],
    size_bytes: int,
) -> Path:
    """Write ``MODEL_CARD.md`` (what the model is, how it was made, how well it does)."""
    final = attempts[-1]
    crop_text = (
        "keep their whole field of view" if settings.crop_margin_mm is None
        else f"cropped to the cord plus {settings.crop_margin_mm:g} mm"
    )
    rows = "\n".join(
        f"| {r['case']} | {r['kind']} | {r['reference']} | {_fmt(r['cord_dice'])} | "
        f"{_fmt(r.get('cord_dice_raw'))} | "
        f"{_fmt(r['lesion_dice'])} | {r['lesion_ref_voxels']} | {r['lesion_pred_voxels']} |"
        for r in metrics["cases"]
    )
    post = metrics.get("postprocessing") or {}
    post_text = (
        "`keep_largest_cord` (the largest 26-connected cord component; lesions are never "
        "removed), recommended in `model.json` because it raised the mean cord Dice of the "
        "real *training* scans (chosen on them only, as nnU-Net's `determine_postprocessing` "
        "does on its training folds). The engine applies it when the user passes no "
        "post-processing option of their own; `--no-postprocessing` gives the raw network "
        "output (SCT's default path); both figures are below."
        if post.get("keep_largest_cord")
        else "none: the raw network output, as SCT's default path."
    )
    tries = "\n".join(
        f"- attempt {i + 1}: seed {a['seed']}, {a['epochs']} epochs, {a['train_s']:.0f} s training"
        + (f" (continued from `{a['resumed_from']}`)" if a.get("resumed_from") else "")
        + (f" (fine-tuned from the weights of `{a['fine_tuned_from']}`)"
           if a.get("fine_tuned_from") else "")
        + f", gate: {a['gate']}"
        for i, a in enumerate(attempts)
    )
    text = f"""# {MODEL_NAME} — a small demo model in SCIseg's format

**This is not SCIseg.** It is a tiny nnU-Net v2 network that cohort-sciseg trains itself
(`cohort_sciseg/segment/train.py`) so that the tool works offline out of the box and its
tests have a real model to run. It was trained on a handful of real scans without
lesions, synthetic lesions and synthetic phantoms. **Do not use it for clinical or
research conclusions**; use SCIseg's released weights (ivadomed/model_seg_sci) for that.

## Format

Same layout and labels as SCIseg's release, so the same code loads both:
`{TRAINER_FOLDER}/{{dataset.json, plans.json, fold_0/checkpoint_final.pth}}`; labels
`{{"background": 0, "sc": [1, 2], "lesion": 2}}`, `regions_class_order [1, 2]`,
`image_orientation "RPI"`. The checkpoint is inference-only (fp16 weights,
`trainer_name` `nnUNetTrainer`); `model.json` lists the sha256 of every file.
Size: {size_bytes / 1e6:.2f} MB.

## Architecture

nnU-Net `3d_fullres`, `PlainConvUNet`, {len(settings.features)} stages with
{"-".join(str(f) for f in settings.features)} feature maps, 3 x 3 x 3 kernels, two
convolutions per stage, instance norm, leaky ReLU, deep supervision during training;
region-based sigmoid outputs (cord, lesion). Patch {" x ".join(str(p) for p in settings.patch_size)}
voxels (I-S x P-A x R-L) at {settings.spacing_mm} mm isotropic; z-score intensity normalisation.

## Training data

{data_summary["description"]}

- training cases: {data_summary["n_training"]} ({data_summary["composition"]})
- held out (never trained on): {", ".join(settings.holdout) if settings.data is not None else "n/a (no real data)"}
- all images reoriented to RPI (as SCT feeds SCIseg); real scans {crop_text}.

## Schedule

nnU-Net's own fingerprint/planning/preprocessing, plans reduced as above; nnUNetTrainer
(SGD, poly learning rate from {settings.initial_lr:g}, Dice + BCE region loss) on CPU, batch size
{settings.batch_size}, {final["epochs"]} epochs x {settings.iterations_per_epoch} iterations,
foreground oversampling {settings.oversample_foreground:g} (nnU-Net rounds it per batch: {_foreground_patches(settings)} of
{settings.batch_size} patches centred on foreground), seed {final["seed"]}.

{tries}

Lesion gate: a model whose lesion Dice on held-out synthetic lesions is below
{settings.min_lesion_dice} (or that misses a lesion case entirely) is not exported.

## Post-processing

{post_text}

## Measured accuracy (SCT's inference path, no TTA; held-out data except the last row)

| measure | value |
|---|---|
| cord Dice, held-out real scans (manual masks) | {_fmt(metrics["cord_dice_real"])} |
| cord Dice, held-out real scans, raw network output (`--no-postprocessing`) | {_fmt(metrics.get("cord_dice_real_raw"))} |
| cord Dice, held-out real scans with synthetic lesions | {_fmt(metrics["cord_dice_real_synthetic"])} |
| lesion Dice, synthetic lesions in held-out real cords | {_fmt(metrics["lesion_dice_real_synthetic"])} |
| sub-sctfakelesion cord Dice vs SCIsegV2 | {_fmt(metrics["scisegv2_cord_dice"])} |
| sub-sctfakelesion lesion Dice vs SCIsegV2 | {_fmt(metrics["scisegv2_lesion_dice"])} |
| cord Dice, held-out phantoms | {_fmt(metrics["cord_dice_synthetic"])} |
| lesion Dice, held-out phantoms | {_fmt(metrics["lesion_dice_synthetic"])} |
| cord Dice, real *training* scans (fit, not held out) | {_fmt(metrics.get("cord_dice_real_train"))} |

Per case:

| case | kind | reference | cord Dice | cord Dice (raw) | lesion Dice | lesion voxels (ref) | lesion voxels (pred) |
|---|---|---|---|---|---|---|---|
{rows}

These are a few scans: the numbers say the pipeline works, not how SCIseg or this
model would do on a cohort.

## How it was made

```
{command}
```

cohort-sciseg {__version__}; wall time {data_summary["wall_s"]:.0f} s on {os.cpu_count()} CPU cores.
"""
    path = model_dir / "MODEL_CARD.md"
    path.write_text(text, encoding="utf-8")
    return path


def train_demo_model(
    settings: TrainSettings,
    out_dir: str | os.PathLike[str],
    *,
    work_dir: str | os.PathLike[str] | None = None,
    command: str = "",
) -> TrainResult:
    """Build the data, train (with the lesion gate and retries), evaluate and export.

    Parameters
    ----------
    settings
        The run's settings.
    out_dir
        Model folder to write (created; an existing model in it is replaced only
        after a model passed the gate).
    work_dir
        nnU-Net's raw/preprocessed/results folders and logs (``nnunet.log``);
        default ``<system temp>/cohort-sciseg-train-<name of out_dir>``. Replaced
        piecewise on each run; kept afterwards for inspection.
    command
        The command line, recorded in the manifest and the model card.

    Raises
    ------
    SegmentationError
        No attempt passed the lesion gate (nothing is exported).
    """
    t0 = time.monotonic()
    model_dir = Path(out_dir).expanduser().absolute()
    work = (
        Path(work_dir).expanduser().absolute()
        if work_dir is not None
        else Path(tempfile.gettempdir()) / f"cohort-sciseg-train-{model_dir.name}"
    )
    work.mkdir(parents=True, exist_ok=True)
    log = work / "nnunet.log"
    _set_nnunet_environment(work)

    real = real_training_cases(settings)
    synth = synthetic_cases(
        work / "train_phantoms",
        seed=settings.seed,
        subjects_per_site=settings.synth_subjects_per_site,
        prefix="synth",
    )
    train_cases = real + synth
    raw = write_raw_dataset(work / "nnUNet_raw" / DATASET_NAME, train_cases)
    logger.info("training set: %d cases (%d real-based, %d phantoms) in %s",
                len(train_cases), len(real), len(synth), raw)
    eval_cases = evaluation_cases(settings, work)

    # continuing a checkpoint: keep the plans and preprocessed data it was trained on
    plans_file = work / "nnUNet_preprocessed" / DATASET_NAME / "nnUNetPlans.json"
    if (settings.from_checkpoint is None and settings.init_weights is None) or not plans_file.is_file():
        with _quiet(log):
            plan_and_preprocess(settings, work, len(train_cases))

    attempts: list[dict[str, Any]] = []
    staging = work / "export"
    metrics: dict[str, Any] = {}
    for attempt in range(settings.max_attempts):
        seed = settings.seed + attempt
        epochs = round(settings.epochs * 1.5**attempt)
        t1 = time.monotonic()
        logger.info("attempt %d: seed %d, %d epochs", attempt + 1, seed, epochs)
        with _quiet(log):
            ckpt = train_once(settings, work, seed=seed, epochs=epochs,
                              resume=settings.from_checkpoint if attempt == 0 else None,
                              init_weights=settings.init_weights)
        train_s = time.monotonic() - t1
        trainer_dir = export_model(ckpt, work, staging)
        metrics = evaluate(trainer_dir, eval_cases, log)
        passed, reason = lesion_gate(metrics, settings.min_lesion_dice)
        resumed = settings.from_checkpoint if attempt == 0 else None
        attempts.append({"seed": seed, "epochs": epochs, "train_s": train_s, "gate": reason,
                         "resumed_from": None if resumed is None else resumed.as_posix(),
                         "fine_tuned_from": (None if settings.init_weights is None
                                             else settings.init_weights.as_posix()),
                         "initial_lr": settings.initial_lr,
                         "oversample_foreground": settings.oversample_foreground,
                         "passed": passed,
                         "metrics": {k: v for k, v in metrics.items() if k != "cases"}})
        logger.info("attempt %d: %s; cord Dice real %s, synthetic %s", attempt + 1, reason,
                    _fmt(metrics["cord_dice_real"]), _fmt(metrics["cord_dice_synthetic"]))
        if passed:
            break
    else:
        msg = format_error(
            f"the lesion channel did not learn in {settings.max_attempts} attempt(s): "
            + "; ".join(f"seed {a['seed']}, {a['epochs']} epochs: {a['gate']}" for a in attempts),
            path=work,
            expected=f"lesion Dice >= {settings.min_lesion_dice} on held-out synthetic lesions",
            fix="train longer (--epochs), try another --seed, or raise --max-attempts; "
            "nothing was exported",
        )
        raise SegmentationError(msg, path=work)

    data_summary = _data_summary(settings, real, len(synth))
    if model_dir.exists():
        shutil.rmtree(model_dir / TRAINER_FOLDER, ignore_errors=True)
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(staging / TRAINER_FOLDER, model_dir / TRAINER_FOLDER)
    wall = time.monotonic() - t0
    data_summary["wall_s"] = wall
    extra = {
        "command": command,
        "settings": settings.as_json(),
        "seed": attempts[-1]["seed"],
        "epochs": attempts[-1]["epochs"],
        "data": {k: v for k, v in data_summary.items() if k != "description"},
        "holdout": list(settings.holdout) if settings.data is not None else [],
        "attempts": attempts,
    }
    size = _write_card_and_manifest(model_dir, settings, metrics, extra, data_summary)
    logger.info("exported %s (%.2f MB) in %.0f s", model_dir, size / 1e6, wall)
    return TrainResult(model_dir, metrics, tuple(attempts), wall)


def _data_summary(settings: TrainSettings, real: Sequence[Case], n_phantoms: int) -> dict[str, Any]:
    """What the model was trained on (manifest ``data`` and the card's description)."""
    n_real_scans = len({c.name.split("_les")[0] for c in real})
    return {
        "n_training": len(real) + n_phantoms,
        "composition": (
            f"{n_real_scans} real scans as is + {len(real) - n_real_scans} copies with synthetic "
            f"lesions, {n_phantoms} phantoms"
        ),
        "real_training_scans": sorted({c.name.split("_les")[0] for c in real}),
        "phantoms": n_phantoms,
        "description": (
            f"Real sagittal T2w scans of `spine-t2w` (SCT test data, MIT) with their cord masks, "
            f"each as is and with {settings.lesion_copies} copies carrying 1-3 synthetic "
            f"ellipsoidal lesions inside the real cord (cohort_sciseg.synth); plus synthetic "
            f"phantoms of the three site styles (sagittal 3 x 0.5 x 0.5 mm, axial 0.7 x 0.7 x "
            f"5 mm, 0.9 mm isotropic; {settings.synth_subjects_per_site} subjects per site)."
            if settings.data is not None
            else f"Synthetic phantoms only ({settings.synth_subjects_per_site} subjects per site "
            f"of the three site styles); no real data."
        ),
    }


def _write_card_and_manifest(
    model_dir: Path,
    settings: TrainSettings,
    metrics: Mapping[str, Any],
    extra: Mapping[str, Any],
    data_summary: Mapping[str, Any],
) -> int:
    """Write MODEL_CARD.md and model.json of an exported model; returns its size in bytes."""
    size = sum(p.stat().st_size for p in (model_dir / TRAINER_FOLDER).rglob("*") if p.is_file())
    write_model_card(model_dir, settings, metrics, extra["attempts"], extra["command"],
                     data_summary, size)
    post = metrics.get("postprocessing")
    write_manifest(
        model_dir,
        name=MODEL_NAME,
        version=__version__,
        extra={
            "description": "small demo model in SCIseg's format, NOT SCIseg; not for clinical "
            "or research conclusions",
            "trained_by": "cohort_sciseg.segment.train",
            **extra,
            "metrics": metrics,
            # read by the engine: applied when the user passes no post-processing of their own
            **({"postprocessing": post} if post else {}),
        },
    )
    check_manifest(model_dir)
    return size


def reevaluate_model(
    settings: TrainSettings, model_dir: str | os.PathLike[str], *,
    work_dir: str | os.PathLike[str], command: str = "",
) -> dict[str, Any]:
    """Evaluate an exported model again and rewrite its card and manifest (weights unchanged).

    For a model trained before the evaluation changed (e.g. the post-processing
    choice): the same held-out and training cases as :func:`train_demo_model` would
    use with ``settings``; how it was trained (command, settings, attempts) is kept
    from its manifest, and ``command`` is recorded as ``evaluated_by``.

    Raises
    ------
    SegmentationError
        ``model_dir`` does not match its manifest, or holds no trained model.
    """
    model = Path(model_dir).expanduser().absolute()
    check = check_manifest(model)
    if check.status != "verified" or "attempts" not in check.manifest:
        msg = format_error("not a model exported by this training script", path=model,
                           expected="a model folder with a verified model.json listing its attempts",
                           fix="pass the --out folder of an earlier training run")
        raise SegmentationError(msg, path=model)
    old = check.manifest
    work = Path(work_dir).expanduser().absolute()
    work.mkdir(parents=True, exist_ok=True)
    _set_nnunet_environment(work)
    metrics = evaluate(model / TRAINER_FOLDER, evaluation_cases(settings, work), work / "nnunet.log")
    data_summary = _data_summary(settings, real_training_cases(settings),
                                 int(old.get("data", {}).get("phantoms", 0)))
    data_summary["wall_s"] = float(old.get("data", {}).get("wall_s", 0.0))
    extra: dict[str, Any] = {k: old[k] for k in ("command", "settings", "seed", "epochs", "data", "holdout",
                                 "attempts") if k in old}
    extra["evaluated_by"] = command
    _write_card_and_manifest(model, settings, metrics, extra, data_summary)
    return metrics


def _default_data() -> Path | None:
    root = Path(os.environ.get("COHORT_SCISEG_TEST_DATA", Path(__file__).parents[3] / "shared" / "data"))
    path = root / "spine-t2w"
    return path if path.is_dir() else None


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m cohort_sciseg.segment.train``."""
    p = argparse.ArgumentParser(
        prog="python -m cohort_sciseg.segment.train",
        description="Train the small demo model in SCIseg's format (see the module docstring).",
    )
    p.add_argument("--out", required=True, type=Path, help="model folder to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="epochs of the first attempt")
    p.add_argument("--iterations-per-epoch", type=int, default=None)
    p.add_argument(
        "--data", default=None,
        help="real BIDS dataset (default: $COHORT_SCISEG_TEST_DATA/spine-t2w or "
        "../shared/data/spine-t2w when present; 'none' for phantoms only)",
    )
    p.add_argument(
        "--work", type=Path, default=None,
        help="work folder for nnU-Net (default: <temp>/cohort-sciseg-train-<out name>)",
    )
    p.add_argument("--holdout", nargs="+", default=list(DEFAULT_HOLDOUT), metavar="SUB")
    p.add_argument("--min-lesion-dice", type=float, default=None)
    p.add_argument("--max-attempts", type=int, default=None)
    p.add_argument(
        "--from-checkpoint", type=Path, default=None,
        help="continue this training checkpoint (same --work and settings) to --epochs",
    )
    p.add_argument(
        "--init-weights", type=Path, default=None,
        help="fine-tune: start from this checkpoint's network weights (same --work) with a new "
        "schedule of --epochs from --initial-lr",
    )
    p.add_argument("--initial-lr", type=float, default=None,
                   help="initial learning rate of the poly schedule (default 0.01)")
    p.add_argument("--oversample-foreground", type=float, default=None,
                   help="share of foreground-centred patches (default 0.66)")
    p.add_argument("--crop-margin-mm", type=float, default=None,
                   help="margin around the cord when cropping real training scans (default: no cropping)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument(
        "--reevaluate", action="store_true",
        help="do not train: evaluate the model already in --out again (same data options) and "
        "rewrite its MODEL_CARD.md and model.json",
    )
    p.add_argument(
        "--quick", action="store_true",
        help="CI smoke run: phantoms only, short schedule, lesion gate off",
    )
    return p


def settings_from_args(args: argparse.Namespace) -> TrainSettings:
    """:class:`TrainSettings` from parsed command-line options."""
    if args.quick:
        base = TrainSettings(
            epochs=30, iterations_per_epoch=25, val_iterations_per_epoch=2,
            synth_subjects_per_site=2, min_lesion_dice=0.0, max_attempts=1, quick=True, threads=1,
            patch_size=(48, 48, 32),
        )
        data = None if args.data in (None, "none") else Path(args.data)
    else:
        base = TrainSettings()
        data = _default_data() if args.data is None else (
            None if args.data == "none" else Path(args.data)
        )
    if data is not None and not data.is_dir():
        msg = format_error(
            "the real dataset folder does not exist", path=data,
            expected="a BIDS dataset such as ../shared/data/spine-t2w",
            fix="pass --data PATH, or --data none for phantoms only",
        )
        raise SegmentationError(msg, path=data)
    changes: dict[str, Any] = {"seed": args.seed, "data": data, "holdout": tuple(args.holdout),
                               "from_checkpoint": args.from_checkpoint,
                               "init_weights": args.init_weights}
    if args.from_checkpoint is not None and args.init_weights is not None:
        msg = format_error(
            "--from-checkpoint and --init-weights were both given", path=args.init_weights,
            expected="continue one training (--from-checkpoint) or fine-tune from weights "
            "(--init-weights)",
            fix="pass one of the two",
        )
        raise SegmentationError(msg, path=args.init_weights)
    for key in ("epochs", "iterations_per_epoch", "min_lesion_dice", "max_attempts", "threads",
                "crop_margin_mm", "initial_lr", "oversample_foreground"):
        value = getattr(args, key)
        if value is not None:
            changes[key] = value
    return replace(base, **changes)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    root = logging.getLogger("cohort_sciseg")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    command = "python -m cohort_sciseg.segment.train " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    try:
        settings = settings_from_args(args)
        if args.reevaluate:
            work = args.work or Path(tempfile.gettempdir()) / f"cohort-sciseg-eval-{args.out.name}"
            metrics = reevaluate_model(settings, args.out, work_dir=work, command=command)
            logger.info("metrics: %s", json.dumps({k: v for k, v in metrics.items() if k != "cases"}))
            return 0
        result = train_demo_model(settings, args.out, work_dir=args.work, command=command)
    except SegmentationError as exc:
        logger.error("%s", exc)
        return 1
    summary = {k: v for k, v in result.metrics.items() if k != "cases"}
    logger.info("metrics: %s", json.dumps(summary))
    logger.info("model: %s (%s)", result.model_dir, MANIFEST_NAME)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
