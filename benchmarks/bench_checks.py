"""What the reliability checks of issue 14 cost per scan, against the work they guard.

Per scan, median of ``--repeats`` calls:

``read_header``
    ``cohort_sciseg.io.read_header`` (reads the header bytes as written, checks the
    spacing) against the baseline ``nibabel.load(path)`` + ``img.affine`` +
    ``header.get_zooms()`` (what the tool did before: nibabel's parser with its repairs).
``checks``
    the added per-scan checks: ``check_image_values`` (intensities), ``check_model_grid``
    (what the model can segment) and ``cord_plausibility`` (suspect cords), against the
    baseline of the scan's segmentation with the model loaded once
    (``SegmentationEngine.segment_volume``, bundled demo model, CPU): the checks' share of it.

Scans: real errsm11 (384x216x52, 1 mm) and sctms (320x256x19, 0.69x0.69x7.5 mm) from
``../shared/data`` (``$COHORT_SCISEG_TEST_DATA`` overrides), else one synthetic scan.

Run::

    .venv/bin/python benchmarks/bench_checks.py --out benchmarks/results/checks.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import nibabel as nib

from cohort_sciseg.io import (
    check_image_values,
    load_nifti,
    orientation_code,
    read_header,
    reorient,
    voxel_sizes,
)
from cohort_sciseg.morphometry import cord_plausibility
from cohort_sciseg.segment.engine import SegmentationEngine
from cohort_sciseg.segment.limits import check_model_grid


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def _scans() -> list[Path]:
    root = Path(os.environ.get("COHORT_SCISEG_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    real = [root / "spine-t2w" / f"sub-{s}" / "anat" / f"sub-{s}_T2w.nii.gz" for s in ("errsm11", "sctms")]
    if all(p.is_file() for p in real):
        return real
    from cohort_sciseg.synth import synthesize_cohort

    tmp = Path(tempfile.mkdtemp())
    cohort = synthesize_cohort(tmp / "c", sites=1, subjects_per_site=1, seed=1)
    return sorted(Path(cohort.dataset_roots[0]).glob("sub-*/anat/*_T2w.nii.gz"))[:1]


def _baseline_header(path: Path) -> None:
    img = nib.load(path)
    _ = img.affine, img.header.get_zooms()


def _measure(path: Path, engine: SegmentationEngine, repeats: int) -> dict:
    plans = engine.plans()
    volume = load_nifti(path)
    cord = engine.segment_volume(volume).cord  # also the warm-up: the model is loaded once
    data, affine = reorient(volume.data, volume.affine, engine.folder.image_orientation)

    def checks() -> None:
        check_image_values(volume.data)
        check_model_grid(data.shape, voxel_sizes(affine), orientation_code(affine),
                         plans.plans_manager.transpose_forward, plans.configuration_manager.spacing)
        cord_plausibility(cord, volume.affine)

    row = {
        "scan": path.name,
        "shape": list(volume.shape),
        "read_header_ms": _median_ms(lambda: read_header(path), repeats),
        "baseline_nibabel_header_ms": _median_ms(lambda: _baseline_header(path), repeats),
        "checks_ms": _median_ms(checks, repeats),
        "check_image_values_ms": _median_ms(lambda: check_image_values(volume.data), repeats),
        "cord_plausibility_ms": _median_ms(lambda: cord_plausibility(cord, volume.affine), repeats),
        "baseline_segment_volume_ms": _median_ms(lambda: engine.segment_volume(volume), max(3, repeats // 5)),
    }
    row["read_header_speedup"] = row["baseline_nibabel_header_ms"] / row["read_header_ms"]
    row["checks_share_of_segmentation"] = row["checks_ms"] / row["baseline_segment_volume_ms"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    engine = SegmentationEngine(model="demo", device="cpu")
    results = []
    for path in _scans():
        row = _measure(path, engine, args.repeats)
        results.append(row)
        print(json.dumps(row))
    doc = {
        "benchmark": "bench_checks",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "repeats": args.repeats,
        "scans": results,
    }
    if args.out:
        args.out.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
