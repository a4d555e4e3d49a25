"""Filters of :func:`~cohort_sciseg.discover.find_scans`: labels, sessions, include/exclude lists."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from cohort_sciseg.discover._fs import MAX_TABLE_BYTES, read_regular
from cohort_sciseg.errors import DiscoveryError, format_error

__all__ = ["IdList", "normalize_labels", "read_id_list"]


def normalize_labels(labels: str | Iterable[str] | None, prefix: str) -> frozenset[str] | None:
    """Labels without their BIDS prefix (``"sub-01"`` and ``"01"`` both give ``"01"``).

    Parameters
    ----------
    labels
        One label, several, or ``None`` (no filter).
    prefix
        ``"sub-"`` or ``"ses-"``.

    Raises
    ------
    ValueError
        An empty label, or an empty list (which would select nothing).
    """
    if labels is None:
        return None
    items = [labels] if isinstance(labels, str) else list(labels)
    out = set()
    for item in items:
        text = str(item).strip()
        label = text[len(prefix) :] if text.startswith(prefix) else text
        if not label:
            msg = format_error(
                f"empty label {item!r} in the {prefix}* filter",
                expected=f"labels such as {prefix}01 or 01",
                fix="remove the empty entry, or pass None to keep every label",
            )
            raise ValueError(msg)
        out.add(label)
    if not out:
        msg = format_error(
            f"the {prefix}* filter is an empty list",
            expected="at least one label",
            fix="pass None to keep every label",
        )
        raise ValueError(msg)
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class IdList:
    """Scan ids of an include or exclude list.

    Attributes
    ----------
    ids
        The ids, in file order, without duplicates.
    source
        The file they were read from, or ``None`` for a list given in Python.
    """

    ids: tuple[str, ...]
    source: str | None = None


def read_id_list(
    value: str | os.PathLike[str] | Iterable[str] | None, *, what: str
) -> IdList | None:
    """Read an include/exclude list.

    Parameters
    ----------
    value
        A path (``str`` or path-like) of a text file with one scan id per line
        (blank lines and lines starting with ``#`` are ignored), a list of scan
        ids, or ``None``.
    what
        ``"include"`` or ``"exclude"``, for messages.

    Raises
    ------
    DiscoveryError
        The file does not exist, is not a regular file (a FIFO, a folder, a
        symlink loop, ...), is larger than
        :data:`~cohort_sciseg.discover._fs.MAX_TABLE_BYTES` or is not UTF-8 text.
    """
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if not os.path.lexists(path):
            msg = format_error(
                f"{what} list file not found",
                path=path,
                expected="a text file with one scan id per line",
                fix=f"check the path; to give scan ids directly pass a list, e.g. {what}=[{os.path.basename(path)!r}]",
            )
            raise DiscoveryError(msg, path=path)
        raw = read_regular(path, what=f"the {what} list", max_bytes=MAX_TABLE_BYTES)
        try:
            lines = raw.decode("utf-8-sig").splitlines()
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            msg = format_error(
                f"cannot read the {what} list: not UTF-8 text (line {line}, byte {raw[exc.start]:#04x})",
                path=path,
                expected="a UTF-8 text file with one scan id per line",
                fix="re-save the file as UTF-8 text",
            )
            raise DiscoveryError(msg, path=path) from None
        source: str | None = path
    else:
        lines = [str(v) for v in value]
        source = None
    ids = [s.strip() for s in lines]
    ids = [s for s in ids if s and not s.startswith("#")]
    return IdList(ids=tuple(dict.fromkeys(ids)), source=source)
