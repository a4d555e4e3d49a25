"""A small finished run with one of each kind of exclusion, made once for the analysis tests."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cohort_sciseg.batch.runner import RunOptions, run_cohort
from cohort_sciseg.batch.segmenters import SegmenterSpec
from cohort_sciseg.discover import find_scans
from cohort_sciseg.records import Scan
from cohort_sciseg.synth import synthesize_cohort


@dataclass(frozen=True)
class RunCase:
    """The run folder and what was done to its inputs."""

    out: Path
    failed: Scan  # image truncated: the scan fails
    soft_lesion: Scan  # manual lesion mask all <= 0.5: validation excluded
    no_cord: Scan  # manual cord mask removed: validation incomplete (and an empty predicted cord)
    left_out: Scan  # excluded from the run (as a QC rating would)
    missing_score: tuple[str, str]  # (site, participant_id) whose discharge_LEMS is n/a


def _set_participant_value(tsv: Path, participant_id: str, column: str, value: str) -> None:
    with tsv.open(newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    col = rows[0].index(column)
    for row in rows[1:]:
        if row[0] == participant_id:
            row[col] = value
    with tsv.open("w", newline="") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows(rows)


def _scaled_mask(path: Path, factor: float) -> None:
    img = nib.load(path)
    data = np.asarray(img.dataobj).astype(np.float32) * np.float32(factor)
    nib.save(nib.Nifti1Image(data, img.affine), path)


@pytest.fixture(scope="session")
def run_case(tmp_path_factory: pytest.TempPathFactory) -> RunCase:
    """2 sites x 3 subjects through the fast ``copy-manual`` stand-in (no validation study, no report)."""
    root = tmp_path_factory.mktemp("analysis_run")
    cohort = synthesize_cohort(root / "cohort", sites=2, subjects_per_site=3, seed=11)
    roots = [Path(r) for r in cohort.dataset_roots]
    scans = sorted(find_scans(roots).scans, key=lambda s: s.scan_id)
    site1 = [s for s in scans if s.site == "site1"]
    site2 = [s for s in scans if s.site == "site2"]
    failed, left_out = site1[0], site1[2]
    with_lesion = [s for s in site2 if np.asarray(nib.load(str(s.lesion_mask_path)).dataobj).any()]
    soft_lesion, no_cord = with_lesion[0], site2[-1]
    assert no_cord != soft_lesion
    data = Path(failed.image_path).read_bytes()
    Path(failed.image_path).write_bytes(data[: len(data) // 3])
    _scaled_mask(Path(str(soft_lesion.lesion_mask_path)), 0.45)
    Path(str(no_cord.cord_mask_path)).unlink()
    missing = (site1[1].site, f"sub-{site1[1].sub}")
    _set_participant_value(roots[0] / "participants.tsv", missing[1], "discharge_LEMS", "n/a")
    out = root / "out"
    opts = RunOptions(
        segmenter=SegmenterSpec.make("copy-manual", dilate_lesions=1),
        workers=1,
        progress=False,
        validate=False,
        report=False,
        exclude_scans=(left_out.scan_id,),
    )
    run_cohort(roots, out, opts)
    return RunCase(out, failed, soft_lesion, no_cord, left_out, missing)
