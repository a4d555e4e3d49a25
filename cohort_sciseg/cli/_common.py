"""Exit statuses and small helpers shared by the subcommands."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cohort_sciseg.synth import SynthCohort

__all__ = ["EXIT_CRASH", "EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_PROBLEMS", "describe_cohort"]

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_ERROR = 2
#: an uncaught exception (sysexits' EX_SOFTWARE): never confused with 1, "finished with failed scans",
#: nor with 2, "could not run" (which always comes with a fix)
EXIT_CRASH = 70
EXIT_INTERRUPTED = 130


def describe_cohort(cohort: SynthCohort) -> str:
    lines = [
        f"synthetic cohort in {cohort.out_dir} (seed {cohort.seed}): {cohort.n_sites} site(s), "
        f"{cohort.n_subjects} subject(s), {cohort.n_scans} scan(s), {cohort.n_lesions} lesion(s)",
        *(f"  BIDS dataset: {root}" for root in cohort.dataset_roots),
        f"  ground truth: {cohort.lesions_table}, {cohort.scans_table}",
    ]
    return "\n".join(lines)
