"""``validate``: predicted masks against manual masks and clinical scores."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from cohort_sciseg.cli._common import EXIT_OK, EXIT_PROBLEMS

__all__ = ["ValidateCommand"]


@dataclass
class ValidateCommand:
    """``cohort-sciseg validate BIDS_DIR... --predictions [METHOD[@SPLIT]=]DIR ... -o OUT``.

    Compares predicted masks with the manual masks of the discovered scans and
    writes the metrics and biomarkers tables, the paper's statistics (with the
    clinical scores of ``participants.tsv``) and its figures into OUT
    (:func:`cohort_sciseg.validation.collect.collect_validation`, then
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
        from cohort_sciseg.report.validation import write_validation
        from cohort_sciseg.validation.collect import collect_validation
        from cohort_sciseg.validation.stats import WilcoxonOptions

        wilcoxon = WilcoxonOptions(zero_method=self.zero_method, method=self.wilcoxon_method)  # type: ignore[arg-type]
        collected = collect_validation(
            self.bids_dirs,
            self.predictions,
            biomarkers=self.biomarkers,
            reference=self.reference,
            strata=self.strata,
            units=self.units,  # type: ignore[arg-type]  # argparse choices
            participant_labels=self.participant_labels,
            include=self.include,
            exclude=self.exclude,
        )
        out.write(f"{collected.n_scans} scan(s) found, {collected.n_with_masks} with manual cord and lesion masks\n")
        for m in collected.methods:
            out.write(f"{m.label}: {m.n_validated} scan(s) validated, {m.n_failed} failed, "
                      f"{m.n_without_predictions} without predictions in {m.folder}\n")
        for b in collected.biomarker_files:
            out.write(f"{b.path}: {b.n_rows} biomarker row(s)\n")
        result = write_validation(
            self.output,
            collected.metrics,
            collected.biomarkers,
            collected.scans,
            failures=collected.failures,
            reference=self.reference,
            strata=self.strata,
            wilcoxon=wilcoxon,
            figures=self.figures,
        )
        for f in collected.failures:
            out.write(f"failed: {f.scan_id or f.path}: {f.message}\n")
        out.write(f"tables: {', '.join(str(p) for p in result.tables.values())}\n")
        out.write(f"statistics: {self.output / 'stats'} ({len(result.stats_files)} files)\n")
        out.write(f"figures: {len(result.figures)} file(s) in {self.output / 'figures'}\n")
        return EXIT_PROBLEMS if collected.failures else EXIT_OK
