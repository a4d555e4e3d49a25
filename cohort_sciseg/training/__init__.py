"""Training of the bundled demo model: a small SCIseg-format nnU-Net v2 model, from scratch.

``python -m cohort_sciseg.training --out DIR [--seed 0] [--epochs N] ...``

By pipeline role:

- :mod:`~cohort_sciseg.training.settings`: constants and :class:`TrainSettings`;
- :mod:`~cohort_sciseg.training.data`: real T2w scans of ``../shared/data/spine-t2w``
  (held-out subjects excluded) as is and with synthetic lesions in the real cord,
  plus synthetic phantoms (:mod:`cohort_sciseg.synth`), in RPI, with SCIseg's
  labels (0 background, 1 cord, 2 lesion; ``dataset.json`` regions ``sc = [1, 2]``,
  ``lesion = 2``), written as an nnU-Net raw dataset. Without the real data (or with
  ``--quick``) only phantoms are used;
- :mod:`~cohort_sciseg.training.nnunet`: nnU-Net's own planning, preprocessing and
  training from Python (plans reduced to a small ``PlainConvUNet``: features
  8-16-32-64, patch 64 x 64 x 48 voxels, batch size 2), and the inference-only export
  in SCIseg's release layout ``DIR/nnUNetTrainer__nnUNetPlans__3d_fullres/``;
- :mod:`~cohort_sciseg.training.evaluation`: held-out scans segmented by the inference
  engine (:class:`~cohort_sciseg.segment.SegmentationEngine`), Dice from
  :func:`cohort_sciseg.validation.metrics.dice`, and the lesion gate (a model whose
  lesion channel did not learn is retried with the next seed and 50 % more epochs,
  never exported);
- :mod:`~cohort_sciseg.training.card`: ``DIR/MODEL_CARD.md`` and ``DIR/model.json``;
- :mod:`~cohort_sciseg.training.export`: ``cohort-sciseg export-nnunet``, a cohort's scans
  with manual or corrected masks (optionally QC-passed predictions) as an nnU-Net v2 raw
  dataset built as SCIseg's, with patient-level splits
  (:mod:`~cohort_sciseg.training.splits`) and a manifest;
  :mod:`~cohort_sciseg.training.from_export` trains the demo model from such an export
  (``--from-export``);
- :mod:`~cohort_sciseg.training.run`: the whole run (:func:`train_demo_model`,
  :func:`reevaluate_model`);
- :mod:`~cohort_sciseg.training.cli`: the command line.

Importing this package imports neither torch nor nnunetv2 (they are imported where
used, after :func:`~cohort_sciseg.training.nnunet.set_nnunet_environment`).
"""

from cohort_sciseg.training.card import write_model_card
from cohort_sciseg.training.cli import build_parser, main, settings_from_args
from cohort_sciseg.training.data import (
    Case,
    dataset_json,
    evaluation_cases,
    find_real_scans,
    label_map,
    real_training_cases,
    synthetic_cases,
    write_raw_dataset,
)
from cohort_sciseg.training.evaluation import (
    choose_postprocessing,
    evaluate,
    lesion_gate,
    summarize,
)
from cohort_sciseg.training.export import (
    ExportCase,
    ExportResult,
    SkippedScan,
    case_id_of,
    export_nnunet,
    select_cases,
)
from cohort_sciseg.training.from_export import check_export, export_test_cases
from cohort_sciseg.training.nnunet import (
    export_checkpoint,
    export_model,
    plan_and_preprocess,
    reduce_plans,
    set_nnunet_environment,
    train_once,
)
from cohort_sciseg.training.run import (
    TrainResult,
    prepare_training,
    reevaluate_model,
    train_demo_model,
)
from cohort_sciseg.training.settings import (
    CONFIGURATION,
    DATASET_JSON,
    DEFAULT_HOLDOUT,
    MODEL_NAME,
    TRAINER_FOLDER,
    TrainSettings,
)
from cohort_sciseg.training.splits import SplitCase, Splits, split_by_subject

__all__ = [
    "CONFIGURATION",
    "DATASET_JSON",
    "DEFAULT_HOLDOUT",
    "MODEL_NAME",
    "TRAINER_FOLDER",
    "Case",
    "ExportCase",
    "ExportResult",
    "SkippedScan",
    "SplitCase",
    "Splits",
    "TrainResult",
    "TrainSettings",
    "build_parser",
    "case_id_of",
    "check_export",
    "choose_postprocessing",
    "dataset_json",
    "evaluate",
    "evaluation_cases",
    "export_checkpoint",
    "export_model",
    "export_nnunet",
    "export_test_cases",
    "find_real_scans",
    "label_map",
    "lesion_gate",
    "main",
    "plan_and_preprocess",
    "prepare_training",
    "real_training_cases",
    "reduce_plans",
    "reevaluate_model",
    "select_cases",
    "set_nnunet_environment",
    "settings_from_args",
    "split_by_subject",
    "summarize",
    "synthetic_cases",
    "train_demo_model",
    "train_once",
    "write_model_card",
    "write_raw_dataset",
]
