"""Benchmark of ``cohort-sciseg run``: segmentation throughput against two baselines, same run.

Cohort: ``--sites`` x ``--subjects`` synthetic subjects (:func:`cohort_sciseg.synth.synthesize_cohort`,
the three site styles of the demo) segmented by the same model (``--model``, default the bundled
demo model) with SCT's settings (tile step 0.5, no mirroring). Three ways, one after the other:

``run``
    ``run_cohort`` on a LocalCluster: the model loaded once per worker, scans scheduled by Dask.
    Includes what the others do not: morphometry, validation against the synthetic manual
    masks, records, compaction, the validation study. ``--gpus`` decides the GPU workers
    (``auto``); on CPU ``--workers`` processes with ``--threads`` torch threads each.
``per-process``  (baseline a: ``sct_deepseg`` glued by ``sct_run_batch``)
    one fresh process per scan (``cohort-sciseg segment IMAGE``: Python start-up, imports,
    model load, SCT's inference path, masks written), ``--workers`` of them at a time, as
    ``sct_run_batch -jobs N`` runs subjects.
``nnUNetv2_predict``  (baseline b)
    ``nnUNetv2_predict_from_modelfolder`` on a folder of the same images (nnU-Net's own batch
    inference: background preprocessing and export processes, ``-npp``/``-nps`` = ``--workers``),
    same model folder, folds, step size, no TTA, same device.

Reported: wall seconds and scans/s of each, and the ratios run/per-process and
run/nnUNetv2_predict (> 1: ``run`` is faster). The run's device-busy fraction (time the model
ran / span between first start and last end, per model worker) comes from its run record;
with a GPU, ``nvidia-smi`` utilisation is sampled every 0.5 s during each way.

``--busy``: how busy one model worker keeps its device, one task per scan (``--stages fused``:
the device waits while the same task reads, preprocesses, resamples, writes and measures)
against prepare/infer/finish tasks (``--stages split``: the worker's other threads feed it).
One GPU worker (``--gpus 1``, ``gpu_worker_threads`` = ``--workers``); without a GPU the worker
advertises the ``GPU`` resource and runs the model on the CPU (same scheduling, emulated device).

Run::

    .venv/bin/python benchmarks/bench_run.py --out benchmarks/results/run_cpu.json
    .venv/bin/python benchmarks/bench_run.py --busy --out benchmarks/results/busy_cpu.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


class _GpuSampler:
    """``nvidia-smi`` GPU utilisation every ``period`` seconds (nothing without a GPU)."""

    def __init__(self, period: float = 0.5) -> None:
        self.period = period
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.available = shutil.which("nvidia-smi") is not None

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                    capture_output=True, text=True, timeout=5, check=False,
                ).stdout
                vals = [float(v) for v in out.split() if v.strip()]
                if vals:
                    self.samples.append(sum(vals) / len(vals))
            self._stop.wait(self.period)

    @contextlib.contextmanager
    def sampling(self) -> Iterator[None]:
        self.samples = []
        if self.available:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        try:
            yield
        finally:
            if self._thread is not None:
                self._stop.set()
                self._thread.join()

    def summary(self) -> dict[str, Any] | None:
        if not self.samples:
            return None
        busy = [s for s in self.samples if s > 0]
        return {
            "samples": len(self.samples),
            "mean_utilization_pct": sum(self.samples) / len(self.samples),
            "fraction_of_samples_busy": len(busy) / len(self.samples),
        }


def _images(roots: list[Path]) -> list[Path]:
    from cohort_sciseg.discover import find_scans

    return [Path(s.image_path) for s in find_scans(roots).scans]


def _time_run(roots: list[Path], out: Path, args: argparse.Namespace) -> dict[str, Any]:
    from cohort_sciseg.batch.runner import RunOptions, load_summary, run_cohort
    from cohort_sciseg.batch.segmenters import SegmenterSpec

    spec = SegmenterSpec.make(
        "nnunet", model=args.model, device=args.device, threads=args.threads, tile_step_size=args.step
    )
    # report=False: segmentation throughput against nnUNetv2_predict, which writes no QC (bench_report.py)
    opts = RunOptions(segmenter=spec, workers=args.workers, gpus=args.gpus, progress=False, resume=False,
                      report=False)
    t = time.perf_counter()
    summary = run_cohort(roots, out, opts)
    wall = time.perf_counter() - t
    if not summary.ok:
        raise SystemExit(summary.format())
    return {"wall_s": wall, "scans": summary.counts["done"], "device_busy": load_summary(out).get("device_busy")}


def _busy(roots: list[Path], work: Path, args: argparse.Namespace, stages: str) -> dict[str, Any]:
    from cohort_sciseg.batch.runner import RunOptions, run_cohort
    from cohort_sciseg.batch.segmenters import SegmenterSpec

    spec = SegmenterSpec.make(
        "nnunet", model=args.model, device=args.device, threads=args.threads, tile_step_size=args.step
    )
    opts = RunOptions(segmenter=spec, gpus=1, gpu_worker_threads=args.workers, workers=0, stages=stages, report=False,
                      progress=False, resume=False, validate=False)
    t = time.perf_counter()
    summary = run_cohort(roots, work / stages, opts)
    wall = time.perf_counter() - t
    if not summary.ok:
        raise SystemExit(summary.format())
    (busy,) = summary.device_busy.values()
    return {"wall_s": wall, "scans": summary.counts["done"], **busy}


def _time_per_process(images: list[Path], out: Path, args: argparse.Namespace) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)

    def one(image: Path) -> float:
        cmd = [str(BIN / "cohort-sciseg"), "segment", str(image), "-o", str(out / image.name.split(".")[0]),
               "--model", args.model, "--device", args.device, "--tile-step-size", str(args.step)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        return time.perf_counter() - t

    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        per_scan = list(pool.map(one, images))
    return {"wall_s": time.perf_counter() - t, "scans": len(images),
            "median_scan_s": sorted(per_scan)[len(per_scan) // 2]}


def _time_nnunet(images: list[Path], work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from cohort_sciseg.segment import find_model

    folder = find_model(args.model)
    src = work / "imagesTs"
    src.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        shutil.copyfile(image, src / f"case{i:04d}_0000.nii.gz")
    dst = work / "predictions"
    cmd = [str(BIN / "nnUNetv2_predict_from_modelfolder"), "-i", str(src), "-o", str(dst),
           "-m", str(folder.trainer_dir), "-f", *folder.folds, "-chk", folder.checkpoint_names[0],
           "-step_size", str(args.step), "--disable_tta", "-device", args.device,
           "-npp", str(args.workers), "-nps", str(args.workers), "--disable_progress_bar"]
    env = {**os.environ, "nnUNet_raw": str(work), "nnUNet_preprocessed": str(work), "nnUNet_results": str(work)}
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t
    return {"wall_s": wall, "scans": len(list(dst.glob("*.nii.gz")))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sites", type=int, default=3)
    p.add_argument("--subjects", type=int, default=4, help="subjects per site")
    p.add_argument("--model", default=str(REPO / "cohort_sciseg" / "models" / "demo"))
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--gpus", default="auto", help="run's local GPU workers (auto, or a number)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                   help="run's CPU workers; parallel processes of the baselines")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (CPU)")
    p.add_argument("--step", type=float, default=0.5, help="tile step size (SCT: 0.5)")
    p.add_argument("--busy", action="store_true", help="device-busy fraction, fused vs split stages")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args()
    if args.gpus != "auto":
        args.gpus = int(args.gpus)

    from cohort_sciseg.synth import synthesize_cohort

    gpu = _GpuSampler()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        work = Path(tmp)
        cohort = synthesize_cohort(work / "cohort", sites=args.sites, subjects_per_site=args.subjects, seed=0)
        roots = [Path(r) for r in cohort.dataset_roots]
        images = _images(roots)
        if args.busy:
            for stages in ("fused", "split"):
                with gpu.sampling():
                    r = _busy(roots, work, args, stages)
                r["gpu"] = gpu.summary()
                results[stages] = r
                print(f"{stages:6s} {r['scans']:.0f} scans in {r['wall_s']:.1f} s: model busy {r['busy_s']:.1f} s "
                      f"of {r['span_s']:.1f} s = {100 * r['fraction']:.1f}%", flush=True)
            doc = {"benchmark": "bench_run --busy", "settings": {k: str(v) for k, v in vars(args).items()},
                   "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
                   "n_images": len(images), "results": results,
                   "ratio_busy_split_vs_fused": results["split"]["fraction"] / results["fused"]["fraction"],
                   "ratio_throughput_split_vs_fused": results["fused"]["wall_s"] / results["split"]["wall_s"]}
            print(json.dumps({k: v for k, v in doc.items() if k.startswith("ratio")}, indent=2))
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(doc, indent=2) + "\n")
            return
        for name, fn in (
            ("run", lambda: _time_run(roots, work / "run", args)),
            ("per-process", lambda: _time_per_process(images, work / "per-process", args)),
            ("nnUNetv2_predict", lambda: _time_nnunet(images, work / "nnunet", args)),
        ):
            with gpu.sampling():
                r = fn()
            r["scans_per_s"] = r["scans"] / r["wall_s"]
            r["gpu"] = gpu.summary()
            results[name] = r
            print(f"{name:18s} {r['scans']} scans in {r['wall_s']:7.1f} s = {r['scans_per_s']:.3f} scans/s",
                  flush=True)
    ratios = {
        "run_vs_per_process": results["run"]["scans_per_s"] / results["per-process"]["scans_per_s"],
        "run_vs_nnUNetv2_predict": results["run"]["scans_per_s"] / results["nnUNetv2_predict"]["scans_per_s"],
    }
    print(json.dumps(ratios, indent=2))
    doc = {
        "benchmark": "bench_run",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "n_images": len(images),
        "results": results,
        "ratios": ratios,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
