"""Sample the analytic anatomy on a voxel grid: a T2w-like image and exact masks.

Image model (signal relative to CSF = 1, before gain): bright CSF, grey cord,
dark canal wall, textured vertebral bodies with dark cortical rims and brighter
discs, posterior arches, epidural and subcutaneous fat, textured muscle. Lesions
add hyperintense oedema (``contrast`` x local cord signal, with a soft edge) and,
optionally, a hypointense haemorrhagic core. Implants null the signal inside an
ellipsoid and pile it up in a bright rim just outside (blooming).

Partial volume: each voxel averages ``ceil(voxel_mm / 1 mm)`` sub-samples along each
axis (so thick slices integrate over their thickness), then a Gaussian point spread
(sigma 0.5 voxel) blurs the axes that were not sub-sampled. A smooth multiplicative
bias field (posterior receive coil, fall-off towards the ends of the field of view)
and Rician noise (magnitude of complex Gaussian noise) follow.

Masks are exact at voxel centres: cord = centre inside the cord ellipse; lesion =
centre inside a lesion ellipsoid and inside the cord.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from cohort_sciseg.synth._grid import index_box, world_coordinates
from cohort_sciseg.synth.anatomy import BODY_FRACTION, Anatomy, Implant, Lesion

__all__ = ["RenderedScan", "render_scan"]

F32 = npt.NDArray[np.float32]

# Tissue signal relative to CSF (T2-weighted turbo spin echo).
_WALL = 0.10
_MARROW = 0.36
_CORTEX = 0.09
_NUCLEUS = 0.62
_ANNULUS = 0.26
_ARCH = 0.30
_EPIDURAL_FAT = 0.62
_MUSCLE = 0.24
_SUBCUT_FAT = 0.78
_PREVERTEBRAL = 0.30


@dataclass(frozen=True, slots=True)
class RenderedScan:
    """Arrays of one synthetic scan, on the grid ``affine`` / ``image.shape``.

    Attributes
    ----------
    image
        T2w-like image, ``int16`` (clipped to 0..32767) or ``float32``.
    cord
        Cord mask, ``uint8`` 0/1.
    lesion
        Lesion mask, ``uint8`` 0/1 (always within ``cord``).
    labels
        Lesion index map, ``uint8``: 0 background, ``i + 1`` for ``lesions[i]``.
    lesion_voxels
        Voxels of each lesion, in the order of the lesions given; sums to ``lesion.sum()``.
    affine
        Voxel-to-world affine (RAS+ mm).
    """

    image: npt.NDArray[np.generic]
    cord: npt.NDArray[np.uint8]
    lesion: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.uint8]
    lesion_voxels: tuple[int, ...]
    affine: npt.NDArray[np.float64]


def _full(arr: npt.NDArray[Any], shape: tuple[int, int, int]) -> npt.NDArray[Any]:
    """A writable array of ``shape`` (``arr`` itself when it already has it)."""
    if arr.shape == shape and arr.flags.writeable:
        return arr
    return np.broadcast_to(arr, shape).copy()


def _texture(anat: Anatomy, x: F32, y: F32, z: F32) -> F32:
    acc: F32 = np.zeros(np.broadcast_shapes(x.shape, y.shape, z.shape), np.float32)
    for (kx, ky, kz), ph in zip(anat.texture_k, anat.texture_phase, strict=True):
        acc += np.cos(np.float32(kx) * x + np.float32(ky) * y + np.float32(kz) * z + np.float32(ph))
    return acc / np.float32(math.sqrt(len(anat.texture_k) / 2))


def _tissue(anat: Anatomy, x: F32, y: F32, z: F32, tex: F32) -> F32:
    """Noise-free signal at broadcastable world points (``tex``: texture at the voxels)."""
    xc = anat.centre_x(z).astype(np.float32)
    yc = anat.centre_y(z).astype(np.float32)
    a = anat.semi_lr(z).astype(np.float32)
    b = anat.semi_ap(z).astype(np.float32)
    dx = x - xc
    dy = y - yc
    adx = np.abs(dx)
    # canal: CSF and wall
    ca, cb = a + np.float32(anat.csf_lr_mm), b + np.float32(anat.csf_ap_mm)
    shift = np.float32(anat.csf_dorsal_shift_mm)
    dyc = dy + shift
    q_csf = (dx / ca) ** 2 + (dyc / cb) ** 2
    w = np.float32(anat.wall_mm)
    q_wall = (dx / (ca + w)) ** 2 + (dyc / (cb + w)) ** 2
    front = cb - shift + w  # anterior edge of the canal wall, from the cord centre
    back = -(cb + shift + w)  # posterior edge
    # vertebral bodies and discs, anterior to the canal
    phase = np.abs(anat.vertebral_phase(z)).astype(np.float32)
    yb = front + np.float32(0.5 + anat.body_ap_mm)
    rbx, rby = np.float32(anat.body_lr_mm), np.float32(anat.body_ap_mm)
    q_body = (dx / rbx) ** 2 + ((dy - yb) / rby) ** 2
    body_half = np.float32(0.5 * BODY_FRACTION)
    rim = np.float32((1.0 - 1.2 / anat.body_ap_mm) ** 2)
    # posterior arch: laminae (slightly lower than the bodies), pedicles, spinous process
    arch_phase = np.abs(anat.vertebral_phase(z + np.float32(0.2 * anat.vertebra_period_mm)))
    arch_phase = arch_phase.astype(np.float32)
    arch_level = arch_phase < np.float32(0.3)
    spinous_level = arch_phase < np.float32(0.16)
    behind = dy < back
    lamina = behind & (dy > back - 7.0) & (adx < ca + w + 5.0)
    epidural = behind & (dy > back - 1.5) & (adx < ca)
    spinous = behind & (dy > back - 26.0) & (adx < 2.0 + 0.08 * (dy - back + 26.0))
    pedicle = (adx > ca) & (adx < ca + w + 6.0) & (dy >= back) & (dy < front + 2.0)

    out = np.full(np.broadcast_shapes(q_csf.shape, tex.shape), _MUSCLE, np.float32)
    out *= 1.0 + np.float32(0.1) * tex
    out = np.where(dy < np.float32(-40.0), np.float32(_SUBCUT_FAT), out)
    out = np.where(dy > yb + rby + 1.5, np.float32(_PREVERTEBRAL), out)
    bone = np.float32(_ARCH) * (1.0 + np.float32(0.25) * tex)
    out = np.where(lamina & ~arch_level, np.float32(_WALL), out)  # ligamenta flava
    out = np.where(((lamina | pedicle) & arch_level) | (spinous & spinous_level), bone, out)
    out = np.where(epidural, np.float32(_EPIDURAL_FAT), out)
    marrow = np.float32(_MARROW) * (1.0 + np.float32(0.3) * tex)
    body = np.where(q_body <= rim, marrow, np.float32(_CORTEX))
    body = np.where(phase > body_half - np.float32(0.03), np.float32(_CORTEX), body)  # endplates
    disc = np.where(q_body <= 0.45, np.float32(_NUCLEUS), np.float32(_ANNULUS))
    out = np.where(q_body <= 1.0, np.where(phase < body_half, body, disc), out)
    out = np.where(q_wall <= 1.0, np.float32(_WALL), out)
    out = np.where(q_csf <= 1.0, np.float32(1.0), out)
    q_cord = (dx / a) ** 2 + (dy / b) ** 2
    out = np.where(q_cord <= 1.0, np.float32(anat.cord_intensity), out)
    return out


def _apply_lesion(anat: Anatomy, les: Lesion, x: F32, y: F32, z: F32, sample: F32) -> None:
    """Overwrite ``sample`` (a view on the lesion's box) with oedema and core signal."""
    q = les.q(x, y, z)
    in_cord = anat.cord_q(x, y, z) <= 1.0
    # soft edge: full contrast inside q <= 0.81, none beyond q >= 1.21 (half-way at the mask edge)
    weight = np.clip((np.float32(1.21) - q) / np.float32(0.40), 0.0, 1.0) * in_cord
    cord_signal = np.float32(anat.cord_intensity)
    oedema = cord_signal * np.float32(les.contrast)
    sample += weight * (oedema - sample)
    if les.has_core:
        qc = les.q(x, y, z, scale=les.core_fraction)
        core_w = np.clip((np.float32(1.44) - qc) / np.float32(0.8), 0.0, 1.0) * in_cord
        sample += core_w * (np.float32(0.35) * cord_signal - sample)


def _implant_factor(imp: Implant, x: F32, y: F32, z: F32) -> F32:
    q = imp.q(x, y, z)
    r = np.sqrt(q)
    void = np.clip((r - np.float32(0.9)) / np.float32(0.15), 0.02, 1.0)
    # pile-up on the superior side, where the readout shift stacks the signal
    side = np.float32(0.35) + np.float32(0.65) * (z > np.float32(imp.centre_mm[2]))
    bloom = (
        np.float32(imp.bloom) * np.exp(-(((r - np.float32(1.12)) / np.float32(0.1)) ** 2)) * side
    )
    return (void * (1.0 + bloom)).astype(np.float32)


def render_scan(
    anatomy: Anatomy,
    lesions: tuple[Lesion, ...],
    affine: npt.NDArray[np.float64],
    shape: tuple[int, int, int],
    *,
    rng: np.random.Generator,
    implant: Implant | None = None,
    snr: float = 20.0,
    gain: float = 1500.0,
    dtype: Literal["int16", "float32"] = "int16",
    bias_strength: float = 0.4,
) -> RenderedScan:
    """Render one scan of ``anatomy`` with ``lesions`` on the grid ``(affine, shape)``.

    Parameters
    ----------
    anatomy, lesions, implant
        Analytic subject (world mm); lesions must not overlap.
    affine, shape
        Voxel grid (RAS+ mm); any orientation, oblique allowed.
    rng
        Source of the noise (the only random part of rendering).
    snr
        Cord signal over the noise standard deviation.
    gain
        Scale from relative signal (CSF = 1) to stored values.
    dtype
        ``"int16"`` (rounded, clipped to 0..32767) or ``"float32"``.
    bias_strength
        Strength of the posterior-coil bias field (0: none).

    Returns
    -------
    RenderedScan
    """
    shape = (int(shape[0]), int(shape[1]), int(shape[2]))
    vox = np.sqrt(np.sum(np.square(affine[:3, :3]), axis=0))
    nsub = [max(1, math.ceil(v / 1.0 - 1e-6)) for v in vox]

    xc, yc, zc = world_coordinates(affine, shape)
    tex = np.broadcast_to(_texture(anatomy, xc, yc, zc), shape)

    boxes = []
    for les in lesions:
        half = les.half_extent_mm * 1.15 + vox.max()
        c = np.asarray(les.centre_mm)
        boxes.append(index_box(affine, shape, c - half, c + half))
    imp_box = None
    if implant is not None:
        half = np.asarray(implant.semi_axes_mm) * 1.4 + vox.max()
        c = np.asarray(implant.centre_mm)
        imp_box = index_box(affine, shape, c - half, c + half)

    acc = np.zeros(shape, np.float32)
    offsets = [[(k + 0.5) / n - 0.5 for k in range(n)] for n in nsub]
    for ox in offsets[0]:
        for oy in offsets[1]:
            for oz in offsets[2]:
                x, y, z = world_coordinates(affine, shape, (ox, oy, oz))
                sample = _full(_tissue(anatomy, x, y, z, tex), shape)
                for les, box in zip(lesions, boxes, strict=True):
                    if box is None:
                        continue
                    sl, sub = box
                    bs = tuple(s.stop - s.start for s in sl)
                    bx, by, bz = world_coordinates(sub, (bs[0], bs[1], bs[2]), (ox, oy, oz))
                    _apply_lesion(anatomy, les, bx, by, bz, sample[sl])
                if implant is not None and imp_box is not None:
                    sl, sub = imp_box
                    bs = tuple(s.stop - s.start for s in sl)
                    bx, by, bz = world_coordinates(sub, (bs[0], bs[1], bs[2]), (ox, oy, oz))
                    sample[sl] *= _implant_factor(implant, bx, by, bz)
                acc += sample
    img = acc / np.float32(len(offsets[0]) * len(offsets[1]) * len(offsets[2]))
    sigma = [0.5 if n == 1 else 0.0 for n in nsub]
    img = ndimage.gaussian_filter(img, sigma=sigma, mode="nearest")

    # bias: the posterior receive coil favours posterior tissue; signal drops at the FOV ends
    ycord = anatomy.centre_y(zc).astype(np.float32)
    zmid = np.float32(affine[2, :3] @ ((np.asarray(shape) - 1) / 2.0) + affine[2, 3])
    zhalf = np.float32(max(20.0, float(np.ptp(zc)) / 2 + 1.0))
    bias = np.exp(np.float32(-bias_strength / 30.0) * (yc - ycord)) * (
        1.0 - np.float32(0.3) * ((zc - zmid) / zhalf) ** 2
    )
    img = img * bias

    sd = np.float32(anatomy.cord_intensity / snr)
    n1 = rng.standard_normal(shape, dtype=np.float32)
    n2 = rng.standard_normal(shape, dtype=np.float32)
    img = np.sqrt((img + sd * n1) ** 2 + (sd * n2) ** 2) * np.float32(gain)

    image: npt.NDArray[np.generic]
    if dtype == "int16":
        image = np.clip(np.rint(img), 0, np.iinfo(np.int16).max).astype(np.int16)
    else:
        image = img.astype(np.float32)

    # masks, exactly at voxel centres
    cord = _full(anatomy.cord_q(xc, yc, zc) <= 1.0, shape)
    labels = np.zeros(shape, np.uint8)
    for i, (les, box) in enumerate(zip(lesions, boxes, strict=True), start=1):
        if box is None:
            continue
        sl, sub = box
        bs = tuple(s.stop - s.start for s in sl)
        bx, by, bz = world_coordinates(sub, (bs[0], bs[1], bs[2]))
        inside = (les.q(bx, by, bz) <= 1.0) & cord[sl] & (labels[sl] == 0)
        labels[sl][inside] = i
    counts = np.bincount(labels.ravel(), minlength=len(lesions) + 1)
    return RenderedScan(
        image=image,
        cord=cord.astype(np.uint8),
        lesion=(labels > 0).astype(np.uint8),
        labels=labels,
        lesion_voxels=tuple(int(c) for c in counts[1:]),
        affine=np.asarray(affine, dtype=np.float64),
    )
