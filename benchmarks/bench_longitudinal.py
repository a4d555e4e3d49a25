"""Benchmark of longitudinal alignment and lesion matching per session pair (:mod:`cohort_sciseg.longitudinal`).

The pair is built from the real ``sub-errsm11`` T2w and manual cord mask of ``spine-t2w``
(384 x 216 x 52 voxels, 1 mm; ``../shared/data``, ``$COHORT_SCISEG_TEST_DATA`` overrides the folder):

- baseline: three lesions inserted in the cord (:func:`cohort_sciseg.synth.insert_lesions_into_arrays`);
- follow-up: the same tissue without the third lesion (resolved), seen after a known rigid motion
  of the subject (rotation about the cord centroid + translation), resampled onto the same grid
  (image: linear; cord and lesions: nearest neighbour).

Timed in-process on one core (SimpleITK 1 thread, ``OMP_NUM_THREADS=1``; torch not imported), median
of ``--repeats``:

``align``
    :func:`align_sessions` (rigid, Mattes MI, the defaults), including its cord Dice check.
``resample_labels``
    :func:`resample_to_baseline` of the follow-up lesion label map.
``track``
    :func:`track_lesions` of the two sessions (overlap graph, events, tables).
``pair``
    The sum of the three medians: what one follow-up costs on top of its segmentation and
    morphometry (``measure_lesions`` is timed apart, for context).

The recovered motion is compared with the true one: rotation error (angle of R_est^T R_true, degrees)
and largest displacement error over the follow-up cord voxels (mm and voxels). Goal: < 5 s per pair.

Run::

    .venv/bin/python benchmarks/bench_longitudinal.py --out benchmarks/results/longitudinal.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/scipy load their thread pools

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import SimpleITK as sitk  # noqa: N813
from scipy import ndimage
from scipy.spatial.transform import Rotation

from cohort_sciseg.io import Volume, load_nifti
from cohort_sciseg.longitudinal import (
    SessionLesions,
    align_sessions,
    resample_to_baseline,
    track_lesions,
)
from cohort_sciseg.morphometry import measure_lesions
from cohort_sciseg.synth import insert_lesions_into_arrays

REPO = Path(__file__).resolve().parents[1]
ERRSM11_CORD = "derivatives/labels/sub-errsm11/anat/sub-errsm11_T2w_seg-manual.nii.gz"
ERRSM11_IMAGE = "sub-errsm11/anat/sub-errsm11_T2w.nii.gz"
GOAL_S = 5.0


def rigid_about(angles_deg: tuple[float, float, float], translation_mm: tuple[float, float, float],
                centre: np.ndarray) -> np.ndarray:
    """4 x 4 motion: rotation about ``centre`` (extrinsic x, y, z, degrees), then translation (RAS+ mm)."""
    m = np.eye(4)
    rot = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix()
    m[:3, :3] = rot
    m[:3, 3] = centre - rot @ centre + np.asarray(translation_mm)
    return m


def moved(data: np.ndarray, affine: np.ndarray, motion: np.ndarray, order: int) -> np.ndarray:
    """``data`` after the subject moved: follow-up voxel v shows the baseline tissue at world motion(A v)."""
    vox = np.linalg.inv(affine) @ motion @ affine
    src = np.asarray(data, dtype=np.float32 if order else data.dtype)
    return ndimage.affine_transform(src, vox[:3, :3], offset=vox[:3, 3], order=order, mode="constant", cval=0)


def build_pair(root: Path, angles: tuple[float, float, float], shift: tuple[float, float, float]) -> dict[str, Any]:
    image_p, cord_p = root / "spine-t2w" / ERRSM11_IMAGE, root / "spine-t2w" / ERRSM11_CORD
    if not (image_p.is_file() and cord_p.is_file()):
        msg = f"real scans not found at {root / 'spine-t2w'} (set COHORT_SCISEG_TEST_DATA to the folder holding spine-t2w/)"
        raise SystemExit(msg)
    image = load_nifti(image_p)
    aff = image.affine
    cord = np.asarray(load_nifti(cord_p).data) > 0.5
    b_img, b_lab, placed = insert_lesions_into_arrays(image.data, cord, aff, n_lesions=3,
                                                      rng=np.random.default_rng(11))
    # follow-up tissue: lesion 3 has resolved (its voxels show the original image again)
    f_tissue = np.where(b_lab == 3, np.asarray(image.data, dtype=np.float64), b_img)
    f_lab0 = np.where(b_lab == 3, 0, b_lab).astype(np.uint8)
    centre = (aff @ np.append(np.argwhere(cord).mean(axis=0), 1.0))[:3]
    true = rigid_about(angles, shift, centre)  # follow-up world -> baseline world
    f_img = moved(f_tissue, aff, true, 1)
    f_cord = moved(cord.astype(np.uint8), aff, true, 0) > 0
    f_lab = moved(f_lab0, aff, true, 0)
    return {
        "baseline": Volume(b_img, aff, image.header), "baseline_cord": cord, "baseline_lesion": b_lab > 0,
        "followup": Volume(f_img, aff, image.header), "followup_cord": f_cord, "followup_lesion": f_lab > 0,
        "true": true, "n_lesions_inserted": len(placed), "source": f"real sub-errsm11 T2w and manual cord ({image_p})",
    }


def timed(fn: Callable[[], Any], repeats: int) -> tuple[dict[str, Any], Any]:
    out = fn()  # warm-up (imports, caches)
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    # CPU seconds of this (single-threaded) process: the wall time without the waits of a busy machine
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "median_cpu_s": statistics.median(cpu), "repeats": repeats, "times_s": times, "cpu_s": cpu}, out


def machine_info() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
        "threads_used": 1, "load_average_at_start": list(os.getloadavg()),
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
                     "simpleitk": sitk.Version.VersionString()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/longitudinal.json"))
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per step (median reported)")
    parser.add_argument("--angles", type=float, nargs=3, default=(3.0, 1.0, -1.5), help="true rotation, degrees (x y z)")
    parser.add_argument("--shift", type=float, nargs=3, default=(1.0, 2.5, -2.0), help="true translation, mm (R A S)")
    args = parser.parse_args(argv)
    machine = machine_info()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)

    root = Path(os.environ.get("COHORT_SCISEG_TEST_DATA", REPO.parent / "shared" / "data"))
    pair = build_pair(root, tuple(args.angles), tuple(args.shift))
    base, follow, true = pair["baseline"], pair["followup"], pair["true"]
    print(f"scan: {pair['source']}; shape {base.shape}; {pair['n_lesions_inserted']} lesions inserted")

    t_measure, (m_base, m_follow) = timed(lambda: (
        measure_lesions(pair["baseline_cord"], pair["baseline_lesion"], base.affine),
        measure_lesions(pair["followup_cord"], pair["followup_lesion"], follow.affine)), args.repeats)
    t_align, alignment = timed(lambda: align_sessions(base, pair["baseline_cord"], follow, pair["followup_cord"],
                                                      threads=1), args.repeats)
    f_labels = m_follow.labels
    t_resample, f_in_base = timed(lambda: resample_to_baseline(f_labels, follow.affine, alignment, base.shape,
                                                               base.affine), args.repeats)
    sessions = [SessionLesions("01", m_base.labels, m_base.lesions, time=30.0),
                SessionLesions("02", f_in_base, m_follow.lesions, time=210.0, alignment=alignment)]
    t_track, tracked = timed(lambda: track_lesions(sessions, sub="errsm11"), args.repeats)

    rot_err = float(np.degrees(Rotation.from_matrix(alignment.matrix[:3, :3].T @ true[:3, :3]).magnitude()))
    pts = np.c_[np.argwhere(pair["followup_cord"]), np.ones(int(pair["followup_cord"].sum()))] @ follow.affine.T
    disp_err = float(np.abs(pts @ alignment.matrix.T - pts @ true.T).max())
    voxel = min(follow.voxel_size_mm)
    pair_s = t_align["median_s"] + t_resample["median_s"] + t_track["median_s"]
    pair_cpu_s = t_align["median_cpu_s"] + t_resample["median_cpu_s"] + t_track["median_cpu_s"]
    events = tracked.changes.column("event").to_pylist()
    print(f"align_sessions: median {t_align['median_s']:.2f} s ({alignment.iterations} iterations, ok={alignment.ok}, "
          f"cord Dice {alignment.cord_dice:.3f})")
    print(f"resample_to_baseline (labels): median {t_resample['median_s'] * 1e3:.0f} ms; "
          f"track_lesions: median {t_track['median_s'] * 1e3:.0f} ms")
    print(f"pair (align + resample + track): {pair_s:.2f} s wall, {pair_cpu_s:.2f} s CPU (goal < {GOAL_S} s); "
          f"measure_lesions x2 (context): {t_measure['median_s']:.2f} s")
    print(f"motion error: rotation {rot_err:.3f} deg, displacement over the cord max {disp_err:.3f} mm "
          f"({disp_err / voxel:.2f} voxel); events {events}")

    result = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine,
        "scan": {"source": pair["source"], "shape": list(base.shape), "voxel_mm": list(base.voxel_size_mm),
                 "orientation": base.orientation, "lesions_inserted": pair["n_lesions_inserted"]},
        "true_motion": {"rotation_deg_xyz": list(args.angles), "translation_mm_ras": list(args.shift),
                        "about": "rotation about the baseline cord centroid (world RAS+ mm)",
                        "matrix_followup_to_baseline": true.tolist()},
        "recovered": {"rotation_deg": list(alignment.rotation_deg), "translation_mm": list(alignment.translation_mm),
                      "matrix": alignment.matrix.tolist(), "ok": alignment.ok, "message": alignment.message,
                      "cord_dice": alignment.cord_dice, "iterations": alignment.iterations,
                      "metric_value": alignment.metric_value},
        "errors": {"rotation_deg": rot_err, "max_displacement_mm": disp_err, "max_displacement_voxel": disp_err / voxel},
        "steps": {"align": t_align, "resample_labels": t_resample, "track": t_track,
                  "measure_lesions_both_sessions_context": t_measure},
        "pair_s": pair_s,
        "pair_cpu_s": pair_cpu_s,
        "load_average_at_end": list(os.getloadavg()),
        "goal_s": GOAL_S,
        "events": events,
        "tracks": tracked.tracks.select(["ses", "lesion_id", "track_id", "event"]).to_pylist(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
