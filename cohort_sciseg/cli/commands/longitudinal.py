"""``longitudinal``: the subjects with several sessions of a finished run, aligned, tracked and tabulated."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cohort_sciseg.cli._common import EXIT_OK, EXIT_PROBLEMS

__all__ = ["LongitudinalCommand"]


@dataclass
class LongitudinalCommand:
    """``cohort-sciseg longitudinal OUT_DIR [--min-cord-dice 0.7] [--threads N] [--no-report]``.

    Runs the longitudinal step of a finished run again (``run`` does it at its end when
    a subject has several sessions): :func:`cohort_sciseg.longitudinal.analyze_run`, then
    refreshes the QC report's index pages. Exit 1 when a subject could not be analysed or
    an alignment failed its check (both listed).
    """

    out_dir: Path
    min_cord_dice: float = 0.7
    threads: int = 1
    report: bool = True

    def run(self, out: TextIO | None = None) -> int:
        out = out or sys.stdout
        from cohort_sciseg.io import RunLayout
        from cohort_sciseg.longitudinal import analyze_run

        summary = analyze_run(self.out_dir, min_cord_dice=self.min_cord_dice, threads=self.threads,
                              report=self.report)
        out.write(summary.format() + "\n")
        for name, path in summary.tables.items():
            out.write(f"  {name}: {path}\n")
        if self.report and RunLayout(self.out_dir).report.is_dir():
            from cohort_sciseg.report import build_report

            built = build_report(self.out_dir, render_missing=False)
            out.write(f"QC report: {built.path.resolve().as_uri()}\n")
        return EXIT_PROBLEMS if summary.problems or summary.failed_alignments else EXIT_OK
