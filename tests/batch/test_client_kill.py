"""Kill the whole ``cohort-sciseg run`` (client, scheduler, workers) and resume it.

What a cut-off SLURM job or a closed login shell does: every process of the run
gets SIGKILL at once, whatever it was writing. The next run of the same command
with ``--resume`` must skip exactly the scans committed before the kill,
process only the others, and leave every scan once in the tables, no temporary
file of an interrupted atomic write, and only complete masks.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import psutil
import pytest

from cohort_sciseg.batch.store import RecordStore
from cohort_sciseg.discover import find_scans
from cohort_sciseg.synth import synthesize_cohort

CLI = Path(sys.executable).with_name("cohort-sciseg")
#: Per-scan sleep of the stand-in: 14 scans on 2 workers last ~2 s, room to kill half-way.
DELAY_S = 0.3
#: Kill once this many scans are committed (of 14).
KILL_AFTER = 3
#: ``cohort_sciseg.io.atomic_path`` names: ``.<stem>.<12 hex>.tmp<ext>`` (written out here, not imported).
TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp(\.[A-Za-z0-9.]+)?$")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("client_kill")
    c = synthesize_cohort(root / "cohort", sites=3, subjects_per_site=4, seed=7)
    return [Path(r) for r in c.dataset_roots]


def _command(cohort: list[Path], out: Path) -> list[str]:
    return [
        str(CLI), "run", *map(str, cohort), "-o", str(out),
        "--segmenter", "copy-manual",
        "--segmenter-option", "dilate_lesions=1",
        "--segmenter-option", f"delay_s={DELAY_S}",
        "--workers", "2", "--no-progress",
    ]  # fmt: skip


def _start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    # its own session, hence its own process group: the scheduler, nannies and
    # spawned workers inherit it, so one killpg reaches every process of the run
    with log.open("wb") as fh:
        return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def _live(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
    return alive


def _kill_run(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> list[psutil.Process]:
    """SIGKILL the run's process group (and any descendant outside it); return survivors."""
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for p in family:  # a descendant that made its own group would escape killpg
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while (alive := _live(family)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def _done_ids(out: Path) -> set[str]:
    return {c.scan_id for c in RecordStore(out).commits() if c.status == "done"}


def _pointers(out: Path, scan_ids: set[str]) -> dict[str, tuple[str, int]]:
    """Key and ``CURRENT.json`` mtime (ns) of each scan's commit: a rewritten commit changes it."""
    store = RecordStore(out)
    return {
        c.scan_id: (c.key, (store.root / c.site / c.scan_id / "CURRENT.json").stat().st_mtime_ns)
        for c in store.commits()
        if c.scan_id in scan_ids
    }


@pytest.mark.slow  # ~22 s on 2 cores: two cluster start-ups and two validation reports
def test_killed_run_resumes_only_the_missing_scans(cohort, tmp_path):
    out = tmp_path / "run"
    argv = _command(cohort, out)
    scan_ids = {s.scan_id for s in find_scans(cohort).scans}
    n = len(scan_ids)
    assert n >= 12

    first = _start(argv, tmp_path / "first.log")
    second = None
    try:
        deadline = time.monotonic() + 120
        while len(_done_ids(out)) < KILL_AFTER:
            if first.poll() is not None:
                pytest.fail(
                    f"the first run ended (rc {first.returncode}) before the kill:\n"
                    f"{(tmp_path / 'first.log').read_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail("no scan committed within 120 s")
            time.sleep(0.02)
        survivors = _kill_run(first)
        assert survivors == [], f"processes of the killed run still alive: {survivors}"
        assert first.returncode == -signal.SIGKILL
        # read only once nothing can commit any more
        before = _done_ids(out)
        assert KILL_AFTER <= len(before) < n, (
            f"{len(before)} of {n} committed: the kill missed the run"
        )
        # the killed client wrote no run record
        assert not list((out / "logs" / "runs").glob("run-*.json"))
        pointers = _pointers(out, before)

        second = _start([*argv, "--resume"], tmp_path / "second.log")
        rc = second.wait(timeout=300)
        text = (tmp_path / "second.log").read_text()
        assert rc == 0, text[-3000:]
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                _kill_run(proc)

    # the summary line and the run record: exactly the committed scans skipped, the rest done
    skipped, done = len(before), n - len(before)
    assert f"{n} scan(s): {done} done, {skipped} already done (resume), 0 failed" in text
    (record,) = (out / "logs" / "runs").glob("run-*.json")
    counts = json.loads(record.read_text())["counts"]
    assert (counts["total"], counts.get("done", 0), counts.get("skipped", 0)) == (n, done, skipped)
    assert counts.get("failed", 0) == 0
    # the scans committed before the kill were not redone (their commits are untouched)
    assert _pointers(out, before) == pointers
    assert _done_ids(out) == scan_ids

    scans = pd.read_parquet(out / "tables" / "scans")
    assert len(scans) == n
    assert scans.scan_id.is_unique
    assert set(scans.scan_id) == scan_ids
    assert set(scans.status) == {"done"}
    lesions = pd.read_parquet(out / "tables" / "lesions")
    assert not lesions.duplicated(["scan_id", "lesion_id"]).any()

    partial = [p for p in out.rglob("*") if TEMP_NAME.match(p.name) or ".tmp" in p.name]
    assert partial == []

    masks = [*scans.cord_seg_path, *scans.lesion_seg_path]
    assert len(masks) == 2 * n
    assert sorted(masks) == sorted(
        str(p.relative_to(out)) for p in out.glob("site*/**/*_mask.nii.gz")
    )
    for row in scans.itertuples():
        source = nib.Nifti1Image.from_filename(row.image_path)
        for rel in (row.cord_seg_path, row.lesion_seg_path):
            img = nib.Nifti1Image.from_filename(out / rel)
            # reads the whole gzip stream: a truncated file raises
            data = np.asanyarray(img.dataobj)
            assert data.shape == source.shape
            np.testing.assert_allclose(img.affine, source.affine, atol=1e-4)
            assert set(np.unique(data)) <= {0, 1}
