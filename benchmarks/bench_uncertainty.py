"""Benchmark of the per-scan uncertainty (:mod:`cohort_sciseg.segment.uncertainty`): its CPU cost and whether it ranks.

``cost``
    A scan's finish stage (label map from the logits, split, post-process, write both
    masks with sidecars: ``SegmentationEngine.write_outputs``) with and without the
    uncertainty, on the same logits, alternating, ``--repeats`` times each (medians);
    and the label-map step alone (``labels`` vs ``labels_with_uncertainty``). Scans: a
    synthetic scan of the cohort below, and the real ``sub-errsm11`` T2w (384 x 216 x 52)
    when ``../shared/data/spine-t2w`` is present (``$COHORT_SCISEG_TEST_DATA`` overrides).
    The extra seconds are also given as a fraction of the scan's whole CPU time (prepare +
    model + finish).
``ranking``
    ``cohort-sciseg run`` with the demo model over a synthetic cohort with manual masks
    (:func:`cohort_sciseg.synth.synthesize_cohort`); on the scans with a manual lesion
    (lesion Dice defined): Spearman's rho of ``lesion_uncertainty`` against the lesion
    Dice with its two-sided p-value (``scipy.stats.spearmanr``), and the "Dice mass"
    ``sum(1 - lesion Dice)`` of the top-k scans by uncertainty (ties by scan id, as
    ``ratings worklist --rank uncertainty``) against the mean over ``--draws`` random
    k-subsets (seeded), with the share of random subsets that fix at least as much, and
    the best possible (the k worst scans), for k in ``--k``.

Run::

    .venv/bin/python benchmarks/bench_uncertainty.py --out benchmarks/results/uncertainty.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ERRSM11 = "spine-t2w/sub-errsm11/anat/sub-errsm11_T2w.nii.gz"


def _data_root() -> Path:
    return Path(os.environ.get("COHORT_SCISEG_TEST_DATA", REPO.parent / "shared" / "data"))


def _seconds(fn: Any, *args: Any, **kwargs: Any) -> float:
    t = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t


def _cost(scan: Path, work: Path, repeats: int, threads: int) -> dict[str, Any]:
    from cohort_sciseg.io import load_nifti
    from cohort_sciseg.segment import SegmentationEngine

    engine = SegmentationEngine(model="demo", device="cpu", threads=threads)
    work.mkdir(parents=True, exist_ok=True)
    volume = load_nifti(scan)
    t = time.perf_counter()
    prepared = engine.prepare(volume)
    prepare_s = time.perf_counter() - t
    predicted = engine.infer(prepared)
    engine.write_outputs(predicted, work / "warm", uncertainty=True)  # warm-up (imports, first allocations)
    plain, full, lab, labu = [], [], [], []
    for i in range(repeats):  # alternating, so that drifts of the machine hit both
        plain.append(_seconds(engine.write_outputs, predicted, work / f"a{i}"))
        full.append(_seconds(engine.write_outputs, predicted, work / f"b{i}", uncertainty=True))
        lab.append(_seconds(engine.labels, predicted))
        labu.append(_seconds(engine.labels_with_uncertainty, predicted))
    a, b = statistics.median(plain), statistics.median(full)
    whole = prepare_s + predicted.seconds + a
    _, u = engine.labels_with_uncertainty(predicted)
    return {
        "shape": [int(n) for n in volume.shape],
        "prepare_s": prepare_s,
        "model_s": predicted.seconds,
        "finish_s_without": a,
        "finish_s_with": b,
        "finish_ratio": b / a,
        "extra_s": b - a,
        "extra_fraction_of_scan": (b - a) / whole,
        "labels_s_without": statistics.median(lab),
        "labels_s_with": statistics.median(labu),
        "labels_ratio": statistics.median(labu) / statistics.median(lab),
        "all_finish_s_without": plain,
        "all_finish_s_with": full,
        "uncertainty": u.as_row(),
    }


def _topk(scans: Any, k: int, draws: int, seed: int) -> dict[str, Any]:
    err = (1.0 - scans["lesion_dice"]).to_numpy()
    order = scans.sort_values(["lesion_uncertainty", "scan_id"], ascending=[False, True], kind="mergesort")
    top = float((1.0 - order["lesion_dice"]).head(k).sum())
    rng = np.random.default_rng(seed)
    rand = np.array([err[rng.choice(len(err), size=k, replace=False)].sum() for _ in range(draws)])
    return {
        "k": k,
        "top_k_dice_mass_fixed": top,
        "random_k_mean": float(rand.mean()),
        "random_k_sd": float(rand.std(ddof=1)),
        "share_of_random_at_least_top": float((rand >= top - 1e-12).mean()),
        "best_possible_k": float(np.sort(err)[::-1][:k].sum()),
        "top_k_scans": list(order["scan_id"].head(k)),
    }


def _ranking(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from scipy.stats import spearmanr

    from cohort_sciseg.batch.runner import RunOptions, run_cohort
    from cohort_sciseg.batch.segmenters import SegmenterSpec
    from cohort_sciseg.io import read_partitioned_table
    from cohort_sciseg.synth import synthesize_cohort

    cohort = synthesize_cohort(work / "cohort", sites=args.sites, subjects_per_site=args.subjects, seed=args.seed)
    spec = SegmenterSpec.make("nnunet", model="demo", device="cpu", threads=args.threads)
    opts = RunOptions(segmenter=spec, workers=args.workers, progress=False, resume=False, report=False)
    t = time.perf_counter()
    summary = run_cohort(list(cohort.dataset_roots), work / "run", opts)
    wall = time.perf_counter() - t
    if not summary.ok:
        raise SystemExit(summary.format())
    table = read_partitioned_table(work / "run" / "tables" / "scans")
    assert table is not None
    df = table.to_pandas()
    df = df[df["status"] == "done"].drop_duplicates("scan_id", keep="last")
    rated = df.dropna(subset=["lesion_dice", "lesion_uncertainty"]).reset_index(drop=True)
    rho, p = spearmanr(rated["lesion_uncertainty"], rated["lesion_dice"])
    rho_v, p_v = spearmanr(rated["lesion_uncertain_volume_mm3"], rated["lesion_dice"])
    cord = df.dropna(subset=["cord_dice", "cord_uncertainty"])
    rho_c, p_c = spearmanr(cord["cord_uncertainty"], cord["cord_dice"])
    return {
        "cohort": {"sites": args.sites, "subjects_per_site": args.subjects, "seed": args.seed,
                   "n_scans": len(df), "n_with_lesion_dice": len(rated)},
        "run_wall_s": wall,
        "spearman_lesion_uncertainty_vs_lesion_dice": {"rho": float(rho), "p": float(p), "n": len(rated)},
        "spearman_lesion_uncertain_volume_vs_lesion_dice": {"rho": float(rho_v), "p": float(p_v)},
        "spearman_cord_uncertainty_vs_cord_dice": {"rho": float(rho_c), "p": float(p_c), "n": len(cord)},
        "dice_mass": [_topk(rated, k, args.draws, args.seed) for k in args.k],
        "per_scan": rated[["scan_id", "lesion_uncertainty", "lesion_uncertain_volume_mm3", "lesion_dice",
                           "cord_uncertainty", "cord_dice"]].to_dict("records"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=3)
    ap.add_argument("--subjects", type=int, default=6, help="subjects per site")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per engine")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--draws", type=int, default=10000, help="random k-subsets")
    ap.add_argument("--k", type=int, nargs="+", default=[3, 5])
    ap.add_argument("--skip-cost", action="store_true")
    ap.add_argument("--skip-ranking", action="store_true")
    ap.add_argument("--workdir", type=Path, help="default: a temporary folder")
    ap.add_argument("--out", type=Path, help="JSON results (default: print)")
    args = ap.parse_args(argv)
    import torch

    results: dict[str, Any] = {
        "benchmark": "uncertainty: extra CPU cost per scan, and the ranking's informativeness on a synthetic cohort",
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/bench_uncertainty.py",
                                                     *(sys.argv[1:] if argv is None else argv)]),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__},
        "model": "bundled demo model, device cpu",
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if not args.skip_ranking:
            results["ranking"] = _ranking(work, args)
        if not args.skip_cost:
            from cohort_sciseg.discover import find_scans

            rows = {}
            roots = sorted((work / "cohort").glob("site*"))  # the ranking's cohort, when made (--workdir)
            if roots:
                first = find_scans(roots).scans[0]
                rows[f"synthetic {Path(first.image_path).name}"] = Path(first.image_path)
            real = _data_root() / ERRSM11
            if real.is_file():
                rows["errsm11 384x216x52 (real)"] = real
            results["cost"] = {name: _cost(path, work / "cost", args.repeats, args.threads)
                               for name, path in rows.items()}
    text = json.dumps(results, indent=2, default=float)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
