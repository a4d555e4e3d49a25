"""``export-nnunet``: the scans with manual or corrected masks as an nnU-Net v2 training set."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cohort_sciseg.cli._common import EXIT_OK

__all__ = ["ExportNnunetCommand"]


@dataclass
class ExportNnunetCommand:
    """``cohort-sciseg export-nnunet OUT_DIR --bids BIDS_DIR... --dataset-id ID --name NAME``.

    Writes ``OUT_DIR/Dataset<ID>_<NAME>`` (``OUT_DIR`` is an ``nnUNet_raw`` folder) as
    SCIseg's dataset was built: RPI images, region labels, patient-level test split
    and folds, and a manifest (see :mod:`cohort_sciseg.training.export`).
    """

    out_dir: Path
    bids_dirs: list[Path]
    dataset_id: str
    name: str
    test_fraction: float = 0.2
    folds: int = 5
    seed: int = 0
    include_qc_passed: Path | None = None
    ratings: Path | None = None
    overwrite: bool = False

    def run(self, out: TextIO | None = None) -> int:
        out = out or sys.stdout
        from cohort_sciseg.training.export import MANIFEST_FILE, export_nnunet

        result = export_nnunet(
            self.bids_dirs, self.out_dir, dataset_id=self.dataset_id, name=self.name,
            test_fraction=self.test_fraction, folds=self.folds, seed=self.seed,
            qc_run=self.include_qc_passed, ratings=self.ratings, overwrite=self.overwrite,
        )
        ds = result.dataset_dir
        subjects = {r["subject"] for r in result.cases}
        prov = Counter(f"{r['cord_provenance']}/{r['lesion_provenance']}" for r in result.cases)
        outside = sum(1 for r in result.cases if r["lesion_voxels_outside_cord"])
        out.write(
            f"nnU-Net dataset {ds.name}: {result.n_train} training case(s) (imagesTr, {self.folds} folds in "
            f"splits_final.json) and {result.n_test} test case(s) (imagesTs) from {len(subjects)} subject(s)\n"
            f"  masks (cord/lesion): {', '.join(f'{k} {v}' for k, v in sorted(prov.items()))}\n"
        )
        if outside:
            out.write(f"  {outside} case(s) have lesion voxels outside the cord mask (labelled lesion; "
                      f"see lesion_voxels_outside_cord in {MANIFEST_FILE})\n")
        if result.skipped:
            out.write(f"  {len(result.skipped)} scan(s) skipped, reasons in {ds / MANIFEST_FILE}:\n")
            for s in result.skipped[:5]:
                out.write(f"    {s.scan_id}: {s.reason}\n")
            if len(result.skipped) > 5:
                out.write(f"    ... and {len(result.skipped) - 5} more\n")
        out.write(
            f"Next: nnUNet_raw={self.out_dir} nnUNetv2_plan_and_preprocess -d {int(self.dataset_id)} "
            "--verify_dataset_integrity (it copies splits_final.json into nnUNet_preprocessed), then "
            f"nnUNetv2_train {int(self.dataset_id)} 3d_fullres FOLD; or train the demo model from it: "
            f"`python -m cohort_sciseg.training --out MODEL_DIR --from-export {ds}`\n"
        )
        return EXIT_OK
