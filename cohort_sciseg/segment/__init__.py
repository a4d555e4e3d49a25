"""Segmentation with nnU-Net v2 (SCIseg or any nnU-Net v2 model folder).

The only package that imports torch and nnunetv2 (import-linter contract). Its
heavy imports happen inside the functions that need them, so that importing
this package (or :mod:`cohort_sciseg.segment.manifest`) stays cheap.

From Python::

    from cohort_sciseg.segment import SegmentationEngine
    engine = SegmentationEngine(model="path/to/model_seg_sci")  # or model="demo"
    engine.segment_file("sub-01_T2w.nii.gz")  # sub-01_T2w_sc_seg.nii.gz, ..._lesion_seg.nii.gz
"""

from cohort_sciseg.segment.engine import (
    CACHE_SIZE,
    EngineKey,
    EngineSettings,
    PredictedLogits,
    PreparedImage,
    SegmentationEngine,
    SegmentationResult,
    cache_info,
    clear_cache,
)
from cohort_sciseg.segment.loading import LoadedNetwork, ModelPlans, load_network, load_plans
from cohort_sciseg.segment.manifest import (
    ManifestCheck,
    check_manifest,
    hash_folder,
    write_manifest,
)
from cohort_sciseg.segment.model import (
    DEFAULT_IMAGE_ORIENTATION,
    LabelSplit,
    ModelFolder,
    demo_model_path,
    find_model,
    parse_labels,
    resolve_model_path,
)
from cohort_sciseg.segment.outputs import SegmentationOutputs, default_prefix, output_paths
from cohort_sciseg.segment.postprocess import PostprocessOptions, postprocess_masks
from cohort_sciseg.segment.resample import RESAMPLING_MODES, Resampling, resample_to_shape
from cohort_sciseg.segment.single import segment_image

__all__ = [
    "CACHE_SIZE",
    "DEFAULT_IMAGE_ORIENTATION",
    "RESAMPLING_MODES",
    "EngineKey",
    "EngineSettings",
    "LabelSplit",
    "LoadedNetwork",
    "ManifestCheck",
    "ModelFolder",
    "ModelPlans",
    "PostprocessOptions",
    "PredictedLogits",
    "PreparedImage",
    "Resampling",
    "SegmentationEngine",
    "SegmentationOutputs",
    "SegmentationResult",
    "cache_info",
    "check_manifest",
    "clear_cache",
    "default_prefix",
    "demo_model_path",
    "find_model",
    "hash_folder",
    "load_network",
    "load_plans",
    "output_paths",
    "parse_labels",
    "postprocess_masks",
    "resample_to_shape",
    "resolve_model_path",
    "segment_image",
    "write_manifest",
]
