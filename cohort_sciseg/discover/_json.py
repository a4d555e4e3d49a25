"""JSON files of a dataset (sidecars, ``dataset_description.json``), read so that none can stop discovery.

:func:`read_json` turns every way such a file can be bad into one
:class:`DiscoveryError`: not a regular file or too large (see
:func:`~cohort_sciseg.discover._fs.read_regular`), not UTF-8, not JSON, an
integer too long for Python to convert, nesting deep enough to exhaust the
parser's recursion (``"[" * 100000``), nesting deeper than :data:`MAX_DEPTH`
(the metadata is later written back with :func:`json.dumps`, which recurses
too) and text that is not valid Unicode (a lone ``\\udXXX`` escape, which the
Parquet tables cannot hold).
"""

from __future__ import annotations

import json
from typing import Any

from cohort_sciseg.discover._fs import MAX_JSON_BYTES, printable, read_regular
from cohort_sciseg.errors import DiscoveryError, format_error

__all__ = ["MAX_DEPTH", "read_json"]

#: Deepest nesting of objects and lists accepted; BIDS metadata is a few levels deep.
MAX_DEPTH = 64


def _error(path: str, what: str, *, expected: str, fix: str) -> DiscoveryError:
    msg = format_error(what, path=printable(path), expected=expected, fix=fix)
    return DiscoveryError(msg, path=printable(path))


def _problem(obj: Any) -> str | None:
    """Why ``obj`` cannot be kept (too deep, not valid Unicode), walked without recursion."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return f"text {item[:40]!r} is not valid Unicode (a lone surrogate escape such as \\ud800)"
            continue
        if isinstance(item, dict):
            children = [*item.keys(), *item.values()]
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            return f"objects and lists are nested more than {MAX_DEPTH} levels deep"
        stack.extend((child, depth + 1) for child in children)
    return None


def read_json(path: str, *, what: str, expected: str, fix: str) -> Any:
    """The parsed content of the JSON file ``path``.

    Parameters
    ----------
    path
        The file.
    what
        Its role for messages (``"the sidecar"``, ``"dataset_description.json"``).
    expected
        What it should hold, for messages (``"a JSON object (BIDS sidecar)"``).
    fix
        The fix for a file that is not valid JSON.

    Raises
    ------
    DiscoveryError
        Whatever is wrong with the file (see the module docstring); the message
        names the path, the problem (line and column for a syntax error) and a fix.
    """
    raw = read_regular(path, what=what, max_bytes=MAX_JSON_BYTES)
    reason: str | None
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        reason = f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        reason = f"not UTF-8 text (line {line}, byte {raw[exc.start]:#04x})"
    except RecursionError:
        reason = "nested too deeply for the JSON parser (thousands of [ or { in a row)"
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        reason = f"not readable JSON ({exc})"
    else:
        reason = _problem(obj)
        if reason is None:
            return obj
    raise _error(path, f"cannot read {what}: {reason}", expected=expected, fix=fix)
