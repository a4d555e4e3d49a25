"""Command line: ``cohort-sciseg <command> ...``.

The only module that prints, configures logging or exits. Each subcommand is a
small dataclass whose :meth:`run` the tests call in-process; :func:`main` parses
arguments into one of them.

Exit status (reserved so that scripts can tell them apart): 0 success; 1 the
command finished but some scans or files had problems (they are in the failures
table and the summary); 2 the command could not run (bad arguments or a fatal
input error, printed with its fix); 70 an internal error (a bug: the traceback is
printed, please report it); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cohort_sciseg._version import __version__
from cohort_sciseg.errors import CohortSciSegError, SegmentationError, format_error
from cohort_sciseg.terminal import configure_logging

if TYPE_CHECKING:
    from cohort_sciseg.synth import SynthCohort

__all__ = [
    "AnalyzeLesionCommand",
    "DemoCommand",
    "DiscoverCommand",
    "MetricsCommand",
    "RatingsPrepareCommand",
    "RatingsWorklistCommand",
    "RunCommand",
    "SynthCommand",
    "ValidateCommand",
    "main",
]

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_ERROR = 2
#: an uncaught exception (sysexits' EX_SOFTWARE): never confused with 1, "finished with failed scans"
EXIT_CRASH = 70
EXIT_INTERRUPTED = 130


def _describe_cohort(cohort: SynthCohort) -> str:
    lines = [
        f"synthetic cohort in {cohort.out_dir} (seed {cohort.seed}): {cohort.n_sites} site(s), "
        f"{cohort.n_subjects} subject(s), {cohort.n_scans} scan(s), {cohort.n_lesions} lesion(s)",
        *(f"  BIDS dataset: {root}" for root in cohort.dataset_roots),
        f"  ground truth: {cohort.lesions_table}, {cohort.scans_table}",
    ]
    return "\n".join(lines)


@dataclass
class DiscoverCommand:
    """``cohort-sciseg discover BIDS_DIR [BIDS_DIR ...]``: find T2w scans and their masks."""

    bids_dirs: list[Path]
    output: Path | None = None
    failures_output: Path | None = None
    participant_labels: list[str] | None = None
    sessions: list[str] | None = None
    include: Path | None = None
    exclude: Path | None = None
    cord_suffixes: list[str] | None = None
    lesion_suffixes: list[str] | None = None
    strict: bool = False
    vertebral_suffixes: list[str] | None = None
    disc_suffixes: list[str] | None = None

    def run(self, out: TextIO | None = None) -> int:
        out = out or sys.stdout
        from cohort_sciseg.discover import (
            DEFAULT_CORD_SUFFIXES,
            DEFAULT_DISC_SUFFIXES,
            DEFAULT_LESION_SUFFIXES,
            DEFAULT_VERTEBRAL_SUFFIXES,
            find_scans,
            format_summary,
            write_failures,
            write_scans,
        )

        discovery = find_scans(
            self.bids_dirs,
            participant_labels=self.participant_labels,
            sessions=self.sessions,
            include=self.include,
            exclude=self.exclude,
            cord_suffixes=tuple(self.cord_suffixes or DEFAULT_CORD_SUFFIXES),
            lesion_suffixes=tuple(self.lesion_suffixes or DEFAULT_LESION_SUFFIXES),
            vertebral_suffixes=tuple(self.vertebral_suffixes or DEFAULT_VERTEBRAL_SUFFIXES),
            disc_suffixes=tuple(self.disc_suffixes or DEFAULT_DISC_SUFFIXES),
            on_problem="raise" if self.strict else "record",
        )
        out.write(format_summary(discovery) + "\n")
        if self.output is not None:
            write_scans(discovery, self.output)
            out.write(f"scans table: {self.output}\n")
            failures = self.failures_output or self.output.with_name("failures.parquet")
            write_failures(discovery, failures)
            out.write(f"problems table: {failures}\n")
        return EXIT_PROBLEMS if discovery.problems else EXIT_OK


@dataclass
class AnalyzeLesionCommand:
    """``cohort-sciseg analyze-lesion -m L -s C [-i I] [-nli-slice N] [-o OUT | -ofolder DIR]``.

    A drop-in for ``sct_analyze_lesion -m L -s C [-i I] [-nli-slice N] [-ofolder DIR]``:
    writes ``OUT.parquet`` (one row per lesion), ``OUT_slices.parquet``
    (per-sagittal-slice bridges), ``OUT.json`` (per-scan summary) and
    ``OUT_label.nii.gz`` (lesion ids); ``OUT`` defaults to
    ``<DIR or .>/<lesion name>_analysis`` as SCT names its spreadsheet.
    """

    lesion: Path
    cord: Path
    output: Path | None = None
    image: Path | None = None
    threshold: float = 0.5
    angle_correction: bool = True
    nli_slice: int | None = None
    vert_labels: Path | None = None
    disc_labels: Path | None = None
    output_folder: Path | None = None

    def prefix(self) -> Path:
        """The output prefix: ``-o``, else ``<-ofolder or .>/<lesion name>_analysis``."""
        if self.output is not None:
            return self.output
        name = self.lesion.name
        for ext in (".nii.gz", ".nii"):
            if name.endswith(ext):
                name = name[: -len(ext)]
                break
        return (self.output_folder or Path(".")) / f"{name}_analysis"

    def run(self, out: TextIO | None = None) -> int:
        out = out or sys.stdout
        from cohort_sciseg.io import read_header
        from cohort_sciseg.morphometry import analyze_lesion_files, write_lesion_analysis

        result = analyze_lesion_files(
            self.lesion, self.cord, self.image,
            threshold=self.threshold, angle_correction=self.angle_correction,
            nli_slice=self.nli_slice, vert_labels_path=self.vert_labels,
            disc_labels_path=self.disc_labels,
        )
        lesion_img = read_header(self.lesion)
        paths = write_lesion_analysis(result, self.prefix(), affine=lesion_img.affine)
        s = result.summary
        out.write(
            f"{s.n_lesions} lesion(s): total volume {s.total_volume_mm3:.2f} mm3, total length "
            f"{s.total_length_mm:.2f} mm, max axial damage ratio {s.max_axial_damage_ratio:.3f}\n"
        )
        if s.nli_ap_diameter_mm is not None:
            out.write(
                f"cord A-P diameter at the NLI slice {s.nli_slice}: {s.nli_ap_diameter_mm:.2f} mm "
                "(tissue-bridge proxy; dorsal = ventral = half)\n"
            )
        if s.lesion_vert_levels is not None:
            out.write(f"vertebral levels with lesion: {', '.join(s.lesion_vert_levels) or 'none'}\n")
        for note in s.notes:
            out.write(f"note: {note}\n")
        for what, path in paths.items():
            out.write(f"{what}: {path}\n")
        return EXIT_OK


@dataclass
class MetricsCommand:
    """``cohort-sciseg metrics --pred P --ref R [--lesion] -o OUT.json``.

    A drop-in for ``animaSegPerfAnalyzer -i P -r R -d -s [-l]``: OUT.json holds
    ANIMA's measure names as keys (NaN as null; keys absent where ANIMA writes
    none), the corrected metrics under ``"corrected"`` and ANIMA's path (label
    counts, binarisation warning) under ``"anima_input"``; the path and any
    warning are also printed.
    """

    pred: Path
    ref: Path
    output: Path
    lesion: bool = False
    units: str = "mm"

    def run(self, out: TextIO | None = None) -> int:
        out = out or sys.stdout
        from cohort_sciseg.io import write_json
        from cohort_sciseg.validation import compute_metrics_files

        result = compute_metrics_files(
            self.pred, self.ref, lesion_detection=self.lesion, units=self.units  # type: ignore[arg-type]
        )
        write_json(self.output, result.to_json())
        for key, value in result.anima.items():
            out.write(f"{key}: {value}\n")
        info = result.anima_input
        out.write(
            f"anima path: {info.path} (labels read: prediction {info.n_pred_labels}, "
            f"reference {info.n_ref_labels})\n"
        )
        if info.warning:
            out.write(f"warning: {info.warning}\n")
        out.write(f"metrics: {self.output}\n")
        return EXIT_OK


def _parse_predictions(spec: str) -> tuple[str, str | None, Path]:
    """``[METHOD[@SPLIT]=]DIR`` -> (method, split, dir); the method defaults to ``sciseg``."""
    name, sep, folder = spec.partition("=")
    if not sep:
        return "sciseg", None, Path(spec)
    method, _, split = name.partition("@")
    if not method:
        raise CohortSciSegError(f"--predictions {spec!r}: empty method name (expected [METHOD[@SPLIT]=]DIR)")
    return method, split or None, Path(folder)


@dataclass
class ValidateCommand:
    """``cohort-sciseg validate BIDS_DIR... --predictions [METHOD[@SPLIT]=]DIR ... -o OUT``.

    Compares predicted masks with the manual masks of the discovered scans and
    writes the metrics and biomarkers tables, the paper's statistics (with the
    clinical scores of ``participants.tsv``) and its figures into OUT (see
    :func:`cohort_sciseg.report.validation.write_validation`).
    """

    bids_dirs: list[Path]
    predictions: list[str]
    output: Path
    biomarkers: list[Path] = field(default_factory=list)
    reference: str | None = None
    units: str = "mm"
    strata: list[str] = field(default_factory=list)
    participant_labels: list[str] | None = None
    include: Path | None = None
    exclude: Path | None = None
    zero_method: str = "wilcox"
    wilcoxon_method: str = "auto"
    figures: bool = True

    def run(self, out: TextIO | None = None) -> int:
        out = out or sys.stdout
        import pyarrow as pa

        from cohort_sciseg.discover import find_scans
        from cohort_sciseg.report.validation import write_validation
        from cohort_sciseg.validation import find_predictions, validate_scans
        from cohort_sciseg.validation.stats import WilcoxonOptions
        from cohort_sciseg.validation.study import flat_scans, read_biomarkers

        if not self.predictions and not self.biomarkers:
            raise CohortSciSegError("validate: give predicted masks (-p) or biomarker tables (--biomarkers)")
        specs = [_parse_predictions(p) for p in self.predictions]
        seen = [(m, s) for m, s, _ in specs]
        if len(set(seen)) != len(seen):
            raise CohortSciSegError("--predictions: the same METHOD@SPLIT is given twice")
        discovery = find_scans(
            self.bids_dirs,
            participant_labels=self.participant_labels,
            include=self.include,
            exclude=self.exclude,
        )
        scans = [s for s in discovery.scans if s.has_manual_masks]
        out.write(f"{len(discovery.scans)} scan(s) found, {len(scans)} with manual cord and lesion masks\n")
        metrics, biomarkers, failures = [], [], list(discovery.problems)
        for method, split, folder in specs:
            preds = find_predictions(scans, folder)
            tables = validate_scans(scans, preds, method=method, split=split, units=self.units)  # type: ignore[arg-type]
            metrics.append(tables.metrics)
            biomarkers.append(tables.biomarkers)
            failures += tables.failures
            label = method + (f"@{split}" if split else "")
            n_ok = len(set(tables.metrics.column("scan_id").to_pylist()))
            out.write(f"{label}: {n_ok} scan(s) validated, {len(tables.failures)} failed, "
                      f"{len(scans) - len(preds)} without predictions in {folder}\n")
        for path in self.biomarkers:
            table = read_biomarkers(path, discovery.scans)
            biomarkers.append(table)
            out.write(f"{path}: {table.num_rows} biomarker row(s)\n")
        if not metrics:
            from cohort_sciseg.records import METRICS_SCHEMA

            metrics.append(METRICS_SCHEMA.empty_table())
        result = write_validation(
            self.output,
            pa.concat_tables(metrics),
            pa.concat_tables(biomarkers),
            flat_scans(discovery.scans),
            failures=failures,
            reference=self.reference,
            strata=self.strata,
            wilcoxon=WilcoxonOptions(zero_method=self.zero_method, method=self.wilcoxon_method),  # type: ignore[arg-type]
            figures=self.figures,
        )
        for f in failures:
            out.write(f"failed: {f.scan_id or f.path}: {f.message}\n")
        out.write(f"tables: {', '.join(str(p) for p in result.tables.values())}\n")
        out.write(f"statistics: {self.output / 'stats'} ({len(result.stats_files)} files)\n")
        out.write(f"figures: {len(result.figures)} file(s) in {self.output / 'figures'}\n")
        return EXIT_PROBLEMS if failures else EXIT_OK


@dataclass
class SynthCommand:
    """``cohort-sciseg synth OUT``: write a synthetic multi-site SCI cohort (BIDS, one dataset per site)."""

    out: Path
    sites: int = 3
    subjects_per_site: int = 4
    seed: int = 0
    from_bids: Path | None = None

    def run(self, out: TextIO | None = None) -> int:
        out = out or sys.stdout
        from cohort_sciseg.synth import insert_lesions, synthesize_cohort

        if self.from_bids is not None:
            cohort = insert_lesions(self.from_bids, self.out, seed=self.seed)
        else:
            cohort = synthesize_cohort(
                self.out, sites=self.sites, subjects_per_site=self.subjects_per_site, seed=self.seed
            )
        out.write(_describe_cohort(cohort) + "\n")
        return EXIT_OK


_RESAMPLING_HELP = (
    "resampling to and from the model's spacing: exact (nnU-Net's scipy path, as SCT; default) or torch "
    "(the same operator as matrix products on the model's device: same masks, several times faster)"
)


def _segmenter_spec(plugin: str, model: str | None, options: list[str] | None) -> object:
    """The segmenter of ``run``: a plugin name and its ``KEY=VALUE`` options."""
    from cohort_sciseg.batch.segmenters import SegmenterSpec

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
    return SegmenterSpec.make(plugin, **opts)


def _gpus(text: str) -> str:
    if text == "auto" or (text.isdigit() and int(text) >= 0):
        return text
    msg = f"invalid value {text!r}: expected a number of GPUs (0 for CPU only) or 'auto'"
    raise argparse.ArgumentTypeError(msg)


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
    resampling: str | None = None
    gpu_worker_threads: int | None = None
    strict: bool = False
    mask_names: str = "bids"

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
            segmenter=spec,  # type: ignore[arg-type]
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
            gpu_worker_threads="auto" if self.gpu_worker_threads is None else self.gpu_worker_threads,
            strict=self.strict,
            mask_naming=self.mask_names,
        )
        summary = run_cohort(self.bids_dirs, self.output, options, stream=sys.stderr if self.progress else None)
        out.write(summary.format() + "\n")
        return EXIT_OK if summary.ok else EXIT_PROBLEMS


def _ratings_to_fix(include_artifact: bool) -> tuple[str, ...]:
    return ("fail", "artifact") if include_artifact else ("fail",)


@dataclass
class RatingsWorklistCommand:
    """``cohort-sciseg ratings worklist RATINGS OUT_DIR [-o worklist.csv] [--include-artifact]``.

    The scans rated fail (and artifact) in the ratings exported from the QC report,
    with their image, predicted masks and the manual-mask paths where corrections
    go, as CSV (see :func:`cohort_sciseg.report.ratings.worklist`).
    """

    ratings: Path
    out_dir: Path
    output: Path | None = None
    include_artifact: bool = False

    def run(self, out: TextIO | None = None) -> int:
        out = out or sys.stdout
        from cohort_sciseg.io import atomic_write_text
        from cohort_sciseg.report.ratings import worklist

        fix = _ratings_to_fix(self.include_artifact)
        todo = worklist(self.ratings, self.out_dir, ratings_to_fix=fix)  # type: ignore[arg-type]
        text = todo.to_csv(index=False)
        if self.output is None:
            out.write(text)
            return EXIT_OK
        atomic_write_text(self.output, text)
        out.write(f"{len(todo)} scan(s) rated {' or '.join(fix)} to correct; worklist: {self.output}\n")
        return EXIT_OK


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
class RatingsPrepareCommand:
    """``cohort-sciseg ratings prepare RATINGS OUT_DIR [--overwrite] [--include-artifact]``.

    Copies the predicted masks of the scans rated fail to their manual-mask paths in
    each dataset's ``derivatives/labels`` (never over an existing manual mask unless
    ``--overwrite``), as starting points for the corrections; prints where they went
    and what to do next (see :func:`cohort_sciseg.report.ratings.prepare_corrections`).
    """

    ratings: Path
    out_dir: Path
    overwrite: bool = False
    include_artifact: bool = False

    def run(self, out: TextIO | None = None) -> int:
        out = out or sys.stdout
        from cohort_sciseg.report.ratings import prepare_corrections, worklist

        fix = _ratings_to_fix(self.include_artifact)
        todo = worklist(self.ratings, self.out_dir, ratings_to_fix=fix)  # type: ignore[arg-type]
        if todo.empty:
            out.write(f"no scan rated {' or '.join(fix)} in {self.ratings}: nothing to correct\n")
            return EXIT_OK
        written = set(prepare_corrections(todo, overwrite=self.overwrite))
        for r in todo.to_dict("records"):
            comment = " ".join(str(r["comment"] or "").split())
            out.write(f"{r['scan_id']} ({r['rating']}{': ' + comment[:100] if comment else ''})\n")
            out.write(f"  image:  {r['image_path']}\n")
            for structure in ("cord", "lesion"):
                target = r[f"{structure}_target_path"]
                if Path(target) in written:
                    out.write(f"  {structure + ':':7} {target} (copy of the prediction, to correct)\n")
                else:
                    out.write(f"  {structure + ':':7} {r[f'{structure}_existing_path']} (existing manual mask, "
                              f"kept; --overwrite replaces it with the prediction)\n")
        out.write(
            f"{len(written)} mask(s) written. Next: correct each mask in an editor such as FSLeyes "
            "(fsleyes IMAGE MASK) or ITK-SNAP (itksnap -g IMAGE -s MASK) and save it in place; then re-run "
            f"`cohort-sciseg run BIDS_DIR... -o {self.out_dir} --resume`: the corrected masks are read as "
            "manual masks and those scans are validated again\n"
        )
        return EXIT_OK


@dataclass
class SegmentCommand:
    """``cohort-sciseg segment IMAGE [-o PREFIX] [--model demo|PATH] ...``.

    A drop-in for ``sct_deepseg lesion_sci_t2 -i IMAGE``: writes
    ``PREFIX_sc_seg.nii.gz`` and ``PREFIX_lesion_seg.nii.gz`` (default prefix: the
    image path without extension, as SCT) with JSON sidecars.
    """

    image: Path
    output: Path | None = None
    model: str = "demo"
    folds: list[str] | None = None
    checkpoint: str = "auto"
    tta: bool = False
    device: str = "auto"
    threads: int | None = None
    tile_step_size: float = 0.5
    keep_largest_cord: bool = False
    fill_holes: str | None = None
    remove_small: float | None = None
    remove_small_lesions: float | None = None
    trust_model: bool = False
    no_postprocessing: bool = False
    resampling: str = "exact"

    def run(self, out: TextIO | None = None) -> int:
        out = out or sys.stdout
        # Imported here, not at the top: `cohort-sciseg --help` and the other commands never load torch.
        from cohort_sciseg.segment import EngineSettings, PostprocessOptions, SegmentationEngine

        given = PostprocessOptions(
            keep_largest_cord=self.keep_largest_cord,
            fill_holes=self.fill_holes,  # type: ignore[arg-type]  # checked by PostprocessOptions
            remove_small_mm3=self.remove_small,
            remove_small_lesion_mm3=self.remove_small_lesions,
        )
        if given.active and self.no_postprocessing:
            msg = format_error(
                "--no-postprocessing was given with post-processing options",
                expected="either --no-postprocessing (raw output) or the options to apply",
                fix="drop --no-postprocessing, or drop --keep-largest-cord/--fill-holes/--remove-small*",
            )
            raise SegmentationError(msg)
        # no option given: what the model recommends (model.json) unless --no-postprocessing, else none
        post = given if given.active else None
        engine = SegmentationEngine(
            EngineSettings(
                model=str(self.model),
                folds=None if not self.folds else tuple(self.folds),
                checkpoint=self.checkpoint,  # type: ignore[arg-type]  # checked by find_model
                device=self.device,  # type: ignore[arg-type]  # checked by EngineSettings
                tta=self.tta,
                tile_step_size=self.tile_step_size,
                threads=self.threads,
                trust_model=self.trust_model,
                postprocessing="none" if self.no_postprocessing else "model",
                resampling=self.resampling,  # type: ignore[arg-type]  # checked by EngineSettings
            )
        )
        paths = engine.segment_file(self.image, self.output, postprocessing=post)
        info = engine.describe()
        out.write(
            f"model {info['name']} ({info['integrity']}, checksum {info['checksum'][:12]}), "
            f"folds {','.join(engine.key.folds)}, device {engine.key.device}, tta {'on' if engine.key.tta else 'off'}, "
            f"resampling {engine.settings.resampling}\n"
        )
        settings = engine.settings_record(post)
        done = [k for k, v in settings["postprocessing"].items() if v not in (None, False)]
        out.write(f"post-processing: {', '.join(done) or 'none'} ({settings['postprocessing_source']})\n")
        if info["integrity"] == "unverified":
            out.write("warning: the model folder has no model.json manifest; its checksums are in the sidecars\n")
        out.write(f"cord mask: {paths.cord}\nlesion mask: {paths.lesion}\n")
        return EXIT_OK


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

    def run(self, out: TextIO | None = None) -> int:
        out = out or sys.stdout
        from cohort_sciseg.synth import synthesize_cohort

        cohort_dir = self.out / "cohort"
        if cohort_dir.exists() and any(cohort_dir.iterdir()):
            out.write(f"reusing the synthetic cohort in {cohort_dir}\n")
            roots = sorted(p for p in cohort_dir.iterdir() if (p / "dataset_description.json").is_file())
        else:
            cohort = synthesize_cohort(
                cohort_dir, sites=self.sites, subjects_per_site=self.subjects_per_site, seed=self.seed
            )
            out.write(_describe_cohort(cohort) + "\n")
            roots = [Path(r) for r in cohort.dataset_roots]
        out.write("\nrunning the cohort (segmentation, morphometry, validation) on a local Dask cluster\n")
        rc = RunCommand(
            bids_dirs=roots,
            output=self.out / "derivatives",
            segmenter=self.segmenter,
            segmenter_options=self.segmenter_options,
            model="demo" if self.segmenter == "nnunet" else None,
            workers=self.workers,
            progress=self.progress,
        ).run(out)
        validation = self.out / "derivatives" / "validation"
        if (validation / "stats" / "metrics_summary.csv").is_file():
            out.write(_validation_highlights(validation) + "\n")
        index = self.out / "derivatives" / "report" / "index.html"
        if index.is_file():
            out.write(f"\nQC report (open in a browser): {index.resolve().as_uri()}\n")
        out.write(f"\ndemo outputs in {self.out.resolve()}\n")
        return rc


def _validation_highlights(folder: Path) -> str:
    import pandas as pd

    summary = pd.read_csv(folder / "stats" / "metrics_summary.csv")
    lines = [f"validation against the manual masks ({folder}):"]
    sel = summary[(summary.stratum == "overall") & (summary.metric.isin(["Dice", "lesion_f1_mr"]))]
    for r in sel.itertuples():
        lines.append(f"  {r.structure} {r.metric} ({r.method}): {r.mean_sd} (n = {r.n})")
    agree = pd.read_csv(folder / "stats" / "agreement.csv")
    w = agree[(agree.stratum == "overall") & (agree.test == "scipy.stats.wilcoxon")]
    for r in w.itertuples():
        lines.append(f"  {r.measure}: manual vs {r.b}, Wilcoxon p = {r.p:.3g} (n = {r.n})")
    lines.append(f"  tables: {folder / 'stats'}   figures: {folder / 'figures'}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cohort-sciseg",
        description="Batch cohort analysis of spinal cord injury T2w MRI with SCIseg (nnU-Net v2) on Dask.",
    )
    p.add_argument("--version", action="version", version=f"cohort-sciseg {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("discover", help="find T2w scans, masks, sidecars and clinical tables in BIDS datasets")
    d.add_argument("bids_dirs", nargs="+", type=Path, metavar="BIDS_DIR", help="one BIDS dataset per site")
    d.add_argument("-o", "--output", type=Path, help="write the scans table here (Parquet)")
    d.add_argument("--failures-output", type=Path, help="problems table (default: failures.parquet beside -o)")
    d.add_argument("--participant-label", nargs="+", dest="participant_labels", metavar="LABEL")
    d.add_argument("--session", nargs="+", dest="sessions", metavar="LABEL")
    d.add_argument("--include", type=Path, metavar="FILE", help="file with the scan ids to keep, one per line")
    d.add_argument("--exclude", type=Path, metavar="FILE", help="file with the scan ids to drop, one per line")
    d.add_argument("--cord-suffix", nargs="+", dest="cord_suffixes", metavar="SUFFIX",
                   help="manual cord mask suffixes, first match wins (default: seg-manual label-SC_seg)")
    d.add_argument("--lesion-suffix", nargs="+", dest="lesion_suffixes", metavar="SUFFIX",
                   help="manual lesion mask suffixes (default: lesion-manual)")
    d.add_argument("--vert-suffix", nargs="+", dest="vertebral_suffixes", metavar="SUFFIX",
                   help="vertebral labelling suffixes (sct_label_vertebrae's labelled cord), exact or "
                        "fnmatch patterns, first match wins (default: '*seg*_labeled')")
    d.add_argument("--disc-suffix", nargs="+", dest="disc_suffixes", metavar="SUFFIX",
                   help="disc label suffixes, exact or fnmatch patterns, first match wins "
                        "(default: 'label-disc*' 'labels-disc*' '*_labeled_disc*')")
    d.add_argument("--strict", action="store_true", help="stop at the first problem instead of recording it")

    s = sub.add_parser("synth", help="write a synthetic multi-site SCI cohort as BIDS datasets")
    s.add_argument("out", type=Path, metavar="OUT")
    s.add_argument("--sites", type=int, default=3)
    s.add_argument("--subjects-per-site", type=int, default=4)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--from-bids", type=Path, metavar="BIDS_DIR",
                   help="semi-synthetic: insert lesions into the real cords of this dataset")

    a = sub.add_parser("analyze-lesion", help="lesion morphometrics of one scan (drop-in for sct_analyze_lesion)")
    a.add_argument("--lesion", "-m", type=Path, required=True, help="lesion mask (binary or soft)")
    a.add_argument("--cord", "-s", type=Path, required=True, help="spinal cord mask")
    a.add_argument("--image", "-i", type=Path, help="image for lesion intensity statistics")
    a.add_argument("-o", "--output", type=Path, metavar="OUT",
                   help="output prefix: OUT.parquet, OUT_slices.parquet, OUT.json, OUT_label.nii.gz "
                        "(default: DIR/<lesion name>_analysis)")
    a.add_argument("-ofolder", "--output-folder", dest="output_folder", type=Path, metavar="DIR",
                   help="output folder when -o is not given (SCT's -ofolder; default: .)")
    a.add_argument("-nli-slice", "--nli-slice", dest="nli_slice", type=int, metavar="N",
                   help="axial slice of the neurological level of injury, along the S-I axis of the input "
                        "orientation (SCT's -nli-slice): fixes the midsagittal slice; the cord A-P diameter "
                        "there is the tissue-bridge proxy of a scan without lesion")
    a.add_argument("--vert-labels", type=Path, metavar="FILE",
                   help="vertebral labelling on the same grid (SCT's *_seg_labeled): adds vertebral levels")
    a.add_argument("--disc-labels", type=Path, metavar="FILE",
                   help="disc labels on the same grid (value 3 = C2/C3 disc): adds vertebral levels")
    a.add_argument("--threshold", type=float, default=0.5, help="binarisation threshold (value > t), default 0.5")
    a.add_argument("--no-angle-correction", dest="angle_correction", action="store_false")

    q = sub.add_parser("metrics", help="segmentation metrics of one pair (drop-in for animaSegPerfAnalyzer)")
    q.add_argument("--pred", "-i", type=Path, required=True, help="predicted mask")
    q.add_argument("--ref", "-r", type=Path, required=True, help="reference (manual) mask")
    q.add_argument("--lesion", "-l", action="store_true", help="also lesion detection metrics (ANIMA -l)")
    q.add_argument("--units", choices=("mm", "voxel"), default="mm", help="distance convention (default mm)")
    q.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.json")

    v = sub.add_parser("validate", help="validate predicted masks against manual masks and clinical scores")
    v.add_argument("bids_dirs", nargs="+", type=Path, metavar="BIDS_DIR", help="one BIDS dataset per site")
    v.add_argument("--predictions", "-p", action="append", default=[], metavar="[METHOD[@SPLIT]=]DIR",
                   help="folder of <scan>_sc_seg/_lesion_seg.nii.gz masks; repeat for methods and splits")
    v.add_argument("--biomarkers", action="append", default=[], type=Path, metavar="FILE",
                   help="biomarker table (Parquet or CSV: scan_id, method, [split,] n_lesions, total_volume_mm3, "
                        "total_length_mm, max_axial_damage_ratio), e.g. from morphometry runs")
    v.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR")
    v.add_argument("--reference", metavar="METHOD", help="method compared with the others (default: first)")
    v.add_argument("--units", choices=("mm", "voxel"), default="mm", help="distance convention (default mm)")
    v.add_argument("--stratify", action="append", default=[], dest="strata", metavar="COLUMN",
                   help="also summarise by this participants/sidecar/scan column (e.g. etiology, manufacturer)")
    v.add_argument("--participant-label", nargs="+", dest="participant_labels", metavar="LABEL")
    v.add_argument("--include", type=Path, metavar="FILE", help="file with the scan ids to keep")
    v.add_argument("--exclude", type=Path, metavar="FILE", help="file with the scan ids to drop")
    v.add_argument("--zero-method", choices=("wilcox", "pratt", "zsplit"), default="wilcox",
                   help="scipy.stats.wilcoxon zero_method (default wilcox)")
    v.add_argument("--wilcoxon-method", choices=("auto", "exact", "approx"), default="auto",
                   help="scipy.stats.wilcoxon method (default auto)")
    v.add_argument("--no-figures", dest="figures", action="store_false")

    r = sub.add_parser("run", help="segment, measure and validate a cohort on Dask (LocalCluster by default)")
    r.add_argument("bids_dirs", nargs="+", type=Path, metavar="BIDS_DIR", help="one BIDS dataset per site")
    r.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="BIDS derivatives folder")
    r.add_argument("--model", help="nnU-Net v2 model folder, or 'demo' (the bundled model; default)")
    r.add_argument("--segmenter", default="nnunet",
                   help="segmenter plugin: nnunet (default), copy-manual, or package.module:Factory")
    r.add_argument("--segmenter-option", action="append", dest="segmenter_options", metavar="KEY=VALUE",
                   help="option of the segmenter (e.g. tta=true, device=cuda)")
    r.add_argument("--participant-label", nargs="+", dest="participant_labels", metavar="LABEL")
    where = r.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="connect to a running Dask scheduler")
    where.add_argument("--cluster", type=Path, metavar="FILE", help="cluster file (see cluster/)")
    r.add_argument("--workers", type=int,
                   help="local CPU worker processes (default: one per core left after the GPU workers)")
    r.add_argument("--gpus", default="auto", type=_gpus, metavar="N|auto",
                   help="local GPU workers, one per GPU (default auto: every visible NVIDIA GPU; 0: CPU only)")
    r.add_argument("--gpu-worker-threads", type=int, metavar="N",
                   help="threads of each local GPU worker: one runs the model, the others prepare and finish "
                   "scans (default: from the cores per GPU, see cluster/README.md)")
    r.add_argument("--resampling", choices=("exact", "torch"), help=_RESAMPLING_HELP + " (nnunet segmenter)")
    r.add_argument("--stages", choices=("auto", "split", "fused"), default="auto",
                   help="split each scan into prepare (CPU) / infer (GPU) / finish (CPU) tasks: auto = "
                   "when workers have GPUs (default)")
    resume = r.add_mutually_exclusive_group()
    resume.add_argument("--resume", dest="resume", action="store_true", default=True,
                        help="skip scans whose result is up to date, redo the rest (default)")
    resume.add_argument("--no-resume", dest="resume", action="store_false",
                        help="redo every scan even when its result is up to date")
    r.add_argument("--retries", type=int, default=2, help="retries of a task whose worker died (default 2)")
    r.add_argument("--units", choices=("mm", "voxel"), default="mm", help="distance convention of the metrics")
    r.add_argument("--no-progress", dest="progress", action="store_false")
    r.add_argument("--no-report", dest="report", action="store_false",
                   help="no HTML QC report (report/): no per-scan images, no index")
    r.add_argument("--exclude-ratings", type=Path, metavar="FILE",
                   help="leave out the scans rated fail or artifact in this ratings file of the QC report (.csv, .yaml)")
    r.add_argument("--mask-names", choices=("bids", "sct"), default="bids",
                   help="names of the predicted masks: bids (default; one BIDS derivative dataset per site, "
                   "<entities>_label-SC_mask / _label-lesion_mask) or sct (<scan_id>_sc_seg / _lesion_seg, as "
                   "sct_deepseg; not BIDS-valid)")
    r.add_argument("--strict", action="store_true",
                   help="stop at the first discovery problem (a bad file, a folder that is not a BIDS dataset) "
                   "instead of recording it and running the other scans")

    rp_ = sub.add_parser("report", help="build or update the HTML QC report of a run (OUT_DIR/report/index.html)")
    rp_.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="the `cohort-sciseg run` output folder")
    rp_.add_argument("--threads", type=int, metavar="N", help="threads making missing scan pages (default: CPUs)")

    rt = sub.add_parser("ratings", help="QC report ratings: worklist of scans to correct, manual-mask starting points")
    rt_sub = rt.add_subparsers(dest="action", required=True, metavar="ACTION")
    rw = rt_sub.add_parser("worklist", help="the scans rated fail, with images, predictions and manual-mask paths (CSV)")
    rp = rt_sub.add_parser("prepare", help="copy the predictions of the scans rated fail to their manual-mask paths")
    for x in (rw, rp):
        x.add_argument("ratings", type=Path, metavar="RATINGS", help="ratings exported from the QC report (.csv, .yaml)")
        x.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="the `cohort-sciseg run` folder the report shows")
        x.add_argument("--include-artifact", action="store_true", help="also the scans rated artifact")
    rw.add_argument("-o", "--output", type=Path, metavar="worklist.csv", help="write the worklist here (default: print it)")
    rp.add_argument("--overwrite", action="store_true", help="replace existing manual masks (default: keep them)")

    g = sub.add_parser("segment", help="cord and lesion masks of one image (drop-in for sct_deepseg lesion_sci_t2)")
    g.add_argument("image", type=Path, metavar="IMAGE", help="T2w image (.nii or .nii.gz)")
    g.add_argument("-o", "--output", type=Path, metavar="PREFIX",
                   help="writes PREFIX_sc_seg.nii.gz, PREFIX_lesion_seg.nii.gz (default: IMAGE without extension)")
    g.add_argument("--model", default="demo", metavar="demo|PATH",
                   help="nnU-Net v2 model folder (e.g. SCIseg's release) or 'demo', the bundled model (default)")
    g.add_argument("--folds", nargs="+", metavar="FOLD", help="folds to ensemble (default: all, as SCT)")
    g.add_argument("--checkpoint", choices=("auto", "final", "best"), default="auto",
                   help="checkpoint file per fold (default auto: final, else best)")
    g.add_argument("--tta", action="store_true", help="test-time mirroring (off in SCT; ~8x slower)")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="default auto: CUDA when available, else CPU")
    g.add_argument("--threads", type=int, metavar="N", help="torch threads during inference")
    g.add_argument("--tile-step-size", type=float, default=0.5, help="sliding-window step (default 0.5, as SCT)")
    g.add_argument("--keep-largest-cord", action="store_true",
                   help="keep the largest cord component (lesions are never removed)")
    g.add_argument("--fill-holes", nargs="?", const="3d", choices=("3d", "slice"),
                   help="fill holes in both masks, in 3D (default) or per slice")
    g.add_argument("--remove-small", type=float, metavar="MM3", help="remove cord components smaller than MM3")
    g.add_argument("--remove-small-lesions", type=float, metavar="MM3",
                   help="remove lesion components smaller than MM3 (off by default)")
    g.add_argument("--no-postprocessing", action="store_true",
                   help="raw network output (SCT's default), even when the model's model.json recommends "
                   "post-processing (the bundled demo model recommends --keep-largest-cord)")
    g.add_argument("--trust-model", action="store_true",
                   help="accept a model folder that differs from its model.json (checkpoints are pickles)")
    g.add_argument("--resampling", choices=("exact", "torch"), default="exact", help=_RESAMPLING_HELP)

    m = sub.add_parser("demo", help="run the embedded default job on a synthetic 3-site cohort")
    m.add_argument("-o", "--out", type=Path, default=Path("demo"))
    m.add_argument("--subjects-per-site", type=int, default=4)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--segmenter", default="nnunet", help="segmenter plugin (default: nnunet, the bundled model)")
    m.add_argument("--workers", type=int, help="LocalCluster worker processes")
    m.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def _command(
    ns: argparse.Namespace,
) -> (
    DiscoverCommand | SynthCommand | DemoCommand | AnalyzeLesionCommand | MetricsCommand | ValidateCommand
    | RunCommand | SegmentCommand | RatingsWorklistCommand | RatingsPrepareCommand | ReportCommand
):
    if ns.command == "discover":
        return DiscoverCommand(
            bids_dirs=ns.bids_dirs,
            output=ns.output,
            failures_output=ns.failures_output,
            participant_labels=ns.participant_labels,
            sessions=ns.sessions,
            include=ns.include,
            exclude=ns.exclude,
            cord_suffixes=ns.cord_suffixes,
            lesion_suffixes=ns.lesion_suffixes,
            strict=ns.strict,
            vertebral_suffixes=ns.vertebral_suffixes,
            disc_suffixes=ns.disc_suffixes,
        )
    if ns.command == "analyze-lesion":
        return AnalyzeLesionCommand(
            lesion=ns.lesion, cord=ns.cord, output=ns.output, image=ns.image,
            threshold=ns.threshold, angle_correction=ns.angle_correction,
            nli_slice=ns.nli_slice, vert_labels=ns.vert_labels, disc_labels=ns.disc_labels,
            output_folder=ns.output_folder,
        )
    if ns.command == "metrics":
        return MetricsCommand(pred=ns.pred, ref=ns.ref, output=ns.output, lesion=ns.lesion, units=ns.units)
    if ns.command == "run":
        return RunCommand(
            bids_dirs=ns.bids_dirs, output=ns.output, model=ns.model, segmenter=ns.segmenter,
            segmenter_options=ns.segmenter_options, participant_labels=ns.participant_labels,
            scheduler=ns.scheduler, cluster=ns.cluster, workers=ns.workers, gpus=ns.gpus, stages=ns.stages, resume=ns.resume,
            retries=ns.retries, units=ns.units, progress=ns.progress, exclude_ratings=ns.exclude_ratings,
            report=ns.report, resampling=ns.resampling, gpu_worker_threads=ns.gpu_worker_threads,
            strict=ns.strict, mask_names=ns.mask_names,
        )
    if ns.command == "report":
        return ReportCommand(out_dir=ns.out_dir, threads=ns.threads)
    if ns.command == "validate":
        return ValidateCommand(
            bids_dirs=ns.bids_dirs, predictions=ns.predictions, output=ns.output, biomarkers=ns.biomarkers,
            reference=ns.reference,
            units=ns.units, strata=ns.strata, participant_labels=ns.participant_labels, include=ns.include,
            exclude=ns.exclude, zero_method=ns.zero_method, wilcoxon_method=ns.wilcoxon_method,
            figures=ns.figures,
        )
    if ns.command == "segment":
        return SegmentCommand(
            image=ns.image, output=ns.output, model=ns.model, folds=ns.folds, checkpoint=ns.checkpoint,
            tta=ns.tta, device=ns.device, threads=ns.threads, tile_step_size=ns.tile_step_size,
            keep_largest_cord=ns.keep_largest_cord, fill_holes=ns.fill_holes, remove_small=ns.remove_small,
            remove_small_lesions=ns.remove_small_lesions, trust_model=ns.trust_model,
            no_postprocessing=ns.no_postprocessing, resampling=ns.resampling,
        )
    if ns.command == "ratings" and ns.action == "worklist":
        return RatingsWorklistCommand(
            ratings=ns.ratings, out_dir=ns.out_dir, output=ns.output, include_artifact=ns.include_artifact,
        )
    if ns.command == "ratings":
        return RatingsPrepareCommand(
            ratings=ns.ratings, out_dir=ns.out_dir, overwrite=ns.overwrite, include_artifact=ns.include_artifact,
        )
    if ns.command == "synth":
        return SynthCommand(
            out=ns.out, sites=ns.sites, subjects_per_site=ns.subjects_per_site, seed=ns.seed,
            from_bids=ns.from_bids,
        )
    return DemoCommand(
        out=ns.out, subjects_per_site=ns.subjects_per_site, seed=ns.seed, segmenter=ns.segmenter,
        workers=ns.workers, progress=ns.progress,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cohort-sciseg`` command; returns the exit status."""
    ns = _parser().parse_args(argv)
    configure_logging(ns.verbose)
    try:
        return _command(ns).run()
    except CohortSciSegError as exc:
        print(f"cohort-sciseg {ns.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"cohort-sciseg {ns.command}: interrupted; finished scans are kept (re-run with --resume)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # a bug, not a known condition: say so, show where, keep exit 1 for "some scans failed"
        traceback.print_exc()
        print(f"cohort-sciseg {ns.command}: internal error (the traceback above); finished scans are kept. "
              "Please report it with the command line and this output.", file=sys.stderr)
        return EXIT_CRASH


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
