"""Benchmark of the segmentation engine: per-scan latency, model loaded once vs a fresh process per scan.

What ``sct_deepseg`` pays per subject is a fresh process: Python start-up, importing torch and
nnU-Net, unpickling the checkpoints and building the network, then predicting. The engine pays
the load once per process (:class:`cohort_sciseg.segment.SegmentationEngine`, per-process cache)
and then only the prediction. Measured, same machine, same run, same model:

``in-process``
    load time (first call minus a warm call) and the median per-scan time of ``--repeats`` calls
    of ``SegmentationEngine.segment_file`` (read, predict, write masks and sidecars).
``fresh process``
    wall time of ``python -c "...segment_image(...)"`` per scan (``--repeats`` runs): import +
    load + predict + write, as one ``sct_deepseg`` call.

Scans: the real ``sub-errsm11`` T2w (384 x 216 x 52, 1 mm) when ``../shared/data/spine-t2w`` is
present (``$COHORT_SCISEG_TEST_DATA`` overrides), else a synthetic image of that size, and a
small synthetic scan (64 x 64 x 48). Settings: tile step 0.5 / 1.0, mirroring (TTA) off / on
on the small scan; the large scan at SCT's settings (step 0.5, no TTA) unless ``--full`` (all four:
TTA is 8x the work). Model: the bundled demo model (``--model demo``, the default: 4 stages,
features 8-16-32-64, patch 64 x 64 x 48, with its recommended post-processing), ``--model tiny``
(:func:`cohort_sciseg.segment.testing.make_tiny_model`, 3 stages, features 4-8-16, patch 32^3) or
``--model PATH``.

Run::

    .venv/bin/python benchmarks/bench_segment.py --full --repeats 1 --out benchmarks/results/segment.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from cohort_sciseg.segment import SegmentationEngine, cache_info, clear_cache, demo_model_path
from cohort_sciseg.segment.testing import make_tiny_model, textured_image

REPO = Path(__file__).resolve().parents[1]
ERRSM11 = "spine-t2w/sub-errsm11/anat/sub-errsm11_T2w.nii.gz"


def _data_root() -> Path:
    return Path(os.environ.get("COHORT_SCISEG_TEST_DATA", REPO.parent / "shared" / "data"))


def _scans(work: Path) -> dict[str, Path]:
    scans = {}
    real = _data_root() / ERRSM11
    if real.is_file():
        scans["errsm11 384x216x52 (real)"] = real
    else:
        path = work / "large.nii.gz"
        nib.save(nib.Nifti1Image(textured_image((384, 216, 52), seed=1), np.diag([1.0, 1, 1, 1])), path)
        scans["384x216x52 (synthetic)"] = path
    small = work / "small.nii.gz"
    nib.save(nib.Nifti1Image(textured_image((64, 64, 48), seed=2), np.diag([-1.0, 1, 1, 1])), small)
    scans["64x64x48 (synthetic)"] = small
    return scans


def _in_process(model: Path, scan: Path, out: Path, tta: bool, step: float, repeats: int) -> dict[str, Any]:
    clear_cache()
    engine = SegmentationEngine(model=str(model), tta=tta, tile_step_size=step, device="cpu")
    t0 = time.perf_counter()
    engine.segment_file(scan, out / "first")
    first = time.perf_counter() - t0
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        engine.segment_file(scan, out / f"warm{i}")
        times.append(time.perf_counter() - t0)
    assert cache_info()["loads"] == 1
    warm = statistics.median(times)
    return {"first_call_s": first, "load_s": max(first - warm, 0.0), "per_scan_s": warm, "per_scan_all_s": times}


def _fresh_process(model: Path, scan: Path, out: Path, tta: bool, step: float, repeats: int) -> dict[str, Any]:
    code = (
        "import sys; from cohort_sciseg.segment import segment_image; "
        "segment_image(sys.argv[1], sys.argv[2], model=sys.argv[3], tta=sys.argv[4] == '1', "
        "tile_step_size=float(sys.argv[5]), device='cpu')"
    )
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code, str(scan), str(out / f"fresh{i}"), str(model), "1" if tta else "0", str(step)],
            check=True, capture_output=True,
        )
        times.append(time.perf_counter() - t0)
    return {"per_scan_s": statistics.median(times), "per_scan_all_s": times}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "segment.json")
    p.add_argument("--model", default="demo",
                   help="'demo' (bundled, default), 'tiny' (a tiny seeded model built here) or a model folder")
    p.add_argument("--note", default="", help="conditions of the run, recorded in the results")
    p.add_argument("--repeats", type=int, default=2, help="calls per setting (median reported)")
    p.add_argument("--full", action="store_true", help="also TTA on the large scan (8x the work)")
    args = p.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.model == "tiny":
            model = make_tiny_model(work / "tiny", seed=0)
            model_label = "tiny seeded PlainConvUNet (4-8-16, patch 32^3)"
        elif args.model == "demo":
            model = demo_model_path()
            model_label = "bundled demo model (PlainConvUNet 8-16-32-64, patch 64x64x48)"
        else:
            model = Path(args.model).resolve()
            model_label = str(args.model)
        for name, scan in _scans(work).items():
            large = "384" in name
            for tta in (False, True):
                if tta and large and not args.full:
                    continue
                for step in (0.5, 1.0):
                    if large and step != 0.5 and not args.full:
                        continue
                    out = work / "out"
                    out.mkdir(exist_ok=True)
                    inproc = _in_process(model, scan, out, tta, step, args.repeats)
                    fresh = _fresh_process(model, scan, out, tta, step, args.repeats)
                    row = {
                        "scan": name, "tta": tta, "tile_step_size": step,
                        "in_process": inproc, "fresh_process": fresh,
                        "fresh_over_in_process": fresh["per_scan_s"] / inproc["per_scan_s"],
                        "fixed_cost_per_fresh_process_s": fresh["per_scan_s"] - inproc["per_scan_s"],
                    }
                    rows.append(row)
                    print(f"{name:28s} tta={'on ' if tta else 'off'} step={step:.1f}: "
                          f"in-process {inproc['per_scan_s']:.2f} s/scan (load {inproc['load_s']:.2f} s once), "
                          f"fresh process {fresh['per_scan_s']:.2f} s/scan -> ratio {row['fresh_over_in_process']:.1f}x",
                          flush=True)
    import torch

    result = {
        "benchmark": "segment: per-scan latency, model loaded once vs a fresh process per scan (what sct_deepseg pays)",
        "model": model_label,
        "repeats": args.repeats,
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__},
        "note": args.note,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
