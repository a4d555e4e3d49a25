"""The exported model's documentation: ``MODEL_CARD.md`` and the manifest ``model.json``.

The card says what the model is (not SCIseg), its format and architecture, what it
was trained on and how, its post-processing and its measured accuracy, and the
command that made it; the manifest (:func:`cohort_sciseg.segment.manifest.write_manifest`)
lists the sha256 of every file with the same provenance as JSON.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cohort_sciseg._version import __version__
from cohort_sciseg.segment.manifest import check_manifest, write_manifest
from cohort_sciseg.training.data import Case
from cohort_sciseg.training.settings import MODEL_NAME, TRAINER_FOLDER, TrainSettings

__all__ = [
    "data_summary",
    "format_metric",
    "write_card_and_manifest",
    "write_model_card",
]

#: Rows of the card's accuracy table: (label, key of the metrics).
_ACCURACY_ROWS = (
    ("cord Dice, held-out real scans (manual masks)", "cord_dice_real"),
    ("cord Dice, held-out real scans, raw network output (`--no-postprocessing`)", "cord_dice_real_raw"),
    ("cord Dice, held-out real scans with synthetic lesions", "cord_dice_real_synthetic"),
    ("lesion Dice, synthetic lesions in held-out real cords", "lesion_dice_real_synthetic"),
    ("sub-sctfakelesion cord Dice vs SCIsegV2", "scisegv2_cord_dice"),
    ("sub-sctfakelesion lesion Dice vs SCIsegV2", "scisegv2_lesion_dice"),
    ("cord Dice, held-out phantoms", "cord_dice_synthetic"),
    ("lesion Dice, held-out phantoms", "lesion_dice_synthetic"),
    ("cord Dice, real *training* scans (fit, not held out)", "cord_dice_real_train"),
)

_POST_LARGEST = (
    "`keep_largest_cord` (the largest 26-connected cord component; lesions are never "
    "removed), recommended in `model.json` because it raised the mean cord Dice of the "
    "real *training* scans (chosen on them only, as nnU-Net's `determine_postprocessing` "
    "does on its training folds). The engine applies it when the user passes no "
    "post-processing option of their own; `--no-postprocessing` gives the raw network "
    "output (SCT's default path); both figures are below."
)
_POST_NONE = "none: the raw network output, as SCT's default path."

#: ``str.format`` template of MODEL_CARD.md (fields: :func:`_card_fields`).
_CARD = """# {model_name} — a small demo model in SCIseg's format

**This is not SCIseg.** It is a tiny nnU-Net v2 network that cohort-sciseg trains itself
(`cohort_sciseg/training/`) so that the tool works offline out of the box and its
tests have a real model to run. It was trained on a handful of real scans without
lesions, synthetic lesions and synthetic phantoms. **Do not use it for clinical or
research conclusions**; use SCIseg's released weights (ivadomed/model_seg_sci) for that.

## Format

Same layout and labels as SCIseg's release, so the same code loads both:
`{trainer_folder}/{{dataset.json, plans.json, fold_0/checkpoint_final.pth}}`; labels
`{{"background": 0, "sc": [1, 2], "lesion": 2}}`, `regions_class_order [1, 2]`,
`image_orientation "RPI"`. The checkpoint is inference-only (fp16 weights,
`trainer_name` `nnUNetTrainer`); `model.json` lists the sha256 of every file.
Size: {size_mb:.2f} MB.

## Architecture

nnU-Net `3d_fullres`, `PlainConvUNet`, {n_stages} stages with
{features} feature maps, 3 x 3 x 3 kernels, two
convolutions per stage, instance norm, leaky ReLU, deep supervision during training;
region-based sigmoid outputs (cord, lesion). Patch {patch}
voxels (I-S x P-A x R-L) at {spacing_mm} mm isotropic; z-score intensity normalisation.

## Training data

{description}

- training cases: {n_training} ({composition})
- held out (never trained on): {holdout}
- all images reoriented to RPI (as SCT feeds SCIseg); real scans {crop_text}.

## Schedule

nnU-Net's own fingerprint/planning/preprocessing, plans reduced as above; nnUNetTrainer
(SGD, poly learning rate from {initial_lr:g}, Dice + BCE region loss) on CPU, batch size
{batch_size}, {epochs} epochs x {iterations} iterations,
foreground oversampling {oversample:g} (nnU-Net rounds it per batch: {foreground_patches} of
{batch_size} patches centred on foreground), seed {seed}.

{attempts}

Lesion gate: a model whose lesion Dice on held-out synthetic lesions is below
{min_lesion_dice} (or that misses a lesion case entirely) is not exported.

## Post-processing

{postprocessing}

## Measured accuracy (SCT's inference path, no TTA; held-out data except the last row)

| measure | value |
|---|---|
{accuracy}

Per case:

| case | kind | reference | cord Dice | cord Dice (raw) | lesion Dice | lesion voxels (ref) | lesion voxels (pred) |
|---|---|---|---|---|---|---|---|
{cases}

These are a few scans: the numbers say the pipeline works, not how SCIseg or this
model would do on a cohort.

## How it was made

```
{command}
```

cohort-sciseg {version}; wall time {wall_s:.0f} s on {cpus} CPU cores.
"""


def format_metric(value: float | None) -> str:
    """A metric as the card and the log show it: three decimals, ``n/a`` for None."""
    return "n/a" if value is None else f"{value:.3f}"


def _foreground_patches(settings: TrainSettings) -> int:
    """Patches per batch nnU-Net centres on foreground (its data loader rounds the share per batch)."""
    return settings.batch_size - round(settings.batch_size * (1 - settings.oversample_foreground))


def _attempt_lines(attempts: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(
        f"- attempt {i + 1}: seed {a['seed']}, {a['epochs']} epochs, {a['train_s']:.0f} s training"
        + (f" (continued from `{a['resumed_from']}`)" if a.get("resumed_from") else "")
        + (f" (fine-tuned from the weights of `{a['fine_tuned_from']}`)"
           if a.get("fine_tuned_from") else "")
        + f", gate: {a['gate']}"
        for i, a in enumerate(attempts)
    )


def _case_lines(cases: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(
        f"| {r['case']} | {r['kind']} | {r['reference']} | {format_metric(r['cord_dice'])} | "
        f"{format_metric(r.get('cord_dice_raw'))} | "
        f"{format_metric(r['lesion_dice'])} | {r['lesion_ref_voxels']} | {r['lesion_pred_voxels']} |"
        for r in cases
    )


def _card_fields(
    settings: TrainSettings,
    metrics: Mapping[str, Any],
    attempts: Sequence[Mapping[str, Any]],
    command: str,
    summary: Mapping[str, Any],
    size_bytes: int,
) -> dict[str, Any]:
    """The values of the card template."""
    final = attempts[-1]
    post = metrics.get("postprocessing") or {}
    return {
        "model_name": MODEL_NAME,
        "trainer_folder": TRAINER_FOLDER,
        "size_mb": size_bytes / 1e6,
        "n_stages": len(settings.features),
        "features": "-".join(str(f) for f in settings.features),
        "patch": " x ".join(str(p) for p in settings.patch_size),
        "spacing_mm": settings.spacing_mm,
        "description": summary["description"],
        "n_training": summary["n_training"],
        "composition": summary["composition"],
        "holdout": ", ".join(settings.holdout) if settings.data is not None else "n/a (no real data)",
        "crop_text": (
            "keep their whole field of view" if settings.crop_margin_mm is None
            else f"cropped to the cord plus {settings.crop_margin_mm:g} mm"
        ),
        "initial_lr": settings.initial_lr,
        "batch_size": settings.batch_size,
        "epochs": final["epochs"],
        "iterations": settings.iterations_per_epoch,
        "oversample": settings.oversample_foreground,
        "foreground_patches": _foreground_patches(settings),
        "seed": final["seed"],
        "attempts": _attempt_lines(attempts),
        "min_lesion_dice": settings.min_lesion_dice,
        "postprocessing": _POST_LARGEST if post.get("keep_largest_cord") else _POST_NONE,
        "accuracy": "\n".join(f"| {label} | {format_metric(metrics.get(key))} |" for label, key in _ACCURACY_ROWS),
        "cases": _case_lines(metrics["cases"]),
        "command": command,
        "version": __version__,
        "wall_s": summary["wall_s"],
        "cpus": os.cpu_count(),
    }


def write_model_card(
    model_dir: Path,
    settings: TrainSettings,
    metrics: Mapping[str, Any],
    attempts: Sequence[Mapping[str, Any]],
    command: str,
    summary: Mapping[str, Any],
    size_bytes: int,
) -> Path:
    """Write ``MODEL_CARD.md`` (what the model is, how it was made, how well it does).

    Parameters
    ----------
    model_dir
        The exported model folder.
    settings
        The run's settings.
    metrics
        From :func:`~cohort_sciseg.training.evaluation.evaluate` (with ``cases``).
    attempts
        One dict per training attempt; the last is the exported one.
    command
        The command line of the run.
    summary
        :func:`data_summary` with ``wall_s`` (seconds) added.
    size_bytes
        Size of the trainer folder.
    """
    text = _CARD.format(**_card_fields(settings, metrics, attempts, command, summary, size_bytes))
    path = model_dir / "MODEL_CARD.md"
    path.write_text(text, encoding="utf-8")
    return path


def data_summary(settings: TrainSettings, real: Sequence[Case], n_phantoms: int) -> dict[str, Any]:
    """What the model was trained on (manifest ``data`` and the card's description).

    Parameters
    ----------
    settings
        The run's settings.
    real
        The real-scan training cases (as is and with synthetic lesions).
    n_phantoms
        Number of phantom training cases.
    """
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


def write_card_and_manifest(
    model_dir: Path,
    settings: TrainSettings,
    metrics: Mapping[str, Any],
    extra: Mapping[str, Any],
    summary: Mapping[str, Any],
) -> int:
    """Write MODEL_CARD.md and model.json of an exported model; returns its size in bytes.

    ``extra`` (command, settings, attempts, ...) goes into the manifest as is; the
    manifest is checked after writing.
    """
    size = sum(p.stat().st_size for p in (model_dir / TRAINER_FOLDER).rglob("*") if p.is_file())
    write_model_card(model_dir, settings, metrics, extra["attempts"], extra["command"], summary, size)
    post = metrics.get("postprocessing")
    write_manifest(
        model_dir,
        name=MODEL_NAME,
        version=__version__,
        extra={
            "description": "small demo model in SCIseg's format, NOT SCIseg; not for clinical "
            "or research conclusions",
            "trained_by": "cohort_sciseg.training",
            **extra,
            "metrics": metrics,
            # read by the engine: applied when the user passes no post-processing of their own
            **({"postprocessing": post} if post else {}),
        },
    )
    check_manifest(model_dir)
    return size
