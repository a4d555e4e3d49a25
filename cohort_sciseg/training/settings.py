"""What determines a training run of the demo model: its constants and :class:`TrainSettings`.

The model is a small SCIseg-format nnU-Net v2 model (``3d_fullres``, exported into
SCIseg's release layout ``TRAINER_FOLDER``); its nnU-Net dataset is ``DATASET_NAME``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIGURATION",
    "DATASET_ID",
    "DATASET_JSON",
    "DATASET_NAME",
    "DEFAULT_HOLDOUT",
    "MODEL_NAME",
    "TRAINER_FOLDER",
    "TrainSettings",
]

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
    from_export
        A dataset folder written by ``cohort-sciseg export-nnunet``: its training cases
        join the phantoms, its fold 0 validates, its test cases are evaluated as
        held-out real scans (:mod:`~cohort_sciseg.training.from_export`).
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
    from_export: Path | None = None

    def as_json(self) -> dict[str, Any]:
        """JSON-friendly dict (paths as strings, tuples as lists)."""
        out = asdict(self)
        out["data"] = None if self.data is None else self.data.as_posix()
        for key in ("from_checkpoint", "init_weights", "from_export"):
            value = getattr(self, key)
            out[key] = None if value is None else value.as_posix()
        return json.loads(json.dumps(out))

