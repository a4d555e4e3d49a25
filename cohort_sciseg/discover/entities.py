"""BIDS file names: entities, suffixes, site labels and safe scan ids.

BIDS file names are ``<key>-<label>[_<key>-<label>...]_<suffix><extension>``.
They are parsed here with :meth:`str.split`, not a regular expression per file,
because discovery parses every name of datasets with tens of thousands of scans.

Labels are kept raw (as written on disk) in every record field. Only the
:func:`scan_id` is encoded: every character outside ``[A-Za-z0-9]`` of a label
(including ``.``, ``%``, ``/``, spaces and quotes) is percent-encoded as UTF-8
bytes, so a scan id is always a safe single path component and two different
labels never share an encoding.

Site labels (:func:`site_label`) are reduced to BIDS alphanumerics and never
look like a number, a boolean or a date to a Parquet reader: the run tables
are hive-partitioned by site (``tables/<table>/site=<site>/``) and pandas,
pyarrow, DuckDB and polars infer the partition column's type from the folder
names, so a site ``001`` would come back as the integer ``1``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cohort_sciseg.records import AcquisitionPlane

__all__ = [
    "NIFTI_EXTENSIONS",
    "acq_plane",
    "encode_label",
    "parse_name",
    "scan_id",
    "site_label",
    "split_extension",
]

#: Image extensions discovery accepts, longest first.
NIFTI_EXTENSIONS = (".nii.gz", ".nii")

_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

Entities = tuple[tuple[str, str], ...]


def _is_alnum(text: str) -> bool:
    # str.isalnum accepts non-ASCII letters and digits; BIDS alphanumerics are ASCII only.
    return text.isascii() and text.isalnum()


def encode_label(label: str) -> str:
    """Percent-encode every character of ``label`` outside ``[A-Za-z0-9]``.

    Parameters
    ----------
    label
        A raw BIDS label (or key, or suffix).

    Returns
    -------
    str
        ``label`` unchanged when it is BIDS alphanumeric, else with each other
        character replaced by ``%XX`` for each of its UTF-8 bytes (``"a b"`` ->
        ``"a%20b"``, ``".."`` -> ``"%2E%2E"``, ``"%"`` -> ``"%25"``).
    """
    if _is_alnum(label):
        return label
    out = []
    for ch in label:
        if ch in _ALNUM:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


# Prefix that keeps a site label from reading as a number, boolean or date.
_SITE_PREFIX = "site"

# Alphanumeric labels that hive-partition type inference reads as something other than
# a string (checked with pyarrow 26, polars 2.1, DuckDB 2.0): integers (all readers;
# "001" becomes 1), hexadecimal and binary literals (pyarrow, DuckDB), exponent floats
# such as "1e5" (polars), and words that polars reads as float or boolean or DuckDB as
# a date ("epoch" is 1970-01-01). Octal is included because it costs nothing.
_NON_STRING = re.compile(r"[0-9]+(?:[eE][0-9]+)?|0[xX][0-9A-Fa-f]+|0[bB][01]+|0[oO][0-7]+")
_NON_STRING_WORDS = frozenset({"inf", "infinity", "nan", "true", "false", "epoch"})


def _reads_as_non_string(label: str) -> bool:
    return _NON_STRING.fullmatch(label) is not None or label.lower() in _NON_STRING_WORDS


def site_label(name: str) -> str:
    """Site label of a dataset folder name or a ``participants.tsv`` ``site`` value.

    ``name`` is reduced to BIDS alphanumerics (``"site_Zurich-2"`` -> ``"siteZurich2"``).
    A reduced label that a Parquet reader would take for a number, a boolean or a
    date when it reads the run tables (hive-partitioned by site) is prefixed with
    ``"site"``: purely numeric labels (``"001"`` -> ``"site001"``, ``"2"`` ->
    ``"site2"``), exponent numbers (``"1e5"`` -> ``"site1e5"``), hexadecimal,
    binary and octal literals (``"0x1F"`` -> ``"site0x1F"``) and, in any case,
    ``inf``, ``infinity``, ``nan``, ``true``, ``false`` and ``epoch``
    (``"NaN"`` -> ``"siteNaN"``). Digits are kept as written, so ``"001"``,
    ``"01"`` and ``"1"`` stay three different sites.

    Parameters
    ----------
    name
        The raw name.

    Returns
    -------
    str
        The label, or ``""`` when no letter or digit is left (callers choose the
        fallback).
    """
    label = name if _is_alnum(name) else "".join(ch for ch in name if ch in _ALNUM)
    if label and _reads_as_non_string(label):
        return _SITE_PREFIX + label
    return label


def split_extension(
    name: str, extensions: Sequence[str] = NIFTI_EXTENSIONS
) -> tuple[str, str] | None:
    """Split ``name`` into ``(stem, extension)`` for the first matching extension, else ``None``."""
    for ext in extensions:
        if name.endswith(ext):
            return name[: -len(ext)], ext
    return None


def parse_name(stem: str) -> tuple[Entities, str] | None:
    """Entities and suffix of a BIDS file name without its extension.

    Parameters
    ----------
    stem
        E.g. ``"sub-01_ses-02_acq-sag_T2w"``.

    Returns
    -------
    (entities, suffix) or None
        ``((("sub", "01"), ("ses", "02"), ("acq", "sag")), "T2w")``; ``None`` when
        the name is not ``key-label`` pairs followed by a suffix (an empty key or
        label, a part without ``-``, a repeated key, or an empty suffix). A label
        may contain ``-`` (only the first ``-`` of a part separates the key).
    """
    parts = stem.split("_")
    suffix = parts[-1]
    if not suffix or "-" in suffix:
        return None
    entities = []
    seen = set()
    for part in parts[:-1]:
        key, sep, label = part.partition("-")
        if not sep or not key or not label or key in seen:
            return None
        seen.add(key)
        entities.append((key, label))
    return tuple(entities), suffix


def scan_id(site: str, entities: Entities, suffix: str) -> str:
    """Site-qualified, filename-safe scan id: ``site-<site>_<encoded BIDS stem>``.

    Keys, labels and the suffix are each percent-encoded with :func:`encode_label`;
    the ``-`` and ``_`` that join them are kept, so the id reads like the BIDS stem.
    """
    pieces = [f"site-{encode_label(site)}"]
    pieces.extend(f"{encode_label(k)}-{encode_label(v)}" for k, v in entities)
    pieces.append(encode_label(suffix))
    return "_".join(pieces)


def acq_plane(acq: str | None) -> AcquisitionPlane | None:
    """Acquisition plane named by an ``acq`` label, else ``None``.

    ``sag*`` -> ``"sagittal"``; ``ax*`` or ``tra*`` -> ``"axial"``; ``cor*`` ->
    ``"coronal"`` (case-insensitive, so ``acq-sagCerv`` and ``acq-axial`` work).
    """
    if not acq:
        return None
    low = acq.lower()
    if low.startswith("sag"):
        return "sagittal"
    if low.startswith(("ax", "tra")):
        return "axial"
    if low.startswith("cor"):
        return "coronal"
    return None
