"""The ``nnunet`` segmenter plugin: SCIseg (or any nnU-Net v2 model folder) through the engine.

Options are the fields of :class:`cohort_sciseg.segment.EngineSettings`
(``model``, ``folds``, ``checkpoint``, ``device``, ``tta``, ``tile_step_size``,
``threads``, ``trust_model``). Each worker process builds one engine and its
per-process predictor cache loads the model once.
"""

from __future__ import annotations

from typing import Any

from cohort_sciseg.segment import EngineSettings, SegmentationEngine

__all__ = ["NnunetSegmenter"]


def NnunetSegmenter(**options: Any) -> SegmentationEngine:  # noqa: N802 - a factory named as the plugin
    """A :class:`~cohort_sciseg.segment.SegmentationEngine` from plugin options."""
    if "folds" in options and isinstance(options["folds"], str | int):
        options["folds"] = tuple(str(options["folds"]).split(","))
    return SegmentationEngine(EngineSettings(**options))
