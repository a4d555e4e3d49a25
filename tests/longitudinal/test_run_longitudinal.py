"""The longitudinal step of a run, end to end on a synthetic longitudinal cohort with known motion and events.

The run uses the ``copy-manual`` segmenter (its masks are the cohort's analytic masks), so what is
checked is the step itself: every known motion recovered, every known event found, the change values
those of the ground truth, and the problem cases handled without crash.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from cohort_sciseg.batch.runner import RunOptions, run_cohort
from cohort_sciseg.batch.segmenters import SegmenterSpec
from cohort_sciseg.cli import main
from cohort_sciseg.errors import LongitudinalError
from cohort_sciseg.io import read_partitioned_table
from cohort_sciseg.longitudinal import analyze_run, session_groups
from cohort_sciseg.synth import synthesize_longitudinal_cohort

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("longitudinal")
    cohort = synthesize_longitudinal_cohort(root / "cohort", subjects_per_site=4, sessions=3, seed=0)
    opts = RunOptions(segmenter=SegmenterSpec.make("copy-manual"), workers=1, progress=False, report=True)
    summary = run_cohort(list(cohort.dataset_roots), root / "run", opts)
    assert summary.ok, summary.format()
    assert "longitudinal: 4 subject(s), 12 session(s), 8 follow-up(s) aligned to baseline (0 failed" in summary.format()
    return root / "cohort", root / "run"


def _table(out: Path, name: str) -> pd.DataFrame:
    table = read_partitioned_table(out / "tables" / name)
    assert table is not None, name
    return table.to_pandas()


def test_known_motion_is_recovered(run: tuple[Path, Path]) -> None:
    cohort, out = run
    truth = pd.read_parquet(cohort / "ground_truth" / "motion.parquet").set_index(["sub", "ses"])
    found = _table(out, "session_alignments")
    assert len(found) == len(truth) == 12
    assert found["ok"].all(), found[["sub", "ses", "cord_dice", "message"]]
    for row in found.itertuples():
        want = np.asarray(truth.loc[(row.sub, row.ses), "matrix"], float).reshape(4, 4)
        got = np.asarray(row.matrix, float).reshape(4, 4)
        angle = np.degrees(Rotation.from_matrix(got[:3, :3] @ want[:3, :3].T).magnitude())
        assert angle < 1.0, (row.sub, row.ses, angle)
        # the displacement of the session's cord voxels: within one voxel (0.9 mm)
        img = nib.load(cohort / "site1" / f"sub-{row.sub}" / f"ses-{row.ses}" / "anat" /
                       f"sub-{row.sub}_ses-{row.ses}_T2w.nii.gz")
        cord_path = next((cohort / "site1" / "derivatives" / "labels" / f"sub-{row.sub}" / f"ses-{row.ses}"
                          / "anat").glob("*seg-manual*"))
        ijk = np.argwhere(np.asarray(nib.load(cord_path).dataobj) > 0)
        xyz = nib.affines.apply_affine(img.affine, ijk)
        err = np.linalg.norm(nib.affines.apply_affine(got, xyz) - nib.affines.apply_affine(want, xyz), axis=1)
        assert err.max() < 0.9, (row.sub, row.ses, err.max())


def test_every_known_event_is_found(run: tuple[Path, Path]) -> None:
    cohort, out = run
    truth = pd.read_parquet(cohort / "ground_truth" / "lesion_events.parquet")
    tracks, changes = _table(out, "lesion_tracks"), _table(out, "lesion_changes")
    present = truth[truth["n_voxels"] > 0]
    for (sub, ses), rows in present.groupby(["sub", "ses"]):
        got = tracks[(tracks["sub"] == sub) & (tracks["ses"] == ses)]
        assert Counter(got["event"]) == Counter(rows["event"]), (sub, ses)
    resolved = truth[truth["event"] == "resolved"]
    found = changes[changes["event"] == "resolved"]
    assert Counter(zip(resolved["sub"], resolved["ses"], strict=True)) == \
        Counter(zip(found["sub"], found["ses_to"], strict=True))
    assert {"persisting", "new", "resolved", "split", "merged"} <= set(changes["event"])
    # a split's lesions descend from one track, a merge's lesion from two
    split = tracks[tracks["event"] == "split"]
    assert split["parent_track_ids"].map(len).eq(1).all()
    merged = tracks[tracks["event"] == "merged"]
    assert merged["parent_track_ids"].map(len).ge(2).all()


def _truth_with_ids(cohort: Path) -> pd.DataFrame:
    """The truth's lesions with the run's lesion ids: 1..n superior first (centre z; rotations are small)."""
    truth = pd.read_parquet(cohort / "ground_truth" / "lesion_events.parquet")
    present = truth[truth["n_voxels"] > 0].copy()
    present["lesion_id"] = present.groupby(["sub", "ses"])["center_z_mm"].rank(ascending=False).astype(int)
    return present


def test_change_values_match_the_ground_truth(run: tuple[Path, Path]) -> None:
    cohort, out = run
    truth = _truth_with_ids(cohort)
    changes = _table(out, "lesion_changes")
    voxel = 0.9 ** 3
    # persisting tracks: the volume change is the change of the voxel counts of the truth's masks
    for row in changes[changes["event"] == "persisting"].itertuples():
        t = truth[(truth["sub"] == row.sub)]
        lesions = t.set_index(["ses", "lesion_id"])
        before = lesions.loc[(row.ses_from, float(row.from_lesion_ids[0])), "n_voxels"]
        after = lesions.loc[(row.ses_to, float(row.to_lesion_ids[0])), "n_voxels"]
        assert row.volume_mm3_change == pytest.approx((after - before) * voxel, abs=voxel), row
        # the length change against the ellipsoids' analytic S-I lengths: each session's measured length
        # is a whole number of slices, so the change can be off by a slice at each end (seen: <= 1.21 mm)
        l0 = lesions.loc[(row.ses_from, row.from_lesion_ids[0]), "length_mm"]
        l1 = lesions.loc[(row.ses_to, row.to_lesion_ids[0]), "length_mm"]
        assert row.length_mm_change == pytest.approx(l1 - l0, abs=2 * 0.9), row
        assert row.days > 0
        assert row.volume_mm3_change_per_year == pytest.approx(row.volume_mm3_change / (row.days / 365.25))
    # lengths: within a voxel of the ellipsoid's S-I length (analytic truth)
    tracks = _table(out, "lesion_tracks")
    merged = tracks.merge(truth, on=["sub", "ses", "lesion_id"])
    assert len(merged) == len(tracks)
    # the measured length counts whole slices: up to one 0.9 mm slice at each end (measured: within 1.05 mm)
    assert (merged["length_mm_x"] - merged["length_mm_y"]).abs().max() <= 2 * 0.9


def test_statistics_and_report(run: tuple[Path, Path]) -> None:
    _, out = run
    changes = pd.read_parquet(out / "longitudinal" / "subject_changes.parquet")
    assert set(changes["sub"]) == {"01", "02", "03", "04"}
    vol = changes[(changes["kind"] == "biomarker") & (changes["measure"] == "total_volume_mm3")]
    assert (vol["change"] == vol["value_to"] - vol["value_from"]).all()
    stats = pd.read_parquet(out / "longitudinal" / "statistics.parquet")
    assert "scipy.stats.wilcoxon" in set(stats["test"])
    assert (stats["analysis"] == "longitudinal").all()
    assert stats["stratum"].isin(["overall", "site=site1"]).all()
    assert any("change vs" in str(m) for m in stats["measure"])  # scores from sessions.tsv
    report = out / "report"
    assert (report / "subjects.html").is_file()
    for sub in ("01", "02", "03", "04"):
        assert (report / "subjects" / "site1" / f"{sub}.html").is_file()
    assert 'href="subjects.html"' in (report / "cohort.html").read_text()


def test_resume_keeps_the_tables_and_the_command_rebuilds_them(run: tuple[Path, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    _, out = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    stamp = (copy / "longitudinal" / ".inputs.sha256").read_text()
    assert main(["longitudinal", str(copy)]) == 0
    text = capsys.readouterr().out
    assert "4 subject(s), 12 session(s), 8 follow-up(s)" in text
    assert "0 failed" in text
    assert (copy / "longitudinal" / ".inputs.sha256").read_text() == stamp


def test_failed_alignment_and_missing_mask_are_handled(run: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    scans = _table(copy, "scans").set_index("scan_id")
    # sub-02 ses-03: a predicted cord that is a small blob elsewhere -> the alignment fails its check
    bad = scans.loc["site-site1_sub-02_ses-03_T2w"]
    cord = nib.load(copy / bad["cord_seg_path"])
    blob = np.zeros(cord.shape, np.uint8)
    blob[:4, :4, :4] = 1
    nib.save(nib.Nifti1Image(blob, cord.affine, cord.header), copy / bad["cord_seg_path"])
    # sub-04 ses-02: the lesion mask is gone -> that subject is a problem, the others go on
    gone = scans.loc["site-site1_sub-04_ses-02_T2w"]
    (copy / gone["lesion_seg_path"]).unlink()
    summary = analyze_run(copy, report=False)
    assert summary.subjects == 3
    assert len(summary.problems) == 1
    assert "sub-04" in summary.problems[0]
    assert "lesion" in summary.problems[0]
    alignments = _table(copy, "session_alignments").set_index(["sub", "ses"])
    row = alignments.loc[("02", "03")]
    assert not row["ok"]
    assert "cord" in row["message"].lower()
    tracks = _table(copy, "lesion_tracks")
    unaligned = tracks[(tracks["sub"] == "02") & (tracks["ses"] == "03")]
    assert (unaligned["event"] == "unaligned").all()
    assert unaligned["track_id"].isna().all()
    assert "04" not in set(tracks["sub"])


def test_one_session_subjects_and_not_a_run(tmp_path: Path) -> None:
    scans = pd.DataFrame({"scan_id": ["a", "b"], "site": ["s", "s"], "sub": ["01", "02"], "ses": ["01", "01"],
                          "acq": [None, None], "status": ["done", "done"], "image_path": ["/x", "/y"],
                          "cord_seg_path": ["c", "d"], "lesion_seg_path": ["e", "f"]})
    assert session_groups(scans, tmp_path) == []
    (tmp_path / "empty").mkdir()
    with pytest.raises(LongitudinalError, match="no scans table"):
        analyze_run(tmp_path / "empty")
