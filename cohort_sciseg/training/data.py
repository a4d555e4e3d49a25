"""The demo model's training and evaluation data, as nnU-Net cases in RPI.

Real T2w scans of ``spine-t2w`` with their cord masks (the held-out subjects
excluded), each as is and with synthetic lesions inserted into the real cord
(:func:`cohort_sciseg.synth.insert_lesions_into_arrays`, a different draw per copy),
plus synthetic phantoms of the three site styles
(:func:`cohort_sciseg.synth.synthesize_cohort`). Every image is reoriented to RPI
(what SCT feeds SCIseg); real scans keep their whole field of view unless
``crop_margin_mm`` is set (cropping taught the first demo model to call everything
near the cord "cord": 0.43 cord Dice on a held-out real scan vs 0.65 uncropped).
Labels follow SCIseg: 0 background, 1 cord, 2 lesion (:func:`label_map`);
:func:`write_raw_dataset` writes them as an nnU-Net raw dataset.
"""

from __future__ import annotations

import json
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cohort_sciseg.errors import SegmentationError, format_error
from cohort_sciseg.io import binarize, load_nifti, reorient, save_nifti, voxel_sizes, write_json
from cohort_sciseg.synth import find_masked_images, insert_lesions_into_arrays, synthesize_cohort
from cohort_sciseg.training.settings import DATASET_JSON, TrainSettings

__all__ = [
    "Case",
    "dataset_json",
    "evaluation_cases",
    "find_real_scans",
    "label_map",
    "real_training_cases",
    "synthetic_cases",
    "to_rpi",
    "write_raw_dataset",
]

#: Cord-mask suffixes of the real dataset, in order of preference (manual first).
_CORD_SUFFIXES = ("seg-manual", "seg-deepsegsc", "seg-scisegv2")
#: Seed of the lesions inserted into held-out real cords: fixed, so metrics compare across runs.
_EVAL_SEED = 20240729
_EVAL_LESION_DRAWS = 3


@dataclass(frozen=True, slots=True)
class Case:
    """One image with its label map, in RPI.

    Attributes
    ----------
    name
        Case identifier (nnU-Net case name; letters, digits, ``_``).
    image
        Intensities, float32, RPI.
    labels
        0 background, 1 cord, 2 lesion (``uint8``), same grid.
    affine
        Voxel-to-world affine of the RPI arrays (mm).
    kind
        ``"real"``, ``"real+lesions"`` (synthetic lesions in a real cord) or ``"synthetic"``.
    reference
        Where the labels come from (e.g. ``"seg-manual"``, ``"phantom"``).
    has_lesion_reference
        Whether the lesion channel of ``labels`` is a reference (False for a real
        scan without a lesion mask: its labels say nothing about lesions).
    """

    name: str
    image: npt.NDArray[np.float32]
    labels: npt.NDArray[np.uint8]
    affine: npt.NDArray[np.float64]
    kind: str
    reference: str
    has_lesion_reference: bool = True



def label_map(cord: npt.ArrayLike, lesion: npt.ArrayLike | None = None) -> npt.NDArray[np.uint8]:
    """SCIseg's label map: 0 background, 1 cord, 2 lesion.

    Parameters
    ----------
    cord, lesion
        Boolean (or 0/1) masks on the same grid; ``lesion`` may be None.

    Returns
    -------
    numpy.ndarray
        ``uint8``; lesion voxels are 2 even outside the cord mask (SCIseg's
        regions make lesion a part of the cord: ``sc = [1, 2]``).
    """
    cord_b = np.asarray(cord).astype(bool)
    out = cord_b.astype(np.uint8)
    if lesion is not None:
        les_b = np.asarray(lesion).astype(bool)
        if les_b.shape != cord_b.shape:
            msg = format_error(
                f"lesion mask shape {les_b.shape} differs from cord mask shape {cord_b.shape}",
                expected="both masks on the same voxel grid",
                fix="resample the masks onto the image grid first",
            )
            raise SegmentationError(msg)
        out[les_b] = 2
    return out


def dataset_json(n_training: int) -> dict[str, Any]:
    """The nnU-Net ``dataset.json`` of the training set (SCIseg's layout).

    Parameters
    ----------
    n_training
        Number of training cases (>= 1).
    """
    if not isinstance(n_training, int) or isinstance(n_training, bool) or n_training < 1:
        msg = format_error(
            f"n_training={n_training!r} is not valid",
            expected="a positive number of training cases",
            fix="build at least one training case",
        )
        raise SegmentationError(msg)
    body = json.loads(json.dumps(DATASET_JSON))
    body["numTraining"] = n_training
    return body


def _case_name(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def to_rpi(
    data: npt.NDArray[Any], affine: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]:
    """``data`` and its affine reoriented to RPI (what SCT feeds SCIseg); values untouched.

    A contiguous copy of the permuted/flipped array and the affine that maps its voxels
    to the same world positions (nibabel's axis codes ``('L', 'A', 'S')``).
    """
    arr, aff = reorient(np.asarray(data), np.asarray(affine, dtype=np.float64), "RPI")
    return np.ascontiguousarray(arr), np.asarray(aff, dtype=np.float64)


def _crop_to_cord(case: Case, margin_mm: float) -> Case:
    """Crop to the cord's bounding box plus ``margin_mm`` (affine shifted accordingly)."""
    idx = np.argwhere(case.labels > 0)
    if idx.size == 0:
        return case
    vox = voxel_sizes(case.affine)
    margin = np.ceil(margin_mm / np.asarray(vox)).astype(int)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, case.labels.shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    aff = case.affine.copy()
    aff[:3, 3] = case.affine[:3, :3] @ lo + case.affine[:3, 3]
    return replace(
        case,
        image=np.ascontiguousarray(case.image[sl]),
        labels=np.ascontiguousarray(case.labels[sl]),
        affine=aff,
    )


def find_real_scans(data_dir: Path) -> list[tuple[str, Path, Path, str, Path | None]]:
    """Real T2w scans with a cord mask: ``(subject, image, cord mask, suffix, lesion mask)``.

    Cord masks are looked up with the suffixes ``seg-manual``, ``seg-deepsegsc``,
    ``seg-scisegv2`` (first found wins); the lesion mask is
    ``<stem>_lesion-<same source>.nii.gz`` when present.
    """
    found: dict[Path, tuple[str, Path, Path, str, Path | None]] = {}
    for suffix in _CORD_SUFFIXES:
        for img, mask in find_masked_images(data_dir, suffix):
            if img in found:
                continue
            source = suffix.split("-", 1)[1]
            lesion = mask.with_name(mask.name.replace(f"_{suffix}", f"_lesion-{source}"))
            sub = img.name.split("_", 1)[0]
            found[img] = (sub, img, mask, source, lesion if lesion.is_file() else None)
    return [found[k] for k in sorted(found)]


def _load_real(img: Path, mask: Path, lesion: Path | None, sub: str, source: str) -> Case:
    vol = load_nifti(img, scan_id=sub)
    cord = binarize(load_nifti(mask, scan_id=sub).data)
    les = binarize(load_nifti(lesion, scan_id=sub).data) if lesion is not None else None
    image, aff = to_rpi(vol.data.astype(np.float32), vol.affine)
    labels, _ = to_rpi(label_map(cord, les), vol.affine)
    return Case(
        name=_case_name(sub),
        image=image,
        labels=labels,
        affine=aff,
        kind="real",
        reference=source,
        has_lesion_reference=les is not None,
    )


def _with_lesions(case: Case, rng: np.random.Generator, name: str) -> Case:
    cord = case.labels > 0
    new, ids, _ = insert_lesions_into_arrays(
        case.image, cord, case.affine, n_lesions=int(rng.integers(1, 4)), rng=rng
    )
    return replace(
        case,
        name=name,
        image=new.astype(np.float32),
        labels=label_map(cord, ids > 0),
        kind="real+lesions",
        has_lesion_reference=True,
    )


def real_training_cases(settings: TrainSettings) -> list[Case]:
    """Real scans not held out: each as is plus ``lesion_copies`` copies with synthetic lesions.

    Real scans without a lesion mask go in as is too (cord only, no lesion: the
    network must also learn that most cords have none); lesion draws are seeded
    with ``(seed, crc32(subject), copy)``.
    """
    if settings.data is None:
        return []
    cases = []
    for sub, img, mask, source, lesion in find_real_scans(settings.data):
        if sub in settings.holdout:
            continue
        base = _load_real(img, mask, lesion, sub, source)
        if settings.crop_margin_mm is not None:
            base = _crop_to_cord(base, settings.crop_margin_mm)
        cases.append(base)
        if lesion is not None:  # real lesions already: no synthetic ones on top
            continue
        for k in range(settings.lesion_copies):
            rng = np.random.default_rng([settings.seed, zlib.crc32(sub.encode()), k])
            cases.append(_with_lesions(base, rng, f"{base.name}_les{k}"))
    return cases


def synthetic_cases(
    work: Path, *, seed: int, subjects_per_site: int, prefix: str
) -> list[Case]:
    """Phantoms of the three site styles (:func:`synthesize_cohort`), in RPI."""
    if work.exists():
        shutil.rmtree(work)
    cohort = synthesize_cohort(work, sites=3, subjects_per_site=subjects_per_site, seed=seed)
    cases = []
    for root in cohort.dataset_roots:
        for img, mask in find_masked_images(root, "seg-manual"):
            lesion_path = mask.with_name(mask.name.replace("_seg-manual", "_lesion-manual"))
            vol = load_nifti(img)
            cord = binarize(load_nifti(mask).data)
            les = binarize(load_nifti(lesion_path).data) if lesion_path.is_file() else None
            image, aff = to_rpi(vol.data.astype(np.float32), vol.affine)
            labels, _ = to_rpi(label_map(cord, les), vol.affine)
            stem = img.name.split(".nii")[0].replace("_T2w", "")
            cases.append(
                Case(
                    name=_case_name(f"{prefix}_{root.name}_{stem}"),
                    image=image,
                    labels=labels,
                    affine=aff,
                    kind="synthetic",
                    reference="phantom",
                )
            )
    return cases


def evaluation_cases(settings: TrainSettings, work: Path) -> list[Case]:
    """Evaluation cases: held-out real scans (as is and with inserted lesions), new phantoms, and
    the real training scans as is (kind ``real-train``: the fit, summarised apart)."""
    cases: list[Case] = []
    fit: list[Case] = []  # the real training scans as is: how well the network fits what it saw
    if settings.data is not None:
        for sub, img, mask, source, lesion in find_real_scans(settings.data):
            if sub not in settings.holdout and lesion is not None:
                continue
            base = _load_real(img, mask, lesion, sub, source)
            if sub not in settings.holdout:
                fit.append(replace(base, name=f"{base.name}_train", kind="real-train"))
                continue
            cases.append(base)
            if lesion is not None:
                continue
            for k in range(_EVAL_LESION_DRAWS):
                rng = np.random.default_rng([_EVAL_SEED, zlib.crc32(sub.encode()), k])
                cases.append(_with_lesions(base, rng, f"{base.name}_evalles{k}"))
    cases += fit
    cases += synthetic_cases(
        work / "eval_phantoms", seed=settings.seed + 10_000, subjects_per_site=1, prefix="eval"
    )
    return cases


def write_raw_dataset(raw_dir: Path, cases: Sequence[Case]) -> Path:
    """Write ``cases`` as an nnU-Net raw dataset (``imagesTr``, ``labelsTr``, ``dataset.json``)."""
    if raw_dir.exists():
        shutil.rmtree(raw_dir)
    for case in cases:
        save_nifti(raw_dir / "imagesTr" / f"{case.name}_0000.nii.gz", case.image, case.affine)
        save_nifti(raw_dir / "labelsTr" / f"{case.name}.nii.gz", case.labels, case.affine)
    write_json(raw_dir / "dataset.json", dataset_json(len(cases)))
    return raw_dir

