"""Skeleton BIDS trees with tiny NIfTI images, for tests and benchmarks.

:func:`write_skeleton_tree` writes a valid BIDS dataset in which every part that
discovery reads is present: ``dataset_description.json``, ``participants.tsv``
(optionally with a ``site`` column), T2w images with ``sub``/``ses``/``acq``
entities, JSON sidecars at the dataset, ``acq``, subject, session and file
levels (so inheritance is exercised), and manual masks in
``derivatives/labels``. Images are tiny (``shape`` voxels, int16) and use a
handful of affines (sagittal, axial, coronal, isotropic, some oblique, in
several orientations); the gzip bytes of each affine are built once and copied,
so a 10,000-scan tree takes seconds rather than minutes.

Which subjects have which sidecars and masks follows fixed rules (documented
in :func:`write_skeleton_tree`), so tests can compute the expected values
independently of discovery.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from cohort_sciseg.errors import SynthError, format_error
from cohort_sciseg.io import axis_directions, from_nibabel_axcodes, write_dataset_description

__all__ = [
    "HOSTILE_LABELS",
    "SIDECAR_RULES",
    "TEMPLATES",
    "AffineTemplate",
    "skeleton_scan_index",
    "write_skeleton_tree",
]

#: Subject labels that are legal file names but hostile to naive code: spaces,
#: markup, quotes, dots, percent signs and non-ASCII. None contains ``/`` or ``_``.
HOSTILE_LABELS = ("a b", "<script>alert(1)<\\script>", "q'\"x", "..", "%41", "\u00e9t\u00e9")

#: What the sidecars written by :func:`write_skeleton_tree` say, by level.
SIDECAR_RULES = {
    "dataset": {"Manufacturer": "Siemens", "MagneticFieldStrength": 3, "RepetitionTime": 2.5},
    "acq": {"EchoTime": 0.1},
    "subject": {"Manufacturer": "GE", "MagneticFieldStrength": 1.5},
    "session": {"ManufacturersModelName": "Prisma"},
    "file": {"EchoTime": 0.09, "SeriesDescription": "t2_tse"},
}


@dataclass(frozen=True, slots=True)
class AffineTemplate:
    """One geometry of the skeleton images.

    Attributes
    ----------
    name
        Short name (``"sag-PSR"``).
    axcodes
        nibabel axis codes (the direction each array axis points to).
    zooms
        Voxel sizes along the array axes, mm.
    oblique_deg
        Rotation about the world z axis, degrees (0 = axis-aligned).
    """

    name: str
    axcodes: tuple[str, str, str]
    zooms: tuple[float, float, float]
    oblique_deg: float = 0.0

    def affine(self, shape: Sequence[int]) -> np.ndarray:
        """Voxel-to-world affine, centred on the image."""
        m = np.zeros((3, 3))
        for i, (axis, sign) in enumerate(axis_directions(from_nibabel_axcodes(self.axcodes))):
            m[axis, i] = sign * self.zooms[i]
        t = math.radians(self.oblique_deg)
        rot = np.array(
            [[math.cos(t), -math.sin(t), 0.0], [math.sin(t), math.cos(t), 0.0], [0.0, 0.0, 1.0]]
        )
        m = rot @ m
        aff = np.eye(4)
        aff[:3, :3] = m
        aff[:3, 3] = -m @ (np.asarray(shape, dtype=float) - 1) / 2
        return aff


#: Geometries by acquisition label; labels not listed use ``"iso"``.
TEMPLATES: dict[str, tuple[AffineTemplate, ...]] = {
    "sag": (
        AffineTemplate("sag-PSR", ("P", "S", "R"), (0.8, 0.8, 3.0)),
        AffineTemplate("sag-ASL", ("A", "S", "L"), (0.7, 0.7, 2.5)),
        AffineTemplate("sag-PSR-oblique", ("P", "S", "R"), (0.8, 0.8, 3.0), oblique_deg=8.0),
    ),
    "ax": (
        AffineTemplate("ax-LAS", ("L", "A", "S"), (0.5, 0.5, 4.0)),
        AffineTemplate("ax-RAS", ("R", "A", "S"), (0.6, 0.6, 5.0)),
        AffineTemplate("ax-LPI-oblique", ("L", "P", "I"), (0.5, 0.5, 4.0), oblique_deg=-6.0),
    ),
    "cor": (AffineTemplate("cor-RSA", ("R", "S", "A"), (0.9, 0.9, 3.0)),),
    "iso": (
        AffineTemplate("iso-PSR", ("P", "S", "R"), (1.0, 1.0, 1.0)),
        AffineTemplate("iso-RAS", ("R", "A", "S"), (0.8, 0.9, 1.0)),
    ),
}


def _nifti_gz(shape: tuple[int, int, int], affine: np.ndarray, data: np.ndarray) -> bytes:
    img = nib.Nifti1Image(data, affine)
    img.header.set_sform(affine, code=1)
    img.header.set_qform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    return gzip.compress(img.to_bytes(), compresslevel=1, mtime=0)


def _check(
    n_subjects: int, shape: Sequence[int], acquisitions: Sequence[str | None], root: Path
) -> None:
    if isinstance(n_subjects, bool) or not isinstance(n_subjects, int) or n_subjects < 1:
        msg = format_error(
            f"n_subjects={n_subjects!r}", expected="an integer >= 1", fix="pass n_subjects=10"
        )
        raise SynthError(msg)
    if len(shape) != 3 or not all(isinstance(n, int) and n >= 1 for n in shape):
        msg = format_error(
            f"shape={tuple(shape)!r}", expected="three integers >= 1", fix="pass shape=(4, 5, 6)"
        )
        raise SynthError(msg)
    if len(acquisitions) == 0:
        msg = format_error(
            "acquisitions is empty",
            expected="at least one acq label, or None for images without an acq entity",
            fix="pass acquisitions=('sag',) or acquisitions=(None,)",
        )
        raise SynthError(msg)
    for a in acquisitions:
        if a is not None and (not a or "_" in a or "/" in a or "-" in a):
            msg = format_error(
                f"acquisition label {a!r}",
                expected="a non-empty label without '_', '-' or '/'",
                fix="use labels such as 'sag' or 'ax'",
            )
            raise SynthError(msg)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        msg = format_error(
            "destination exists and is not an empty folder",
            path=root,
            expected="a new or empty folder",
            fix="choose another root or delete the folder first",
        )
        raise SynthError(msg, path=root)


def skeleton_scan_index(
    subject: int, session: int, acquisition: int, n_sessions: int, n_acq: int
) -> int:
    """Running index of a scan in a skeleton tree (subject-major), as used by the mask and sidecar rules."""
    return (subject * max(n_sessions, 1) + session) * n_acq + acquisition


def write_skeleton_tree(
    root: str | os.PathLike[str],
    *,
    n_subjects: int,
    sessions: Sequence[str] = (),
    acquisitions: Sequence[str | None] = ("sag",),
    with_masks: bool = True,
    hostile: bool = False,
    seed: int = 0,
    shape: tuple[int, int, int] = (4, 5, 6),
    sites: Sequence[str] = (),
    name: str | None = None,
) -> Path:
    """Write a skeleton BIDS dataset of tiny T2w images.

    Parameters
    ----------
    root
        Dataset folder to create (must not exist, or be empty).
    n_subjects
        Number of subjects; labels ``01``, ``02``, ... (zero-padded to equal width).
    sessions
        Session labels; every subject gets every session. Empty: no session level.
    acquisitions
        ``acq`` labels; every session gets one image per label (``None``: no
        ``acq`` entity). ``sag``/``ax``/``cor`` use sagittal/axial/coronal
        geometries, other labels isotropic ones. Scans in all:
        ``n_subjects * max(len(sessions), 1) * len(acquisitions)``.
    with_masks
        Write masks in ``derivatives/labels``: a cord mask
        (``_seg-manual``) for scans whose running index
        (:func:`skeleton_scan_index`) is even, a lesion mask (``_lesion-manual``)
        when it is a multiple of 3.
    hostile
        Give the first subjects the labels of :data:`HOSTILE_LABELS` (as many as
        ``n_subjects`` allows).
    seed
        Seeds the choice of geometry per scan and the participants' ages.
    shape
        Image dimensions in voxels (non-cubic by default so axis mix-ups show).
    sites
        When given, ``participants.tsv`` gets a ``site`` column assigning
        subject ``i`` to ``sites[i % len(sites)]``.
    name
        ``Name`` in ``dataset_description.json`` (default: the folder name).

    Returns
    -------
    Path
        ``root``.

    Notes
    -----
    Sidecars (values in :data:`SIDECAR_RULES`): ``T2w.json`` at the root;
    ``acq-<label>_T2w.json`` at the root for each acquisition label; a subject
    level ``sub-<label>_T2w.json`` for every 4th subject (index 0, 4, ...,
    overriding Manufacturer and MagneticFieldStrength); a session level sidecar
    in the first session of every 3rd subject; a file-level sidecar for every
    5th scan (overriding EchoTime).

    Raises
    ------
    SynthError
        Invalid options, or ``root`` is a non-empty folder.
    """
    dest = Path(root)
    _check(n_subjects, shape, acquisitions, dest)
    shape = (shape[0], shape[1], shape[2])
    rng = random.Random(seed)
    dest.mkdir(parents=True, exist_ok=True)

    width = max(2, len(str(n_subjects)))
    labels = [f"{i + 1:0{width}d}" for i in range(n_subjects)]
    if hostile:
        for i, h in enumerate(HOSTILE_LABELS[:n_subjects]):
            labels[i] = h

    data = np.arange(math.prod(shape), dtype=np.int16).reshape(shape) % 97
    mask = np.zeros(shape, dtype=np.uint8)
    mask[shape[0] // 2, :, shape[2] // 2] = 1
    images: dict[str, bytes] = {}
    masks: dict[str, bytes] = {}

    def image_bytes(t: AffineTemplate) -> tuple[bytes, bytes]:
        if t.name not in images:
            aff = t.affine(shape)
            images[t.name] = _nifti_gz(shape, aff, data)
            masks[t.name] = _nifti_gz(shape, aff, mask)
        return images[t.name], masks[t.name]

    def write_json(path: Path, obj: object) -> None:
        path.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")

    write_dataset_description(dest, name=name or dest.name)
    write_json(dest / "T2w.json", SIDECAR_RULES["dataset"])
    for a in dict.fromkeys(acquisitions):
        if a is not None:
            write_json(dest / f"acq-{a}_T2w.json", SIDECAR_RULES["acq"])

    header = ["participant_id", "age", "sex"] + (["site"] if sites else [])
    rows = ["\t".join(header)]
    for i, label in enumerate(labels):
        row = [f"sub-{label}", str(rng.randint(18, 80)), rng.choice(("M", "F"))]
        if sites:
            row.append(sites[i % len(sites)])
        rows.append("\t".join(row))
    (dest / "participants.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")

    labels_root = dest / "derivatives" / "labels"
    if with_masks:
        labels_root.mkdir(parents=True)
        write_dataset_description(labels_root, name="manual labels", dataset_type="derivative")

    n_ses, n_acq = len(sessions), len(acquisitions)
    ses_levels: Sequence[str | None] = list(sessions) if sessions else [None]
    for si, label in enumerate(labels):
        sub_dir = dest / f"sub-{label}"
        sub_dir.mkdir()
        if si % 4 == 0:
            write_json(sub_dir / f"sub-{label}_T2w.json", SIDECAR_RULES["subject"])
        for ki, ses in enumerate(ses_levels):
            rel = Path(f"sub-{label}") if ses is None else Path(f"sub-{label}", f"ses-{ses}")
            prefix = f"sub-{label}" if ses is None else f"sub-{label}_ses-{ses}"
            if ses is not None:
                (dest / rel).mkdir()
                if si % 3 == 0 and ki == 0:
                    write_json(dest / rel / f"{prefix}_T2w.json", SIDECAR_RULES["session"])
            anat = dest / rel / "anat"
            anat.mkdir()
            mask_dir = labels_root / rel / "anat"
            made_mask_dir = False
            for ai, acq in enumerate(acquisitions):
                index = skeleton_scan_index(si, ki, ai, n_ses, n_acq)
                stem = prefix + ("" if acq is None else f"_acq-{acq}") + "_T2w"
                family = acq.lower()[:3] if acq is not None else "iso"
                family = "ax" if family.startswith("ax") else family
                templates = TEMPLATES.get(family, TEMPLATES["iso"])
                img, msk = image_bytes(templates[rng.randrange(len(templates))])
                (anat / f"{stem}.nii.gz").write_bytes(img)
                if index % 5 == 0:
                    write_json(anat / f"{stem}.json", SIDECAR_RULES["file"])
                if with_masks and (index % 2 == 0 or index % 3 == 0):
                    if not made_mask_dir:
                        mask_dir.mkdir(parents=True, exist_ok=True)
                        made_mask_dir = True
                    if index % 2 == 0:
                        (mask_dir / f"{stem}_seg-manual.nii.gz").write_bytes(msk)
                    if index % 3 == 0:
                        (mask_dir / f"{stem}_lesion-manual.nii.gz").write_bytes(msk)
    return dest
