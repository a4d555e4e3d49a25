"""Checking the ``nnunet`` segmenter's options (``run --segmenter-option KEY=VALUE``) before any work.

The options are the fields of :class:`~cohort_sciseg.segment.engine.EngineSettings`;
:func:`check_settings` refuses unknown names and wrong types with a message that
lists the valid ones, then lets ``EngineSettings`` check the values. Cheap: loads
no model and imports no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from cohort_sciseg.errors import SegmentationError, format_error
from cohort_sciseg.segment.engine import EngineSettings

__all__ = ["check_settings"]

#: The type each option of :func:`check_settings` must have (values are checked by EngineSettings).
_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,), "folds": (tuple, list), "checkpoint": (str,), "device": (str,), "tta": (bool,),
    "tile_step_size": (int, float), "threads": (int, type(None)), "trust_model": (bool,),
    "postprocessing": (str,), "resampling": (str,), "disagreement": (bool,),
}


def check_settings(options: Mapping[str, Any]) -> EngineSettings:
    """The :class:`EngineSettings` of plugin options (``run --segmenter-option KEY=VALUE``), checked.

    Unknown names, wrong types (``tta=yes``) and bad values raise a
    :class:`~cohort_sciseg.errors.SegmentationError` naming the valid ones, before
    any model is loaded. ``folds`` may be ``"0,1"`` or a single fold, as the
    ``nnunet`` plugin takes it.
    """
    import difflib

    valid = [f.name for f in fields(EngineSettings)]
    opts = dict(options)
    for name in opts:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1)
            msg = format_error(f"unknown nnunet segmenter option {name!r}"
                               + (f" (did you mean {close[0]!r}?)" if close else ""),
                               expected=f"one of {', '.join(valid)}",
                               fix="correct the name (run: --segmenter-option NAME=VALUE), or drop it")
            raise SegmentationError(msg)
    if isinstance(opts.get("folds"), str | int) and not isinstance(opts["folds"], bool):
        opts["folds"] = tuple(str(opts["folds"]).split(","))
    for name, value in opts.items():
        types = _OPTION_TYPES.get(name, (object,))
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            wanted = "true or false" if bool in types else " or ".join(
                "None" if t is type(None) else t.__name__ for t in types)
            msg = format_error(f"nnunet segmenter option {name}={value!r} has the wrong type",
                               expected=wanted, fix=f"pass a valid value (run: --segmenter-option {name}=VALUE)")
            raise SegmentationError(msg)
    if opts.get("checkpoint", "auto") not in ("auto", "final", "best"):
        msg = format_error(f"checkpoint={opts['checkpoint']!r} is not valid", expected="'auto', 'final' or 'best'",
                           fix="pass --checkpoint auto, final or best (run: --segmenter-option checkpoint=final)")
        raise SegmentationError(msg)
    return EngineSettings(**opts)
