"""Analytic anatomy: lesions inside the cord, separated, with correct areas, volumes and extents."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cohort_sciseg.synth import (
    Lesion,
    draw_anatomy,
    draw_implant,
    draw_lesions,
    max_axial_damage_ratio,
)
from cohort_sciseg.synth.anatomy import LESION_CORD_MARGIN, VERTEBRAL_LEVELS

ETIOLOGIES = ("traumatic", "ischemic", "hemorrhagic")


def _subjects(n: int = 40):
    for k in range(n):
        rng = np.random.default_rng([5, k])
        anat = draw_anatomy(rng)
        etiology = ETIOLOGIES[k % 3]
        level = VERTEBRAL_LEVELS[1 + k % 5]
        yield anat, draw_lesions(anat, rng, n=3, etiology=etiology, injury_level=level), level


def _points_in(les: Lesion, rng: np.random.Generator, n: int = 4000) -> np.ndarray:
    """Uniform points inside the ellipsoid, plus points on its surface."""
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    r = np.concatenate([rng.random(n) ** (1 / 3), np.ones(n // 4)])
    d = np.concatenate([d, d[: n // 4]])
    local = d * r[:, None] * np.asarray(les.semi_axes_mm)
    return np.asarray(les.centre_mm) + local @ les.rotation.T


def test_every_lesion_point_is_inside_the_cord(rng):
    n_lesions = 0
    for anat, lesions, _ in _subjects():
        for les in lesions:
            p = _points_in(les, rng)
            q = anat.cord_q(p[:, 0], p[:, 1], p[:, 2])
            assert q.max() <= LESION_CORD_MARGIN**2 + 1e-3
            n_lesions += 1
    assert n_lesions > 60  # most subjects get several lesions


def test_lesions_are_separated_along_z_and_large_enough():
    for anat, lesions, level in _subjects():
        spans = sorted(
            (les.centre_mm[2] - les.half_extent_mm[2], les.centre_mm[2] + les.half_extent_mm[2])
            for les in lesions
        )
        for (_, hi), (lo, _) in itertools.pairwise(spans):
            assert lo - hi >= 8.0
        for les in lesions:
            a, b, c = les.semi_axes_mm
            assert a >= 2.0 - 1e-9
            assert b >= 1.3 - 1e-9
            assert c >= 6.0
        if lesions:  # the first lesion sits at the injury level
            assert abs(lesions[0].centre_mm[2] - anat.level_z(level)) < 30.0


def test_long_axis_follows_the_centreline():
    for anat, lesions, _ in _subjects(10):
        for les in lesions:
            t = anat.tangent(les.centre_mm[2])
            np.testing.assert_allclose(les.rotation[:, 2], t, atol=1e-9)
            np.testing.assert_allclose(les.rotation.T @ les.rotation, np.eye(3), atol=1e-9)
            assert les.tilt_deg == pytest.approx(np.degrees(np.arccos(t[2])))


def _tilted_lesion() -> Lesion:
    a = np.radians(20.0)
    rot = np.array([[1, 0, 0], [0, np.cos(a), np.sin(a)], [0, -np.sin(a), np.cos(a)]])
    return Lesion(
        centre_mm=(1.0, -2.0, 3.0), semi_axes_mm=(2.5, 1.5, 8.0), axes=tuple(map(tuple, rot))
    )


def test_volume_and_extent_against_sampling(rng):
    les = _tilted_lesion()
    # Monte Carlo volume in the bounding box
    half = les.half_extent_mm
    p = np.asarray(les.centre_mm) + (rng.random((400_000, 3)) * 2 - 1) * half
    frac = np.mean(les.q(p[:, 0], p[:, 1], p[:, 2]) <= 1.0)
    assert frac * np.prod(2 * half) == pytest.approx(4 / 3 * np.pi * 2.5 * 1.5 * 8.0, rel=0.02)
    assert les.volume_mm3 == pytest.approx(4 / 3 * np.pi * 2.5 * 1.5 * 8.0)
    surf = _points_in(les, rng, 40_000)[-10_000:]
    np.testing.assert_allclose(np.abs(surf - les.centre_mm).max(axis=0), half, rtol=0.01)


@pytest.mark.parametrize("dz", [0.0, 2.0, 5.0, 7.0])
def test_axial_area_against_pixel_count(dz):
    les = _tilted_lesion()
    z = les.centre_mm[2] + dz
    step = 0.02
    xs = np.arange(-6, 6, step) + les.centre_mm[0]
    ys = np.arange(-6, 6, step) + les.centre_mm[1]
    count = np.sum(les.q(xs[:, None], ys[None, :], np.float64(z)) <= 1.0)
    assert les.axial_area_mm2(np.array([z]))[0] == pytest.approx(
        count * step * step, rel=0.01, abs=0.05
    )


def test_max_axial_damage_ratio():
    for anat, lesions, _ in _subjects(12):
        ratio = max_axial_damage_ratio(anat, lesions)
        assert 0.0 <= ratio < LESION_CORD_MARGIN**2 + 1e-6
        if lesions:
            # independent estimate: max over a few planes of the pixel-counted area ratio
            les = max(lesions, key=lambda s: s.semi_axes_mm[0] * s.semi_axes_mm[1])
            step = 0.05
            best = 0.0
            for z in les.centre_mm[2] + np.linspace(-1.0, 1.0, 9):
                xs = np.arange(-8, 8, step) + anat.centre_x(np.asarray(z))
                ys = np.arange(-8, 8, step) + anat.centre_y(np.asarray(z))
                lesion_px = np.sum(les.q(xs[:, None], ys[None, :], np.float64(z)) <= 1.0)
                cord_px = np.sum(anat.cord_q(xs[:, None], ys[None, :], np.float64(z)) <= 1.0)
                best = max(best, lesion_px / cord_px)
            assert ratio >= best - 0.02
    anat = draw_anatomy(np.random.default_rng(0))
    assert max_axial_damage_ratio(anat, ()) == 0.0


def test_levels_roundtrip_and_implant():
    anat = draw_anatomy(np.random.default_rng(3))
    for level in VERTEBRAL_LEVELS:
        assert anat.level_at(anat.level_z(level)) == level
    z = [anat.level_z(v) for v in VERTEBRAL_LEVELS]
    assert np.all(np.diff(z) < 0)  # C2 on top
    imp = draw_implant(anat, np.random.default_rng(4), level="C5")
    assert imp.level == "C5"
    assert anat.level_z("C6") < imp.centre_mm[2] < anat.level_z("C5")
    assert imp.centre_mm[1] > anat.centre_y(np.asarray(imp.centre_mm[2]))  # anterior to the cord
