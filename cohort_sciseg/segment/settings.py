"""What the segmentation engine runs and how: :class:`EngineSettings` (small, hashable, picklable).

The batch runner ships these settings to its workers, which build their own
:class:`~cohort_sciseg.segment.engine.SegmentationEngine` from them; the
``nnunet`` segmenter's ``--segmenter-option KEY=VALUE`` are its fields
(:mod:`cohort_sciseg.segment.options`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cohort_sciseg.errors import SegmentationError, format_error
from cohort_sciseg.segment.model import CheckpointChoice
from cohort_sciseg.segment.resample import RESAMPLING_MODES, Resampling

__all__ = ["DeviceChoice", "EngineSettings"]

DeviceChoice = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """What to run and how (SCT's defaults). Small, hashable and picklable.

    Attributes
    ----------
    model
        ``"demo"`` (the bundled model), ``"sct:lesion_sci_t2"`` (SCIseg as an installed
        SCT holds it, :mod:`cohort_sciseg.segment.sct`), a model folder or a trainer folder.
    folds
        Folds to ensemble (``None``: all, as SCT).
    checkpoint
        ``"auto"`` (final, else best), ``"final"`` or ``"best"``.
    device
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.
    tta
        Test-time mirroring (off in SCT; ~8x slower in 3D).
    tile_step_size
        Sliding-window step as a fraction of the patch (0.5 as SCT; 1.0 is faster).
    threads
        torch intra-op threads during prediction (``None``: torch's default; nnU-Net
        caps it at ``nnUNet_def_n_proc``, default 8).
    trust_model
        Accept a model folder that differs from its manifest.
    postprocessing
        When a call passes no post-processing of its own: ``"model"`` applies what the
        model's ``model.json`` recommends (none for SCIseg's release: SCT's raw
        output), ``"none"`` gives the raw output always (``run --segmenter-option
        postprocessing=none``).
    disagreement
        Run the ensemble's members one by one (each fold, and with ``tta`` each
        mirroring) and measure how much they disagree on the cord and the lesion
        (``tables/scans`` ``*_disagreement``: :mod:`cohort_sciseg.segment.members`).
        Same network evaluations as the ensemble; needs more than one member (several
        folds, or ``tta``). The masks are the ensemble's up to floating-point rounding.
    resampling
        How images are resampled to the model's spacing and the logits back:
        ``"exact"`` (nnU-Net's scipy path, SCT's) or ``"torch"`` (the same operator as
        matrix products on the model's device, or CPU threads; same masks, several
        times faster: :mod:`cohort_sciseg.segment.resample`).
    """

    model: str = "demo"
    folds: tuple[str, ...] | None = None
    checkpoint: CheckpointChoice = "auto"
    device: DeviceChoice = "auto"
    tta: bool = False
    tile_step_size: float = 0.5
    threads: int | None = None
    trust_model: bool = False
    postprocessing: Literal["model", "none"] = "model"
    resampling: Resampling = "exact"
    disagreement: bool = False

    def __post_init__(self) -> None:
        if self.resampling not in RESAMPLING_MODES:
            msg = format_error(f"resampling={self.resampling!r} is not valid",
                               expected=f"one of {RESAMPLING_MODES} ('exact': nnU-Net's scipy path, as SCT; "
                               "'torch': the same resampling on torch, faster)",
                               fix="pass --resampling exact or torch (run: --segmenter-option resampling=torch)")
            raise SegmentationError(msg)
        if self.postprocessing not in ("model", "none"):
            msg = format_error(f"postprocessing={self.postprocessing!r} is not valid",
                               expected="'model' (the model's recommendation, if any) or 'none' (raw)",
                               fix="pass --segmenter-option postprocessing=none, or leave it out")
            raise SegmentationError(msg)
        if self.folds is not None:
            object.__setattr__(self, "folds", tuple(str(f) for f in self.folds))
        if not (0.0 < float(self.tile_step_size) <= 1.0):
            msg = format_error(f"tile_step_size={self.tile_step_size!r} is not valid",
                               expected="a fraction of the patch in (0, 1] (SCT: 0.5)",
                               fix="pass --tile-step-size 0.5, or 1.0 for speed (run: --segmenter-option tile_step_size=0.5)")
            raise SegmentationError(msg)
        if self.device not in ("auto", "cpu", "cuda"):
            msg = format_error(f"device={self.device!r} is not valid", expected="'auto', 'cpu' or 'cuda'",
                               fix="pass --device auto, cpu or cuda (run: --segmenter-option device=cpu)")
            raise SegmentationError(msg)
        if self.threads is not None and int(self.threads) < 1:
            msg = format_error(f"threads={self.threads!r} is not valid", expected="an integer >= 1",
                               fix="pass --threads N with N >= 1 (run: --segmenter-option threads=N), or leave it out")
            raise SegmentationError(msg)
