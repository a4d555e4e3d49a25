"""Training the demo model from a dataset written by ``cohort-sciseg export-nnunet`` (``--from-export``).

The export's training cases (``imagesTr``/``labelsTr``, already RPI with SCIseg's
labels) join the phantoms in the work folder's raw dataset as they are (copied, not
re-read); its test cases (``imagesTs``/``labelsTs``) are evaluated as held-out real
scans (kind ``"real"``, :mod:`~cohort_sciseg.training.evaluation`). nnU-Net trains the
demo's single fold with the export's fold 0 as validation (:func:`merge_export_split`):
the other training cases, phantoms included, train; no subject of the validation
fold or of the test set is trained on.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from cohort_sciseg.errors import SegmentationError, format_error
from cohort_sciseg.io import load_nifti, write_json
from cohort_sciseg.training.data import Case
from cohort_sciseg.training.settings import DATASET_JSON

__all__ = ["add_export_cases", "check_export", "export_test_cases", "merge_export_split"]

_FIX = "pass the Dataset<ID>_<NAME> folder written by `cohort-sciseg export-nnunet`"


def _fail(what: str, path: Path, expected: str) -> SegmentationError:
    return SegmentationError(format_error(what, path=path, expected=expected, fix=_FIX), path=path)


def check_export(export_dir: str | Path) -> Path:
    """The export folder, checked: ``dataset.json`` with SCIseg's labels, ``imagesTr``, ``labelsTr``, ``splits_final.json``.

    Raises
    ------
    SegmentationError
        A part is missing, or the labels are not SCIseg's.
    """
    root = Path(export_dir).expanduser().absolute()
    if not root.is_dir():
        raise _fail("the export folder does not exist", root, "an nnU-Net raw dataset folder")
    for part in ("dataset.json", "splits_final.json", "imagesTr", "labelsTr"):
        if not (root / part).exists():
            raise _fail(f"the export has no {part}", root,
                        "dataset.json, splits_final.json, imagesTr/ and labelsTr/")
    try:
        body = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
        folds = json.loads((root / "splits_final.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read the export's JSON files ({exc})", root, "valid JSON") from exc
    for key in ("labels", "regions_class_order", "channel_names", "file_ending"):
        if body.get(key) != DATASET_JSON[key]:
            raise _fail(f"dataset.json {key} is {body.get(key)!r}", root / "dataset.json",
                        f"SCIseg's {DATASET_JSON[key]!r}")
    if not (isinstance(folds, list) and folds and all(isinstance(f, dict) and "val" in f for f in folds)):
        raise _fail("splits_final.json holds no folds", root / "splits_final.json",
                    'a list of {"train": [...], "val": [...]}')
    return root


def add_export_cases(raw_dir: Path, export_dir: Path) -> list[str]:
    """Copy the export's training cases into the raw dataset ``raw_dir``; returns their ids.

    ``dataset.json``'s ``numTraining`` is raised by their number. A case id that is
    already in ``raw_dir`` (a phantom of the same name) is an error.
    """
    root = check_export(export_dir)
    ids = sorted(p.name[: -len(".nii.gz")] for p in (root / "labelsTr").glob("*.nii.gz"))
    for case in ids:
        for src, dst in ((root / "imagesTr" / f"{case}_0000.nii.gz", raw_dir / "imagesTr" / f"{case}_0000.nii.gz"),
                         (root / "labelsTr" / f"{case}.nii.gz", raw_dir / "labelsTr" / f"{case}.nii.gz")):
            if dst.exists():
                raise _fail(f"case {case!r} is already in the training set", dst, "distinct case ids")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    body = json.loads((raw_dir / "dataset.json").read_text(encoding="utf-8"))
    body["numTraining"] = int(body["numTraining"]) + len(ids)
    write_json(raw_dir / "dataset.json", body)
    return ids


def merge_export_split(preprocessed_dir: Path, export_dir: Path, *, fold: int = 0) -> dict[str, Any]:
    """Rewrite ``splits_final.json`` of the work folder: the export's fold ``fold`` validates, the rest trains.

    The work folder's cases (the phantoms and the export's training cases) all train
    except the export's validation cases of that fold. Returns the fold written.
    """
    folds = json.loads((check_export(export_dir) / "splits_final.json").read_text(encoding="utf-8"))
    if not 0 <= fold < len(folds):
        raise _fail(f"fold {fold} is not in splits_final.json ({len(folds)} folds)",
                    Path(export_dir), f"a fold in 0..{len(folds) - 1}")
    path = preprocessed_dir / "splits_final.json"
    keys = sorted({k for f in json.loads(path.read_text(encoding="utf-8")) for part in f.values() for k in part})
    val = sorted(set(folds[fold]["val"]) & set(keys))
    merged = {"train": [k for k in keys if k not in set(val)], "val": val}
    write_json(path, [merged])
    return merged


def export_test_cases(export_dir: Path) -> list[Case]:
    """The export's test cases (``imagesTs``/``labelsTs``) as held-out real cases for evaluation."""
    root = check_export(export_dir)
    manifest_path = root / "manifest.json"
    provenance: dict[str, str] = {}
    if manifest_path.is_file():
        for row in json.loads(manifest_path.read_text(encoding="utf-8")).get("cases", []):
            provenance[str(row["case_id"])] = f"{row['cord_provenance']}/{row['lesion_provenance']}"
    cases = []
    for lab in sorted((root / "labelsTs").glob("*.nii.gz")):
        case = lab.name[: -len(".nii.gz")]
        img = load_nifti(root / "imagesTs" / f"{case}_0000.nii.gz", scan_id=case)
        labels = load_nifti(lab, scan_id=case)
        cases.append(Case(
            name=f"export_{case}", image=np.asarray(img.data, dtype=np.float32),
            labels=np.asarray(labels.data, dtype=np.uint8), affine=np.asarray(img.affine, dtype=np.float64),
            kind="real", reference=f"export:{provenance.get(case, 'manual/manual')}",
        ))
    return cases
