"""Semi-synthetic data: ellipsoidal lesions inserted into the cords of real scans.

For every T2w image of a BIDS dataset that has a cord mask
``derivatives/labels/sub-*/[ses-*/]anat/<stem>_<cord_suffix>.nii.gz``,
:func:`insert_lesions` writes into a new BIDS dataset ``<OUT>/<source folder name>``:

- the image with hyperintense lesions added (same header, affine and on-disk dtype),
- the cord mask (binarised at 0.5, ``uint8``, on the source mask's header/affine),
- the lesion mask ``<stem>_lesion-manual.nii.gz`` (``uint8``, on the image's header/affine),
- the image's JSON sidecar when it has one, ``participants.tsv`` rows of the
  subjects written, and ground truth in ``<OUT>/ground_truth/``
  (:mod:`cohort_sciseg.synth.ground_truth`).

Lesions are ellipsoids in world mm, long axis along the local cord direction (first
principal axis of the cord voxels within 12 mm), and lie strictly inside the cord:
every voxel centre inside an ellipsoid is a cord voxel that is not on the cord's
boundary (the cord mask eroded by one voxel, face connectivity). Lesions do not
touch each other (no two lesion voxels are 26-neighbours), so each is one
connected component. Intensity: ``image += w (contrast - 1) m``, with ``m`` the
median cord intensity within 10 mm of the lesion centre, ``contrast`` in
[1.6, 2.2] and ``w`` the fraction of 27 sub-voxel samples inside the ellipsoid
(partial volume), applied to cord voxels only; integer images are rounded and
clipped to their type's range. Existing lesion masks of the source are not
carried over (a warning is logged when one exists).

The source dataset is only read.
"""

from __future__ import annotations

import logging
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from cohort_sciseg.errors import SynthError, format_error
from cohort_sciseg.io import (
    acquisition_plane,
    atomic_write_text,
    binarize,
    check_same_geometry,
    find_labels_masks,
    load_nifti,
    nifti_stem,
    orientation_code,
    save_nifti,
)
from cohort_sciseg.synth import _bids
from cohort_sciseg.synth._grid import index_box, world_coordinates
from cohort_sciseg.synth.anatomy import Lesion
from cohort_sciseg.synth.cohort import LESION_SUFFIX, SynthCohort
from cohort_sciseg.synth.ground_truth import lesion_rows as lesion_rows_of
from cohort_sciseg.synth.ground_truth import measure_slices, obliquity_deg, write_ground_truth

__all__ = ["find_masked_images", "insert_lesions", "insert_lesions_into_arrays"]

logger = logging.getLogger(__name__)

_MIN_VOXELS = 10


def find_masked_images(
    bids_dir: str | os.PathLike[str], cord_suffix: str
) -> list[tuple[Path, Path]]:
    """``(image, cord mask)`` pairs of the T2w images of ``bids_dir`` that have a cord mask, sorted."""
    root = Path(bids_dir)
    images = sorted(
        p
        for pattern in ("sub-*/anat/*_T2w.nii*", "sub-*/ses-*/anat/*_T2w.nii*")
        for p in root.glob(pattern)
        if p.name.endswith((".nii", ".nii.gz"))
    )
    pairs = []
    for img in images:  # the mask discovery reads (the one rule of io.derivatives)
        masks = find_labels_masks(root, img, [cord_suffix])
        if masks:
            pairs.append((img, masks[0]))
    return pairs


def _mask_suffixes(root: Path) -> list[str]:
    found = set()
    for p in (root / "derivatives" / "labels").glob("sub-*/**/*_T2w_*.nii*"):
        found.add(nifti_stem(p).rsplit("_T2w_", 1)[-1])
    return sorted(found)


def _check_lesions_per_scan(value: object) -> tuple[int, int]:
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 0 <= value[0] <= value[1]
    )
    if not ok:
        msg = format_error(
            f"lesions_per_scan={value!r} is not valid",
            expected="a pair (low, high) of integers with 0 <= low <= high (lesions drawn uniformly in that range)",
            fix="pass e.g. lesions_per_scan=(1, 3)",
        )
        raise SynthError(msg)
    return int(value[0]), int(value[1])  # type: ignore[index]


def _local_axes(
    points: npt.NDArray[np.float64], centre: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Rotation with columns (left-right, antero-posterior, cord direction) at ``centre``."""
    near = points[np.sum((points - centre) ** 2, axis=1) <= 12.0**2]
    t = np.array([0.0, 0.0, 1.0])
    if len(near) >= 3:
        _, _, vt = np.linalg.svd(near - near.mean(axis=0), full_matrices=False)
        t = vt[0] if vt[0][2] >= 0 else -vt[0]
    lr = np.array([1.0, 0.0, 0.0]) - t[0] * t
    if np.linalg.norm(lr) < 1e-6:  # cord along x: unusual, any perpendicular will do
        lr = np.array([0.0, 1.0, 0.0]) - t[1] * t
    lr /= np.linalg.norm(lr)
    return np.stack([lr, np.cross(t, lr), t], axis=1)


def insert_lesions_into_arrays(
    image: npt.NDArray[np.floating],
    cord: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    *,
    n_lesions: int,
    rng: np.random.Generator,
    max_attempts: int = 200,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint8], tuple[Lesion, ...]]:
    """Insert up to ``n_lesions`` hyperintense ellipsoids strictly inside ``cord``.

    Parameters
    ----------
    image
        The real image (any numeric dtype; not modified).
    cord
        Boolean cord mask on the same grid.
    affine
        Voxel-to-world affine (mm).
    n_lesions
        Lesions wanted; fewer come back when the cord has no room left.
    rng
        Generator of every random choice.
    max_attempts
        Candidate placements tried before giving up.

    Returns
    -------
    image, labels, lesions
        New image (float64), label map (``uint8``, ``i + 1`` for ``lesions[i]``),
        and the lesions placed (world mm).
    """
    out = np.asarray(image, dtype=np.float64).copy()
    labels = np.zeros(cord.shape, np.uint8)
    if n_lesions == 0 or not cord.any():
        return out, labels, ()
    vox = np.sqrt(np.sum(np.square(affine[:3, :3]), axis=0))
    interior = ndimage.binary_erosion(cord)
    dist = ndimage.distance_transform_edt(cord, sampling=vox)
    # centres near the centreline: the deepest 25 % of the cord
    depth = np.percentile(dist[cord], 75.0)
    cand = np.argwhere(interior & (dist >= max(depth, 2.0, 1.5 * float(vox.min()))))
    if len(cand) == 0:
        return out, labels, ()
    cord_idx = np.argwhere(cord)
    pts = cord_idx @ affine[:3, :3].T + affine[:3, 3]
    lesions: list[Lesion] = []
    neighbourhood = np.ones((3, 3, 3), bool)
    for _ in range(max_attempts):
        if len(lesions) == n_lesions:
            break
        ci = cand[rng.integers(len(cand))]
        centre = affine[:3, :3] @ (ci + rng.uniform(-0.3, 0.3, 3)) + affine[:3, 3]
        rot = _local_axes(pts, centre)
        inv = np.linalg.inv(affine)
        free_lr = min(_free_length(interior, inv, centre, rot[:, 0] * sign) for sign in (1.0, -1.0))
        free_ap = min(_free_length(interior, inv, centre, rot[:, 1] * sign) for sign in (1.0, -1.0))
        semi = np.array(
            [
                rng.uniform(0.6, 0.95) * free_lr,
                rng.uniform(0.6, 0.95) * free_ap,
                rng.uniform(4.0, 12.0),
            ]
        )
        semi[:2] = np.maximum(semi[:2], 1.0)
        contrast = float(rng.uniform(1.6, 2.2))
        for _shrink in range(6):
            les = Lesion(
                centre_mm=(float(centre[0]), float(centre[1]), float(centre[2])),
                semi_axes_mm=(float(semi[0]), float(semi[1]), float(semi[2])),
                axes=tuple((float(r[0]), float(r[1]), float(r[2])) for r in rot),
                contrast=contrast,
            )
            half = les.half_extent_mm + 2 * vox.max()
            box = index_box(affine, cord.shape, centre - half, centre + half)
            if box is None:
                break
            sl, sub = box
            bshape = (sl[0].stop - sl[0].start, sl[1].stop - sl[1].start, sl[2].stop - sl[2].start)
            x, y, z = world_coordinates(sub, bshape)
            inside = np.broadcast_to(les.q(x, y, z) <= 1.0, bshape)
            if np.any(inside & ~interior[sl]):
                semi *= (0.85, 0.85, 0.9)
                continue
            if inside.sum() < _MIN_VOXELS:
                break
            if np.any(ndimage.binary_dilation(inside, neighbourhood) & (labels[sl] > 0)):
                break
            # partial-volume weight from 3 x 3 x 3 sub-voxel samples
            w = np.zeros(bshape, np.float32)
            for o in [
                (a, b, c)
                for a in (-1 / 3, 0, 1 / 3)
                for b in (-1 / 3, 0, 1 / 3)
                for c in (-1 / 3, 0, 1 / 3)
            ]:
                xo, yo, zo = world_coordinates(sub, bshape, o)
                w += les.q(xo, yo, zo) <= 1.0
            w = w / 27.0 * cord[sl]
            local = _local_cord_intensity(out, cord, labels, affine, centre)
            out[sl] += w * (contrast - 1.0) * local
            labels[sl][inside] = len(lesions) + 1
            lesions.append(les)
            break
    return out, labels, tuple(lesions)


def _free_length(
    inside: npt.NDArray[np.bool_],
    inv_affine: npt.NDArray[np.floating[Any]],
    start: npt.NDArray[np.float64],
    direction: npt.NDArray[np.float64],
    step_mm: float = 0.25,
    max_mm: float = 20.0,
) -> float:
    """Distance (mm) from ``start`` along ``direction`` to the first voxel outside ``inside``."""
    s = np.arange(0.0, max_mm, step_mm)
    pts = start[None, :] + s[:, None] * direction[None, :]
    idx = np.rint(pts @ inv_affine[:3, :3].T + inv_affine[:3, 3]).astype(int)
    ok = np.all((idx >= 0) & (idx < np.asarray(inside.shape)), axis=1)
    ok[ok] = inside[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
    out = np.flatnonzero(~ok)
    return float(s[out[0]]) if out.size else max_mm


def _local_cord_intensity(
    image: npt.NDArray[np.float64],
    cord: npt.NDArray[np.bool_],
    labels: npt.NDArray[np.uint8],
    affine: npt.NDArray[np.float64],
    centre: npt.NDArray[np.float64],
    radius_mm: float = 10.0,
) -> float:
    box = index_box(affine, cord.shape, centre - radius_mm, centre + radius_mm)
    if box is None:
        return float(np.median(image[cord]))
    sl, sub = box
    bshape = (sl[0].stop - sl[0].start, sl[1].stop - sl[1].start, sl[2].stop - sl[2].start)
    x, y, z = world_coordinates(sub, bshape)
    near = ((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) <= radius_mm**2
    sel = near & cord[sl] & (labels[sl] == 0)
    values = image[sl][sel]
    return float(np.median(values)) if values.size else float(np.median(image[cord]))


def _to_dtype(data: npt.NDArray[np.float64], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(data), info.min, info.max).astype(dtype)
    return data.astype(dtype)


def insert_lesions(
    bids_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    cord_suffix: str = "seg-manual",
    seed: int = 0,
    lesions_per_scan: tuple[int, int] = (1, 3),
) -> SynthCohort:
    """Insert synthetic lesions into every masked T2w image of a real BIDS dataset.

    Parameters
    ----------
    bids_dir
        Source BIDS dataset (read only).
    out_dir
        New or empty folder; the dataset goes to ``<out_dir>/<bids_dir name>`` and
        the ground truth to ``<out_dir>/ground_truth``.
    cord_suffix
        Suffix of the cord masks in ``derivatives/labels`` (``<stem>_<cord_suffix>.nii.gz``).
    seed
        Non-negative seed; each image's generator is seeded with ``(seed, crc32 of
        its path relative to bids_dir)``, so an image's lesions do not depend on the
        other images. Same seed, same bytes.
    lesions_per_scan
        ``(low, high)``: each image gets a uniform draw in that range (fewer when
        the cord has no room).

    Returns
    -------
    SynthCohort
        ``n_sites`` is 1 (the source dataset).

    Raises
    ------
    SynthError
        Bad options, source folder missing, no image with a cord mask, output folder
        not empty or inside the source dataset.
    GeometryError
        A cord mask is not on its image's voxel grid.
    NiftiError
        An image or mask cannot be read.
    """
    src = Path(bids_dir).expanduser().absolute()
    _bids.check_int("seed", seed, 0)
    lo, hi = _check_lesions_per_scan(lesions_per_scan)
    if not src.is_dir():
        msg = format_error(
            "the source BIDS dataset does not exist or is not a folder",
            path=src,
            expected="a BIDS dataset folder with sub-*/anat/*_T2w.nii.gz images",
            fix="check the path",
        )
        raise SynthError(msg, path=src)
    pairs = find_masked_images(src, cord_suffix)
    if not pairs:
        found = _mask_suffixes(src)
        msg = format_error(
            f"no T2w image has a cord mask with suffix {cord_suffix!r} "
            f"(mask suffixes found in derivatives/labels: {found if found else 'none'})",
            path=src,
            expected=f"derivatives/labels/sub-*/[ses-*/]anat/<stem>_{cord_suffix}.nii.gz next to the images",
            fix="pass cord_suffix= one of the suffixes found, or add cord masks (e.g. `sct_deepseg_sc`)",
        )
        raise SynthError(msg, path=src)
    out_abs = Path(out_dir).expanduser().absolute()
    if out_abs.resolve() == src.resolve() or src.resolve() in out_abs.resolve().parents:
        msg = format_error(
            "the output folder is inside the source dataset",
            path=out_abs,
            expected="a folder outside the source dataset (which is never modified)",
            fix="choose an output folder outside it",
        )
        raise SynthError(msg, path=out_abs)
    out = _bids.prepare_output(out_abs)
    root = out / src.name
    desc = f"insert_lesions(seed={seed}, lesions_per_scan=({lo}, {hi})) into {src.name}"
    _bids.write_dataset_description(root, f"{src.name} with synthetic lesions", desc)
    _bids.write_dataset_description(
        root / "derivatives" / "labels",
        f"Cord masks of {src.name} and synthetic lesion masks",
        desc,
        derivative=True,
    )
    atomic_write_text(
        root / "README",
        f"Semi-synthetic data: lesions inserted by cohort-sciseg into the cords of {src.name} "
        f"(seed {seed}). Ground truth: ../ground_truth/.\n",
    )

    site = _bids.site_label(src.name)
    scan_rows: list[dict[str, Any]] = []
    lesion_rows: list[dict[str, Any]] = []
    subjects: list[str] = []
    for img_path, mask_path in pairs:
        rel_img = img_path.relative_to(src)
        stem = nifti_stem(img_path)
        sid = _bids.scan_id(site, stem)
        vol = load_nifti(img_path, scan_id=sid)
        cord_vol = load_nifti(mask_path, scan_id=sid)
        check_same_geometry(vol, cord_vol, what="cord mask", scan_id=sid)
        if list((mask_path.parent).glob(f"{stem}_lesion-*.nii*")):
            logger.warning(
                "%s: the source lesion mask is not carried over; only inserted lesions are labelled",
                sid,
            )
        rng = np.random.default_rng([seed, zlib.crc32(rel_img.as_posix().encode())])
        cord = binarize(cord_vol.data)
        new, labels, lesions = insert_lesions_into_arrays(
            vol.data, cord, vol.affine, n_lesions=int(rng.integers(lo, hi + 1)), rng=rng
        )
        disk_dtype = np.dtype(vol.header.get_data_dtype())
        out_dtype = (
            disk_dtype if vol.data.dtype == disk_dtype else np.dtype(np.float32)
        )  # scaled input
        rel_dir = img_path.parent.relative_to(src)
        new_img = root / rel_dir / img_path.name
        labels_dir = root / "derivatives" / "labels" / rel_dir
        cord_out = labels_dir / mask_path.name
        lesion_out = labels_dir / f"{stem}_{LESION_SUFFIX}.nii.gz"
        save_nifti(new_img, _to_dtype(new, out_dtype), vol.affine, header=vol.header)
        save_nifti(cord_out, cord.astype(np.uint8), cord_vol.affine, header=cord_vol.header)
        save_nifti(lesion_out, (labels > 0).astype(np.uint8), vol.affine, header=vol.header)
        sidecar = img_path.with_name(f"{stem}.json")
        if sidecar.is_file():
            atomic_write_text(new_img.with_name(sidecar.name), sidecar.read_text(encoding="utf-8"))
        sub = stem.split("_")[0][len("sub-") :]
        if sub not in subjects:
            subjects.append(sub)
        ents = dict(part.split("-", 1) for part in stem.split("_")[:-1] if "-" in part)
        m = measure_slices(cord, labels, vol.affine, len(lesions))
        vox = np.asarray(vol.voxel_size_mm)
        voxel_volume = float(np.prod(vox))
        ids = {
            "scan_id": sid,
            "site": site,
            "sub": sub,
            "ses": ents.get("ses"),
            "acq": ents.get("acq"),
            "image_path": _bids.relpath(new_img, out),
        }
        lesion_rows += lesion_rows_of(
            ids,
            lesions,
            m,
            voxel_volume_mm3=voxel_volume,
            lesion_mask_path=_bids.relpath(lesion_out, out),
        )
        n_vox = int(sum(m.lesion_voxels))
        scan_rows.append(
            {
                **ids,
                "cord_mask_path": _bids.relpath(cord_out, out),
                "lesion_mask_path": _bids.relpath(lesion_out, out),
                "source_image_path": img_path.as_posix(),
                "orientation": orientation_code(vol.affine),
                "acquisition_plane": acquisition_plane(vol.affine),
                "dim_x": vol.shape[0],
                "dim_y": vol.shape[1],
                "dim_z": vol.shape[2],
                "voxel_x_mm": float(vox[0]),
                "voxel_y_mm": float(vox[1]),
                "voxel_z_mm": float(vox[2]),
                "oblique_deg": obliquity_deg(vol.affine),
                "n_lesions": len(lesions),
                "lesion_voxels": n_vox,
                "total_lesion_volume_mm3": n_vox * voxel_volume,
                "total_analytic_volume_mm3": float(sum(les.volume_mm3 for les in lesions)),
                "max_axial_damage_ratio": m.max_axial_damage_ratio,
                "analytic_max_axial_damage_ratio": None,
                "cord_voxels": m.cord_voxels,
                "cord_volume_mm3": m.cord_voxels * voxel_volume,
                "implant": None,
                "implant_level": None,
                "image_quality": None,
            }
        )
    _write_participants(src, root, subjects)
    config = {
        "function": "insert_lesions",
        "source": src.as_posix(),
        "cord_suffix": cord_suffix,
        "seed": seed,
        "lesions_per_scan": [lo, hi],
    }
    lesions_path, scans_path = write_ground_truth(out, scan_rows, lesion_rows, config)
    return SynthCohort(
        out_dir=out,
        dataset_roots=(root,),
        lesions_table=lesions_path.absolute(),
        scans_table=scans_path.absolute(),
        n_sites=1,
        n_subjects=len(subjects),
        n_scans=len(scan_rows),
        n_lesions=len(lesion_rows),
        seed=seed,
    )


def _write_participants(src: Path, root: Path, subjects: list[str]) -> None:
    """Copy the source's ``participants.tsv`` rows (and ``.json``) of the subjects written."""
    table = src / "participants.tsv"
    wanted = {f"sub-{s}" for s in subjects}
    if not table.is_file():
        _bids.write_tsv(
            root / "participants.tsv",
            ("participant_id",),
            [{"participant_id": f"sub-{s}"} for s in subjects],
        )
        return
    lines = table.read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], [ln for ln in lines[1:] if ln.split("\t", 1)[0] in wanted]
    atomic_write_text(root / "participants.tsv", "\n".join([header, *rows]) + "\n")
    side = src / "participants.json"
    if side.is_file():
        atomic_write_text(root / "participants.json", side.read_text(encoding="utf-8"))
