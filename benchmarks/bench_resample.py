"""Benchmark of the torch resampling against nnU-Net's exact (scipy) path, same run, same scans.

Per scan, with the same model (``--model``, default the bundled demo model, 1 mm):

``prepare``
    ``SegmentationEngine.prepare`` (reorient, nnU-Net preprocessing: crop, normalise, resample
    to the model's spacing), median of ``--repeats`` calls.
``export``
    ``SegmentationEngine.labels`` on the same logits (resample them back, labels, uncrop,
    reorient), median of ``--repeats`` calls.
``resampling only``
    the two resampling calls themselves, nnU-Net's ``resample_data_or_seg_to_shape`` against
    ``cohort_sciseg.segment.resample_to_shape`` on the same arrays.

Baseline: ``resampling="exact"`` (nnU-Net's scipy/skimage path, SCT's). Ways measured:
``torch`` with 1 torch thread (the exact path uses one) and with every core. Accuracy: the
network runs once (on the exact path's input); the largest difference between the two
preprocessed inputs is reported, and the Dice of the cord and lesion masks that the two export
paths make from the same logits.

Scans: ``sub-sctms`` (axial 320x256x19, 0.69x0.69x7.5 mm, the anisotropic case) and
``sub-errsm11`` (384x216x52, 1 mm) from ``../shared/data`` when present
(``$COHORT_SCISEG_TEST_DATA`` overrides), and one scan of each synthetic site style
(sagittal 3x0.5x0.5 mm, axial 0.7x0.7x5 mm, isotropic 0.9 mm).

Run::

    .venv/bin/python benchmarks/bench_resample.py --out benchmarks/results/resample_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REAL = {
    "sctms (real, 320x256x19, 0.69x0.69x7.5 mm)": "spine-t2w/sub-sctms/anat/sub-sctms_T2w.nii.gz",
    "errsm11 (real, 384x216x52, 1 mm)": "spine-t2w/sub-errsm11/anat/sub-errsm11_T2w.nii.gz",
}


def _data_root() -> Path:
    return Path(os.environ.get("COHORT_SCISEG_TEST_DATA", REPO.parent / "shared" / "data"))


def _scans(work: Path) -> dict[str, Path]:
    from cohort_sciseg.discover import find_scans
    from cohort_sciseg.synth import synthesize_cohort

    scans = {name: _data_root() / rel for name, rel in REAL.items() if (_data_root() / rel).is_file()}
    cohort = synthesize_cohort(work / "cohort", sites=3, subjects_per_site=1, seed=0)
    for scan in find_scans([Path(r) for r in cohort.dataset_roots]).scans:
        if scan.ses in (None, "", "01"):
            scans.setdefault(f"synthetic {scan.site} ({scan.acquisition_plane})", Path(scan.image_path))
    return scans


def _median_s(fn: Any, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def _resampling_only(engine: Any, prepared: Any, logits: Any, repeats: int) -> dict[str, float] | None:
    """The two resampling calls alone, exact vs torch on this engine's device/threads."""
    from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg_to_shape

    from cohort_sciseg.segment import resample_to_shape

    cfg = engine.plans().configuration_manager.configuration
    props = prepared.properties
    if tuple(props["shape_after_cropping_and_before_resampling"]) == tuple(np.asarray(prepared.data).shape[1:]):
        return None  # the scan is at the model's spacing: neither path resamples
    before = [props["spacing"][i] for i in engine.plans().plans_manager.transpose_forward]
    after = cfg["spacing"]
    shape_in = props["shape_after_cropping_and_before_resampling"]
    model_shape = np.asarray(prepared.data).shape[1:]  # the model's grid
    small = np.random.default_rng(0).normal(size=(1, *shape_in)).astype(np.float32)  # an image on the scan's
    out: dict[str, float] = {}
    for name, fn in (("exact", resample_data_or_seg_to_shape), ("torch", resample_to_shape)):
        kw = {"num_threads": engine.settings.threads} if name == "torch" else {}
        out[f"{name}_data_s"], _ = _median_s(
            lambda fn=fn, kw=kw: fn(small, model_shape, before, after, **cfg["resampling_fn_data_kwargs"], **kw),
            repeats,
        )
        out[f"{name}_logits_s"], _ = _median_s(
            lambda fn=fn, kw=kw: fn(logits.logits.numpy(), shape_in, after, before,
                                    **cfg["resampling_fn_probabilities_kwargs"], **kw),
            repeats,
        )
    return out


def _one_scan(model: str, path: Path, repeats: int, cores: int) -> dict[str, Any]:
    import torch

    from cohort_sciseg.io import load_nifti
    from cohort_sciseg.segment import SegmentationEngine

    volume = load_nifti(path)
    ways = {"exact": ("exact", 1), "torch-1thread": ("torch", 1), f"torch-{cores}threads": ("torch", cores)}
    engines = {w: SegmentationEngine(model=model, device="cpu", resampling=r, threads=t, tile_step_size=1.0)
               for w, (r, t) in ways.items()}
    exact = engines["exact"]
    prepared = exact.prepare(volume)  # warm (plans, operators) and the network's input
    torch.set_num_threads(cores)
    logits = exact.infer(prepared)
    reference = exact.labels(logits)
    row: dict[str, Any] = {"shape": list(volume.data.shape), "model_input": list(np.asarray(prepared.data).shape),
                           "network_s": logits.seconds}
    for way, engine in engines.items():
        torch.set_num_threads(engine.settings.threads or cores)
        engine.prepare(volume)
        engine.labels(logits)  # warm
        prep_s, prep = _median_s(lambda engine=engine: engine.prepare(volume), repeats)
        export_s, labels = _median_s(lambda engine=engine: engine.labels(logits), repeats)
        row[way] = {
            "prepare_s": prep_s,
            "export_s": export_s,
            "input_max_abs_diff": float(np.abs(np.asarray(prep.data) - np.asarray(prepared.data)).max()),
            "cord_dice_vs_exact": _dice(reference >= 1, labels >= 1),
            "lesion_dice_vs_exact": _dice(reference == 2, labels == 2),
            "identical_masks": bool(np.array_equal(reference, labels)),
            "resampling_only": _resampling_only(engine, prepared, logits, repeats),
        }
    base = row["exact"]["prepare_s"] + row["exact"]["export_s"]
    for way in engines:
        if way != "exact":
            row[way]["speedup_outside_network"] = base / (row[way]["prepare_s"] + row[way]["export_s"])
            only = row[way]["resampling_only"]
            row[way]["speedup_resampling_only"] = None if only is None else (
                (only["exact_data_s"] + only["exact_logits_s"]) / (only["torch_data_s"] + only["torch_logits_s"]))
    return row


def _ratio(value: float | None) -> str:
    return "n/a (no resampling: the scan is at the model's spacing)" if value is None else f"{value:.1f}x"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="demo")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--only", help="substring of the scan names to run")
    p.add_argument("--note", default="", help="conditions to record (machine load, ...)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    cores = os.cpu_count() or 1
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-resample-") as tmp:
        for name, path in _scans(Path(tmp)).items():
            if args.only and args.only not in name:
                continue
            row = results[name] = _one_scan(args.model, path, args.repeats, cores)
            for way in [w for w in row if w.startswith("torch")]:
                r = row[way]
                print(f"{name:52s} {way:15s} outside the network {row['exact']['prepare_s'] + row['exact']['export_s']:.3f}"
                      f" -> {r['prepare_s'] + r['export_s']:.3f} s ({r['speedup_outside_network']:.1f}x), resampling "
                      f"alone {_ratio(r['speedup_resampling_only'])}, cord/lesion Dice {r['cord_dice_vs_exact']:.4f}/"
                      f"{r['lesion_dice_vs_exact']:.4f}", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=False).stdout.strip()
    doc = {
        "benchmark": "bench_resample",
        "baseline": "resampling='exact' (nnU-Net's resample_data_or_seg_to_shape, SCT's path), same run",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": cores},
        "commit": commit, "note": args.note, "settings": {"model": args.model, "repeats": args.repeats},
        "results": results,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
