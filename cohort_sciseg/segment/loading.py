"""Checking and loading a model folder: its manifest, its plans, its checkpoints and network.

:func:`load_plans` checks the manifest (:func:`~cohort_sciseg.segment.manifest.check_manifest`:
checkpoints are pickles, loading one runs code) and reads nnU-Net's plan managers, without
unpickling anything: enough to prepare and finish scans. :func:`load_network` then unpickles
the checkpoints and builds the network from the plans itself. nnU-Net's own loader looks the
trainer class up by name, which imports every trainer module and fails for anything but the
base ``nnUNetTrainer`` when torchvision cannot be imported (CPU-only torch); SCIseg's
checkpoints name custom trainers, so the network is built from ``plans.json`` directly, as
nnU-Net's ``nnUNetTrainer.build_network_architecture`` does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cohort_sciseg.errors import SegmentationError, format_error
from cohort_sciseg.segment.manifest import MANIFEST_NAME, ManifestCheck, check_manifest
from cohort_sciseg.segment.model import ModelFolder

__all__ = [
    "LoadedNetwork",
    "ModelPlans",
    "check_model",
    "load_network",
    "load_network_weights",
    "load_plans",
]

logger = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class LoadedNetwork:
    """A model's network, parameters and nnU-Net managers, ready for a predictor.

    Attributes
    ----------
    folder
        What was found on disk.
    integrity
        Manifest check done before unpickling (status, checksums).
    network
        The ``torch.nn.Module`` built from the plans (first fold's weights loaded).
    parameters
        One float32 state dict per fold (nnU-Net ensembles them by averaging logits).
    plans_manager, configuration_manager
        nnU-Net's managers of ``plans.json``.
    trainer_name
        Trainer named in the first checkpoint (recorded only; never looked up).
    mirroring_axes
        ``inference_allowed_mirroring_axes`` of the first checkpoint (``None``: not given).
    """

    folder: ModelFolder
    integrity: ManifestCheck
    network: Any
    parameters: list[dict[str, Any]]
    plans_manager: Any
    configuration_manager: Any
    trainer_name: str
    mirroring_axes: tuple[int, ...] | None


def _clean_state_dict(weights: Mapping[str, Any]) -> dict[str, Any]:
    """Strip ``torch.compile``/DDP prefixes and cast floating tensors to float32."""
    out = {}
    for key, value in weights.items():
        name = key
        for prefix in ("_orig_mod.", "module."):
            if name.startswith(prefix):
                name = name[len(prefix):]
        out[name] = value.float() if getattr(value, "is_floating_point", lambda: False)() else value
    return out


def load_network_weights(path: Path) -> dict[str, Any]:
    """float32 network weights of an nnU-Net checkpoint file, ``torch.compile``/DDP prefixes removed.

    Unpickles: only for files whose provenance is known (a manifest checked, or
    checkpoints this project wrote, e.g. to fine-tune from).
    """
    return _clean_state_dict(_load_checkpoint(path)["network_weights"])


def _load_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    try:
        # weights_only=False: nnU-Net checkpoints hold numpy objects; the manifest was
        # checked (or trusted) before we get here.
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        msg = format_error(
            f"cannot load the checkpoint ({type(exc).__name__}: {exc})",
            path=path,
            expected="an nnU-Net v2 checkpoint written by torch.save",
            fix="re-download or restore the checkpoint file",
        )
        raise SegmentationError(msg, path=path) from exc
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("network_weights"), Mapping):
        keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        msg = format_error(
            f"checkpoint has no 'network_weights' (found {keys!r})",
            path=path,
            expected="an nnU-Net v2 checkpoint (network_weights, init_args, trainer_name)",
            fix="use the checkpoint_final.pth / checkpoint_best.pth nnU-Net wrote",
        )
        raise SegmentationError(msg, path=path)
    return ckpt


def _configuration_name(folder: ModelFolder, ckpt: Mapping[str, Any]) -> str:
    init_args = ckpt.get("init_args")
    name = init_args.get("configuration") if isinstance(init_args, Mapping) else None
    return _known_configuration(folder, name or folder.configuration, "")


def _known_configuration(folder: ModelFolder, name: str, origin: str) -> str:
    """``name`` if ``plans.json`` has that configuration, else a clear error (``origin``: where the name came from)."""
    known = folder.plans.get("configurations", {})
    if name not in known:
        msg = format_error(
            f"configuration {name!r}{origin} not in plans.json",
            path=folder.trainer_dir / "plans.json",
            expected=f"one of {sorted(known)!r}",
            fix="use the plans.json that was trained with these checkpoints, in a folder named as nnU-Net names it",
        )
        raise SegmentationError(msg, path=folder.trainer_dir)
    return str(name)


def check_model(folder: ModelFolder, *, trust: bool = False) -> ManifestCheck:
    """The manifest check of a model folder, with a warning when it is unverified or trusted.

    Raises
    ------
    SegmentationError
        The files differ from ``model.json`` and ``trust`` is false.
    """
    integrity = check_manifest(folder.root, trust=trust)
    if integrity.status == "unverified":
        logger.warning(
            "model folder %s has no %s: accepted once, unverified; its checksums (model %s) are recorded "
            "in the outputs. Write a manifest with cohort_sciseg.segment.manifest.write_manifest to verify "
            "it from now on.",
            folder.root, MANIFEST_NAME, integrity.checksum[:12],
        )
    elif integrity.status == "trusted":
        logger.warning("model folder %s differs from its manifest (%s); trusted as asked",
                       folder.root, "; ".join(integrity.problems[:3]))
    return integrity


def load_network(folder: ModelFolder, *, trust: bool = False, plans: ModelPlans | None = None) -> LoadedNetwork:
    """Check the manifest, then unpickle the checkpoints and build the network.

    Parameters
    ----------
    folder
        From :func:`~cohort_sciseg.segment.model.find_model`.
    trust
        Accept files that differ from ``model.json`` (``--trust-model``).
    plans
        The folder's :func:`load_plans` when the caller has it (manifest and plans not read again).

    Raises
    ------
    SegmentationError
        Manifest mismatch (without ``trust``), unreadable checkpoint or plans, checkpoints of
        another configuration than the folder's, weights that do not fit the network of ``plans.json``.
    """
    if plans is None:
        plans = load_plans(folder, trust=trust)
    checkpoints = [_load_checkpoint(p) for p in folder.checkpoints]
    first = checkpoints[0]
    config_name = _configuration_name(folder, first)
    if config_name != folder.configuration:
        # preprocessing and export read the folder's configuration (ModelPlans): both must agree
        msg = format_error(
            f"the checkpoints were trained with configuration {config_name!r} but the trainer folder "
            f"names {folder.configuration!r}",
            path=folder.trainer_dir,
            expected="a trainer folder named <trainer>__<plans>__<configuration of its checkpoints>",
            fix=f"rename the folder to end in __{config_name}, as nnU-Net names it",
        )
        raise SegmentationError(msg, path=folder.trainer_dir)

    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

    config = plans.configuration_manager
    try:
        n_in = determine_num_input_channels(plans.plans_manager, config, folder.dataset)
        n_out = plans.label_manager.num_segmentation_heads
        network = get_network_from_plans(
            config.network_arch_class_name,
            config.network_arch_init_kwargs,
            config.network_arch_init_kwargs_req_import,
            n_in,
            n_out,
            allow_init=False,
            deep_supervision=False,
        )
    except (KeyError, TypeError, ValueError, ImportError, AttributeError, RuntimeError) as exc:
        msg = format_error(
            f"cannot build the network from plans.json ({type(exc).__name__}: {exc})",
            path=folder.trainer_dir / "plans.json",
            expected="nnU-Net v2 plans with an 'architecture' (network_class_name, arch_kwargs)",
            fix="use the plans.json of the model's release (nnU-Net >= 2.4 format)",
        )
        raise SegmentationError(msg, path=folder.trainer_dir) from exc
    parameters = [_clean_state_dict(c["network_weights"]) for c in checkpoints]
    for path, params in zip(folder.checkpoints, parameters, strict=True):
        try:
            network.load_state_dict(params)
        except RuntimeError as exc:
            msg = format_error(
                f"weights do not fit the network of plans.json ({str(exc).splitlines()[0]})",
                path=path,
                expected="checkpoints trained with this plans.json and dataset.json",
                fix="keep each model's plans.json, dataset.json and fold_* folders together",
            )
            raise SegmentationError(msg, path=path) from exc
    network.load_state_dict(parameters[0])
    network.eval()
    axes = first.get("inference_allowed_mirroring_axes")
    return LoadedNetwork(
        folder=folder,
        integrity=plans.integrity,
        network=network,
        parameters=parameters,
        plans_manager=plans.plans_manager,
        configuration_manager=config,
        trainer_name=str(first.get("trainer_name", "nnUNetTrainer")),
        mirroring_axes=None if axes is None else tuple(int(a) for a in axes),
    )


@dataclass(slots=True, eq=False)
class ModelPlans:
    """What preprocessing and export need of a model: its plans, not its network.

    Built without unpickling a checkpoint (only JSON is read, and the manifest checked),
    so that CPU workers that prepare and finish scans never load the network.

    Attributes
    ----------
    folder, integrity
        As in :class:`LoadedNetwork`.
    plans_manager, configuration_manager, label_manager
        nnU-Net's managers of ``plans.json`` / ``dataset.json`` for the folder's configuration.
    """

    folder: ModelFolder
    integrity: ManifestCheck
    plans_manager: Any
    configuration_manager: Any
    label_manager: Any


def load_plans(folder: ModelFolder, *, trust: bool = False) -> ModelPlans:
    """The manifest check and nnU-Net's plan managers of a model folder (no checkpoint unpickled).

    Raises
    ------
    SegmentationError
        Manifest mismatch (without ``trust``); the folder's configuration is not in
        ``plans.json``, or the plans cannot be read by nnU-Net.
    """
    integrity = check_model(folder, trust=trust)
    _known_configuration(folder, folder.configuration, " (from the trainer folder's name)")
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    try:
        plans_manager = PlansManager(folder.plans)
        config = plans_manager.get_configuration(folder.configuration)
        labels = plans_manager.get_label_manager(folder.dataset)
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        msg = format_error(
            f"nnU-Net cannot read plans.json / dataset.json ({type(exc).__name__}: {exc})",
            path=folder.trainer_dir / "plans.json",
            expected="nnU-Net v2 plans and dataset.json (nnU-Net >= 2.4 format)",
            fix="use the plans.json and dataset.json of the model's release",
        )
        raise SegmentationError(msg, path=folder.trainer_dir) from exc
    return ModelPlans(folder, integrity, plans_manager, config, labels)
