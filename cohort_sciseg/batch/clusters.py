"""Dask clusters from a configuration file (``cluster/*.yaml``) or from the command line.

Three kinds (see the documented examples in ``cluster/``):

``local``
    This machine: one worker process per GPU (each pinned with
    ``CUDA_VISIBLE_DEVICES``, advertising the resource ``GPU=1``, with
    ``gpu_worker_threads`` threads, ``auto`` by default (:func:`gpu_worker_threads`):
    one runs the model while the others prepare and finish scans) plus CPU-only
    workers on the remaining cores, or CPU workers only when there is no GPU.
``slurm``
    dask-jobqueue's ``SLURMCluster``: ``options`` go to it verbatim (queue, account,
    cores, memory, walltime, ``job_extra_directives`` such as ``--gres=gpu:1``,
    ``job_script_prologue``); ``gpus_per_worker`` adds ``--resources GPU=n``. The
    cluster keeps ``workers`` jobs: one that ends (walltime, ``scancel``, a failed
    node) is replaced by a new one (``adapt`` with minimum = maximum; a plain
    ``scale`` never resubmits, and a run outliving its jobs would wait forever).
    ``lifetime`` retires workers gracefully before the walltime; their jobs end
    and are replaced.
``kubernetes``
    The dask-kubernetes operator: a ``DaskCluster`` resource built with
    ``make_cluster_spec`` (image, workers, container resources such as
    ``nvidia.com/gpu``), workers advertising ``GPU`` when they have one.

Segmentation tasks ask for ``GPU=1`` only when the cluster's workers advertise it
(an unsatisfiable resource would make tasks wait forever).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cohort_sciseg.batch.gpus import gpu_names
from cohort_sciseg.errors import BatchError, format_error

__all__ = [
    "ClusterConfig",
    "build_cluster",
    "count_gpus",
    "gpu_worker_threads",
    "kubernetes_spec",
    "load_cluster_config",
    "local_worker_specs",
    "slurm_job_script",
]

_KINDS = ("local", "slurm", "kubernetes")


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """A parsed cluster file."""

    kind: str
    path: str = ""
    gpus: int | str = 0  # local: number of GPUs or "auto"
    cpu_workers: int | None = None  # local: CPU-only workers (default: cores - GPU workers)
    threads_per_worker: int = 1
    gpu_worker_threads: int | str = "auto"  # local: threads of a GPU worker ("auto": gpu_worker_threads())
    memory_limit: str | None = None
    gpus_per_worker: int = 0  # slurm / kubernetes
    workers: int = 1  # slurm jobs / kubernetes worker pods
    lifetime: str | None = None  # slurm: graceful retirement before the walltime (the job is replaced)
    options: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "gpus": self.gpus,
            "cpu_workers": self.cpu_workers,
            "threads_per_worker": self.threads_per_worker,
            "gpu_worker_threads": self.gpu_worker_threads,
            "memory_limit": self.memory_limit,
            "gpus_per_worker": self.gpus_per_worker,
            "workers": self.workers,
            "lifetime": self.lifetime,
            "options": self.options,
        }


def _bad(path: str | os.PathLike[str], problem: str, fix: str) -> BatchError:
    msg = format_error(problem, path=path, expected=f"a YAML mapping with kind: one of {_KINDS}", fix=fix)
    return BatchError(msg, path=path)


def load_cluster_config(path: str | os.PathLike[str]) -> ClusterConfig:
    """Read and check a cluster file."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise _bad(p, f"cannot read the cluster file: {exc}", "pass one of the files in cluster/ or a copy") from exc
    if not isinstance(data, Mapping) or data.get("kind") not in _KINDS:
        raise _bad(p, f"kind is {data.get('kind') if isinstance(data, Mapping) else None!r}", "set kind: local, slurm or kubernetes")
    known = set(ClusterConfig.__dataclass_fields__) - {"path"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _bad(p, f"unknown keys {unknown}", f"use only {sorted(known)}")
    return ClusterConfig(path=str(p), **dict(data))


def count_gpus() -> int:
    """NVIDIA GPUs visible to this machine (``CUDA_VISIBLE_DEVICES`` respected, no torch import)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([v for v in visible.split(",") if v.strip() and v.strip() != "-1"])
    return len(gpu_names())


def gpu_worker_threads(cores: int, gpus: int) -> int:
    """Threads of each local GPU worker (``gpu_worker_threads: auto``): 2 to 4, from the cores per GPU.

    One thread runs the model; the others prepare and finish scans next to it, so that
    a scan's preprocessed image and logits (tens of MB for a 320x256x19 scan) need not
    travel between processes. They share the worker's GIL with the thread that launches
    the network's kernels, so the worker keeps few of them: one feeder per 4 cores of its
    GPU's share, at least 1 and at most 3. The remaining cores become CPU workers
    (:func:`local_worker_specs`), which run the rest of the preparing and finishing.
    """
    per_gpu = max(1, cores // max(1, gpus))
    return 1 + min(3, max(1, round(per_gpu / 4)))


def local_worker_specs(config: ClusterConfig) -> dict[str, dict[str, Any]]:
    """Worker specs of a ``local`` cluster (for :class:`distributed.SpecCluster`)."""
    from distributed import Nanny

    n_gpu = count_gpus() if config.gpus == "auto" else int(config.gpus)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else []
    ids += [str(i) for i in range(len(ids), n_gpu)]
    cores = os.cpu_count() or 1
    gpu_threads = (
        gpu_worker_threads(cores, n_gpu) if config.gpu_worker_threads == "auto" else max(1, int(config.gpu_worker_threads))
    )
    n_cpu = (
        config.cpu_workers
        if config.cpu_workers is not None
        else max(1 if n_gpu == 0 else 0, (cores - n_gpu * gpu_threads) // max(1, config.threads_per_worker))
    )
    common: dict[str, Any] = {
        "nthreads": config.threads_per_worker, "dashboard_address": None, "silence_logs": logging.ERROR,
    }
    if config.memory_limit:
        common["memory_limit"] = config.memory_limit
    specs: dict[str, dict[str, Any]] = {}
    for i in range(n_gpu):
        specs[f"gpu-{i}"] = {
            "cls": Nanny,
            "options": {
                **common, "nthreads": gpu_threads, "resources": {"GPU": 1},
                "env": {"CUDA_VISIBLE_DEVICES": ids[i]},
            },
        }
    for i in range(n_cpu):
        specs[f"cpu-{i}"] = {"cls": Nanny, "options": {**common, "env": {"CUDA_VISIBLE_DEVICES": ""}}}
    return specs


def _slurm_kwargs(config: ClusterConfig) -> dict[str, Any]:
    kwargs = dict(config.options)
    extra = list(kwargs.pop("worker_extra_args", []))
    if config.gpus_per_worker:
        extra += ["--resources", f"GPU={config.gpus_per_worker}"]
    if config.lifetime:
        # no --lifetime-restart: a worker restarted inside its job would still die at the walltime
        extra += ["--lifetime", config.lifetime, "--lifetime-stagger", "2m"]
    kwargs["worker_extra_args"] = extra
    # a free dashboard port unless one is asked for: dask's 8787 clashes when two runs share a login node
    kwargs["scheduler_options"] = {"dashboard_address": ":0", **dict(kwargs.get("scheduler_options") or {})}
    return kwargs


def slurm_job_script(config: ClusterConfig) -> str:
    """The ``sbatch`` script dask-jobqueue would submit for one worker job."""
    from dask_jobqueue import SLURMCluster

    cluster = SLURMCluster(**_slurm_kwargs(config))
    try:
        return str(cluster.job_script())
    finally:
        cluster.close()


def kubernetes_spec(config: ClusterConfig) -> dict[str, Any]:
    """The ``DaskCluster`` custom resource of a ``kubernetes`` config."""
    from dask_kubernetes.operator import make_cluster_spec

    opts = dict(config.options)
    spec: dict[str, Any] = make_cluster_spec(
        name=opts.pop("name", "cohort-sciseg"),
        image=opts.pop("image"),
        n_workers=config.workers,
        resources=opts.pop("resources", None),
        env=opts.pop("env", None),
    )
    if config.gpus_per_worker:
        container = spec["spec"]["worker"]["spec"]["containers"][0]
        container["args"] = [*container.get("args", []), "--resources", f"GPU={config.gpus_per_worker}"]
    return spec


def build_cluster(config: ClusterConfig) -> Any:
    """Start the cluster of ``config`` (the caller closes it)."""
    from distributed import Scheduler, SpecCluster

    if config.kind == "local":
        return SpecCluster(
            workers=local_worker_specs(config),
            scheduler={"cls": Scheduler, "options": {"dashboard_address": ":0"}},
            silence_logs=logging.ERROR,
        )
    if config.kind == "slurm":
        from dask_jobqueue import SLURMCluster

        cluster = SLURMCluster(**_slurm_kwargs(config))
        # adapt, not scale: the adaptive loop resubmits a job whose worker left
        cluster.adapt(minimum_jobs=config.workers, maximum_jobs=config.workers)
        return cluster
    from dask_kubernetes.operator import KubeCluster

    return KubeCluster(custom_cluster_spec=kubernetes_spec(config))
