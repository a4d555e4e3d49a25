"""The validation study end to end: several methods and splits, statistics, the validate command."""

from __future__ import annotations

import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import scipy
from scipy import ndimage, stats
from statsmodels.stats.multitest import multipletests

from cohort_sciseg.cli import ValidateCommand, main
from cohort_sciseg.discover import find_scans
from cohort_sciseg.errors import ValidationError
from cohort_sciseg.io import load_nifti, save_nifti
from cohort_sciseg.records import BIOMARKERS_SCHEMA, FAILURES_SCHEMA, METRICS_SCHEMA
from cohort_sciseg.synth import synthesize_cohort
from cohort_sciseg.validation import find_predictions, validate_scans
from cohort_sciseg.validation.study import flat_scans, validation_statistics

# Three prediction sets: "dil" (dilated lesions) in two splits, one of which is exact,
# and "ero" (eroded lesions) in one split.
_SETS = {("dil", "0"): "dilate", ("dil", "1"): "exact", ("ero", "0"): "erode"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    cohort = synthesize_cohort(root / "cohort", sites=2, subjects_per_site=4, seed=11)
    scans = [s for s in find_scans(cohort.dataset_roots).scans if s.has_manual_masks]
    folders = {}
    for (method, split), op in _SETS.items():
        folder = root / f"pred_{method}_{split}"
        folders[(method, split)] = folder
        for s in scans:
            cord = load_nifti(s.cord_mask_path)
            lesion = load_nifti(s.lesion_mask_path).data > 0
            if op == "dilate":
                lesion = ndimage.binary_dilation(lesion) & (cord.data > 0)
            elif op == "erode":
                lesion = ndimage.binary_erosion(lesion)
            save_nifti(folder / f"{s.scan_id}_sc_seg.nii.gz", cord.data, cord.affine)
            save_nifti(folder / f"{s.scan_id}_lesion_seg.nii.gz", lesion.astype(np.uint8), cord.affine)
    return cohort, scans, folders


@pytest.fixture(scope="module")
def tables(study):
    _cohort, scans, folders = study
    metrics, bio = [], []
    for (method, split), folder in folders.items():
        t = validate_scans(scans, find_predictions(scans, folder), method=method, split=split)
        assert t.failures == ()
        metrics.append(t.metrics.to_pandas())
        bio.append(t.biomarkers.to_pandas())
    return pd.concat(metrics, ignore_index=True), pd.concat(bio, ignore_index=True), flat_scans(scans)


def test_flat_scans_has_participant_and_sidecar_columns(study):
    _cohort, scans, _ = study
    flat = flat_scans(scans)
    assert len(flat) == len(scans)
    assert {"age", "sex", "etiology", "discharge_LEMS", "initial_ais", "Manufacturer"} <= set(flat.columns)
    assert pd.api.types.is_numeric_dtype(flat["age"])
    assert pd.api.types.is_numeric_dtype(flat["discharge_LEMS"])
    assert flat["initial_ais"].dropna().isin(list("ABCDE")).all()
    first = scans[0]
    assert flat.loc[0, "age"] == float(first.participant_dict["age"])


def _averaged_wide(bio: pd.DataFrame, name: str) -> pd.DataFrame:
    """Independent split averaging: manual is the same in every split; dil averages its two."""
    return bio.groupby(["scan_id", "method"])[name].mean().unstack("method")


def test_agreement_matches_scipy_on_split_averaged_biomarkers(tables):
    metrics, bio, scans = tables
    out = validation_statistics(metrics, bio, scans, reference="dil")
    agree = out["agreement"]
    wide = _averaged_wide(bio, "total_volume_mm3")
    sel = agree[
        (agree.measure == "total_volume_mm3")
        & (agree.b == "dil")
        & (agree.stratum == "overall")
        & (agree.test == "scipy.stats.wilcoxon")
    ]
    assert len(sel) == 1
    direct = stats.wilcoxon(wide["dil"], wide["manual"])
    assert sel.p.iloc[0] == pytest.approx(direct.pvalue, rel=1e-12)
    assert sel.n.iloc[0] == len(wide)
    ba = agree[
        (agree.measure == "total_volume_mm3") & (agree.b == "dil") & (agree.stratum == "overall")
        & (agree.test == "bland_altman")
    ]
    d = (wide["dil"] - wide["manual"]).to_numpy()
    assert ba.estimate.iloc[0] == pytest.approx(d.mean(), rel=1e-12)
    assert ba.upper.iloc[0] == pytest.approx(d.mean() + 1.96 * d.std(ddof=1), rel=1e-12)
    # per site as well
    sites = set(agree.stratum) - {"overall"}
    assert sites == {f"site={s}" for s in scans.site.unique()}


def test_method_comparison_uses_split_averages_and_bonferroni(tables):
    metrics, bio, scans = tables
    out = validation_statistics(metrics, bio, scans, reference="dil")
    meth = out["methods"]
    dice = metrics[(metrics.structure == "lesion") & (metrics.metric == "Dice")]
    wide = dice.groupby(["scan_id", "method"]).value.mean().unstack("method").dropna()
    kw = meth[(meth.measure == "lesion Dice") & (meth.analysis == "method_comparison")]
    assert kw.p.iloc[0] == pytest.approx(stats.kruskal(wide["dil"], wide["ero"]).pvalue, rel=1e-12)
    pair = meth[(meth.measure == "lesion Dice") & (meth.analysis == "pairwise")]
    p = stats.wilcoxon(wide["ero"], wide["dil"]).pvalue
    assert pair.p.iloc[0] == pytest.approx(p, rel=1e-12)
    assert pair.p_adjusted.iloc[0] == pytest.approx(multipletests([p], method="bonferroni")[1][0])
    assert json.loads(pair.options.iloc[0])["p_adjust"] == "bonferroni"


def test_summary_per_site_overall_and_stratum(tables):
    metrics, bio, scans = tables
    out = validation_statistics(metrics, bio, scans, strata=["etiology"])
    summary = out["metrics_summary"]
    row = summary[
        (summary.stratum == "overall") & (summary.method == "dil") & (summary.structure == "lesion")
        & (summary.metric == "Dice")
    ]
    per_scan = metrics[(metrics.method == "dil") & (metrics.structure == "lesion") & (metrics.metric == "Dice")]
    per_scan = per_scan.groupby("scan_id").value.mean().dropna()
    assert row.n.iloc[0] == len(per_scan)
    assert row["mean"].iloc[0] == pytest.approx(per_scan.mean(), rel=1e-12)
    assert row.sd.iloc[0] == pytest.approx(per_scan.std(ddof=1), rel=1e-12)
    assert {s.split("=")[0] for s in summary.stratum} == {"overall", "site", "etiology"}


def test_clinical_correlations_per_subject(tables):
    metrics, bio, scans = tables
    clin = validation_statistics(metrics, bio, scans)["clinical"]
    sel = clin[(clin.measure == "total_volume_mm3 (manual)") & (clin.b == "discharge_LEMS")]
    assert len(sel) == 1
    subj = scans.drop_duplicates(["site", "sub"]).set_index(["site", "sub"])["discharge_LEMS"]
    manual = bio[bio.method == "manual"].groupby(["site", "sub"]).total_volume_mm3.mean()
    joined = pd.concat([manual, subj], axis=1).dropna()
    assert sel.n.iloc[0] == len(joined)
    rho = stats.spearmanr(joined.iloc[:, 0], joined.iloc[:, 1]).statistic
    assert sel.estimate.iloc[0] == pytest.approx(rho, rel=1e-12)


def test_unknown_stratum_names_known_columns(tables):
    metrics, bio, scans = tables
    with pytest.raises(ValidationError, match=r"cannot stratify by \['no_such_column'\].*etiology"):
        validation_statistics(metrics, bio, scans, strata=["no_such_column"])


def test_unknown_reference_method_is_a_validation_error(tables):
    metrics, bio, scans = tables
    with pytest.raises(ValidationError, match=r"reference method 'nope' is not among the methods"):
        validation_statistics(metrics, bio, scans, reference="nope")


@pytest.mark.slow
def test_validate_command_writes_everything(study, tmp_path):
    cohort, _scans, folders = study
    out_dir = tmp_path / "val"
    preds = [f"{m}@{s}={folders[(m, s)]}" for m, s in folders]
    buf = io.StringIO()
    cmd = ValidateCommand(bids_dirs=[Path(r) for r in cohort.dataset_roots], predictions=preds, output=out_dir)
    assert cmd.run(buf) == 0
    assert pq.read_schema(out_dir / "metrics.parquet").equals(METRICS_SCHEMA)
    assert pq.read_schema(out_dir / "biomarkers.parquet").equals(BIOMARKERS_SCHEMA)
    assert pq.read_schema(out_dir / "failures.parquet").equals(FAILURES_SCHEMA)
    m = pq.read_table(out_dir / "metrics.parquet").to_pandas()
    assert set(zip(m.method, m.split, strict=True)) == set(folders)
    for name in ("agreement", "methods", "clinical", "cohort", "metrics_summary", "site_differences"):
        parquet = pd.read_parquet(out_dir / "stats" / f"{name}.parquet")
        csv = pd.read_csv(out_dir / "stats" / f"{name}.csv", keep_default_na=False, na_values=[""])
        assert len(parquet) == len(csv) > 0, name
    figures = sorted((out_dir / "figures").iterdir())
    stems = {f.stem for f in figures}
    assert {f.suffix for f in figures} == {".png", ".svg"}
    assert all((out_dir / "figures" / f"{s}.png").is_file() and (out_dir / "figures" / f"{s}.svg").is_file() for s in stems)
    assert {"lesion_Dice_raincloud", "total_volume_mm3_dil_regression", "total_volume_mm3_ero_bland_altman"} <= stems
    assert any(s.startswith("clinical_manual_") for s in stems)
    meta = json.loads((out_dir / "validation.json").read_text())
    assert meta["wilcoxon"]["zero_method"] == "wilcox"
    assert meta["splits"] == ["0", "1"]
    assert meta["versions"]["scipy"] == scipy.__version__


def test_validate_bad_prediction_is_a_failure_and_rerun_is_identical(study, tmp_path):
    cohort, scans, folders = study
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    for f in folders[("ero", "0")].iterdir():
        (bad_dir / f.name).write_bytes(f.read_bytes())
    victim = scans[0]
    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4))
    nib.save(img, bad_dir / f"{victim.scan_id}_lesion_seg.nii.gz")
    out_dir = tmp_path / "val"
    argv = ["validate", *map(str, cohort.dataset_roots), "-p", f"ero={bad_dir}", "-o", str(out_dir), "--no-figures"]
    assert main(argv) == 1
    failures = pq.read_table(out_dir / "failures.parquet").to_pandas()
    assert list(failures.scan_id) == [victim.scan_id]
    assert "predicted lesion mask" in failures.message.iloc[0]
    m1 = pq.read_table(out_dir / "metrics.parquet")
    assert victim.scan_id not in set(m1.column("scan_id").to_pylist())
    assert len(set(m1.column("scan_id").to_pylist())) == len(scans) - 1
    stats1 = (out_dir / "stats" / "agreement.csv").read_bytes()
    assert main(argv) == 1
    assert pq.read_table(out_dir / "metrics.parquet").equals(m1)
    assert (out_dir / "stats" / "agreement.csv").read_bytes() == stats1


def test_validate_rejects_duplicate_prediction_specs(study, tmp_path, capsys):
    cohort, _scans, folders = study
    d = folders[("ero", "0")]
    assert main(["validate", *map(str, cohort.dataset_roots), "-p", f"x={d}", "-p", f"x={d}", "-o", str(tmp_path / "o")]) == 2
    assert "twice" in capsys.readouterr().err


def test_validate_from_biomarker_tables_matches_masks(study, tmp_path):
    cohort, _scans, folders = study
    roots = [str(r) for r in cohort.dataset_roots]
    masks_out = tmp_path / "masks"
    assert main(["validate", *roots, "-p", f"ero={folders[('ero', '0')]}", "-o", str(masks_out), "--no-figures"]) == 0
    csv = tmp_path / "bio.csv"
    pd.read_parquet(masks_out / "biomarkers.parquet").drop(columns=["site", "sub"]).to_csv(csv, index=False)
    tables_out = tmp_path / "tables"
    assert main(["validate", *roots, "--biomarkers", str(csv), "-o", str(tables_out), "--no-figures"]) == 0
    a = pd.read_parquet(masks_out / "stats" / "agreement.parquet")
    b = pd.read_parquet(tables_out / "stats" / "agreement.parquet")
    pd.testing.assert_frame_equal(a, b)
    assert pd.read_parquet(tables_out / "metrics.parquet").empty


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda df: df.drop(columns=["total_length_mm"]), "lacks column"),
        (lambda df: df.assign(scan_id="site-x_sub-99_T2w"), "not among the discovered scans"),
        (lambda df: df.assign(total_volume_mm3="lots"), "non-numeric"),
    ],
)
def test_broken_biomarker_table_is_a_clear_error(study, tmp_path, capsys, edit, message):
    cohort, scans, _ = study
    df = pd.DataFrame(
        {
            "scan_id": [s.scan_id for s in scans],
            "method": "manual",
            "n_lesions": 1,
            "total_volume_mm3": 1.0,
            "total_length_mm": 1.0,
            "max_axial_damage_ratio": 0.1,
        }
    )
    path = tmp_path / "bio.csv"
    edit(df).to_csv(path, index=False)
    roots = [str(r) for r in cohort.dataset_roots]
    assert main(["validate", *roots, "--biomarkers", str(path), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "bio.csv" in err
    assert "Fix:" in err
