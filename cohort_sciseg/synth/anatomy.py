"""Analytic cervical-spine anatomy, lesions and metal implants, in world millimetres.

Everything here is defined in world (RAS+) coordinates, independent of any voxel
grid, so images of one subject at different resolutions and orientations describe
the same anatomy. The renderer (:mod:`cohort_sciseg.synth.render`) samples these
shapes on voxel grids.

Model
-----
- The cord centreline runs superior-inferior; its antero-posterior position bows
  anteriorly like the cervical lordosis, ``y_c(z) = y0 + L cos(pi (z - z0) / S)``,
  with a small lateral sway ``x_c(z) = x0 + B sin(2 pi (z - z0) / P + phi)``.
- Axial cross-sections of the cord are ellipses centred on the centreline, with
  semi-axes ``a(z)`` (left-right, ~4 mm) and ``b(z)`` (antero-posterior, ~3 mm),
  wider at the cervical enlargement (C5-C6).
- CSF fills a larger ellipse around the cord (shifted dorsally), wrapped in a dark
  canal wall; vertebral bodies sit anterior to the canal, one every
  ``vertebra_period_mm`` along z, separated by discs; the origin ``z0`` is the
  C4/C5 disc.
- A lesion is an ellipsoid whose long axis follows the centreline tangent at its
  centre; it lies strictly inside the cord (every point of its surface is at most
  :data:`LESION_CORD_MARGIN` of the way to the cord boundary, in normalised
  elliptical radius), so ``lesion ∩ cord == lesion`` holds analytically.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "LESION_CORD_MARGIN",
    "VERTEBRAL_LEVELS",
    "Anatomy",
    "Implant",
    "Lesion",
    "draw_anatomy",
    "draw_implant",
    "draw_lesions",
    "max_axial_damage_ratio",
]

ArrayF = npt.NDArray[np.floating]

#: Vertebral levels that the phantom field of view covers, top to bottom.
VERTEBRAL_LEVELS = ("C2", "C3", "C4", "C5", "C6", "C7", "T1")
_LEVEL_NUMBER = {name: i + 2 for i, name in enumerate(VERTEBRAL_LEVELS)}  # C2 -> 2 ... T1 -> 8

#: Largest normalised elliptical radius of the cord that a lesion surface may reach.
LESION_CORD_MARGIN = 0.9

#: Fraction of a vertebral period taken by the body (the rest is the disc).
BODY_FRACTION = 0.78


@dataclass(frozen=True, slots=True)
class Anatomy:
    """Geometry of one subject's cervical spine (all lengths in mm, world RAS+).

    Attributes
    ----------
    origin_mm
        Cord centre at the C4/C5 disc, world mm.
    lordosis_mm, lordosis_span_mm
        Amplitude and half-wavelength of the anterior bow of the centreline.
    sway_mm, sway_period_mm, sway_phase
        Lateral sway of the centreline.
    cord_lr_mm, cord_ap_mm
        Cord semi-axes (left-right, antero-posterior) away from the enlargement.
    enlargement_mm
        Extra left-right semi-axis at the cervical enlargement (C5-C6).
    csf_lr_mm, csf_ap_mm
        Width of the CSF space around the cord, added to the cord semi-axes.
    csf_dorsal_shift_mm
        Posterior shift of the CSF ellipse (more CSF behind the cord).
    wall_mm
        Thickness of the dark canal wall.
    vertebra_period_mm
        Height of one vertebra plus one disc.
    body_lr_mm, body_ap_mm
        Vertebral body semi-axes.
    texture_k, texture_phase
        Wave vectors (rad/mm) and phases of the bone and muscle texture.
    cord_intensity
        Cord signal relative to CSF (1.0), before bias and noise.
    """

    origin_mm: tuple[float, float, float]
    lordosis_mm: float
    lordosis_span_mm: float
    sway_mm: float
    sway_period_mm: float
    sway_phase: float
    cord_lr_mm: float
    cord_ap_mm: float
    enlargement_mm: float
    csf_lr_mm: float
    csf_ap_mm: float
    csf_dorsal_shift_mm: float
    wall_mm: float
    vertebra_period_mm: float
    body_lr_mm: float
    body_ap_mm: float
    texture_k: tuple[tuple[float, float, float], ...]
    texture_phase: tuple[float, ...]
    cord_intensity: float

    # -- centreline and cross-section, vectorised over z --------------------------------
    def centre_x(self, z: ArrayF) -> ArrayF:
        """Left-right centreline position (mm) at world ``z`` (mm)."""
        x0, _, z0 = self.origin_mm
        return x0 + self.sway_mm * np.sin(
            2 * np.pi * (z - z0) / self.sway_period_mm + self.sway_phase
        )

    def centre_y(self, z: ArrayF) -> ArrayF:
        """Antero-posterior centreline position (mm) at world ``z`` (mm)."""
        _, y0, z0 = self.origin_mm
        return y0 + self.lordosis_mm * np.cos(np.pi * (z - z0) / self.lordosis_span_mm)

    def tangent(self, z: float) -> npt.NDArray[np.float64]:
        """Unit tangent of the centreline at world ``z``, pointing superiorly."""
        _, _, z0 = self.origin_mm
        w = 2 * np.pi / self.sway_period_mm
        dx = self.sway_mm * w * np.cos(w * (z - z0) + self.sway_phase)
        dy = (
            -self.lordosis_mm
            * np.pi
            / self.lordosis_span_mm
            * np.sin(np.pi * (z - z0) / self.lordosis_span_mm)
        )
        t = np.array([dx, dy, 1.0])
        return t / np.linalg.norm(t)

    def _enlargement(self, z: ArrayF) -> ArrayF:
        z_enl = self.level_z("C6") + 0.5 * self.vertebra_period_mm
        return np.exp(-(((z - z_enl) / 20.0) ** 2))

    def semi_lr(self, z: ArrayF) -> ArrayF:
        """Left-right cord semi-axis (mm) at world ``z``."""
        return self.cord_lr_mm + self.enlargement_mm * self._enlargement(z)

    def semi_ap(self, z: ArrayF) -> ArrayF:
        """Antero-posterior cord semi-axis (mm) at world ``z``."""
        return self.cord_ap_mm + 0.25 * self.enlargement_mm * self._enlargement(z)

    def cord_q(self, x: ArrayF, y: ArrayF, z: ArrayF) -> ArrayF:
        """Squared normalised elliptical radius of the cord: ``<= 1`` inside the cord."""
        u = (x - self.centre_x(z)) / self.semi_lr(z)
        v = (y - self.centre_y(z)) / self.semi_ap(z)
        return u * u + v * v

    def cord_area_mm2(self, z: ArrayF) -> ArrayF:
        """Area (mm2) of the cord's axial cross-section at world ``z``."""
        return np.pi * self.semi_lr(z) * self.semi_ap(z)

    # -- vertebrae ---------------------------------------------------------------------
    def level_z(self, level: str) -> float:
        """World z (mm) of the centre of a vertebral body (``"C2"`` ... ``"T1"``)."""
        return float(self.origin_mm[2] + (4.5 - _LEVEL_NUMBER[level]) * self.vertebra_period_mm)

    def level_at(self, z: float) -> str:
        """Vertebral level whose body or lower disc contains world ``z`` (clamped to C2-T1)."""
        n = 4.5 - (z - self.origin_mm[2]) / self.vertebra_period_mm
        k = int(np.clip(np.floor(n + 0.5), 2, 8))
        return VERTEBRAL_LEVELS[k - 2]

    def vertebral_phase(self, z: ArrayF) -> ArrayF:
        """Signed distance from the nearest body centre, in periods (``|phase| <= 0.5``)."""
        n = 4.5 - (z - self.origin_mm[2]) / self.vertebra_period_mm
        return n - np.floor(n + 0.5)


@dataclass(frozen=True, slots=True)
class Lesion:
    """An ellipsoidal intramedullary lesion (all lengths in mm, world RAS+).

    Attributes
    ----------
    centre_mm
        Ellipsoid centre.
    semi_axes_mm
        Semi-axes along the lesion's own axes: left-right, antero-posterior, long axis.
    axes
        3x3 rotation whose columns are those axes in world coordinates; the long
        axis is the cord centreline tangent at the centre.
    has_core
        Whether a hypointense (haemorrhagic) core sits at the centre.
    core_fraction
        Core semi-axes as a fraction of the lesion's.
    contrast
        Oedema signal relative to the local cord signal (> 1: hyperintense).
    """

    centre_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]
    axes: tuple[tuple[float, float, float], ...]
    has_core: bool = False
    core_fraction: float = 0.4
    contrast: float = 2.0

    @property
    def rotation(self) -> npt.NDArray[np.float64]:
        """The 3x3 rotation (columns: lesion axes in world coordinates)."""
        return np.asarray(self.axes, dtype=np.float64)

    @property
    def quadratic_form(self) -> npt.NDArray[np.float64]:
        """Matrix ``M`` with ``(p - c)^T M (p - c) <= 1`` inside the ellipsoid."""
        r = self.rotation
        return r @ np.diag(1.0 / np.square(self.semi_axes_mm)) @ r.T

    @property
    def half_extent_mm(self) -> npt.NDArray[np.float64]:
        """Half-extent of the ellipsoid along the world x, y, z axes (mm)."""
        r = self.rotation
        return np.sqrt(np.square(r) @ np.square(self.semi_axes_mm))

    @property
    def volume_mm3(self) -> float:
        """Analytic ellipsoid volume, ``4/3 pi a b c`` (mm3)."""
        a, b, c = self.semi_axes_mm
        return float(4.0 / 3.0 * np.pi * a * b * c)

    @property
    def tilt_deg(self) -> float:
        """Angle between the long axis and the world superior-inferior axis (degrees)."""
        return float(np.degrees(np.arccos(min(1.0, abs(self.rotation[2, 2])))))

    def q(self, x: ArrayF, y: ArrayF, z: ArrayF, scale: float = 1.0) -> ArrayF:
        """Squared normalised radius ``(p - c)^T M (p - c) / scale^2`` at broadcastable points."""
        m = self.quadratic_form / scale**2
        dx = x - np.float32(self.centre_mm[0])
        dy = y - np.float32(self.centre_mm[1])
        dz = z - np.float32(self.centre_mm[2])
        f = [
            np.float32(v)
            for v in (m[0, 0], m[1, 1], m[2, 2], 2 * m[0, 1], 2 * m[0, 2], 2 * m[1, 2])
        ]
        return (
            f[0] * dx * dx
            + f[1] * dy * dy
            + f[2] * dz * dz
            + f[3] * dx * dy
            + f[4] * dx * dz
            + f[5] * dy * dz
        )

    def axial_area_mm2(self, z: ArrayF) -> ArrayF:
        """Area (mm2) of the ellipsoid's cross-section with the axial plane at world ``z``.

        For ``p^T M p <= 1`` and the plane ``dz = t``: area ``= pi (1 - t^2 (m_zz - b^T A^-1 b)) /
        sqrt(det A)``, with ``A`` the in-plane block of ``M`` and ``b`` its coupling to z.
        """
        m = self.quadratic_form
        a_blk = m[:2, :2]
        b_vec = m[:2, 2]
        k = m[2, 2] - b_vec @ np.linalg.solve(a_blk, b_vec)
        t = np.asarray(z, dtype=np.float64) - self.centre_mm[2]
        return np.pi * np.clip(1.0 - k * t * t, 0.0, None) / np.sqrt(np.linalg.det(a_blk))


@dataclass(frozen=True, slots=True)
class Implant:
    """Metal implant (e.g. anterior cervical plate and cage): signal void with blooming.

    Attributes
    ----------
    centre_mm
        Centre of the signal void, world mm.
    semi_axes_mm
        Semi-axes of the void along world x, y, z (mm).
    level
        Vertebral level of the implant.
    bloom
        Strength of the bright pile-up rim just outside the void (0: none).
    """

    centre_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]
    level: str
    bloom: float = 1.2

    def q(self, x: ArrayF, y: ArrayF, z: ArrayF) -> ArrayF:
        """Squared normalised radius of the void ellipsoid at broadcastable points."""
        c, r = self.centre_mm, self.semi_axes_mm
        return ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2


def draw_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one subject's anatomy, with the subject placed near the scanner isocentre."""
    k = rng.normal(size=(6, 3))
    k /= np.linalg.norm(k, axis=1, keepdims=True)
    k *= rng.uniform(0.6, 1.6, size=(6, 1))  # wavelengths ~4-10 mm
    return Anatomy(
        origin_mm=(
            float(rng.uniform(-4, 4)),
            float(rng.uniform(-25, 15)),
            float(rng.uniform(-20, 20)),
        ),
        lordosis_mm=float(rng.uniform(3.0, 9.0)),
        lordosis_span_mm=float(rng.uniform(150.0, 200.0)),
        sway_mm=float(rng.uniform(0.0, 1.5)),
        sway_period_mm=float(rng.uniform(120.0, 220.0)),
        sway_phase=float(rng.uniform(0, 2 * np.pi)),
        cord_lr_mm=float(rng.normal(4.1, 0.25)),
        cord_ap_mm=float(rng.normal(3.0, 0.2)),
        enlargement_mm=float(rng.uniform(0.4, 1.0)),
        csf_lr_mm=float(rng.uniform(3.5, 5.5)),
        csf_ap_mm=float(rng.uniform(1.8, 3.2)),
        csf_dorsal_shift_mm=float(rng.uniform(0.3, 1.2)),
        wall_mm=float(rng.uniform(1.2, 2.0)),
        vertebra_period_mm=float(rng.uniform(15.5, 18.5)),
        body_lr_mm=float(rng.uniform(7.5, 9.0)),
        body_ap_mm=float(rng.uniform(6.5, 8.0)),
        texture_k=tuple((float(a), float(b), float(c)) for a, b, c in k),
        texture_phase=tuple(float(p) for p in rng.uniform(0, 2 * np.pi, 6)),
        cord_intensity=float(rng.uniform(0.32, 0.42)),
    )


def _fits_in_cord(anatomy: Anatomy, lesion: Lesion, surface: npt.NDArray[np.float64]) -> bool:
    pts = (
        np.asarray(lesion.centre_mm)
        + (surface * np.asarray(lesion.semi_axes_mm)) @ lesion.rotation.T
    )
    q = anatomy.cord_q(pts[:, 0], pts[:, 1], pts[:, 2])
    return bool(np.all(q <= LESION_CORD_MARGIN**2))


def _unit_sphere(n: int = 800) -> npt.NDArray[np.float64]:
    # Fibonacci lattice: even coverage, no randomness.
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


def _make_lesion(
    anatomy: Anatomy,
    z: float,
    semi: tuple[float, float, float],
    offset: tuple[float, float],
    *,
    has_core: bool,
    core_fraction: float,
    contrast: float,
) -> Lesion:
    t = anatomy.tangent(z)
    lr = np.array([1.0, 0.0, 0.0]) - t[0] * t
    lr /= np.linalg.norm(lr)
    ap = np.cross(t, lr)
    rot = np.stack([lr, ap, t], axis=1)
    zc = np.asarray(z)
    centre = (
        float(anatomy.centre_x(zc) + offset[0]),
        float(anatomy.centre_y(zc) + offset[1]),
        float(z),
    )
    return Lesion(
        centre_mm=centre,
        semi_axes_mm=semi,
        axes=tuple((float(r[0]), float(r[1]), float(r[2])) for r in rot),
        has_core=has_core,
        core_fraction=core_fraction,
        contrast=contrast,
    )


def draw_lesions(
    anatomy: Anatomy,
    rng: np.random.Generator,
    *,
    n: int,
    etiology: str,
    injury_level: str,
    z_range_mm: tuple[float, float] | None = None,
    min_gap_mm: float = 8.0,
) -> tuple[Lesion, ...]:
    """Draw up to ``n`` non-touching lesions inside the cord, the first at ``injury_level``.

    Lesions are stacked along z with at least ``min_gap_mm`` between their z-extents,
    so they stay separate connected components at slice thicknesses below that gap.
    A lesion that cannot be placed inside ``z_range_mm`` (world z, default: 60 mm
    below to 48 mm above the C4/C5 disc) is dropped, so fewer than ``n`` may come back.

    Semi-axes (mm): left-right >= 2.0 and antero-posterior >= 1.3 (visible on 3 mm
    sagittal slices), long axis >= 6 (visible on 5 mm axial slices).
    """
    z0 = anatomy.origin_mm[2]
    lo, hi = z_range_mm if z_range_mm is not None else (z0 - 60.0, z0 + 48.0)
    surface = _unit_sphere()
    lesions: list[Lesion] = []
    placed: list[tuple[float, float]] = []  # z-intervals taken
    for _ in range(n):
        if not placed:
            z = (
                anatomy.level_z(injury_level)
                + rng.uniform(-0.45, 0.45) * anatomy.vertebra_period_mm
            )
            long_lo, long_hi = (10.0, 22.0) if etiology == "ischemic" else (6.0, 18.0)
        else:
            long_lo, long_hi = 6.0, 10.0
        rz = float(rng.uniform(long_lo, long_hi))
        if not placed:
            z = float(np.clip(z, lo + rz + 1.0, hi - rz - 1.0))
        else:
            # stack outward from what is already there, above or below
            gap = float(rng.uniform(min_gap_mm, min_gap_mm + 8.0)) + rz + 0.5
            if rng.random() < 0.5:
                z = max(b for _, b in placed) + gap
            else:
                z = min(a for a, _ in placed) - gap
        a_cs = float(anatomy.semi_lr(np.asarray(z)))
        b_cs = float(anatomy.semi_ap(np.asarray(z)))
        fx, fy = rng.uniform(0.5, 0.85), rng.uniform(0.5, 0.85)
        if etiology == "ischemic":  # anterior spinal artery territory: narrow and anterior
            fx, fy = rng.uniform(0.5, 0.7), rng.uniform(0.5, 0.6)
        rx, ry = max(2.0, fx * a_cs), max(1.3, fy * b_cs)
        if etiology == "ischemic":
            off = (0.0, 0.8 * (b_cs * LESION_CORD_MARGIN - ry))
        else:
            off = (
                float(rng.uniform(-0.4, 0.4)) * max(0.0, a_cs * LESION_CORD_MARGIN - rx),
                float(rng.uniform(-0.4, 0.4)) * max(0.0, b_cs * LESION_CORD_MARGIN - ry),
            )
        has_core = etiology == "hemorrhagic" or (etiology == "traumatic" and rng.random() < 0.4)
        core_fraction = float(rng.uniform(0.3, 0.5))
        contrast = float(rng.uniform(1.8, 2.5))
        lesion = None
        for _ in range(40):
            cand = _make_lesion(
                anatomy,
                z,
                (rx, ry, rz),
                off,
                has_core=has_core and not placed,
                core_fraction=core_fraction,
                contrast=contrast,
            )
            if _fits_in_cord(anatomy, cand, surface):
                lesion = cand
                break
            rx, ry, off = max(2.0, 0.93 * rx), max(1.3, 0.93 * ry), (0.8 * off[0], 0.8 * off[1])
        if lesion is None:
            continue
        hz = float(lesion.half_extent_mm[2])
        zlo, zhi = z - hz, z + hz
        if (
            zlo < lo
            or zhi > hi
            or any(zlo < b + min_gap_mm and zhi > a - min_gap_mm for a, b in placed)
        ):
            continue
        lesions.append(lesion)
        placed.append((zlo, zhi))
    return tuple(lesions)


def draw_implant(anatomy: Anatomy, rng: np.random.Generator, *, level: str) -> Implant:
    """Draw an anterior fixation (plate and cage) at ``level``: its void may reach the canal."""
    z = anatomy.level_z(level) - 0.5 * anatomy.vertebra_period_mm  # the disc below the level
    zc = np.asarray(z)
    canal_front = anatomy.semi_ap(zc) + anatomy.csf_ap_mm + anatomy.wall_mm
    y = float(anatomy.centre_y(zc)) + float(canal_front) + anatomy.body_ap_mm
    ry = float(rng.uniform(0.7, 1.25)) * (anatomy.body_ap_mm + 2.0)
    return Implant(
        centre_mm=(float(anatomy.centre_x(zc)), y, float(z)),
        semi_axes_mm=(float(rng.uniform(8.0, 12.0)), ry, float(rng.uniform(10.0, 16.0))),
        level=level,
        bloom=float(rng.uniform(0.8, 1.6)),
    )


def max_axial_damage_ratio(
    anatomy: Anatomy, lesions: tuple[Lesion, ...], step_mm: float = 0.1
) -> float:
    """Analytic maximal axial damage ratio: max over world z of lesion area / cord area.

    The continuous counterpart of SCT's ``max_axial_damage_ratio`` (lesion area over
    cord area on axial slices); 0 when there is no lesion. Lesions do not share axial
    planes (see :func:`draw_lesions`), so areas are not summed.
    """
    best = 0.0
    for les in lesions:
        hz = float(les.half_extent_mm[2])
        z = np.arange(les.centre_mm[2] - hz, les.centre_mm[2] + hz + step_mm, step_mm)
        ratio = les.axial_area_mm2(z) / anatomy.cord_area_mm2(z)
        best = max(best, float(np.max(ratio)))
    return best
