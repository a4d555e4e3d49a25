"""What identifies the work on one scan: its content, the model and the settings.

A scan's *key* is the sha256 of a small JSON document holding the sha256 of every
input file (image, manual cord and lesion masks, vertebral labels), the NLI
slice values of the sidecar and ``participants.tsv`` when present, the model checksum, the
settings of every stage and the tool version. A re-run skips a scan whose
committed record has the same key, and redoes it when any of these changed (a
re-exported image, corrected manual masks, another model, other options).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cohort_sciseg._version import __version__
from cohort_sciseg.io import sha256_file
from cohort_sciseg.morphometry.files import NLI_PARTICIPANTS_COLUMN, NLI_SIDECAR_KEY
from cohort_sciseg.records import Scan

__all__ = ["key_document", "scan_key"]

KEY_LENGTH = 24


def key_document(scan: Scan, *, model_checksum: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs of the key (written next to each record, for provenance)."""
    files = {"image": sha256_file(scan.image_path)}
    if scan.cord_mask_path:
        files["manual_cord"] = sha256_file(scan.cord_mask_path)
    if scan.lesion_mask_path:
        files["manual_lesion"] = sha256_file(scan.lesion_mask_path)
    # Entries only when present, so the keys of scans without them do not change.
    if scan.vert_labels_path:
        files["vert_labels"] = sha256_file(scan.vert_labels_path)
    if scan.disc_labels_path:
        files["disc_labels"] = sha256_file(scan.disc_labels_path)
    extra = {}
    nli = {k: v for k, v in scan.sidecar if k == NLI_SIDECAR_KEY}
    nli |= {k: v for k, v in scan.participant if k == NLI_PARTICIPANTS_COLUMN}
    if nli:
        extra["nli"] = nli
    return {
        "scan_id": scan.scan_id,
        "files": files,
        "model": model_checksum,
        "settings": dict(settings),
        "tool": __version__,
        **extra,
    }


def scan_key(document: Mapping[str, Any]) -> str:
    """Short hex digest of a key document (stable: sorted keys, no whitespace)."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]
