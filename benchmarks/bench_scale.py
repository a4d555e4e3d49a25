"""Benchmark of the batch runner at cohort scale (:func:`cohort_sciseg.batch.runner.run_cohort`).

Writes ``--n`` tiny scans (16x16x8 int16 T2w images, every one with a manual cord
and lesion mask in ``derivatives/labels``) as ``--sites`` BIDS datasets, one
geometry per site (sagittal PSR, axial LAS, isotropic RAS), and runs the whole
pipeline on a LocalCluster with the ``copy-manual`` stand-in segmenter (a
registered plugin that copies the manual masks: a few ms of "model" per scan),
so what is left is the runner's own cost. Measured, in the same process:

``run_cohort``
    Total wall time; its phases (discovery, cluster start, the scheduling loop,
    the Dask performance report, cluster shutdown, the partial-file sweep,
    compaction of the records into tables, the validation report); the time
    spent inside the tasks as Dask measured it (the scheduler's task stream:
    compute start/stop of every task), next to the package's own timer
    (``Outcome.seconds``, which leaves out the commit); the CPU time of the
    client process (the LocalCluster scheduler runs in it) and of the workers
    during the scheduling loop; throughput per tenth of the scans; the client's
    RSS sampled every 0.5 s by a thread (peak, and growth between the moments
    10% and 90% of the scans were done); the workers' RSS. Then the same run
    again on the same folder (every scan skipped: what a no-op ``--resume``
    costs; no cluster is started for it), unless ``--no-resume-run``.
``serial_process_scan`` (baseline)
    A plain loop calling :func:`cohort_sciseg.batch.tasks.process_scan` in this
    process (no Dask) on ``--baseline-n`` scans spread over the sites, with the
    same :class:`~cohort_sciseg.batch.tasks.TaskConfig` as the run: what a scan
    costs without a scheduler.

Overheads per scan (``n`` scans, ``T`` worker threads, ``S`` = sum of the Dask task seconds):
``(wall * T - S) / n`` with the wall of the scheduling loop (worker threads idle
between tasks: what the Dask graph, the window and the bookkeeping in the client
cost; goal < 20 ms) and with the wall of the whole ``run_cohort``; ``wall / n``;
``scheduling-loop wall * T / n`` minus the serial per-scan time, and the CPU
(client + workers) per scan minus the serial CPU per scan (the Dask overhead
against the baseline). On a machine with as many cores as worker threads the
client and scheduler compete with the workers for CPU, so task seconds measured
under Dask are inflated too; on a shared machine wall times are noisy, CPU times
less so (the load average is in the results).

The phases are timed by wrapping the runner's functions from outside (nothing in
the package is changed). Run::

    python benchmarks/bench_scale.py --n 10000 --out benchmarks/results/scale.json
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import nibabel as nib
import numpy as np
import pandas as pd
import psutil

import cohort_sciseg.batch.runner as runner
from cohort_sciseg.batch.progress import Progress
from cohort_sciseg.batch.segmenters import SegmenterSpec, get_segmenter
from cohort_sciseg.batch.store import RecordStore
from cohort_sciseg.batch.tasks import TaskConfig, process_scan
from cohort_sciseg.discover import find_scans
from cohort_sciseg.io import write_json
from cohort_sciseg.synth.tree import TEMPLATES, AffineTemplate

SHAPE = (16, 16, 8)
#: One geometry per site (cycled): (acq label, template).
SITE_GEOMETRIES: tuple[tuple[str, AffineTemplate], ...] = (
    ("sag", TEMPLATES["sag"][0]),  # PSR 0.8 x 0.8 x 3.0 mm
    ("ax", TEMPLATES["ax"][0]),  # LAS 0.5 x 0.5 x 4.0 mm
    ("iso", TEMPLATES["iso"][1]),  # RAS 0.8 x 0.9 x 1.0 mm
)
SAMPLE_EVERY_S = 0.5


# ---------------------------------------------------------------- the cohort


def _nifti_gz(data: np.ndarray, affine: np.ndarray) -> bytes:
    img = nib.Nifti1Image(data, affine)
    img.header.set_sform(affine, code=1)
    img.header.set_qform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    return gzip.compress(img.to_bytes(), compresslevel=1, mtime=0)


def _phantom(template: AffineTemplate) -> tuple[bytes, bytes, bytes]:
    """Image, cord and lesion of one geometry: a cord along the S axis, a lesion in its middle third."""
    affine = template.affine(SHAPE)
    s_axis = next(i for i, c in enumerate(nib.aff2axcodes(affine)) if c in "SI")
    idx = np.indices(SHAPE)
    cord = np.ones(SHAPE, bool)
    lesion = np.ones(SHAPE, bool)
    for ax, n in enumerate(SHAPE):
        if ax == s_axis:
            cord &= (idx[ax] >= 1) & (idx[ax] <= n - 2)
            lesion &= (idx[ax] >= n // 3) & (idx[ax] < 2 * n // 3)
        else:
            r = 2 if n >= 12 else 1
            cord &= np.abs(idx[ax] - n // 2) <= r
            lesion &= np.abs(idx[ax] - n // 2) <= 1
    lesion &= cord
    image = (100 + 400 * cord + 400 * lesion + idx.sum(axis=0)).astype(np.int16)
    return (
        _nifti_gz(image, affine),
        _nifti_gz(cord.astype(np.uint8), affine),
        _nifti_gz(lesion.astype(np.uint8), affine),
    )


def write_cohort(root: Path, n: int, sites: int) -> list[Path]:
    """``n`` scans as ``sites`` BIDS datasets (one scan per subject); returns the dataset folders.

    The gzip bytes of each site's image and masks are built once and copied, so
    10,000 scans take seconds.
    """
    roots = []
    width = max(2, len(str(n)))
    for k in range(sites):
        acq, template = SITE_GEOMETRIES[k % len(SITE_GEOMETRIES)]
        image, cord, lesion = _phantom(template)
        ds = root / f"site{k + 1}"
        labels = ds / "derivatives" / "labels"
        labels.mkdir(parents=True)
        write_json(
            ds / "dataset_description.json",
            {"Name": ds.name, "BIDSVersion": "1.9.0", "DatasetType": "raw"},
        )
        write_json(
            labels / "dataset_description.json",
            {"Name": "manual labels", "BIDSVersion": "1.9.0", "DatasetType": "derivative"},
        )
        subjects = [f"{i + 1:0{width}d}" for i in range(k, n, sites)]
        rows = [
            "participant_id\tage\tsex",
            *(f"sub-{s}\t{30 + i % 40}\t{'MF'[i % 2]}" for i, s in enumerate(subjects)),
        ]
        (ds / "participants.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        for sub in subjects:
            stem = f"sub-{sub}_acq-{acq}_T2w"
            anat = ds / f"sub-{sub}" / "anat"
            anat.mkdir(parents=True)
            (anat / f"{stem}.nii.gz").write_bytes(image)
            man = labels / f"sub-{sub}" / "anat"
            man.mkdir(parents=True)
            (man / f"{stem}_seg-manual.nii.gz").write_bytes(cord)
            (man / f"{stem}_lesion-manual.nii.gz").write_bytes(lesion)
        roots.append(ds)
    return roots


# ---------------------------------------------------------------- measuring


class RssSampler(threading.Thread):
    """RSS of this process and of its child processes every ``every`` seconds."""

    def __init__(self, every: float = SAMPLE_EVERY_S) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.samples: list[
            tuple[float, int, int, int]
        ] = []  # (t, client rss, workers rss, n children)
        self.child_cpu: dict[int, float] = {}
        self._halt = threading.Event()
        self._me = psutil.Process()

    def run(self) -> None:
        while not self._halt.is_set():
            t = time.perf_counter()
            rss = self._me.memory_info().rss
            kids, n = 0, 0
            for p in self._me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    kids += p.memory_info().rss
                    c = p.cpu_times()
                    self.child_cpu[p.pid] = c.user + c.system
                    n += 1
            self.samples.append((t, rss, kids, n))
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def rss_at(self, t: float) -> int:
        """Client RSS of the sample nearest to ``t``."""
        return min(self.samples, key=lambda s: abs(s[0] - t))[1]


def _cpu_s() -> float:
    """CPU seconds of this process (all threads: the client and the LocalCluster scheduler)."""
    c = psutil.Process().cpu_times()
    return c.user + c.system


def _children_cpu_s() -> float:
    """CPU seconds of the live child processes (the Dask workers; their nannies run in this process)."""
    total = 0.0
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            c = p.cpu_times()
            total += c.user + c.system
    return total


@contextlib.contextmanager
def instrument(n: int) -> Iterator[dict[str, Any]]:
    """Time the phases of ``run_cohort`` by wrapping the runner's functions (not changing them)."""
    import distributed

    probes: dict[str, Any] = {"phases_s": {}, "done_at": []}
    phases = probes["phases_s"]

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - t0

        return wrapper

    original_client = runner._client

    @contextlib.contextmanager
    def client(options: Any) -> Iterator[Any]:
        t0 = time.perf_counter()
        with original_client(options) as c:
            probes["client_ready"] = time.perf_counter()
            phases["cluster_start"] = probes["client_ready"] - t0
            info = c.scheduler_info()["workers"]
            probes["n_workers"] = len(info)
            probes["n_threads"] = sum(w.get("nthreads", 1) for w in info.values())
            probes["cpu_at_ready"] = _cpu_s()
            probes["workers_cpu_at_ready"] = _children_cpu_s()
            # the scheduler's record of every task (worker, compute start/stop): task time
            # measured by Dask, independent of the package's own timers
            with distributed.get_task_stream(client=c) as stream:
                try:
                    yield c
                finally:
                    probes["client_exit"] = time.perf_counter()
            probes["task_stream"] = stream.data
            phases["task_stream_fetch"] = time.perf_counter() - probes["client_exit"]
        phases["cluster_close"] = (
            time.perf_counter() - probes["client_exit"] - phases["task_stream_fetch"]
        )

    original_outcomes: list[Any] = []
    schedule = runner._schedule

    def schedule_and_keep(*args: Any, **kwargs: Any) -> Any:
        result = schedule(*args, **kwargs)
        original_outcomes.extend(result)
        return result

    update = Progress.update

    def progress_update(self: Any, outcome: Any) -> None:
        now = time.perf_counter()
        probes["done_at"].append(now)
        if len(probes["done_at"]) == n:
            probes["cpu_at_last"] = _cpu_s()
            probes["workers_cpu_at_last"] = _children_cpu_s()
            probes["last_done"] = now
        update(self, outcome)

    class TimedReport(distributed.performance_report):
        def __exit__(self, *exc: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return super().__exit__(*exc)
            finally:
                phases["performance_report_write"] = time.perf_counter() - t0

    compact = RecordStore.compact
    probes["outcomes"] = original_outcomes
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(runner, "_client", client))
        stack.enter_context(
            mock.patch.object(runner, "_schedule", timed("schedule", schedule_and_keep))
        )
        stack.enter_context(
            mock.patch.object(runner, "find_scans", timed("discover", runner.find_scans))
        )
        stack.enter_context(
            mock.patch.object(
                runner,
                "sweep_partial_files",
                timed("sweep_partial_files", runner.sweep_partial_files),
            )
        )
        stack.enter_context(
            mock.patch.object(runner, "validate_run", timed("validate_report", runner.validate_run))
        )
        stack.enter_context(
            mock.patch.object(runner, "failures_of", timed("failures_of", runner.failures_of))
        )
        stack.enter_context(mock.patch.object(RecordStore, "compact", timed("compact", compact)))
        stack.enter_context(mock.patch.object(Progress, "update", progress_update))
        stack.enter_context(mock.patch.object(distributed, "performance_report", TimedReport))
        yield probes


def task_config(out: Path, spec: SegmenterSpec, units: str = "mm") -> TaskConfig:
    """The :class:`TaskConfig` that ``run_cohort`` builds for ``spec`` (same fields, same key)."""
    describe = dict(get_segmenter(spec).describe())
    return TaskConfig(
        out_dir=str(out.resolve()),
        segmenter=spec,
        model_checksum=str(describe.get("checksum", "")),
        segmenter_name=str(describe.get("name", spec.plugin)),
        settings=tuple(sorted({"segmenter": describe.get("settings", {}), "units": units}.items())),
        units=units,
        resume=True,
    )


def serial_baseline(
    roots: list[Path], out: Path, spec: SegmenterSpec, n_subset: int
) -> dict[str, Any]:
    """``process_scan`` in a plain loop in this process on ``n_subset`` scans spread over the sites."""
    scans = list(find_scans(roots).scans)
    step = max(1, len(scans) // n_subset)
    subset = scans[::step][:n_subset]
    warm = out.with_name(out.name + "-warmup")
    for s in subset[:5]:  # imports, segmenter cache, first-call costs
        process_scan(s, task_config(warm, spec))
    config = task_config(out, spec)
    times, inside = [], []
    cpu0 = _cpu_s()
    t_all = time.perf_counter()
    for s in subset:
        t0 = time.perf_counter()
        o = process_scan(s, config)
        times.append(time.perf_counter() - t0)
        inside.append(o.seconds)
        if o.status != "done":
            msg = f"baseline scan {s.scan_id} ended {o.status!r}: {o.message}"
            raise RuntimeError(msg)
    total = time.perf_counter() - t_all
    cpu = _cpu_s() - cpu0
    shutil.rmtree(warm, ignore_errors=True)
    return {
        "n_scans": len(subset),
        "wall_s": total,
        "ms_per_scan_mean": total / len(subset) * 1e3,
        "ms_per_scan_median": statistics.median(times) * 1e3,
        "ms_per_scan_p90": float(np.percentile(times, 90)) * 1e3,
        "cpu_ms_per_scan": cpu / len(subset) * 1e3,
        "outcome_seconds_mean_ms": statistics.fmean(inside) * 1e3,
        "what": "for scan in subset: process_scan(scan, config) in one process, no Dask "
        "(5 warm-up scans into another folder first)",
    }


def dask_run(
    roots: list[Path],
    out: Path,
    spec: SegmenterSpec,
    workers: int | None,
    n: int,
    validate: bool,
    *,
    window: int | None = None,
    expect: str = "done",
) -> dict[str, Any]:
    """``run_cohort`` on a LocalCluster, instrumented; every scan must end ``expect``."""
    # report=False: the runner's own cost, as in earlier results (the QC report: bench_report.py)
    opts = runner.RunOptions(
        segmenter=spec, workers=workers, progress=False, validate=validate, window=window, report=False
    )
    sampler = RssSampler()
    cpu0 = _cpu_s()
    with instrument(n) as probes:
        sampler.start()
        t0 = time.perf_counter()
        summary = runner.run_cohort(roots, out, opts)
        wall = time.perf_counter() - t0
        sampler.stop()
    if not summary.ok or summary.counts.get(expect) != n:
        msg = f"expected {n} scans {expect!r}, got {summary.counts}, {summary.failures[:1]!r}"
        raise RuntimeError(msg)

    outcomes = probes["outcomes"]
    computes = [
        sum(ss["stop"] - ss["start"] for ss in t["startstops"] if ss["action"] == "compute")
        for t in probes["task_stream"]
    ]
    task_s = sum(computes)  # as Dask measured the function calls on the workers
    inner_s = sum(o.seconds for o in outcomes)  # the package's own timer (Outcome.seconds)
    scans = pd.read_parquet(out / "tables" / "scans")
    if len(scans) != n or not scans.scan_id.is_unique:
        msg = f"tables/scans has {len(scans)} rows ({scans.scan_id.nunique()} unique), expected {n}"
        raise RuntimeError(msg)
    table_s = float(scans.seconds_total.sum())
    threads = probes["n_threads"]
    loop_wall = probes["last_done"] - probes["client_ready"]
    done_at = np.asarray(probes["done_at"]) - probes["client_ready"]
    tenths = [round(n * k / 10) for k in range(11)]
    tenth_rates = [
        float(
            (tenths[k + 1] - tenths[k])
            / max(done_at[tenths[k + 1] - 1] - (done_at[tenths[k] - 1] if tenths[k] else 0.0), 1e-9)
        )
        for k in range(10)
    ]
    t10 = probes["client_ready"] + done_at[max(0, tenths[1] - 1)]
    t90 = probes["client_ready"] + done_at[tenths[9] - 1]
    rss10, rss90 = sampler.rss_at(t10), sampler.rss_at(t90)
    phases = dict(probes["phases_s"])
    schedule_s = phases.get("schedule", 0.0)
    phases["scheduling_loop"] = loop_wall
    accounted = sum(v for k, v in phases.items() if k != "schedule")
    phases["other"] = wall - accounted
    samples = sampler.samples
    return {
        "n_scans": n,
        "n_workers": probes["n_workers"],
        "worker_threads": threads,
        "validate": validate,
        "window": window,
        "wall_s": wall,
        "schedule_s": schedule_s,
        "phases_s": phases,
        "n_tasks": len(computes),
        "task_seconds_sum": task_s,
        "task_ms_mean": task_s / n * 1e3,
        "task_ms_median": statistics.median(computes) * 1e3,
        "outcome_seconds_sum": inner_s,
        "table_seconds_total_sum": table_s,
        "worker_busy_fraction_in_loop": task_s / (loop_wall * threads),
        "per_scan_ms": {
            "wall_over_n": wall / n * 1e3,
            "scheduling_loop_wall_over_n": loop_wall / n * 1e3,
            "overhead_scheduling_loop": (loop_wall * threads - task_s) / n * 1e3,
            "overhead_run_cohort": (wall * threads - task_s) / n * 1e3,
            "client_cpu_in_loop": (probes["cpu_at_last"] - probes["cpu_at_ready"]) / n * 1e3,
            "workers_cpu_in_loop": (probes["workers_cpu_at_last"] - probes["workers_cpu_at_ready"])
            / n
            * 1e3,
            "in_task_not_in_outcome_seconds": (task_s - inner_s) / n * 1e3,
            "client_cpu_whole_run": (_cpu_s() - cpu0) / n * 1e3,
            "workers_cpu_whole_life": sum(sampler.child_cpu.values()) / n * 1e3,
        },
        "throughput_scans_per_s": {"scheduling_loop": n / loop_wall, "by_tenth": tenth_rates},
        "memory_mib": {
            "client_rss_start": samples[0][1] / 2**20,
            "client_rss_peak": max(s[1] for s in samples) / 2**20,
            "client_rss_peak_in_loop": max(
                (s[1] for s in samples if probes["client_ready"] <= s[0] <= probes["last_done"]),
                default=0,
            )
            / 2**20,
            "client_rss_at_10pct": rss10 / 2**20,
            "client_rss_at_90pct": rss90 / 2**20,
            "client_growth_10_to_90pct": (rss90 - rss10) / 2**20,
            "client_growth_per_1000_scans": (rss90 - rss10) / 2**20 / (0.8 * n / 1000),
            "client_rss_end": samples[-1][1] / 2**20,
            "workers_rss_peak_sum": max(s[2] for s in samples) / 2**20,
        },
        "rss_samples": {
            "every_s": SAMPLE_EVERY_S,
            "t_s": [round(s[0] - t0, 2) for s in samples],
            "client_mib": [round(s[1] / 2**20, 1) for s in samples],
            "workers_mib": [round(s[2] / 2**20, 1) for s in samples],
        },
        "counts": summary.counts,
    }


def resume_run(roots: list[Path], out: Path, spec: SegmenterSpec, workers: int | None, n: int,
               validate: bool) -> dict[str, Any]:
    """``run_cohort`` again on a finished folder: every scan skipped, and no cluster started.

    The client checks every scan's key against the store itself (no task), so
    the figure is the whole no-op resume: discovery, key hashing, records.
    """
    opts = runner.RunOptions(segmenter=spec, workers=workers, progress=False, validate=validate, report=False)
    t0 = time.perf_counter()
    summary = runner.run_cohort(roots, out, opts)
    wall = time.perf_counter() - t0
    if summary.counts.get("skipped") != n:
        msg = f"expected {n} scans skipped, got {summary.counts}"
        raise RuntimeError(msg)
    record = runner.load_summary(out)
    return {
        "n_scans": n,
        "wall_s": wall,
        "per_scan_ms": wall / n * 1e3,
        "cluster_started": bool(record["cluster"]["started"]),
        "phases_s": dict(record["phases"]),
    }


def _print_run(label: str, run: dict[str, Any]) -> None:
    p, ph, m = run["per_scan_ms"], run["phases_s"], run["memory_mib"]
    per_worker = run["worker_threads"] // max(1, run["n_workers"])
    print(
        f"{label}: {run['n_scans']} scans, {run['n_workers']} workers x {per_worker} thread(s): "
        f"{run['wall_s']:.1f} s ({p['wall_over_n']:.1f} ms/scan); scheduling loop "
        f"{ph['scheduling_loop']:.1f} s ({run['throughput_scans_per_s']['scheduling_loop']:.1f} scans/s)",
        flush=True,
    )
    print("  phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in ph.items()))
    print(
        f"  task time {run['task_ms_mean']:.1f} ms/scan (Outcome.seconds {run['outcome_seconds_sum'] / run['n_scans'] * 1e3:.1f}), "
        f"workers busy {100 * run['worker_busy_fraction_in_loop']:.0f}% of the loop; overhead (loop wall x threads - task s)/n = "
        f"{p['overhead_scheduling_loop']:.1f} ms/scan, whole run {p['overhead_run_cohort']:.1f} ms/scan; "
        f"CPU in the loop: client {p['client_cpu_in_loop']:.1f} ms/scan, workers {p['workers_cpu_in_loop']:.1f} ms/scan"
    )
    print(
        f"  client RSS: start {m['client_rss_start']:.0f} MiB, peak {m['client_rss_peak']:.0f} MiB "
        f"(in the loop {m['client_rss_peak_in_loop']:.0f}), 10%->90% {m['client_rss_at_10pct']:.0f} -> "
        f"{m['client_rss_at_90pct']:.0f} MiB ({m['client_growth_per_1000_scans']:+.2f} MiB per 1000 scans); "
        f"workers peak {m['workers_rss_peak_sum']:.0f} MiB"
    )
    print(
        "  scans/s by tenth: "
        + " ".join(f"{r:.1f}" for r in run["throughput_scans_per_s"]["by_tenth"])
    )


def code_version() -> dict[str, Any]:
    """The commit measured, and whether the runner's files differ from it (others edit them)."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=repo, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {
        "commit": git("rev-parse", "HEAD"),
        "modified_batch_files": git("status", "--porcelain", "cohort_sciseg/batch").splitlines(),
    }


def machine_info() -> dict[str, Any]:
    cpu = platform.processor()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import version

    versions = {"python": platform.python_version()}
    for name in ("dask", "distributed", "numpy", "pyarrow", "nibabel", "pandas"):
        with contextlib.suppress(Exception):
            versions[name] = version(name)
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "versions": versions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of scans (default 10000)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="LocalCluster workers (default: the runner's, one per core)",
    )
    parser.add_argument(
        "--sites", type=int, default=3, help="sites, one BIDS dataset each (default 3)"
    )
    parser.add_argument(
        "--baseline-n", type=int, default=500, help="scans of the serial baseline (default 500)"
    )
    parser.add_argument(
        "--no-validate",
        action="store_true",
        help="skip the run's validation report (RunOptions.validate)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        help="tasks in flight (RunOptions.window; default: the runner's)",
    )
    parser.add_argument(
        "--no-resume-run",
        action="store_true",
        help="skip the second run_cohort on the same folder (every scan skipped)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scale.json"))
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where to write the cohort (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the cohort and the run folders")
    args = parser.parse_args(argv)

    spec = SegmenterSpec.make("copy-manual")
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench_scale_", dir=args.workdir))
    load_before = os.getloadavg()
    try:
        t0 = time.perf_counter()
        roots = write_cohort(workdir / "cohort", args.n, args.sites)
        build_s = time.perf_counter() - t0
        print(
            f"wrote {args.n} scans ({args.sites} sites, {SHAPE}) in {build_s:.1f} s at {workdir}",
            flush=True,
        )

        base = serial_baseline(roots, workdir / "serial", spec, min(args.baseline_n, args.n))
        print(
            f"baseline serial process_scan: {base['n_scans']} scans in {base['wall_s']:.1f} s, "
            f"{base['ms_per_scan_mean']:.1f} ms/scan (median {base['ms_per_scan_median']:.1f})",
            flush=True,
        )

        run = dask_run(
            roots,
            workdir / "run",
            spec,
            args.workers,
            args.n,
            not args.no_validate,
            window=args.window,
        )
        p = run["per_scan_ms"]
        p["dask_overhead_vs_serial"] = (
            p["scheduling_loop_wall_over_n"] * run["worker_threads"] - base["ms_per_scan_mean"]
        )
        p["dask_cpu_overhead_vs_serial"] = (
            p["client_cpu_in_loop"] + p["workers_cpu_in_loop"] - base["cpu_ms_per_scan"]
        )
        _print_run("run_cohort", run)
        print(
            f"  serial baseline {base['ms_per_scan_mean']:.1f} ms/scan wall, {base['cpu_ms_per_scan']:.1f} ms CPU; "
            f"loop wall x threads / n - serial = {p['dask_overhead_vs_serial']:.1f} ms/scan; "
            f"CPU (client + workers) in the loop / n - serial CPU = {p['dask_cpu_overhead_vs_serial']:.1f} ms/scan"
        )
        resume = None
        if not args.no_resume_run:
            resume = resume_run(roots, workdir / "run", spec, args.workers, args.n, not args.no_validate)
            print(
                f"run_cohort again (resume: every scan skipped): {resume['wall_s']:.1f} s "
                f"({resume['per_scan_ms']:.2f} ms/scan), cluster started: {resume['cluster_started']}; phases: "
                + ", ".join(f"{k} {v:.2f} s" for k, v in resume["phases_s"].items())
            )
        results = {
            "command": "python "
            + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
            "n_scans": args.n,
            "cohort": {
                "sites": args.sites,
                "image_shape": list(SHAPE),
                "geometries": [
                    f"{a}: {t.name} {t.zooms}" for a, t in SITE_GEOMETRIES[: args.sites]
                ],
                "masks": "every scan: manual cord + lesion (so every task validates)",
                "build_s": build_s,
            },
            "segmenter": {"plugin": spec.plugin, "options": spec.options_dict},
            "goal": "overhead_scheduling_loop < 20 ms per scan",
            "run_cohort": run,
            "run_cohort_resume_all_skipped": resume,
            "baselines": {"serial_process_scan": base},
            "load_average_before_after": [list(load_before), list(os.getloadavg())],
            "code": code_version(),
            "machine": machine_info(),
        }
        out = write_json(args.out, results)
        print(f"results: {out}")
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
