"""A corrected cohort as an nnU-Net v2 raw dataset, built as SCIseg's was (``cohort-sciseg export-nnunet``).

Which scans
    Those whose cord and lesion masks are manual: the masks discovery reads in each
    dataset's ``derivatives/labels``. A mask that came back from the ratings loop
    (:func:`cohort_sciseg.report.prepare_corrections` wrote it with a JSON sidecar
    naming the prediction it was copied from and that file's sha256) is ``corrected``
    when its bytes differ from that prediction, and is skipped as "not corrected yet"
    when they do not. With ``qc_run`` and ``ratings``, a scan rated *pass* in the QC
    report of that run also comes in with the run's predictions for the structures
    it has no manual mask of (``predicted-qc-pass``). Every other scan is listed in
    the manifest as skipped, with the reason.

Labels and images
    SCIseg's labels: 0 background, 1 cord without lesion, 2 lesion (``uint8``;
    :func:`~cohort_sciseg.training.data.label_map`); ``dataset.json`` declares the
    regions ``sc = [1, 2]``, ``lesion = 2`` with ``regions_class_order [1, 2]``. A
    lesion voxel outside the (manual) cord mask is kept as 2, which makes it cord
    for the ``sc`` region, as SCIseg's own conversion did; the manifest counts these
    voxels per case (``lesion_voxels_outside_cord``) so they can be reviewed. Images
    and labels are reoriented to RPI (SCT's orientation, nibabel's ``('L', 'A',
    'S')``) by axis permutation and flips only: the voxel values are unchanged
    (float64 images, i.e. scaled ones, are written as float32, nnU-Net's working
    type), the affine maps every voxel to the same world position, and the image's
    header fields are kept.

Layout (``<out_dir>/Dataset<ID>_<name>/``, ``out_dir`` being an ``nnUNet_raw`` folder)::

    imagesTr/<case>_0000.nii.gz   labelsTr/<case>.nii.gz     training subjects (dataset.json numTraining)
    imagesTs/<case>_0000.nii.gz   labelsTs/<case>.nii.gz     held-out test subjects (as SCIseg's release)
    dataset.json                                             SCIseg's, plus name, description, numTest
    splits_final.json                                        cross-validation folds over imagesTr
    manifest.json                                            every case and every skipped scan

nnU-Net reads only ``imagesTr``/``labelsTr`` for planning and training and ignores
the rest. Its planner (``nnUNetv2_plan_and_preprocess``) copies a ``splits_final.json``
found in the raw dataset folder into ``nnUNet_preprocessed/Dataset<ID>_<name>/``, so
training uses these subject-grouped folds instead of drawing its own, case-level,
random ones. The test subjects never enter ``imagesTr`` so that no training or fold
selection can see them (see :mod:`~cohort_sciseg.training.splits`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cohort_sciseg._version import __version__
from cohort_sciseg.discover import find_scans
from cohort_sciseg.errors import CohortSciSegError, SegmentationError, format_error
from cohort_sciseg.io import (
    binarize,
    check_same_geometry,
    load_nifti,
    nifti_stem,
    orientation_code,
    save_nifti,
    sha256_file,
    write_json,
)
from cohort_sciseg.records import Scan
from cohort_sciseg.training.data import dataset_json, label_map, to_rpi
from cohort_sciseg.training.splits import SplitCase, Splits, split_by_subject

__all__ = [
    "MANIFEST_FILE",
    "ExportCase",
    "ExportResult",
    "Provenance",
    "SkippedScan",
    "case_id_of",
    "check_dataset_id",
    "check_dataset_name",
    "dataset_folder_name",
    "export_nnunet",
    "mask_provenance",
    "select_cases",
]

logger = logging.getLogger(__name__)

Provenance = Literal["manual", "corrected", "predicted-qc-pass"]
#: The export's record of every case and skipped scan, in the dataset folder.
MANIFEST_FILE = "manifest.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_STRUCTURES = ("cord", "lesion")


@dataclass(frozen=True, slots=True)
class ExportCase:
    """A scan chosen for the export, with the masks its labels come from.

    ``cord_provenance`` and ``lesion_provenance`` are ``"manual"``, ``"corrected"``
    (a manual mask that came back corrected from the ratings loop) or
    ``"predicted-qc-pass"`` (the run's prediction of a scan rated pass).
    """

    case_id: str
    scan_id: str
    site: str
    sub: str
    ses: str | None
    image_path: str
    cord_mask_path: str
    lesion_mask_path: str
    cord_provenance: Provenance
    lesion_provenance: Provenance


@dataclass(frozen=True, slots=True)
class SkippedScan:
    """A scan left out of the export, with why."""

    scan_id: str
    site: str
    sub: str
    ses: str | None
    image_path: str
    reason: str


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What :func:`export_nnunet` wrote.

    Attributes
    ----------
    dataset_dir
        ``<out_dir>/Dataset<ID>_<name>``.
    cases
        The manifest rows of the exported cases (train and test).
    skipped
        Scans left out, with the reason.
    splits
        The test set and the cross-validation folds.
    """

    dataset_dir: Path
    cases: tuple[dict[str, Any], ...]
    skipped: tuple[SkippedScan, ...]
    splits: Splits

    @property
    def n_train(self) -> int:
        """Cases in ``imagesTr``."""
        return len(self.splits.train)

    @property
    def n_test(self) -> int:
        """Cases in ``imagesTs``."""
        return len(self.splits.test)


# --------------------------------------------------------------------------- names


def check_dataset_id(dataset_id: int | str) -> int:
    """The nnU-Net dataset id as an int in 1..999 (written with three digits, ``Dataset501_...``).

    Raises
    ------
    SegmentationError
        Not an integer from 1 to 999.
    """
    text = str(dataset_id).strip()
    if isinstance(dataset_id, bool) or not re.fullmatch(r"\d{1,3}", text) or int(text) == 0:
        msg = format_error(
            f"dataset id {dataset_id!r} is not valid",
            expected="an nnU-Net dataset id of at most 3 digits, 1 to 999 (e.g. 501: Dataset501_<name>)",
            fix="pass --dataset-id with a free id such as 501 (nnU-Net reserves no range; the demo "
            "model uses 901)",
        )
        raise SegmentationError(msg)
    return int(text)


def check_dataset_name(name: str) -> str:
    """The dataset name, checked: letters, digits, ``_`` and ``-``, starting with a letter or digit."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        msg = format_error(
            f"dataset name {name!r} is not valid",
            expected="letters, digits, '_' and '-' only, starting with a letter or digit "
            "(nnU-Net folder Dataset<ID>_<name>)",
            fix="pass e.g. --name SCIsegCorrected",
        )
        raise SegmentationError(msg)
    return name


def dataset_folder_name(dataset_id: int | str, name: str) -> str:
    """``Dataset<ID>_<name>`` with the id on three digits, as nnU-Net names dataset folders."""
    return f"Dataset{check_dataset_id(dataset_id):03d}_{check_dataset_name(name)}"


def case_id_of(scan: Scan) -> str:
    """The nnU-Net case id of a scan: ``<site>_<BIDS entities>`` (without the suffix).

    E.g. ``site1_sub-01_ses-01_acq-sag`` for ``site-site1_sub-01_ses-01_acq-sag_T2w``;
    any character other than letters, digits, ``_`` and ``-`` (percent-encoded labels)
    becomes ``x``. Deterministic, so exports of the same cohort share case ids.
    """
    entities = "_".join(f"{k}-{v}" for k, v in scan.entities) or Path(nifti_stem(scan.image_path)).name
    return _UNSAFE.sub("x", f"{scan.site}_{entities}")


# --------------------------------------------------------------------------- which scans


def mask_provenance(path: str | os.PathLike[str]) -> tuple[Provenance | None, str | None]:
    """``("manual" | "corrected", None)``, or ``(None, reason)`` for a copied prediction never corrected.

    A mask written by the ratings loop has a JSON sidecar ``<mask stem>.json`` with
    ``SourceSHA256``, the sha256 of the prediction it was copied from: a mask with
    other bytes has been corrected; one with the same bytes is still the prediction.
    Without such a sidecar the mask is manual.
    """
    mask = Path(path)
    sidecar = mask.with_name(nifti_stem(mask) + ".json")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
    except (OSError, ValueError):
        meta = {}
    source = meta.get("SourceSHA256") if isinstance(meta, dict) else None
    if not isinstance(source, str):
        return "manual", None
    if sha256_file(mask) == source:
        return None, (f"{mask.name} is the prediction copied by `ratings prepare` and not corrected yet "
                      "(same sha256 as its source)")
    return "corrected", None


def _qc_passed(qc_run: Path, ratings: Path) -> dict[str, dict[str, Any]]:
    """The scans rated pass: ``scan_id -> worklist row`` (predicted mask paths absolute)."""
    from cohort_sciseg.report.ratings import worklist

    rows = worklist(ratings, qc_run, ratings_to_fix=("pass",))
    return {str(r["scan_id"]): r for r in rows.to_dict("records")}


def _text(value: Any) -> str | None:
    """A worklist cell as text; missing (None, NaN) and empty cells as None."""
    return None if value is None or value != value or value == "" else str(value)


def _skip(scan: Scan, reason: str) -> SkippedScan:
    return SkippedScan(scan.scan_id, scan.site, scan.sub, scan.ses, scan.image_path, reason)


def select_cases(
    scans: Iterable[Scan], *, qc_passed: dict[str, dict[str, Any]] | None = None
) -> tuple[list[ExportCase], list[SkippedScan]]:
    """Choose the scans to export and the masks of each (see the module docstring).

    Parameters
    ----------
    scans
        Scan records from :func:`cohort_sciseg.discover.find_scans`.
    qc_passed
        ``scan_id -> {"cord_seg_path": ..., "lesion_seg_path": ...}`` of the scans
        rated pass (predictions used where a manual mask is missing); None: none.

    Returns
    -------
    (cases, skipped)
        In the order of ``scans``.
    """
    cases: list[ExportCase] = []
    skipped: list[SkippedScan] = []
    passed = qc_passed or {}
    for scan in scans:
        chosen: dict[str, tuple[str, Provenance]] = {}
        reasons: list[str] = []
        for structure in _STRUCTURES:
            manual = getattr(scan, f"{structure}_mask_path")
            if manual is not None:
                prov, why = mask_provenance(manual)
                if prov is not None:
                    chosen[structure] = (str(manual), prov)
                    continue
                reasons.append(str(why))
            else:
                reasons.append(f"no manual {structure} mask")
            pred = passed.get(scan.scan_id, {}).get(f"{structure}_seg_path")
            if isinstance(pred, str) and pred and Path(pred).is_file():
                chosen[structure] = (pred, "predicted-qc-pass")
        if len(chosen) < len(_STRUCTURES):
            if scan.scan_id in passed:
                reasons.append("rated pass, but the run has no predicted mask for it")
            skipped.append(_skip(scan, "; ".join(reasons)))
            continue
        cases.append(ExportCase(
            case_id=case_id_of(scan), scan_id=scan.scan_id, site=scan.site, sub=scan.sub, ses=scan.ses,
            image_path=scan.image_path,
            cord_mask_path=chosen["cord"][0], lesion_mask_path=chosen["lesion"][0],
            cord_provenance=chosen["cord"][1], lesion_provenance=chosen["lesion"][1],
        ))
    _check_unique(cases)
    return cases, skipped


def _check_unique(cases: Sequence[ExportCase]) -> None:
    seen: dict[str, str] = {}
    for c in cases:
        if c.case_id in seen:
            msg = format_error(
                f"scans {seen[c.case_id]!r} and {c.scan_id!r} get the same case id {c.case_id!r}",
                scan_id=c.scan_id,
                expected="scan ids that stay distinct once reduced to letters, digits, '_' and '-'",
                fix="rename one of the files' entity labels, or leave one out with discovery's --exclude",
            )
            raise SegmentationError(msg, scan_id=c.scan_id)
        seen[c.case_id] = c.scan_id


# --------------------------------------------------------------------------- writing


def _write_case(case: ExportCase, images: Path, labels: Path) -> dict[str, Any]:
    """Load, check, relabel, reorient and write one case; its manifest facts."""
    vol = load_nifti(case.image_path, scan_id=case.scan_id)
    masks = {}
    for structure in _STRUCTURES:
        mask = load_nifti(getattr(case, f"{structure}_mask_path"), scan_id=case.scan_id)
        check_same_geometry(vol, mask, what=f"{structure} mask", scan_id=case.scan_id)
        masks[structure] = binarize(mask.data)
    lab = label_map(masks["cord"], masks["lesion"])
    outside = int(np.count_nonzero(masks["lesion"] & ~masks["cord"]))
    data = vol.data.astype(np.float32) if vol.data.dtype == np.float64 else vol.data
    image, affine = to_rpi(data, vol.affine)
    lab_rpi, _ = to_rpi(lab, vol.affine)
    header = vol.header.copy()
    header.set_dim_info(None, None, None)  # the frequency/phase/slice axes moved with the reorientation
    save_nifti(images / f"{case.case_id}_0000.nii.gz", image, affine, header=header)
    save_nifti(labels / f"{case.case_id}.nii.gz", lab_rpi, affine, dtype=np.uint8)
    return {
        "source_orientation": orientation_code(vol.affine),
        "shape_rpi": [int(n) for n in image.shape],
        "cord_voxels": int(np.count_nonzero(lab_rpi >= 1)),
        "lesion_voxels": int(np.count_nonzero(lab_rpi == 2)),
        "lesion_voxels_outside_cord": outside,
        "image_sha256": sha256_file(case.image_path),
        "cord_mask_sha256": sha256_file(case.cord_mask_path),
        "lesion_mask_sha256": sha256_file(case.lesion_mask_path),
    }


def _prepare_target(out_dir: Path, folder: str, dataset_id: int, overwrite: bool) -> Path:
    """The dataset folder to write; refuses a non-empty one (without ``overwrite``) and id clashes."""
    target = out_dir / folder
    if out_dir.exists() and not out_dir.is_dir():
        msg = format_error("OUT_DIR is a file", path=out_dir, expected="a folder (nnUNet_raw)",
                           fix="pass a folder")
        raise SegmentationError(msg, path=out_dir)
    if target.exists() and any(target.iterdir()) and not overwrite:
        msg = format_error(
            "the dataset folder exists and is not empty", path=target,
            expected="a new or empty dataset folder",
            fix="pass --overwrite to replace it, or another --dataset-id/--name",
        )
        raise SegmentationError(msg, path=target)
    prefix = f"Dataset{dataset_id:03d}_"
    clash = sorted(p.name for p in out_dir.glob(prefix + "*") if p.is_dir() and p.name != folder) \
        if out_dir.is_dir() else []
    if clash:
        msg = format_error(
            f"dataset id {dataset_id} is already taken by {clash!r}", path=out_dir,
            expected="one folder per dataset id in an nnUNet_raw folder (nnU-Net refuses duplicates)",
            fix="pass another --dataset-id, or remove the other folder",
        )
        raise SegmentationError(msg, path=out_dir)
    return target


def _dataset_json(n_train: int, n_test: int, folder: str, description: str) -> dict[str, Any]:
    body = dataset_json(n_train)
    body.update(name=folder, description=description, numTest=n_test,
                reference="exported by cohort-sciseg export-nnunet, in the layout of SCIseg's dataset",
                release=__version__)
    return body


def _check_sources(bids_dirs: Sequence[Path], qc_run: Path | None, ratings: Path | None) -> None:
    for d in bids_dirs:
        if not d.is_dir():
            msg = format_error("the BIDS dataset folder does not exist", path=d,
                               expected="a BIDS dataset folder with dataset_description.json",
                               fix="check the path")
            raise SegmentationError(msg, path=d)
    if (qc_run is None) != (ratings is None):
        msg = format_error(
            "--include-qc-passed and --ratings go together",
            path=qc_run or ratings,
            expected="the run folder (--include-qc-passed RUN_DIR) and its QC ratings file (--ratings FILE)",
            fix="pass both, or neither",
        )
        raise SegmentationError(msg)
    if qc_run is not None and not qc_run.is_dir():
        msg = format_error("the run folder does not exist", path=qc_run,
                           expected="the OUT_DIR of a `cohort-sciseg run`", fix="check the path")
        raise SegmentationError(msg, path=qc_run)


def _collect(
    roots: Sequence[Path], qc_path: Path | None, ratings_path: Path | None
) -> tuple[list[ExportCase], list[SkippedScan]]:
    """Discovery, then :func:`select_cases`; rated-pass scans not found are skipped too."""
    discovery = find_scans(roots)
    passed = _qc_passed(qc_path, ratings_path) if qc_path is not None and ratings_path is not None else None
    cases, skipped = select_cases(discovery.scans, qc_passed=passed)
    found = {s.scan_id for s in discovery.scans}
    for scan_id in sorted(set(passed or {}) - found):
        r = (passed or {})[scan_id]
        skipped.append(SkippedScan(scan_id, str(r["site"]), str(r["sub"]), _text(r.get("ses")),
                                   str(r["image_path"]),
                                   "rated pass in the run, but not found in the BIDS datasets given"))
    if not cases:
        msg = format_error(
            f"no scan has a usable cord and lesion mask ({len(skipped)} skipped)",
            path=roots[0],
            expected="scans with manual (or corrected) masks in derivatives/labels",
            fix="draw or correct masks (`cohort-sciseg ratings prepare`), or add QC-passed predictions "
            "with --include-qc-passed RUN_DIR --ratings FILE",
        )
        raise SegmentationError(msg)
    return cases, skipped


def export_nnunet(
    bids_dirs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    dataset_id: int | str,
    name: str,
    test_fraction: float = 0.2,
    folds: int = 5,
    seed: int = 0,
    qc_run: str | os.PathLike[str] | None = None,
    ratings: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    description: str = "spinal cord and SCI lesion (SCIseg labels), T2w, RPI",
) -> ExportResult:
    """Write the scans with manual or corrected masks as an nnU-Net v2 raw dataset.

    Parameters
    ----------
    bids_dirs
        The BIDS datasets (one per site), as given to ``cohort-sciseg run``.
    out_dir
        An ``nnUNet_raw`` folder: the dataset goes to ``out_dir/Dataset<ID>_<name>``.
    dataset_id, name
        nnU-Net's dataset id (1-999) and name.
    test_fraction, folds, seed
        Patient-level splits (:func:`~cohort_sciseg.training.splits.split_by_subject`).
    qc_run, ratings
        A ``cohort-sciseg run`` folder and the ratings exported from its QC report:
        the scans rated pass come in with the run's predictions where they have no
        manual mask. Both or neither.
    overwrite
        Replace an existing non-empty dataset folder.
    description
        ``dataset.json``'s ``description``.

    Returns
    -------
    ExportResult

    Raises
    ------
    SegmentationError
        Bad id or name, missing folders, a non-empty dataset folder without
        ``overwrite``, an id taken by another folder, no usable scan, too few
        subjects for the folds. Nothing is written then.
    CohortSciSegError
        A bad ratings file or run folder (:class:`~cohort_sciseg.errors.ReportError`).
    """
    dataset_id = check_dataset_id(dataset_id)
    folder = dataset_folder_name(dataset_id, name)
    roots = [Path(bids_dirs)] if isinstance(bids_dirs, str | os.PathLike) else [Path(d) for d in bids_dirs]
    qc_path = None if qc_run is None else Path(qc_run)
    ratings_path = None if ratings is None else Path(ratings)
    _check_sources(roots, qc_path, ratings_path)
    out = Path(out_dir).expanduser().absolute()
    target = _prepare_target(out, folder, dataset_id, overwrite)
    cases, skipped = _collect(roots, qc_path, ratings_path)

    def split(chosen: Sequence[ExportCase]) -> Splits:
        return split_by_subject([SplitCase(c.case_id, c.site, c.sub) for c in chosen],
                                test_fraction=test_fraction, folds=folds, seed=seed)

    split(cases)  # too few subjects for the folds: fail before reading any image
    staging = out / f".{folder}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    try:
        rows, cases, more_skipped = _write_all(cases, staging)
        skipped += more_skipped
        splits = split(cases)
        _place_test_cases(staging, splits, rows)
        write_json(staging / "dataset.json",
                   _dataset_json(len(splits.train), len(splits.test), folder, description))
        write_json(staging / "splits_final.json", list(splits.folds))
        manifest = {
            "dataset": folder, "dataset_id": dataset_id, "created_by": f"cohort-sciseg {__version__}",
            "sources": [str(r.absolute()) for r in roots],
            "qc_run": None if qc_path is None else str(qc_path.absolute()),
            "ratings": None if ratings_path is None else str(ratings_path.absolute()),
            "seed": seed, "test_fraction": test_fraction, "folds": folds,
            "labels": {"background": 0, "cord_without_lesion": 1, "lesion": 2},
            "image_orientation": "RPI", "test": list(splits.test),
            "cases": rows, "skipped": [asdict(s) for s in skipped],
        }
        write_json(staging / MANIFEST_FILE, manifest)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported %d training and %d test case(s) to %s (%d scan(s) skipped)",
                len(splits.train), len(splits.test), target, len(skipped))
    return ExportResult(target, tuple(rows), tuple(skipped), splits)


def _write_all(
    cases: Sequence[ExportCase], staging: Path
) -> tuple[list[dict[str, Any]], list[ExportCase], list[SkippedScan]]:
    """Write every case into ``imagesTr``/``labelsTr``; a case that cannot be read is skipped."""
    images, labels = staging / "imagesTr", staging / "labelsTr"
    rows: list[dict[str, Any]] = []
    kept: list[ExportCase] = []
    skipped: list[SkippedScan] = []
    for case in cases:
        try:
            facts = _write_case(case, images, labels)
        except CohortSciSegError as exc:  # a bad file is that scan's problem, not the export's
            logger.warning("%s: skipped: %s", case.scan_id, exc)
            skipped.append(SkippedScan(case.scan_id, case.site, case.sub, case.ses, case.image_path, str(exc)))
            continue
        row = asdict(case)
        row["subject"] = f"{case.site}/{case.sub}"
        row.update(facts)
        if facts["lesion_voxels_outside_cord"]:
            logger.info("%s: %d lesion voxel(s) outside the cord mask, labelled lesion (2)",
                        case.scan_id, facts["lesion_voxels_outside_cord"])
        rows.append(row)
        kept.append(case)
    if not kept:
        msg = format_error("no scan could be written", path=staging.parent,
                           expected="readable images and masks on the image grid",
                           fix="see the reasons in the log (-v) and fix the files")
        raise SegmentationError(msg)
    return rows, kept, skipped


def _place_test_cases(staging: Path, splits: Splits, rows: list[dict[str, Any]]) -> None:
    """Move the test cases to ``imagesTs``/``labelsTs``; record each case's split, fold and files."""
    test = set(splits.test)
    for row in rows:
        case = row["case_id"]
        split = "test" if case in test else "train"
        suffix = "Ts" if split == "test" else "Tr"
        image = Path(f"images{suffix}") / f"{case}_0000.nii.gz"
        label = Path(f"labels{suffix}") / f"{case}.nii.gz"
        if split == "test":
            for rel, old in ((image, Path("imagesTr") / image.name), (label, Path("labelsTr") / label.name)):
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                (staging / old).rename(staging / rel)
        row.update(split=split, fold=splits.fold_of.get(case), image=image.as_posix(), label=label.as_posix())
    rows.sort(key=lambda r: r["case_id"])
