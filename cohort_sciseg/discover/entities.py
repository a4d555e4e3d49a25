"""BIDS file names: entities, suffixes, site labels and safe scan ids.

BIDS file names are ``<key>-<label>[_<key>-<label>...]_<suffix><extension>``.
They are parsed here with :meth:`str.split`, not a regular expression per file,
because discovery parses every name of datasets with tens of thousands of scans.

Labels are kept raw (as written on disk) in every record field. Only the
:func:`scan_id` is encoded: every character outside ``[A-Za-z0-9]`` of a label
(including ``.``, ``%``, ``/``, spaces and quotes) is percent-encoded as UTF-8
bytes, so a scan id is always a safe single path component and two different
labels never share an encoding.
"""

from __future__ import annotations

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


def site_label(name: str) -> str:
    """Reduce ``name`` to BIDS alphanumerics (``"site_Zurich-2"`` -> ``"siteZurich2"``).

    Returns ``""`` when nothing is left; callers choose the fallback.
    """
    if _is_alnum(name):
        return name
    return "".join(ch for ch in name if ch in _ALNUM)


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
