"""``open_run`` on a finished run (the ``run_case`` fixture): tables, attrs, engines, questions."""

from __future__ import annotations

import io
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import cohort_sciseg
from cohort_sciseg.analysis import Run, open_run
from cohort_sciseg.analysis.run import PARTITIONED_TABLES
from cohort_sciseg.errors import AnalysisError, CohortSciSegError
from cohort_sciseg.io import RunLayout


@pytest.fixture(scope="module")
def run(run_case) -> Run:
    return open_run(run_case.out)


def _parts(out: Path, name: str) -> list[Path]:
    return sorted(RunLayout(out).table(name).glob("site=*/*.parquet"))


def test_open_run_is_exposed_by_the_package(run_case):
    assert cohort_sciseg.open_run is open_run
    run = cohort_sciseg.open_run(str(run_case.out))
    assert isinstance(run, Run)
    assert run.root == run_case.out
    assert repr(run) == f"open_run({str(run_case.out)!r})"
    assert "open_run" in cohort_sciseg.__all__


def test_row_counts_are_those_of_the_parquet_files(run, run_case):
    for name in PARTITIONED_TABLES:
        files = _parts(run_case.out, name)
        assert name == "metrics" or files, name
        assert len(run.table(name)) == sum(pq.read_metadata(f).num_rows for f in files), name
    assert (
        len(run.discovered) == pq.read_metadata(RunLayout(run_case.out).discovered_scans).num_rows
    )
    assert run.table_names == (*PARTITIONED_TABLES, "discovered_scans", "participants")


def test_site_is_plain_text_and_columns_follow_the_schema(run):
    for name in run.table_names:
        df = run.table(name)
        assert pd.api.types.is_string_dtype(df["site"]), name
        assert not isinstance(df["site"].dtype, pd.CategoricalDtype), name
    assert list(run.scans.columns) == list(
        PARTITIONED_TABLES["scans"].names
    )  # site where the schema puts it
    assert list(run.lesions.columns[:3]) == [
        "scan_id",
        "site",
        "lesion_id",
    ]  # after scan_id otherwise
    assert set(run.scans.site) == {"site1", "site2"}


def test_units_and_descriptions_are_the_files_field_metadata(run, run_case):
    for name in PARTITIONED_TABLES:
        files = _parts(run_case.out, name)
        if not files:
            continue
        schema = pq.read_schema(files[0])
        units = {
            f.name: f.metadata[b"unit"].decode()
            for f in schema
            if f.metadata and b"unit" in f.metadata
        }
        docs = {f.name: f.metadata[b"description"].decode() for f in schema if f.metadata}
        df = run.table(name)
        assert df.attrs["units"] == units, name
        assert {k: v for k, v in df.attrs["descriptions"].items() if k != "site"} == docs, name
        assert "hive partition" in df.attrs["descriptions"]["site"]
    assert run.lesions.attrs["units"]["volume_mm3"] == "mm3"
    assert run.scans.attrs["units"]["max_axial_damage_ratio"] == "1"
    assert run.discovered.attrs["units"]["voxel_x_mm"] == "mm"


def test_tables_are_read_once_and_names_are_checked(run):
    assert run.scans is run.scans
    assert run.table("discovered") is run.discovered
    with pytest.raises(
        AnalysisError,
        match=r"no table 'lesion'.*expected one of scans, lesions, .*Fix: pass one of",
    ):
        run.table("lesion")


def test_records_summary_and_no_validation_study(run, run_case):
    assert len(run.records) == 1
    assert run.summary == run.records[-1]
    assert run.summary["run_id"] in set(run.scans.run_id)
    assert run.summary["excluded"]["scan_ids"] == [run_case.left_out.scan_id]
    assert run.statistics == {}  # the fixture's run skipped the study
    assert run.validation is None


def test_participants_one_row_per_subject(run, run_case):
    parts = run.participants
    assert list(parts.columns[:2]) == ["site", "participant_id"]
    assert not parts.duplicated(["site", "participant_id"]).any()
    subjects = {
        (s, f"sub-{u}") for s, u in zip(run.discovered.site, run.discovered["sub"], strict=True)
    }
    assert set(zip(parts.site, parts.participant_id, strict=True)) == subjects
    assert pd.api.types.is_numeric_dtype(parts["initial_LEMS"])
    site, pid = run_case.missing_score
    assert np.isnan(
        parts.set_index(["site", "participant_id"]).loc[(site, pid), "discharge_LEMS"]
    )  # n/a


def test_duckdb_views_agree_with_pandas(run):
    pytest.importorskip("duckdb")
    con = run.duckdb()
    per_site = con.sql(
        "select site, typeof(site), count(*) from lesions group by all order by site"
    ).fetchall()
    counts = Counter(run.lesions.site)
    assert per_site == [(s, "VARCHAR", counts[s]) for s in sorted(counts)]
    for name in run.table_names:
        assert con.sql(f"select count(*) from {name}").fetchall() == [(len(run.table(name)),)], name
    done = con.sql("select scan_id from scans where status = 'done' order by scan_id").fetchall()
    assert [r[0] for r in done] == sorted(run.scans.loc[run.scans.status == "done", "scan_id"])
    kinds = dict(con.sql("select table_name, table_type from information_schema.tables").fetchall())
    assert kinds["scans"] == "VIEW"  # over the files: no copy
    assert run.duckdb(con) is con  # an existing connection gets the views


def test_polars_frames_agree_with_pandas(run):
    pl = pytest.importorskip("polars")
    frames = run.polars()
    assert set(frames) == set(run.table_names)
    for name, lf in frames.items():
        df = lf.collect()
        assert df.schema["site"] == pl.String, name
        assert df.height == len(run.table(name)), name
    per_site = frames["lesions"].group_by("site").len().sort("site").collect()
    counts = Counter(run.lesions.site)
    assert per_site.rows() == [(s, counts[s]) for s in sorted(counts)]


def test_excluded_lists_every_scan_left_out_with_its_reason(run, run_case):
    table = run.excluded()
    reasons = {(r.scan_id, r.reason): r.detail for r in table.itertuples()}
    assert "truncated" in reasons[(run_case.failed.scan_id, "failed")]
    assert "none above 0.5" in reasons[(run_case.soft_lesion.scan_id, "validation excluded")]
    assert (
        "without a manual cord mask" in reasons[(run_case.no_cord.scan_id, "validation incomplete")]
    )
    assert "no spinal cord" in reasons[(run_case.no_cord.scan_id, "suspect")]
    assert reasons[(run_case.left_out.scan_id, "excluded from the run")]
    assert len(table) == 5
    assert set(table.site) == {"site1", "site2"}


def test_site_summary_counts_what_the_tables_hold(run):
    summary = run.site_summary().set_index("site")
    scans = pd.read_parquet(run.root / "tables" / "scans")  # pandas' own reader: categorical site
    scans["site"] = scans["site"].astype(str)
    for site, group in scans.groupby("site"):
        row = summary.loc[site]
        assert row["scans_total"] == len(group)
        assert row["scans_failed"] == (group.status == "failed").sum()
        assert row["scans_validated"] == (group.validation == "validated").sum()
        assert row["n_lesions"] == (run.lesions.site == site).sum()
        done = group[group.status == "done"]
        assert row["median_total_volume_mm3"] == pytest.approx(done.total_volume_mm3.median())
        assert row["median_cord_dice"] == pytest.approx(
            group[group.validation == "validated"].cord_dice.median()
        )


def test_biomarker_agreement_on_the_biomarkers_table(run):
    table = run.biomarker_agreement()
    assert set(table.method) == {"copy-manual"}
    bio = run.biomarkers
    wide = bio.pivot_table(index="scan_id", columns="method", values="total_volume_mm3")
    d = (wide["copy-manual"] - wide["manual"]).to_numpy(float)
    row = table.set_index("biomarker").loc["total_volume_mm3"]
    assert row["n"] == d.size == (run.scans.validation == "validated").sum()
    assert row["bias"] == pytest.approx(d.mean())
    assert row["loa_upper"] == pytest.approx(d.mean() + 1.96 * d.std(ddof=1))
    assert row["loa_lower"] == pytest.approx(d.mean() - 1.96 * d.std(ddof=1))
    tidy = run.biomarker_agreement(tidy=True)
    assert set(tidy.columns) >= {"analysis", "test", "options", "versions"}


def test_clinical_correlations_count_subjects_by_hand(run, run_case):
    table = run.clinical_correlations(scores=["discharge_LEMS"], method="manual")
    row = table[table.biomarker == "total_volume_mm3"].iloc[0]
    parts = run.participants
    with_score = {
        f"{s}/{p.removeprefix('sub-')}"
        for s, p, v in zip(parts.site, parts.participant_id, parts.discharge_LEMS, strict=True)
        if not np.isnan(v)
    }
    manual = run.biomarkers[run.biomarkers.method == "manual"]
    with_bio = {f"{s}/{u}" for s, u in zip(manual.site, manual["sub"], strict=True)}
    assert row["n"] == len(with_score & with_bio)
    site, pid = run_case.missing_score
    assert (
        f"{site}/{pid.removeprefix('sub-')}" in with_bio - with_score
    )  # the n/a subject is dropped
    every = run.clinical_correlations(scores=["discharge_LEMS"], source="scans")
    assert set(every.method) == {"copy-manual"}
    assert every["n"].max() >= row["n"]  # every done scan, manual masks or not


def test_table1_counts_the_discovered_scans(run):
    t1 = run.table1().set_index(["characteristic", "category"])
    counts = Counter(run.discovered.site)
    assert t1.loc[("scans", ""), "overall"] == str(len(run.discovered))
    for site, n in counts.items():
        assert t1.loc[("scans", ""), site] == str(n)
        subs = run.discovered.loc[run.discovered.site == site, "sub"].nunique()
        assert t1.loc[("subjects", ""), site] == str(subs)
    by_plane = run.table1(by="acquisition_plane")
    assert set(by_plane.columns[3:]) == set(run.discovered.acquisition_plane)
    with pytest.raises(AnalysisError, match=r"cannot group Table 1 by 'nope'.*expected one of"):
        run.table1(by="nope")


# ----------------------------------------------------------------------------- errors


def test_a_missing_folder_says_so(tmp_path):
    with pytest.raises(
        AnalysisError,
        match=r"run folder not found.*Fix: pass the output folder of `cohort-sciseg run`",
    ):
        open_run(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(AnalysisError, match=r"not a folder"):
        open_run(tmp_path / "file")


def test_an_empty_folder_is_not_a_finished_run(tmp_path):
    with pytest.raises(
        AnalysisError,
        match=r"no scans table \(tables/scans/.*not a finished run.*Fix: run `cohort-sciseg run",
    ) as err:
        open_run(tmp_path)
    assert isinstance(err.value, CohortSciSegError)
    assert err.value.path == str(tmp_path)
    assert err.value.stage == "analysis"


def test_the_folder_above_a_run_points_to_it(run_case, tmp_path):
    shutil.copytree(run_case.out / "tables", tmp_path / "derivatives" / "tables")
    with pytest.raises(
        AnalysisError, match=r"open the run folder inside it: open_run\(.*derivatives'\)"
    ):
        open_run(tmp_path)


def test_tables_without_a_run_record_are_an_unfinished_run(run_case, tmp_path):
    shutil.copytree(run_case.out / "tables", tmp_path / "tables")
    with pytest.raises(
        AnalysisError,
        match=r"no run record \(logs/runs/run-\*\.json\).*Fix: run `cohort-sciseg run .* again",
    ):
        open_run(tmp_path)


def test_an_unreadable_table_names_the_file_and_the_fix(run_case, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(run_case.out / "tables", out / "tables")
    shutil.copytree(run_case.out / "logs" / "runs", out / "logs" / "runs")
    part = _parts(out, "lesions")[0]
    part.write_bytes(b"not parquet")
    run = open_run(out)
    with pytest.raises(
        AnalysisError,
        match=r"lesions.*cannot read the table.*Fix: delete .*compaction.json and run `cohort-sciseg run",
    ):
        _ = run.lesions
    runs = sorted((out / "logs" / "runs").glob("*.json"))
    runs[-1].write_text("{broken")
    with pytest.raises(AnalysisError, match=r"cannot read the record.*Fix: restore the file"):
        _ = run.summary


def test_missing_extra_names_the_install_command(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "duckdb", None)  # import duckdb -> ImportError
    with pytest.raises(
        AnalysisError, match=r'duckdb is not installed.*pip install "cohort-sciseg\[analysis\]"'
    ):
        run.duckdb()
    monkeypatch.setitem(sys.modules, "polars", None)
    with pytest.raises(AnalysisError, match=r"polars is not installed"):
        run.polars()


# ----------------------------------------------------------------------------- the real model


@pytest.mark.slow
def test_demo_run_with_the_bundled_model(tmp_path):
    """``cohort-sciseg demo`` (real nnU-Net model, validation study): the helpers give the study's numbers."""
    from cohort_sciseg.cli import DemoCommand

    rc = DemoCommand(
        out=tmp_path / "demo", sites=2, subjects_per_site=2, workers=1, progress=False
    ).run(io.StringIO())
    assert rc == 0
    run = open_run(tmp_path / "demo" / "derivatives")
    assert set(run.statistics) >= {"agreement", "clinical", "cohort", "metrics_summary"}
    assert run.validation is not None
    assert run.validation["n_scans"] == len(run.scans)
    tidy = run.biomarker_agreement(by_site=True, tidy=True)
    # the study tests the paper's three biomarkers; the helper adds the largest lesion's tissue bridges
    bridges = tidy["measure"].str.contains("bridge_width")
    assert bridges.any()
    tidy = tidy[~bridges].reset_index(drop=True)
    pd.testing.assert_frame_equal(tidy, run.statistics["agreement"], check_dtype=False)
    mine = run.clinical_correlations().drop(columns=["method", "biomarker", "score"])
    study = run.statistics["clinical"]
    key = ["measure", "b"]
    pd.testing.assert_frame_equal(
        mine.sort_values(key, ignore_index=True),
        study.sort_values(key, ignore_index=True),
        check_dtype=False,
    )
    pd.testing.assert_frame_equal(
        run.table1(), run.statistics["cohort"].fillna(""), check_dtype=False
    )
    assert run.excluded().empty
    assert json.loads(run.biomarker_agreement(tidy=True)["versions"].iloc[0])["scipy"]
    assert run.site_summary()["scans_validated"].sum() == len(run.scans)


def test_engines_over_a_relative_path_work_from_another_folder(run_case, monkeypatch, tmp_path):
    pl = pytest.importorskip("polars")
    pytest.importorskip("duckdb")
    monkeypatch.chdir(run_case.out.parent)
    run = open_run(run_case.out.name)
    assert run.root == run_case.out
    con, frames = run.duckdb(), run.polars()
    monkeypatch.chdir(tmp_path)  # the views and lazy frames are read now
    assert con.sql("select count(*) from scans").fetchall() == [(len(run.scans),)]
    assert frames["scans"].select(pl.len()).collect().item() == len(run.scans)
