"""Manual masks in ``<dataset>/derivatives/labels``.

A mask belongs to the image whose file name (without extension) is the mask's
name up to ``_<suffix>``, in the mirrored folder::

    sub-01/ses-01/anat/sub-01_ses-01_acq-sag_T2w.nii.gz
    derivatives/labels/sub-01/ses-01/anat/sub-01_ses-01_acq-sag_T2w_seg-manual.nii.gz

This is the layout of the spine-generic and SCIseg datasets; the path of an
image's mask is named in one place, :func:`cohort_sciseg.io.labels_mask_path`,
which this module's parsing (:func:`mask_image_stem`) inverts. Vertebral
labellings are found the same way: ``sct_label_vertebrae``'s labelled cord
(``<image stem>_seg_labeled.nii.gz``, every cord voxel holding its level number)
and disc labels (``<image stem>_label-disc*.nii.gz``, single voxels holding the
disc number). The geometry of a mask is not checked here (see
:func:`cohort_sciseg.io.check_same_geometry`).

A suffix is either exact (``"seg-manual"``: the file name without extension
ends with ``_seg-manual``) or an :mod:`fnmatch` pattern (``"label-disc*"``:
holds ``*``, ``?`` or ``[``), which must match the whole part of the name after
``<image stem>_``, the image stem ending with ``_<image suffix>``. Patterns are
case-sensitive on every platform.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from cohort_sciseg.discover._fs import entry_kind, inside, kind_of, list_dir, unusable
from cohort_sciseg.discover.entities import split_extension
from cohort_sciseg.errors import DiscoveryError, format_error
from cohort_sciseg.io.derivatives import LABELS_DIR

__all__ = [
    "DEFAULT_CORD_SUFFIXES",
    "DEFAULT_DISC_SUFFIXES",
    "DEFAULT_LESION_SUFFIXES",
    "DEFAULT_VERTEBRAL_SUFFIXES",
    "MaskFile",
    "find_masks",
    "is_pattern",
    "mask_image_stem",
]

#: Manual cord mask suffixes of SCIseg's datasets, first match wins.
DEFAULT_CORD_SUFFIXES: tuple[str, ...] = ("seg-manual", "label-SC_seg")
#: Manual lesion mask suffixes of SCIseg's datasets.
DEFAULT_LESION_SUFFIXES: tuple[str, ...] = ("lesion-manual",)
#: Labelled cords of ``sct_label_vertebrae`` (``seg_labeled``, ``seg-manual_labeled``,
#: ``label-SC_seg_labeled``); never a cord mask, a lesion mask or disc labels.
DEFAULT_VERTEBRAL_SUFFIXES: tuple[str, ...] = ("*seg*_labeled",)
#: Disc labels: BIDS derivatives (``label-disc``, ``label-discs_dlabel``,
#: ``labels-disc-manual``) and ``sct_label_vertebrae``'s ``seg_labeled_discs``.
DEFAULT_DISC_SUFFIXES: tuple[str, ...] = ("label-disc*", "labels-disc*", "*_labeled_disc*")

_GLOB = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class MaskFile:
    """A mask found in ``derivatives/labels``.

    Attributes
    ----------
    path
        The mask file.
    folder
        Its folder relative to ``derivatives/labels`` (``"sub-01/ses-01/anat"``),
        which is also the image's folder relative to the dataset root.
    image_stem
        The image name without extension that the mask belongs to.
    suffix
        The mask suffix or pattern that fits (``"seg-manual"``, ``"label-disc*"``;
        see :func:`mask_image_stem`).
    """

    path: str
    folder: str
    image_stem: str
    suffix: str


def is_pattern(suffix: str) -> bool:
    """Whether ``suffix`` is an :mod:`fnmatch` pattern (holds ``*``, ``?`` or ``[``)."""
    return not _GLOB.isdisjoint(suffix)


def _image_stem(stem: str, suffix: str, tail: str) -> str | None:
    """The image stem of mask stem ``stem`` for one ``suffix``; ``tail`` is ``_<image suffix>``."""
    if not is_pattern(suffix):
        if stem.endswith("_" + suffix):
            image_stem = stem[: -len(suffix) - 1]
            if image_stem.endswith(tail) and len(image_stem) > len(tail):
                return image_stem
        return None
    # A BIDS image stem holds "_<image suffix>" only at its end (entities are key-label),
    # so the first "_<image suffix>_" ends it.
    cut = tail + "_"
    i = stem.find(cut, 1)
    while i > 0:
        rest = stem[i + len(cut) :]
        if rest and fnmatchcase(rest, suffix):
            return stem[: i + len(tail)]
        i = stem.find(cut, i + 1)
    return None


def mask_image_stem(
    name: str, suffixes: Sequence[str], image_suffix: str
) -> tuple[str, str] | None:
    """``(image_stem, suffix)`` of a mask file name, for the first suffix that fits, else ``None``.

    ``"sub-01_T2w_seg-manual.nii.gz"`` with suffix ``"seg-manual"`` and image suffix
    ``"T2w"`` gives ``("sub-01_T2w", "seg-manual")``. The image stem must end with
    ``_<image_suffix>``, so a short suffix such as ``"seg"`` does not swallow
    ``"..._T2w_label-SC_seg"``. Exact suffixes are tried first, in order, then
    patterns, in order: ``"sub-01_T2w_seg-manual.nii.gz"`` is a ``"seg-manual"``
    mask even when a pattern such as ``"*seg*"`` comes earlier, and with
    ``"label-disc*"`` ``"sub-01_T2w_label-discs_dlabel.nii"`` gives
    ``("sub-01_T2w", "label-disc*")``.
    """
    split = split_extension(name)
    if split is None:
        return None
    stem = split[0]
    tail = "_" + image_suffix
    ordered = [s for s in suffixes if not is_pattern(s)] + [s for s in suffixes if is_pattern(s)]
    for suffix in ordered:
        image_stem = _image_stem(stem, suffix, tail)
        if image_stem is not None:
            return image_stem, suffix
    return None


def find_masks(
    root_real: str,
    *,
    suffixes: Sequence[str],
    image_suffix: str,
    subject_ok: Callable[[str], bool],
    session_ok: Callable[[str | None], bool],
    what: Callable[[str], str] = lambda suffix: "manual mask",
) -> tuple[list[MaskFile], list[DiscoveryError]]:
    """Masks under ``<root>/derivatives/labels/sub-*/[ses-*/]anat``.

    Parameters
    ----------
    root_real
        The dataset root, resolved.
    suffixes
        Mask suffixes or :mod:`fnmatch` patterns to look for (see :func:`mask_image_stem`).
    image_suffix
        Suffix of the images the masks belong to (``"T2w"``).
    subject_ok, session_ok
        Filters on subject and session labels (``None`` = no session folder),
        the same as for the images, so masks of filtered-out scans are not
        reported as masks without an image.
    what
        Name of the file kind of a suffix, for messages (``"manual mask"``).

    Returns
    -------
    (masks, problems)
        Masks in walk order; problems are symlinks leaving the dataset,
        folders that cannot be listed, symlink loops and broken links, and
        mask names that are not regular files (a FIFO, a socket, ...).
    """
    labels = os.path.join(root_real, *LABELS_DIR)
    masks: list[MaskFile] = []
    problems: list[DiscoveryError] = []
    kind = kind_of(labels)
    if kind.kind in ("missing", "file", "other"):
        return masks, problems
    if kind.kind != "dir":
        # A link loop or a broken link would hide every mask of the dataset without a word.
        problems.append(
            unusable(
                labels, kind, what="derivatives/labels", expected="a folder", then="; no mask read"
            )
        )
        return masks, problems
    if not inside(labels, root_real):
        target = os.path.realpath(labels)
        msg = format_error(
            f"derivatives/labels points outside the dataset, to {target!r}; not followed",
            path=labels,
            expected=f"a folder inside {root_real!r}",
            fix="copy the masks into the dataset's derivatives/labels",
        )
        problems.append(DiscoveryError(msg, path=labels))
        return masks, problems

    def is_mask(name: str) -> bool:
        return mask_image_stem(name, suffixes, image_suffix) is not None

    def is_folder(name: str) -> bool:
        return name == "anat" or name.startswith("ses-")

    def enter(entry: os.DirEntry[str], what: str) -> bool:
        kind = entry_kind(entry)
        if kind.kind in ("broken", "error"):
            problems.append(
                unusable(entry.path, kind, what=what, expected="a folder", then="; skipped")
            )
        return kind.kind == "dir"

    def walk(folder: str, rel: str) -> None:
        entries, errs = list_dir(folder, root_real, is_mask)
        problems.extend(errs)
        for e in entries:
            found = mask_image_stem(e.name, suffixes, image_suffix)
            if found is None:
                continue
            kind = entry_kind(e)
            if kind.kind == "file":
                masks.append(
                    MaskFile(path=e.path, folder=rel, image_stem=found[0], suffix=found[1])
                )
            elif kind.kind != "dir":
                problems.append(
                    unusable(
                        e.path,
                        kind,
                        what=what(found[1]),
                        expected="a NIfTI file",
                        then="; not used",
                    )
                )

    top, errs = list_dir(labels, root_real, lambda name: name.startswith("sub-"))
    problems.extend(errs)
    for sub in top:
        if not (sub.name.startswith("sub-") and subject_ok(sub.name[4:])):
            continue
        if not enter(sub, "subject folder"):
            continue
        inner, errs = list_dir(sub.path, root_real, is_folder)
        problems.extend(errs)
        for e in inner:
            if e.name == "anat" and session_ok(None) and enter(e, "anat folder"):
                walk(e.path, f"{sub.name}/anat")
            elif (
                e.name.startswith("ses-") and session_ok(e.name[4:]) and enter(e, "session folder")
            ):
                ses_entries, errs = list_dir(e.path, root_real, lambda name: name == "anat")
                problems.extend(errs)
                for a in ses_entries:
                    if a.name == "anat" and enter(a, "anat folder"):
                        walk(a.path, f"{sub.name}/{e.name}/anat")
    return masks, problems
