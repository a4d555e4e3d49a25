"""``cohort-sciseg run --cluster slurm-*.yaml`` on a real SLURM: workers are sbatch jobs.

A single-node SLURM cluster on loopback (Debian's slurm-wlm and munge, started by
:mod:`slurm_fixture`; the tests skip with the reason where it cannot run) takes the
jobs that dask-jobqueue submits for a variant of ``cluster/slurm-cpu.yaml``: one
core, 1 GB, the scheduler and workers on ``lo``, the jobs running this Python.
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
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from slurm_fixture import Slurm, SlurmUnavailableError, slurm_cluster

from cohort_sciseg.batch.clusters import load_cluster_config
from cohort_sciseg.batch.store import RecordStore
from cohort_sciseg.discover import find_scans
from cohort_sciseg.synth import synthesize_cohort

CLI = Path(sys.executable).with_name("cohort-sciseg")
CLUSTER = Path(__file__).resolve().parents[2] / "cluster"
#: ``cohort_sciseg.io.atomic_path`` names: ``.<stem>.<12 hex>.tmp<ext>``
TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp(\.[A-Za-z0-9.]+)?$")
#: what a dask worker logs (to its job's .err file) once it joined the scheduler
REGISTERED = "Registered to:"
JOBS = 2
RUN_TIMEOUT_S = 240


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slurm]:
    """The SLURM test cluster, one for all pytest-xdist workers of this run (the last one out stops it)."""
    base = tmp_path_factory.getbasetemp()
    # an xdist worker's basetemp is <run>/popen-gwN: the workers share its parent
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(slurm_cluster(shared / "slurm-cluster"))
        except SlurmUnavailableError as exc:
            pytest.skip(f"no SLURM test cluster: {exc}")
        yield cluster


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two sites, five scans (site 2 has a follow-up session)."""
    cohort = synthesize_cohort(
        tmp_path_factory.mktemp("slurm"), sites=2, subjects_per_site=2, seed=17
    )
    return [Path(r) for r in cohort.dataset_roots]


def cluster_file(tmp: Path, slurm: Slurm, job_name: str) -> Path:
    """``cluster/slurm-cpu.yaml`` made to fit the test cluster; the jobs log to ``tmp/jobs``."""
    doc = yaml.safe_load((CLUSTER / "slurm-cpu.yaml").read_text())
    options = doc["options"]
    options.pop("account")  # the test cluster keeps no accounts
    options.pop("job_script_prologue")  # it activates a venv on the nodes; `python` names this one
    options.update(
        queue=slurm.partition,
        cores=1,
        processes=1,
        memory="1GB",
        walltime="00:10:00",
        job_name=job_name,  # squeue -n: tests sharing the cluster see their own jobs
        interface="lo",  # scheduler (in the run's process) and workers on loopback
        # a free dashboard port: not 8787, which a test running beside this one may hold
        scheduler_options={"dashboard_address": ":0"},
        python=sys.executable,
        log_directory=str(tmp / "jobs"),
        local_directory=str(tmp / "scratch"),
    )
    doc["workers"] = JOBS
    path = tmp / f"{job_name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    load_cluster_config(path)  # the run would refuse it otherwise
    return path


def _argv(cohort: list[Path], out: Path, cluster: Path, *extra: str) -> list[str]:
    return [
        str(CLI), "run", *map(str, cohort), "-o", str(out), "--cluster", str(cluster),
        "--segmenter", "copy-manual", "--no-report", "--no-progress", *extra,
    ]  # fmt: skip


def _summary(n: int) -> str:
    return f"{n} scan(s): {n} done, 0 already done (resume), 0 failed"


Poll = Callable[[dict[str, str]], None]


def _run(
    argv: list[str],
    slurm: Slurm,
    job_name: str,
    log: Path,
    *,
    during: Poll | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, dict[str, set[str]]]:
    """Run the CLI while polling squeue; its exit status and ``{job id: states seen}``."""
    seen: dict[str, set[str]] = {}
    with log.open("wb") as fh:
        # its own session: a failed test kills the run's client and scheduler with one killpg
        proc = subprocess.Popen(
            argv,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**slurm.env, **(env or {})},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while proc.poll() is None:
            if time.monotonic() > deadline:
                tail = log.read_text()[-3000:]
                pytest.fail(f"the run did not end within {RUN_TIMEOUT_S} s:\n{tail}")
            jobs = slurm.jobs(job_name)
            for job, state in jobs.items():
                seen.setdefault(job, set()).add(state)
            if during is not None:
                during(jobs)
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    return proc.returncode, seen


def _registered(jobs_dir: Path, job_name: str, job: str) -> bool:
    err = jobs_dir / f"{job_name}-{job}.err"
    return err.is_file() and REGISTERED in err.read_text(errors="replace")


def _check_tables(out: Path, scan_ids: set[str]) -> pd.DataFrame:
    scans = pd.read_parquet(out / "tables" / "scans")
    assert scans.scan_id.is_unique
    assert set(scans.scan_id) == scan_ids
    assert set(scans.status) == {"done"}
    partial = [p for p in out.rglob("*") if TEMP_NAME.match(p.name) or ".tmp" in p.name]
    assert partial == []
    return scans


def _job_pids(slurm: Slurm, job: str) -> set[int]:
    """Processes of a running job, as SLURM tracks them (none once it ended)."""
    try:
        out = slurm.command("scontrol", "listpids", job)
    except RuntimeError:
        return set()
    return {int(ln.split()[0]) for ln in out.splitlines()[1:] if ln.split()[0].isdigit()}


def _command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    except OSError:
        return []


@pytest.mark.slow  # ~15 s: two jobs start, five scans, the jobs cancelled at the end
def test_run_on_slurm_jobs(slurm, cohort, tmp_path):
    name = "cs-run"
    cluster = cluster_file(tmp_path, slurm, name)
    out = tmp_path / "run"
    scan_ids = {s.scan_id for s in find_scans(cohort).scans}

    workers_in_jobs: dict[str, list[str]] = {}

    def find_workers(jobs: dict[str, str]) -> None:
        for job, state in jobs.items():
            if state == "RUNNING" and job not in workers_in_jobs:
                for pid in _job_pids(slurm, job):
                    argv = _command_line(pid)
                    if "distributed.cli.dask_worker" in argv:
                        workers_in_jobs[job] = argv

    rc, seen = _run(
        _argv(cohort, out, cluster), slurm, name, tmp_path / "run.log", during=find_workers
    )
    text = (tmp_path / "run.log").read_text()
    assert rc == 0, text[-3000:]

    # the workers were SLURM jobs: sbatch'ed, running this Python (the venv) inside the job,
    # joined the scheduler from there
    assert len(seen) == JOBS, seen
    assert workers_in_jobs, seen
    assert {argv[0] for argv in workers_in_jobs.values()} == {sys.executable}
    assert all(_registered(tmp_path / "jobs", name, job) for job in workers_in_jobs)
    (record,) = (out / "logs" / "runs").glob("run-*.json")
    workers = json.loads(record.read_text())["cluster"]["workers"]
    assert workers
    assert {w["host"] for w in workers} == {"127.0.0.1"}

    assert _summary(len(scan_ids)) in text
    _check_tables(out, scan_ids)
    # closing the cluster cancelled the jobs
    assert slurm.wait_no_jobs(name, timeout=30) == {}


def _open_attempts(out: Path) -> dict[tuple[str, int], int]:
    """``{(scan_id, attempt number): worker pid}`` of the started, not yet committed scans."""
    store = RecordStore(out)
    found = {}
    for path in store.root.glob("*/*/attempts.jsonl"):  # the store's documented layout
        site, scan_id = path.parent.parent.name, path.parent.name
        if store.current(site, scan_id) is not None:
            continue
        lines = [ln for ln in path.read_text().splitlines() if ln.endswith("}")]
        if lines:
            worker = json.loads(lines[-1])["worker"]  # "host:pid" (cohort_sciseg.batch.tasks)
            found[(scan_id, len(lines))] = int(worker.rpartition(":")[2])
    return found


@pytest.mark.slow  # ~25 s: both worker jobs cancelled mid-scan, one after the other
def test_cancelled_jobs_are_survived_and_replaced(slurm, cohort, tmp_path):
    name = "cs-cancel"
    cluster = cluster_file(tmp_path, slurm, name)
    out = tmp_path / "run"
    scan_ids = {s.scan_id for s in find_scans(cohort).scans}
    known: set[tuple[str, int]] = set()
    originals: list[str] = []
    cancelled: dict[str, str] = {}  # job id -> the scan it was running

    def cancel_mid_scan(jobs: dict[str, str]) -> None:
        # a scan that started since the last poll (< ~0.2 s ago, of its 1 s) on an original
        # job's worker: scancel that job while the scan is surely in flight; the first job,
        # then the second (a walltime ends every job of a run)
        started = _open_attempts(out)
        fresh = {k: pid for k, pid in started.items() if k not in known}
        known.update(started)
        if not originals:
            if sorted(jobs.values()) != ["RUNNING"] * JOBS:
                return
            originals.extend(sorted(jobs, key=int))
        for job in originals:
            if job in cancelled or jobs.get(job) != "RUNNING":
                continue
            pids = _job_pids(slurm, job)
            # first attempts only: a retry of the first victim's scan stays alone
            hit = [scan for (scan, n), pid in fresh.items() if pid in pids and n == 1]
            if hit:
                slurm.command("scancel", job)
                cancelled[job] = hit[0]
                return

    # 1 s per scan: 5 scans on 2 workers last ~3 s. A lost job's worker is dropped from the
    # cluster after distributed.deploy.lost-worker-timeout (15 s by default; 1 s here), then
    # the adaptive loop submits its replacement.
    argv = _argv(cohort, out, cluster, "--segmenter-option", "delay_s=1.0")
    env = {"DASK_DISTRIBUTED__DEPLOY__LOST_WORKER_TIMEOUT": "1s"}
    rc, seen = _run(argv, slurm, name, tmp_path / "run.log", during=cancel_mid_scan, env=env)
    text = (tmp_path / "run.log").read_text()
    assert sorted(cancelled) == originals, f"jobs seen: {seen}, cancelled: {cancelled}"
    # a lost worker is a retry (allowed-failures = --retries 2), not a failed scan
    assert rc == 0, text[-3000:]
    assert _summary(len(scan_ids)) in text
    scans = _check_tables(out, scan_ids).set_index("scan_id")

    store = RecordStore(out)
    for job, scan_id in cancelled.items():
        assert "CANCELLED" in (tmp_path / "jobs" / f"{name}-{job}.err").read_text()
        # the scan in flight on the cancelled job ran again, on another worker
        attempts = store.attempts(scans.site[scan_id], scan_id, scans.run_id[scan_id])
        assert len(attempts) == 2, attempts
        assert attempts[0]["worker"] != attempts[1]["worker"]
    # build_cluster keeps `workers` jobs (adapt): the lost ones were replaced, and the
    # replacements finished the run
    replacements = set(seen) - set(originals)
    assert replacements, seen
    assert any("RUNNING" in seen[job] for job in replacements), seen
    assert slurm.wait_no_jobs(name, timeout=30) == {}
