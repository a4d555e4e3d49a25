"""The output folder of ``cohort-sciseg compare`` and its tables' schemas (see :mod:`cohort_sciseg.analysis.compare`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pyarrow as pa

from cohort_sciseg.schemas import BIOMARKERS_SCHEMA
from cohort_sciseg.schemas import arrow_field as _f
from cohort_sciseg.validation.clinical import BIOMARKERS
from cohort_sciseg.validation.cohort import BRIDGE_COLUMNS

__all__ = [
    "BIOMARKER_UNITS",
    "COMPARED_BIOMARKERS",
    "COMPARE_BIOMARKERS_SCHEMA",
    "COMPARE_SCANS_SCHEMA",
    "COMPARE_TABLE_SCHEMAS",
    "MOVED_SCHEMA",
    "UNPAIRED_REASONS",
    "UNPAIRED_SCHEMA",
    "CompareLayout",
]

#: The biomarkers compared: the paper's three and the tissue bridges of the largest lesion.
COMPARED_BIOMARKERS: tuple[str, ...] = (*BIOMARKERS, *BRIDGE_COLUMNS)
#: Unit and description of each compared biomarker: those of the biomarkers table (one source).
_FIELDS = {f.name: f for f in BIOMARKERS_SCHEMA}
BIOMARKER_UNITS = {n: _FIELDS[n].metadata[b"unit"].decode() for n in COMPARED_BIOMARKERS}
_DOCS = {n: _FIELDS[n].metadata[b"description"].decode() for n in COMPARED_BIOMARKERS}

#: ``reason`` values of the unpaired table, in the order rows are listed.
UNPAIRED_REASONS = (
    "only in run A",
    "only in run B",
    "failed in both runs",
    "failed in run A",
    "failed in run B",
    "masks not comparable",
)


def _biomarker_fields() -> list[pa.Field]:
    out = []
    for name in COMPARED_BIOMARKERS:
        doc, unit = _DOCS[name], BIOMARKER_UNITS[name]
        out += [
            _f(f"{name}_a", pa.float64(), f"{doc}, run A", unit),
            _f(f"{name}_b", pa.float64(), f"{doc}, run B", unit),
            _f(f"{name}_diff", pa.float64(), f"{doc}, B - A", unit),
        ]
    return out


#: ``OUT/tables/scans.parquet``: one row per scan done in both runs.
COMPARE_SCANS_SCHEMA = pa.schema(
    [
        _f("scan_id", pa.string(), "site-qualified unique scan id", nullable=False),
        _f("site", pa.string(), "site label", nullable=False),
        _f("sub", pa.string(), "BIDS subject label"),
        _f("ses", pa.string(), "BIDS session label"),
        _f("cord_dice", pa.float64(), "Dice of the cord masks of A and B (1 when both are empty); higher is closer", "1"),
        _f("lesion_dice", pa.float64(), "Dice of the lesion masks of A and B (1 when both are empty); higher is closer", "1"),
        _f("lesion_f1", pa.float64(), "lesion-wise F1 of B against A (MetricsReloaded-style, >= 10 % coverage, "
           "6-connected; NaN when neither has a lesion); higher is closer", "1"),
        _f("n_lesions_a", pa.int32(), "number of lesions, run A"),
        _f("n_lesions_b", pa.int32(), "number of lesions, run B"),
        *_biomarker_fields(),
        _f("volume_change_pct", pa.float64(), "100 x (B - A) / A of the total lesion volume (0 when both are 0, "
           "+inf when only B has lesion volume, -100 when only A has)", "%"),
        _f("suspect_a", pa.bool_(), "run A flagged the result as suspect"),
        _f("suspect_b", pa.bool_(), "run B flagged the result as suspect"),
        _f("has_manual_masks", pa.bool_(), "manual cord and lesion masks exist (in both runs)"),
        _f("cord_dice_manual_a", pa.float64(), "Dice of run A's cord vs the manual cord (run A's value)", "1"),
        _f("cord_dice_manual_b", pa.float64(), "Dice of run B's cord vs the manual cord (run B's value)", "1"),
        _f("lesion_dice_manual_a", pa.float64(), "Dice of run A's lesions vs the manual lesions (run A's value)", "1"),
        _f("lesion_dice_manual_b", pa.float64(), "Dice of run B's lesions vs the manual lesions (run B's value)", "1"),
        _f("closer_to_manual", pa.string(), "the run whose lesion Dice vs manual is higher: A, B or tie "
           "(null without manual masks or lesion Dice)"),
    ]
)

#: ``OUT/tables/unpaired.parquet``: the scans not compared.
UNPAIRED_SCHEMA = pa.schema(
    [
        _f("scan_id", pa.string(), "site-qualified unique scan id", nullable=False),
        _f("site", pa.string(), "site label", nullable=False),
        _f("status_a", pa.string(), "status in run A (done, failed; null: not in run A)"),
        _f("status_b", pa.string(), "status in run B (done, failed; null: not in run B)"),
        _f("reason", pa.string(), "why the scan is not compared: " + ", ".join(UNPAIRED_REASONS), nullable=False),
        _f("detail", pa.string(), "the failure message, or the error of the mask comparison"),
    ]
)

#: ``OUT/tables/biomarkers.parquet``: one row per biomarker x stratum.
COMPARE_BIOMARKERS_SCHEMA = pa.schema(
    [
        _f("biomarker", pa.string(), "compared biomarker (a column of the scans table without _a/_b)", nullable=False),
        _f("unit", pa.string(), "the biomarker's unit", nullable=False),
        _f("stratum", pa.string(), "overall or site=<site>", nullable=False),
        _f("site", pa.string(), "site label (null for overall)"),
        _f("n", pa.int64(), "complete pairs (scans with the biomarker in both runs)", nullable=False),
        _f("n_changed", pa.int64(), "pairs whose value differs between the runs", nullable=False),
        _f("mean_a", pa.float64(), "mean in run A, in the row's unit"),
        _f("mean_b", pa.float64(), "mean in run B, in the row's unit"),
        _f("median_difference", pa.float64(), "median of B - A, in the row's unit"),
        _f("wilcoxon_statistic", pa.float64(), "Wilcoxon signed-rank statistic (scipy.stats.wilcoxon)"),
        _f("wilcoxon_p", pa.float64(), "Wilcoxon signed-rank p (NaN when every difference is zero or no pair)"),
        _f("bias", pa.float64(), "Bland-Altman bias: mean of B - A, in the row's unit"),
        _f("loa_lower", pa.float64(), "Bland-Altman lower limit of agreement, bias - 1.96 SD (ddof=1), in the row's unit"),
        _f("loa_upper", pa.float64(), "Bland-Altman upper limit of agreement, bias + 1.96 SD (ddof=1), in the row's unit"),
        _f("note", pa.string(), "notes of the tests ('; '-separated)"),
    ]
)

#: ``OUT/tables/moved.parquet``: the top-N scans by absolute relative change of the total lesion volume.
MOVED_SCHEMA = pa.schema(
    [
        _f("rank", pa.int32(), "1 = moved most (ties by scan_id)", nullable=False),
        _f("scan_id", pa.string(), "site-qualified unique scan id", nullable=False),
        _f("site", pa.string(), "site label", nullable=False),
        _f("total_volume_mm3_a", pa.float64(), "total lesion volume, run A", "mm3"),
        _f("total_volume_mm3_b", pa.float64(), "total lesion volume, run B", "mm3"),
        _f("total_volume_mm3_diff", pa.float64(), "total lesion volume, B - A", "mm3"),
        _f("volume_change_pct", pa.float64(), "100 x (B - A) / A (+inf when only B has lesion volume)", "%"),
        _f("n_lesions_a", pa.int32(), "number of lesions, run A"),
        _f("n_lesions_b", pa.int32(), "number of lesions, run B"),
        _f("lesion_dice", pa.float64(), "Dice of the lesion masks of A and B", "1"),
        _f("lesion_f1", pa.float64(), "lesion-wise F1 of B against A", "1"),
    ]
)

#: The tables of ``OUT/tables`` and their schemas (``statistics`` has :data:`STATS_COLUMNS`).
COMPARE_TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "scans": COMPARE_SCANS_SCHEMA, "unpaired": UNPAIRED_SCHEMA,
    "biomarkers": COMPARE_BIOMARKERS_SCHEMA, "moved": MOVED_SCHEMA,
}  # fmt: skip


@dataclass(frozen=True, slots=True, init=False)
class CompareLayout:
    """The paths of a comparison's output folder (see the module docstring); no I/O."""

    root: Path

    TABLES: ClassVar[str] = "tables"
    FIGURES: ClassVar[str] = "figures"
    ASSETS: ClassVar[str] = "assets"
    PAGE: ClassVar[str] = "compare.html"
    RECORD: ClassVar[str] = "compare.json"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))

    def table(self, name: str) -> Path:
        """``OUT/tables/<name>.parquet``."""
        return self.root / self.TABLES / f"{name}.parquet"

    @property
    def figures(self) -> Path:
        """``OUT/figures``: the Bland-Altman figures (PNG and SVG)."""
        return self.root / self.FIGURES

    @property
    def assets(self) -> Path:
        """``OUT/assets``: the page's CSS (the QC report's)."""
        return self.root / self.ASSETS

    @property
    def page(self) -> Path:
        """``OUT/compare.html``."""
        return self.root / self.PAGE

    @property
    def record(self) -> Path:
        """``OUT/compare.json``: runs, options, counts, versions."""
        return self.root / self.RECORD
