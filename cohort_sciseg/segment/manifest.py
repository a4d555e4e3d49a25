"""Integrity manifest of a model folder (``model.json``): sha256 of every file.

nnU-Net checkpoints are Python pickles: loading one runs code. A model folder
therefore carries ``model.json``, written when the model is made or first
trusted, listing the sha256 of each file; loading checks it and refuses a
mismatch unless the user explicitly trusts the folder (``--trust-model``).

``model.json``::

    {"format": "cohort-sciseg-model/1", "name": "...", "version": "...",
     "files": {"nnUNetTrainer__nnUNetPlans__3d_fullres/plans.json": "<sha256>", ...},
     ...extra keys (training settings, accuracy, source)...}

Paths are relative to the model folder, with forward slashes, sorted; the
manifest does not list itself. No torch here: this module only hashes files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cohort_sciseg.errors import SegmentationError, format_error
from cohort_sciseg.io import sha256_file, write_json

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "ManifestCheck",
    "check_manifest",
    "hash_folder",
    "sha256_file",
    "write_manifest",
]

MANIFEST_NAME = "model.json"
MANIFEST_FORMAT = "cohort-sciseg-model/1"
_SKIP = {MANIFEST_NAME, ".DS_Store"}


def hash_folder(model_dir: str | os.PathLike[str]) -> dict[str, str]:
    """``{relative path: sha256}`` of every file below ``model_dir`` (manifest excluded)."""
    root = Path(model_dir)
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name not in _SKIP and "__pycache__" not in path.parts:
            out[path.relative_to(root).as_posix()] = sha256_file(path)
    return out


def write_manifest(
    model_dir: str | os.PathLike[str], *, name: str, version: str = "", extra: Mapping[str, Any] | None = None
) -> Path:
    """Hash every file of ``model_dir`` and write ``model_dir/model.json`` (atomically)."""
    root = Path(model_dir)
    body: dict[str, Any] = {"format": MANIFEST_FORMAT, "name": name, "version": version}
    body.update(extra or {})
    body["files"] = hash_folder(root)
    return write_json(root / MANIFEST_NAME, body)


@dataclass(frozen=True, slots=True)
class ManifestCheck:
    """Outcome of :func:`check_manifest`.

    Attributes
    ----------
    status
        ``"verified"`` (manifest present, every file matches), ``"unverified"``
        (no manifest: the checksums below were computed now) or ``"trusted"``
        (mismatch accepted because the user trusted the folder).
    files
        ``{relative path: sha256}`` as found on disk now.
    manifest
        The manifest's content (empty without one).
    problems
        What differs (empty when verified).
    """

    status: str
    files: dict[str, str]
    manifest: dict[str, Any]
    problems: tuple[str, ...] = ()

    @property
    def checksum(self) -> str:
        """One sha256 over the sorted ``path:sha256`` lines: the model's identity in provenance."""
        lines = "\n".join(f"{p}:{h}" for p, h in sorted(self.files.items()))
        return hashlib.sha256(lines.encode()).hexdigest()


def check_manifest(model_dir: str | os.PathLike[str], *, trust: bool = False) -> ManifestCheck:
    """Check the files of ``model_dir`` against its ``model.json``.

    Raises
    ------
    SegmentationError
        A file is missing, extra or changed and ``trust`` is false; the message
        lists the files and says how to proceed.
    """
    root = Path(model_dir)
    files = hash_folder(root)
    path = root / MANIFEST_NAME
    if not path.is_file():
        return ManifestCheck("unverified", files, {})
    try:
        manifest = json.loads(path.read_text())
        listed = dict(manifest["files"])
    except (ValueError, KeyError, TypeError) as exc:
        msg = format_error(
            f"model manifest is unreadable ({exc})",
            path=path,
            expected=f"a JSON object with a 'files' mapping ({MANIFEST_FORMAT})",
            fix="restore model.json from the model's release, or delete it and pass --trust-model once "
            "(run: --segmenter-option trust_model=true)",
        )
        raise SegmentationError(msg, path=path) from exc
    problems = [f"missing: {p}" for p in sorted(set(listed) - set(files))]
    problems += [f"not in the manifest: {p}" for p in sorted(set(files) - set(listed))]
    problems += [f"changed: {p}" for p in sorted(set(files) & set(listed)) if files[p] != listed[p]]
    if not problems:
        return ManifestCheck("verified", files, manifest)
    if trust:
        return ManifestCheck("trusted", files, manifest, tuple(problems))
    msg = format_error(
        "model folder does not match its manifest: " + "; ".join(problems[:5])
        + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""),
        path=root,
        expected="the files listed in model.json with their sha256",
        fix="restore the model files, or pass --trust-model (run: --segmenter-option trust_model=true) if you "
        "know where they come from (checkpoints are pickles: loading one runs code)",
    )
    raise SegmentationError(msg, path=root)
