"""Segmenter plugins: what the runner calls to turn an image into cord and lesion masks.

A segmenter is named by a :class:`SegmenterSpec`: a plugin name registered in the
``cohort_sciseg.segmenters`` entry-point group (``nnunet``, the default, is
SCIseg's engine) or an import path ``"package.module:Factory"``, plus options.
Only the spec travels to the workers; each worker process builds the segmenter
once (:func:`get_segmenter`, a per-process cache) and reuses it for every scan,
so a loaded model never goes through the scheduler.

A segmenter implements::

    describe() -> {"name": str, "checksum": str, "settings": dict}
    segment(image_path: str, out_prefix: str) -> (cord_path, lesion_path)

``segment`` writes ``<out_prefix>_sc_seg.nii.gz`` and ``<out_prefix>_lesion_seg.nii.gz``
(atomically) on the image's grid and returns their paths.

A *staged* segmenter (the ``nnunet`` engine) also splits ``segment`` where the
device is used, so that the runner can keep a GPU busy while CPU threads prepare
and finish other scans::

    prepare_file(image_path, scan_id=...) -> prepared   # CPU: read, reorient, preprocess
    infer(prepared) -> predicted                        # device; has .started/.finished
    finish(predicted, out_prefix) -> (cord_path, lesion_path)  # CPU: resample, write

``prepared`` and ``predicted`` must be picklable (Dask may move them between the
workers of one scan's stages).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol, TypeGuard, runtime_checkable

from cohort_sciseg.errors import SegmentationError, format_error

__all__ = [
    "ENTRY_POINT_GROUP",
    "Segmenter",
    "SegmenterSpec",
    "StagedSegmenter",
    "check_options",
    "get_segmenter",
    "is_staged",
    "resolve_factory",
]

ENTRY_POINT_GROUP = "cohort_sciseg.segmenters"

#: Plugins of this package (also registered as entry points in pyproject.toml).
BUILTIN = {
    "nnunet": "cohort_sciseg.batch.nnunet:NnunetSegmenter",
    "copy-manual": "cohort_sciseg.batch.standin:CopyManualSegmenter",
}


@runtime_checkable
class Segmenter(Protocol):
    """What the runner needs from a segmenter."""

    def describe(self) -> dict[str, Any]: ...

    def segment(self, image_path: str, out_prefix: str) -> tuple[str, str]: ...


@runtime_checkable
class StagedSegmenter(Segmenter, Protocol):
    """A segmenter whose work is split where the device is used."""

    def prepare_file(self, image_path: str, *, scan_id: str | None = None) -> Any: ...

    def infer(self, prepared: Any) -> Any: ...

    def finish(self, predicted: Any, out_prefix: str) -> tuple[str, str]: ...


def is_staged(segmenter: object) -> TypeGuard[StagedSegmenter]:
    """Whether ``segmenter`` offers the staged protocol (:class:`StagedSegmenter`)."""
    return isinstance(segmenter, StagedSegmenter)


@dataclass(frozen=True, slots=True)
class SegmenterSpec:
    """A segmenter by name and options (small, hashable, picklable)."""

    plugin: str = "nnunet"
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def make(cls, plugin: str = "nnunet", **options: Any) -> SegmenterSpec:
        return cls(plugin, tuple(sorted(options.items())))

    @property
    def options_dict(self) -> dict[str, Any]:
        return dict(self.options)


def resolve_factory(plugin: str) -> Callable[..., Segmenter]:
    """The factory of a plugin name or ``module:attr`` path."""
    target = plugin
    if ":" not in plugin:
        found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        if plugin in found:
            return found[plugin].load()
        if plugin not in BUILTIN:
            known = sorted({*found, *BUILTIN})
            msg = format_error(
                f"unknown segmenter {plugin!r}",
                expected=f"one of {known} or a 'package.module:Factory' path",
                fix="check the name, or install the package that registers it",
            )
            raise SegmentationError(msg)
        target = BUILTIN[plugin]
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        msg = format_error(
            f"cannot import segmenter {target!r}: {exc}",
            expected="an importable 'package.module:Factory'",
            fix="install the plugin's package on every worker",
        )
        raise SegmentationError(msg) from exc


#: Option checkers of built-in factories that take ``**options`` (a plugin's factory may carry its own
#: ``check_options(options: dict) -> None`` attribute instead).
_CHECKERS = {"cohort_sciseg.batch.nnunet:NnunetSegmenter": "cohort_sciseg.segment.options:check_settings"}


def check_options(spec: SegmenterSpec) -> None:
    """Refuse unknown option names (and, where the plugin checks them, bad values) of ``spec``.

    Cheap and done before any work (``run`` calls it before discovery): the plugin's
    factory is imported, not called. A factory with named parameters is checked
    against them; one that takes ``**options`` by its ``check_options`` attribute, or
    the built-in checker of ``nnunet``
    (:func:`~cohort_sciseg.segment.options.check_settings`); otherwise not at all.
    """
    factory = resolve_factory(spec.plugin)
    options = spec.options_dict
    checker = getattr(factory, "check_options", None)
    target = _CHECKERS.get(f"{getattr(factory, '__module__', '')}:{getattr(factory, '__qualname__', '')}")
    if checker is None and target is not None:
        module, _, attr = target.partition(":")
        checker = getattr(importlib.import_module(module), attr)
    if callable(checker):
        checker(options)
        return
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # no signature to read (a C type): the factory will say
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    valid = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for name in options:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1)
            msg = format_error(
                f"segmenter {spec.plugin!r} has no option {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
                expected=f"one of {', '.join(valid)}" if valid else "no options",
                fix="correct the name (run: --segmenter-option NAME=VALUE; --model is an nnunet option), or drop it",
            )
            raise SegmentationError(msg)


_cache: dict[SegmenterSpec, Segmenter] = {}
_lock = threading.Lock()


def get_segmenter(spec: SegmenterSpec) -> Segmenter:
    """The segmenter of ``spec`` in this process, built on first use and then reused."""
    with _lock:
        seg = _cache.get(spec)
        if seg is None:
            seg = resolve_factory(spec.plugin)(**spec.options_dict)
            _cache[spec] = seg
        return seg


def describe(spec: SegmenterSpec, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``describe()`` of the spec's segmenter (built in this process)."""
    d = dict(get_segmenter(spec).describe())
    d.update(overrides or {})
    return d
