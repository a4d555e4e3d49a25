"""Lesion evolution and rigid head/neck motion between the sessions of a synthetic subject.

Pure geometry, no I/O: :mod:`cohort_sciseg.synth.longitudinal` renders and writes what
is drawn here.

Lesion tracks
-------------
Each session of a subject holds :class:`TrackedLesion` entries. A track id is stable
across sessions (1, 2, ... per subject) and an entry's ``event`` says what happened
to it at that session:

- ``baseline``: present at the first session;
- ``persisting``: present at the previous session too (it may have shrunk or grown);
- ``new``: appears at this session;
- ``resolved``: was present at the previous session and is gone now (``lesion`` is
  ``None``; the track has no entry at later sessions);
- ``split``: one of two pieces of a parent track (``parent_track_ids``), separated
  from its sibling along superior-inferior by at least :data:`MIN_SPLIT_GAP_MM`;
  the parent track has no entry from this session on;
- ``merged``: one lesion from two parent tracks that have no entry from this session on.

Scenarios (:data:`SCENARIOS`, one per subject) combine these events; every scenario's
events happen at the second session, and the third session (if any) continues the trend.

Motion
------
:class:`Motion` is the rigid transform ``T`` from the baseline subject's world
coordinates (RAS+ mm, the first session's scanner space) to a later session's scanner
space: ``x_k = R (x_0 - p) + p + t`` with ``R = Rz Ry Rx`` (rotations about the world
x, then y, then z axes, degrees) about the pivot ``p`` (the cord centre at the C4/C5
disc) and the translation ``t`` (mm).

Ground truth
------------
:data:`MOTION_SCHEMA` and :data:`LESION_EVENTS_SCHEMA` describe the tables
``motion.parquet`` and ``lesion_events.parquet`` (one row per session image, and one
per lesion track per session); :func:`motion_row` and :func:`event_rows` build their rows.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from cohort_sciseg.errors import SynthError, format_error
from cohort_sciseg.records import arrow_field
from cohort_sciseg.synth.anatomy import (
    Anatomy,
    Lesion,
    _fits_in_cord,
    _make_lesion,
    _unit_sphere,
    draw_lesions,
)

__all__ = [
    "EVENTS",
    "LESION_EVENTS_SCHEMA",
    "MIN_SPLIT_GAP_MM",
    "MOTION_SCHEMA",
    "SCENARIOS",
    "Motion",
    "TrackedLesion",
    "draw_evolution",
    "draw_motion",
    "event_rows",
    "motion_row",
    "moved_lesion",
]

Event = Literal["baseline", "persisting", "new", "resolved", "split", "merged"]
Scenario = Literal["shrink_new", "grow_resolve", "split", "merge"]

#: Lesion events of the ground truth, in the order they are documented.
EVENTS: tuple[Event, ...] = ("baseline", "persisting", "new", "resolved", "split", "merged")
#: Subject scenarios, cycled over subjects (four consecutive subjects cover every event).
SCENARIOS: tuple[Scenario, ...] = ("shrink_new", "grow_resolve", "split", "merge")
#: Smallest superior-inferior gap between the two pieces of a split lesion (mm).
MIN_SPLIT_GAP_MM = 3.5

_MIN_SEMI = (1.5, 1.2, 2.5)  # visible on ~1 mm isotropic voxels
_ZONE_HALF_MM = 34.0  # lesions stay within z0 +- this (the field of view is larger)
_SURFACE = _unit_sphere()


@dataclass(frozen=True, slots=True)
class TrackedLesion:
    """One lesion track at one session.

    Attributes
    ----------
    track_id
        Stable id of the track within its subject (1-based).
    event
        What happened to the track at this session (see the module docstring).
    lesion
        The lesion in the baseline subject's world coordinates; ``None`` when resolved.
    parent_track_ids
        For ``split`` and ``merged``: the tracks it came from; else empty.
    """

    track_id: int
    event: Event
    lesion: Lesion | None
    parent_track_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class _Spec:
    """A lesion before it is fitted into the cord: centre z, semi-axes, centre offset, style."""

    z: float
    semi: tuple[float, float, float]
    off: tuple[float, float]
    style: Lesion

    def scaled(self, lateral: float, long: float) -> _Spec:
        a, b, c = self.semi
        semi = (
            max(_MIN_SEMI[0], a * lateral),
            max(_MIN_SEMI[1], b * lateral),
            max(_MIN_SEMI[2], c * long),
        )
        return replace(self, semi=semi)

    def at(self, z: float) -> _Spec:
        return replace(self, z=z)

    @property
    def half_z(self) -> float:
        """Generous half-extent along z (the long axis is within a few degrees of z)."""
        return self.semi[2] + 0.15 * max(self.semi[0], self.semi[1])


def _build(anatomy: Anatomy, spec: _Spec) -> Lesion:
    """The lesion of ``spec``, lateral semi-axes and offset shrunk until it fits inside the cord."""
    rx, ry, rz = spec.semi
    off = spec.off
    for _ in range(60):
        cand = _make_lesion(
            anatomy,
            spec.z,
            (rx, ry, rz),
            off,
            has_core=spec.style.has_core,
            core_fraction=spec.style.core_fraction,
            contrast=spec.style.contrast,
        )
        if _fits_in_cord(anatomy, cand, _SURFACE):
            return cand
        rx, ry = max(_MIN_SEMI[0], 0.93 * rx), max(_MIN_SEMI[1], 0.93 * ry)
        off = (0.8 * off[0], 0.8 * off[1])
        if rx == _MIN_SEMI[0] and ry == _MIN_SEMI[1] and off == (0.0, 0.0):
            rz = max(_MIN_SEMI[2], 0.93 * rz)
    msg = format_error(
        f"a lesion at z={spec.z:.1f} mm with semi-axes {spec.semi!r} does not fit in the cord",
        expected="a lesion inside the cord (a bug of the longitudinal generator)",
        fix="try another seed and report the seed",
    )
    raise SynthError(msg)


def _spec_of(anatomy: Anatomy, les: Lesion) -> _Spec:
    z = les.centre_mm[2]
    zc = np.asarray(z)
    off = (
        float(les.centre_mm[0] - anatomy.centre_x(zc)),
        float(les.centre_mm[1] - anatomy.centre_y(zc)),
    )
    return _Spec(z=z, semi=les.semi_axes_mm, off=off, style=les)


def _primary(anatomy: Anatomy, rng: np.random.Generator, etiology: str, level: str) -> _Spec:
    z0 = anatomy.origin_mm[2]
    drawn = draw_lesions(
        anatomy,
        rng,
        n=1,
        etiology=etiology,
        injury_level=level,
        z_range_mm=(z0 - _ZONE_HALF_MM, z0 + _ZONE_HALF_MM),
    )
    if drawn:
        return _spec_of(anatomy, drawn[0])
    # draw_lesions may drop a lesion it cannot place; a plain one at the disc instead
    semi = (0.65 * anatomy.cord_lr_mm, 0.6 * anatomy.cord_ap_mm, 8.0)
    return _spec_of(
        anatomy, _build(anatomy, _Spec(z0, semi, (0.0, 0.0), Lesion((0, 0, 0), semi, ())))
    )


def _small(primary: _Spec, rng: np.random.Generator, long_range: tuple[float, float]) -> _Spec:
    """A secondary lesion in the primary's style, smaller, without a core."""
    semi = (
        primary.semi[0] * float(rng.uniform(0.6, 0.9)),
        primary.semi[1] * float(rng.uniform(0.6, 0.9)),
        float(rng.uniform(*long_range)),
    )
    style = replace(primary.style, has_core=False)
    return _Spec(primary.z, semi, (0.3 * primary.off[0], 0.3 * primary.off[1]), style).scaled(
        1.0, 1.0
    )


def _beside(anchor_half: float, spec: _Spec, gap: float, side: float) -> float:
    """Offset (mm, from the anchor's centre) of ``spec`` placed ``gap`` beyond the anchor."""
    return side * (anchor_half + gap + spec.half_z)


_Planned = tuple[int, Event, "_Spec | None", tuple[int, ...]]


def _scenario_tracks(
    scenario: Scenario, p: _Spec, rng: np.random.Generator, n: int
) -> list[list[_Planned]]:
    """Per session: ``(track, event, spec with z relative to the primary's, parents)``."""
    side = 1.0 if rng.random() < 0.5 else -1.0  # other lesions above or below the primary
    sessions: list[list[_Planned]] = [[] for _ in range(n)]
    if scenario == "shrink_new":
        f = float(rng.uniform(0.7, 0.85))
        p = p.scaled(1.0, float(np.clip(p.semi[2], 6.0, 12.0)) / p.semi[2]).at(0.0)
        new = _small(p, rng, (3.5, 6.0))
        z_new = _beside(p.half_z, new, float(rng.uniform(9.0, 13.0)), side)
        for k in range(n):
            sessions[k].append(
                (1, "baseline" if k == 0 else "persisting", p.scaled(f**k, f**k), ())
            )
            if k >= 1:
                grown = new.scaled(1.1 ** (k - 1), 1.15 ** (k - 1)).at(z_new)
                sessions[k].append((2, "new" if k == 1 else "persisting", grown, ()))
    elif scenario == "grow_resolve":
        g = float(rng.uniform(1.12, 1.25))
        p = p.scaled(1.0, float(np.clip(p.semi[2], 6.0, 10.0)) / p.semi[2]).at(0.0)
        final = p.scaled(1.0, g ** (n - 1))
        small = _small(p, rng, (4.0, 6.0))
        z_small = _beside(final.half_z, small, float(rng.uniform(10.0, 13.0)), side)
        for k in range(n):
            ev: Event = "baseline" if k == 0 else "persisting"
            sessions[k].append((1, ev, p.scaled(min(1.08**k, 1.15), g**k), ()))
            if k < n - 1:
                sessions[k].append((2, ev, small.scaled(0.85**k, 0.75**k).at(z_small), ()))
            elif k == n - 1:
                sessions[k].append((2, "resolved", None, ()))
    elif scenario == "split":
        p = p.scaled(1.0, float(np.clip(p.semi[2], 9.0, 14.0)) / p.semi[2]).at(0.0)
        child = p.scaled(0.9, 0.36)
        child = replace(child, style=replace(child.style, has_core=False))
        d = child.half_z + 0.5 * float(rng.uniform(4.5, 6.5))
        for k in range(n):
            if k == 0:
                sessions[k].append((1, "baseline", p, ()))
                continue
            ev2: Event = "split" if k == 1 else "persisting"
            parents = (1,) if k == 1 else ()
            piece = child.scaled(0.92 ** (k - 1), 0.92 ** (k - 1))
            sessions[k].append((2, ev2, piece.at(-d), parents))
            sessions[k].append((3, ev2, piece.at(d), parents))
    else:  # merge
        p = p.scaled(1.0, float(np.clip(p.semi[2], 5.0, 9.0)) / p.semi[2]).at(0.0)
        other = _small(p, rng, (4.0, 7.0))
        z_other = _beside(p.half_z, other, float(rng.uniform(4.0, 6.0)), side)
        lo = min(-p.semi[2], z_other - other.semi[2])
        hi = max(p.semi[2], z_other + other.semi[2])
        semi = (max(p.semi[0], other.semi[0]), max(p.semi[1], other.semi[1]), 0.5 * (hi - lo))
        merged = replace(p, semi=semi, z=0.5 * (lo + hi))
        for k in range(n):
            if k == 0:
                sessions[k].append((1, "baseline", p, ()))
                sessions[k].append((2, "baseline", other.at(z_other), ()))
            else:
                f = 0.92 ** (k - 1)
                ev3: Event = "merged" if k == 1 else "persisting"
                sessions[k].append((3, ev3, merged.scaled(f, f), (1, 2) if k == 1 else ()))
    return sessions


def draw_evolution(
    anatomy: Anatomy,
    rng: np.random.Generator,
    *,
    scenario: Scenario,
    sessions: int,
    etiology: str,
    injury_level: str,
) -> tuple[tuple[TrackedLesion, ...], ...]:
    """Draw one subject's lesion tracks over ``sessions`` sessions (baseline world mm).

    The injury-level lesion comes from :func:`cohort_sciseg.synth.anatomy.draw_lesions`
    (so it has the etiology's shape, core and contrast); the scenario then edits it
    (semi-axes scaled, split in two shorter pieces along the centreline, merged with a
    neighbour) and adds the other lesions. The whole group is shifted along the cord
    to stay within 34 mm of the C4/C5 disc, and every lesion is fitted inside the cord
    (lateral semi-axes shrunk until its surface stays within 90 % of the cord radius).

    Returns
    -------
    One tuple of :class:`TrackedLesion` per session; lesions do not overlap and are
    separated along superior-inferior (so they are separate connected components).
    """
    primary = _primary(anatomy, rng, etiology, injury_level)
    plan = _scenario_tracks(scenario, primary, rng, sessions)
    # shift the group (z offsets from the primary) so that all of it stays in the zone
    specs = [s for ses in plan for _, _, s, _ in ses if s is not None]
    lo = min(s.z - s.half_z for s in specs)
    hi = max(s.z + s.half_z for s in specs)
    z0 = anatomy.origin_mm[2]
    z_lo, z_hi = z0 - _ZONE_HALF_MM - lo, z0 + _ZONE_HALF_MM - hi
    shift = float(np.clip(primary.z, min(z_lo, z_hi), max(z_lo, z_hi)))
    out = []
    for ses in plan:
        out.append(
            tuple(
                TrackedLesion(
                    track_id=t,
                    event=ev,
                    lesion=None if s is None else _build(anatomy, s.at(s.z + shift)),
                    parent_track_ids=parents,
                )
                for t, ev, s, parents in ses
            )
        )
        _check_separated(out[-1])
    return tuple(out)


def _check_separated(tracks: tuple[TrackedLesion, ...]) -> None:
    """Refuse lesions of one session closer than :data:`MIN_SPLIT_GAP_MM` along z (a bug)."""
    spans = sorted(
        (
            les.centre_mm[2] - float(les.half_extent_mm[2]),
            les.centre_mm[2] + float(les.half_extent_mm[2]),
        )
        for les in (t.lesion for t in tracks)
        if les is not None
    )
    for (_, top), (bottom, _) in itertools.pairwise(spans):
        if bottom - top < MIN_SPLIT_GAP_MM:
            msg = format_error(
                f"two lesions of a session are {bottom - top:.2f} mm apart along z",
                expected=f"at least {MIN_SPLIT_GAP_MM} mm (a bug of the longitudinal generator)",
                fix="try another seed and report the seed",
            )
            raise SynthError(msg)


@dataclass(frozen=True, slots=True)
class Motion:
    """Rigid motion of the subject between the baseline and one session (see module docstring).

    Attributes
    ----------
    rotation_deg
        Rotations about the world x, y, z axes (degrees), applied in that order.
    translation_mm
        Translation (mm, world RAS+).
    pivot_mm
        Centre of the rotation (mm, baseline world).
    """

    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    translation_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pivot_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def rotation(self) -> npt.NDArray[np.float64]:
        """``R = Rz @ Ry @ Rx``."""
        ax, ay, az = np.radians(self.rotation_deg)
        rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
        ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
        rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
        return np.asarray(rz @ ry @ rx, dtype=np.float64)

    @property
    def matrix(self) -> npt.NDArray[np.float64]:
        """4x4 ``T``: baseline world -> this session's scanner world (mm)."""
        r = self.rotation
        p = np.asarray(self.pivot_mm, dtype=np.float64)
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = p + np.asarray(self.translation_mm, dtype=np.float64) - r @ p
        return m

    @property
    def inverse(self) -> npt.NDArray[np.float64]:
        """4x4 ``T^-1``: this session's scanner world -> baseline world (mm)."""
        m = self.matrix
        inv = np.eye(4)
        inv[:3, :3] = m[:3, :3].T
        inv[:3, 3] = -m[:3, :3].T @ m[:3, 3]
        return inv


def draw_motion(
    rng: np.random.Generator,
    pivot_mm: tuple[float, float, float],
    *,
    max_rotation_deg: float,
    max_translation_mm: float,
) -> Motion:
    """Rotation ~ U(-max, max) degrees about each axis, translation ~ U(-max, max) mm per axis."""
    rot = rng.uniform(-max_rotation_deg, max_rotation_deg, size=3)
    tra = rng.uniform(-max_translation_mm, max_translation_mm, size=3)
    return Motion(
        rotation_deg=(float(rot[0]), float(rot[1]), float(rot[2])),
        translation_mm=(float(tra[0]), float(tra[1]), float(tra[2])),
        pivot_mm=pivot_mm,
    )


def moved_lesion(lesion: Lesion, motion: Motion) -> Lesion:
    """``lesion`` as it lies in the session's scanner space (centre and axes moved by ``T``)."""
    m = motion.matrix
    c = m[:3, :3] @ np.asarray(lesion.centre_mm) + m[:3, 3]
    axes = m[:3, :3] @ lesion.rotation
    return replace(
        lesion,
        centre_mm=(float(c[0]), float(c[1]), float(c[2])),
        axes=tuple((float(r[0]), float(r[1]), float(r[2])) for r in axes),
    )


_f = arrow_field
_ID_FIELDS = [
    _f("site", pa.string(), "site label (the BIDS dataset's folder name)", nullable=False),
    _f("sub", pa.string(), "BIDS subject label", nullable=False),
    _f("ses", pa.string(), "BIDS session label", nullable=False),
    _f("scan_id", pa.string(), "site-qualified scan id, site-<site>_<BIDS stem>", nullable=False),
]


def _xyz(name: str, doc: str, unit: str = "mm", *, nullable: bool = False) -> list[pa.Field]:
    """Three float64 fields, one per world axis (``{}`` in ``name`` and ``doc`` becomes x, y, z)."""
    return [_f(name.format(a), pa.float64(), doc.format(a), unit, nullable=nullable) for a in "xyz"]


#: Schema of ``ground_truth/motion.parquet``: one row per session image.
MOTION_SCHEMA = pa.schema(
    [
        *_ID_FIELDS,
        *_xyz(
            "rotation_deg_{}",
            "subject rotation about world {}, applied in the order x, y, z about the pivot "
            "(baseline -> this session)",
            "deg",
        ),
        *_xyz("translation_mm_{}", "subject translation along world {} (baseline -> this session)"),
        *_xyz("pivot_mm_{}", "centre of the rotation, baseline world {} (cord at the C4/C5 disc)"),
        _f(
            "matrix",
            pa.list_(pa.float64(), 16),
            "4x4 rigid transform, row-major: this session's scanner world (RAS+ mm) -> the "
            "baseline session's world (identity for the baseline)",
            "1 (rotation block), mm (translation column)",
            nullable=False,
        ),
    ]
)

#: Schema of ``ground_truth/lesion_events.parquet``: one row per lesion track per session.
LESION_EVENTS_SCHEMA = pa.schema(
    [
        *_ID_FIELDS,
        _f(
            "track_id",
            pa.int32(),
            "lesion track, stable across the subject's sessions (1-based)",
            nullable=False,
        ),
        _f(
            "event",
            pa.string(),
            "baseline, persisting, new, resolved (gone at this session), "
            "split (one of two pieces of a parent track) or merged (one lesion from two tracks)",
            nullable=False,
        ),
        _f(
            "parent_track_ids",
            pa.list_(pa.int32()),
            "split/merged: the tracks it came from "
            "(they have no row from this session on); else empty",
            nullable=False,
        ),
        _f(
            "lesion_index",
            pa.int32(),
            "the lesion's lesion_index in lesions.parquet for this scan; null when resolved",
        ),
        _f(
            "volume_mm3",
            pa.float64(),
            "analytic ellipsoid volume (0 when resolved)",
            "mm3",
            nullable=False,
        ),
        _f(
            "n_voxels",
            pa.int64(),
            "voxels of this lesion in the session's lesion mask",
            "voxel",
            nullable=False,
        ),
        _f(
            "length_mm",
            pa.float64(),
            "analytic extent of the ellipsoid along the session's "
            "scanner superior-inferior axis (0 when resolved)",
            "mm",
            nullable=False,
        ),
        *_xyz(
            "center_{}_mm",
            "ellipsoid centre, this session's scanner world {} (RAS+); null when resolved",
            nullable=True,
        ),
        _f(
            "scenario",
            pa.string(),
            "the subject's evolution scenario (shrink_new, grow_resolve, split, merge)",
            nullable=False,
        ),
    ]
)


_ID_KEYS = ("site", "sub", "ses", "scan_id")


def motion_row(ids: dict[str, Any], motion: Motion) -> dict[str, Any]:
    """Row of ``motion.parquet`` (:data:`MOTION_SCHEMA`) for one session image (``ids``: its id columns)."""
    return {
        **{k: ids[k] for k in _ID_KEYS},
        **{f"rotation_deg_{a}": v for a, v in zip("xyz", motion.rotation_deg, strict=True)},
        **{f"translation_mm_{a}": v for a, v in zip("xyz", motion.translation_mm, strict=True)},
        **{f"pivot_mm_{a}": v for a, v in zip("xyz", motion.pivot_mm, strict=True)},
        "matrix": [float(v) for v in motion.inverse.ravel()],
    }


def event_rows(
    ids: dict[str, Any],
    tracks: tuple[TrackedLesion, ...],
    moved: tuple[Lesion, ...],
    voxels: tuple[int, ...],
    scenario: str,
) -> list[dict[str, Any]]:
    """Rows of ``lesion_events.parquet`` (:data:`LESION_EVENTS_SCHEMA`) for one session image.

    ``moved`` and ``voxels``: the present lesions (track order) in the session's scanner
    space and their voxel counts in its mask.
    """
    rows = []
    index = 0
    for track in tracks:
        row: dict[str, Any] = {
            **{k: ids[k] for k in _ID_KEYS},
            "track_id": track.track_id,
            "event": track.event,
            "parent_track_ids": list(track.parent_track_ids),
            "lesion_index": None,
            "volume_mm3": 0.0,
            "n_voxels": 0,
            "length_mm": 0.0,
            "center_x_mm": None,
            "center_y_mm": None,
            "center_z_mm": None,
            "scenario": scenario,
        }
        if track.lesion is not None:
            les = moved[index]
            row.update(
                lesion_index=index + 1,
                volume_mm3=les.volume_mm3,
                n_voxels=voxels[index],
                length_mm=2.0 * float(les.half_extent_mm[2]),
                center_x_mm=les.centre_mm[0],
                center_y_mm=les.centre_mm[1],
                center_z_mm=les.centre_mm[2],
            )
            index += 1
        rows.append(row)
    return rows
