"""Benchmark of lesion morphometry (:func:`cohort_sciseg.morphometry.measure_lesions`).

One scan the size of the real sagittal T2w scans of ``spine-t2w`` (384 x 216 x 52 voxels, 1 mm
isotropic, stored with nibabel axis codes PSR = SCT AIL): the real ``sub-errsm11`` manual cord mask and T2w image when
``../shared/data/spine-t2w`` is present (``$COHORT_SCISEG_TEST_DATA`` overrides the folder),
otherwise a synthetic cylinder cord and a synthetic image, with three lesions inserted in the cord.

Timed in-process, same arrays, same run:

``measure_lesions``
    median of ``--repeats`` (>= 20) calls after one warm-up call; peak Python-heap memory
    (``tracemalloc``, which sees numpy buffers) of one more call.
``SCT-style per-lesion full-volume loops (reimplementation)``
    The same definitions (REFERENCE.md section 2) written the way ``sct_analyze_lesion`` is
    organised: reorientation to RPI, ``skimage.measure.label(connectivity=2)``, then per lesion a
    full-volume boolean copy, a full-volume multiplication by the cord, per-slice Python loops
    with ``np.where`` on full slices (the diameter over every axial slice), tissue bridges
    collected in a dict and reduced with a pandas DataFrame and ``DataFrame.apply``, intensity
    statistics with full-volume indexing. It is a re-implementation written here, not SCT
    itself: no file I/O, no subprocess, no centerline module start-up.

For context only (not measured here): SCT's ``sct_analyze_lesion`` was measured at 2.3-4.3 s per
call on such scans (figure quoted from the SCT issue cited by the project brief).

Run::

    .venv/bin/python benchmarks/bench_morphometry.py --out benchmarks/results/morphometry.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import scipy
from scipy.interpolate import splev, splrep

from cohort_sciseg.io import orientation_code
from cohort_sciseg.morphometry import measure_lesions

REPO = Path(__file__).resolve().parents[1]
BASELINE_NAME = "SCT-style per-lesion full-volume loops (reimplementation)"
SCT_CONTEXT = "SCT sct_analyze_lesion: 2.3-4.3 s per call on such scans (from the SCT issue; not measured here)"
SHAPE_PSR = (384, 216, 52)
ERRSM11_CORD = "derivatives/labels/sub-errsm11/anat/sub-errsm11_T2w_seg-manual.nii.gz"
ERRSM11_IMAGE = "sub-errsm11/anat/sub-errsm11_T2w.nii.gz"
COMPARED = (
    "volume_mm3", "outside_cord_volume_mm3", "length_mm", "width_mm", "max_equivalent_diameter_mm",
    "max_axial_damage_ratio", "length_midsagittal_mm", "width_midsagittal_mm",
    "dorsal_bridge_width_mm", "ventral_bridge_width_mm", "total_bridge_width_mm",
    "mean_intensity", "std_intensity",
)


# --------------------------------------------------------------------------- data


def _to_rpi(arr: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tr = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(affine), nib.orientations.axcodes2ornt(("L", "A", "S"))
    )
    return (
        nib.orientations.apply_orientation(arr, tr),
        affine @ nib.orientations.inv_ornt_aff(tr, arr.shape),
    )


def _from_rpi(arr: np.ndarray, aff_rpi: np.ndarray, axcodes: str) -> tuple[np.ndarray, np.ndarray]:
    tr = nib.orientations.ornt_transform(
        nib.orientations.axcodes2ornt(("L", "A", "S")), nib.orientations.axcodes2ornt(tuple(axcodes))
    )
    out = np.ascontiguousarray(nib.orientations.apply_orientation(arr, tr))
    return out, aff_rpi @ nib.orientations.inv_ornt_aff(tr, arr.shape)


def synthetic_scan() -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Cylinder cord (radius 4 mm, gently curved in the sagittal plane) and an image, PSR."""
    nx, ny, nz = SHAPE_PSR[2], SHAPE_PSR[0], SHAPE_PSR[1]  # RPI shape
    aff_rpi = np.diag([-1.0, 1.0, 1.0, 1.0])
    aff_rpi[:3, 3] = (25.0, -170.0, -130.0)
    x, y = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    cord = np.zeros((nx, ny, nz), dtype=np.float32)
    for z in range(20, nz - 20):
        cy = ny / 2 + 25 * math.sin(z / nz * math.pi)
        cord[:, :, z] = ((x - nx / 2) ** 2 + (y - cy) ** 2 <= 16).astype(np.float32)
    rng = np.random.default_rng(0)
    image = (rng.normal(300, 40, (nx, ny, nz)) + 400 * cord).astype(np.int16)
    cord_psr, aff = _from_rpi(cord, aff_rpi, "PSR")
    image_psr, _ = _from_rpi(image, aff_rpi, "PSR")
    return cord_psr, image_psr, aff, "synthetic cylinder (spine-t2w not found)"


def real_scan(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, str] | None:
    cord_p, image_p = root / "spine-t2w" / ERRSM11_CORD, root / "spine-t2w" / ERRSM11_IMAGE
    if not (cord_p.is_file() and image_p.is_file()):
        return None
    cord_img, image_img = nib.load(cord_p), nib.load(image_p)
    cord = np.asanyarray(cord_img.dataobj)
    image = np.asanyarray(image_img.dataobj)
    return cord, image, cord_img.affine, f"real sub-errsm11 manual cord and T2w ({cord_p})"


def insert_lesions(cord: np.ndarray, aff: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Three ellipsoidal lesions centred on the cord at 30 %, 50 % and 70 % of its S-I extent.

    Each is clipped to the cord dilated by one voxel, so a few voxels lie just outside the cord
    (as in real predictions). Built in RPI, returned in the cord's orientation.
    """
    from scipy import ndimage

    cord_rpi, aff_rpi = _to_rpi(cord, aff)
    cb = cord_rpi > 0.5
    zs = np.flatnonzero(cb.any(axis=(0, 1)))
    grown = ndimage.binary_dilation(cb, iterations=1)
    x, y, z = np.meshgrid(*(np.arange(n) for n in cb.shape), indexing="ij")
    lesion = np.zeros(cb.shape, dtype=np.uint8)
    centres = []
    for frac, radii in ((0.3, (2.5, 3.0, 5.0)), (0.5, (3.0, 3.5, 8.0)), (0.7, (2.0, 2.5, 4.0))):
        zc = int(zs[0] + frac * (zs[-1] - zs[0]))
        xc, yc = np.argwhere(cb[:, :, zc]).mean(axis=0)
        ell = ((x - xc) / radii[0]) ** 2 + ((y - yc) / radii[1]) ** 2 + ((z - zc) / radii[2]) ** 2 <= 1
        lesion[ell & grown] = 1
        centres.append(zc)
    out, _ = _from_rpi(lesion, aff_rpi, "".join(nib.aff2axcodes(aff)))
    return out, centres


# --------------------------------------------------------------------------- baseline


def sct_style_measure(
    cord: np.ndarray, lesion: np.ndarray, affine: np.ndarray, image: np.ndarray | None = None
) -> pd.DataFrame:
    """The REFERENCE.md section 2 definitions, organised like ``sct_analyze_lesion``."""
    from skimage.measure import label

    cord_rpi, aff_rpi = _to_rpi(cord, affine)
    lesion_rpi, _ = _to_rpi(lesion, affine)
    image_rpi = None if image is None else _to_rpi(image, affine)[0].astype(np.float64)
    p_lst = [float(np.linalg.norm(aff_rpi[:3, i])) for i in range(3)]
    im_sc = (cord_rpi > 0.5).astype(np.float64)
    labels = label(lesion_rpi > 0.5, connectivity=2)
    nz = im_sc.shape[2]

    # centerline: per-slice centre of mass, spline fit, derivatives
    z_mean, x_mean, y_mean = [], [], []
    for zz in range(nz):
        pts = np.where(im_sc[:, :, zz])
        if len(pts[0]):
            z_mean.append(zz)
            x_mean.append(np.mean(pts[0]))
            y_mean.append(np.mean(pts[1]))
    k = 3 if len(z_mean) > 3 else 1
    s = (len(z_mean) / nz) ** 2 * 20 * p_lst[2] / 3
    dx = splev(range(nz), splrep(z_mean, x_mean, k=k, s=s), der=1)
    dy = splev(range(nz), splrep(z_mean, y_mean, k=k, s=s), der=1)
    angles_3d, angles_sag = np.zeros(nz), np.zeros(nz)
    for zz in range(nz):
        v = np.array([dx[zz] * p_lst[0], dy[zz] * p_lst[1], p_lst[2]])
        angles_3d[zz] = np.arccos(np.clip(np.dot(v, [0, 0, 1]) / np.linalg.norm(v), -1, 1))
        v = np.array([0, dy[zz] * p_lst[1], p_lst[2]])
        angles_sag[zz] = np.arccos(np.clip(np.dot(v, [0, 0, 1]) / np.linalg.norm(v), -1, 1))

    rows = []
    label_lst = [lab for lab in np.unique(labels) if lab]
    for lesion_label in label_lst:
        im_cur = np.copy(labels == lesion_label)  # full-volume copy per lesion (as SCT)
        comp_n = int(np.sum(im_cur))
        im_cur = im_cur * im_sc  # restrict to the cord, full volume
        row: dict[str, Any] = {"label": lesion_label}
        n_in = int(np.sum(im_cur))
        data = im_cur if n_in else (labels == lesion_label).astype(np.float64)
        row["volume_mm3"] = n_in * p_lst[0] * p_lst[1] * p_lst[2]
        row["outside_cord_volume_mm3"] = (comp_n - n_in) * p_lst[0] * p_lst[1] * p_lst[2]
        lesion_slices = np.unique(np.where(data)[2])
        row["length_mm"] = float(np.sum([p_lst[2] / np.cos(angles_3d[zz]) for zz in lesion_slices]))
        widths = []
        for zz in lesion_slices:
            ys = np.where(data[:, :, zz])[1]
            widths.append((ys.max() - ys.min() + 1) * p_lst[1] * np.cos(angles_sag[zz]))
        row["width_mm"] = float(max(widths))
        area_lst = [np.sum(data[:, :, zz]) * np.cos(angles_3d[zz]) * p_lst[0] * p_lst[1] for zz in range(nz)]
        row["max_equivalent_diameter_mm"] = float(2 * np.sqrt(max(area_lst) / np.pi))
        ratios = {}
        for zz in lesion_slices:
            ratios[zz] = np.sum(im_cur[:, :, zz]) / np.sum(im_sc[:, :, zz]) if n_in else 0.0
        row["max_axial_damage_ratio"] = float(max(ratios.values()))
        row["_centroid_z"] = float(np.mean(np.where(data)[2]))
        if image_rpi is not None and n_in:
            sel = image_rpi[np.where(im_cur)]
            sel = sel[sel != 0]
            row["mean_intensity"], row["std_intensity"] = float(np.mean(sel)), float(np.std(sel))
        else:
            row["mean_intensity"] = row["std_intensity"] = math.nan
        row["_data"] = im_cur
        rows.append(row)

    # interpolated midsagittal slice from the largest lesion
    big = max(rows, key=lambda r: r["volume_mm3"])
    z_c = round(float(np.mean(np.where(big["_data"])[2])))
    xs = [np.mean(np.where(im_sc[:, :, zz])[0]) for zz in range(z_c - 2, z_c + 3) if 0 <= zz < nz and im_sc[:, :, zz].any()]
    x_star = float(np.mean(xs))
    s1, s2 = math.floor(x_star), math.ceil(x_star)
    f = x_star - s1

    for row in rows:
        im_cur = row.pop("_data")
        interp = (1 - f) * im_cur[s1, :, :] + f * im_cur[s2, :, :]
        length_mid, width_mid = 0.0, 0.0
        for zz in range(nz):
            col = interp[:, zz]
            vals = col[col != 0]
            if len(vals):
                length_mid += np.mean(vals) * p_lst[2] / np.cos(angles_sag[zz])
                width_mid = max(width_mid, np.sum(vals) * p_lst[1] * np.cos(angles_sag[zz]))
        row["length_midsagittal_mm"], row["width_midsagittal_mm"] = float(length_mid), float(width_mid)

        # tissue bridges: dict per (sagittal, axial) slice, then a DataFrame (as SCT)
        bridges = {}
        for sagittal_slice in np.unique(np.where(im_cur)[0]):
            for axial_slice in np.unique(np.where(im_cur[sagittal_slice, :, :])[1]):
                lesion_idx = np.where(im_cur[sagittal_slice, :, axial_slice])[0]
                sc_idx = np.where(im_sc[sagittal_slice, :, axial_slice])[0]
                bridges[sagittal_slice, axial_slice] = {
                    "dorsal": max(lesion_idx[0] - sc_idx[0], 0),
                    "ventral": max(sc_idx[-1] - lesion_idx[-1], 0),
                }
        if bridges:
            df = pd.DataFrame(
                list(bridges.values()),
                index=pd.MultiIndex.from_tuples(bridges.keys(), names=["sagittal", "axial"]),
            ).reset_index()
            per_slice = {}
            for sagittal_slice in df["sagittal"].unique():
                tmp = df[df["sagittal"] == sagittal_slice].copy()
                tmp["d_mm"] = tmp.apply(lambda r: r["dorsal"] * p_lst[1] * np.cos(angles_sag[int(r["axial"])]), axis=1)
                tmp["v_mm"] = tmp.apply(lambda r: r["ventral"] * p_lst[1] * np.cos(angles_sag[int(r["axial"])]), axis=1)
                per_slice[sagittal_slice] = (tmp["d_mm"].min(), tmp["v_mm"].min())
            row["_per_slice"] = per_slice
            mid_axial = sorted(df.loc[df["sagittal"].isin([s1, s2]), "axial"].unique())
        else:
            mid_axial = []
        if mid_axial:
            dors, vents = [], []
            for axial_slice in mid_axial:
                # SCT master (PR #5202): a slice without the lesion takes the other slice's value
                b1 = bridges.get((s1, axial_slice)) or bridges[s2, axial_slice]
                b2 = bridges.get((s2, axial_slice)) or bridges[s1, axial_slice]
                c = p_lst[1] * np.cos(angles_sag[int(axial_slice)])
                dors.append(((1 - f) * b1["dorsal"] + f * b2["dorsal"]) * c)
                vents.append(((1 - f) * b1["ventral"] + f * b2["ventral"]) * c)
            dorsal, ventral = min(dors), min(vents)
        else:
            totals = []
            for zz in np.unique(np.where(im_cur)[2]):
                n = []
                for sag in (s1, s2):  # SCT: number of cord voxels on each line, both needed
                    n.append(len(np.where(im_sc[sag, :, zz])[0]))
                if n[0] and n[1]:
                    totals.append(((1 - f) * n[0] + f * n[1]) * p_lst[1] * np.cos(angles_sag[zz]))
            dorsal = ventral = (min(totals) / 2) if totals else math.nan
        row["dorsal_bridge_width_mm"], row["ventral_bridge_width_mm"] = float(dorsal), float(ventral)
        row["total_bridge_width_mm"] = float(dorsal + ventral)

    rows.sort(key=lambda r: -r["_centroid_z"])
    for i, row in enumerate(rows, start=1):
        row["lesion_id"] = i
        row.pop("_centroid_z")
        row.pop("_per_slice", None)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- timing


def timed(fn, repeats: int) -> dict[str, Any]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    q = statistics.quantiles(times, n=4)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "iqr_s": [q[0], q[2]],
        "repeats": repeats,
        "warmup_calls": 1,
        "peak_traced_memory_mib": peak / 2**20,
        "times_s": times,
    }


def machine_info() -> dict[str, Any]:
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
    try:
        import skimage

        sk = skimage.__version__
    except ImportError:
        sk = None
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gib": mem_gib,
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "pandas": pd.__version__,
            "nibabel": nib.__version__,
            "scikit-image": sk,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/morphometry.json"))
    parser.add_argument("--repeats", type=int, default=20, help="timed calls of measure_lesions (>= 20)")
    parser.add_argument("--baseline-repeats", type=int, default=20, help="timed calls of the baseline")
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic cord even if the real scan exists")
    args = parser.parse_args(argv)
    if args.repeats < 20:
        parser.error("--repeats must be >= 20")

    data_root = Path(os.environ.get("COHORT_SCISEG_TEST_DATA", REPO.parent / "shared" / "data"))
    scan = None if args.synthetic else real_scan(data_root)
    cord, image, aff, source = scan if scan is not None else synthetic_scan()
    lesion, lesion_slices = insert_lesions(cord, aff)
    orientation = "nibabel " + "".join(nib.aff2axcodes(aff)) + " = SCT " + orientation_code(aff)
    print(f"scan: {source}; shape {cord.shape} {orientation}, cord {cord.dtype}, image {image.dtype}")

    res = measure_lesions(cord, lesion, aff, image=image)
    base = sct_style_measure(cord, lesion, aff, image)
    got = res.lesions.to_pandas().sort_values("lesion_id").reset_index(drop=True)
    if len(got) != 3 or len(base) != 3:
        msg = f"expected 3 lesions, measure_lesions found {len(got)}, the baseline {len(base)}"
        raise RuntimeError(msg)
    diffs = {
        col: float(np.nanmax(np.abs(got[col].to_numpy(dtype=float) - base[col].to_numpy(dtype=float))))
        for col in COMPARED
    }
    print("max |measure_lesions - baseline| per column:", json.dumps(diffs))

    ours = timed(lambda: measure_lesions(cord, lesion, aff, image=image), args.repeats)
    theirs = timed(lambda: sct_style_measure(cord, lesion, aff, image), args.baseline_repeats)
    ratio = theirs["median_s"] / ours["median_s"]
    print(f"measure_lesions: median {ours['median_s'] * 1e3:.1f} ms over {args.repeats} calls, "
          f"peak traced memory {ours['peak_traced_memory_mib']:.1f} MiB")
    print(f"{BASELINE_NAME}: median {theirs['median_s'] * 1e3:.1f} ms over {args.baseline_repeats} calls, "
          f"peak traced memory {theirs['peak_traced_memory_mib']:.1f} MiB")
    print(f"speed-up (baseline median / measure_lesions median): {ratio:.1f}x")
    print(f"context: {SCT_CONTEXT}")

    result = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "scan": {
            "source": source,
            "shape": list(cord.shape),
            "orientation": orientation,
            "voxel_mm": [float(np.linalg.norm(aff[:3, i])) for i in range(3)],
            "cord_dtype": str(cord.dtype),
            "image_dtype": str(image.dtype),
            "n_lesions": int(res.summary.n_lesions),
            "lesion_voxels": int((lesion > 0).sum()),
            "lesion_centre_rpi_slices": lesion_slices,
        },
        "measure_lesions": ours,
        "baseline": {"name": BASELINE_NAME, **theirs},
        "speedup_median": ratio,
        "max_abs_difference_vs_baseline": diffs,
        "context_not_measured": SCT_CONTEXT,
        "machine": machine_info(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
