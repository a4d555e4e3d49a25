"""The GPU measurement kit: every figure of the GPU path in one call, written to one JSON.

Run by ``benchmarks/gpu/run.sh OUTDIR [--cpu] [--small]`` (which installs the carried wheels
first); see ``benchmarks/README.md``. Steps, each timed against a budget (``--budget``,
default 450 s: the GPU machine gives 8 minutes) and skipped with the reason when too little
is left; ``OUTDIR/kit.json`` is rewritten after every step, so a killed run keeps what it had:

1. ``environment``: ``nvidia-smi``, torch/CUDA versions, the Python packages.
2. ``correctness``: the bundled demo model on real scans (errsm11 384x216x52, sctms
   320x256x19) and one scan of each synthetic site style, on the device with both
   resamplings, against the CPU with the exact path: cord and lesion Dice (goal >= 0.999).
3. ``latency``: per scan, the model loaded once, stage by stage (read, prepare, network,
   export, masks, morphometry, writes), the demo model and a model of SCIseg's size
   (``sciseg_size_model.py``: nnU-Net's default 3d_fullres network for this data, random weights).
4. ``throughput``: a synthetic 3-site cohort (105 scans; ``--small``: 3, the SCIseg-size model only,
   2 scans per process, no second run with the exact resampling): ``run`` (one GPU
   worker and CPU workers on the other cores, torch resampling) vs (a) one
   ``cohort-sciseg segment`` process per scan (a subset, several at a time, as
   ``sct_run_batch -jobs N``) and (b) ``nnUNetv2_predict_from_modelfolder`` on the same images,
   same model, step 0.5, no TTA; GPU utilisation sampled every 0.2 s during each (NVML, else
   ``nvidia-smi``), and ``run``'s own model-busy fraction; then ``run`` with the exact resampling.

``--cpu``: the same code on the CPU (one worker advertises the GPU resource and runs the model on
the CPU, as ``bench_run.py --busy`` emulates it); ``--small``: small scans, a tiny cohort and the
SCIseg-size network with 1/8 of its features (the CPU dry run of the test suite).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO), str(HERE)]

import sciseg_size_model  # noqa: E402  (benchmarks/gpu/, not a package)

REAL = {"errsm11": "sub-errsm11", "sctms": "sub-sctms"}
REAL_SMALL = {"sctcrop": "sub-sctcrop", "sctfakelesion": "sub-sctfakelesion"}
GOALS = {"correctness_dice": 0.999, "run_vs_nnunet": 1.5, "run_vs_per_process": 10.0, "gpu_busy": 0.90}


class GpuSampler:
    """GPU utilisation (%) every ``period`` s: NVML (nvidia-ml-py) when importable, else ``nvidia-smi``."""

    def __init__(self, period: float = 0.2) -> None:
        self.period = period
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._read = self._reader()

    def _reader(self) -> Callable[[], float | None] | None:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            return lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except Exception:  # no NVML: nvidia-smi, or nothing on a CPU machine
            if shutil.which("nvidia-smi") is None:
                return None

            def smi() -> float | None:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5, check=False).stdout.split()
                return float(out[0]) if out else None

            return smi

    @contextlib.contextmanager
    def sampling(self) -> Iterator[None]:
        self.samples = []
        self._stop.clear()
        thread = None
        if self._read is not None:
            thread = threading.Thread(target=self._loop, daemon=True)
            thread.start()
        try:
            yield
        finally:
            self._stop.set()
            if thread is not None:
                thread.join()

    def _loop(self) -> None:
        read = self._read
        assert read is not None
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                value = read()
                if value is not None:
                    self.samples.append((time.perf_counter(), value))
            self._stop.wait(self.period)

    def summary(self) -> dict[str, Any] | None:
        """Mean utilisation, share of busy samples, and the same over the steady state (middle 80 %)."""
        if not self.samples:
            return None
        values = [v for _, v in self.samples]
        n = len(values)
        steady = values[n // 10 : n - n // 10] or values
        return {"samples": n, "period_s": self.period, "mean_utilization_pct": statistics.fmean(values),
                "busy_fraction": sum(v > 0 for v in values) / n,
                "steady_mean_utilization_pct": statistics.fmean(steady),
                "steady_busy_fraction": sum(v > 0 for v in steady) / len(steady)}


class Kit:
    """Runs the steps against the time budget and keeps the JSON document up to date."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.out: Path = args.outdir
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(args.work or Path(tempfile.gettempdir()) / "cohort-sciseg-kit")
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.cpu_only = bool(args.cpu)
        self.small = bool(args.small)
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + float(args.budget)
        self.cores = os.cpu_count() or 1
        self.sampler = GpuSampler()
        self.doc: dict[str, Any] = {
            "kit": "benchmarks/gpu/kit.py", "mode": {"cpu": self.cpu_only, "small": self.small},
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "budget_s": args.budget,
            "goals": GOALS, "steps": {},
        }

    # ---------------------------------------------------------------- plumbing
    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def save(self) -> None:
        self.doc["elapsed_s"] = time.perf_counter() - self.t0
        tmp = self.out / ".kit.json.tmp"
        tmp.write_text(json.dumps(self.doc, indent=1, default=str) + "\n")
        tmp.replace(self.out / "kit.json")

    def step(self, name: str, fn: Callable[[], Any], *, needs_s: float) -> Any:
        """Run ``fn`` if ``needs_s`` seconds are left; record its result, time or error."""
        if self.left() < needs_s:
            self.doc["steps"][name] = {"skipped": f"{self.left():.0f} s left, needs ~{needs_s:.0f} s"}
            print(f"[kit] {name}: skipped ({self.left():.0f} s left)", flush=True)
            self.save()
            return None
        print(f"[kit] {name} ({self.left():.0f} s left)", flush=True)
        t = time.perf_counter()
        try:
            result = fn()
            self.doc["steps"][name] = {"seconds": time.perf_counter() - t, "result": result}
        except Exception as exc:  # one failed step must not lose the others' figures
            result = None
            self.doc["steps"][name] = {"seconds": time.perf_counter() - t, "error": f"{type(exc).__name__}: {exc}",
                                       "traceback": traceback.format_exc()[-4000:]}
            print(f"[kit] {name} failed: {exc}", flush=True)
        self.save()
        return result

    @property
    def device(self) -> str:
        return "cpu" if self.cpu_only else "cuda"

    # ---------------------------------------------------------------- inputs
    def real_scans(self) -> dict[str, Path]:
        """The real scans: carried by prepare.sh (.gpu-kit/data), else in the shared test data."""
        roots = [REPO / ".gpu-kit" / "data", REPO.parent / "shared" / "data" / "spine-t2w"]
        if os.environ.get("COHORT_SCISEG_TEST_DATA"):
            roots.insert(1, Path(os.environ["COHORT_SCISEG_TEST_DATA"]) / "spine-t2w")
        found = {}
        for name, sub in (REAL_SMALL if self.small else REAL).items():
            for root in roots:
                candidates = (root / f"{sub}_T2w.nii.gz", root / sub / "anat" / f"{sub}_T2w.nii.gz")
                hit = next((c for c in candidates if c.is_file()), None)
                if hit is not None:
                    found[name] = hit
                    break
        return found

    def start_cohort(self) -> subprocess.Popen[bytes]:
        """Synthesize the throughput cohort in another process while the first steps run."""
        n = 1 if self.small else 30  # 3 sites x 30 subjects: 105 scans (site 2 has follow-ups)
        code = ("from cohort_sciseg.synth import synthesize_cohort; "
                f"synthesize_cohort({str(self.work / 'cohort')!r}, sites=3, subjects_per_site={n}, seed=0)")
        return subprocess.Popen([sys.executable, "-c", code])

    def site_scans(self) -> dict[str, Path]:
        """One scan per synthetic site style (a separate small cohort, made here)."""
        from cohort_sciseg.discover import find_scans
        from cohort_sciseg.synth import synthesize_cohort

        cohort = synthesize_cohort(self.work / "styles", sites=3, subjects_per_site=1, seed=1)
        out: dict[str, Path] = {}
        for scan in find_scans([Path(r) for r in cohort.dataset_roots]).scans:
            out.setdefault(f"synthetic-{scan.site}-{scan.acquisition_plane}", Path(scan.image_path))
        return out

    def models(self) -> dict[str, str]:
        from cohort_sciseg.segment import demo_model_path

        path = self.work / ("sciseg-size-small" if self.small else "sciseg-size")
        if not path.is_dir():
            sciseg_size_model.write_model(path, small=self.small)
        return {"sciseg-size": str(path), "demo": str(demo_model_path())}

    # ---------------------------------------------------------------- steps
    def environment(self) -> dict[str, Any]:
        import importlib.metadata as md

        import torch

        smi = shutil.which("nvidia-smi")
        nvsmi = subprocess.run([smi], capture_output=True, text=True, check=False).stdout if smi else "no nvidia-smi"
        packages = sorted(f"{d.metadata['Name']}=={d.version}" for d in md.distributions() if d.metadata["Name"])
        (self.out / "env.txt").write_text(nvsmi + "\n\n" + "\n".join(packages) + "\n")
        info: dict[str, Any] = {
            "python": sys.version.split()[0], "platform": platform.platform(), "cpus": self.cores,
            "torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
            "torch_cuda": torch.version.cuda, "n_packages": len(packages),
            "nvidia_smi": nvsmi.splitlines()[:12],
            "simpleitk": _simpleitk_status(),
            "sciseg_size_plan": sciseg_size_model.describe(),
        }
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["cudnn"] = torch.backends.cudnn.version()
        return info

    def correctness(self, models: dict[str, str], scans: dict[str, Path]) -> dict[str, Any]:
        import torch

        from cohort_sciseg.io import load_nifti
        from cohort_sciseg.segment import SegmentationEngine

        torch.set_num_threads(self.cores)
        ways = [(self.device, "exact"), (self.device, "torch")] if not self.cpu_only else [("cpu", "torch")]
        rows: dict[str, Any] = {}
        for name, path in scans.items():
            volume = load_nifti(path)
            ref = SegmentationEngine(model=models["demo"], device="cpu").predict_labels(volume)
            row: dict[str, Any] = {"shape": list(volume.data.shape), "cord_voxels": int((ref >= 1).sum()),
                                   "lesion_voxels": int((ref == 2).sum())}
            for device, resampling in ways:
                got = SegmentationEngine(model=models["demo"], device=device, resampling=resampling).predict_labels(
                    volume)
                row[f"{device}-{resampling}"] = {"cord_dice": _dice(ref >= 1, got >= 1),
                                                 "lesion_dice": _dice(ref == 2, got == 2),
                                                 "identical": bool(np.array_equal(ref, got))}
            rows[name] = row
            print(f"[kit]   {name}: {json.dumps({k: v for k, v in row.items() if isinstance(v, dict)})}", flush=True)
        worst = min(v[m] for r in rows.values() for v in r.values() if isinstance(v, dict)
                    for m in ("cord_dice", "lesion_dice"))
        return {"reference": "demo model, cpu, exact resampling", "scans": rows, "min_dice": worst,
                "goal_met": worst >= GOALS["correctness_dice"]}

    def latency(self, models: dict[str, str], scans: dict[str, Path]) -> dict[str, Any]:
        repeats = 1 if self.small else 3
        rows: dict[str, Any] = {}
        for model_name, model in models.items():
            for scan_name, path in scans.items():
                for resampling in ("exact", "torch"):
                    key = f"{model_name}/{scan_name}/{resampling}"
                    rows[key] = _latency_one(model, path, self.device, resampling, repeats, self.work / "lat")
                    r = rows[key]
                    print(f"[kit]   {key}: network {r['network_s']:.3f} s, rest {r['rest_s']:.3f} s", flush=True)
        return rows

    def throughput(self, models: dict[str, str], cohort: subprocess.Popen[bytes]) -> dict[str, Any]:
        if cohort.wait() != 0:
            msg = "the synthetic cohort could not be written"
            raise RuntimeError(msg)
        from cohort_sciseg.discover import find_scans

        roots = sorted(p for p in (self.work / "cohort").iterdir() if (p / "dataset_description.json").is_file())
        images = [Path(s.image_path) for s in find_scans(roots).scans]
        result: dict[str, Any] = {"n_scans": len(images), "roots": [str(r) for r in roots]}
        # the dry run (--small) keeps to one model: the same code, half the time
        for model_name in ("sciseg-size",) if self.small else ("sciseg-size", "demo"):
            model = models[model_name]
            res: dict[str, Any] = {}
            result[model_name] = res
            plan = [
                ("run", 90 if not self.small else 30, lambda m=model: self._run(roots, m, "torch")),
                ("per_process", 60, lambda m=model: self._per_process(images, m)),
                ("nnUNetv2_predict", 60, lambda m=model: self._nnunet(images, m)),
                ("run_exact_resampling", 90 if not self.small else 30, lambda m=model: self._run(roots, m, "exact")),
            ]
            for way, needs, fn in plan:
                if self.small and way == "run_exact_resampling":  # same code as "run": the dry run saves the time
                    res[way] = {"skipped": "--small"}
                    continue
                if self.left() < needs:
                    res[way] = {"skipped": f"{self.left():.0f} s left, needs ~{needs} s"}
                    continue
                with self.sampler.sampling():
                    try:
                        r = fn()
                    except Exception as exc:
                        r = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
                r["gpu"] = self.sampler.summary()
                res[way] = r
                print(f"[kit]   {model_name} {way}: {json.dumps({k: v for k, v in r.items() if k != 'traceback'})[:400]}",
                      flush=True)
                self.save()
            res["ratios"] = _ratios(res)
        return result

    # ------------------------------------------------------------ the three ways
    def _run(self, roots: list[Path], model: str, resampling: str) -> dict[str, Any]:
        from cohort_sciseg.batch.runner import RunOptions, run_cohort
        from cohort_sciseg.batch.segmenters import SegmenterSpec

        spec = SegmenterSpec.make("nnunet", model=model, resampling=resampling)
        out = self.work / f"run-{Path(model).name}-{resampling}"
        shutil.rmtree(out, ignore_errors=True)
        # one GPU worker (emulated on the CPU with --cpu) plus CPU workers on the other cores
        opts = RunOptions(segmenter=spec, gpus=1, progress=False, resume=False, report=False)
        t = time.perf_counter()
        summary = run_cohort(roots, out, opts)
        wall = time.perf_counter() - t
        from cohort_sciseg.batch.runner import load_summary

        record = load_summary(out)
        done = summary.counts.get("done", 0)
        return {"wall_s": wall, "scans": done, "failed": summary.counts.get("failed", 0),
                "scans_per_s": done / wall, "device_busy": summary.device_busy, "phases": record.get("phases"),
                "workers": (record.get("cluster") or {}).get("workers"), "resampling": resampling,
                "note": "includes morphometry, validation against the synthetic manual masks, records, "
                        "compaction and the validation study; no QC report (bench_report.py measures it)"}

    def _per_process(self, images: list[Path], model: str) -> dict[str, Any]:
        k = min(len(images), 2 if self.small else 32)
        parallel = max(1, self.cores // 2)
        out = self.work / f"per-process-{Path(model).name}"
        out.mkdir(parents=True, exist_ok=True)

        def one(image: Path) -> float:
            cmd = [sys.executable, "-m", "cohort_sciseg.cli", "segment", str(image), "-o",
                   str(out / image.name.split(".")[0]), "--model", model, "--device", self.device,
                   "--resampling", "torch"]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            return time.perf_counter() - t

        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            per_scan = list(pool.map(one, images[:k]))
        wall = time.perf_counter() - t
        return {"wall_s": wall, "scans": k, "scans_per_s": k / wall, "parallel_processes": parallel,
                "median_scan_s": statistics.median(per_scan),
                "note": f"{k} of the cohort's scans (a rate), {parallel} processes at a time as "
                        "sct_run_batch -jobs N; same settings as run (torch resampling)"}

    def _nnunet(self, images: list[Path], model: str) -> dict[str, Any]:
        from cohort_sciseg.segment import find_model

        folder = find_model(model)
        work = self.work / f"nnunet-{Path(model).name}"
        shutil.rmtree(work, ignore_errors=True)
        src, dst, trainer = work / "imagesTs", work / "predictions", work / folder.trainer_dir.name
        src.mkdir(parents=True)
        shutil.copytree(folder.trainer_dir, trainer)
        reader = "SimpleITKIO (nnU-Net's default for .nii.gz)"
        if _simpleitk_status() != "real":  # the 52 MB wheel does not travel: same arrays through nibabel
            plans = json.loads((trainer / "plans.json").read_text())
            plans["image_reader_writer"] = "NibabelIO"  # predict_from_files reads with the plans' reader
            (trainer / "plans.json").write_text(json.dumps(plans))
            reader = "NibabelIO (SimpleITK not on this machine; same arrays, axis order and spacing)"
        for i, image in enumerate(images):
            shutil.copyfile(image, src / f"case{i:04d}_0000.nii.gz")
        procs = max(1, (self.cores - 1) // 2)
        code = ("import sys; from nnunetv2.inference.predict_from_raw_data import "
                "predict_entry_point_modelfolder as f; sys.argv[0] = 'nnUNetv2_predict_from_modelfolder'; f()")
        cmd = [sys.executable, "-c", code, "-i", str(src), "-o", str(dst), "-m", str(trainer),
               "-f", *folder.folds, "-chk", folder.checkpoint_names[0], "-step_size", "0.5", "--disable_tta",
               "-device", self.device, "-npp", str(procs), "-nps", str(procs), "--disable_progress_bar"]
        env = {**os.environ, "nnUNet_raw": str(work), "nnUNet_preprocessed": str(work), "nnUNet_results": str(work)}
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            msg = f"nnUNetv2_predict_from_modelfolder exited {proc.returncode}: {proc.stderr[-1500:]}"
            raise RuntimeError(msg)
        n = len(list(dst.glob("*.nii.gz")))
        return {"wall_s": wall, "scans": n, "scans_per_s": n / wall, "npp": procs, "nps": procs, "reader": reader,
                "note": "same model folder, folds, checkpoint, step 0.5, no TTA, same device; nnU-Net's own "
                        "exact resampling; writes the label maps only (no morphometry, no validation)"}


def _simpleitk_status() -> str:
    try:
        import SimpleITK
    except ImportError:
        return "missing"
    return "shim" if getattr(SimpleITK, "__kit_shim__", False) else "real"


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def _latency_one(model: str, path: Path, device: str, resampling: str, repeats: int, out: Path) -> dict[str, Any]:
    """Stage times of one scan with the model loaded once (a warm-up pass, then the median of ``repeats``)."""
    import torch

    from cohort_sciseg.io import load_nifti
    from cohort_sciseg.morphometry import measure_lesions
    from cohort_sciseg.segment import SegmentationEngine
    from cohort_sciseg.segment.outputs import output_paths, write_mask

    torch.set_num_threads(os.cpu_count() or 1)
    engine = SegmentationEngine(model=model, device=device, resampling=resampling)
    out.mkdir(parents=True, exist_ok=True)
    stages = ("read", "prepare", "network", "export", "masks", "morphometry", "writes")
    times: dict[str, list[float]] = {s: [] for s in stages}
    for i in range(repeats + 1):
        t: dict[str, float] = {}
        c = time.perf_counter()
        volume = load_nifti(path)
        t["read"] = time.perf_counter() - c
        c = time.perf_counter()
        prepared = engine.prepare(volume)
        t["prepare"] = time.perf_counter() - c
        predicted = engine.infer(prepared)
        t["network"] = predicted.seconds
        c = time.perf_counter()
        labels = engine.labels(predicted)
        t["export"] = time.perf_counter() - c
        c = time.perf_counter()
        result = engine.masks_from_labels(labels, volume.affine)
        t["masks"] = time.perf_counter() - c
        c = time.perf_counter()
        measure_lesions(result.cord, result.lesion, volume.affine)
        t["morphometry"] = time.perf_counter() - c
        c = time.perf_counter()
        cord_path, lesion_path = output_paths(out / path.name.split(".")[0])
        write_mask(cord_path, result.cord, volume.header, volume.affine)
        write_mask(lesion_path, result.lesion, volume.header, volume.affine)
        t["writes"] = time.perf_counter() - c
        if i:  # the first pass loads the model and builds the resampling operators
            for s in stages:
                times[s].append(t[s])
    med = {f"{s}_s": statistics.median(v) for s, v in times.items()}
    rest = sum(v for k, v in med.items() if k != "network_s")
    shape = list(np.asarray(prepared.data).shape) if prepared.data is not None else None
    return {**med, "rest_s": rest, "total_s": rest + med["network_s"], "network_share": med["network_s"] / (
        rest + med["network_s"]), "model_input_shape": shape, "repeats": repeats}


def _ratios(res: dict[str, Any]) -> dict[str, Any]:
    def rate(way: str) -> float | None:
        r = res.get(way) or {}
        return r.get("scans_per_s") if r.get("scans") else None

    run, pp, nn, exact = rate("run"), rate("per_process"), rate("nnUNetv2_predict"), rate("run_exact_resampling")
    out: dict[str, Any] = {
        "run_vs_per_process": run / pp if run and pp else None,
        "run_vs_nnUNetv2_predict": run / nn if run and nn else None,
        "torch_vs_exact_resampling_run": run / exact if run and exact else None,
    }
    busy = (res.get("run") or {}).get("device_busy") or {}
    out["run_model_busy_fraction"] = max((b["fraction"] for b in busy.values()), default=None)
    gpu = (res.get("run") or {}).get("gpu") or {}
    out["run_gpu_steady_busy_fraction"] = gpu.get("steady_busy_fraction")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir", type=Path)
    p.add_argument("--cpu", action="store_true", help="run everything on the CPU (dry run)")
    p.add_argument("--small", action="store_true", help="small scans, a 3-scan cohort, a 1/8-width SCIseg-size net")
    p.add_argument("--budget", type=float, default=450.0, help="seconds for all steps (default 450)")
    p.add_argument("--work", type=Path, help="scratch folder, kept (default: a temporary one, removed at the end)")
    args = p.parse_args(argv)
    kit = Kit(args)
    cohort = kit.start_cohort()
    try:
        kit.step("environment", kit.environment, needs_s=5)
        models = kit.step("models", kit.models, needs_s=20) or {}
        real = kit.real_scans()
        kit.doc["real_scans"] = {k: str(v) for k, v in real.items()}
        styles = kit.step("site_styles", lambda: {k: str(v) for k, v in kit.site_scans().items()}, needs_s=10) or {}
        scans = {**real, **{k: Path(v) for k, v in styles.items()}}
        if models:
            kit.step("correctness", lambda: kit.correctness(models, scans), needs_s=40)
            kit.step("latency", lambda: kit.latency(models, real or dict(list(scans.items())[:2])), needs_s=60)
            kit.step("throughput", lambda: kit.throughput(models, cohort), needs_s=90 if not kit.small else 30)
    finally:
        if cohort.poll() is None:
            cohort.kill()
        kit.doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        kit.save()
        if args.work is None:
            shutil.rmtree(kit.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
