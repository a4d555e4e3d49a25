"""A validation study's inputs, from BIDS datasets and prediction folders (``cohort-sciseg validate``).

:func:`collect_validation` discovers the scans, checks the options against them
before any metric is computed (prediction specs, reference method, strata),
computes the metrics and biomarkers of every method and split
(:func:`~cohort_sciseg.validation.validate_scans`) and reads the given biomarker
tables. The caller writes the result:
:func:`cohort_sciseg.report.validation.write_validation` saves the tables, the
statistics and the figures (``report/`` sits above ``validation/``, so the
figures cannot be drawn from here)::

    collected = collect_validation(roots, ["sciseg=preds/"], reference="sciseg")
    write_validation(out, collected.metrics, collected.biomarkers, collected.scans,
                     failures=collected.failures, reference="sciseg")
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa

from cohort_sciseg.errors import ValidationError, format_error
from cohort_sciseg.records import METRICS_SCHEMA, Failure

__all__ = [
    "BiomarkerFile",
    "CollectedValidation",
    "MethodResult",
    "PredictionSet",
    "collect_validation",
    "parse_prediction_set",
]


@dataclass(frozen=True, slots=True)
class PredictionSet:
    """Predicted masks of one method (and split) in one folder."""

    method: str
    split: str | None
    folder: Path

    @property
    def label(self) -> str:
        """``METHOD`` or ``METHOD@SPLIT``."""
        return self.method + (f"@{self.split}" if self.split else "")


def parse_prediction_set(spec: str) -> PredictionSet:
    """``[METHOD[@SPLIT]=]DIR`` -> :class:`PredictionSet`; the method defaults to ``sciseg``."""
    name, sep, folder = spec.partition("=")
    if not sep:
        return PredictionSet("sciseg", None, Path(spec))
    method, _, split = name.partition("@")
    if not method:
        msg = format_error(f"predictions {spec!r}: empty method name", expected="[METHOD[@SPLIT]=]DIR",
                           fix="name the method before '=' (e.g. sciseg=preds/), or give only DIR")
        raise ValidationError(msg)
    return PredictionSet(method, split or None, Path(folder))


@dataclass(frozen=True, slots=True)
class MethodResult:
    """How many scans one prediction set validated."""

    label: str
    folder: Path
    n_validated: int
    n_failed: int
    n_without_predictions: int


@dataclass(frozen=True, slots=True)
class BiomarkerFile:
    """A biomarker table read from a file."""

    path: Path
    n_rows: int


@dataclass(frozen=True)
class CollectedValidation:
    """What :func:`collect_validation` found and computed.

    Attributes
    ----------
    n_scans, n_with_masks
        Scans discovered, and those with manual cord and lesion masks.
    metrics, biomarkers
        Tables of every prediction set (and biomarker file), concatenated.
    scans
        :func:`~cohort_sciseg.validation.study.flat_scans` of the discovered scans.
    failures
        Discovery problems and the scans whose validation failed.
    methods, biomarker_files
        Per prediction set and per biomarker file, what was read.
    """

    n_scans: int
    n_with_masks: int
    metrics: pa.Table
    biomarkers: pa.Table
    scans: pd.DataFrame
    failures: tuple[Failure, ...]
    methods: tuple[MethodResult, ...]
    biomarker_files: tuple[BiomarkerFile, ...]


def collect_validation(
    bids_dirs: Sequence[str | os.PathLike[str]],
    predictions: Sequence[str | PredictionSet] = (),
    *,
    biomarkers: Sequence[str | os.PathLike[str]] = (),
    reference: str | None = None,
    strata: Sequence[str] = (),
    units: Literal["mm", "voxel"] = "mm",
    participant_labels: Sequence[str] | None = None,
    include: str | os.PathLike[str] | None = None,
    exclude: str | os.PathLike[str] | None = None,
) -> CollectedValidation:
    """Metrics and biomarkers of every prediction set, and the biomarker tables given.

    Parameters
    ----------
    bids_dirs
        One BIDS dataset per site (manual masks in ``derivatives/labels``).
    predictions
        Prediction sets, or their ``[METHOD[@SPLIT]=]DIR`` specs.
    biomarkers
        Biomarker tables (Parquet or CSV) to compare too.
    reference, strata
        The statistics' options (see
        :func:`~cohort_sciseg.validation.study.validation_statistics`): checked here,
        before any metric is computed, so that a typo costs no work.
    units
        Distance convention of the metrics.
    participant_labels, include, exclude
        Discovery filters (see :func:`~cohort_sciseg.discover.find_scans`).

    Raises
    ------
    ValidationError
        Nothing to validate, a prediction set given twice, an unknown reference
        method or stratum column.
    """
    from cohort_sciseg.discover import find_scans
    from cohort_sciseg.validation.cohort import find_predictions, validate_scans
    from cohort_sciseg.validation.study import STRATA, flat_scans, read_biomarkers

    sets = [p if isinstance(p, PredictionSet) else parse_prediction_set(p) for p in predictions]
    _check_sets(sets, biomarkers, reference)
    discovery = find_scans(bids_dirs, participant_labels=participant_labels, include=include, exclude=exclude)
    scans_frame = flat_scans(discovery.scans)
    _check_strata(scans_frame, [*STRATA, *strata])
    scans = [s for s in discovery.scans if s.has_manual_masks]
    metrics, bio, failures, methods = [], [], list(discovery.problems), []
    for ps in sets:
        preds = find_predictions(scans, ps.folder)
        tables = validate_scans(scans, preds, method=ps.method, split=ps.split, units=units)
        metrics.append(tables.metrics)
        bio.append(tables.biomarkers)
        failures += tables.failures
        n_ok = len(set(tables.metrics.column("scan_id").to_pylist()))
        methods.append(MethodResult(ps.label, ps.folder, n_ok, len(tables.failures), len(scans) - len(preds)))
    files = []
    for path in biomarkers:
        table = read_biomarkers(path, discovery.scans)
        bio.append(table)
        files.append(BiomarkerFile(Path(path), table.num_rows))
    return CollectedValidation(
        n_scans=len(discovery.scans),
        n_with_masks=len(scans),
        metrics=pa.concat_tables(metrics) if metrics else METRICS_SCHEMA.empty_table(),
        biomarkers=pa.concat_tables(bio),
        scans=scans_frame,
        failures=tuple(failures),
        methods=tuple(methods),
        biomarker_files=tuple(files),
    )


def _check_sets(sets: Sequence[PredictionSet], biomarkers: Sequence[object], reference: str | None) -> None:
    if not sets and not biomarkers:
        msg = format_error("nothing to validate", expected="predicted masks or biomarker tables",
                           fix="give prediction folders (-p [METHOD[@SPLIT]=]DIR) or --biomarkers FILE")
        raise ValidationError(msg)
    labels = [ps.label for ps in sets]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        msg = format_error(f"predictions: the same METHOD@SPLIT is given twice ({', '.join(twice)})",
                           expected="one folder per method and split",
                           fix="name each folder's method and split (-p dil@0=DIR0 -p dil@1=DIR1)")
        raise ValidationError(msg)
    methods = sorted({ps.method for ps in sets})
    if reference is not None and reference not in methods:
        msg = format_error(
            f"reference method {reference!r} is not among the methods of the predictions",
            expected=f"one of {methods}" if methods else "a method given with -p METHOD=DIR",
            fix="pass one of them as --reference (default: the first in sorted order)",
        )
        raise ValidationError(msg)


def _check_strata(scans: pd.DataFrame, strata: Sequence[str]) -> None:
    missing = [c for c in dict.fromkeys(strata) if c not in scans.columns]
    if missing:
        known = ", ".join(sorted(map(str, scans.columns)))
        msg = format_error(
            f"cannot stratify by {', '.join(map(repr, missing))}: not a scan, participant or sidecar column",
            expected=f"one of {known}",
            fix="check the column name in participants.tsv or the JSON sidecars (--stratify COLUMN)",
        )
        raise ValidationError(msg)
