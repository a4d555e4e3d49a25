"""Tests of ``cohort-sciseg export-nnunet`` (cohort_sciseg.training.export, .splits, .from_export).

A synthetic two-site cohort (one site with multi-session subjects, sagittal scans in
PSR/AIL/SAR and axial ones in LAS/LPI/RPI) is exported once per module; the files,
labels and orientation are checked against an independent reorientation with
nibabel's ``as_reoriented``, the splits for subject grouping and seeded determinism,
and the folder with nnU-Net's own ``verify_dataset_integrity``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel import orientations as ornt

from cohort_sciseg.cli import ExportNnunetCommand, main
from cohort_sciseg.discover import find_scans
from cohort_sciseg.errors import SegmentationError
from cohort_sciseg.io import sha256_file
from cohort_sciseg.synth import synthesize_cohort
from cohort_sciseg.training import (
    DATASET_JSON,
    ExportResult,
    SplitCase,
    case_id_of,
    check_export,
    export_nnunet,
    select_cases,
    split_by_subject,
)
from cohort_sciseg.training.from_export import add_export_cases, merge_export_split

SEED = 11


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    synthesize_cohort(out, sites=2, subjects_per_site=3, seed=SEED)
    return out


def _roots(cohort: Path) -> list[Path]:
    return [cohort / "site1", cohort / "site2"]


@pytest.fixture(scope="module")
def exported(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    raw = tmp_path_factory.mktemp("nnUNet_raw")
    return export_nnunet(_roots(cohort), raw, dataset_id=501, name="SciTest", folds=3, seed=3)


def _copy_cohort(cohort: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "cohort"
    shutil.copytree(cohort, dst)
    return dst


def _las(path: Path) -> nib.Nifti1Image:
    """The image reoriented by nibabel itself to ('L', 'A', 'S'), SCT's RPI."""
    img = nib.load(path)
    transform = ornt.ornt_transform(ornt.io_orientation(img.affine), ornt.axcodes2ornt(("L", "A", "S")))
    return img.as_reoriented(transform)


# ----------------------------------------------------------------------------- files


def test_layout_and_dataset_json(exported: ExportResult) -> None:
    ds = exported.dataset_dir
    assert ds.name == "Dataset501_SciTest"
    body = json.loads((ds / "dataset.json").read_text())
    for key in ("channel_names", "labels", "regions_class_order", "file_ending", "image_orientation"):
        assert body[key] == DATASET_JSON[key]
    assert body["channel_names"] == {"0": "T2w"}
    assert body["labels"] == {"background": 0, "sc": [1, 2], "lesion": 2}
    assert body["image_orientation"] == "RPI"
    train = sorted(p.name for p in (ds / "labelsTr").iterdir())
    test = sorted(p.name for p in (ds / "labelsTs").iterdir())
    assert body["numTraining"] == len(train) == exported.n_train
    assert body["numTest"] == len(test) == exported.n_test
    assert sorted(p.name for p in (ds / "imagesTr").iterdir()) == [
        n.replace(".nii.gz", "_0000.nii.gz") for n in train
    ]
    assert sorted(p.name for p in (ds / "imagesTs").iterdir()) == [
        n.replace(".nii.gz", "_0000.nii.gz") for n in test
    ]
    manifest = json.loads((ds / "manifest.json").read_text())
    assert len(manifest["cases"]) == len(train) + len(test) == 7  # 6 subjects, one with 2 sessions
    assert manifest["skipped"] == []
    for row in manifest["cases"]:
        assert (ds / row["image"]).is_file()
        assert (ds / row["label"]).is_file()
        assert row["cord_provenance"] == row["lesion_provenance"] == "manual"
        assert Path(row["image_path"]).is_file()
        assert row["scan_id"].startswith(f"site-{row['site']}_")
        assert row["split"] == ("test" if row["case_id"] in manifest["test"] else "train")
        assert row["image_sha256"] == sha256_file(row["image_path"])


def test_case_ids_are_safe_and_deterministic(cohort: Path) -> None:
    scans = find_scans(_roots(cohort)).scans
    ids = [case_id_of(s) for s in scans]
    assert len(set(ids)) == len(ids)
    assert "site2_sub-02_ses-02_acq-ax" in ids
    assert all(i.replace("_", "").replace("-", "").isalnum() for i in ids)
    assert ids == [case_id_of(s) for s in find_scans(_roots(cohort)).scans]


def test_labels_and_rpi_against_nibabel(exported: ExportResult) -> None:
    ds = exported.dataset_dir
    seen: set[int] = set()
    orientations = set()
    for row in exported.cases:
        img = nib.load(ds / row["image"])
        lab = nib.load(ds / row["label"])
        assert nib.aff2axcodes(img.affine) == ("L", "A", "S")  # SCT's RPI
        np.testing.assert_allclose(img.affine, lab.affine, atol=1e-5)
        assert lab.get_data_dtype() == np.uint8
        labels = np.asarray(lab.dataobj)
        seen |= set(np.unique(labels).tolist())
        ref_img = _las(Path(row["image_path"]))
        np.testing.assert_allclose(img.affine, ref_img.affine, atol=1e-4)
        np.testing.assert_array_equal(np.asarray(img.dataobj), np.asarray(ref_img.dataobj))
        cord = np.asarray(_las(Path(row["cord_mask_path"])).dataobj) > 0.5
        lesion = np.asarray(_las(Path(row["lesion_mask_path"])).dataobj) > 0.5
        np.testing.assert_array_equal(labels == 2, lesion)
        np.testing.assert_array_equal(labels >= 1, cord | lesion)
        assert row["lesion_voxels_outside_cord"] == int(np.count_nonzero(lesion & ~cord))
        if row["lesion_voxels_outside_cord"] == 0:  # the manual masks nest: lesion within cord
            assert np.all(labels[lesion] == 2)
            assert np.all(cord[labels == 2])
        orientations.add(row["source_orientation"])
    assert seen == {0, 1, 2}
    assert len(orientations) >= 3  # the cohort's non-RPI scans were reoriented


def test_lesion_outside_cord_is_lesion_and_counted(cohort: Path, tmp_path: Path) -> None:
    copy = _copy_cohort(cohort, tmp_path)
    scan = next(s for s in find_scans(copy / "site1").scans if s.sub == "01")
    assert scan.lesion_mask_path is not None
    assert scan.cord_mask_path is not None
    les = nib.load(scan.lesion_mask_path)
    cord = np.asarray(nib.load(scan.cord_mask_path).dataobj) > 0.5
    data = np.asarray(les.dataobj).copy()
    outside = tuple(int(i) for i in np.argwhere(~cord)[0])
    before = int(np.count_nonzero((data > 0.5) & ~cord))
    data[outside] = 1
    nib.save(nib.Nifti1Image(data, les.affine, les.header), scan.lesion_mask_path)
    result = export_nnunet(copy / "site1", tmp_path / "raw", dataset_id=502, name="Out", folds=2,
                           test_fraction=0.0)
    row = next(r for r in result.cases if r["scan_id"] == scan.scan_id)
    assert row["lesion_voxels_outside_cord"] == before + 1
    labels = np.asarray(nib.load(result.dataset_dir / row["label"]).dataobj)
    assert int(np.count_nonzero(labels == 2)) == row["lesion_voxels"] == int(np.count_nonzero(data > 0.5))


# ----------------------------------------------------------------------------- which scans


def test_uncorrected_copy_is_skipped_and_corrected_mask_is_marked(cohort: Path, tmp_path: Path) -> None:
    copy = _copy_cohort(cohort, tmp_path)
    scans = {s.sub: s for s in find_scans(copy / "site1").scans}
    for sub, same in (("01", True), ("02", False)):
        mask = Path(str(scans[sub].lesion_mask_path))
        source = sha256_file(mask) if same else "0" * 64  # the prediction it was copied from
        sidecar = mask.with_name(mask.name.replace(".nii.gz", ".json"))
        sidecar.write_text(json.dumps({"SourceSHA256": source, "QC": {"rating": "fail"}}))
    cases, skipped = select_cases(find_scans(copy / "site1").scans)
    assert [s.sub for s in skipped] == ["01"]
    assert "not corrected yet" in skipped[0].reason
    by_sub = {c.sub: c for c in cases}
    assert by_sub["02"].lesion_provenance == "corrected"
    assert by_sub["02"].cord_provenance == "manual"
    assert by_sub["03"].lesion_provenance == "manual"


def test_missing_mask_skipped_or_filled_by_qc_passed_prediction(cohort: Path, tmp_path: Path) -> None:
    copy = _copy_cohort(cohort, tmp_path)
    scans = {s.sub: s for s in find_scans(copy / "site1").scans}
    for sub in ("01", "02"):
        Path(str(scans[sub].lesion_mask_path)).unlink()
    pred = tmp_path / "pred_lesion.nii.gz"
    shutil.copyfile(str(scans["03"].lesion_mask_path), pred)  # any file: only its path is used here
    qc = {scans["02"].scan_id: {"cord_seg_path": None, "lesion_seg_path": str(pred)}}
    cases, skipped = select_cases(find_scans(copy / "site1").scans, qc_passed=qc)
    assert [(s.sub, s.reason) for s in skipped] == [("01", "no manual lesion mask")]
    two = next(c for c in cases if c.sub == "02")
    assert (two.cord_provenance, two.lesion_provenance) == ("manual", "predicted-qc-pass")
    assert two.lesion_mask_path == str(pred)


def test_include_qc_passed_adds_predictions_rated_pass(cohort: Path, tmp_path: Path) -> None:
    """A fake run folder (its scans table and predictions) and a ratings file, as the QC report exports it."""
    import pandas as pd

    copy = _copy_cohort(cohort, tmp_path)
    scans = {s.sub: s for s in find_scans(copy / "site1").scans}
    run = tmp_path / "run"
    rows = []
    for sub, scan in scans.items():
        rel = Path("site1") / f"sub-{sub}" / "anat"
        (run / rel).mkdir(parents=True)
        for structure, src in (("sc", scan.cord_mask_path), ("lesion", scan.lesion_mask_path)):
            shutil.copyfile(str(src), run / rel / f"{scan.scan_id}_{structure}_seg.nii.gz")
        rows.append({"scan_id": scan.scan_id, "sub": sub, "ses": None, "image_path": scan.image_path,
                     "cord_seg_path": str(rel / f"{scan.scan_id}_sc_seg.nii.gz"),
                     "lesion_seg_path": str(rel / f"{scan.scan_id}_lesion_seg.nii.gz"), "status": "done"})
    (run / "tables" / "scans" / "site=site1").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(run / "tables" / "scans" / "site=site1" / "part-0.parquet")
    for sub in ("01", "02"):  # no manual lesion mask any more
        Path(str(scans[sub].lesion_mask_path)).unlink()
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("scan_id,site,sub,ses,rating,comment,rated_at\n" + "".join(
        f"{scans[s].scan_id},site1,{s},,{r},,2024-05-01T12:00:00.000Z\n" for s, r in (("01", "fail"), ("02", "pass"))
    ))
    result = export_nnunet(copy / "site1", tmp_path / "raw", dataset_id=506, name="Qc", folds=2,
                           test_fraction=0.0, qc_run=run, ratings=ratings)
    by_sub = {r["sub"]: r for r in result.cases}
    assert sorted(by_sub) == ["02", "03"]
    assert (by_sub["02"]["cord_provenance"], by_sub["02"]["lesion_provenance"]) == ("manual", "predicted-qc-pass")
    assert by_sub["02"]["lesion_mask_path"] == str(run / rows[1]["lesion_seg_path"])
    assert [(s.sub, s.reason) for s in result.skipped] == [("01", "no manual lesion mask")]
    manifest = json.loads((result.dataset_dir / "manifest.json").read_text())
    assert manifest["qc_run"] == str(run.absolute())
    assert manifest["ratings"] == str(ratings.absolute())


def test_mask_off_the_image_grid_is_skipped_with_reason(cohort: Path, tmp_path: Path) -> None:
    copy = _copy_cohort(cohort, tmp_path)
    scan = next(s for s in find_scans(copy / "site1").scans if s.sub == "03")
    cord = nib.load(scan.cord_mask_path)
    nib.save(nib.Nifti1Image(np.asarray(cord.dataobj)[:-1], cord.affine), scan.cord_mask_path)
    result = export_nnunet(copy / "site1", tmp_path / "raw", dataset_id=503, name="G", folds=2,
                           test_fraction=0.0)
    assert [s.scan_id for s in result.skipped] == [scan.scan_id]
    assert "does not match the image grid" in result.skipped[0].reason
    manifest = json.loads((result.dataset_dir / "manifest.json").read_text())
    assert manifest["skipped"][0]["reason"] == result.skipped[0].reason


# ----------------------------------------------------------------------------- splits


def test_splits_group_subjects(exported: ExportResult) -> None:
    ds = exported.dataset_dir
    rows = {r["case_id"]: r for r in exported.cases}
    test_subjects = {rows[c]["subject"] for c in exported.splits.test}
    train_subjects = {rows[c]["subject"] for c in exported.splits.train}
    assert test_subjects
    assert not test_subjects & train_subjects
    folds = json.loads((ds / "splits_final.json").read_text())
    assert len(folds) == 3
    vals = [c for f in folds for c in f["val"]]
    assert sorted(vals) == sorted(exported.splits.train)  # each training case validates once
    for f in folds:
        assert not {rows[c]["subject"] for c in f["val"]} & {rows[c]["subject"] for c in f["train"]}
        assert not set(f["train"] + f["val"]) & set(exported.splits.test)
    two = [c for c in rows if c.startswith("site2_sub-02_")]
    assert len(two) == 2
    assert len({rows[c]["split"] for c in two}) == 1
    assert len({rows[c]["fold"] for c in two}) == 1
    assert {rows[c]["site"] for c in exported.splits.test} == {"site1", "site2"}  # drawn per site


def test_splits_are_seeded() -> None:
    cases = [SplitCase(f"s{s}_{i}_{k}", f"site{s}", f"{i:02d}") for s in (1, 2) for i in range(6)
             for k in range(1 + i % 2)]
    a = split_by_subject(cases, test_fraction=0.25, folds=4, seed=1)
    assert a == split_by_subject(list(reversed(cases)), test_fraction=0.25, folds=4, seed=1)
    others = [split_by_subject(cases, test_fraction=0.25, folds=4, seed=s) for s in range(2, 8)]
    assert any(o.test != a.test for o in others)
    assert len({c.subject for c in cases if c.case_id in a.test}) == 4  # round(0.25 * 6) per site
    sizes = [len(f["val"]) for f in a.folds]
    assert max(sizes) - min(sizes) <= 2  # greedy by number of scans


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"folds": 1}, "folds=1"),
        ({"test_fraction": 1.0}, "test_fraction=1.0"),
        ({"test_fraction": -0.1}, "test_fraction=-0.1"),
        ({"folds": 6}, "training subject"),
    ],
)
def test_split_errors(kwargs: dict[str, float], match: str) -> None:
    cases = [SplitCase(f"c{i}", "site1", f"{i:02d}") for i in range(5)]
    with pytest.raises(SegmentationError, match=match):
        split_by_subject(cases, **kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- errors and CLI


@pytest.mark.parametrize("bad", ["5xx", "1234", "0", "-5", "", "50.1"])
def test_bad_dataset_id(cohort: Path, tmp_path: Path, bad: str) -> None:
    with pytest.raises(SegmentationError, match=r"dataset id .* is not valid.*Fix:"):
        export_nnunet(_roots(cohort), tmp_path, dataset_id=bad, name="X")
    assert not any(tmp_path.iterdir())


def test_bad_name_and_missing_folders(cohort: Path, tmp_path: Path) -> None:
    with pytest.raises(SegmentationError, match="dataset name 'a b' is not valid"):
        export_nnunet(_roots(cohort), tmp_path, dataset_id=501, name="a b")
    with pytest.raises(SegmentationError, match="BIDS dataset folder does not exist"):
        export_nnunet(tmp_path / "nope", tmp_path, dataset_id=501, name="X")
    with pytest.raises(SegmentationError, match="--include-qc-passed and --ratings go together"):
        export_nnunet(_roots(cohort), tmp_path, dataset_id=501, name="X", qc_run=tmp_path)
    with pytest.raises(SegmentationError, match="run folder does not exist"):
        export_nnunet(_roots(cohort), tmp_path, dataset_id=501, name="X", qc_run=tmp_path / "run",
                      ratings=tmp_path / "r.csv")


def test_cli_export_and_refusals(cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw"
    base = ["export-nnunet", str(raw), "--bids", *map(str, _roots(cohort))]
    args = [*base, "--dataset-id", "504", "--name", "Cli", "--folds", "2", "--seed", "4"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Dataset504_Cli" in out
    assert "manual/manual 7" in out
    first = (raw / "Dataset504_Cli" / "splits_final.json").read_text()
    assert main(args) == 2  # not empty, no --overwrite
    err = capsys.readouterr().err
    assert "exists and is not empty" in err
    assert "--overwrite" in err
    assert "Traceback" not in err
    assert main([*args, "--overwrite"]) == 0
    assert (raw / "Dataset504_Cli" / "splits_final.json").read_text() == first  # seeded
    assert main([*base, "--dataset-id", "504", "--name", "Other", "--folds", "2"]) == 2
    assert "already taken" in capsys.readouterr().err
    assert main([*base, "--dataset-id", "5xx", "--name", "Cli"]) == 2
    err = capsys.readouterr().err
    assert "cohort-sciseg export-nnunet: error:" in err
    assert "'5xx'" in err
    assert "Fix:" in err
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset504_Cli"]  # no partial folder left


def test_command_dataclass_runs_in_process(cohort: Path, tmp_path: Path) -> None:
    import io

    out = io.StringIO()
    cmd = ExportNnunetCommand(out_dir=tmp_path, bids_dirs=[cohort / "site2"], dataset_id="505", name="S2",
                              folds=2, test_fraction=0.0)
    assert cmd.run(out) == 0
    assert "4 training case(s)" in out.getvalue()


# ----------------------------------------------------------------------------- nnU-Net


def _nnunet_env(tmp_path: Path, raw: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(nnUNet_raw=str(raw), nnUNet_preprocessed=str(tmp_path / "pre"),
               nnUNet_results=str(tmp_path / "res"), nnUNet_compile="false")
    return env


def test_nnunet_verify_dataset_integrity_accepts_the_export(exported: ExportResult, tmp_path: Path) -> None:
    """nnU-Net's own check (in a fresh process: nnunetv2.paths reads its folders at import)."""
    code = ("import sys; from nnunetv2.experiment_planning.verify_dataset_integrity import "
            "verify_dataset_integrity; verify_dataset_integrity(sys.argv[1], 1)")
    proc = subprocess.run(
        [sys.executable, "-c", code, str(exported.dataset_dir)], capture_output=True, text=True,
        env=_nnunet_env(tmp_path, exported.dataset_dir.parent), timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "verify_dataset_integrity Done" in proc.stdout


# ----------------------------------------------------------------------------- training from an export


def test_check_export_refuses_other_folders(exported: ExportResult, tmp_path: Path) -> None:
    assert check_export(exported.dataset_dir) == exported.dataset_dir
    with pytest.raises(SegmentationError, match="does not exist"):
        check_export(tmp_path / "nope")
    with pytest.raises(SegmentationError, match=r"has no dataset\.json"):
        check_export(tmp_path)
    other = tmp_path / "Dataset001_Other"
    shutil.copytree(exported.dataset_dir, other)
    body = json.loads((other / "dataset.json").read_text())
    body["labels"] = {"background": 0, "sc": 1, "lesion": 2}
    (other / "dataset.json").write_text(json.dumps(body))
    with pytest.raises(SegmentationError, match=r"labels.*SCIseg's"):
        check_export(other)


def test_export_cases_join_the_work_dataset_and_fold0_validates(exported: ExportResult, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "labelsTr").mkdir(parents=True)
    (raw / "dataset.json").write_text(json.dumps({**DATASET_JSON, "numTraining": 1}))
    (raw / "labelsTr" / "synth_a.nii.gz").write_bytes(b"")
    ids = add_export_cases(raw, exported.dataset_dir)
    assert ids == list(exported.splits.train)
    assert json.loads((raw / "dataset.json").read_text())["numTraining"] == 1 + len(ids)
    pre = tmp_path / "pre"
    pre.mkdir()
    (pre / "splits_final.json").write_text(json.dumps([{"train": ["synth_a", *ids], "val": ["synth_a"]}]))
    merged = merge_export_split(pre, exported.dataset_dir)
    fold0 = json.loads((exported.dataset_dir / "splits_final.json").read_text())[0]
    assert merged["val"] == fold0["val"]
    assert sorted(merged["train"]) == sorted(["synth_a", *fold0["train"]])
    with pytest.raises(SegmentationError, match="already in the training set"):
        add_export_cases(raw, exported.dataset_dir)


@pytest.mark.slow
def test_training_plan_only_accepts_the_export(exported: ExportResult, tmp_path: Path) -> None:
    """``python -m cohort_sciseg.training --from-export DIR --plan-only``: nnU-Net plans and preprocesses it."""
    work = tmp_path / "work"
    proc = subprocess.run(
        [sys.executable, "-m", "cohort_sciseg.training", "--out", str(tmp_path / "model"), "--quick",
         "--work", str(work), "--from-export", str(exported.dataset_dir), "--plan-only"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    pre = work / "nnUNet_preprocessed" / "Dataset901_CohortSciSegDemo"
    assert (pre / "nnUNetPlans.json").is_file()
    (split,) = json.loads((pre / "splits_final.json").read_text())
    fold0 = json.loads((exported.dataset_dir / "splits_final.json").read_text())[0]
    assert split["val"] == fold0["val"]
    assert set(fold0["train"]) <= set(split["train"])
    assert any(k.startswith("synth_") for k in split["train"])
    assert not set(exported.splits.test) & set(split["train"] + split["val"])
    raw = work / "nnUNet_raw" / "Dataset901_CohortSciSegDemo"
    assert json.loads((raw / "dataset.json").read_text())["numTraining"] == len(split["train"]) + len(split["val"])


def test_no_usable_scan_is_an_error(cohort: Path, tmp_path: Path) -> None:
    copy = _copy_cohort(cohort, tmp_path)
    shutil.rmtree(copy / "site1" / "derivatives" / "labels")
    with pytest.raises(SegmentationError, match=r"no scan has a usable cord and lesion mask \(3 skipped\)"):
        export_nnunet(copy / "site1", tmp_path / "raw", dataset_id=507, name="None", folds=2)
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())
