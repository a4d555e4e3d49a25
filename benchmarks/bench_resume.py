"""Benchmark of a ``--resume`` with nothing to do (issue 16), against the full run it follows.

The demo cohort (3 synthetic sites, the bundled demo model, a LocalCluster) is run once in full,
then ``cohort-sciseg run`` is called again ``--repeats`` times on the same folders, each a fresh
process as a user would start it (``--resume`` is the default). Measured in the same invocation:

``full``
    the first run (baseline): wall time of the process.
``outside the network``
    per scan, the task's seconds minus the model's (``tables/scans``: ``seconds_total -
    seconds_segment``): reading, preparing, resampling back, writing, measuring, validating.
``noop``
    each no-op resume: wall time of the process and the phases of its run record
    (``logs/runs/run-*.json``): discovery, the client's resume check, whether a cluster
    started, the validation study (kept when its inputs are unchanged), the report.

Run::

    .venv/bin/python benchmarks/bench_resume.py --out benchmarks/results/resume.json
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


def run_once(sites: list[Path], out: Path, src: Path | None = None) -> tuple[float, dict]:
    """One ``cohort-sciseg run`` process (of the checkout ``src`` when given); its wall time and run record."""
    code = "import sys; from cohort_sciseg.cli import main; sys.exit(main())"
    if src is not None:  # ahead of the editable install's import hook
        code = (f"import sys; sys.path.insert(0, {str(src)!r}); "
                "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; " + code)
    env = dict(os.environ)
    t0 = time.perf_counter()
    cmd = [sys.executable, "-c", code, "run", *map(str, sites), "-o", str(out), "--no-progress"]
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    record = json.loads(sorted((out / "logs" / "runs").glob("run-*.json"))[-1].read_text())
    return wall, record


def _outside_network(out: Path) -> dict[str, float]:
    """Median and mean over scans of the task's seconds minus the model's (``tables/scans``)."""
    import pandas as pd

    scans = pd.read_parquet(out / "tables" / "scans")
    outside = scans["seconds_total"] - scans["seconds_segment"]
    return {"median_s": float(outside.median()), "mean_s": float(outside.mean()), "scans": len(scans)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--subjects-per-site", type=int, default=4)
    p.add_argument("--out", type=Path)
    p.add_argument("--baseline-src", type=Path,
                   help="also time no-op resumes with the package of this checkout (e.g. a git worktree of "
                        "the commit before the change), on the same run folder")
    args = p.parse_args()
    from cohort_sciseg.synth import synthesize_cohort

    with tempfile.TemporaryDirectory() as tmp:
        cohort = synthesize_cohort(Path(tmp) / "cohort", sites=3, subjects_per_site=args.subjects_per_site, seed=0)
        sites = [Path(r) for r in cohort.dataset_roots]
        out = Path(tmp) / "derivatives"
        full_s, full = run_once(sites, out)
        outside = _outside_network(out)
        noop = [run_once(sites, out) for _ in range(args.repeats)]
        before = [run_once(sites, out, args.baseline_src) for _ in range(args.repeats)] if args.baseline_src else []
        outside_before = None
        if args.baseline_src:  # a full run of the baseline too: per-scan CPU seconds outside the network
            run_once(sites, Path(tmp) / "baseline", args.baseline_src)
            outside_before = _outside_network(Path(tmp) / "baseline")
    walls = [w for w, _ in noop]
    result = {
        "command": "python " + " ".join(sys.argv),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "cohort": {"sites": 3, "subjects_per_site": args.subjects_per_site, "scans": full["n_scans"]},
        "full_run": {"wall_s": full_s, "phases": full["phases"], "counts": full["counts"]},
        "noop_resume": {
            "wall_s": walls,
            "median_wall_s": statistics.median(walls),
            "phases_last": noop[-1][1]["phases"],
            "cluster_started": noop[-1][1]["cluster"].get("started"),
            "counts": noop[-1][1]["counts"],
        },
        "ratio_noop_over_full": statistics.median(walls) / full_s,
        "per_scan_seconds_outside_network": outside,
    }
    if before:
        b = [w for w, _ in before]
        result["noop_resume_baseline_src"] = {
            "src": str(args.baseline_src), "wall_s": b, "median_wall_s": statistics.median(b),
            "phases_last": before[-1][1]["phases"],
        }
        result["ratio_noop_before_over_after"] = statistics.median(b) / statistics.median(walls)
        result["per_scan_seconds_outside_network_baseline_src"] = outside_before
        print(f"baseline ({args.baseline_src}) no-op resume median {statistics.median(b):.2f} s: "
              f"{result['ratio_noop_before_over_after']:.1f}x slower")
    print(f"full run {full_s:.1f} s; no-op resume median {statistics.median(walls):.2f} s over {len(walls)} "
          f"(cluster started: {result['noop_resume']['cluster_started']}); ratio {result['ratio_noop_over_full']:.3f}")
    print("no-op phases:", json.dumps(result["noop_resume"]["phases_last"]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
