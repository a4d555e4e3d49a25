"""Benchmark of BIDS discovery (:func:`cohort_sciseg.discover.find_scans`).

Builds a skeleton BIDS tree of ``--scans`` tiny T2w images (2 sessions x 2
acquisitions per subject, sidecars at every inheritance level, manual masks)
with :func:`cohort_sciseg.synth.tree.write_skeleton_tree`, times
``find_scans`` (best of ``--repeats``), and compares, in the same process and on
the same files, against named baselines:

``naive_glob_nibabel``
    What a first script does: ``glob`` the images, then per image
    ``nibabel.load`` (header), orientation and voxel sizes, one ``glob`` per
    image for its masks and ``json.load`` of its file-level sidecar. Full tree,
    best of ``--repeats``.
``pybids_layout``
    ``bids.BIDSLayout(root, validate=False)`` indexing (files and sidecar
    metadata, no NIfTI headers) of a ``--baseline-scans`` subset tree, when
    pybids is installed; extrapolated linearly to ``--scans`` and labelled so.
    ``find_scans`` is timed on the same subset for a like-for-like ratio.
``read_header_only``
    The serial loop of :func:`cohort_sciseg.io.read_header` over every image:
    the floor that header reading sets for any discovery that reads headers.
``find_scans_without_headers``
    Instrumentation, not a use case: ``find_scans`` with ``read_header``
    replaced by a stub returning one fixed header, i.e. the cost of walking,
    parsing names, sidecar inheritance, masks, filters and records.

All timings are on a warm page cache (the tree was just written). Run::

    python benchmarks/bench_discover.py --scans 10000 --out benchmarks/results/discover.json
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import nibabel as nib
import numpy as np

from cohort_sciseg.discover import find_scans
from cohort_sciseg.io import read_header, write_json
from cohort_sciseg.synth.tree import write_skeleton_tree

SESSIONS = ("1", "2")
ACQUISITIONS = ("sag", "ax")
PER_SUBJECT = len(SESSIONS) * len(ACQUISITIONS)


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float], Any]:
    """Best wall time of ``repeats`` calls, all times, and the last result."""
    times = []
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), times, result


def build(root: Path, n_scans: int) -> tuple[int, float]:
    n_subjects = math.ceil(n_scans / PER_SUBJECT)
    t0 = time.perf_counter()
    write_skeleton_tree(
        root, n_subjects=n_subjects, sessions=SESSIONS, acquisitions=ACQUISITIONS, seed=0
    )
    return n_subjects * PER_SUBJECT, time.perf_counter() - t0


def naive_glob_nibabel(root: Path) -> list[dict[str, Any]]:
    """The naive baseline: glob + nibabel.load per file, a glob per file for masks."""
    rows = []
    for path in sorted(
        glob.glob(str(root / "sub-*" / "**" / "anat" / "*_T2w.nii*"), recursive=True)
    ):
        img = nib.load(path)
        stem = os.path.basename(path).split(".nii")[0]
        rel = os.path.relpath(os.path.dirname(path), root)
        masks = glob.glob(os.path.join(root, "derivatives", "labels", rel, stem + "_*.nii*"))
        sidecar = os.path.join(os.path.dirname(path), stem + ".json")
        meta = {}
        if os.path.exists(sidecar):
            with open(sidecar, encoding="utf-8") as fh:
                meta = json.load(fh)
        rows.append(
            {
                "path": path,
                "shape": img.shape,
                "zooms": img.header.get_zooms(),
                "orientation": "".join(nib.aff2axcodes(img.affine)),
                "masks": masks,
                "meta": meta,
            }
        )
    return rows


def machine_info(workdir: Path) -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    mem_gib = round(int(line.split()[1]) / 1024**2, 1)
                    break
    except OSError:
        pass
    fs = None
    try:
        best = ""
        with open("/proc/mounts", encoding="utf-8") as fh:
            for line in fh:
                _, mount, kind = line.split()[:3]
                if str(workdir).startswith(mount) and len(mount) > len(best):
                    best, fs = mount, kind
    except OSError:
        pass
    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "nibabel": nib.__version__,
    }
    try:
        import bids

        versions["pybids"] = bids.__version__
    except ImportError:
        versions["pybids"] = None
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gib": mem_gib,
        "workdir_filesystem": fs,
        "versions": versions,
    }


def pybids_baseline(root: Path, repeats: int) -> dict[str, Any] | None:
    try:
        from bids import BIDSLayout
    except ImportError:
        return None

    def index() -> int:
        layout = BIDSLayout(str(root), validate=False)
        return len(layout.get(suffix="T2w", extension=[".nii", ".nii.gz"]))

    best, times, n = best_of(index, repeats)
    return {"best_s": best, "times_s": times, "n_images": n}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scans", type=int, default=10_000, help="number of T2w images (default 10000)"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/discover.json"))
    parser.add_argument("--repeats", type=int, default=3, help="best of N (default 3)")
    parser.add_argument(
        "--baseline-scans", type=int, default=1_000, help="pybids subset size (default 1000)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where to build the trees (default: a temp dir)"
    )
    parser.add_argument(
        "--skip-naive", action="store_true", help="skip the naive glob+nibabel baseline"
    )
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench_discover_", dir=args.workdir))
    try:
        root = workdir / "bench"
        n_scans, build_s = build(root, args.scans)
        print(f"built {n_scans} scans in {build_s:.1f} s at {root}")

        best, times, disc = best_of(lambda: find_scans(root), args.repeats)
        if len(disc.scans) != n_scans or disc.problems:
            msg = f"expected {n_scans} scans and no problem, got {len(disc.scans)} and {disc.problems[:1]!r}"
            raise RuntimeError(msg)
        print(
            f"find_scans (auto): best {best:.2f} s of {[round(t, 2) for t in times]} -> {n_scans / best:,.0f} scans/s"
        )
        t_best, t_times, _ = best_of(lambda: find_scans(root, max_workers=8), args.repeats)
        print(f"find_scans (8 threads): best {t_best:.2f} s -> {n_scans / t_best:,.0f} scans/s")

        info = read_header(disc.scans[0].image_path)
        with mock.patch("cohort_sciseg.discover.find.read_header", return_value=info):
            nh_best, nh_times, _ = best_of(lambda: find_scans(root), args.repeats)
        print(
            f"find_scans without header reads (stub): best {nh_best:.2f} s -> {n_scans / nh_best:,.0f} scans/s"
        )

        images = [s.image_path for s in disc.scans]
        rh_best, _, _ = best_of(lambda: [read_header(p) for p in images], 1)
        print(f"read_header loop alone: {rh_best:.2f} s ({rh_best / n_scans * 1e3:.2f} ms/scan)")

        results: dict[str, Any] = {
            "command": "python "
            + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
            "n_scans": n_scans,
            "tree": {
                "sessions": list(SESSIONS),
                "acquisitions": list(ACQUISITIONS),
                "image_shape": [4, 5, 6],
                "build_s": build_s,
                "cache": "warm (tree just written)",
            },
            "find_scans": {
                "best_s": best,
                "times_s": times,
                "scans_per_s": n_scans / best,
                "max_workers": "auto",
            },
            "find_scans_8_threads": {
                "best_s": t_best,
                "times_s": t_times,
                "scans_per_s": n_scans / t_best,
                "max_workers": 8,
            },
            "read_header_only": {"best_s": rh_best, "ms_per_scan": rh_best / n_scans * 1e3},
            "find_scans_without_headers": {
                "best_s": nh_best,
                "times_s": nh_times,
                "scans_per_s": n_scans / nh_best,
                "what": "instrumentation: read_header stubbed out (walk, names, sidecars, masks, records)",
            },
            "baselines": {},
        }

        if not args.skip_naive:
            nv_best, nv_times, rows = best_of(lambda: naive_glob_nibabel(root), args.repeats)
            if len(rows) != n_scans:
                msg = f"naive baseline found {len(rows)} images, expected {n_scans}"
                raise RuntimeError(msg)
            print(
                f"baseline naive glob+nibabel.load: best {nv_best:.2f} s -> {n_scans / nv_best:,.0f} scans/s"
            )
            results["baselines"]["naive_glob_nibabel"] = {
                "best_s": nv_best,
                "times_s": nv_times,
                "scans_per_s": n_scans / nv_best,
                "speedup_of_find_scans": nv_best / best,
                "what": "glob + nibabel.load header + aff2axcodes + one glob per image for masks + file-level sidecar json",
            }

        sub_root = workdir / "subset"
        n_sub, _ = build(sub_root, args.baseline_scans)
        pb = pybids_baseline(sub_root, args.repeats)
        fs_best, fs_times, _ = best_of(lambda: find_scans(sub_root), args.repeats)
        if pb is None:
            print("pybids not installed: pybids baseline skipped")
            results["baselines"]["pybids_layout"] = {"skipped": "pybids not installed"}
        else:
            extrapolated = pb["best_s"] * n_scans / n_sub
            print(
                f"baseline pybids BIDSLayout on {n_sub} scans: best {pb['best_s']:.2f} s "
                f"(find_scans {fs_best:.2f} s on the same subset, {pb['best_s'] / fs_best:.1f}x); "
                f"linear extrapolation to {n_scans}: {extrapolated:.0f} s"
            )
            results["baselines"]["pybids_layout"] = {
                "subset_scans": n_sub,
                "best_s": pb["best_s"],
                "times_s": pb["times_s"],
                "scans_per_s": n_sub / pb["best_s"],
                "find_scans_same_subset_best_s": fs_best,
                "find_scans_same_subset_times_s": fs_times,
                "speedup_of_find_scans_same_subset": pb["best_s"] / fs_best,
                "extrapolated_s_for_n_scans": extrapolated,
                "extrapolation": f"LINEAR from {n_sub} to {n_scans} scans (not measured)",
                "what": "BIDSLayout(root, validate=False) indexing incl. sidecar metadata, + get(suffix='T2w'); "
                "reads no NIfTI header and no masks",
            }
        results["machine"] = machine_info(workdir)
        out = write_json(args.out, results)
        print(f"results: {out}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
