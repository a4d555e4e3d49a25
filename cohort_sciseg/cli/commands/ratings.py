"""``ratings worklist`` and ``ratings prepare``: act on the QC report's ratings."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cohort_sciseg.cli._common import EXIT_OK

__all__ = ["RatingsPrepareCommand", "RatingsWorklistCommand"]


def _ratings_to_fix(include_artifact: bool) -> tuple[str, ...]:
    return ("fail", "artifact") if include_artifact else ("fail",)


@dataclass
class RatingsWorklistCommand:
    """``cohort-sciseg ratings worklist RATINGS OUT_DIR [-o worklist.csv] [--include-artifact] [--rank uncertainty [--top K]]``.

    The scans rated fail (and artifact) in the ratings exported from the QC report,
    with their image, predicted masks and the manual-mask paths where corrections
    go, as CSV (see :func:`cohort_sciseg.report.ratings.worklist`). ``--rank
    uncertainty``: instead, the scans not yet corrected (nor rated pass), most
    uncertain lesion first, with a ``rank`` column (``--rank disagreement``: by the
    ensemble members' disagreement); ``--top K`` keeps the first K.
    """

    ratings: Path
    out_dir: Path
    output: Path | None = None
    include_artifact: bool = False
    rank: str = "rating"
    top: int | None = None

    def run(self, out: TextIO | None = None) -> int:
        out = out or sys.stdout
        from cohort_sciseg.errors import ReportError, format_error
        from cohort_sciseg.io import atomic_write_text
        from cohort_sciseg.report.ratings import worklist

        if self.top is not None and (self.rank == "rating" or self.top < 1):
            msg = format_error(f"--top {self.top} is not valid",
                               expected="an integer >= 1 with --rank uncertainty or disagreement",
                               fix="pass --rank uncertainty --top K with K >= 1, or leave --top out")
            raise ReportError(msg)
        fix = _ratings_to_fix(self.include_artifact)
        todo = worklist(self.ratings, self.out_dir, ratings_to_fix=fix,  # type: ignore[arg-type]
                        rank=self.rank, top=self.top)  # type: ignore[arg-type]
        text = todo.to_csv(index=False)
        if self.output is None:
            out.write(text)
            return EXIT_OK
        atomic_write_text(self.output, text)
        what = {"uncertainty": "not yet corrected, most uncertain lesion first",
                "disagreement": "not yet corrected, lesion the ensemble members disagree on most first"}.get(
                    self.rank, f"rated {' or '.join(fix)} to correct")
        out.write(f"{len(todo)} scan(s) {what}; worklist: {self.output}\n")
        return EXIT_OK


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


