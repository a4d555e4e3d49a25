"""``discover`` and ``synth``: find the scans of BIDS datasets, or write a synthetic cohort."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cohort_sciseg.cli._common import EXIT_OK, EXIT_PROBLEMS, describe_cohort

__all__ = ["DiscoverCommand", "SynthCommand"]


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
class SynthCommand:
    """``cohort-sciseg synth OUT``: write a synthetic multi-site SCI cohort (BIDS, one dataset per site)."""

    out: Path
    sites: int = 3
    subjects_per_site: int = 4
    seed: int = 0
    from_bids: Path | None = None
    quality_spread: float = 0.0
    sessions: int | None = None

    def run(self, out: TextIO | None = None) -> int:
        out = out or sys.stdout
        from cohort_sciseg.synth import insert_lesions, synthesize_cohort

        if self.from_bids is not None and self.quality_spread:
            from cohort_sciseg.errors import SynthError, format_error

            msg = format_error(f"--quality-spread {self.quality_spread} with --from-bids",
                               expected="--quality-spread only for a fully synthetic cohort (the real images "
                               "keep their own quality)", fix="drop --quality-spread or --from-bids")
            raise SynthError(msg)
        if self.sessions is not None:
            from cohort_sciseg.synth import synthesize_longitudinal_cohort

            if self.from_bids is not None or self.quality_spread:
                from cohort_sciseg.errors import SynthError, format_error

                msg = format_error(f"--sessions {self.sessions} with --from-bids or --quality-spread",
                                   expected="--sessions alone (a longitudinal phantom cohort)",
                                   fix="drop --from-bids / --quality-spread, or --sessions")
                raise SynthError(msg)
            longitudinal = synthesize_longitudinal_cohort(
                self.out, sites=self.sites, subjects_per_site=self.subjects_per_site, sessions=self.sessions,
                seed=self.seed)
            out.write(f"wrote {longitudinal.n_subjects} subject(s) x {longitudinal.n_sessions} sessions in "
                      f"{len(longitudinal.dataset_roots)} site(s) to {longitudinal.out_dir}; ground truth "
                      f"(motion, lesion events) in {longitudinal.motion_table.parent}\n")
            return EXIT_OK
        if self.from_bids is not None:
            cohort = insert_lesions(self.from_bids, self.out, seed=self.seed)
        else:
            cohort = synthesize_cohort(
                self.out, sites=self.sites, subjects_per_site=self.subjects_per_site, seed=self.seed,
                quality_spread=self.quality_spread,
            )
        out.write(describe_cohort(cohort) + "\n")
        return EXIT_OK
