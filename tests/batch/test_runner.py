"""The runner on a real LocalCluster (worker processes) with the fast stand-in segmenter."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from cohort_sciseg.batch.runner import RunOptions, load_summary, run_cohort
from cohort_sciseg.batch.segmenters import SegmenterSpec
from cohort_sciseg.discover import find_scans
from cohort_sciseg.synth import synthesize_cohort

STANDIN = SegmenterSpec.make("copy-manual", dilate_lesions=1)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("runner")
    c = synthesize_cohort(root / "cohort", sites=2, subjects_per_site=2, seed=4)
    return [Path(r) for r in c.dataset_roots]


def _opts(**kw):
    return RunOptions(segmenter=STANDIN, workers=2, progress=False, **kw)


def test_every_scan_once_and_resume_skips(cohort, tmp_path):
    out = tmp_path / "run"
    n = len(find_scans(cohort).scans)
    s1 = run_cohort(cohort, out, _opts())
    assert s1.ok
    assert s1.counts["done"] == n
    scans = pd.read_parquet(out / "tables" / "scans")
    assert sorted(scans.scan_id) == sorted(set(scans.scan_id))
    assert len(scans) == n
    assert set(scans.status) == {"done"}
    assert scans.cord_dice.eq(1.0).all()  # the stand-in copies the manual cord
    for rel in scans.cord_seg_path:
        assert (out / rel).is_file()
    lesions1 = pd.read_parquet(out / "tables" / "lesions")
    first = load_summary(out)  # the run's record: effective configuration and environment
    assert first["cluster"]["started"] is True
    assert len(first["cluster"]["workers"]) == 2
    assert all(w["nthreads"] == 1 for w in first["cluster"]["workers"])
    assert first["options"]["segmenter"]["plugin"] == "copy-manual"
    assert {"discover_s", "cluster_start_s", "tasks_s", "compact_s"} <= set(first["phases"])
    assert isinstance(first["environment"]["gpus"], list)
    assert "pyarrow" in first["environment"]["versions"]
    stamp = out / "validation" / ".inputs.sha256"
    drawn = {p: p.stat().st_mtime_ns for p in (out / "validation").rglob("*.png")}
    assert stamp.is_file()
    assert drawn
    s2 = run_cohort(cohort, out, _opts())
    assert s2.counts["skipped"] == n
    assert s2.counts.get("done", 0) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out / "tables" / "lesions"), lesions1)
    record = load_summary(out)  # the resume's record
    assert record["counts"]["skipped"] == n
    # nothing to do: the resume checked the keys itself and started no cluster ...
    assert record["cluster"]["started"] is False
    assert "workers" not in record["cluster"]
    assert "cluster_start_s" not in record["phases"]
    assert "resume_check_s" in record["phases"]
    # ... and kept the validation study, whose inputs did not change (no figure redrawn)
    assert {p: p.stat().st_mtime_ns for p in (out / "validation").rglob("*.png")} == drawn
    assert not (out / "dataset_description.json").exists()  # one derivative dataset per site instead
    for site in {s.site for s in find_scans(cohort).scans}:
        desc = json.loads((out / site / "dataset_description.json").read_text())
        assert desc["DatasetType"] == "derivative"
        assert "copy-manual" in desc["GeneratedBy"][0]["Description"]
        assert [d["URL"] for d in desc["SourceDatasets"]] == [r.resolve().as_uri() for r in cohort if r.name == site]
    assert len(list((out / "logs").glob("*.log"))) == n


def test_changed_settings_redo_the_scans(cohort, tmp_path):
    out = tmp_path / "run"
    run_cohort(cohort, out, _opts())
    other = RunOptions(segmenter=SegmenterSpec.make("copy-manual", dilate_lesions=0), workers=2, progress=False)
    s = run_cohort(cohort, out, other)
    assert s.counts["done"] == s.counts["total"]
    scans = pd.read_parquet(out / "tables" / "scans")
    assert len(scans) == s.counts["total"]  # replaced, not duplicated
    assert scans.lesion_dice.dropna().eq(1.0).all()


def test_bad_scans_become_failures_and_the_rest_finishes(cohort, tmp_path):
    src = tmp_path / "bids"
    roots = [Path(shutil.copytree(r, src / r.name)) for r in cohort]
    images = sorted(roots[0].glob("sub-*/**/anat/*_T2w.nii.gz"))
    # a truncated gzip: unreadable image
    data = images[0].read_bytes()
    images[0].write_bytes(data[: len(data) // 3])
    # a manual lesion mask on another grid: validation fails, the scan's morphometry stands
    out = tmp_path / "run"
    summary = run_cohort(roots, out, _opts())
    n = summary.counts["total"]
    assert not summary.ok
    failed = pd.read_parquet(out / "tables" / "failures")
    assert images[0].name.replace(".nii.gz", "") in " ".join(failed.scan_id)
    assert all("Fix" in m or "fix" in m for m in failed.message)
    scans = pd.read_parquet(out / "tables" / "scans")
    assert len(scans) == n
    assert (scans.status == "done").sum() == n - 1
    # fixing the file and resuming redoes only that scan
    with gzip.open(images[0], "wb") as f:
        f.write(gzip.decompress(data))
    again = run_cohort(roots, out, _opts())
    assert again.ok
    assert again.counts["done"] == 1
    assert again.counts["skipped"] == n - 1


@pytest.mark.slow
def test_workers_killed_at_random_moments_leave_every_scan_once(cohort, tmp_path):
    """SIGKILL worker processes several times during a run: each scan once, no partial file."""
    import os
    import random
    import signal
    import threading
    import time

    import psutil

    out = tmp_path / "run"
    slow = SegmenterSpec.make("copy-manual", dilate_lesions=1, delay_s=0.4)
    opts = RunOptions(segmenter=slow, workers=2, progress=False, retries=5)
    n = len(find_scans(cohort).scans)
    me = psutil.Process()
    kills = []

    def killer():  # the run owns the main thread (the cluster starts there)
        rng = random.Random(3)
        deadline = time.monotonic() + 60
        while not list(out.glob("logs/*.log")) and time.monotonic() < deadline:
            time.sleep(0.05)  # the cluster is up and scans are running
        while len(kills) < 4 and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.5, 1.2))
            # worker processes: spawned by the nannies (which live in this process)
            workers = [p for p in me.children(recursive=True) if any("spawn_main" in a for a in p.cmdline())]
            if workers:
                victim = rng.choice(workers)
                os.kill(victim.pid, signal.SIGKILL)
                kills.append(victim.pid)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    summary = run_cohort(cohort, out, opts)
    t.join(timeout=1)
    assert len(kills) >= 2
    scans = pd.read_parquet(out / "tables" / "scans")
    assert len(scans) == n
    assert scans.scan_id.is_unique
    lesions = pd.read_parquet(out / "tables" / "lesions")
    assert not lesions.duplicated(["scan_id", "lesion_id"]).any()
    leftovers = [p for p in out.rglob("*") if ".tmp" in p.name]
    assert leftovers == []
    # whatever could not finish is a failure record, and a resume completes it
    if not summary.ok:
        again = run_cohort(cohort, out, RunOptions(segmenter=slow, workers=2, progress=False))
        assert again.ok
    assert set(pd.read_parquet(out / "tables" / "scans").status) == {"done"}


@pytest.mark.slow
def test_a_scan_that_kills_its_worker_becomes_a_failure_after_the_retries(cohort, tmp_path):
    """A scan whose every attempt kills the worker (an OOM kill): a failure record and a
    ``failed`` scans row after ``retries + 1`` deaths; the other scans finish."""
    scans_all = find_scans(cohort).scans
    victim = scans_all[0]
    crash = SegmenterSpec.make("copy-manual", dilate_lesions=1, kill_on=Path(victim.image_path).name)
    out = tmp_path / "run"
    summary = run_cohort(cohort, out, RunOptions(segmenter=crash, workers=2, progress=False, retries=1))
    assert not summary.ok
    assert summary.counts["failed"] == 1
    assert summary.counts["done"] == len(scans_all) - 1
    scans = pd.read_parquet(out / "tables" / "scans")
    assert len(scans) == len(scans_all)  # the failed scan has its row too
    assert scans.set_index("scan_id").loc[victim.scan_id, "status"] == "failed"
    failures = pd.read_parquet(out / "tables" / "failures")
    row = failures.set_index("scan_id").loc[victim.scan_id]
    assert "did not finish" in row.message
    assert "KilledWorker" in row.message
    assert "--resume" in row.message  # the fix
    assert row.stage == "batch"
    # both attempts are recorded (each on its own worker, killed), and the log has both
    victim_row = scans.set_index("scan_id").loc[victim.scan_id]
    assert victim_row.attempt == 2
    attempts = list(victim_row.attempts)
    assert len(attempts) == 2
    assert all(a["worker"] and a["started"] for a in attempts)
    assert attempts[0]["outcome"] == "lost"
    assert attempts[1]["outcome"] == "failed"
    log = (out / "logs" / f"{victim.scan_id}.log").read_text()
    assert log.count("attempt 1 on") == 1
    assert log.count("attempt 2 on") == 1


@pytest.mark.slow
def test_a_scan_retried_after_its_worker_died_keeps_both_attempts(cohort, tmp_path):
    """Killed once, done at the retry: the row says 2 attempts (the first lost) and the log keeps both."""
    victim = find_scans(cohort).scans[0]
    once = SegmenterSpec.make("copy-manual", kill_on=Path(victim.image_path).name, kill_once=True)
    out = tmp_path / "run"
    summary = run_cohort(cohort, out, RunOptions(segmenter=once, workers=2, progress=False, retries=1))
    assert summary.ok
    scans = pd.read_parquet(out / "tables" / "scans").set_index("scan_id")
    row = scans.loc[victim.scan_id]
    assert row.status == "done"
    assert row.attempt == 2
    assert [a["outcome"] for a in row.attempts] == ["lost", "done"]
    assert row.attempts[1]["ended"] >= row.attempts[0]["started"]
    assert (scans.drop(index=victim.scan_id).attempt == 1).all()
    log = (out / "logs" / f"{victim.scan_id}.log").read_text()
    assert "attempt 1 on" in log
    assert "attempt 2 on" in log
    assert log.index("attempt 1 on") < log.index("attempt 2 on")


@pytest.mark.slow
def test_external_scheduler_and_worker_processes(cohort, tmp_path):
    """A real `dask scheduler` + `dask worker` pair on loopback, reached through `scheduler=`."""
    import json
    import subprocess
    import sys
    import time

    bin_dir = Path(sys.executable).parent
    sched_file = tmp_path / "scheduler.json"
    procs = [
        subprocess.Popen(
            [bin_dir / "dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", sched_file],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(
            subprocess.Popen(
                [bin_dir / "dask", "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )
        out = tmp_path / "run"
        summary = run_cohort(cohort, out, RunOptions(segmenter=STANDIN, scheduler=address, progress=False))
        assert summary.ok
        assert summary.counts["done"] == summary.counts["total"] > 0
        assert len(pd.read_parquet(out / "tables" / "scans")) == summary.counts["total"]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def test_run_on_a_cluster_file(cohort, tmp_path):
    cfg = tmp_path / "local.yaml"
    cfg.write_text("kind: local\ngpus: 0\ncpu_workers: 2\nthreads_per_worker: 1\n")
    out = tmp_path / "run"
    summary = run_cohort(cohort, out, RunOptions(segmenter=STANDIN, cluster=str(cfg), progress=False))
    assert summary.ok
    assert summary.counts["done"] == summary.counts["total"]


def test_run_command_line(cohort, tmp_path, capsys):
    from cohort_sciseg.cli import main

    out = tmp_path / "run"
    argv = ["run", *map(str, cohort), "-o", str(out), "--segmenter", "copy-manual",
            "--segmenter-option", "dilate_lesions=1", "--workers", "2", "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "0 failed" in text
    assert "tables" in text
    assert main(["run", *map(str, cohort), "-o", str(out), "--segmenter", "nope", "--no-progress"]) == 2
    assert "unknown segmenter" in capsys.readouterr().err


@pytest.mark.slow
def test_nnunet_plugin_runs_the_engine_in_the_workers(cohort, tmp_path):
    """The real nnU-Net path through the runner, on a tiny seeded model (content is not the point)."""
    from cohort_sciseg.segment.testing import make_tiny_model

    model = make_tiny_model(tmp_path / "model", seed=1)
    out = tmp_path / "run"
    spec = SegmenterSpec.make("nnunet", model=str(model), device="cpu")
    summary = run_cohort(cohort, out, RunOptions(segmenter=spec, workers=2, progress=False, validate=False))
    assert summary.ok, summary.format()
    scans = pd.read_parquet(out / "tables" / "scans")
    assert len(scans) == summary.counts["total"]
    sidecar = out / scans.cord_seg_path.iloc[0].replace(".nii.gz", ".json")
    assert "GeneratedBy" in sidecar.read_text()
    again = run_cohort(cohort, out, RunOptions(segmenter=spec, workers=2, progress=False, validate=False))
    assert again.counts["skipped"] == summary.counts["total"]


@pytest.mark.slow
def test_staged_run_keeps_the_model_on_the_gpu_worker(cohort, tmp_path):
    """prepare/infer/finish tasks: infer only where the GPU resource is, same masks as one task per scan.

    No GPU here: the local cluster's "GPU" worker advertises the resource and runs
    the model on the CPU; the scheduling is the same as with a real GPU.
    """
    import nibabel as nib
    import numpy as np

    from cohort_sciseg.segment.testing import make_tiny_model

    model = make_tiny_model(tmp_path / "model", seed=1)
    spec = SegmenterSpec.make("nnunet", model=str(model), device="cpu", threads=1, tile_step_size=1.0)
    n = len(find_scans(cohort).scans)
    staged = run_cohort(cohort, tmp_path / "staged", RunOptions(
        segmenter=spec, gpus=1, gpu_worker_threads=2, workers=1, stages="auto", progress=False, validate=False,
    ))
    assert staged.ok, staged.format()
    assert staged.counts["done"] == n
    # every model run happened in one process: the GPU worker (the CPU worker has no GPU resource)
    assert len(staged.device_busy) == 1
    (busy,) = staged.device_busy.values()
    assert busy["scans"] == n
    assert 0 < busy["busy_s"] <= busy["span_s"] + 1e-6
    assert "model busy" in staged.format()
    log = next((tmp_path / "staged" / "logs").glob("*.log")).read_text()
    for step in ("prepared in", "model ran in", "done in"):
        assert step in log
    fused = run_cohort(cohort, tmp_path / "fused", RunOptions(
        segmenter=spec, gpus=0, workers=2, stages="fused", progress=False, validate=False,
    ))
    assert fused.ok
    a = pd.read_parquet(tmp_path / "staged" / "tables" / "scans").sort_values("scan_id")
    b = pd.read_parquet(tmp_path / "fused" / "tables" / "scans").sort_values("scan_id")
    assert list(a.scan_id) == list(b.scan_id)
    for ra, rb in zip(a.itertuples(), b.itertuples(), strict=True):
        for col in ("cord_seg_path", "lesion_seg_path"):
            x = np.asarray(nib.load(tmp_path / "staged" / getattr(ra, col)).dataobj)
            y = np.asarray(nib.load(tmp_path / "fused" / getattr(rb, col)).dataobj)
            assert np.array_equal(x, y), (ra.scan_id, col)


def test_split_stages_need_a_staged_segmenter(cohort, tmp_path):
    from cohort_sciseg.errors import BatchError

    with pytest.raises(BatchError, match="has no stages"):
        run_cohort(cohort, tmp_path / "run", _opts(stages="split"))
    with pytest.raises(BatchError, match="--gpus"):
        run_cohort(cohort, tmp_path / "run", _opts(gpus=-1))


def test_a_corpus_of_bad_scans_gives_one_failure_each(tmp_path):
    """Bad files mixed into a good cohort: one clear record per bad scan, every good scan done."""
    import nibabel as nib
    import numpy as np

    cohort = synthesize_cohort(tmp_path / "cohort", sites=3, subjects_per_site=3, seed=11)
    roots = [Path(r) for r in cohort.dataset_roots]
    images = sorted(p for r in roots for p in r.glob("sub-*/**/anat/*_T2w.nii.gz"))
    assert len(images) >= 8
    bad: dict[str, str] = {}  # image stem -> what the record must say

    def stem(p: Path) -> str:
        return p.name.removesuffix(".nii.gz")

    data = images[0].read_bytes()
    images[0].write_bytes(data[: len(data) // 3])
    bad[stem(images[0])] = "truncated"
    images[1].write_bytes(b"")
    bad[stem(images[1])] = "empty"
    images[2].write_bytes(b"this is not a NIfTI file, it is a note someone saved with the wrong name\n" * 10)
    bad[stem(images[2])] = "NIfTI"
    img = nib.load(images[3])
    vol = np.asarray(img.dataobj, dtype=np.float32)
    nib.save(nib.Nifti1Image(np.stack([vol] * 3, axis=-1), img.affine), images[3])
    bad[stem(images[3])] = "4D"
    img = nib.load(images[4])
    vol = np.asarray(img.dataobj, dtype=np.float32)
    vol[0, 0, 0] = np.nan
    nan_img = nib.Nifti1Image(vol, img.affine, img.header)
    nan_img.set_data_dtype(np.float32)
    nib.save(nan_img, images[4])
    bad[stem(images[4])] = "NaN"
    # a manual cord mask on another grid (the stand-in predicts the manual masks: it refuses it)
    mask = next(images[5].parents[3].glob(f"derivatives/labels/**/{stem(images[5])}_seg-manual.nii.gz"), None)
    if mask is None:  # images[5] sits in a session folder: one level deeper
        mask = next(images[5].parents[4].glob(f"derivatives/labels/**/{stem(images[5])}_seg-manual.nii.gz"))
    m = nib.load(mask)
    nib.save(nib.Nifti1Image(np.asarray(m.dataobj)[:-2], m.affine, m.header), mask)

    out = tmp_path / "run"
    summary = run_cohort(roots, out, _opts())
    assert not summary.ok
    failures = pd.read_parquet(out / "tables" / "failures")
    scans = pd.read_parquet(out / "tables" / "scans")
    assert sorted(scans.scan_id) == sorted(set(scans.scan_id))
    for image_stem, words in bad.items():
        rows = failures[failures.scan_id.str.endswith(image_stem)]
        assert len(rows) == 1, (image_stem, failures.scan_id.tolist())
        message = rows.message.iloc[0]
        assert words.lower() in message.lower(), message
        assert "Fix:" in message, message
        mine = scans[scans.scan_id.str.endswith(image_stem)]
        # files whose header cannot be read are refused by discovery (stage "discover", no scans row);
        # the others fail in their task (a "failed" row)
        if rows.stage.iloc[0] == "discover":
            assert mine.empty
        else:
            assert list(mine.status) == ["failed"]
    # every image is accounted for exactly once
    accounted = set(scans.scan_id) | set(failures[failures.stage == "discover"].scan_id)
    assert len(accounted) == len(images)
    mismatched = failures[failures.scan_id.str.endswith(stem(images[5]))]
    assert len(mismatched) == 1
    assert "grid" in mismatched.message.iloc[0]
    assert "Fix:" in mismatched.message.iloc[0]
    good = scans[~scans.scan_id.isin(failures.scan_id)]
    assert len(good) == len(images) - len(bad) - 1
    assert set(good.status) == {"done"}
    assert good.cord_dice.eq(1.0).all()
    assert summary.counts.get("failed", 0) + (failures.stage == "discover").sum() == len(bad) + 1
    assert len(summary.failures) == len(bad) + 1
    # the summary tells files discovery could not use (no scan) from scans that failed
    n_found = int((failures.stage == "discover").sum())
    text = summary.format()
    assert n_found
    assert f"{n_found} file(s) discovery could not use" in text
    assert text.count("  NOT USED ") == n_found
    assert text.count("  FAILED ") == len(summary.failures) - n_found


def test_a_task_that_runs_again_in_the_same_run_reports_done_not_skipped(cohort, tmp_path):
    """A scan's finished result can be lost with its worker, and Dask runs the task again:
    the scan this run already committed counts as done (not skipped) and is not redone,
    even with --no-resume; a later run with resume skips it."""
    from cohort_sciseg.batch.store import RecordStore
    from cohort_sciseg.batch.tasks import TaskConfig, process_scan

    scan = find_scans(cohort).scans[0]
    out = tmp_path / "run"
    config = TaskConfig(out_dir=str(out), segmenter=STANDIN, run_id="run-1", report=False)
    first = process_scan(scan, config)
    assert first.status == "done"
    committed = RecordStore(out).current(scan.site, scan.scan_id)
    assert committed.info["run_id"] == "run-1"
    pointer = out / ".cohort-sciseg" / "records" / scan.site / scan.scan_id / "CURRENT.json"
    stamp = pointer.stat().st_mtime_ns
    for resume in (True, False):
        again = process_scan(scan, TaskConfig(out_dir=str(out), segmenter=STANDIN, run_id="run-1",
                                              resume=resume, report=False))
        assert again.status == "done"
        assert pointer.stat().st_mtime_ns == stamp  # nothing redone
    later = TaskConfig(out_dir=str(out), segmenter=STANDIN, run_id="run-2", report=False)
    assert process_scan(scan, later).status == "skipped"
    fresh = TaskConfig(out_dir=str(out), segmenter=STANDIN, run_id="run-3", resume=False, report=False)
    assert process_scan(scan, fresh).status == "done"
    assert RecordStore(out).current(scan.site, scan.scan_id).info["run_id"] == "run-3"


def test_a_restricted_run_says_which_rows_are_its_own(cohort, tmp_path):
    """After a full run, a --participant-label run: the tables keep the other scans, each row names its run,
    and the summary says how many rows are not this run's."""
    out = tmp_path / "run"
    everything = find_scans(cohort).scans
    run_cohort(cohort, out, _opts())
    first_run = load_summary(out)["run_id"]
    sub = everything[0].sub
    s = run_cohort(cohort, out, _opts(participant_labels=(sub,), resume=False))
    this_run = load_summary(out)["run_id"]
    assert this_run != first_run
    scans = pd.read_parquet(out / "tables" / "scans")
    assert len(scans) == len(everything)
    mine = scans[scans.run_id == this_run]
    assert set(mine["sub"]) == {sub}
    assert len(mine) == s.counts["done"] == s.counts["total"]
    assert set(scans.run_id) == {first_run, this_run}
    others = len(everything) - len(mine)
    assert s.counts["earlier_runs"] == others
    assert f"tables/ also hold {others} scan(s) from earlier runs (0 failed)" in s.format()



def test_run_outputs_are_bids_valid_derivatives(cohort, tmp_path):
    """Each site's derivative dataset passes the official BIDS validator; validate finds the masks by their
    BIDS names; --mask-names sct keeps SCT's names."""
    from bids_validation import validation_errors

    from cohort_sciseg.validation import find_predictions

    out = tmp_path / "run"
    summary = run_cohort(cohort, out, _opts())
    assert summary.ok
    scans = pd.read_parquet(out / "tables" / "scans")
    assert scans.cord_seg_path.str.endswith("_label-SC_mask.nii.gz").all()
    assert scans.lesion_seg_path.str.endswith("_label-lesion_mask.nii.gz").all()
    for site in sorted(set(scans.site)):
        assert validation_errors(out / site) == [], site
    discovered = find_scans(cohort).scans
    found = find_predictions(discovered, out)
    assert set(found) == {s.scan_id for s in discovered}
    assert all(str(out) in p.cord_path for p in found.values())
    sct = tmp_path / "sct"
    run_cohort(cohort, sct, _opts(mask_naming="sct"))
    names = pd.read_parquet(sct / "tables" / "scans").cord_seg_path
    assert names.str.endswith("_sc_seg.nii.gz").all()
    assert names.str.contains("site-").all()


def test_a_run_folder_of_the_previous_layout_is_migrated(cohort, tmp_path):
    """A folder made before the per-site layout (one top description, <scan_id>_sc_seg masks): its masks move
    to .cohort-sciseg/previous-layout, the scans are redone with BIDS names, the user is told."""
    out = tmp_path / "run"
    run_cohort(cohort, out, _opts(mask_naming="sct"))
    (out / "dataset_description.json").write_text(json.dumps({"Name": "cohort-sciseg derivatives",
                                                              "DatasetType": "derivative"}))
    old = sorted(out.rglob("site-*_sc_seg.nii.gz"))
    assert old
    s = run_cohort(cohort, out, _opts())
    assert s.counts["done"] == s.counts["total"]  # redone (the layout is part of the key)
    assert not list(out.glob("*/sub-*/**/site-*_sc_seg.nii.gz"))
    kept = out / ".cohort-sciseg" / "previous-layout"
    assert len(list(kept.rglob("*_sc_seg.nii.gz"))) == len(old)
    assert not (out / "dataset_description.json").exists()
    logs = " ".join(p.read_text() for p in (out / "logs" / "runs").glob("run-*.log"))
    assert "made by an earlier cohort-sciseg" in logs


def test_every_path_of_a_run_is_named_by_the_run_layout(cohort, tmp_path):
    from cohort_sciseg.batch.layout import scan_folder
    from cohort_sciseg.batch.tasks import TABLE_SCHEMAS
    from cohort_sciseg.io import RunLayout
    from cohort_sciseg.schemas import LONGITUDINAL_TABLE_SCHEMAS

    out = tmp_path / "run"
    assert run_cohort(cohort, out, _opts()).ok
    layout = RunLayout(out)
    scans = find_scans(cohort).scans
    sites = {layout.site_dataset(s.site) for s in scans}
    named_top = {layout.tables, layout.logs, layout.report, layout.validation, layout.longitudinal, layout.state,
                 *sites}
    subjects = {layout.site_dataset(s.site) / scan_folder(out, s).relative_to(layout.site_dataset(s.site)).parts[0]
                for s in scans}  # inside a site's dataset: batch.layout's BIDS folders
    named_second = {
        layout.records, layout.run_logs, layout.scan_pages, layout.report_data, layout.report_assets,
        layout.validation_stats, layout.validation_figures, *(layout.table(n) for n in TABLE_SCHEMAS), *subjects,
        layout.subject_pages, *(layout.table(n) for n in LONGITUDINAL_TABLE_SCHEMAS),
    }
    top = set(out.iterdir())
    assert top <= named_top, sorted(p.name for p in top - named_top)
    second = {p for d in top if d.is_dir() for p in d.iterdir() if p.is_dir()}
    assert second <= named_second, sorted(str(p.relative_to(out)) for p in second - named_second)
    # and the files of tables/ and logs/ are the ones RunLayout names
    assert {p for p in layout.tables.iterdir() if p.is_file()} == {layout.discovered_scans}
    assert set(layout.logs.glob("*.log")) == {layout.scan_log(s.scan_id) for s in scans}
    assert len(list(layout.logs.glob(layout.dask_performance("*").name))) == 1
    assert len(layout.run_records()) == 1
    assert {p.suffix for p in layout.run_logs.iterdir()} == {".log", ".json"}
    assert layout.compaction_state.is_file()
    assert layout.report_index.is_file()
