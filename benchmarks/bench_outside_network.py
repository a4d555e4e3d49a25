"""Per-scan CPU seconds outside the network: one scan's task minus the model, serial, old code vs new.

Every scan of the demo cohort (3 sites x 4 subjects, 14 scans, manual masks: validation and the QC page
run) goes through ``process_scan`` in one process with the bundled model on the CPU (one thread), after
a warm-up scan that loads the model. The figure per scan is ``seconds_total - seconds_segment`` of its
``tables/scans`` row: reading, preprocessing, writing, measuring, validating, drawing. With
``--baseline-src`` the same is done with the package of another checkout (e.g. a git worktree of the
commit before a change), the two alternating ``--rounds`` times, each in a fresh process (no worker
pool, no contention: the figure the in-cluster timing of ``bench_resume.py`` is too noisy for).

    python benchmarks/bench_outside_network.py --baseline-src ../base --out benchmarks/results/outside_network.json
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
from pathlib import Path

_CHILD = r"""
import json, statistics, sys, tempfile
from pathlib import Path
import cohort_sciseg
from cohort_sciseg.batch.segmenters import SegmenterSpec, get_segmenter
from cohort_sciseg.batch.store import RecordStore
from cohort_sciseg.batch.tasks import TaskConfig, process_scan
from cohort_sciseg.discover import find_scans

spec = SegmenterSpec.make("nnunet", device="cpu", threads=1)
d = get_segmenter(spec).describe()
scans = find_scans([Path(p) for p in sys.argv[1:]]).scans
warm = TaskConfig(out_dir=tempfile.mkdtemp(), segmenter=spec, run_id="warm-up")
process_scan(scans[0], warm)  # loads the model once (not counted)
out = tempfile.mkdtemp()
config = TaskConfig(out_dir=out, segmenter=spec, model_checksum=str(d.get("checksum", "")),
                    segmenter_name=str(d.get("name", "")), run_id="bench")
store = RecordStore(out)
outside = []
for scan in scans:
    if process_scan(scan, config).status != "done":
        raise SystemExit(f"{scan.scan_id} not done")
    row = store.read(store.current(scan.site, scan.scan_id), "scans").to_pylist()[0]
    outside.append(row["seconds_total"] - row["seconds_segment"])
print(json.dumps({"package": cohort_sciseg.__file__, "outside_s": outside}))
"""


def one_pass(sites: list[Path], src: Path) -> dict:
    """The per-scan seconds outside the network of the package in ``src``, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, *map(str, sites)],
        capture_output=True, text=True, env=env, cwd=tempfile.gettempdir(), check=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if not result["package"].startswith(str(src)):
        msg = f"the child imported {result['package']}, not the package of {src}"
        raise RuntimeError(msg)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--baseline-src", type=Path, help="checkout of the code to compare with (its repository root)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    from cohort_sciseg.synth import synthesize_cohort

    here = Path(__file__).resolve().parents[1]
    versions = {"current": here} | ({"baseline": args.baseline_src.resolve()} if args.baseline_src else {})
    medians: dict[str, list[float]] = {k: [] for k in versions}
    means: dict[str, list[float]] = {k: [] for k in versions}
    with tempfile.TemporaryDirectory() as tmp:
        cohort = synthesize_cohort(Path(tmp) / "cohort", sites=3, subjects_per_site=4, seed=0)
        sites = [Path(r) for r in cohort.dataset_roots]
        for _ in range(args.rounds):
            for name, src in versions.items():
                outside = one_pass(sites, src)["outside_s"]
                medians[name].append(statistics.median(outside))
                means[name].append(statistics.mean(outside))
                print(f"{name}: median {medians[name][-1]:.3f} s, mean {means[name][-1]:.3f} s "
                      f"per scan outside the network ({len(outside)} scans)", flush=True)
    result: dict = {
        "command": "python " + " ".join(sys.argv),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "cohort": "synthesize_cohort(sites=3, subjects_per_site=4, seed=0): 14 scans with manual masks",
        "what": "seconds_total - seconds_segment per scan, serial process_scan, bundled model on CPU (1 thread)",
        "median_s_by_round": medians,
        "mean_s_by_round": means,
    }
    if args.baseline_src:
        ratio = statistics.median(medians["baseline"]) / statistics.median(medians["current"])
        result["ratio_baseline_over_current_median"] = ratio
        print(f"baseline / current (median of the rounds' medians): {ratio:.2f}x")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
