"""The segmentation engine: SCT's inference path with a per-process predictor cache.

:class:`SegmentationEngine` runs an nnU-Net v2 model on one image exactly as SCT's
``sct_deepseg`` does (``spinalcordtoolbox/deepseg/inference.py: segment_nnunet``):

1. reorient the image to the model's ``image_orientation`` (``dataset.json``,
   fallback ``LPI``), permuting/flipping axes only;
2. transpose the array ``[2, 1, 0]`` and reverse the voxel sizes (nnU-Net expects
   SimpleITK's z-y-x order);
3. ``nnUNetPredictor.predict_single_npy_array`` (tile step 0.5, Gaussian
   weighting, mirroring off unless ``tta``);
4. transpose back, reorient back to the input's orientation, split the label map
   into cord and lesion masks (:class:`~cohort_sciseg.segment.model.LabelSplit`).

Predictors are expensive (checkpoint unpickling, network construction), so each
process keeps the loaded ones in a small LRU cache keyed by :class:`EngineKey`
(model folder, folds, checkpoint, device, mirroring, tile step, trust); an
engine holds only its key and settings and fetches the predictor from the cache
on every call. Engines refuse to be pickled: ship the settings and build the
engine in the worker (the predictor never travels between processes).

nnU-Net prints (the ``perform_everything_on_device`` notice of every CPU
predictor, progress messages) and warns; both are captured and logged at DEBUG
level (:func:`~cohort_sciseg.segment.quiet.quiet_nnunet`) so they never reach the
user's terminal.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn, cast

import numpy as np

from cohort_sciseg.errors import SegmentationError, format_error
from cohort_sciseg.io import (
    Volume,
    check_image_values,
    load_nifti,
    orientation_code,
    reorient,
    voxel_sizes,
)
from cohort_sciseg.segment.limits import check_model_grid
from cohort_sciseg.segment.loading import LoadedNetwork, ModelPlans
from cohort_sciseg.segment.manifest import ManifestCheck
from cohort_sciseg.segment.members import predict_members
from cohort_sciseg.segment.model import find_model
from cohort_sciseg.segment.outputs import (
    SegmentationOutputs,
    default_prefix,
    generated_by,
    output_paths,
    with_description,
    write_mask,
    write_sidecar,
)
from cohort_sciseg.segment.postprocess import PostprocessOptions, postprocess_masks
from cohort_sciseg.segment.predictors import (
    CACHE_SIZE,
    EngineKey,
    cache_info,
    clear_cache,
    device_choice,
    get_entry,
    get_integrity,
    get_plans,
    resampling_device,
)
from cohort_sciseg.segment.quiet import quiet_nnunet
from cohort_sciseg.segment.resample import with_resampling
from cohort_sciseg.segment.settings import DeviceChoice, EngineSettings
from cohort_sciseg.segment.uncertainty import ScanUncertainty, labels_and_uncertainty

__all__ = [
    "CACHE_SIZE",
    "DeviceChoice",
    "EngineKey",
    "EngineSettings",
    "PredictedLogits",
    "PreparedImage",
    "SegmentationEngine",
    "SegmentationResult",
    "cache_info",
    "clear_cache",
]

logger = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class SegmentationResult:
    """Masks of one image, on the input's voxel grid.

    Attributes
    ----------
    label_map
        nnU-Net's output label map (uint8; values of ``dataset.json``), before post-processing.
    cord, lesion
        Boolean masks after post-processing.
    uncertainty
        The scan's uncertainty, when asked (:meth:`SegmentationEngine.write_outputs`).
    """

    label_map: np.ndarray
    cord: np.ndarray
    lesion: np.ndarray
    uncertainty: ScanUncertainty | None = None


@dataclass(frozen=True, slots=True, eq=False)
class PreparedImage:
    """An image preprocessed for the network (output of :meth:`SegmentationEngine.prepare`).

    Picklable and model-free: a CPU task makes it and a device task consumes it.

    Attributes
    ----------
    data
        nnU-Net's preprocessed tensor (channels, z, y, x); ``None`` once inferred.
    properties
        nnU-Net's ``data_properties`` (cropping box, shapes, spacing) to undo preprocessing.
    model_affine
        Affine of the image in the model's orientation.
    source_orientation
        The input's orientation code (to reorient the labels back).
    affine, header, path
        The input image's affine and NIfTI header (the masks are written with them) and path.
    """

    data: Any
    properties: dict[str, Any]
    model_affine: np.ndarray
    source_orientation: str
    affine: np.ndarray
    header: Any
    path: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class PredictedLogits:
    """The network's output for a :class:`PreparedImage` (output of :meth:`SegmentationEngine.infer`).

    ``started``/``finished`` are wall-clock times (``time.time()``) of the device work;
    ``disagreement`` the members' disagreement when the settings ask for it
    (:mod:`cohort_sciseg.segment.members`).
    """

    prepared: PreparedImage
    logits: Any
    started: float
    finished: float
    disagreement: dict[str, float] | None = None

    @property
    def seconds(self) -> float:
        return self.finished - self.started


class SegmentationEngine:
    """Run an nnU-Net v2 cord/lesion model on images, the way SCT does.

    Parameters
    ----------
    settings
        :class:`EngineSettings` (default: the demo model with SCT's defaults).
    **overrides
        Fields of :class:`EngineSettings` to override (``model="path"``, ``tta=True``, ...).

    Notes
    -----
    Creating an engine reads the model folder (no unpickling). Preparing and
    finishing scans, :meth:`describe` and the post-processing choice need only the
    model's plans and manifest (:func:`~cohort_sciseg.segment.predictors.get_plans`);
    the network is unpickled on the first :meth:`infer` and cached per process
    (:func:`cache_info`). ``device="cuda"`` is checked there too, so a CPU-only worker
    can prepare and finish the scans of a GPU run. An engine cannot be pickled: send
    its :attr:`settings` to the other process and build one there.
    """

    def __init__(self, settings: EngineSettings | None = None, **overrides: Any) -> None:
        settings = settings or EngineSettings()
        if overrides:
            settings = replace(settings, **overrides)
        self.settings = settings
        self.folder = find_model(settings.model, folds=settings.folds, checkpoint=settings.checkpoint)
        self.key = EngineKey(
            model_dir=str(self.folder.trainer_dir),
            folds=self.folder.folds,
            checkpoints=self.folder.checkpoint_names,
            device=device_choice(settings.device),
            tta=bool(settings.tta),
            tile_step_size=float(settings.tile_step_size),
            trust_model=bool(settings.trust_model),
        )
        self._configuration: Any = None
        if settings.disagreement and len(self.folder.folds) < 2 and not settings.tta:
            msg = format_error(
                "disagreement=true needs an ensemble of several members, and this one has one "
                f"(fold {self.folder.folds[0]}, no test-time mirroring)",
                path=self.folder.root,
                expected="several folds, or tta=true (each mirroring is a member: 8 in 3D)",
                fix="add --segmenter-option tta=true (8x the network time in 3D), use a model with several "
                "folds, or drop disagreement=true",
            )
            raise SegmentationError(msg, path=self.folder.root)

    def __reduce__(self) -> NoReturn:
        msg = format_error(
            "a SegmentationEngine cannot be pickled (it stands for a loaded nnU-Net predictor)",
            path=self.folder.root,
            expected="the engine's settings (EngineSettings, small and picklable) sent to other processes",
            fix="send engine.settings and build SegmentationEngine(settings) in the worker; the worker's "
            "cache then loads the model once per process",
        )
        raise SegmentationError(msg, path=self.folder.root)

    def __repr__(self) -> str:
        return (f"SegmentationEngine(model={str(self.folder.root)!r}, folds={self.key.folds}, "
                f"device={self.key.device!r}, tta={self.key.tta}, tile_step_size={self.key.tile_step_size})")

    # ------------------------------------------------------------------ loading

    def load(self) -> LoadedNetwork:
        """Load the model (manifest check, checkpoints, network) if this process has not yet."""
        return get_entry(self.key, self.folder).loaded

    def plans(self) -> ModelPlans:
        """The model's plans and manifest check (no checkpoint unpickled), once per process."""
        return get_plans(self.folder, trust=self.key.trust_model)

    def integrity(self) -> ManifestCheck:
        """The model folder's manifest check, once per process (no nnU-Net, no torch)."""
        return get_integrity(self.folder, trust=self.key.trust_model)

    @property
    def model_name(self) -> str:
        """Name from the manifest, else the model folder's name."""
        name = self.integrity().manifest.get("name")
        return str(name) if name else self.folder.root.name

    def describe(self) -> dict[str, Any]:
        """``{"name", "checksum", "integrity", "settings"}``: provenance of this engine's outputs.

        A model found through SCT (``sct:...``) adds ``"source"``: SCT's folder, how it
        was found, the model name, task and release URL (:meth:`~cohort_sciseg.segment.sct.SctModel.record`).
        """
        integrity = self.integrity()
        out = {
            "name": self.model_name,
            "checksum": integrity.checksum,
            "integrity": integrity.status,
            "settings": self.settings_record(),
        }
        if self.folder.source is not None:
            out["source"] = dict(self.folder.source)
        return out

    def recommended_postprocessing(self) -> PostprocessOptions | None:
        """Post-processing the model folder recommends (``model.json``'s ``postprocessing``), if any.

        Only a manifest that verified (or that the user trusted) is read; SCIseg's
        release has none, so its masks stay SCT's raw output.
        """
        integrity = self.integrity()
        value = integrity.manifest.get("postprocessing")
        if value is None:
            return None
        return PostprocessOptions.from_manifest(value, source=str(self.folder.root / "model.json"))

    def effective_postprocessing(
        self, postprocessing: PostprocessOptions | None
    ) -> tuple[PostprocessOptions, str]:
        """``(options, source)``: the caller's options, else the model's recommendation, else none.

        ``source`` is ``"user"``, ``"model"`` or ``"none"`` (recorded in the sidecars).
        """
        if postprocessing is not None:
            return postprocessing, "user"
        if self.settings.postprocessing == "none":
            return PostprocessOptions(), "user"
        recommended = self.recommended_postprocessing()
        if recommended is not None:
            return recommended, "model"
        return PostprocessOptions(), "none"

    def settings_record(self, postprocessing: PostprocessOptions | None = None) -> dict[str, Any]:
        """The effective settings written to the sidecars."""
        post, source = self.effective_postprocessing(postprocessing)
        record: dict[str, Any] = {
            "tile_step_size": self.key.tile_step_size,
            "tta": self.key.tta,
            "use_gaussian": True,
            "folds": list(self.key.folds),
            "checkpoint": list(self.key.checkpoints),
            "device": self.key.device,
            "threads": self.settings.threads,
            "image_orientation": self.folder.image_orientation,
            "label_layout": self.folder.labels.layout,
            "postprocessing": post.as_dict(),
            "postprocessing_source": source,
            "resampling": self.settings.resampling,
        }
        if self.settings.disagreement:  # only then: the records (resume keys) of other runs stay as they were
            record["disagreement"] = True
        return record

    def _configuration_manager(self) -> Any:
        """nnU-Net's configuration manager with this engine's resampling (built once per engine)."""
        if self._configuration is None:
            self._configuration = with_resampling(
                self.plans().configuration_manager, self.settings.resampling,
                device=resampling_device(self.key.device), threads=self.settings.threads,
            )
        return self._configuration

    # --------------------------------------------------------------- prediction

    def prepare(self, volume: Volume, *, scan_id: str | None = None) -> PreparedImage:
        """CPU stage: reorient, transpose and preprocess ``volume`` as nnU-Net does.

        The result is picklable and holds no model; :meth:`infer` runs the network on
        it. ``prepare`` -> ``infer`` -> :meth:`labels` is exactly
        ``predict_single_npy_array`` split where the device is used, so that a
        batch runner can keep a GPU busy while other threads prepare and finish scans.

        Raises ``NiftiError`` for intensities that cannot hold a cord
        (:func:`~cohort_sciseg.io.check_image_values`) and ``SegmentationError`` for a
        grid the model cannot segment (:func:`~cohort_sciseg.segment.limits.check_segmentable`).
        """
        from nnunetv2.inference.data_iterators import PreprocessAdapterFromNpy

        plans = self.plans()
        check_image_values(volume.data, path=volume.path or None, scan_id=scan_id)
        source = orientation_code(volume.affine)
        data, affine = reorient(np.asarray(volume.data), volume.affine, self.folder.image_orientation)
        spacing = voxel_sizes(affine)
        check_model_grid(
            data.shape, spacing, orientation_code(affine), plans.plans_manager.transpose_forward,
            self._configuration_manager().spacing, path=volume.path or None, scan_id=scan_id,
        )
        array = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))[None].astype(np.float32)
        props = {"spacing": [spacing[2], spacing[1], spacing[0]]}
        with quiet_nnunet("preprocessing"):
            ppa = PreprocessAdapterFromNpy(
                [array], [None], [props], [None], plans.plans_manager, self.folder.dataset,
                self._configuration_manager(), num_threads_in_multithreaded=1, verbose=False,
            )
            dct = next(ppa)
        return PreparedImage(
            data=dct["data"],
            properties=dct["data_properties"],
            model_affine=affine,
            source_orientation=source,
            affine=volume.affine,
            header=volume.header,
            path=volume.path,
        )

    def infer(self, prepared: PreparedImage) -> PredictedLogits:
        """Device stage: the network's logits of a prepared image (on the CPU afterwards).

        One inference at a time per loaded predictor (its lock); the only stage that
        uses the GPU.
        """
        import torch

        entry = get_entry(self.key, self.folder)
        with entry.lock:
            previous = torch.get_num_threads()
            if self.settings.threads is not None:
                torch.set_num_threads(int(self.settings.threads))
            start = time.time()
            try:
                with quiet_nnunet("predicting"):
                    if self.settings.disagreement:
                        logits, disagreement = predict_members(
                            entry.predictor, prepared.data, self.plans().label_manager, self.folder.labels)
                    else:
                        logits = entry.predictor.predict_logits_from_preprocessed_data(prepared.data).cpu()
                        disagreement = None
            except RuntimeError as exc:
                msg = format_error(
                    f"nnU-Net prediction failed ({type(exc).__name__}: {exc})",
                    path=prepared.path or None,
                    expected=f"an image nnU-Net can run on {self.key.device}",
                    fix="on GPU out-of-memory use --device cpu (run: --segmenter-option device=cpu); otherwise check the image",
                )
                raise SegmentationError(msg, path=prepared.path or None) from exc
            finally:
                torch.set_num_threads(previous)
            end = time.time()
        return PredictedLogits(replace(prepared, data=None), logits, start, end, disagreement)

    def labels(self, predicted: PredictedLogits) -> np.ndarray:
        """CPU stage: nnU-Net's label map (uint8) on the input's voxel grid, from logits."""
        return self._labels(predicted, uncertainty=False)[0]

    def labels_with_uncertainty(self, predicted: PredictedLogits) -> tuple[np.ndarray, ScanUncertainty]:
        """:meth:`labels` (the same map) and the scan's uncertainty (:mod:`~cohort_sciseg.segment.uncertainty`)."""
        seg, found = self._labels(predicted, uncertainty=True)
        return seg, cast("ScanUncertainty", found)

    def _labels(self, predicted: PredictedLogits, *, uncertainty: bool) -> tuple[np.ndarray, ScanUncertainty | None]:
        import torch
        from nnunetv2.inference.export_prediction import (
            convert_predicted_logits_to_segmentation_with_correct_shape,
        )

        plans, p, found = self.plans(), predicted.prepared, None
        args = (predicted.logits, plans.plans_manager, self._configuration_manager(), plans.label_manager, p.properties)
        threads = int(self.settings.threads or torch.get_num_threads())
        with quiet_nnunet("resampling the prediction"):
            if uncertainty:
                seg, found = labels_and_uncertainty(*args, self.folder.labels, num_threads_torch=threads)
                if predicted.disagreement is not None:
                    found = replace(found, **predicted.disagreement)
            else:
                seg = convert_predicted_logits_to_segmentation_with_correct_shape(
                    *args, return_probabilities=False, num_threads_torch=threads)
        labels = np.transpose(np.asarray(seg), (2, 1, 0))
        back, _ = reorient(labels, p.model_affine, p.source_orientation)
        return np.ascontiguousarray(back, dtype=np.uint8), found

    def predict_labels(self, volume: Volume) -> np.ndarray:
        """nnU-Net's label map (uint8) of ``volume`` on its own voxel grid (SCT's path)."""
        return self.labels(self.infer(self.prepare(volume)))

    def segment_volume(
        self, volume: Volume, *, postprocessing: PostprocessOptions | None = None
    ) -> SegmentationResult:
        """Cord and lesion masks of ``volume`` (input grid), post-processed as asked."""
        return self.masks_from_labels(self.predict_labels(volume), volume.affine, postprocessing)

    def masks_from_labels(
        self, label_map: np.ndarray, affine: np.ndarray, postprocessing: PostprocessOptions | None = None
    ) -> SegmentationResult:
        """CPU stage: cord and lesion masks of a label map (:meth:`labels`), post-processed as asked.

        ``postprocessing=None``: the model's recommendation unless the settings say
        ``"none"`` (:meth:`effective_postprocessing`); ``affine`` gives the voxel sizes.
        """
        cord, lesion = self.folder.labels.split(label_map)
        post, _ = self.effective_postprocessing(postprocessing)
        cord, lesion = postprocess_masks(cord, lesion, voxel_sizes(affine), post)
        return SegmentationResult(label_map=label_map, cord=cord, lesion=lesion)

    def prepare_file(self, image: str | os.PathLike[str], *, scan_id: str | None = None) -> PreparedImage:
        """CPU stage of a file: read it safely and :meth:`prepare` it.

        Raises
        ------
        NiftiError
            The image cannot be read safely.
        """
        return self.prepare(load_nifti(image, scan_id=scan_id), scan_id=scan_id)

    def write_outputs(
        self,
        predicted: PredictedLogits,
        output_prefix: str | os.PathLike[str],
        *,
        postprocessing: PostprocessOptions | None = None,
        uncertainty: bool = False,
    ) -> SegmentationOutputs:
        """CPU stage: label map, split, post-process; write both masks with sidecars.

        Writes ``<prefix>_sc_seg.nii.gz`` and ``<prefix>_lesion_seg.nii.gz`` with the
        input's header (atomically) and their JSON sidecars. ``uncertainty``: the masks
        (``outputs.masks``) also carry the scan's uncertainty (the same masks).
        """
        p = predicted.prepared
        label_map, found = self._labels(predicted, uncertainty=uncertainty)
        result = replace(self.masks_from_labels(label_map, p.affine, postprocessing), uncertainty=found)
        cord_path, lesion_path = output_paths(Path(output_prefix))
        integrity = self.integrity()
        sidecar = generated_by(
            model_name=self.model_name,
            model_checksum=integrity.checksum,
            model_integrity=integrity.status,
            settings=self.settings_record(postprocessing),
            model_files=integrity.files if integrity.status != "verified" else None,
        )
        if self.folder.source is not None:
            # kept out of Settings: those key the run's resume records, the source does not change the masks
            sidecar["GeneratedBy"][0]["ModelSource"] = dict(self.folder.source)
        write_mask(cord_path, result.cord, p.header, p.affine)
        write_mask(lesion_path, result.lesion, p.header, p.affine)
        cord_json = write_sidecar(cord_path, with_description(sidecar, "spinal cord mask"))
        lesion_json = write_sidecar(lesion_path, with_description(sidecar, "lesion mask"))
        return SegmentationOutputs(cord_path, lesion_path, cord_json, lesion_json, masks=result)

    def segment_file(
        self,
        image: str | os.PathLike[str],
        output_prefix: str | os.PathLike[str] | None = None,
        *,
        postprocessing: PostprocessOptions | None = None,
        scan_id: str | None = None,
    ) -> SegmentationOutputs:
        """Segment a NIfTI file and write SCT's outputs with sidecars.

        Parameters
        ----------
        image
            ``.nii``/``.nii.gz`` image.
        output_prefix
            Writes ``<prefix>_sc_seg.nii.gz`` and ``<prefix>_lesion_seg.nii.gz``
            (default: the image path without extension, as SCT).
        postprocessing
            Post-processing; ``None``: what the model folder recommends in its
            manifest, else none (SCT's default). ``PostprocessOptions()``: none.
        scan_id
            Named in errors.

        Raises
        ------
        NiftiError
            The image cannot be read safely.
        SegmentationError
            The model cannot be loaded or run.
        """
        prefix = Path(output_prefix) if output_prefix is not None else default_prefix(image)
        predicted = self.infer(self.prepare_file(image, scan_id=scan_id))
        return self.write_outputs(predicted, prefix, postprocessing=postprocessing)

    # ----------------------------------------------- the batch runner's protocol

    def segment(self, image_path: str, out_prefix: str) -> tuple[str, str]:
        """Segmenter protocol: write both masks, return their paths."""
        out = self.segment_file(image_path, out_prefix)
        return str(out.cord), str(out.lesion)

    def finish(self, predicted: PredictedLogits, out_prefix: str) -> tuple[str, str]:
        """Staged segmenter protocol: :meth:`write_outputs`, return the mask paths."""
        return self.finish_masks(predicted, out_prefix)[:2]

    def finish_masks(self, predicted: PredictedLogits, out_prefix: str) -> tuple[str, str, SegmentationResult]:
        """:meth:`finish`, and the masks it wrote with the scan's uncertainty (the batch measures them in memory)."""
        out = self.write_outputs(predicted, out_prefix, uncertainty=True)
        return str(out.cord), str(out.lesion), cast("SegmentationResult", out.masks)
