"""nnU-Net v2 model folders in SCIseg's (and SCT's) layout: find, check, load.

A model folder, as SCT installs SCIseg's releases::

    <model>/model.json                         integrity manifest (ours; optional)
    <model>/nnUNetTrainer*__<plans>__3d_fullres/
        dataset.json  plans.json
        fold_0/checkpoint_final.pth  fold_1/...  (or fold_all/)

:func:`find_model` reads the folder without unpickling anything (folds,
checkpoints, labels, orientation); :func:`load_network` checks the manifest
first (:func:`~cohort_sciseg.segment.manifest.check_manifest`: checkpoints are
pickles, loading one runs code), then unpickles the checkpoints and builds the
network from the plans itself. nnU-Net's own loader looks the trainer class up
by name, which imports every trainer module and fails for anything but the base
``nnUNetTrainer`` when torchvision cannot be imported (CPU-only torch); SCIseg's
checkpoints name custom trainers, so the network is built from
``plans.json`` directly, as nnU-Net's ``nnUNetTrainer.build_network_architecture`` does.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cohort_sciseg.errors import GeometryError, SegmentationError, format_error
from cohort_sciseg.io import to_nibabel_axcodes
from cohort_sciseg.segment.manifest import MANIFEST_NAME, ManifestCheck, check_manifest

__all__ = [
    "CHECKPOINT_FILES",
    "DEFAULT_IMAGE_ORIENTATION",
    "CheckpointChoice",
    "LabelSplit",
    "LoadedNetwork",
    "ModelFolder",
    "ModelPlans",
    "check_model",
    "demo_model_path",
    "find_model",
    "load_network",
    "load_plans",
    "parse_labels",
    "resolve_model_path",
]

logger = logging.getLogger(__name__)

#: ``--checkpoint`` choices and their files; ``"auto"`` is final, else best (SCT's rule), per fold.
CHECKPOINT_FILES = {"final": "checkpoint_final.pth", "best": "checkpoint_best.pth"}
CheckpointChoice = Literal["auto", "final", "best"]
#: SCT's fallback when ``dataset.json`` has no ``image_orientation``.
DEFAULT_IMAGE_ORIENTATION = "LPI"

_TRAINER_GLOB = "nnUNetTrainer*__*__*"
_FOLD_RE = re.compile(r"^fold_(\d+|all)$")
_VALID_LAYOUTS = (
    '{"background": 0, "sc": [1, 2], "lesion": 2} with "regions_class_order": [1, 2] (SCIseg), '
    'or {"background": 0, "sc": 1, "lesion": 2}'
)


def demo_model_path() -> Path:
    """Folder of the bundled demo model (``cohort_sciseg/models/demo``; may not exist yet)."""
    return Path(__file__).resolve().parents[1] / "models" / "demo"


def resolve_model_path(model: str | os.PathLike[str]) -> Path:
    """The folder of ``model``: ``"demo"`` is the bundled model, anything else a path.

    Raises
    ------
    SegmentationError
        The folder does not exist.
    """
    if str(model) == "demo":
        path = demo_model_path()
        if not path.is_dir():
            msg = format_error(
                "the bundled demo model is not installed",
                path=path,
                expected="the package folder cohort_sciseg/models/demo (nnU-Net folder + model.json)",
                fix="reinstall cohort-sciseg, train it with `python -m cohort_sciseg.segment.train --out "
                f"{path}`, or pass --model PATH to an nnU-Net v2 model folder (e.g. SCIseg's release)",
            )
            raise SegmentationError(msg, path=path)
        return path
    path = Path(model).expanduser()
    if not path.is_dir():
        msg = format_error(
            "model folder not found" if not path.exists() else "model path is not a folder",
            path=path,
            expected="an nnU-Net v2 results folder holding one nnUNetTrainer*__*__3d_fullres folder",
            fix="check the path (SCT keeps SCIseg in $SCT_DIR/data/deepseg_models/), or use --model demo",
        )
        raise SegmentationError(msg, path=path)
    return path.resolve()


@dataclass(frozen=True, slots=True)
class LabelSplit:
    """How the label map predicted by nnU-Net splits into cord and lesion masks.

    Attributes
    ----------
    layout
        ``"regions"`` (SCIseg: sigmoid regions, ``regions_class_order``) or
        ``"labels"`` (softmax, one label per voxel).
    cord_values
        Output values that are cord. Lesion is inside the cord in both layouts, so
        these include the lesion value (SCT: cord = label >= 1).
    lesion_values
        Output values that are lesion.
    """

    layout: Literal["regions", "labels"]
    cord_values: tuple[int, ...]
    lesion_values: tuple[int, ...]

    def split(self, label_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boolean ``(cord, lesion)`` masks of a predicted label map."""
        return np.isin(label_map, self.cord_values), np.isin(label_map, self.lesion_values)


def _as_ints(value: Any) -> tuple[int, ...] | None:
    values = value if isinstance(value, list | tuple) else [value]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return None
    return tuple(int(v) for v in values)


def parse_labels(dataset: Mapping[str, Any], *, path: str | os.PathLike[str] | None = None) -> LabelSplit:
    """Read the cord/lesion split from a ``dataset.json``.

    Parameters
    ----------
    dataset
        Content of ``dataset.json``.
    path
        Named in errors.

    Raises
    ------
    SegmentationError
        The labels are not SCIseg's region layout nor the plain ``sc``/``lesion`` layout.
    """
    raw = dataset.get("labels")
    bad = None
    if not isinstance(raw, Mapping) or set(raw) != {"background", "sc", "lesion"}:
        bad = f"labels {raw!r}"
    elif raw["background"] != 0:
        bad = f"background label {raw['background']!r}"
    else:
        labels: dict[str, Any] = dict(raw)
        sc, lesion = _as_ints(labels["sc"]), _as_ints(labels["lesion"])
        order = dataset.get("regions_class_order")
        regions = isinstance(labels["sc"], list) or isinstance(labels["lesion"], list)
        foreground = [k for k in labels if k != "background"]
        if sc is None or lesion is None:
            bad = f"labels {labels!r}"
        elif regions:
            order_ints = _as_ints(order) if order is not None else None
            if order_ints is None or len(order_ints) != 2:
                bad = f"region labels {labels!r} with regions_class_order {order!r}"
            elif not set(lesion) <= set(sc):
                bad = f"lesion region {list(lesion)} not inside the cord region {list(sc)}"
            elif foreground != ["sc", "lesion"]:
                bad = f"regions in the order {foreground!r} (a later region overwrites an earlier one)"
            else:
                # nnU-Net writes regions_class_order[i] where region i is on, later regions
                # winning; regions follow the key order of "labels": sc, then lesion.
                return LabelSplit("regions", tuple(sorted(set(order_ints))), (order_ints[1],))
        elif order is not None:
            bad = f"plain labels {labels!r} with regions_class_order {order!r}"
        elif len(sc) == 1 and len(lesion) == 1 and sc != lesion and 0 not in (sc[0], lesion[0]):
            return LabelSplit("labels", tuple(sorted({sc[0], lesion[0]})), lesion)
        else:
            bad = f"labels {labels!r}"
    msg = format_error(
        f"unsupported label layout in dataset.json: {bad}",
        path=path,
        expected=_VALID_LAYOUTS,
        fix="use a SCIseg-style model (spinal cord + lesion); other nnU-Net models are not split into "
        "cord and lesion masks",
    )
    raise SegmentationError(msg, path=path)


@dataclass(frozen=True, slots=True)
class ModelFolder:
    """A model folder as found on disk (nothing unpickled yet).

    Attributes
    ----------
    root
        The folder the manifest covers (holds ``model.json`` when there is one).
    trainer_dir
        The ``nnUNetTrainer*__*__<configuration>`` folder.
    folds
        Fold names used (``"0"``, ``"1"``, ..., or ``"all"``).
    checkpoints
        One checkpoint file per fold.
    dataset
        ``dataset.json``.
    plans
        ``plans.json``.
    labels
        Cord/lesion split of the output.
    image_orientation
        SCT orientation code the model expects (``dataset.json``, else ``"LPI"`` as SCT).
    configuration
        nnU-Net configuration name (from the trainer folder name, e.g. ``3d_fullres``).
    """

    root: Path
    trainer_dir: Path
    folds: tuple[str, ...]
    checkpoints: tuple[Path, ...]
    dataset: dict[str, Any] = field(repr=False)
    plans: dict[str, Any] = field(repr=False)
    labels: LabelSplit
    image_orientation: str
    configuration: str

    @property
    def checkpoint_names(self) -> tuple[str, ...]:
        """File name of each fold's checkpoint."""
        return tuple(p.name for p in self.checkpoints)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        msg = format_error(
            f"{path.name} not found in the model's trainer folder",
            path=path,
            expected="dataset.json and plans.json beside the fold_* folders (nnU-Net v2 results layout)",
            fix="point --model at the unzipped release folder (it holds nnUNetTrainer*__*__3d_fullres/)",
        )
        raise SegmentationError(msg, path=path)
    try:
        obj = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        msg = format_error(
            f"cannot parse {path.name} ({exc})",
            path=path,
            expected="a JSON object",
            fix="restore the file from the model's release",
        )
        raise SegmentationError(msg, path=path) from exc
    if not isinstance(obj, dict):
        msg = format_error(f"{path.name} is a JSON {type(obj).__name__}", path=path, expected="a JSON object",
                           fix="restore the file from the model's release")
        raise SegmentationError(msg, path=path)
    return obj


def _trainer_dir(path: Path) -> tuple[Path, Path]:
    """``(manifest root, trainer folder)`` of a model folder or of a trainer folder."""
    if (path / "plans.json").is_file() and (path / "dataset.json").is_file():
        # Pointed at the trainer folder itself; the manifest, if any, is one level up.
        root = path.parent if (path.parent / MANIFEST_NAME).is_file() else path
        return root, path
    found = sorted(p for p in path.glob(_TRAINER_GLOB) if p.is_dir())
    if len(found) != 1:
        what = "no nnUNetTrainer*__*__* folder" if not found else (
            f"{len(found)} trainer folders ({', '.join(p.name for p in found)})"
        )
        msg = format_error(
            f"model folder holds {what}",
            path=path,
            expected="exactly one nnUNetTrainer*__<plans>__3d_fullres folder (as SCT requires)",
            fix="point --model at one trainer folder, or keep only one trainer folder in the model folder",
        )
        raise SegmentationError(msg, path=path)
    return path, found[0]


def _fold_dirs(trainer_dir: Path, folds: Sequence[int | str] | None) -> list[tuple[str, Path]]:
    available = {
        m.group(1): p for p in trainer_dir.iterdir() if p.is_dir() and (m := _FOLD_RE.match(p.name))
    }
    if folds is None:
        numeric = sorted((k for k in available if k != "all"), key=int)
        chosen = numeric or (["all"] if "all" in available else [])
        if not chosen:
            msg = format_error(
                "no fold_* folder in the trainer folder",
                path=trainer_dir,
                expected="fold_0, fold_1, ... or fold_all, each with checkpoint_final.pth",
                fix="unzip the whole model release, or point --model at the right folder",
            )
            raise SegmentationError(msg, path=trainer_dir)
    else:
        chosen = [str(f) for f in folds]
        missing = [f for f in chosen if f not in available]
        if missing or not chosen:
            msg = format_error(
                f"fold(s) {missing or chosen!r} not found",
                path=trainer_dir,
                expected=f"folds among {sorted(available, key=lambda k: (k == 'all', k))!r}",
                fix="pass --folds with available folds, or leave it out to ensemble all of them",
            )
            raise SegmentationError(msg, path=trainer_dir)
    return [(f, available[f]) for f in chosen]


def _checkpoint(fold_dir: Path, choice: CheckpointChoice) -> Path:
    names = [CHECKPOINT_FILES["final"], CHECKPOINT_FILES["best"]] if choice == "auto" else [
        CHECKPOINT_FILES[choice]
    ]
    for name in names:
        if (fold_dir / name).is_file():
            return fold_dir / name
    msg = format_error(
        f"no {' or '.join(names)} in {fold_dir.name}",
        path=fold_dir,
        expected="a trained nnU-Net v2 checkpoint per fold",
        fix="unzip the whole model release; --checkpoint auto takes checkpoint_final.pth, else "
        "checkpoint_best.pth",
    )
    raise SegmentationError(msg, path=fold_dir)


def find_model(
    model: str | os.PathLike[str],
    *,
    folds: Sequence[int | str] | None = None,
    checkpoint: CheckpointChoice = "auto",
) -> ModelFolder:
    """Find the trainer folder, folds, checkpoints, labels and orientation of a model.

    Nothing is unpickled here.

    Parameters
    ----------
    model
        ``"demo"``, a model folder (holding one ``nnUNetTrainer*__*__*`` folder) or a
        trainer folder.
    folds
        Folds to ensemble (``0``, ``"1"``, ``"all"``); ``None``: every ``fold_<k>``
        (``fold_all`` when there is no numbered fold), as SCT.
    checkpoint
        ``"final"``, ``"best"`` or ``"auto"`` (final, else best, per fold).

    Raises
    ------
    SegmentationError
        Missing/ambiguous trainer folder, missing folds or checkpoints, unreadable
        JSON, unsupported labels or orientation.
    """
    if checkpoint not in ("auto", *CHECKPOINT_FILES):
        msg = format_error(f"checkpoint {checkpoint!r} is not valid", expected="'auto', 'final' or 'best'",
                           fix="pass --checkpoint final or --checkpoint best")
        raise SegmentationError(msg)
    root, trainer_dir = _trainer_dir(resolve_model_path(model))
    dataset = _read_json(trainer_dir / "dataset.json")
    plans = _read_json(trainer_dir / "plans.json")
    labels = parse_labels(dataset, path=trainer_dir / "dataset.json")
    orientation = dataset.get("image_orientation", DEFAULT_IMAGE_ORIENTATION)
    try:
        to_nibabel_axcodes(orientation)
    except GeometryError as exc:
        msg = format_error(
            f"image_orientation {orientation!r} in dataset.json is not valid",
            path=trainer_dir / "dataset.json",
            expected="an SCT orientation code such as 'RPI' or 'LPI'",
            fix="correct image_orientation (or remove it: SCT then uses LPI)",
        )
        raise SegmentationError(msg, path=trainer_dir / "dataset.json") from exc
    fold_dirs = _fold_dirs(trainer_dir, folds)
    configuration = trainer_dir.name.split("__")[-1]
    return ModelFolder(
        root=root,
        trainer_dir=trainer_dir,
        folds=tuple(f for f, _ in fold_dirs),
        checkpoints=tuple(_checkpoint(d, checkpoint) for _, d in fold_dirs),
        dataset=dataset,
        plans=plans,
        labels=labels,
        image_orientation=str(orientation),
        configuration=configuration,
    )


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


def load_network(
    folder: ModelFolder, *, trust: bool = False, integrity: ManifestCheck | None = None
) -> LoadedNetwork:
    """Check the manifest, then unpickle the checkpoints and build the network.

    Parameters
    ----------
    folder
        From :func:`find_model`.
    trust
        Accept files that differ from ``model.json`` (``--trust-model``).
    integrity
        The folder's :func:`check_model` result when the caller has it (not checked again).

    Raises
    ------
    SegmentationError
        Manifest mismatch (without ``trust``), unreadable checkpoint, weights that do
        not fit the network of ``plans.json``.
    """
    if integrity is None:
        integrity = check_model(folder, trust=trust)
    checkpoints = [_load_checkpoint(p) for p in folder.checkpoints]
    first = checkpoints[0]
    config_name = _configuration_name(folder, first)
    if config_name != folder.configuration and folder.configuration in folder.plans.get("configurations", {}):
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
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    try:
        plans_manager = PlansManager(folder.plans)
        config = plans_manager.get_configuration(config_name)
        n_in = determine_num_input_channels(plans_manager, config, folder.dataset)
        n_out = plans_manager.get_label_manager(folder.dataset).num_segmentation_heads
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
        integrity=integrity,
        network=network,
        parameters=parameters,
        plans_manager=plans_manager,
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


def plain_unet_stages(features: Sequence[int]) -> dict[str, Any]:
    """Stage layout of a 3D PlainConvUNet: one stage per feature count, 3^3 kernels, stride 2 below the top."""
    n = len(features)
    return {
        "n_stages": n,
        "features_per_stage": [int(f) for f in features],
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3]] * n,
        "strides": [[1, 1, 1]] + [[2, 2, 2]] * (n - 1),
        "n_conv_per_stage": [2] * n,
        "n_conv_per_stage_decoder": [2] * (n - 1),
    }
