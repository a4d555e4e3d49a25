"""Cluster files: the documented ones load, SLURM scripts and Kubernetes specs come from the real libraries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cohort_sciseg.batch.clusters import (
    ClusterConfig,
    gpu_worker_threads,
    kubernetes_spec,
    load_cluster_config,
    local_worker_specs,
    slurm_job_script,
)
from cohort_sciseg.errors import BatchError

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"


@pytest.mark.parametrize("name", ["local.yaml", "slurm-gpu.yaml", "slurm-cpu.yaml", "kubernetes.yaml"])
def test_documented_files_load(name):
    cfg = load_cluster_config(CLUSTER / name)
    assert cfg.kind in ("local", "slurm", "kubernetes")


def test_slurm_gpu_job_script():
    pytest.importorskip("dask_jobqueue")
    script = slurm_job_script(load_cluster_config(CLUSTER / "slurm-gpu.yaml"))
    assert "#SBATCH --gres=gpu:1" in script
    assert "#SBATCH -p gpu" in script
    assert "#SBATCH -t 04:00:00" in script
    assert "--resources GPU=1" in script
    assert "--lifetime 225m" in script
    assert "module load cuda" in script


def test_slurm_cpu_job_script_has_no_gpu():
    pytest.importorskip("dask_jobqueue")
    script = slurm_job_script(load_cluster_config(CLUSTER / "slurm-cpu.yaml"))
    assert "gres" not in script
    assert "GPU" not in script


def test_kubernetes_spec():
    pytest.importorskip("dask_kubernetes")
    spec = kubernetes_spec(load_cluster_config(CLUSTER / "kubernetes.yaml"))
    assert spec["kind"] == "DaskCluster"
    worker = spec["spec"]["worker"]
    assert worker["replicas"] == 4
    container = worker["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "GPU=1" in container["args"]


def test_local_specs_pin_one_worker_per_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    specs = local_worker_specs(ClusterConfig(kind="local", gpus="auto", cpu_workers=1))
    gpu = {k: v["options"] for k, v in specs.items() if k.startswith("gpu-")}
    assert [o["env"]["CUDA_VISIBLE_DEVICES"] for o in gpu.values()] == ["2", "5"]
    assert all(o["resources"] == {"GPU": 1} for o in gpu.values())
    cpu = [v["options"] for k, v in specs.items() if k.startswith("cpu-")]
    assert len(cpu) == 1
    assert "resources" not in cpu[0]


def test_bad_files_are_clear_errors(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("kind: slurm\nqueue: gpu\n")
    with pytest.raises(BatchError, match="unknown keys"):
        load_cluster_config(p)
    p.write_text("kind: pbs\n")
    with pytest.raises(BatchError, match="kind"):
        load_cluster_config(p)


@pytest.mark.parametrize(
    ("cores", "gpus", "threads"),
    [(1, 1, 2), (2, 1, 2), (4, 1, 2), (8, 1, 3), (16, 1, 4), (64, 1, 4), (16, 4, 2), (16, 2, 3)],
)
def test_gpu_worker_threads_follow_the_cores_per_gpu(cores: int, gpus: int, threads: int) -> None:
    assert gpu_worker_threads(cores, gpus) == threads


def test_local_specs_give_the_cores_left_to_cpu_workers(monkeypatch):
    """16 cores, 1 GPU: a 4-thread GPU worker (auto) and 12 CPU workers; a number overrides auto."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    specs = local_worker_specs(ClusterConfig(kind="local", gpus="auto"))
    assert specs["gpu-0"]["options"]["nthreads"] == 4
    assert sum(k.startswith("cpu-") for k in specs) == 12
    specs = local_worker_specs(ClusterConfig(kind="local", gpus=1, gpu_worker_threads=6))
    assert specs["gpu-0"]["options"]["nthreads"] == 6
    assert sum(k.startswith("cpu-") for k in specs) == 10
    assert load_cluster_config(CLUSTER / "local.yaml").gpu_worker_threads == "auto"


def test_an_unreachable_scheduler_is_an_error_not_a_crash(tmp_path, capsys):
    """``run --scheduler`` with no scheduler there: exit 2 and the fix, no traceback (was exit 70)."""
    import socket

    import dask

    from cohort_sciseg.cli import main
    from cohort_sciseg.synth import synthesize_cohort

    cohort = synthesize_cohort(tmp_path / "c", sites=1, subjects_per_site=1, seed=2)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        rc = main(["run", *map(str, cohort.dataset_roots), "-o", str(tmp_path / "out"), "--segmenter", "copy-manual",
                   "--scheduler", f"tcp://127.0.0.1:{port}", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"cannot reach the Dask scheduler at 'tcp://127.0.0.1:{port}'" in err
    assert "Fix: start the scheduler" in err
    assert "Traceback" not in err


def test_workers_that_never_join_are_an_error_not_a_crash():
    from distributed.client import WorkerStartTimeoutError

    from cohort_sciseg.batch.runner import wait_for_workers
    from cohort_sciseg.errors import BatchError

    class NoWorkers:
        def wait_for_workers(self, n, timeout):
            raise WorkerStartTimeoutError(0, n, timeout)

    with pytest.raises(BatchError, match=r"no worker of the cluster of slurm.yaml joined the scheduler within 5 s"
                                         r".*squeue -u \$USER"):
        wait_for_workers(NoWorkers(), 1, where="the cluster of slurm.yaml", timeout=5)
