"""``compare``: two runs over the same scans (two models, settings or releases) compared."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cohort_sciseg.cli._common import EXIT_OK, EXIT_PROBLEMS

__all__ = ["CompareCommand"]


@dataclass
class CompareCommand:
    """``cohort-sciseg compare RUN_A RUN_B -o OUT [--top N] [--no-figures]``.

    Pairs the scans of the two run folders, measures how far their masks agree and
    how much each biomarker moved (B - A, per site), and writes the tables, the
    Bland-Altman figures and ``compare.html`` into OUT
    (:func:`cohort_sciseg.analysis.compare.compare_runs`). Exit 1 when the masks
    of some scan could not be compared (listed in ``unpaired``).
    """

    run_a: Path
    run_b: Path
    output: Path
    top: int = 10
    figures: bool = True

    def run(self, out: TextIO | None = None) -> int:
        out = out or sys.stdout
        from cohort_sciseg.analysis.compare import compare_runs

        result = compare_runs(self.run_a, self.run_b, self.output, top=self.top, figures=self.figures)
        la, lb = result.labels
        out.write(f"A = {la} ({self.run_a}), B = {lb} ({self.run_b})\n")
        out.write(f"{len(result.scans)} scan(s) compared, {len(result.unpaired)} not compared\n")
        for reason, n in result.unpaired["reason"].value_counts(sort=False).items():
            out.write(f"  {reason}: {n}\n")
        if len(result.scans):
            s = result.scans
            out.write(f"median Dice A vs B: cord {s['cord_dice'].median():.3f}, "
                      f"lesion {s['lesion_dice'].median():.3f}\n")
        overall = result.biomarkers[result.biomarkers["stratum"] == "overall"]
        for row in overall.itertuples(index=False):
            if row.n:
                out.write(f"{row.biomarker}: n = {row.n}, {row.n_changed} changed, bias (B - A) = "
                          f"{row.bias:.4g} {row.unit}, Wilcoxon p = {row.wilcoxon_p:.3g}\n")
        out.write(f"moved most: {', '.join(result.moved['scan_id']) or 'none'}\n")
        out.write(f"tables: {', '.join(str(p) for p in result.tables.values())}\n")
        if result.figures:
            out.write(f"figures: {len(result.figures)} file(s) in {self.output / 'figures'}\n")
        if result.page is not None:
            out.write(f"page: {result.page}\n")
        problems = (result.unpaired["reason"] == "masks not comparable").any()
        return EXIT_PROBLEMS if problems else EXIT_OK
