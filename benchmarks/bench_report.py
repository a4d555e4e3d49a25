"""Benchmark of the HTML QC report (:mod:`cohort_sciseg.report.site`).

Measured in one run:

``index`` (``--n`` scans, default 10,000)
    Run tables of ``--n`` synthetic scans (3 sites, 1% failed, lesion measures
    drawn at random) are written as a run's hive-partitioned Parquet tables; then
    :func:`build_report` with ``render_missing=False`` (the scan pages are the
    workers' job): its wall time, per scan, and the size of ``data/index.js``.
``browser``
    The index opened in a real headless Chromium (Debian's, driven by
    Playwright), ``--repeats`` times in fresh contexts: time to interactive =
    the page's own ``performance.now()`` when the table is rendered and its
    handlers attached (``window.COHORT_SCISEG_READY``: milliseconds since
    navigation start); the ``load`` event; then the latency of a search, a site
    filter and a sort (synchronous re-render, timed in the page). Goal: time to
    interactive < 1.5 s at 10,000 scans.
``scan_pages``
    :func:`write_scan_page` (reportlets + page) on the scans of a small synthetic
    cohort (manual masks as the prediction): seconds per scan, serial; and on the
    real scans of ``--data`` (``../shared/data/spine-t2w``) that have a cord mask
    (manual or SCIsegV2 masks as the prediction), median of 3 per scan.
``adding scans`` vs the baseline
    ``--added`` scans join a report of ``--n`` scans. cohort-sciseg: each new
    scan's page is written by its worker and the index is rebuilt once at the
    end (one :func:`build_report`). Baseline, **SCT's QC** (``sct_qc``): after
    each scan, the index of all entries so far is rebuilt and rewritten (what
    SCT does under a lock per entry, O(N) per scan, O(N^2) per cohort; SCT issue
    #5275) -- emulated with the same index writer, called once per added scan.
    Both add the same scan pages; the ratio compares the index work.

Run: ``python benchmarks/bench_report.py --out benchmarks/results/report.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cohort_sciseg.batch.tasks import TABLE_SCHEMAS
from cohort_sciseg.report import build_report, write_scan_page

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


def synthetic_tables(out: Path, n: int, *, start: int = 0, seed: int = 0) -> None:
    """Write a run's scans/failures tables for scans ``start .. start+n-1`` (one part file per site)."""
    rng = np.random.default_rng(seed + start)
    schema = TABLE_SCHEMAS["scans"]
    sites = np.array(["site1", "site2", "site3"])[rng.integers(0, 3, n)]
    ids = np.arange(start, start + n)
    failed = rng.random(n) < 0.01
    rows = []
    for i, site, bad in zip(ids, sites, failed, strict=True):
        sub = f"{i:05d}"
        nles = int(rng.integers(0, 4))
        rows.append({
            "scan_id": f"site-{site}_sub-{sub}_T2w", "site": site, "sub": sub, "ses": None, "acq": "sag",
            "run": None, "image_path": f"/data/{site}/sub-{sub}/anat/sub-{sub}_T2w.nii.gz", "orientation": "PSR",
            "acquisition_plane": "sagittal", "status": "failed" if bad else "done", "key": f"{i:024x}",
            "segmenter": "nnunet", "model_checksum": "0" * 12,
            "cord_seg_path": f"{site}/sub-{sub}/anat/x_sc_seg.nii.gz",
            "lesion_seg_path": f"{site}/sub-{sub}/anat/x_lesion_seg.nii.gz",
            "n_lesions": None if bad else nles,
            "total_volume_mm3": None if bad else float(rng.gamma(2.0, 300.0)) * (nles > 0),
            "total_outside_cord_volume_mm3": None if bad else float(rng.random() < 0.02) * 5.0,
            "total_length_mm": None if bad else float(rng.gamma(2.0, 15.0)),
            "max_axial_damage_ratio": None if bad else float(rng.random()),
            "cord_volume_mm3": None if bad else float(rng.normal(6000, 800)),
            "has_manual_masks": bool(rng.random() < 0.3),
            "cord_dice": None if bad else float(rng.uniform(0.8, 0.97)),
            "lesion_dice": None if bad else float(rng.uniform(0.3, 0.9)),
            "seconds_segment": 2.0, "seconds_total": 3.0, "attempt": 1,
        })
    table = pa.Table.from_pylist(rows, schema=schema)
    df = table.to_pandas()
    for site, part in df.groupby("site"):
        folder = out / "tables" / "scans" / f"site={site}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(part.drop(columns="site"), preserve_index=False),
                       folder / f"part-{start}.parquet")
    fails = df[df.status == "failed"]
    if len(fails):
        ftab = pa.Table.from_pylist([{
            "scan_id": r.scan_id, "site": r.site, "stage": "segment", "error_type": "NiftiError",
            "message": f"scan {r.scan_id!r}: gzip stream truncated. Fix: re-export the image", "traceback": "",
            "path": r.image_path, "attempt": 1, "timestamp": "2026-11-24T00:00:00Z",
        } for r in fails.itertuples()], schema=TABLE_SCHEMAS["failures"])
        fdf = ftab.to_pandas()
        for site, part in fdf.groupby("site"):
            folder = out / "tables" / "failures" / f"site={site}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pandas(part.drop(columns="site"), preserve_index=False),
                           folder / f"part-{start}.parquet")


def browser_timings(index: Path, repeats: int, chromium: str) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    tti, load, search, site, sort = [], [], [], [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        for _ in range(repeats + 1):  # the first opening warms the browser's caches: dropped
            ctx = browser.new_context(viewport={"width": 1400, "height": 900})
            page = ctx.new_page()
            page.goto(index.resolve().as_uri(), wait_until="load")
            page.wait_for_selector("body[data-ready='1']")
            ready = page.evaluate("window.COHORT_SCISEG_READY")
            loaded = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
            timed = page.evaluate("""() => {
                const t = (f) => { const t0 = performance.now(); f(); return performance.now() - t0; };
                const q = document.getElementById('q'), s = document.getElementById('f-site');
                const a = t(() => { q.value = 'sub-01'; q.dispatchEvent(new Event('input')); });
                q.value = ''; q.dispatchEvent(new Event('input'));
                const b = t(() => { s.value = 'site2'; s.dispatchEvent(new Event('change')); });
                s.value = ''; s.dispatchEvent(new Event('change'));
                const c = t(() => document.querySelector('th[data-key=total_volume_mm3]').click());
                return [a, b, c, document.getElementById('count').textContent];
            }""")
            tti.append(ready)
            load.append(loaded)
            search.append(timed[0])
            site.append(timed[1])
            sort.append(timed[2])
            ctx.close()
        browser.close()

    def med(v: list[float]) -> float:
        return round(statistics.median(v[1:]), 1)

    return {
        "time_to_interactive_ms": med(tti), "time_to_interactive_ms_all": [round(x, 1) for x in tti[1:]],
        "load_event_ms": med(load), "search_ms": med(search), "site_filter_ms": med(site), "sort_ms": med(sort),
        "count_text": timed[3], "goal_time_to_interactive_ms": 1500,
    }


def scan_page_timings(work: Path, n_subjects: int) -> dict[str, Any]:
    from cohort_sciseg.discover import find_scans
    from cohort_sciseg.synth import synthesize_cohort

    cohort = synthesize_cohort(work / "cohort", sites=3, subjects_per_site=n_subjects, seed=3)
    scans = find_scans([Path(r) for r in cohort.dataset_roots]).scans
    out = work / "pages"
    times, sizes = [], []
    for s in scans:
        row = {"scan_id": s.scan_id, "site": s.site, "sub": s.sub, "ses": s.ses, "status": "done"}
        t = time.perf_counter()
        page = write_scan_page(out, row, key="k" * 24, image_path=s.image_path, cord_path=s.cord_mask_path,
                               lesion_path=s.lesion_mask_path)
        times.append(time.perf_counter() - t)
        folder = page.with_suffix("")
        sizes.append(sum(p.stat().st_size for p in folder.glob("*.png")) + page.stat().st_size)
    return {
        "scans": len(scans), "seconds_per_scan_median": round(statistics.median(times), 3),
        "seconds_per_scan_max": round(max(times), 3), "bytes_per_scan_median": int(statistics.median(sizes)),
        "shapes": sorted({str(s.shape) for s in scans}),
    }


def real_scan_pages(data: Path, work: Path) -> dict[str, Any]:
    """``write_scan_page`` on the real scans of ``spine-t2w`` that have a cord mask (median of 3 each)."""
    from cohort_sciseg.discover import find_scans

    scans = [s for s in find_scans([data]).scans if s.cord_mask_path]
    out: dict[str, Any] = {}
    for s in scans:
        row = {"scan_id": s.scan_id, "site": s.site, "sub": s.sub, "ses": s.ses, "status": "done"}
        times = []
        for _ in range(3):
            t = time.perf_counter()
            page = write_scan_page(work / "real", row, key="k" * 24, image_path=s.image_path,
                                   cord_path=s.cord_mask_path, lesion_path=s.lesion_mask_path)
            times.append(time.perf_counter() - t)
        out[s.sub] = {
            "shape": list(s.shape), "lesion_mask": bool(s.lesion_mask_path),
            "seconds_median": round(statistics.median(times), 3),
            "png_bytes": sum(p.stat().st_size for p in page.with_suffix("").glob("*.png")),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--added", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--subjects-per-site", type=int, default=4)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "spine-t2w",
                    help="real BIDS dataset for the scan-page timings (skipped when absent)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average": os.getloadavg()},
        "n_scans": args.n,
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run = work / "run"
        synthetic_tables(run, args.n)
        t = time.perf_counter()
        built = build_report(run, render_missing=False)
        wall = time.perf_counter() - t
        results["index"] = {
            "build_s": round(wall, 3), "build_ms_per_scan": round(1000 * wall / args.n, 4),
            "index_js_bytes": (run / "report" / "data" / "index.js").stat().st_size,
            "n_failures": built.n_failures,
        }
        print("index", results["index"], flush=True)
        if Path(args.chromium).is_file():
            results["browser"] = browser_timings(built.path, args.repeats, args.chromium)
            print("browser", results["browser"], flush=True)
        # adding scans: one index rebuild (ours) vs one per added scan (SCT's QC)
        synthetic_tables(run, args.added, start=args.n)
        t = time.perf_counter()
        build_report(run, render_missing=False)
        ours = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(args.added):
            build_report(run, render_missing=False)
        baseline = time.perf_counter() - t
        results["adding_scans"] = {
            "added": args.added, "to": args.n, "cohort_sciseg_index_s": round(ours, 3),
            "baseline_sct_qc_rewrite_per_scan_s": round(baseline, 3), "ratio": round(baseline / ours, 1),
        }
        print("adding", results["adding_scans"], flush=True)
        results["scan_pages"] = scan_page_timings(work, args.subjects_per_site)
        print("scan pages", results["scan_pages"], flush=True)
        if (args.data / "dataset_description.json").is_file():
            results["real_scan_pages"] = real_scan_pages(args.data, work)
            print("real scan pages", results["real_scan_pages"], flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
