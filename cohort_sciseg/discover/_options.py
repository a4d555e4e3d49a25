"""Validation of the options of :func:`~cohort_sciseg.discover.find_scans`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from cohort_sciseg.discover.entities import encode_label
from cohort_sciseg.errors import format_error

__all__ = ["ON_PROBLEM", "Suffixes", "check_options"]

ON_PROBLEM = ("record", "raise")


@dataclass(frozen=True, slots=True)
class Suffixes:
    """The file suffixes (exact or :mod:`fnmatch` patterns) of each kind of file in ``derivatives/labels``."""

    cords: tuple[str, ...]
    lesions: tuple[str, ...]
    verts: tuple[str, ...]
    discs: tuple[str, ...]


def _as_suffixes(value: str | Sequence[str], what: str) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else tuple(value)
    for s in items:
        if not isinstance(s, str) or not s or "/" in s or os.sep in s:
            msg = format_error(
                f"{what} contains {s!r}",
                expected="non-empty file-name suffixes such as 'seg-manual', or fnmatch patterns "
                "such as 'label-disc*'",
                fix=f"pass {what} as a tuple of strings, e.g. ('seg-manual', 'label-SC_seg')",
            )
            raise ValueError(msg)
    return items


def check_options(
    on_problem: str,
    image_suffix: str,
    max_workers: int | None,
    cord_suffixes: str | Sequence[str],
    lesion_suffixes: str | Sequence[str],
    vertebral_suffixes: str | Sequence[str],
    disc_suffixes: str | Sequence[str],
) -> Suffixes:
    """Validate the options of :func:`~cohort_sciseg.discover.find_scans`; return the suffixes.

    Raises
    ------
    ValueError
        An unknown ``on_problem``, an ``image_suffix`` that is not BIDS
        alphanumerics, ``max_workers`` not ``None`` or >= 1, an empty suffix or
        one holding a path separator, or a suffix given for two kinds of file.
    """
    if on_problem not in ON_PROBLEM:
        msg = format_error(
            f"on_problem={on_problem!r} is not a valid policy",
            expected=f"one of {ON_PROBLEM!r}",
            fix="use 'record' to collect problems and go on, or 'raise' to stop at the first",
        )
        raise ValueError(msg)
    if (
        not isinstance(image_suffix, str)
        or not image_suffix
        or encode_label(image_suffix) != image_suffix
    ):
        msg = format_error(
            f"image_suffix={image_suffix!r} is not a BIDS suffix",
            expected="letters and digits only, e.g. 'T2w'",
            fix="pass image_suffix='T2w'",
        )
        raise ValueError(msg)
    if max_workers is not None and (
        isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
    ):
        msg = format_error(
            f"max_workers={max_workers!r} is not valid",
            expected="None (automatic) or an integer >= 1",
            fix="pass max_workers=None, 1 (serial) or e.g. 8",
        )
        raise ValueError(msg)
    kinds = (
        ("cord", _as_suffixes(cord_suffixes, "cord_suffixes")),
        ("lesion", _as_suffixes(lesion_suffixes, "lesion_suffixes")),
        ("vertebral", _as_suffixes(vertebral_suffixes, "vertebral_suffixes")),
        ("disc", _as_suffixes(disc_suffixes, "disc_suffixes")),
    )
    for i, (a, first) in enumerate(kinds):
        for b, second in kinds[i + 1 :]:
            shared = sorted(set(first) & set(second))
            if shared:
                msg = format_error(
                    f"suffixes {shared!r} are both {a} and {b} suffixes",
                    expected=f"disjoint {a}_suffixes and {b}_suffixes",
                    fix="remove them from one of the two lists",
                )
                raise ValueError(msg)
    return Suffixes(*(s for _, s in kinds))
