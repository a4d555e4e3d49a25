"""JSON sidecars and the BIDS inheritance principle.

A sidecar ``[<key>-<label>_...]<suffix>.json`` applies to an image when its
suffix is the image's suffix and its entities are a subset of the image's
entities (same keys with the same labels). Sidecars can sit at four levels:
the dataset root (``T2w.json``, ``acq-sag_T2w.json``), the subject folder, the
session folder and the datatype folder (``anat/``, where the file-level sidecar
``<image stem>.json`` lives). The applicable files are merged from the farthest
level to the closest; within one level, files with fewer entities come first,
so the most specific file wins for every key it sets.

Each file is read once per discovery (:class:`SidecarCache`) and a broken file
is reported once, however many scans it would apply to.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cohort_sciseg.discover._json import read_json
from cohort_sciseg.discover.entities import Entities, parse_name
from cohort_sciseg.errors import DiscoveryError, format_error

__all__ = [
    "LEVEL_DATASET",
    "LEVEL_DATATYPE",
    "LEVEL_SESSION",
    "LEVEL_SUBJECT",
    "MergedSidecar",
    "SidecarCache",
    "SidecarFile",
    "applies",
    "merge_sidecars",
    "parse_field_strength",
    "sidecar_file",
]

#: Inheritance levels, farthest (weakest) first.
LEVEL_DATASET, LEVEL_SUBJECT, LEVEL_SESSION, LEVEL_DATATYPE = 0, 1, 2, 3

_JSON_FIX = (
    "fix the JSON syntax (check it with `python -m json.tool FILE`) or remove the file; "
    "the scans it applies to are kept without its metadata"
)
_EXPECTED = "a JSON object (BIDS sidecar)"


@dataclass(frozen=True, slots=True)
class SidecarFile:
    """A candidate sidecar: where it is, its level and its entities.

    Attributes
    ----------
    path
        The JSON file.
    level
        :data:`LEVEL_DATASET` ... :data:`LEVEL_DATATYPE`.
    entities
        Entities of its name, e.g. ``(("acq", "sag"),)`` for ``acq-sag_T2w.json``.
    """

    path: str
    level: int
    entities: Entities

    @property
    def order(self) -> tuple[int, int, str]:
        """Merge order: level, then number of entities, then name (deterministic)."""
        return (self.level, len(self.entities), self.path)


def sidecar_file(name: str, path: str, level: int, suffix: str) -> SidecarFile | None:
    """The :class:`SidecarFile` for a file ``name`` when it is a ``<suffix>`` sidecar, else ``None``."""
    if not name.endswith(".json"):
        return None
    parsed = parse_name(name[:-5])
    if parsed is None or parsed[1] != suffix:
        return None
    return SidecarFile(path=path, level=level, entities=parsed[0])


def applies(sidecar: SidecarFile, image_entities: Mapping[str, str]) -> bool:
    """Whether every entity of ``sidecar`` is an entity of the image with the same label."""
    return all(image_entities.get(k) == v for k, v in sidecar.entities)


@dataclass
class SidecarCache:
    """Parsed sidecars by path; broken files are reported once in :attr:`problems`.

    Attributes
    ----------
    problems
        One :class:`DiscoveryError` per unreadable file or bad value, in the order
        found; the caller drains it.
    """

    _data: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    _reported: set[tuple[str, str]] = field(default_factory=set)
    problems: list[DiscoveryError] = field(default_factory=list)

    def load(self, path: str) -> dict[str, Any] | None:
        """The JSON object in ``path``, or ``None`` (and a problem, once) when unreadable.

        Unreadable covers anything :func:`~cohort_sciseg.discover._json.read_json`
        refuses (not a regular file, a symlink loop, too large, not UTF-8, not
        JSON, nested too deeply), and JSON that is not an object.
        """
        try:
            return self._data[path]
        except KeyError:
            pass
        data: dict[str, Any] | None = None
        try:
            obj = read_json(path, what="the sidecar", expected=_EXPECTED, fix=_JSON_FIX)
        except DiscoveryError as exc:
            self._add(path, exc)
        else:
            if isinstance(obj, dict):
                data = obj
            else:
                self.report(path, f"sidecar holds a JSON {type(obj).__name__}, not an object")
        self._data[path] = data
        return data

    def report(
        self, path: str, what: str, *, expected: str | None = None, fix: str = _JSON_FIX
    ) -> None:
        """Record a problem with ``path`` unless the same one was recorded already."""
        msg = format_error(what, path=path, expected=expected or _EXPECTED, fix=fix)
        self._add(path, DiscoveryError(msg, path=path), key=what)

    def _add(self, path: str, exc: DiscoveryError, *, key: str | None = None) -> None:
        marker = (path, str(exc) if key is None else key)
        if marker not in self._reported:
            self._reported.add(marker)
            self.problems.append(exc)


@dataclass(frozen=True, slots=True)
class MergedSidecar:
    """The metadata of one image after inheritance.

    Attributes
    ----------
    values
        Merged key/value pairs (closest file wins).
    path
        The most specific applicable sidecar that could be read, or ``None``.
    sources
        For each key, the file its value comes from.
    """

    values: dict[str, Any]
    path: str | None
    sources: dict[str, str]


def merge_sidecars(
    candidates: Iterable[SidecarFile], image_entities: Mapping[str, str], cache: SidecarCache
) -> MergedSidecar:
    """Merge the sidecars of ``candidates`` that apply to an image (BIDS inheritance).

    Parameters
    ----------
    candidates
        Sidecars found at the image's dataset, subject, session and datatype levels.
    image_entities
        The image's entities as a mapping (``{"sub": "01", "acq": "sag"}``).
    cache
        Where parsed files are kept and problems recorded.
    """
    chosen = sorted((c for c in candidates if applies(c, image_entities)), key=lambda c: c.order)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = None
    for c in chosen:
        data = cache.load(c.path)
        if data is None:
            continue
        values.update(data)
        sources.update(dict.fromkeys(data, c.path))
        path = c.path
    return MergedSidecar(values=values, path=path, sources=sources)


def parse_field_strength(value: Any) -> float | None:
    """``MagneticFieldStrength`` in tesla as a float, or ``None`` when it is not a positive number.

    Accepts numbers and numeric strings with an optional ``T`` unit (``"3"``,
    ``"1.5T"``, ``"3 T"``), since converters other than dcm2niix write those.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text[-1:] in ("T", "t"):
            text = text[:-1].strip()
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) and number > 0 else None
