"""Train the demo model end to end (:func:`train_demo_model`), or re-measure one (:func:`reevaluate_model`).

In order: the data (:mod:`~cohort_sciseg.training.data`) as an nnU-Net raw dataset,
nnU-Net's planning and preprocessing, then training attempts
(:mod:`~cohort_sciseg.training.nnunet`), each exported to a staging folder,
evaluated with the inference engine and checked by the lesion gate
(:mod:`~cohort_sciseg.training.evaluation`). A failed attempt is retried with the next
seed and 50 % more epochs, up to ``max_attempts``; then the run fails and nothing is
exported. The model that passes is copied into the output folder with its
``MODEL_CARD.md`` and ``model.json`` (:mod:`~cohort_sciseg.training.card`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohort_sciseg._version import __version__
from cohort_sciseg.errors import SegmentationError, format_error
from cohort_sciseg.segment.manifest import check_manifest, write_manifest
from cohort_sciseg.training.card import data_summary, format_metric, write_card_and_manifest
from cohort_sciseg.training.data import (
    Case,
    evaluation_cases,
    real_training_cases,
    synthetic_cases,
    write_raw_dataset,
)
from cohort_sciseg.training.evaluation import evaluate, lesion_gate
from cohort_sciseg.training.from_export import (
    add_export_cases,
    check_export,
    export_test_cases,
    merge_export_split,
)
from cohort_sciseg.training.nnunet import (
    export_model,
    plan_and_preprocess,
    quiet_stdout,
    set_nnunet_environment,
    train_once,
)
from cohort_sciseg.training.settings import DATASET_NAME, MODEL_NAME, TRAINER_FOLDER, TrainSettings

__all__ = ["TrainResult", "prepare_training", "reevaluate_model", "train_demo_model"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainResult:
    """Outcome of :func:`train_demo_model`.

    Attributes
    ----------
    model_dir
        The exported model folder.
    metrics
        Evaluation of the exported model (see :func:`~cohort_sciseg.training.evaluation.summarize`).
    attempts
        One dict per training attempt (seed, epochs, gate outcome, seconds).
    wall_s
        Wall time of the whole run, seconds.
    """

    model_dir: Path
    metrics: dict[str, Any]
    attempts: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    wall_s: float = 0.0


def _training_data(settings: TrainSettings, work: Path) -> tuple[list[Case], list[Case], list[str]]:
    """Write the nnU-Net raw dataset; returns ``(real-based cases, phantom cases, export case ids)``."""
    real = real_training_cases(settings)
    synth = synthetic_cases(
        work / "train_phantoms",
        seed=settings.seed,
        subjects_per_site=settings.synth_subjects_per_site,
        prefix="synth",
    )
    train_cases = real + synth
    raw = write_raw_dataset(work / "nnUNet_raw" / DATASET_NAME, train_cases)
    exported = [] if settings.from_export is None else add_export_cases(raw, settings.from_export)
    logger.info("training set: %d cases (%d real-based, %d phantoms, %d from the export) in %s",
                len(train_cases) + len(exported), len(real), len(synth), len(exported), raw)
    return real, synth, exported


def _work_folder(out_name: str, work_dir: str | os.PathLike[str] | None) -> Path:
    work = (
        Path(work_dir).expanduser().absolute()
        if work_dir is not None
        else Path(tempfile.gettempdir()) / f"cohort-sciseg-train-{out_name}"
    )
    work.mkdir(parents=True, exist_ok=True)
    return work


def _plan(settings: TrainSettings, work: Path, n_cases: int, *, keep_plans: bool) -> None:
    """nnU-Net's planning and preprocessing (kept when ``keep_plans`` and done before), then the split."""
    plans_file = work / "nnUNet_preprocessed" / DATASET_NAME / "nnUNetPlans.json"
    if keep_plans and plans_file.is_file():
        return
    with quiet_stdout(work / "nnunet.log"):
        plan_and_preprocess(settings, work, n_cases)
    if settings.from_export is not None:
        merged = merge_export_split(plans_file.parent, settings.from_export)
        logger.info("split: the export's fold 0 validates (%d cases), %d cases train",
                    len(merged["val"]), len(merged["train"]))


def prepare_training(
    settings: TrainSettings, *, work_dir: str | os.PathLike[str] | None = None, out_name: str = "model"
) -> Path:
    """Build the training data and run nnU-Net's planning and preprocessing, without training.

    What :func:`train_demo_model` does before its first attempt (a dry run, e.g. to
    check that an export is accepted). Returns the preprocessed dataset folder, with
    ``nnUNetPlans.json`` and ``splits_final.json``.
    """
    if settings.from_export is not None:
        check_export(settings.from_export)
    work = _work_folder(out_name, work_dir)
    set_nnunet_environment(work)
    real, synth, exported = _training_data(settings, work)
    _plan(settings, work, len(real) + len(synth) + len(exported), keep_plans=False)
    return work / "nnUNet_preprocessed" / DATASET_NAME


def _attempt(
    settings: TrainSettings, work: Path, attempt: int, eval_cases: Sequence[Case]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train, export to ``work/export`` and evaluate one attempt; returns ``(record, metrics)``."""
    log = work / "nnunet.log"
    seed = settings.seed + attempt
    epochs = round(settings.epochs * 1.5**attempt)
    resumed = settings.from_checkpoint if attempt == 0 else None
    t1 = time.monotonic()
    logger.info("attempt %d: seed %d, %d epochs", attempt + 1, seed, epochs)
    with quiet_stdout(log):
        ckpt = train_once(settings, work, seed=seed, epochs=epochs, resume=resumed,
                          init_weights=settings.init_weights)
    train_s = time.monotonic() - t1
    staging = work / "export"
    export_model(ckpt, work, staging)
    # a manifest, so that the engine verifies the model it evaluates (not copied to the output)
    write_manifest(staging, name=MODEL_NAME, version=__version__)
    metrics = evaluate(staging, eval_cases, log, threads=settings.threads or None)
    passed, reason = lesion_gate(metrics, settings.min_lesion_dice)
    record = {"seed": seed, "epochs": epochs, "train_s": train_s, "gate": reason,
              "resumed_from": None if resumed is None else resumed.as_posix(),
              "fine_tuned_from": (None if settings.init_weights is None
                                  else settings.init_weights.as_posix()),
              "initial_lr": settings.initial_lr,
              "oversample_foreground": settings.oversample_foreground,
              "passed": passed,
              "metrics": {k: v for k, v in metrics.items() if k != "cases"}}
    logger.info("attempt %d: %s; cord Dice real %s, synthetic %s", attempt + 1, reason,
                format_metric(metrics["cord_dice_real"]), format_metric(metrics["cord_dice_synthetic"]))
    return record, metrics


def _train_until_gate(
    settings: TrainSettings, work: Path, eval_cases: Sequence[Case]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Attempts until one passes the lesion gate; returns ``(attempts, metrics of the last)``."""
    attempts: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {}
    for attempt in range(settings.max_attempts):
        record, metrics = _attempt(settings, work, attempt, eval_cases)
        attempts.append(record)
        if record["passed"]:
            return attempts, metrics
    msg = format_error(
        f"the lesion channel did not learn in {settings.max_attempts} attempt(s): "
        + "; ".join(f"seed {a['seed']}, {a['epochs']} epochs: {a['gate']}" for a in attempts),
        path=work,
        expected=f"lesion Dice >= {settings.min_lesion_dice} on held-out synthetic lesions",
        fix="train longer (--epochs), try another --seed, or raise --max-attempts; "
        "nothing was exported",
    )
    raise SegmentationError(msg, path=work)


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
    if settings.from_export is not None:
        check_export(settings.from_export)
    work = _work_folder(model_dir.name, work_dir)
    set_nnunet_environment(work)
    real, synth, exported = _training_data(settings, work)
    eval_cases = evaluation_cases(settings, work)
    if settings.from_export is not None:
        eval_cases += export_test_cases(settings.from_export)

    # continuing a checkpoint: keep the plans and preprocessed data it was trained on
    resumed = settings.from_checkpoint is not None or settings.init_weights is not None
    _plan(settings, work, len(real) + len(synth) + len(exported), keep_plans=resumed)
    attempts, metrics = _train_until_gate(settings, work, eval_cases)

    summary = data_summary(settings, real, len(synth))
    if settings.from_export is not None:
        summary["n_training"] += len(exported)
        summary["export"] = {"folder": settings.from_export.as_posix(), "training_cases": len(exported)}
        summary["composition"] += f", {len(exported)} cases of the export {settings.from_export.name}"
        phantoms_only = summary["description"].replace("; no real data.", ".")
        summary["description"] = phantoms_only.replace("Synthetic phantoms only", "Synthetic phantoms") + (
            f" Plus the {len(exported)} training cases of the nnU-Net export {settings.from_export.name} "
            "(`cohort-sciseg export-nnunet`: manual or corrected masks); its test cases are evaluated as "
            "held-out real scans."
        )
    if model_dir.exists():
        shutil.rmtree(model_dir / TRAINER_FOLDER, ignore_errors=True)
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(work / "export" / TRAINER_FOLDER, model_dir / TRAINER_FOLDER)
    wall = time.monotonic() - t0
    summary["wall_s"] = wall
    extra = {
        "command": command,
        "settings": settings.as_json(),
        "seed": attempts[-1]["seed"],
        "epochs": attempts[-1]["epochs"],
        "data": {k: v for k, v in summary.items() if k != "description"},
        "holdout": list(settings.holdout) if settings.data is not None else [],
        "attempts": attempts,
    }
    size = write_card_and_manifest(model_dir, settings, metrics, extra, summary)
    logger.info("exported %s (%.2f MB) in %.0f s", model_dir, size / 1e6, wall)
    return TrainResult(model_dir, metrics, tuple(attempts), wall)


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
    set_nnunet_environment(work)
    cases = evaluation_cases(settings, work)
    if settings.from_export is not None:
        cases += export_test_cases(settings.from_export)
    metrics = evaluate(model, cases, work / "nnunet.log", threads=settings.threads or None)
    summary = data_summary(settings, real_training_cases(settings),
                           int(old.get("data", {}).get("phantoms", 0)))
    summary["wall_s"] = float(old.get("data", {}).get("wall_s", 0.0))
    extra: dict[str, Any] = {k: old[k] for k in ("command", "settings", "seed", "epochs", "data",
                                                 "holdout", "attempts") if k in old}
    extra["evaluated_by"] = command
    write_card_and_manifest(model, settings, metrics, extra, summary)
    return metrics
