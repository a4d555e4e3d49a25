"""BIDS derivative datasets: manual-mask paths in ``derivatives/labels``, ``dataset_description.json``.

One rule names a scan's manual mask (the layout of the spine-generic and SCIseg
datasets, which discovery reads)::

    <dataset>/sub-01/ses-01/anat/sub-01_ses-01_acq-sag_T2w.nii.gz
    <dataset>/derivatives/labels/sub-01/ses-01/anat/sub-01_ses-01_acq-sag_T2w_seg-manual.nii.gz

that is ``<labels>/<image folder relative to the dataset>/<image stem>_<suffix><extension>``.
When several masks of one structure exist, the first suffix of the list wins,
then the smaller path (``..._seg-manual.nii`` before ``..._seg-manual.nii.gz``),
as in discovery (:mod:`cohort_sciseg.discover.masks`).

Every ``dataset_description.json`` the tool writes (site derivatives of a run,
synthetic datasets, the labels derivative that corrections are copied into)
goes through :func:`write_dataset_description`, atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from cohort_sciseg.io.atomic import atomic_write_bytes, write_json
from cohort_sciseg.io.nifti import NIFTI_EXTENSIONS, nifti_stem

__all__ = [
    "BIDS_VERSION",
    "LABELS_DIR",
    "copy_mask_to_labels",
    "find_labels_masks",
    "image_folder",
    "labels_mask_path",
    "preferred_mask",
    "write_dataset_description",
]

#: BIDS version written into every ``dataset_description.json``.
BIDS_VERSION = "1.9.0"
#: The manual-label derivative of a dataset, relative to its root.
LABELS_DIR: tuple[str, ...] = ("derivatives", "labels")
_GLOB = frozenset("*?[")

PathLike = str | os.PathLike[str]


def image_folder(image: PathLike) -> tuple[Path, Path]:
    """``(dataset root, image folder relative to it)`` of ``<root>/sub-X/[ses-Y/]anat/<image>``.

    Raises
    ------
    ValueError
        ``image`` is not in an ``anat`` folder of a subject (or of a session of a subject).
    """
    p = Path(image)
    anat = p.parent
    owner = anat.parent
    if anat.name == "anat" and owner.name.startswith("ses-"):
        owner = owner.parent
    if anat.name != "anat" or not owner.name.startswith("sub-") or owner.name == "sub-":
        msg = (
            f"the image {str(p)!r} is not in a BIDS folder; expected "
            "<dataset>/sub-<label>/[ses-<label>/]anat/<image>"
        )
        raise ValueError(msg)
    root = owner.parent
    return root, anat.relative_to(root)


def _relative_folder(dataset_root: Path, image: Path) -> Path:
    if not image.is_absolute():
        return image.parent
    try:
        return image.parent.relative_to(dataset_root)
    except ValueError as exc:
        msg = f"the image {str(image)!r} is not inside the dataset {str(dataset_root)!r}"
        raise ValueError(msg) from exc


def labels_mask_path(
    dataset_root: PathLike, image: PathLike, suffix: str, *, extension: str = ".nii.gz"
) -> Path:
    """The path of ``image``'s mask ``suffix`` in the dataset's ``derivatives/labels``.

    Parameters
    ----------
    dataset_root
        The dataset's top folder.
    image
        The image: absolute (inside ``dataset_root``) or relative to ``dataset_root``
        (``"sub-01/anat/sub-01_T2w.nii.gz"``).
    suffix
        The mask suffix (``"seg-manual"``, ``"lesion-manual"``); not a pattern.
    extension
        ``".nii.gz"`` (default) or ``".nii"``.

    Raises
    ------
    ValueError
        ``suffix`` is a pattern or empty, ``extension`` is not a NIfTI one, or an
        absolute ``image`` is outside ``dataset_root``.

    Examples
    --------
    >>> labels_mask_path("/data/ds", "sub-01/anat/sub-01_T2w.nii.gz", "seg-manual").as_posix()
    '/data/ds/derivatives/labels/sub-01/anat/sub-01_T2w_seg-manual.nii.gz'
    """
    if not suffix or not _GLOB.isdisjoint(suffix):
        msg = f"mask suffix {suffix!r}: expected a plain suffix such as 'seg-manual' (no * ? [)"
        raise ValueError(msg)
    if extension not in NIFTI_EXTENSIONS:
        msg = f"extension {extension!r}: expected one of {list(NIFTI_EXTENSIONS)!r}"
        raise ValueError(msg)
    root = Path(dataset_root)
    img = Path(image)
    folder = root.joinpath(*LABELS_DIR) / _relative_folder(root, img)
    return folder / f"{nifti_stem(img)}_{suffix}{extension}"


def _preference(path: Path, image_stem: str, suffixes: Sequence[str]) -> tuple[int, str]:
    name = path.name[len(image_stem) + 1 :]
    rank = next((i for i, s in enumerate(suffixes) if name.startswith(s + ".")), len(suffixes))
    return rank, str(path)


def preferred_mask(paths: Sequence[PathLike], image_stem: str, suffixes: Sequence[str]) -> Path:
    """The mask discovery reads among ``paths`` (all masks of ``image_stem``): first suffix, then smaller path.

    A path that fits none of ``suffixes`` comes last.
    """
    if not paths:
        msg = "preferred_mask() needs at least one path"
        raise ValueError(msg)
    return min((Path(p) for p in paths), key=lambda p: _preference(p, image_stem, suffixes))


def find_labels_masks(
    dataset_root: PathLike, image: PathLike, suffixes: Sequence[str]
) -> list[Path]:
    """The existing masks of ``image`` with one of ``suffixes``, the one discovery reads first.

    Every suffix is tried with every NIfTI extension (:func:`labels_mask_path`);
    only regular files (or links to them) count.
    """
    found = [
        labels_mask_path(dataset_root, image, suffix, extension=ext)
        for suffix in suffixes
        for ext in NIFTI_EXTENSIONS
    ]
    stem = nifti_stem(image)
    return sorted((p for p in found if p.is_file()), key=lambda p: _preference(p, stem, suffixes))


def write_dataset_description(
    root: PathLike,
    *,
    name: str,
    dataset_type: Literal["raw", "derivative"] = "raw",
    generated_by: Sequence[Mapping[str, Any]] = (),
    source_datasets: Sequence[str] = (),
    license: str | None = None,
) -> Path:
    """Write ``<root>/dataset_description.json`` atomically; return its path.

    Keys, in order: ``Name``, ``BIDSVersion`` (:data:`BIDS_VERSION`),
    ``DatasetType``, then ``License``, ``GeneratedBy`` and ``SourceDatasets``
    (``[{"URL": url}, ...]``) when given. ``root`` is created if needed.
    """
    if dataset_type not in ("raw", "derivative"):
        msg = f"dataset_type={dataset_type!r}; expected 'raw' or 'derivative'"
        raise ValueError(msg)
    obj: dict[str, Any] = {"Name": name, "BIDSVersion": BIDS_VERSION, "DatasetType": dataset_type}
    if license is not None:
        obj["License"] = license
    if generated_by:
        obj["GeneratedBy"] = [dict(g) for g in generated_by]
    if source_datasets:
        obj["SourceDatasets"] = [{"URL": url} for url in source_datasets]
    return write_json(Path(root) / "dataset_description.json", obj)


def copy_mask_to_labels(
    source: PathLike,
    target: PathLike,
    sidecar: Mapping[str, Any],
    *,
    generated_by: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """Copy the mask ``source`` to ``target`` in a labels derivative, with its JSON sidecar.

    The mask is written atomically, then ``<target stem>.json`` (``sidecar``).
    ``target`` must lie under ``<dataset>/derivatives/labels``; when that
    folder has no ``dataset_description.json`` (the copy creates the
    derivative), one is written (``DatasetType`` derivative, ``GeneratedBy``,
    ``SourceDatasets`` the dataset ``../../``), as BIDS requires; an existing
    one is never touched. Returns ``target``.

    Raises
    ------
    ValueError
        ``target`` is not under a ``derivatives/labels`` folder.
    """
    dest = Path(target)
    labels = next(
        (p for p in dest.parents if (p.parent.name, p.name) == LABELS_DIR),
        None,
    )
    if labels is None:
        msg = f"the mask {str(dest)!r} is not under a dataset's {'/'.join(LABELS_DIR)} folder"
        raise ValueError(msg)
    atomic_write_bytes(dest, Path(source).read_bytes())
    write_json(dest.with_name(nifti_stem(dest) + ".json"), dict(sidecar))
    if not (labels / "dataset_description.json").exists():
        write_dataset_description(
            labels,
            name=f"manual labels of {labels.parent.parent.name}",
            dataset_type="derivative",
            generated_by=generated_by,
            source_datasets=["../../"],
        )
    return dest
