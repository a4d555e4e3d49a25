"""``run`` reads each scan's NLI slice and vertebral labels (real LocalCluster, stand-in segmenter).

The NLI slice comes from the sidecar (``"NLISlice"``) or ``participants.tsv`` (``nli_slice``); the
disc labels from ``derivatives/labels`` (``_label-discs_dlabel``). Unusable values become notes,
never failures; adding a labelling redoes the scan on resume (it is part of the scan's key).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from cohort_sciseg.batch.runner import RunOptions, run_cohort
from cohort_sciseg.batch.segmenters import SegmenterSpec
from cohort_sciseg.discover import find_scans, format_summary
from cohort_sciseg.synth import synthesize_cohort

STANDIN = SegmenterSpec.make("copy-manual", dilate_lesions=0)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("levels")
    c = synthesize_cohort(root / "cohort", sites=1, subjects_per_site=3, seed=11)
    return Path(c.dataset_roots[0])


def si_axis(affine):
    """(array axis along S-I, True when the index grows towards superior)."""
    codes = nib.aff2axcodes(affine)
    axis = next(i for i, c in enumerate(codes) if c in "SI")
    return axis, codes[axis] == "S"


def set_participant(root: Path, sub: str, column: str, value: str) -> None:
    path = root / "participants.tsv"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    for r in rows:
        r.setdefault(column, "n/a")
        if r["participant_id"] == f"sub-{sub}":
            r[column] = value
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def set_sidecar(image: Path, key: str, value) -> None:
    side = image.with_name(image.name.replace(".nii.gz", ".json"))
    doc = json.loads(side.read_text()) if side.is_file() else {}
    doc[key] = value
    side.write_text(json.dumps(doc))


def write_discs(image: Path, root: Path, discs: dict[int, int]) -> Path:
    """Disc labels (value -> RPI z) on the image's grid, in derivatives/labels."""
    img = nib.load(image)
    data = np.zeros(img.shape[:3], dtype=np.uint8)
    axis, up = si_axis(img.affine)
    n = img.shape[axis]
    centre = [s // 2 for s in img.shape[:3]]
    for value, z_rpi in discs.items():
        idx = list(centre)
        idx[axis] = z_rpi if up else n - 1 - z_rpi
        data[tuple(idx)] = value
    rel = image.relative_to(root)
    out = root / "derivatives" / "labels" / rel.parent / image.name.replace("_T2w.nii.gz", "_T2w_label-discs_dlabel.nii.gz")
    nib.save(nib.Nifti1Image(data, img.affine), out)
    return out


def test_nli_and_vertebral_levels_reach_the_tables(source, tmp_path):
    root = Path(shutil.copytree(source, tmp_path / "bids" / source.name))
    scans = sorted(find_scans([root]).scans, key=lambda s: s.scan_id)
    assert len(scans) >= 3
    a, b, c = scans[:3]
    img_a = nib.load(a.image_path)
    axis_a, _ = si_axis(img_a.affine)
    n_a = img_a.shape[axis_a]
    set_participant(root, a.sub, "nli_slice", str(n_a // 2))
    set_sidecar(Path(b.image_path), "NLISlice", "abc")  # unusable: a note, the scan still done
    nz_c = nib.load(c.image_path).shape[si_axis(nib.load(c.image_path).affine)[0]]
    mid = nz_c // 2
    write_discs(Path(c.image_path), root, {3: nz_c - 1, 8: mid})
    found = find_scans([root])
    assert [s.disc_labels_path is not None for s in sorted(found.scans, key=lambda s: s.scan_id)][:3] == [
        False, False, True
    ]
    assert f"Vertebral labels: labelled cord 0/{len(scans)}, disc labels 1/{len(scans)}" in format_summary(found)

    out = tmp_path / "run"
    s = run_cohort([root], out, RunOptions(segmenter=STANDIN, workers=2, progress=False))
    assert s.ok
    table = pd.read_parquet(out / "tables" / "scans").set_index("scan_id")
    assert set(table.status) == {"done"}
    assert table.loc[a.scan_id, "nli_slice"] == n_a // 2
    assert table.loc[a.scan_id, "nli_ap_diameter_mm"] > 0
    assert pd.isna(table.loc[b.scan_id, "nli_slice"])
    assert "NLI slice from the sidecar key 'NLISlice' not used" in table.loc[b.scan_id, "notes"]
    assert "'abc'" in table.loc[b.scan_id, "notes"]
    assert table.loc[c.scan_id, "vert_labels"] == "discs"
    assert pd.isna(table.loc[a.scan_id, "vert_labels"])

    lesions = pd.read_parquet(out / "tables" / "lesions")
    mine = lesions[lesions.scan_id == c.scan_id]
    assert len(mine) >= 1
    for _, row in mine.iterrows():
        # SCT's rule by hand: slices below z = mid are T1 (disc 8), mid..nz-2 are C3 (disc 3)
        # (a connected lesion covers every slice from z_min to z_max)
        want = []
        if row.z_max_slice >= mid and row.z_min_slice <= nz_c - 2:
            want.append("C3")
        if row.z_min_slice < mid:
            want.append("T1")
        assert list(row.vert_levels) == want
    assert list(table.loc[c.scan_id, "lesion_vert_levels"]) == sorted(
        {lv for v in mine.vert_levels for lv in v}, key=["C3", "T1"].index
    )
    assert lesions[lesions.scan_id != c.scan_id].vert_levels.isna().all()
    # the QC scan pages show them
    page_c = next((out / "report" / "scans").glob(f"*/{c.scan_id}.html")).read_text()
    assert "Vertebral levels with lesion" in page_c
    assert "vert_level_centroid" in page_c
    page_a = next((out / "report" / "scans").glob(f"*/{a.scan_id}.html")).read_text()
    assert "Cord A-P diameter at the NLI slice" in page_a
    assert "vert_level_centroid" not in page_a

    # resume: unchanged scans are skipped; a new labelling redoes only its scan
    write_discs(Path(a.image_path), root, {3: n_a - 1})
    s2 = run_cohort([root], out, RunOptions(segmenter=STANDIN, workers=2, progress=False))
    assert s2.counts["done"] == 1
    assert s2.counts["skipped"] == s2.counts["total"] - 1
    again = pd.read_parquet(out / "tables" / "scans").set_index("scan_id")
    assert again.loc[a.scan_id, "vert_labels"] == "discs"
