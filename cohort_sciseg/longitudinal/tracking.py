"""Match the lesions of a subject's sessions in the baseline space and tabulate their changes.

Matching
--------
Sessions are matched in order, each with the last *aligned* session before it (baseline -> ses2,
ses2 -> ses3, ...; a session whose alignment failed is skipped, so ses3 is then matched with ses1).
Two lesions of the two sessions are linked when they share at least ``min_overlap_voxels`` voxels
of the baseline grid (optionally after growing one side by ``dilation_voxels``, both ways). Each connected
component of this bipartite graph is one event:

``persisting`` (1 -> 1)
    the lesion keeps its track id.
``new`` (0 -> 1)
    a new track, no parent.
``resolved`` (1 -> 0)
    the track ends; no lesion row in the later session, one change row.
``merged`` (n -> 1)
    the lesion gets a new track whose parents are the n tracks.
``split`` (1 -> n)
    each of the n lesions gets a new track whose parent is the one track.
``complex`` (n -> m, n, m >= 2)
    each of the m lesions gets a new track whose parents are the n tracks (not recorded as merged
    plus split: which part went where is not knowable from overlap alone).

The first session's lesions have event ``baseline`` and tracks 1..n in ``lesion_id`` order (superior
first). A follow-up whose alignment failed keeps its lesion rows with event ``unaligned`` and no
track id; it gets no change rows.

Changes
-------
One row per event and interval (``ses_from -> ses_to``): for persisting, new, merged and resolved that
is one row per track (``track_id`` = the track that continues, starts or ends); a split gives one
row (``track_id`` = the parent track) and a complex event one row (``track_id`` null); the lists
``from_track_ids`` and ``to_track_ids`` say which tracks are involved. When an end has several
lesions (merged, split, complex) the value at that end aggregates them: ``volume_mm3`` is the sum,
``length_mm``, ``width_mm`` and ``max_axial_damage_ratio`` the maximum (the largest lesion's extent,
the worst slice), the tissue bridges the minimum (the narrowest bridge). An end without lesion (new,
resolved) has volume, length, width and damage ratio 0 and bridges null (undefined without lesion).
``*_change`` is ``to - from`` (null when either is null); ``*_change_per_year`` divides it by the
interval in years of 365.25 days (null when a session has no time or the interval is 0 days).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from cohort_sciseg.errors import LongitudinalError, format_error
from cohort_sciseg.longitudinal.align import Alignment
from cohort_sciseg.schemas import CHANGES_SCHEMA, EVENTS, MEASURES, TRACKS_SCHEMA

__all__ = [
    "CHANGES_SCHEMA",
    "EVENTS",
    "MEASURES",
    "TRACKS_SCHEMA",
    "LesionTracks",
    "SessionLesions",
    "track_lesions",
]

_BRIDGES = ("dorsal_bridge_width_mm", "ventral_bridge_width_mm", "total_bridge_width_mm")
_DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class SessionLesions:
    """One session of a subject, ready for :func:`track_lesions`.

    Attributes
    ----------
    ses
        BIDS session label.
    labels
        Lesion label map on the *baseline* grid (0 background, ``lesion_id`` per lesion): the
        session's :attr:`LesionAnalysis.labels` passed through :func:`resample_to_baseline`
        (the baseline's own labels as they are).
    lesions
        The session's per-lesion measures (``LESIONS_SCHEMA`` columns; ``lesion_id`` and
        :data:`MEASURES` are used), a pandas DataFrame or a pyarrow Table.
    time
        Days since injury (a number), or the session date (``datetime.date``/``datetime``, ISO
        string); None when unknown. All sessions of a subject use the same kind.
    alignment
        The session's :class:`Alignment` to the baseline; None for the baseline itself. A
        follow-up with ``alignment.ok`` False is not matched (event ``unaligned``).
    scan_id
        The session's scan, carried into the tracks table.
    """

    ses: str
    labels: np.ndarray
    lesions: pd.DataFrame | pa.Table
    time: float | dt.date | str | None = None
    alignment: Alignment | None = None
    scan_id: str | None = None

    @property
    def aligned(self) -> bool:
        """The session lies in the baseline space."""
        return self.alignment is None or self.alignment.ok


@dataclass(frozen=True)
class LesionTracks:
    """Result of :func:`track_lesions`: :data:`TRACKS_SCHEMA` and :data:`CHANGES_SCHEMA` tables."""

    tracks: pa.Table
    changes: pa.Table


def _days(sessions: Sequence[SessionLesions], sub: str) -> tuple[list[float | None], list[float | None]]:
    """(days since injury, days from baseline) per session."""
    given = [s.time for s in sessions if s.time is not None]
    is_number = [isinstance(t, int | float) and not isinstance(t, bool) for t in given]
    numeric = all(is_number)
    if any(is_number) and not numeric:
        msg = format_error(
            f"subject {sub!r} mixes numbers and dates as session times ({given!r})",
            expected="days since injury for every session, or a date for every session",
            fix="convert the times to one kind",
        )
        raise LongitudinalError(msg)
    values: list[float | None] = []
    for s in sessions:
        if s.time is None:
            values.append(None)
        elif numeric:
            values.append(float(s.time))  # type: ignore[arg-type]
        else:
            try:
                day = pd.Timestamp(s.time)
            except (ValueError, TypeError) as exc:
                msg = format_error(
                    f"subject {sub!r} session {s.ses!r} has time {s.time!r} ({exc})",
                    expected="days since injury (a number) or a date (datetime.date or 'YYYY-MM-DD')",
                    fix="pass one kind of time for every session of the subject",
                )
                raise LongitudinalError(msg) from exc
            values.append(day.value / 86_400e9)
    known = [(i, v) for i, v in enumerate(values) if v is not None]
    for (i, a), (j, b) in itertools.pairwise(known):
        if b < a:
            msg = format_error(
                f"subject {sub!r}: session {sessions[j].ses!r} ({sessions[j].time!r}) comes before "
                f"{sessions[i].ses!r} ({sessions[i].time!r})",
                expected="sessions in chronological order", fix="sort the sessions by time",
            )
            raise LongitudinalError(msg)
    first = values[0]
    from_base = [None if v is None or first is None else v - first for v in values]
    return (values if numeric else [None] * len(values)), from_base


def _measures(session: SessionLesions, sub: str, shape: tuple[int, ...]) -> dict[int, dict[str, float | None]]:
    """lesion_id -> measures; checks that the label map and the table name the same lesions."""
    table = session.lesions.to_pandas() if isinstance(session.lesions, pa.Table) else session.lesions
    where = f"subject {sub!r} session {session.ses!r}"
    missing = [c for c in ("lesion_id", *MEASURES) if c not in table.columns]
    if missing:
        msg = format_error(f"{where}: lesions table lacks columns {missing!r}",
                           expected="the LESIONS_SCHEMA columns (measure_lesions(...).lesions)",
                           fix="pass the session's lesions table as measure_lesions returns it")
        raise LongitudinalError(msg, scan_id=session.scan_id)
    if session.aligned and tuple(session.labels.shape) != shape:
        msg = format_error(f"{where}: label map has shape {tuple(session.labels.shape)!r}, the baseline {shape!r}",
                           expected="label maps on the baseline grid",
                           fix="resample the session's labels with resample_to_baseline")
        raise LongitudinalError(msg, scan_id=session.scan_id)
    out: dict[int, dict[str, float | None]] = {}
    for row in table.to_dict("records"):
        out[int(row["lesion_id"])] = {m: (None if pd.isna(row[m]) else float(row[m])) for m in MEASURES}
    in_map = {int(v) for v in np.unique(session.labels) if v != 0}
    if session.aligned and not in_map <= set(out):
        msg = format_error(f"{where}: label map holds lesion ids {sorted(in_map - set(out))!r} that the lesions table lacks",
                           expected="every label of the map to have a row in the lesions table",
                           fix="pass the labels and the lesions table of the same measure_lesions call")
        raise LongitudinalError(msg, scan_id=session.scan_id)
    return out


def _overlaps(prev: np.ndarray, cur: np.ndarray, dilation: int) -> dict[tuple[int, int], int]:
    """Voxels shared by each (previous lesion, current lesion) pair, with optional growth of each side.

    With ``dilation`` d > 0 the count is the larger of (prev grown by d) x cur and prev x (cur grown
    by d); growth is a grey dilation (the larger label wins where two grown lesions meet).
    """
    pairs = [(prev, cur)]
    if dilation > 0:
        ball = ndimage.generate_binary_structure(3, 1)
        ball = ndimage.iterate_structure(ball, dilation)
        pairs = [(ndimage.grey_dilation(prev, footprint=ball), cur), (prev, ndimage.grey_dilation(cur, footprint=ball))]
    counts: dict[tuple[int, int], int] = {}
    for a, b in pairs:
        both = (a > 0) & (b > 0)
        if not both.any():
            continue
        base = int(b.max()) + 1
        codes, n = np.unique(a[both].astype(np.int64) * base + b[both], return_counts=True)
        for code, k in zip(codes.tolist(), n.tolist(), strict=True):
            key = (code // base, code % base)
            counts[key] = max(counts.get(key, 0), k)
    return counts


def _components(prev_ids: list[int], cur_ids: list[int], edges: list[tuple[int, int]]) -> list[tuple[list[int], list[int]]]:
    """Connected components of the bipartite graph as (previous ids, current ids), sorted."""
    n_p = len(prev_ids)
    index = {("p", v): i for i, v in enumerate(prev_ids)} | {("c", v): n_p + i for i, v in enumerate(cur_ids)}
    n = n_p + len(cur_ids)
    if n == 0:
        return []
    rows = [index[("p", a)] for a, _ in edges]
    cols = [index[("c", b)] for _, b in edges]
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    groups: dict[int, tuple[list[int], list[int]]] = {}
    for i, c in enumerate(comp.tolist()):
        side = groups.setdefault(c, ([], []))
        (side[0] if i < n_p else side[1]).append(prev_ids[i] if i < n_p else cur_ids[i - n_p])
    return sorted(groups.values(), key=lambda g: (min(g[1], default=10**9), min(g[0], default=10**9)))


def _event(n_from: int, n_to: int) -> str:
    if n_from == 1 and n_to == 1:
        return "persisting"
    if n_from == 0:
        return "new"
    if n_to == 0:
        return "resolved"
    if n_to == 1:
        return "merged"
    return "split" if n_from == 1 else "complex"


def _aggregate(values: list[dict[str, float | None]]) -> dict[str, float | None]:
    """One end of a change row: see the module docstring for the rules."""
    out: dict[str, float | None] = {}
    for m in MEASURES:
        if not values:
            out[m] = None if m in _BRIDGES else 0.0
            continue
        got = [v[m] for v in values]
        if any(g is None for g in got):  # an undefined part makes the aggregate undefined
            out[m] = None
            continue
        nums = [float(g) for g in got if g is not None]
        out[m] = sum(nums) if m == "volume_mm3" else (min(nums) if m in _BRIDGES else max(nums))
    return out


def _change_values(a: dict[str, float | None], b: dict[str, float | None], days: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in MEASURES:
        va, vb = a[m], b[m]
        change = None if va is None or vb is None else vb - va
        per_year = None if change is None or not days else change / (days / _DAYS_PER_YEAR)
        out |= {f"{m}_from": va, f"{m}_to": vb, f"{m}_change": change, f"{m}_change_per_year": per_year}
    return out


def track_lesions(
    sessions: Sequence[SessionLesions],
    *,
    sub: str,
    min_overlap_voxels: int = 1,
    dilation_voxels: int = 0,
) -> LesionTracks:
    """Match the lesions of one subject's sessions and tabulate tracks and changes.

    Parameters
    ----------
    sessions
        The subject's sessions in chronological order, the baseline first (its label map defines
        the grid; every other map must be on it).
    sub
        BIDS subject label.
    min_overlap_voxels
        Shared voxels needed to link two lesions of consecutive sessions (>= 1).
    dilation_voxels
        Count the voxels shared by a lesion grown by this many face-connected steps and the other
        session's lesions, both ways, keeping the larger count (0: plain overlap): lesions up to
        ``dilation_voxels`` voxels apart can link. Helps small lesions shifted by resampling.

    Returns
    -------
    LesionTracks
        ``tracks`` (:data:`TRACKS_SCHEMA`) and ``changes`` (:data:`CHANGES_SCHEMA`); see the module
        docstring for the events and the aggregation rules.

    Raises
    ------
    LongitudinalError
        No session, a baseline with a failed alignment, label maps off the baseline grid, label
        ids missing from the lesions table, mixed or unordered times, invalid options.
    """
    if not sessions:
        raise LongitudinalError(format_error(f"subject {sub!r} has no session", expected="at least one session",
                                             fix="pass the baseline session at least"))
    if min_overlap_voxels < 1 or dilation_voxels < 0:
        msg = format_error(f"min_overlap_voxels={min_overlap_voxels!r}, dilation_voxels={dilation_voxels!r}",
                           expected="min_overlap_voxels >= 1 and dilation_voxels >= 0", fix="pass valid values")
        raise LongitudinalError(msg)
    if not sessions[0].aligned:
        msg = format_error(f"subject {sub!r}: the baseline session {sessions[0].ses!r} has a failed alignment",
                           expected="the baseline first, with alignment None", fix="put the baseline session first")
        raise LongitudinalError(msg, scan_id=sessions[0].scan_id)
    shape = tuple(sessions[0].labels.shape)
    injury, from_base = _days(sessions, sub)
    measures = [_measures(s, sub, shape) for s in sessions]
    tracks: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    next_track = 1
    prev: int | None = None  # index of the last aligned session
    prev_tracks: dict[int, int] = {}  # its lesion_id -> track_id
    for i, s in enumerate(sessions):
        common = {"sub": sub, "ses": s.ses, "session_index": i, "scan_id": s.scan_id,
                  "days_since_injury": injury[i], "days_from_baseline": from_base[i]}
        ids = sorted(measures[i])
        if prev is None or not s.aligned:
            event = "baseline" if prev is None else "unaligned"
            for lid in ids:
                track = None
                if event == "baseline":
                    track, next_track = next_track, next_track + 1
                    prev_tracks[lid] = track
                tracks.append(common | {"lesion_id": lid, "track_id": track, "event": event,
                                        "parent_track_ids": []} | measures[i][lid])
            if prev is None:
                prev = i
            continue
        counts = _overlaps(np.asarray(sessions[prev].labels), np.asarray(s.labels), dilation_voxels)
        edges = [pair for pair, k in counts.items() if k >= min_overlap_voxels and pair[0] in prev_tracks and pair[1] in measures[i]]
        t_prev, t_cur = from_base[prev], from_base[i]
        days = None if t_prev is None or t_cur is None else t_cur - t_prev
        cur_tracks: dict[int, int] = {}
        for p_ids, c_ids in _components(sorted(prev_tracks), ids, edges):
            event = _event(len(p_ids), len(c_ids))
            parents = [prev_tracks[p] for p in p_ids]
            for cid in c_ids:
                if event == "persisting":
                    track = parents[0]
                else:
                    track, next_track = next_track, next_track + 1
                cur_tracks[cid] = track
                tracks.append(common | {"lesion_id": cid, "track_id": track, "event": event,
                                        "parent_track_ids": [] if event in ("persisting", "new") else parents}
                              | measures[i][cid])
            to_tracks = [cur_tracks[c] for c in c_ids]
            key = to_tracks[0] if len(to_tracks) == 1 else (parents[0] if len(parents) == 1 else None)
            changes.append({
                "sub": sub, "ses_from": sessions[prev].ses, "ses_to": s.ses, "session_index_from": prev,
                "session_index_to": i, "days": days, "event": event, "track_id": key,
                "from_track_ids": parents, "to_track_ids": to_tracks, "from_lesion_ids": p_ids, "to_lesion_ids": c_ids,
            } | _change_values(_aggregate([measures[prev][p] for p in p_ids]),
                               _aggregate([measures[i][c] for c in c_ids]), days))
        prev, prev_tracks = i, cur_tracks
    return LesionTracks(pa.Table.from_pylist(tracks, schema=TRACKS_SCHEMA),
                        pa.Table.from_pylist(changes, schema=CHANGES_SCHEMA))
