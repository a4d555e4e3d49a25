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
    the best possible (the k worst scans), for k in ``--k``. One ranking per cohort of
    ``--quality-spread`` (0: every image at its site's protocol, the demo model's errors
    small and even; 0.7: image qualities drawn in [0.3, 1], faint lesions in noisy images,
    errors uneven as in real cohorts). With ``--disagreement`` each cohort is run again with
    ``tta=true disagreement=true`` and ranked by ``lesion_disagreement`` too.
``cost_disagreement`` (with ``--disagreement``)
    The network stage of the synthetic scan: plain, nnU-Net's 8-mirroring ensemble, and
    the same 8 members one by one with their disagreement (medians of ``--repeats``).

Run::

    .venv/bin/python benchmarks/bench_uncertainty.py --disagreement --out benchmarks/results/uncertainty.json
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


def _members_cost(scan: Path, repeats: int, threads: int) -> dict[str, Any]:
    """Network stage with 8 test-time mirrorings: nnU-Net's ensemble vs the members one by one (same evaluations)."""
    from cohort_sciseg.io import load_nifti
    from cohort_sciseg.segment import SegmentationEngine

    ensemble = SegmentationEngine(model="demo", device="cpu", threads=threads, tta=True)
    members = SegmentationEngine(model="demo", device="cpu", threads=threads, tta=True, disagreement=True)
    plain = SegmentationEngine(model="demo", device="cpu", threads=threads)
    prepared = plain.prepare(load_nifti(scan))
    members.infer(prepared)  # warm-up
    times: dict[str, list[float]] = {"plain": [], "tta_ensemble": [], "tta_members": []}
    for _ in range(repeats):
        for name, engine in (("plain", plain), ("tta_ensemble", ensemble), ("tta_members", members)):
            times[name].append(engine.infer(prepared).seconds)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"infer_s_median": med, "members_over_ensemble": med["tta_members"] / med["tta_ensemble"],
            "members_over_plain": med["tta_members"] / med["plain"], "all_s": times}


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


def _run(cohort: Any, out: Path, args: argparse.Namespace, **options: Any) -> tuple[Any, float]:
    from cohort_sciseg.batch.runner import RunOptions, run_cohort
    from cohort_sciseg.batch.segmenters import SegmenterSpec
    from cohort_sciseg.io import read_partitioned_table

    spec = SegmenterSpec.make("nnunet", model="demo", device="cpu", threads=args.threads, **options)
    opts = RunOptions(segmenter=spec, workers=args.workers, progress=False, resume=False, report=False)
    t = time.perf_counter()
    summary = run_cohort(list(cohort.dataset_roots), out, opts)
    wall = time.perf_counter() - t
    if not summary.ok:
        raise SystemExit(summary.format())
    table = read_partitioned_table(out / "tables" / "scans")
    assert table is not None
    df = table.to_pandas()
    return df[df["status"] == "done"].drop_duplicates("scan_id", keep="last"), wall


def _rho(df: Any, by: str, of: str = "lesion_dice") -> dict[str, Any]:
    from scipy.stats import spearmanr

    rated = df.dropna(subset=[of, by])
    rho, p = spearmanr(rated[by], rated[of])
    return {"rho": float(rho), "p": float(p), "n": len(rated)}


def _measures(df: Any, by: str, args: argparse.Namespace) -> dict[str, Any]:
    rated = df.dropna(subset=["lesion_dice", by]).reset_index(drop=True)
    return {
        f"spearman_{by}_vs_lesion_dice": _rho(df, by),
        "dice_mass": [_topk(rated.assign(lesion_uncertainty=rated[by]), k, args.draws, args.seed) for k in args.k],
    }


def _ranking(work: Path, args: argparse.Namespace, spread: float) -> dict[str, Any]:
    from cohort_sciseg.synth import synthesize_cohort

    cohort = synthesize_cohort(work / "cohort", sites=args.sites, subjects_per_site=args.subjects, seed=args.seed,
                               quality_spread=spread)
    df, wall = _run(cohort, work / "run", args)
    rated = df.dropna(subset=["lesion_dice", "lesion_uncertainty"]).reset_index(drop=True)
    out: dict[str, Any] = {
        "cohort": {"sites": args.sites, "subjects_per_site": args.subjects, "seed": args.seed,
                   "quality_spread": spread, "n_scans": len(df), "n_with_lesion_dice": len(rated)},
        "run_wall_s": wall,
        "spearman_lesion_uncertainty_vs_lesion_dice": _rho(df, "lesion_uncertainty"),
        "spearman_lesion_uncertain_volume_vs_lesion_dice": _rho(df, "lesion_uncertain_volume_mm3"),
        "spearman_cord_uncertainty_vs_cord_dice": _rho(df, "cord_uncertainty", "cord_dice"),
        "dice_mass": [_topk(rated, k, args.draws, args.seed) for k in args.k],
    }
    columns = ["scan_id", "lesion_uncertainty", "lesion_uncertain_volume_mm3", "lesion_dice", "cord_uncertainty",
               "cord_dice"]
    if args.disagreement:  # the same cohort with the 8 test-time mirrorings as the ensemble's members
        dis, dis_wall = _run(cohort, work / "run_members", args, tta=True, disagreement=True)
        out["members"] = {
            "settings": "tta=true disagreement=true (1 fold x 8 mirrorings)",
            "run_wall_s": dis_wall,
            "wall_ratio_to_plain": dis_wall / wall,
            "lesion_disagreement": _measures(dis, "lesion_disagreement", args),
            "lesion_uncertainty_of_the_mirrored_ensemble": _measures(dis, "lesion_uncertainty", args),
            "spearman_cord_disagreement_vs_cord_dice": _rho(dis, "cord_disagreement", "cord_dice"),
        }
        both = ["lesion_disagreement", "cord_disagreement"]  # null in the plain run: taken from the members' run
        df = df.drop(columns=both).merge(dis[["scan_id", *both]], on="scan_id", how="left")
        columns += ["lesion_disagreement", "cord_disagreement"]
    out["per_scan"] = df.dropna(subset=["lesion_dice"])[columns].to_dict("records")
    return out


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
    ap.add_argument("--quality-spread", type=float, nargs="+", default=[0.0, 0.7],
                    help="one ranking per cohort: synthesize_cohort(quality_spread=S) (0: every image at its "
                    "site's protocol; 0.7: image qualities in [0.3, 1])")
    ap.add_argument("--disagreement", action="store_true",
                    help="also run each cohort with tta=true disagreement=true (8x the network time) and rank by "
                    "lesion_disagreement")
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
            results["ranking"] = {f"quality_spread={spread:g}": _ranking(work / f"spread{spread:g}", args, spread)
                                  for spread in args.quality_spread}
        if not args.skip_cost:
            from cohort_sciseg.discover import find_scans

            rows = {}
            roots = sorted((work / "spread0" / "cohort").glob("site*"))  # the ranking's cohort, when made
            if roots:
                first = find_scans(roots).scans[0]
                rows[f"synthetic {Path(first.image_path).name}"] = Path(first.image_path)
            real = _data_root() / ERRSM11
            if real.is_file():
                rows["errsm11 384x216x52 (real)"] = real
            results["cost"] = {name: _cost(path, work / "cost", args.repeats, args.threads)
                               for name, path in rows.items()}
            if args.disagreement and roots:
                first = next(iter(rows.values()))
                results["cost_disagreement"] = {f"synthetic {first.name}": _members_cost(first, args.repeats,
                                                                                         args.threads)}
    text = json.dumps(results, indent=2, default=float)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
