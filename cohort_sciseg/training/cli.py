"""Command line of the demo model's training: ``python -m cohort_sciseg.training --out DIR [options]``.

:func:`main` parses the options into :class:`~cohort_sciseg.training.settings.TrainSettings`,
sends the package's log records to the terminal and runs
:func:`~cohort_sciseg.training.run.train_demo_model` (or
:func:`~cohort_sciseg.training.run.reevaluate_model` with ``--reevaluate``); it
returns the exit status (``__main__`` exits with it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from cohort_sciseg.errors import SegmentationError, format_error
from cohort_sciseg.segment.manifest import MANIFEST_NAME
from cohort_sciseg.training.run import prepare_training, reevaluate_model, train_demo_model
from cohort_sciseg.training.settings import DEFAULT_HOLDOUT, TrainSettings

__all__ = ["PROG", "build_parser", "main", "settings_from_args"]

logger = logging.getLogger(__name__)

#: How the command is run (recorded in the manifest and the model card).
PROG = "python -m cohort_sciseg.training"


def _default_data() -> Path | None:
    root = Path(os.environ.get("COHORT_SCISEG_TEST_DATA", Path(__file__).parents[3] / "shared" / "data"))
    path = root / "spine-t2w"
    return path if path.is_dir() else None


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m cohort_sciseg.training``."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Train the small demo model in SCIseg's format (see cohort_sciseg.training).",
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
        "--from-export", type=Path, default=None, metavar="DATASET_DIR",
        help="also train on a dataset written by `cohort-sciseg export-nnunet` (its fold 0 validates, "
        "its test cases are evaluated); without --data, no spine-t2w scans are added",
    )
    p.add_argument(
        "--plan-only", action="store_true",
        help="build the training data and run nnU-Net's planning and preprocessing in --work, then stop",
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
        default = None if args.from_export is not None else _default_data()  # the export is the real data
        data = default if args.data is None else (
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
                               "init_weights": args.init_weights, "from_export": args.from_export}
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
    command = f"{PROG} " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    try:
        settings = settings_from_args(args)
        if args.plan_only:
            pre = prepare_training(settings, work_dir=args.work, out_name=args.out.name)
            logger.info("planned and preprocessed (no training): %s", pre)
            return 0
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


