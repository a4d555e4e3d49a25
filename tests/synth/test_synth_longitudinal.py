"""Synthetic longitudinal cohorts: the motion, lesion events and sessions in the files are the ones recorded.

Expectations are derived from the written masks with numpy/scipy (resampling through
the recorded matrices, connected components), not from the generator's own code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from cohort_sciseg.errors import SynthError
from cohort_sciseg.synth import CLINICAL_COLUMNS, PARTICIPANT_COLUMNS
from cohort_sciseg.synth.longitudinal import synthesize_longitudinal_cohort

EVENTS = {"baseline", "persisting", "new", "resolved", "split", "merged"}
CONN18 = ndimage.generate_binary_structure(3, 2)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """The default cohort: 1 site x 4 subjects x 3 sessions."""
    return synthesize_longitudinal_cohort(tmp_path_factory.mktemp("long") / "out")


@pytest.fixture(scope="module")
def tables(cohort):
    return {
        name: pd.read_parquet(cohort.out_dir / "ground_truth" / f"{name}.parquet")
        for name in ("scans", "lesions", "motion", "lesion_events")
    }


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(path)
    return np.asarray(img.dataobj), img.affine


def _masks(cohort, scans, sub, ses):
    row = scans[(scans["sub"] == sub) & (scans["ses"] == ses)].iloc[0]
    cord, a_cord = _load(cohort.out_dir / row.cord_mask_path)
    lesion, a_les = _load(cohort.out_dir / row.lesion_mask_path)
    _, a_img = _load(cohort.out_dir / row.image_path)
    assert np.array_equal(a_cord, a_img)
    assert np.array_equal(a_les, a_img)
    return cord > 0, lesion > 0, a_img


def _matrix(motion, sub, ses) -> np.ndarray:
    row = motion[(motion["sub"] == sub) & (motion["ses"] == ses)].iloc[0]
    return np.asarray(row["matrix"], dtype=float).reshape(4, 4)


def _voxel(affine, world):
    return np.rint(np.linalg.solve(affine, np.append(world, 1.0))[:3]).astype(int)


def _centroid_world(mask, affine):
    idx = np.argwhere(mask).mean(axis=0)
    return affine[:3, :3] @ idx + affine[:3, 3]


def _resample_to(src, src_affine, dst_shape, dst_affine, world_map):
    """``src`` sampled (nearest) at the ``dst`` voxels; ``world_map``: dst world -> src world."""
    vox = np.linalg.inv(src_affine) @ world_map @ dst_affine
    out = ndimage.affine_transform(src.astype(np.uint8), vox, output_shape=dst_shape, order=0)
    valid = ndimage.affine_transform(
        np.ones(src.shape, np.uint8), vox, output_shape=dst_shape, order=0, cval=0
    )
    return out > 0, valid > 0


def _dice(a, b):
    return 2.0 * np.sum(a & b) / (np.sum(a) + np.sum(b))


def test_counts_and_layout(cohort, tables):
    assert (cohort.n_sites, cohort.n_subjects, cohort.n_sessions) == (1, 4, 3)
    assert cohort.n_scans == len(tables["scans"]) == len(tables["motion"]) == 12
    assert cohort.n_lesions == len(tables["lesions"])
    assert cohort.n_tracks == len(tables["lesion_events"][["sub", "track_id"]].drop_duplicates())
    root = cohort.dataset_roots[0]
    for sub in ("01", "02", "03", "04"):
        for ses in ("01", "02", "03"):
            anat = root / f"sub-{sub}" / f"ses-{ses}" / "anat"
            assert (anat / f"sub-{sub}_ses-{ses}_T2w.nii.gz").is_file()
            assert (anat / f"sub-{sub}_ses-{ses}_T2w.json").is_file()
            labels = root / "derivatives" / "labels" / f"sub-{sub}" / f"ses-{ses}" / "anat"
            assert (labels / f"sub-{sub}_ses-{ses}_T2w_seg-manual.nii.gz").is_file()
            assert (labels / f"sub-{sub}_ses-{ses}_T2w_lesion-manual.nii.gz").is_file()
    assert (root / "dataset_description.json").is_file()
    assert (root / "derivatives" / "labels" / "dataset_description.json").is_file()


def test_every_event_occurs_with_the_defaults(tables):
    ev = tables["lesion_events"]
    assert set(ev["event"]) == EVENTS
    # a shrinking and a growing persisting lesion both occur (analytic volume vs the baseline)
    persisting = ev[ev["event"] == "persisting"]
    base = ev[ev["event"] == "baseline"].set_index(["sub", "track_id"])["volume_mm3"]
    ratios = [
        row.volume_mm3 / base[(row.sub, row.track_id)]
        for row in persisting.itertuples()
        if (row.sub, row.track_id) in base.index
    ]
    assert min(ratios) < 0.8
    assert max(ratios) > 1.2


def test_track_structure(tables):
    ev = tables["lesion_events"]
    for sub, rows in ev.groupby("sub"):
        seen: dict[str, set[int]] = {}
        for ses in ("01", "02", "03"):
            seen[ses] = set(rows.loc[rows["ses"] == ses, "track_id"])
        prev: set[int] = set()
        for ses in ("01", "02", "03"):
            now = rows[rows["ses"] == ses]
            for r in now.itertuples():
                if r.event == "baseline":
                    assert ses == "01"
                elif r.event in ("persisting", "resolved"):
                    assert r.track_id in prev, (sub, ses, r.track_id)
                else:  # new, split, merged: a track that did not exist before
                    assert r.track_id not in prev
                if r.event in ("split", "merged"):
                    parents = list(r.parent_track_ids)
                    assert len(parents) == (1 if r.event == "split" else 2)
                    assert set(parents) <= prev
                    assert not set(parents) & seen[ses]
                else:
                    assert len(r.parent_track_ids) == 0
                if r.event == "resolved":
                    assert (r.n_voxels, r.volume_mm3) == (0, 0.0)
                    assert math.isnan(r.lesion_index)
                else:
                    assert min(r.n_voxels, r.volume_mm3, r.length_mm) > 0
            prev = set(now.loc[now["event"] != "resolved", "track_id"])


def test_motion_matrix_is_rigid_and_matches_the_angles(tables):
    for row in tables["motion"].itertuples():
        m = np.asarray(row.matrix).reshape(4, 4)
        angles = [row.rotation_deg_x, row.rotation_deg_y, row.rotation_deg_z]
        shift = [row.translation_mm_x, row.translation_mm_y, row.translation_mm_z]
        assert np.allclose(m[3], [0, 0, 0, 1])
        assert np.allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-12)
        if row.ses == "01":
            assert np.allclose(m, np.eye(4))
            assert not np.any(angles)
            assert not np.any(shift)
            continue
        assert max(abs(a) for a in angles) <= 5.0
        assert max(abs(t) for t in shift) <= 4.0
        # extrinsic x, y, z rotations (scipy's independent implementation); matrix is T^-1
        r = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
        assert np.allclose(m[:3, :3], r.T, atol=1e-9)
        pivot = np.array([row.pivot_mm_x, row.pivot_mm_y, row.pivot_mm_z])
        # T maps the pivot to pivot + t, so T^-1 maps pivot + t back to the pivot
        assert np.allclose(m[:3, :3] @ (pivot + shift) + m[:3, 3], pivot, atol=1e-9)


def test_recorded_motion_is_the_motion_in_the_images(cohort, tables):
    scans, motion = tables["scans"], tables["motion"]
    for sub in ("01", "02", "03", "04"):
        cord0, _, a0 = _masks(cohort, scans, sub, "01")
        for ses in ("02", "03"):
            cord_k, _, a_k = _masks(cohort, scans, sub, ses)
            m = _matrix(motion, sub, ses)
            # follow-up cord in the baseline grid: baseline world -> session world is m^-1
            moved, valid = _resample_to(cord_k, a_k, cord0.shape, a0, np.linalg.inv(m))
            assert valid.mean() > 0.6
            base = cord0 & valid
            dice = _dice(base, moved & valid)
            still, _ = _resample_to(cord_k, a_k, cord0.shape, a0, np.eye(4))
            assert dice > 0.9, (sub, ses, dice)
            assert dice > _dice(base, still & valid) + 0.1  # the motion is not negligible
            gap = _centroid_world(base, a0) - _centroid_world(moved & valid, a0)
            assert np.linalg.norm(gap) < 0.9, (sub, ses, gap)


def test_lesion_table_centres_match_the_masks_and_map_into_the_baseline_cord(cohort, tables):
    scans, motion, ev = tables["scans"], tables["motion"], tables["lesion_events"]
    for (sub, ses), rows in ev[ev["event"] != "resolved"].groupby(["sub", "ses"]):
        _, lesion, aff = _masks(cohort, scans, sub, ses)
        labels, _ = ndimage.label(lesion, CONN18)
        cord0, _, a0 = _masks(cohort, scans, sub, "01")
        m = _matrix(motion, sub, ses)
        for r in rows.itertuples():
            centre = np.array([r.center_x_mm, r.center_y_mm, r.center_z_mm])
            lab = labels[tuple(_voxel(aff, centre))]
            assert lab > 0, (sub, ses, r.track_id)
            component = labels == lab
            assert component.sum() == r.n_voxels
            assert np.linalg.norm(_centroid_world(component, aff) - centre) < 0.9
            in_baseline = m[:3, :3] @ centre + m[:3, 3]
            v = _voxel(a0, in_baseline)
            if np.all((v >= 0) & (v < cord0.shape)):
                assert cord0[tuple(v)]


def test_masks_stay_inside_the_cord(cohort, tables):
    ev = tables["lesion_events"]
    for row in tables["scans"].itertuples():
        cord, lesion, _ = _masks(cohort, tables["scans"], row.sub, row.ses)
        assert cord.sum() > 1000
        assert not np.any(lesion & ~cord)
        expected = ev.loc[(ev["sub"] == row.sub) & (ev["ses"] == row.ses), "n_voxels"].sum()
        assert lesion.sum() == expected == row.lesion_voxels


def _components_at(labels, affine, rows):
    return [
        labels[tuple(_voxel(affine, np.array([r.center_x_mm, r.center_y_mm, r.center_z_mm])))]
        for r in rows.itertuples()
    ]


def test_each_session_has_one_component_per_lesion(cohort, tables):
    ev = tables["lesion_events"]
    for (sub, ses), rows in ev.groupby(["sub", "ses"]):
        _, lesion, aff = _masks(cohort, tables["scans"], sub, ses)
        labels, n = ndimage.label(lesion, CONN18)
        present = rows[rows["event"] != "resolved"]
        assert n == len(present), (sub, ses)
        assert sorted(_components_at(labels, aff, present)) == list(range(1, n + 1))


def test_split_gives_two_separated_components(cohort, tables):
    ev = tables["lesion_events"]
    splits = ev[ev["event"] == "split"]
    assert len(splits) >= 2
    for (sub, ses), rows in splits.groupby(["sub", "ses"]):
        assert len(rows) == 2
        assert len({tuple(p) for p in rows["parent_track_ids"]}) == 1
        _, lesion, aff = _masks(cohort, tables["scans"], sub, ses)
        labels, _ = ndimage.label(lesion, CONN18)
        a, b = _components_at(labels, aff, rows)
        assert min(a, b) > 0
        assert a != b
        pa_ = np.argwhere(labels == a) @ aff[:3, :3].T
        pb_ = np.argwhere(labels == b) @ aff[:3, :3].T
        dist = np.sqrt(((pa_[:, None, :] - pb_[None, :, :]) ** 2).sum(-1)).min()
        assert dist >= 3.0, (sub, ses, dist)
        # the pieces lie one above the other along the scanner's superior-inferior axis
        za, zb = pa_[:, 2], pb_[:, 2]
        assert za.max() < zb.min() or zb.max() < za.min()
        # the parent was one component at the previous session
        parent = int(rows["parent_track_ids"].iloc[0][0])
        prev = f"{int(ses) - 1:02d}"
        before = ev[(ev["sub"] == sub) & (ev["ses"] == prev) & (ev["track_id"] == parent)]
        _, lesion0, aff0 = _masks(cohort, tables["scans"], sub, prev)
        labels0, _ = ndimage.label(lesion0, CONN18)
        assert _components_at(labels0, aff0, before)[0] > 0


def test_merge_joins_two_components(cohort, tables):
    ev = tables["lesion_events"]
    merged = ev[ev["event"] == "merged"]
    assert len(merged) >= 1
    for r in merged.itertuples():
        prev = f"{int(r.ses) - 1:02d}"
        parents = ev[
            (ev["sub"] == r.sub) & (ev["ses"] == prev) & ev["track_id"].isin(r.parent_track_ids)
        ]
        _, lesion0, aff0 = _masks(cohort, tables["scans"], r.sub, prev)
        labels0, _ = ndimage.label(lesion0, CONN18)
        a, b = _components_at(labels0, aff0, parents)
        assert min(a, b) > 0
        assert a != b
        _, lesion1, aff1 = _masks(cohort, tables["scans"], r.sub, r.ses)
        labels1, _ = ndimage.label(lesion1, CONN18)
        lab = _components_at(labels1, aff1, merged[merged.index == r.Index])[0]
        assert lab > 0
        # the parents' centres, carried through the motion, fall in the merged lesion's component
        m_prev, m_now = (
            _matrix(tables["motion"], r.sub, prev),
            _matrix(tables["motion"], r.sub, r.ses),
        )
        for p in parents.itertuples():
            c = np.array([p.center_x_mm, p.center_y_mm, p.center_z_mm, 1.0])
            now = np.linalg.inv(m_now) @ m_prev @ c
            region = np.zeros_like(lesion1)
            region[tuple(_voxel(aff1, now[:3]))] = True
            region = ndimage.binary_dilation(region, iterations=3)
            assert np.any(labels1[region] == lab)


def test_resolved_lesion_has_no_voxels_later(cohort, tables):
    ev, motion = tables["lesion_events"], tables["motion"]
    resolved = ev[ev["event"] == "resolved"]
    assert len(resolved) >= 1
    for r in resolved.itertuples():
        prev = f"{int(r.ses) - 1:02d}"
        before = ev[
            (ev["sub"] == r.sub) & (ev["ses"] == prev) & (ev["track_id"] == r.track_id)
        ].iloc[0]
        _, lesion0, aff0 = _masks(cohort, tables["scans"], r.sub, prev)
        labels0, _ = ndimage.label(lesion0, CONN18)
        centre = np.array([before.center_x_mm, before.center_y_mm, before.center_z_mm])
        comp = labels0 == labels0[tuple(_voxel(aff0, centre))]
        assert comp.sum() == before.n_voxels > 0
        # the previous component, carried into this session through the recorded motion
        _, lesion1, aff1 = _masks(cohort, tables["scans"], r.sub, r.ses)
        to_now = np.linalg.inv(_matrix(motion, r.sub, r.ses)) @ _matrix(motion, r.sub, prev)
        where, valid = _resample_to(comp, aff0, lesion1.shape, aff1, np.linalg.inv(to_now))
        where = ndimage.binary_dilation(where, iterations=2)
        assert where.sum() > comp.sum()
        assert valid[where].all()
        assert not np.any(lesion1 & where)
        # and the track has no row after the session where it is gone
        later = ev[(ev["sub"] == r.sub) & (ev["track_id"] == r.track_id) & (ev["ses"] > r.ses)]
        assert later.empty


def test_sessions_tsv(cohort, tables):
    root = cohort.dataset_roots[0]
    participants = pd.read_csv(root / "participants.tsv", sep="\t", dtype=str)
    assert list(participants.columns) == list(PARTICIPANT_COLUMNS)
    scans = tables["scans"]
    for sub in ("01", "02", "03", "04"):
        tsv = pd.read_csv(root / f"sub-{sub}" / f"sub-{sub}_sessions.tsv", sep="\t", dtype=str)
        assert list(tsv.columns) == [
            "session_id",
            "acq_time",
            "days_since_injury",
            *CLINICAL_COLUMNS,
        ]
        assert list(tsv["session_id"]) == ["ses-01", "ses-02", "ses-03"]
        times = [dt.datetime.fromisoformat(t) for t in tsv["acq_time"]]
        days = [int(d) for d in tsv["days_since_injury"]]
        assert all(b > a for a, b in itertools.pairwise(times))
        assert all(b > a for a, b in itertools.pairwise(days))
        for a, b, da, db in zip(times, times[1:], days, days[1:], strict=False):
            assert (b.date() - a.date()).days == db - da
        for col in CLINICAL_COLUMNS:
            if col.endswith("_ais"):
                assert set(tsv[col]) <= set("ABCDE")
            else:
                top = 50 if "LEMS" in col else 112
                assert tsv[col].astype(int).between(0, top).all()
        base = participants[participants["participant_id"] == f"sub-{sub}"].iloc[0]
        assert int(base["days_since_injury"]) == days[0]
        assert [base[c] for c in CLINICAL_COLUMNS] == list(tsv.iloc[0][list(CLINICAL_COLUMNS)])
        # scores follow the lesion burden: both burden measures down -> scores not worse
        burden = scans[scans["sub"] == sub].sort_values("ses")
        vol = list(burden["total_analytic_volume_mm3"])
        ratio = list(burden["analytic_max_axial_damage_ratio"])
        lems = [int(v) for v in tsv["initial_LEMS"]]
        pin = [int(v) for v in tsv["initial_pin_prick_total"]]
        for k in (1, 2):
            if vol[k] < vol[k - 1] and ratio[k] < ratio[k - 1]:
                assert lems[k] >= lems[k - 1]
                assert pin[k] >= pin[k - 1]
            if vol[k] > vol[k - 1] and ratio[k] > ratio[k - 1]:
                assert lems[k] <= lems[k - 1]
                assert pin[k] <= pin[k - 1]


def test_tables_document_every_field(cohort):
    for name in ("motion", "lesion_events"):
        schema = pq.read_schema(cohort.out_dir / "ground_truth" / f"{name}.parquet")
        for field in schema:
            assert field.metadata is not None, (name, field.name)
            assert field.metadata[b"description"], (name, field.name)
    motion = pq.read_schema(cohort.motion_table)
    assert motion.field("translation_mm_x").metadata[b"unit"] == b"mm"
    assert motion.field("rotation_deg_z").metadata[b"unit"] == b"deg"
    readme = (cohort.out_dir / "ground_truth" / "README.md").read_text()
    assert "## motion.parquet" in readme
    assert "## lesion_events.parquet" in readme


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes(tmp_path):
    opts = {"subjects_per_site": 2, "sessions": 2, "sites": 2}
    a = synthesize_longitudinal_cohort(tmp_path / "a", seed=4, **opts)
    b = synthesize_longitudinal_cohort(tmp_path / "b", seed=4, **opts)
    c = synthesize_longitudinal_cohort(tmp_path / "c", seed=5, **opts)
    da, db, dc = _digest(a.out_dir), _digest(b.out_dir), _digest(c.out_dir)
    assert len(da) > 30
    assert da == db
    assert da.keys() == dc.keys()
    assert da != dc
    assert a.n_scans == 8
    assert [p.name for p in a.dataset_roots] == ["site1", "site2"]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"sessions": 1}, r"sessions=1 is not valid; expected 2 or 3"),
        ({"sessions": 4}, r"sessions=4 is not valid.*Fix: pass sessions=2 or sessions=3"),
        ({"sessions": True}, r"sessions=True is not valid"),
        ({"sessions": "3"}, r"sessions='3' is not valid"),
        ({"sites": 0}, r"sites=0 is not valid; expected an integer >= 1"),
        ({"subjects_per_site": 0}, r"subjects_per_site=0 is not valid"),
        ({"seed": -1}, r"seed=-1 is not valid; expected an integer >= 0"),
        (
            {"max_rotation_deg": -1.0},
            r"max_rotation_deg=-1.0 is not valid; expected a number between 0 and 10",
        ),
        (
            {"max_rotation_deg": 45},
            r"max_rotation_deg=45 is not valid.*Fix: pass e.g. max_rotation_deg=5.0",
        ),
        ({"max_rotation_deg": float("nan")}, r"max_rotation_deg=nan is not valid"),
        ({"max_translation_mm": True}, r"max_translation_mm=True is not valid"),
        ({"max_translation_mm": "4"}, r"max_translation_mm='4' is not valid"),
        (
            {"max_translation_mm": 20.0},
            r"max_translation_mm=20.0 is not valid.*max_translation_mm=4.0",
        ),
    ],
)
def test_bad_options_are_refused(tmp_path, options, match):
    with pytest.raises(SynthError, match=match):
        synthesize_longitudinal_cohort(tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_non_empty_output_is_refused(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(SynthError, match="the output folder is not empty"):
        synthesize_longitudinal_cohort(tmp_path)


def test_zero_motion_keeps_the_subject_in_place(tmp_path):
    c = synthesize_longitudinal_cohort(
        tmp_path / "still",
        subjects_per_site=1,
        sessions=2,
        max_rotation_deg=0,
        max_translation_mm=0,
    )
    motion = pd.read_parquet(c.motion_table)
    assert all(np.allclose(np.reshape(m, (4, 4)), np.eye(4)) for m in motion["matrix"])
