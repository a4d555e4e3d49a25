"""One image at a time, as ``sct_deepseg lesion_sci_t2 -i IMAGE`` runs it."""

from __future__ import annotations

import os
from collections.abc import Sequence

from cohort_sciseg.segment.engine import DeviceChoice, EngineSettings, SegmentationEngine
from cohort_sciseg.segment.model import CheckpointChoice
from cohort_sciseg.segment.outputs import SegmentationOutputs
from cohort_sciseg.segment.postprocess import PostprocessOptions
from cohort_sciseg.segment.resample import Resampling

__all__ = ["segment_image"]


def segment_image(
    image: str | os.PathLike[str],
    output_prefix: str | os.PathLike[str] | None = None,
    *,
    model: str | os.PathLike[str] = "demo",
    folds: Sequence[int | str] | None = None,
    checkpoint: CheckpointChoice = "auto",
    device: DeviceChoice = "auto",
    tta: bool = False,
    tile_step_size: float = 0.5,
    threads: int | None = None,
    trust_model: bool = False,
    postprocessing: PostprocessOptions | None = None,
    resampling: Resampling = "exact",
) -> SegmentationOutputs:
    """Segment one image file (what ``sct_deepseg lesion_sci_t2 -i IMAGE`` does).

    The model is loaded once per process and reused by later calls with the same
    model and settings. See :class:`SegmentationEngine` and :class:`EngineSettings`.
    """
    settings = EngineSettings(
        model=os.fspath(model),
        folds=None if folds is None else tuple(str(f) for f in folds),
        checkpoint=checkpoint,
        device=device,
        tta=tta,
        tile_step_size=tile_step_size,
        threads=threads,
        trust_model=trust_model,
        resampling=resampling,
    )
    return SegmentationEngine(settings).segment_file(image, output_prefix, postprocessing=postprocessing)
