"""``cohort-sciseg run``: a cohort through segmentation, morphometry and validation on Dask.

The client discovers the scans, submits the tasks of each scan with a bounded
window of scans in flight (memory stays flat at 10,000 scans; resource-restricted
tasks are otherwise pre-assigned to workers), and collects small :class:`Outcome`
records.

With GPU workers (workers advertising the ``GPU`` resource) and a staged segmenter
(the nnU-Net engine), each scan is three tasks: *prepare* (CPU: read, reorient,
nnU-Net preprocessing), *infer* (asks for ``GPU=1``: the network only) and
*finish* (CPU: resampling, masks, morphometry, validation, commit). A GPU worker
has several threads, so while one thread runs the model the others prepare the
next scans and finish the previous ones, and the GPU does not wait for CPU work
(the role of nnU-Net's own preprocessing and export worker processes, which Dask's
daemon workers cannot start). Priorities run *infer* first, then *finish*, then
*prepare*. The intermediate arrays stay on the workers (in the same process when
one worker does all three); only paths and small records reach the client. Without
GPUs each scan is one task (the same three stages in a row) on CPU workers. The
time the model kept each device busy is measured and written to the run record. Workers build the segmenter once per process and write masks and rows
themselves (:mod:`cohort_sciseg.batch.tasks`); nothing large goes through the
scheduler. At the end the committed records are compacted into the run's tables,
each site's derivative ``dataset_description.json`` and the run record are written
(layout: :mod:`cohort_sciseg.batch.layout`), and the summary tells what failed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cohort_sciseg._version import __version__
from cohort_sciseg.batch.layout import check_naming, migrate_previous_layout
from cohort_sciseg.batch.progress import Progress
from cohort_sciseg.batch.provenance import environment, write_dataset_descriptions
from cohort_sciseg.batch.results import (
    device_busy,
    failures_of,
    longitudinal_step,
    table_counts,
    validate_run,
)
from cohort_sciseg.batch.segmenters import SegmenterSpec, get_segmenter, is_staged
from cohort_sciseg.batch.store import RecordStore
from cohort_sciseg.batch.tasks import (
    TABLE_SCHEMAS,
    Outcome,
    TaskConfig,
    finish_stage,
    infer_stage,
    prepare_stage,
    process_scan,
    record_failure,
    resumed_outcome,
)
from cohort_sciseg.discover import expand_dataset_folders, find_scans
from cohort_sciseg.errors import BatchError, format_error
from cohort_sciseg.io import RunLayout, write_json, write_parquet
from cohort_sciseg.io.atomic import sweep_partial_files
from cohort_sciseg.records import (
    Failure,
    Scan,
    failures_to_table,
    scans_to_table,
)

__all__ = ["RunOptions", "RunSummary", "device_busy", "run_cohort", "sweep_partial_files"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run (see ``cohort-sciseg run --help``)."""

    segmenter: SegmenterSpec = field(default_factory=SegmenterSpec)
    participant_labels: tuple[str, ...] | None = None
    scheduler: str | None = None
    cluster: str | None = None
    workers: int | None = None
    gpus: int | str = "auto"
    #: threads of each local GPU worker; "auto": from the cores (batch.clusters.gpu_worker_threads)
    gpu_worker_threads: int | str = "auto"
    stages: str = "auto"
    threads_per_worker: int = 1
    resume: bool = True
    retries: int = 2
    window: int | None = None
    units: str = "mm"
    progress: bool = True
    validate: bool = True
    #: the HTML QC report (report/): each scan's page by its worker, the index at the end
    report: bool = True
    #: subjects with several sessions aligned and their lesions tracked at the end (cohort_sciseg.longitudinal)
    longitudinal: bool = True
    #: Scan ids left out of the run (e.g. rated fail/artifact in the QC report); reported as excluded.
    exclude_scans: tuple[str, ...] = ()
    #: stop at the first discovery problem (a bad file, a folder that is not a dataset) instead of recording it
    strict: bool = False
    #: names of the predicted masks: "bids" (default) or "sct" (<scan_id>_sc_seg; see batch.layout)
    mask_naming: str = "bids"


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run did."""

    out_dir: Path
    counts: dict[str, int]
    failures: tuple[Failure, ...]
    seconds: float
    tables: dict[str, Path]
    device_busy: dict[str, dict[str, float]] = field(default_factory=dict)
    #: scans of this run whose manual masks could not serve as a reference (scan done, validation excluded)
    validation_excluded: tuple[Failure, ...] = ()
    #: lines of later steps for the summary (the longitudinal step)
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures

    def format(self) -> str:
        c = self.counts
        found = sum(f.stage == "discover" for f in self.failures)  # files discovery could not use: no scan
        lines = [
            f"{c.get('total', 0)} scan(s): {c.get('done', 0)} done, {c.get('skipped', 0)} already done (resume), "
            f"{c.get('failed', 0)} failed, "
            + (f"{c['excluded']} excluded, " if c.get("excluded") else "")
            + (f"{found} file(s) discovery could not use, " if found else "")
            + f"in {self.seconds:.1f} s",
        ]
        for worker, b in self.device_busy.items():
            lines.append(
                f"  model busy {100 * b['fraction']:.0f}% of {b['span_s']:.1f} s on {worker} "
                f"({b['scans']:.0f} scans, {b['busy_s']:.1f} s)"
            )
        if c.get("suspect"):
            lines.append(f"  {c['suspect']} done scan(s) flagged suspect (tables/scans suspect_reasons, report flag)")
        for f in self.failures[:20]:
            lines.append(f"  {'NOT USED' if f.stage == 'discover' else 'FAILED'} {f.scan_id}: {f.message}")
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more (tables/failures)")
        for f in self.validation_excluded[:20]:
            lines.append(f"  NOT VALIDATED {f.scan_id}: {f.message}")
        if len(self.validation_excluded) > 20:
            lines.append(f"  ... and {len(self.validation_excluded) - 20} more (tables/failures, stage validation)")
        if c.get("earlier_runs"):
            lines.append(
                f"tables/ also hold {c['earlier_runs']} scan(s) from earlier runs ({c.get('earlier_failed', 0)} "
                "failed), not part of this run: filter on the run_id column"
            )
        lines.extend(self.notes)
        lines.append(f"outputs: {self.out_dir}")
        for name, path in self.tables.items():
            lines.append(f"  {name}: {path}")
        return "\n".join(lines)


@contextlib.contextmanager
def _client(options: RunOptions) -> Iterator[Any]:
    """A client on the asked cluster; clusters started here let a task's worker die ``retries`` times."""
    import dask

    # A task whose worker dies (killed, out of memory) is re-run on another worker until
    # more than allowed-failures workers died with it; then it becomes a failure record.
    # Dask counts a death against every task the worker held, so workers hold only the
    # tasks they run (saturation 1.0, no tasks queued on them): a scan that kills its
    # worker does not take the scans queued behind it down with it.
    settings = {
        "distributed.scheduler.allowed-failures": max(0, options.retries),
        "distributed.scheduler.worker-saturation": 1.0,
    }
    with dask.config.set(settings):
        yield from _client_of(options)


def _client_of(options: RunOptions) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if options.scheduler:
        with _connect(Client, options.scheduler) as client:
            yield client
        return
    if options.cluster:
        from cohort_sciseg.batch.clusters import build_cluster, load_cluster_config

        with build_cluster(load_cluster_config(options.cluster)) as cluster, Client(cluster) as client:
            if not client.scheduler_info().get("workers"):
                wait_for_workers(client, 1, where=f"the cluster of {options.cluster}")
            yield client
        return
    n_gpu = _local_gpus(options.gpus)
    if n_gpu:
        from cohort_sciseg.batch.clusters import ClusterConfig, build_cluster

        config = ClusterConfig(
            kind="local", gpus=n_gpu, cpu_workers=options.workers, threads_per_worker=options.threads_per_worker,
            gpu_worker_threads=options.gpu_worker_threads,
        )
        with build_cluster(config) as cluster, Client(cluster) as client:
            wait_for_workers(client, len(cluster.workers), where="the local GPU cluster")
            yield client
        return
    n = options.workers or max(1, (os.cpu_count() or 2) // max(1, options.threads_per_worker))
    with (
        LocalCluster(
            n_workers=n,
            threads_per_worker=options.threads_per_worker,
            processes=True,
            dashboard_address=":0",  # a free port: several runs may share a machine
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


#: Seconds a run waits for the first worker of a cluster it started (batch jobs may queue).
WORKER_WAIT_S = 600


def _connect(client_class: Any, address: str) -> Any:
    """A client of the scheduler at ``address``; an unreachable one is a :class:`BatchError`, not a crash."""
    try:
        return client_class(address)
    except (OSError, ValueError) as exc:  # distributed: OSError "Timed out trying to connect", bad addresses
        msg = format_error(
            f"cannot reach the Dask scheduler at {address!r} ({type(exc).__name__}: {exc})",
            expected="the address of a running scheduler, e.g. tcp://host:8786 (`dask scheduler` prints it)",
            fix="start the scheduler (and its workers) first, check the host, port and firewall, or leave "
            "--scheduler out to run on a LocalCluster",
        )
        raise BatchError(msg) from exc


def wait_for_workers(client: Any, n: int, *, where: str, timeout: float = WORKER_WAIT_S) -> None:
    """Wait until ``n`` workers joined; a cluster whose workers never come is a :class:`BatchError`, not a crash."""
    try:
        client.wait_for_workers(n, timeout=timeout)
    except TimeoutError as exc:  # distributed's WorkerStartTimeoutError is one
        msg = format_error(
            f"no worker of {where} joined the scheduler within {timeout:.0f} s",
            expected=f"{n} worker(s) started by the cluster (batch jobs running, or local processes)",
            fix="check that the worker jobs run (`squeue -u $USER` on SLURM, `kubectl get pods` on Kubernetes) "
            "and read their output files for the error; check the queue, account, memory and walltime in the "
            "cluster file, then run again with --resume (finished scans are kept)",
        )
        raise BatchError(msg) from exc


def _local_gpus(gpus: int | str) -> int:
    """GPU workers of the local cluster: ``"auto"`` counts this machine's NVIDIA GPUs."""
    from cohort_sciseg.batch.clusters import count_gpus

    if gpus == "auto":
        return count_gpus()
    try:
        n = int(gpus)
    except ValueError:
        n = -1
    if n < 0:
        msg = format_error(f"--gpus {gpus!r} is not valid", expected="a number >= 0 or 'auto'",
                           fix="pass --gpus auto (default), 0 for CPU workers only, or the number of GPUs")
        raise BatchError(msg)
    return n


def run_cohort(
    bids_dirs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    options: RunOptions | None = None,
    *,
    stream: TextIO | None = None,
) -> RunSummary:
    """Run the whole pipeline on every T2w scan of ``bids_dirs``; write into ``out_dir``.

    Returns the summary; failed scans are in it and in ``tables/failures``. The log
    records of the run (the tool's, Dask's, nnU-Net's; INFO and above as far as the
    loggers pass them) go to ``logs/runs/run-<time>.log``.
    """
    out = _output_folder(out_dir)
    with _run_log(out):
        return _run(bids_dirs, out, options or RunOptions(), stream)


@contextlib.contextmanager
def _run_log(out: Path) -> Iterator[Path]:
    """Every log record of this process, while the run lasts, into ``logs/runs/run-<time>.log``."""
    path = RunLayout(out).run_log(time.strftime("%Y%m%dT%H%M%S", time.gmtime()), os.getpid())
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()


def _run(
    bids_dirs: Sequence[str | os.PathLike[str]], out: Path, opts: RunOptions, stream: TextIO | None
) -> RunSummary:
    t0 = time.perf_counter()
    folders, notes = expand_dataset_folders(bids_dirs)
    for note in notes:
        logger.warning("%s", note)
    roots = [Path(r) for r in folders]
    phases: dict[str, float] = {}
    discovery = find_scans(
        roots, participant_labels=opts.participant_labels, on_problem="raise" if opts.strict else "record"
    )
    phases["discover_s"] = time.perf_counter() - t0
    scans = list(discovery.scans)
    drop = set(opts.exclude_scans)
    excluded = sorted(s.scan_id for s in scans if s.scan_id in drop)
    scans = [s for s in scans if s.scan_id not in drop]
    describe = dict(get_segmenter(opts.segmenter).describe())
    config = TaskConfig(
        out_dir=str(out.resolve()),
        segmenter=opts.segmenter,
        model_checksum=str(describe.get("checksum", "")),
        segmenter_name=str(describe.get("name", opts.segmenter.plugin)),
        settings=tuple(sorted({"segmenter": describe.get("settings", {}), "units": opts.units,
                               "mask_naming": opts.mask_naming}.items())),
        units=opts.units,
        resume=opts.resume,
        report=opts.report,
        run_id=uuid.uuid4().hex,
        mask_naming=opts.mask_naming,
    )
    if check_naming(opts.mask_naming) == "bids":
        migrate_previous_layout(out)
    write_dataset_descriptions(out, scans, describe)
    run_record = {
        "run_id": config.run_id,
        "tool": f"cohort-sciseg {__version__}",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "bids_dirs": [str(r.resolve()) for r in roots],
        "options": {
            "segmenter": {"plugin": opts.segmenter.plugin, "options": opts.segmenter.options_dict},
            "participant_labels": opts.participant_labels,
            "scheduler": opts.scheduler,
            "cluster": opts.cluster,
            "workers": opts.workers,
            "gpus": opts.gpus,
            "gpu_worker_threads": opts.gpu_worker_threads,
            "stages": opts.stages,
            "resume": opts.resume,
            "retries": opts.retries,
            "units": opts.units,
            "report": opts.report,
            "mask_naming": opts.mask_naming,
        },
        "segmenter": describe,
        "settings": config.settings_dict,
        "environment": environment(),
        "n_scans": len(scans),
        "discovery_problems": len(discovery.problems),
        "excluded": {"count": len(excluded), "scan_ids": excluded},
    }
    t = time.perf_counter()
    cluster: dict[str, Any] = {
        "kind": "scheduler" if opts.scheduler else "cluster-file" if opts.cluster else "local",
        "address": opts.scheduler,
    }
    if opts.cluster:
        from cohort_sciseg.batch.clusters import load_cluster_config

        cluster["spec"] = load_cluster_config(opts.cluster).as_dict()
    outcomes = _schedule(scans, config, opts, out, stream, phases, cluster)
    phases["schedule_s"] = time.perf_counter() - t
    t = time.perf_counter()
    removed = sweep_partial_files(out)
    if removed:
        logger.info("removed %d partial file(s) left by killed writers", removed)
    store = RecordStore(out)
    # discovery problems (unreadable files, broken tables) join the failures table: one place to look
    found = [dataclasses.replace(p, run_id=config.run_id) for p in discovery.problems]
    problems = {"failures": failures_to_table(found)} if found else None
    tables = store.compact(TABLE_SCHEMAS, extra=problems)
    scan_failures, excluded_validation = failures_of(store, scans)
    failures = [*found, *scan_failures]
    write_parquet(RunLayout(out).discovered_scans, scans_to_table(scans))
    phases["compact_s"] = time.perf_counter() - t
    t = time.perf_counter()
    validation = validate_run(out, scans) if opts.validate else None
    phases["validate_s"] = time.perf_counter() - t
    if validation is not None:
        tables["validation"] = validation
    later: list[str] = []
    if opts.longitudinal:
        t = time.perf_counter()
        longitudinal = longitudinal_step(out, report=opts.report)
        phases["longitudinal_s"] = time.perf_counter() - t
        if longitudinal is not None:
            tables.update(longitudinal.tables)
            run_record["longitudinal"] = {"summary": longitudinal.format(), "problems": longitudinal.problems}
            later.append(longitudinal.format())
            logger.info("%s", longitudinal.format())
    if opts.report:
        t = time.perf_counter()
        from cohort_sciseg.report import build_report

        built = build_report(out)
        tables["report"] = built.path
        phases["report_s"] = time.perf_counter() - t
        run_record["report"] = {"pages_written": built.pages_written, "pages_current": built.pages_current,
                                "page_errors": list(built.page_errors)}
    counts = Counter(o.status for o in outcomes)
    counts["total"] = len(scans)
    if excluded:
        counts["excluded"] = len(excluded)
    counts.update(table_counts(store, scans))
    if excluded_validation:
        counts["validation_excluded"] = len(excluded_validation)
    seconds = time.perf_counter() - t0
    busy = device_busy(outcomes)
    run_record.update(
        finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), seconds=seconds, counts=dict(counts),
        device_busy=busy, phases=phases, cluster=cluster,
    )
    write_json(RunLayout(out).run_record(time.strftime("%Y%m%dT%H%M%S", time.gmtime()), os.getpid()), run_record)
    return RunSummary(out, dict(counts), tuple(failures), seconds, tables, busy, tuple(excluded_validation),
                      tuple(later))


def _output_folder(out_dir: str | os.PathLike[str]) -> Path:
    """The run folder, created if needed; a clear error when it cannot be one."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = RunLayout(out).write_probe
        probe.write_bytes(b"")
        probe.unlink()
    except (FileExistsError, NotADirectoryError):
        what = "is an existing file" if out.exists() else "has a file where a parent folder should be"
        msg = format_error(f"the output path {what}", path=out, expected="a folder (new, or an earlier run's output)",
                           fix="pass -o a folder path, e.g. the file's name without extension")
        raise BatchError(msg, path=out) from None
    except OSError as exc:
        msg = format_error(f"the output folder cannot be written ({exc.strerror or exc})", path=out,
                           expected="a writable folder", fix="check its permissions and free space, or pass another -o")
        raise BatchError(msg, path=out) from None
    return out


def _schedule(
    scans: Sequence[Scan],
    config: TaskConfig,
    opts: RunOptions,
    out: Path,
    stream: TextIO | None,
    phases: dict[str, float],
    cluster: dict[str, Any],
) -> list[Outcome]:
    if not scans:
        return []
    total = len(scans)
    outcomes = _resumed(scans, config, phases)
    if outcomes:
        done = {o.scan_id for o in outcomes}
        scans = [s for s in scans if s.scan_id not in done]
        logger.info("%d scan(s) already done under the same key (resume)", len(outcomes))
    cluster["started"] = bool(scans)
    if not scans:  # nothing to do: no cluster
        return outcomes
    from distributed import as_completed, performance_report

    store = RecordStore(out)
    report = RunLayout(out).dask_performance(time.strftime("%Y%m%dT%H%M%S", time.gmtime()))
    report.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with _client(opts) as client, performance_report(filename=str(report)):
        phases["cluster_start_s"] = time.perf_counter() - t0
        workers = client.scheduler_info().get("workers", {})
        cluster["workers"] = [
            {k: w.get(k) for k in ("name", "host", "nthreads", "memory_limit", "resources")}
            for w in workers.values()
        ]
        threads = sum(int(w.get("nthreads", 1)) for w in workers.values()) or 1
        window = opts.window or max(4, 2 * threads)
        # ask for a GPU only where workers advertise one (else tasks would wait forever)
        gpu = any(w.get("resources", {}).get("GPU") for w in workers.values())
        resources = {"GPU": 1} if gpu else None
        split = _split_stages(opts.stages, gpu, config)
        logger.info("%d worker(s), %d thread(s), GPU workers: %s, %s tasks per scan, window %d",
                    len(workers), threads, gpu, "3" if split else "1", window)
        pending = iter(scans)
        by_key: dict[str, Scan] = {}

        def submit(scan: Scan) -> Any:
            common = {"retries": opts.retries, "pure": False}
            if split:
                a = client.submit(prepare_stage, scan, config, key=f"prepare-{scan.scan_id}", priority=0, **common)
                b = client.submit(infer_stage, a, config, key=f"infer-{scan.scan_id}", priority=2,
                                  resources=resources, **common)
                fut = client.submit(finish_stage, b, config, key=f"finish-{scan.scan_id}", priority=1, **common)
            else:
                fut = client.submit(process_scan, scan, config, key=f"scan-{scan.scan_id}", resources=resources,
                                    **common)
            by_key[fut.key] = scan
            return fut

        first = [submit(s) for s in itertools.islice(pending, window)]
        progress = Progress(total, stream if opts.progress else None)
        for skipped in outcomes:
            progress.update(skipped)
        link = None
        with contextlib.suppress(Exception):  # no dashboard (bokeh missing, external scheduler without one)
            link = client.dashboard_link
        if link and stream is not None and opts.progress:
            stream.write(f"Dask dashboard: {link}\n")
        ac = as_completed(first)
        for fut in ac:
            scan = by_key.pop(fut.key)
            try:
                outcome = fut.result()
            except Exception as exc:  # the task could not finish (worker killed repeatedly, ...)
                outcome = _infrastructure_failure(store, scan, config, exc)
            fut.release()
            outcomes.append(outcome)
            progress.update(outcome)
            nxt = next(pending, None)
            if nxt is not None:
                ac.add(submit(nxt))
        progress.close()
        phases["tasks_s"] = time.perf_counter() - t0 - phases["cluster_start_s"]
        t1 = time.perf_counter()
    phases["cluster_stop_and_report_s"] = time.perf_counter() - t1
    return outcomes


def _resumed(scans: Sequence[Scan], config: TaskConfig, phases: dict[str, float]) -> list[Outcome]:
    """The scans a resume skips, checked here before any cluster starts (threads: hashing is I/O)."""
    if not config.resume:
        return []
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=min(8, len(scans))) as pool:
        found = list(pool.map(lambda s: resumed_outcome(s, config), scans))
    phases["resume_check_s"] = time.perf_counter() - t0
    return [o for o in found if o is not None]


def _split_stages(stages: str, gpu: bool, config: TaskConfig) -> bool:
    """Whether each scan runs as prepare/infer/finish tasks (see the module docstring)."""

    if stages not in ("auto", "split", "fused"):
        msg = format_error(f"stages={stages!r} is not valid", expected="'auto', 'split' or 'fused'",
                           fix="pass --stages auto (default), split or fused")
        raise BatchError(msg)
    if stages == "fused":
        return False
    staged = is_staged(get_segmenter(config.segmenter))
    if stages == "split" and not staged:
        msg = format_error(
            f"segmenter {config.segmenter.plugin!r} has no stages (prepare_file/infer/finish)",
            expected="a staged segmenter such as 'nnunet' for --stages split",
            fix="use --stages auto or fused with this segmenter",
        )
        raise BatchError(msg)
    return staged and (gpu or stages == "split")


def _infrastructure_failure(store: RecordStore, scan: Scan, config: TaskConfig, exc: BaseException) -> Outcome:
    """Record a scan whose task died (unless a run of it had committed before dying)."""
    current = store.current(scan.site, scan.scan_id)
    if current is not None and current.status == "done":
        return Outcome(scan.scan_id, scan.site, "done", current.key)

    msg = format_error(
        f"the task of this scan did not finish: {type(exc).__name__}: {exc}",
        scan_id=scan.scan_id,
        expected="a worker that survives the scan (enough memory, no crash)",
        fix="give workers more memory (--workers fewer, or a larger node), then re-run with --resume",
    )
    err = BatchError(msg, scan_id=scan.scan_id, path=scan.image_path)
    key = current.key if current is not None else "infrastructure"
    attempt = max(1, len(store.attempts(scan.site, scan.scan_id, config.run_id)))
    return record_failure(store, scan, key, attempt, err, 0.0, stage="batch", run_id=config.run_id)


def load_summary(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The latest run record of ``out_dir``."""
    from cohort_sciseg.report.site import latest_run_record

    return latest_run_record(out_dir)
