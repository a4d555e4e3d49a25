"""The argument parser of ``cohort-sciseg`` and the command it builds.

Why argparse, not a dataclass-driven CLI such as tyro (issue 16)
---------------------------------------------------------------
Each option used to be declared three times: a dataclass field, an ``add_argument``
and a line of a hand-written dispatch block. tyro would declare it once (the
field), but on paper it does not fit what the command line must keep:

- SCT/ANIMA drop-in spellings: single-dash multi-letter options
  (``analyze-lesion -m -s -i -nli-slice -ofolder``, ``metrics -i -r -l``) and short
  aliases of long options; tyro derives ``--field-name`` flags and needs a
  ``tyro.conf.arg`` annotation per alias, so the fields would carry the argparse
  declarations anyway.
- argparse features in use that tyro lacks or spells otherwise: mutually
  exclusive groups (``--scheduler | --cluster``, ``--resume | --no-resume``), an
  optional value with a constant (``--fill-holes [3d|slice]``), ``action="append"``
  with a default (``-p METHOD=DIR`` repeated, ``--stratify``), ``nargs="+"`` next to
  positional ``nargs="+"``, a ``type=`` converter with its own message (``--gpus N|auto``),
  the nested ``ratings worklist|prepare``.
- Our error contract: argparse's usage line and ``error: ...`` with exit 2, our
  own messages from :func:`cohort_sciseg.errors.format_error`; tyro prints its own
  (rich) error panels and help layout.
- A new dependency (tyro, with rich, docstring-parser, typeguard) imported by
  every command, ``--help`` included, for no gain the users see.

So argparse stays, and the third declaration is gone: every (sub)parser names its
command class (``set_defaults(command_class=...)``) and :func:`command_from_namespace`
builds the command from the namespace through :func:`dataclasses.fields` (an
``add_argument`` whose ``dest`` is not a field of its command fails the tests).
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Protocol, TextIO

from cohort_sciseg._version import __version__
from cohort_sciseg.cli.commands import (
    AnalyzeLesionCommand,
    CompareCommand,
    DemoCommand,
    DiscoverCommand,
    ExportNnunetCommand,
    LongitudinalCommand,
    MetricsCommand,
    RatingsPrepareCommand,
    RatingsWorklistCommand,
    ReportCommand,
    RunCommand,
    SegmentCommand,
    SynthCommand,
    ValidateCommand,
)

__all__ = ["Command", "build_parser", "command_from_namespace"]

#: Namespace entries that are not options of a command.
_NOT_OPTIONS = frozenset({"verbose", "command", "action", "command_class"})


class Command(Protocol):
    """A subcommand: a dataclass of its options whose ``run`` prints to ``out`` and returns the exit status."""

    def run(self, out: TextIO | None = None) -> int: ...


def command_from_namespace(ns: argparse.Namespace) -> Command:
    """The command of parsed arguments: its class (``command_class``) built from the matching entries."""
    cls = ns.command_class
    options = {k: v for k, v in vars(ns).items() if k not in _NOT_OPTIONS}
    unknown = sorted(set(options) - {f.name for f in fields(cls)})
    if unknown:  # a parser bug, never a user's mistake
        msg = f"the parser of {cls.__name__} gives {unknown}, which are not its fields"
        raise TypeError(msg)
    command: Command = cls(**options)
    return command


_RESAMPLING_HELP = (
    "resampling to and from the model's spacing: exact (nnU-Net's scipy path, as SCT; default) or torch "
    "(the same operator as matrix products on the model's device: same masks, several times faster)"
)



def _gpus(text: str) -> str:
    if text == "auto" or (text.isdigit() and int(text) >= 0):
        return text
    msg = f"invalid value {text!r}: expected a number of GPUs (0 for CPU only) or 'auto'"
    raise argparse.ArgumentTypeError(msg)



def build_parser() -> argparse.ArgumentParser:
    """The ``cohort-sciseg`` parser; each subcommand's namespace names its command class."""
    p = argparse.ArgumentParser(
        prog="cohort-sciseg",
        description="Batch cohort analysis of spinal cord injury T2w MRI with SCIseg (nnU-Net v2) on Dask.",
    )
    p.add_argument("--version", action="version", version=f"cohort-sciseg {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("discover", help="find T2w scans, masks, sidecars and clinical tables in BIDS datasets",
                       description="Find the T2w scans of BIDS datasets (one dataset per site) with their manual "
                       "masks, vertebral labels, JSON sidecars and participants.tsv rows; print a summary and write "
                       "the scans table and the problems table (Parquet). Nothing is segmented.")
    d.set_defaults(command_class=DiscoverCommand)
    d.add_argument("bids_dirs", nargs="+", type=Path, metavar="BIDS_DIR", help="one BIDS dataset per site")
    d.add_argument("-o", "--output", type=Path, help="write the scans table here (Parquet)")
    d.add_argument("--failures-output", type=Path, help="problems table (default: failures.parquet beside -o)")
    d.add_argument("--participant-label", nargs="+", dest="participant_labels", metavar="LABEL",
                   help="only these subjects (sub-01 or 01)")
    d.add_argument("--session", nargs="+", dest="sessions", metavar="LABEL", help="only these sessions (ses-01 or 01)")
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

    s = sub.add_parser("synth", help="write a synthetic multi-site SCI cohort as BIDS datasets",
                       description="Write a synthetic multi-site SCI cohort into OUT: one BIDS dataset per site "
                       "with manual masks and clinical scores, and the ground truth of every inserted lesion "
                       "(OUT/ground_truth/).")
    s.set_defaults(command_class=SynthCommand)
    s.add_argument("out", type=Path, metavar="OUT", help="output folder")
    s.add_argument("--sites", type=int, default=3, help="number of sites (default 3)")
    s.add_argument("--subjects-per-site", type=int, default=4, help="subjects per site (default 4)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0): the same seed gives the same cohort")
    s.add_argument("--from-bids", type=Path, metavar="BIDS_DIR",
                   help="semi-synthetic: insert lesions into the real cords of this dataset")
    s.add_argument("--sessions", type=int, choices=(2, 3), metavar="N",
                   help="a longitudinal cohort instead: every subject scanned N times (2 or 3) with known rigid "
                        "motion and lesion evolution (ground truth motion.parquet, lesion_events.parquet)")
    s.add_argument("--quality-spread", type=float, default=0.0, metavar="S",
                   help="image qualities drawn in [1 - S, 1] scale each image's signal-to-noise ratio and lesion "
                        "contrast (default 0: every image at its site's protocol); e.g. 0.7 for a cohort a model "
                        "gets wrong unevenly")

    a = sub.add_parser("analyze-lesion", help="lesion morphometrics of one scan (drop-in for sct_analyze_lesion)",
                       description="Lesion morphometrics of one scan from its lesion and cord masks, with the "
                       "definitions of SCT's sct_analyze_lesion (its -m, -s, -i, -nli-slice, -ofolder are accepted): "
                       "one row per lesion, the per-sagittal-slice tissue bridges and a per-scan summary.")
    a.set_defaults(command_class=AnalyzeLesionCommand)
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
    a.add_argument("--no-angle-correction", dest="angle_correction", action="store_false",
                   help="no cos-theta correction from the cord's centerline (SCT corrects)")

    q = sub.add_parser("metrics", help="segmentation metrics of one pair (drop-in for animaSegPerfAnalyzer)",
                       description="Segmentation metrics of one predicted mask against one reference mask: "
                       "animaSegPerfAnalyzer's measures with its rules (its -i, -r, -l are accepted) and, under "
                       "'corrected', the correct ones (ASSD, HD95, NSD, lesion-wise F1), written as JSON.")
    q.set_defaults(command_class=MetricsCommand)
    q.add_argument("--pred", "-i", type=Path, required=True, help="predicted mask")
    q.add_argument("--ref", "-r", type=Path, required=True, help="reference (manual) mask")
    q.add_argument("--lesion", "-l", action="store_true", help="also lesion detection metrics (ANIMA -l)")
    q.add_argument("--units", choices=("mm", "voxel"), default="mm", help="distance convention (default mm)")
    q.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.json", help="write the metrics here (JSON)")

    v = sub.add_parser("validate", help="validate predicted masks against manual masks and clinical scores",
                       description="Validate predicted masks against the manual masks of BIDS datasets: metrics "
                       "per scan, the paper's biomarkers, statistics (agreement, methods, clinical correlations, "
                       "cohort table) and figures, written to OUT_DIR.")
    v.set_defaults(command_class=ValidateCommand)
    v.add_argument("bids_dirs", nargs="+", type=Path, metavar="BIDS_DIR", help="one BIDS dataset per site")
    v.add_argument("--predictions", "-p", action="append", default=[], metavar="[METHOD[@SPLIT]=]DIR",
                   help="folder of <scan>_sc_seg/_lesion_seg.nii.gz masks; repeat for methods and splits")
    v.add_argument("--biomarkers", action="append", default=[], type=Path, metavar="FILE",
                   help="biomarker table (Parquet or CSV: scan_id, method, [split,] n_lesions, total_volume_mm3, "
                        "total_length_mm, max_axial_damage_ratio), e.g. from morphometry runs")
    v.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="output folder")
    v.add_argument("--reference", metavar="METHOD", help="method compared with the others (default: first)")
    v.add_argument("--units", choices=("mm", "voxel"), default="mm", help="distance convention (default mm)")
    v.add_argument("--stratify", action="append", default=[], dest="strata", metavar="COLUMN",
                   help="also summarise by this participants/sidecar/scan column (e.g. etiology, manufacturer)")
    v.add_argument("--participant-label", nargs="+", dest="participant_labels", metavar="LABEL",
                   help="only these subjects (sub-01 or 01)")
    v.add_argument("--include", type=Path, metavar="FILE", help="file with the scan ids to keep")
    v.add_argument("--exclude", type=Path, metavar="FILE", help="file with the scan ids to drop")
    v.add_argument("--zero-method", choices=("wilcox", "pratt", "zsplit"), default="wilcox",
                   help="scipy.stats.wilcoxon zero_method (default wilcox)")
    v.add_argument("--wilcoxon-method", choices=("auto", "exact", "approx"), default="auto",
                   help="scipy.stats.wilcoxon method (default auto)")
    v.add_argument("--no-figures", dest="figures", action="store_false", help="statistics only, no figures")

    r = sub.add_parser("run", help="segment, measure and validate a cohort on Dask (LocalCluster by default)",
                       description="Segment every T2w scan of the BIDS datasets, measure its lesions and validate "
                       "it against its manual masks where they exist, on a Dask cluster: this machine by default, "
                       "--cluster FILE (local, SLURM, Kubernetes) or --scheduler. Writes OUT_DIR (one BIDS "
                       "derivative dataset per site, tables/, report/, logs/); running it again resumes.")
    r.set_defaults(command_class=RunCommand)
    r.add_argument("bids_dirs", nargs="+", type=Path, metavar="BIDS_DIR", help="one BIDS dataset per site")
    r.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR",
                   help="run folder: one BIDS derivative dataset per site, tables/, report/, logs/ (an earlier run's "
                   "folder is resumed)")
    r.add_argument("--model", metavar="demo|sct:TASK|PATH",
                   help="same as --segmenter-option model=...: 'demo' (the bundled model; default), "
                   "sct:lesion_sci_t2 (SCIseg as an installed SCT holds it: found from SCT_DIR, else sct_deepseg "
                   "on PATH; sct:SCT_DIR:lesion_sci_t2 names the folder) or an nnU-Net v2 model folder")
    r.add_argument("--segmenter", default="nnunet",
                   help="segmenter plugin: nnunet (default), copy-manual, or package.module:Factory")
    r.add_argument("--segmenter-option", action="append", dest="segmenter_options", metavar="KEY=VALUE",
                   help="option of the segmenter (e.g. tta=true, device=cuda)")
    r.add_argument("--participant-label", nargs="+", dest="participant_labels", metavar="LABEL",
                   help="only these subjects (sub-01 or 01)")
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
    r.add_argument("--units", choices=("mm", "voxel"), default="mm",
                   help="distance convention of the metrics (default mm)")
    r.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar, only the summary")
    r.add_argument("--no-report", dest="report", action="store_false",
                   help="no HTML QC report (report/): no per-scan images, no index")
    r.add_argument("--no-longitudinal", dest="longitudinal", action="store_false",
                   help="do not align and track the subjects with several sessions at the end "
                   "(`cohort-sciseg longitudinal OUT_DIR` does it later)")
    r.add_argument("--exclude-ratings", type=Path, metavar="FILE",
                   help="leave out the scans rated fail or artifact in this ratings file of the QC report (.csv, .yaml)")
    r.add_argument("--mask-names", choices=("bids", "sct"), default="bids",
                   help="names of the predicted masks: bids (default; one BIDS derivative dataset per site, "
                   "<entities>_label-SC_mask / _label-lesion_mask) or sct (<scan_id>_sc_seg / _lesion_seg, as "
                   "sct_deepseg; not BIDS-valid)")
    r.add_argument("--strict", action="store_true",
                   help="stop at the first discovery problem (a bad file, a folder that is not a BIDS dataset) "
                   "instead of recording it and running the other scans")

    lg = sub.add_parser("longitudinal", help="align the sessions of each subject, track lesions, change tables",
                        description="The longitudinal step of a finished run (run does it at its end when a subject "
                        "has several sessions of the same acquisition): each follow-up aligned rigidly to the "
                        "subject's baseline within the cord (SimpleITK; flagged when the cord Dice after alignment "
                        "is below --min-cord-dice), lesions matched by overlap in the baseline space (persisting, "
                        "new, resolved, merged, split), tables/lesion_tracks, tables/lesion_changes and "
                        "tables/session_alignments, longitudinal/subject_changes.parquet and statistics.parquet, "
                        "and a timeline per subject in the QC report.")
    lg.set_defaults(command_class=LongitudinalCommand)
    lg.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="the `cohort-sciseg run` output folder")
    lg.add_argument("--min-cord-dice", type=float, default=0.7, metavar="D",
                    help="cord Dice after alignment below which a follow-up is not tracked (default 0.7)")
    lg.add_argument("--threads", type=int, default=1, metavar="N", help="SimpleITK threads per registration (default 1)")
    lg.add_argument("--no-report", dest="report", action="store_false", help="tables only, no timeline pages")

    rp_ = sub.add_parser("report", help="build or update the HTML QC report of a run (OUT_DIR/report/index.html)",
                         description="Build or update the HTML QC report of a run folder (OUT_DIR/report/index.html, "
                         "opened from disk): make the missing scan pages and rewrite the index, failures and cohort "
                         "pages.")
    rp_.set_defaults(command_class=ReportCommand)
    rp_.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="the `cohort-sciseg run` output folder")
    rp_.add_argument("--threads", type=int, metavar="N", help="threads making missing scan pages (default: CPUs)")

    c = sub.add_parser("compare", help="compare two runs over the same scans: mask agreement and biomarker changes",
                       description="Compare two finished runs over the same scans (two models, settings or releases; "
                       "A the reference, B the candidate): per scan the Dice of the cord and lesion masks and the "
                       "lesion-wise F1 of B against A, each biomarker in A and B; per biomarker and site Wilcoxon and "
                       "Bland-Altman of B - A; the scans that moved most; which run is closer to the manual masks. "
                       "Writes OUT/tables/*.parquet, OUT/figures/, OUT/compare.html and OUT/compare.json.")
    c.set_defaults(command_class=CompareCommand)
    c.add_argument("run_a", type=Path, metavar="RUN_A", help="the reference run folder (-o of `cohort-sciseg run`)")
    c.add_argument("run_b", type=Path, metavar="RUN_B", help="the run compared with it")
    c.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="output folder (outside both runs)")
    c.add_argument("--top", type=int, default=10, metavar="N",
                   help="scans listed as moved most, by relative change of the total lesion volume (default 10)")
    c.add_argument("--no-figures", dest="figures", action="store_false", help="tables and page only, no figures")

    rt = sub.add_parser("ratings", help="QC report ratings: worklist of scans to correct, manual-mask starting points",
                        description="Act on the ratings exported from the QC report (CSV or YAML): list the scans "
                        "rated fail (worklist), or copy their predictions to their manual-mask paths as starting "
                        "points for corrections (prepare).")
    rt_sub = rt.add_subparsers(dest="action", required=True, metavar="ACTION")
    rw = rt_sub.add_parser("worklist", help="the scans rated fail, with images, predictions and manual-mask paths (CSV)",
                           description="The scans rated fail (and artifact, with --include-artifact) with their "
                           "image, predicted masks and the manual-mask paths where corrections go, as CSV.")
    rw.set_defaults(command_class=RatingsWorklistCommand)
    rp = rt_sub.add_parser("prepare", help="copy the predictions of the scans rated fail to their manual-mask paths",
                           description="Copy the predicted masks of the scans rated fail to their manual-mask paths "
                           "in derivatives/labels, as starting points for corrections (existing manual masks are "
                           "kept unless --overwrite); then correct them and run again.")
    rp.set_defaults(command_class=RatingsPrepareCommand)
    for x in (rw, rp):
        x.add_argument("ratings", type=Path, metavar="RATINGS", help="ratings exported from the QC report (.csv, .yaml)")
        x.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="the `cohort-sciseg run` folder the report shows")
        x.add_argument("--include-artifact", action="store_true", help="also the scans rated artifact")
    rw.add_argument("-o", "--output", type=Path, metavar="worklist.csv", help="write the worklist here (default: print it)")
    rw.add_argument("--rank", choices=("rating", "uncertainty", "disagreement"), default="rating",
                    help="rating (default): the rated scans; uncertainty: the scans not yet corrected nor rated pass, "
                    "most uncertain lesion first (tables/scans lesion_uncertainty; ties by scan_id), with a rank column; "
                    "disagreement: the same by lesion_disagreement (runs with --segmenter-option disagreement=true)")
    rw.add_argument("--top", type=int, metavar="K", help="with --rank uncertainty or disagreement: the first K scans only")
    rp.add_argument("--overwrite", action="store_true", help="replace existing manual masks (default: keep them)")

    x_ = sub.add_parser("export-nnunet", help="scans with manual or corrected masks as an nnU-Net v2 training set",
                        description="Write the scans whose cord and lesion masks are manual or corrected (and, "
                        "optionally, QC-passed predictions) as an nnU-Net v2 raw dataset OUT_DIR/Dataset<ID>_<NAME> "
                        "built as SCIseg's: RPI images (imagesTr/<case>_0000.nii.gz), labels 0/1/2 with the regions "
                        "sc=[1,2] and lesion=2, held-out test subjects in imagesTs/labelsTs, subject-grouped folds "
                        "(splits_final.json) and a manifest of every case's source and mask provenance.")
    x_.set_defaults(command_class=ExportNnunetCommand)
    x_.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="an nnUNet_raw folder; the dataset goes in a new "
                    "folder Dataset<ID>_<NAME> inside it")
    x_.add_argument("--bids", nargs="+", required=True, type=Path, dest="bids_dirs", metavar="BIDS_DIR",
                    help="the BIDS datasets (one per site) whose derivatives/labels hold the masks")
    x_.add_argument("--dataset-id", required=True, metavar="ID", help="nnU-Net dataset id, 1-999 (e.g. 501)")
    x_.add_argument("--name", required=True, help="dataset name: letters, digits, _ and -")
    x_.add_argument("--test-fraction", type=float, default=0.2,
                    help="share of each site's subjects held out in imagesTs (default 0.2; 0: none)")
    x_.add_argument("--folds", type=int, default=5, help="cross-validation folds over the training subjects (default 5)")
    x_.add_argument("--seed", type=int, default=0, help="seed of the splits (default 0)")
    x_.add_argument("--include-qc-passed", type=Path, metavar="RUN_DIR",
                    help="also the scans rated pass in --ratings, with this run's predictions where a manual mask "
                    "is missing")
    x_.add_argument("--ratings", type=Path, metavar="FILE", help="ratings exported from RUN_DIR's QC report (.csv, .yaml)")
    x_.add_argument("--overwrite", action="store_true", help="replace an existing non-empty dataset folder")

    g = sub.add_parser("segment", help="cord and lesion masks of one image (drop-in for sct_deepseg lesion_sci_t2)",
                       description="Cord and lesion masks of one T2w image with an nnU-Net v2 model, as sct_deepseg "
                       "lesion_sci_t2 computes them: writes PREFIX_sc_seg.nii.gz and PREFIX_lesion_seg.nii.gz with "
                       "JSON sidecars and prints the model, device and post-processing used.")
    g.set_defaults(command_class=SegmentCommand)
    g.add_argument("image", type=Path, metavar="IMAGE", help="T2w image (.nii or .nii.gz)")
    g.add_argument("-o", "--output", type=Path, metavar="PREFIX",
                   help="writes PREFIX_sc_seg.nii.gz, PREFIX_lesion_seg.nii.gz (default: IMAGE without extension)")
    g.add_argument("--model", default="demo", metavar="demo|sct:TASK|PATH",
                   help="'demo', the bundled model (default); sct:lesion_sci_t2, SCIseg as an installed SCT "
                   "holds it (found from SCT_DIR, else sct_deepseg on PATH; sct:SCT_DIR:lesion_sci_t2 names "
                   "the folder; nothing is downloaded); or an nnU-Net v2 model folder (e.g. an unzipped "
                   "SCIseg release)")
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

    m = sub.add_parser("demo", help="run the embedded default job on a synthetic 3-site cohort",
                       description="The embedded default job: synthesize a 3-site cohort with manual masks and "
                       "clinical scores, then segment, measure and validate it with the bundled demo model on this "
                       "machine (OUT/cohort, OUT/derivatives). A second call resumes.")
    m.set_defaults(command_class=DemoCommand)
    m.add_argument("-o", "--out", type=Path, default=Path("demo"), help="output folder (default: demo)")
    m.add_argument("--subjects-per-site", type=int, default=4, help="subjects per site (default 4)")
    m.add_argument("--seed", type=int, default=0, help="random seed of the cohort (default 0)")
    m.add_argument("--segmenter", default="nnunet", help="segmenter plugin (default: nnunet, the bundled model)")
    m.add_argument("--workers", type=int, help="LocalCluster worker processes")
    m.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar, only the summary")
    return p

