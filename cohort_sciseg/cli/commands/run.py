"""``run``, ``demo`` and ``report``: the whole pipeline over a cohort on Dask, and its QC report."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cohort_sciseg.cli._common import EXIT_OK, EXIT_PROBLEMS, describe_cohort
from cohort_sciseg.errors import CohortSciSegError

if TYPE_CHECKING:
    from cohort_sciseg.batch.segmenters import SegmenterSpec
    from cohort_sciseg.io import RunLayout

__all__ = ["DemoCommand", "ReportCommand", "RunCommand"]


def _segmenter_spec(plugin: str, model: str | None, options: list[str] | None) -> SegmenterSpec:
    """The segmenter of ``run``: a plugin name and its ``KEY=VALUE`` options, checked.

    Unknown option names and bad values are refused here, before any scan is
    discovered or any folder is made (:func:`~cohort_sciseg.batch.segmenters.check_options`).
    """
    from cohort_sciseg.batch.segmenters import SegmenterSpec, check_options

    opts: dict[str, object] = {}
    for item in options or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CohortSciSegError(f"--segmenter-option {item!r}: expected KEY=VALUE")
        if key in opts and opts[key] != _literal(value):
            raise CohortSciSegError(f"--segmenter-option {key} given twice with different values "
                                    f"({opts[key]!r}, {_literal(value)!r}): keep one")
        opts[key] = _literal(value)
    if model is not None:
        opts["model"] = model
    if isinstance(opts.get("model"), str) and str(opts["model"]).startswith("sct:"):
        opts["model"] = _pinned_sct_model(str(opts["model"]))
    spec = SegmenterSpec.make(plugin, **opts)
    check_options(spec)
    return spec


def _pinned_sct_model(spec: str) -> str:
    """``sct:TASK`` resolved here, once, into ``sct:SCT_FOLDER:TASK``.

    The workers (other machines, batch jobs without SCT's shell set-up) then load
    the model the client found, whatever their ``SCT_DIR`` and ``PATH``; a missing
    SCT or model is reported before any scan is discovered.
    """
    from cohort_sciseg.segment.sct import resolve_sct_model

    found = resolve_sct_model(spec)
    return f"sct:{found.sct_dir}:{found.task or found.model_name}"


def _literal(text: str) -> object:
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


@dataclass
class RunCommand:
    """``cohort-sciseg run BIDS_DIR... -o OUT``: the whole pipeline over a cohort on Dask."""

    bids_dirs: list[Path]
    output: Path
    model: str | None = None
    segmenter: str = "nnunet"
    segmenter_options: list[str] | None = None
    participant_labels: list[str] | None = None
    scheduler: str | None = None
    cluster: Path | None = None
    workers: int | None = None
    gpus: str = "auto"
    stages: str = "auto"
    resume: bool = True
    retries: int = 2
    units: str = "mm"
    progress: bool = True
    exclude_ratings: Path | None = None
    report: bool = True
    longitudinal: bool = True
    resampling: str | None = None
    gpu_worker_threads: int | None = None
    strict: bool = False
    mask_names: str = "bids"

    def run_layout(self) -> RunLayout:
        """The run folder (the CLI appends an internal error's traceback to this run's log there)."""
        from cohort_sciseg.io import RunLayout

        return RunLayout(self.output)

    def run(self, out: TextIO | None = None) -> int:
        out = out or sys.stdout
        from cohort_sciseg.batch.runner import RunOptions, run_cohort

        options_given = list(self.segmenter_options or [])
        if self.resampling is not None:
            options_given.append(f"resampling={self.resampling}")
        spec = _segmenter_spec(self.segmenter, self.model, options_given)
        exclude: tuple[str, ...] = ()
        if self.exclude_ratings is not None:
            from cohort_sciseg.report.ratings import excluded_scans

            exclude = tuple(sorted(excluded_scans(self.exclude_ratings)))
            out.write(f"{len(exclude)} scan(s) rated fail or artifact in {self.exclude_ratings}: left out of this run\n")
        options = RunOptions(
            segmenter=spec,
            participant_labels=tuple(self.participant_labels) if self.participant_labels else None,
            scheduler=self.scheduler,
            cluster=str(self.cluster) if self.cluster else None,
            workers=self.workers,
            gpus=self.gpus if self.gpus == "auto" else int(self.gpus),
            stages=self.stages,
            resume=self.resume,
            retries=self.retries,
            units=self.units,
            progress=self.progress,
            exclude_scans=exclude,
            report=self.report,
            longitudinal=self.longitudinal,
            gpu_worker_threads="auto" if self.gpu_worker_threads is None else self.gpu_worker_threads,
            strict=self.strict,
            mask_naming=self.mask_names,
        )
        summary = run_cohort(self.bids_dirs, self.output, options, stream=sys.stderr if self.progress else None)
        out.write(summary.format() + "\n")
        return EXIT_OK if summary.ok else EXIT_PROBLEMS


@dataclass
class ReportCommand:
    """``cohort-sciseg report OUT_DIR``: build or update the run's HTML QC report.

    Makes the pages of done scans that have none (or a stale one) and rewrites the
    index, failures and cohort pages; current scan pages are left untouched.
    """

    out_dir: Path
    threads: int | None = None

    def run(self, out: TextIO | None = None) -> int:
        out = out or sys.stdout
        from cohort_sciseg.report import build_report

        built = build_report(self.out_dir, threads=self.threads)
        out.write(
            f"QC report of {built.n_scans} scan(s) ({built.n_failures} failure(s)) in {built.seconds:.1f} s: "
            f"{built.pages_written} scan page(s) made, {built.pages_current} already current\n"
        )
        for err in built.page_errors:
            out.write(f"  page not made: {err}\n")
        out.write(f"open in a browser: {built.path.resolve().as_uri()}\n")
        return EXIT_OK if not built.page_errors else EXIT_PROBLEMS


@dataclass
class DemoCommand:
    """``cohort-sciseg demo``: the embedded default job, end to end on a synthetic cohort.

    Synthesizes a 3-site cohort with manual masks and clinical scores (unless OUT
    already holds one), runs it through segmentation with the bundled model,
    morphometry and validation on a LocalCluster, and prints where everything is.
    A second call resumes: nothing already computed is redone.
    """

    out: Path = field(default_factory=lambda: Path("demo"))
    sites: int = 3
    subjects_per_site: int = 4
    seed: int = 0
    segmenter: str = "nnunet"
    segmenter_options: list[str] | None = None
    workers: int | None = None
    progress: bool = True

    def run_layout(self) -> RunLayout:
        """The run folder inside the demo's folder (the CLI appends an internal error's traceback to its log)."""
        from cohort_sciseg.io import RunLayout

        return RunLayout(self.out / "derivatives")

    def run(self, out: TextIO | None = None) -> int:
        out = out or sys.stdout
        from cohort_sciseg.synth import synthesize_cohort

        model = "demo" if self.segmenter == "nnunet" else None
        _segmenter_spec(self.segmenter, model, self.segmenter_options)  # a bad option stops before the cohort
        cohort_dir = self.out / "cohort"
        if cohort_dir.exists() and any(cohort_dir.iterdir()):
            out.write(f"reusing the synthetic cohort in {cohort_dir}\n")
            roots = sorted(p for p in cohort_dir.iterdir() if (p / "dataset_description.json").is_file())
        else:
            cohort = synthesize_cohort(
                cohort_dir, sites=self.sites, subjects_per_site=self.subjects_per_site, seed=self.seed
            )
            out.write(describe_cohort(cohort) + "\n")
            roots = [Path(r) for r in cohort.dataset_roots]
        out.write("\nrunning the cohort (segmentation, morphometry, validation) on a local Dask cluster\n")
        rc = RunCommand(
            bids_dirs=roots,
            output=self.run_layout().root,
            segmenter=self.segmenter,
            segmenter_options=self.segmenter_options,
            model=model,
            workers=self.workers,
            progress=self.progress,
        ).run(out)
        layout = self.run_layout()
        if (layout.validation_stats / "metrics_summary.csv").is_file():
            out.write(_validation_highlights(layout) + "\n")
        index = layout.report_index
        if index.is_file():
            out.write(f"\nQC report (open in a browser): {index.resolve().as_uri()}\n")
        out.write(f"\ndemo outputs in {self.out.resolve()}\n")
        return rc


def _validation_highlights(layout: RunLayout) -> str:
    import pandas as pd

    stats = layout.validation_stats
    summary = pd.read_csv(stats / "metrics_summary.csv")
    lines = [f"validation against the manual masks ({layout.validation}):"]
    sel = summary[(summary.stratum == "overall") & (summary.metric.isin(["Dice", "lesion_f1_mr"]))]
    for r in sel.itertuples():
        lines.append(f"  {r.structure} {r.metric} ({r.method}): {r.mean_sd} (n = {r.n})")
    agree = pd.read_csv(stats / "agreement.csv")
    w = agree[(agree.stratum == "overall") & (agree.test == "scipy.stats.wilcoxon")]
    for r in w.itertuples():
        lines.append(f"  {r.measure}: manual vs {r.b}, Wilcoxon p = {r.p:.3g} (n = {r.n})")
    lines.append(f"  tables: {stats}   figures: {layout.validation_figures}")
    return "\n".join(lines)


