"""Single-scan drop-ins: ``analyze-lesion`` (sct_analyze_lesion), ``metrics`` (animaSegPerfAnalyzer)
and ``segment`` (sct_deepseg lesion_sci_t2)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cohort_sciseg.cli._common import EXIT_OK
from cohort_sciseg.errors import SegmentationError, format_error

__all__ = ["AnalyzeLesionCommand", "MetricsCommand", "SegmentCommand"]


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


