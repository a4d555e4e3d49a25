"""Evaluation of an exported model on data it never saw, and the lesion gate.

Held-out scans are segmented by the inference engine
(:class:`~cohort_sciseg.segment.SegmentationEngine` on the CPU: SCT's path, reorient
to RPI, transpose ``[2, 1, 0]``, reversed spacing, nnU-Net's
``predict_single_npy_array`` steps) and scored with
:func:`cohort_sciseg.validation.metrics.dice`: cord Dice on held-out real scans,
lesion Dice on synthetic lesions inserted into held-out real cords, cord and lesion
Dice of ``sub-sctfakelesion`` against its SCIsegV2 masks, and both on held-out
phantoms (:func:`summarize`).

**Lesion gate.** Short schedules sometimes never learn the lesion channel. A model
whose lesion Dice on held-out synthetic lesions is below ``min_lesion_dice``, or
that predicts no lesion where there is one, fails :func:`lesion_gate` and is not
exported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cohort_sciseg.io import Volume
from cohort_sciseg.segment import EngineSettings, SegmentationEngine, clear_cache
from cohort_sciseg.segment.postprocess import keep_largest_component
from cohort_sciseg.training.data import Case
from cohort_sciseg.training.nnunet import quiet_stdout
from cohort_sciseg.validation.metrics import dice

__all__ = [
    "choose_postprocessing",
    "evaluate",
    "lesion_gate",
    "summarize",
]


def evaluate(
    model_dir: Path, cases: Sequence[Case], log: Path, *, threads: int | None = None
) -> dict[str, Any]:
    """Cord and lesion Dice of the exported model on ``cases`` (see :func:`summarize`).

    Each row has the cord Dice of the raw network output (``cord_dice_raw``) and of
    its largest component (``cord_dice_largest``); ``cord_dice`` is the one of the
    post-processing :func:`choose_postprocessing` picks on the training scans.

    Parameters
    ----------
    model_dir
        Model folder (or its trainer folder), as the engine takes it.
    cases
        Images and reference label maps, in RPI.
    log
        File that receives nnU-Net's prints.
    threads
        torch threads during prediction (``None``: torch's default).
    """
    # the predictor cache is keyed by folder: a retrained model in the same folder must reload
    clear_cache()
    engine = SegmentationEngine(EngineSettings(model=str(model_dir), device="cpu", threads=threads))
    try:
        with quiet_stdout(log):
            rows = [_case_row(case, engine.predict_labels(Volume(case.image, case.affine, None)))
                    for case in cases]
    finally:
        clear_cache()
    choice = choose_postprocessing(rows)
    if choice.get("keep_largest_cord"):
        rows = [{**r, "cord_dice": r["cord_dice_largest"]} for r in rows]
    out = summarize(rows)
    out["postprocessing"] = choice
    return out


def _case_row(case: Case, seg: npt.NDArray[Any]) -> dict[str, Any]:
    """One evaluation row: Dice of the label map ``seg`` against the case's labels."""
    raw = dice(seg > 0, case.labels > 0)
    return {
        "case": case.name,
        "kind": case.kind,
        "reference": case.reference,
        "cord_dice": raw,
        "cord_dice_raw": raw,
        "cord_dice_largest": dice(keep_largest_component(seg > 0), case.labels > 0),
        "lesion_dice": dice(seg == 2, case.labels == 2) if case.has_lesion_reference else None,
        "lesion_ref_voxels": int((case.labels == 2).sum()),
        "lesion_pred_voxels": int((seg == 2).sum()),
    }

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

