"""nnU-Net v2 model folders in SCIseg's (and SCT's) layout: find, check, load.

A model folder, as SCT installs SCIseg's releases::

    <model>/model.json                         integrity manifest (ours; optional)
    <model>/nnUNetTrainer*__<plans>__3d_fullres/
        dataset.json  plans.json
        fold_0/checkpoint_final.pth  fold_1/...  (or fold_all/)

A model is named by a path to that folder (or to its trainer folder), ``"demo"``
(the bundled model) or ``"sct:lesion_sci_t2"``: the folder an installed SCT holds
(:mod:`cohort_sciseg.segment.sct`). :func:`find_model` reads the folder without
unpickling anything (folds, checkpoints, labels, orientation);
:mod:`cohort_sciseg.segment.loading` checks and loads what it found (plans,
checkpoints, network).
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
from cohort_sciseg.segment.manifest import MANIFEST_NAME
from cohort_sciseg.segment.sct import is_sct_spec, resolve_sct_model

__all__ = [
    "CHECKPOINT_FILES",
    "DEFAULT_IMAGE_ORIENTATION",
    "CheckpointChoice",
    "LabelSplit",
    "ModelFolder",
    "demo_model_path",
    "find_model",
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
    """The folder of ``model``: ``"demo"`` is the bundled model, ``"sct:..."`` a model of an
    installed SCT (:func:`~cohort_sciseg.segment.sct.resolve_sct_model`), anything else a path.

    Raises
    ------
    SegmentationError
        The folder does not exist (or SCT or its model is not found).
    """
    return _locate(model)[0]


def _locate(model: str | os.PathLike[str]) -> tuple[Path, dict[str, Any] | None]:
    """``(folder, provenance of an SCT model or None)`` of ``model``."""
    if is_sct_spec(model):
        found = resolve_sct_model(str(model))
        return found.path, found.record()
    if str(model) == "demo":
        path = demo_model_path()
        if not path.is_dir():
            msg = format_error(
                "the bundled demo model is not installed",
                path=path,
                expected="the package folder cohort_sciseg/models/demo (nnU-Net folder + model.json)",
                fix="reinstall cohort-sciseg, train it with `python -m cohort_sciseg.training --out "
                f"{path}`, or pass --model PATH to an nnU-Net v2 model folder (e.g. SCIseg's release)",
            )
            raise SegmentationError(msg, path=path)
        return path, None
    path = Path(model).expanduser()
    if not path.is_dir():
        msg = format_error(
            "model folder not found" if not path.exists() else "model path is not a folder",
            path=path,
            expected="an nnU-Net v2 results folder holding one nnUNetTrainer*__*__3d_fullres folder",
            fix="check the path, use --model sct:lesion_sci_t2 for the SCIseg model of an installed SCT, "
            "or --model demo",
        )
        raise SegmentationError(msg, path=path)
    return path.resolve(), None


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
    source
        Where the folder came from when a model string named it indirectly (an SCT
        model: :meth:`~cohort_sciseg.segment.sct.SctModel.record`); ``None`` for a path.
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
    source: dict[str, Any] | None = field(default=None, repr=False)

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


def trainer_folders(path: Path) -> list[Path]:
    """The ``nnUNetTrainer*__<plans>__<configuration>`` folders in ``path``, sorted (a model folder holds one)."""
    return sorted(p for p in path.glob(_TRAINER_GLOB) if p.is_dir())


def _trainer_dir(path: Path) -> tuple[Path, Path]:
    """``(manifest root, trainer folder)`` of a model folder or of a trainer folder."""
    if (path / "plans.json").is_file() and (path / "dataset.json").is_file():
        # Pointed at the trainer folder itself; the manifest, if any, is one level up.
        root = path.parent if (path.parent / MANIFEST_NAME).is_file() else path
        return root, path
    found = trainer_folders(path)
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
        ``"demo"``, ``"sct:lesion_sci_t2"`` (the model of an installed SCT), a model
        folder (holding one ``nnUNetTrainer*__*__*`` folder) or a trainer folder.
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
    path, source = _locate(model)
    root, trainer_dir = _trainer_dir(path)
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
        source=source,
    )


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
