"""The per-process cache of loaded nnU-Net predictors (one per model and settings).

Predictors are expensive (checkpoint unpickling, network construction), so each
process keeps the loaded ones in a small LRU cache keyed by :class:`EngineKey`;
engines fetch theirs from here on every call and hold no predictor themselves.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohort_sciseg.errors import SegmentationError, format_error
from cohort_sciseg.segment.loading import (
    LoadedNetwork,
    ModelPlans,
    check_model,
    load_network,
    load_plans,
)
from cohort_sciseg.segment.manifest import ManifestCheck
from cohort_sciseg.segment.model import ModelFolder
from cohort_sciseg.segment.quiet import quiet_nnunet

__all__ = [
    "CACHE_SIZE",
    "EngineKey",
    "LoadedPredictor",
    "cache_info",
    "clear_cache",
    "device_choice",
    "get_entry",
    "get_plans",
    "require_device",
    "resampling_device",
]

logger = logging.getLogger(__name__)

#: Loaded predictors kept per process (least recently used dropped first).
CACHE_SIZE = 2


@dataclass(frozen=True, slots=True)
class EngineKey:
    """Identity of a loaded predictor in the per-process cache."""

    model_dir: str
    folds: tuple[str, ...]
    checkpoints: tuple[str, ...]
    device: str
    tta: bool
    tile_step_size: float
    trust_model: bool


@dataclass(eq=False)
class LoadedPredictor:
    """A loaded network and its nnU-Net predictor; ``lock`` serialises inference on it."""

    loaded: LoadedNetwork
    predictor: Any
    lock: threading.Lock = field(default_factory=threading.Lock)


_cache: OrderedDict[EngineKey, LoadedPredictor] = OrderedDict()
_cache_lock = threading.Lock()
_stats = {"loads": 0, "hits": 0}
#: plans of each model folder (folder, folds, checkpoints, trust): small, kept for the process
_plans: dict[tuple[str, tuple[str, ...], tuple[str, ...], bool], ModelPlans] = {}


def get_plans(folder: ModelFolder, *, trust: bool) -> ModelPlans:
    """The model's plans and manifest check, once per process (no checkpoint unpickled)."""
    key = (str(folder.trainer_dir), folder.folds, folder.checkpoint_names, bool(trust))
    with _cache_lock:
        found = _plans.get(key)
    if found is None:
        with quiet_nnunet("reading the model's plans"):
            found = load_plans(folder, trust=trust)
        with _cache_lock:
            found = _plans.setdefault(key, found)
    return found


_integrity: dict[tuple[str, bool], ManifestCheck] = {}


def get_integrity(folder: ModelFolder, *, trust: bool) -> ManifestCheck:
    """The model folder's manifest check, once per process, without nnU-Net or torch.

    What :meth:`SegmentationEngine.describe` needs: a client learns the model's
    name, checksum and recommended post-processing without loading nnU-Net.
    """
    key = (str(folder.root), bool(trust))
    with _cache_lock:
        found = _integrity.get(key)
    if found is None:
        found = check_model(folder, trust=trust)
        with _cache_lock:
            found = _integrity.setdefault(key, found)
    return found


def cache_info() -> dict[str, int]:
    """``{"loads", "hits", "size"}`` of this process's predictor cache."""
    with _cache_lock:
        return {**_stats, "size": len(_cache)}


def clear_cache() -> None:
    """Drop every loaded predictor of this process and reset the counters."""
    with _cache_lock:
        _cache.clear()
        _plans.clear()
        _integrity.clear()
        _stats.update(loads=0, hits=0)


def _torch_built_with_cuda() -> bool:
    """Whether the installed torch is a CUDA build, read from ``torch/version.py`` without importing torch.

    A CPU build never sees a GPU (``torch.cuda.is_available()`` is False), so the
    answer is exact when this says no; a CUDA build (or an unreadable file) asks torch.
    """
    spec = importlib.util.find_spec("torch")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        match = re.search(r"^cuda\b[^=]*=\s*(.+)$", _read(Path(folder) / "version.py"), re.MULTILINE)
        if match:
            return match.group(1).strip() not in ("None", "''", '""')
    return True


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _cuda_available() -> bool:
    if not _torch_built_with_cuda():  # saves the torch import (1.5 s) where no GPU can be used
        return False
    import torch

    return bool(torch.cuda.is_available())


def device_choice(choice: str) -> str:
    """``"auto"`` resolved (CUDA when torch sees it); ``"cuda"`` kept, checked when the network loads."""
    if choice == "auto":
        return "cuda" if _cuda_available() else "cpu"
    return choice


def require_device(device: str) -> None:
    """A clear error where the model's device is CUDA and this process has none."""
    if device == "cuda" and not _cuda_available():
        import torch

        msg = format_error(
            f"device 'cuda' requested but torch {torch.__version__} sees no CUDA device",
            expected="a CUDA GPU and a CUDA build of torch",
            fix="use --device cpu or auto (run: --segmenter-option device=cpu), or install the CUDA build of torch here",
        )
        raise SegmentationError(msg)


def resampling_device(device: str) -> str:
    """Where torch resampling runs: the model's device, or the CPU where it is missing (CPU workers)."""
    return device if device == "cpu" or _cuda_available() else "cpu"


def _build_predictor(loaded: LoadedNetwork, key: EngineKey) -> Any:
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    device = torch.device(key.device)
    with quiet_nnunet("creating the predictor"):
        predictor = nnUNetPredictor(
            tile_step_size=key.tile_step_size,
            use_gaussian=True,
            use_mirroring=key.tta,
            perform_everything_on_device=device.type == "cuda",
            device=device,
            verbose=False,
            verbose_preprocessing=False,
            allow_tqdm=False,
        )
        predictor.manual_initialization(
            loaded.network,
            loaded.plans_manager,
            loaded.configuration_manager,
            loaded.parameters,
            loaded.folder.dataset,
            loaded.trainer_name,
            loaded.mirroring_axes,
        )
    return predictor


def get_entry(key: EngineKey, folder: ModelFolder) -> LoadedPredictor:
    with _cache_lock:
        entry = _cache.get(key)
        if entry is not None:
            _cache.move_to_end(key)
            _stats["hits"] += 1
            return entry
    # Loading happens outside the cache lock (it can take seconds); two threads racing on
    # the same key both load, and the second result wins: correct, only wasteful.
    require_device(key.device)
    plans = get_plans(folder, trust=key.trust_model)
    with quiet_nnunet("loading the model"):
        loaded = load_network(folder, trust=key.trust_model, plans=plans)
    entry = LoadedPredictor(loaded, _build_predictor(loaded, key))
    with _cache_lock:
        _cache[key] = entry
        _cache.move_to_end(key)
        _stats["loads"] += 1
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    logger.info("loaded model %s (folds %s, %s) on %s", folder.root, ",".join(key.folds),
                ",".join(key.checkpoints), key.device)
    return entry
