"""The command line, called in-process (fast) and once as a real console script."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cohort_sciseg.cli import DemoCommand, DiscoverCommand, SynthCommand, main
from cohort_sciseg.records import FAILURES_SCHEMA, SCANS_SCHEMA
from cohort_sciseg.synth.tree import write_skeleton_tree


@pytest.fixture
def tree(tmp_path) -> Path:
    return write_skeleton_tree(tmp_path / "siteA", n_subjects=3, sessions=("1",), seed=1)


def test_discover_writes_tables_and_summary(tree, tmp_path):
    out = io.StringIO()
    rc = DiscoverCommand(bids_dirs=[tree], output=tmp_path / "t" / "scans.parquet").run(out)
    assert rc == 0
    table = pq.read_table(tmp_path / "t" / "scans.parquet")
    assert table.schema.equals(SCANS_SCHEMA)
    assert table.num_rows == 3
    assert pq.read_table(tmp_path / "t" / "failures.parquet").schema.equals(FAILURES_SCHEMA)
    text = out.getvalue()
    assert "3 scan(s)" in text
    assert "scans table:" in text


def test_discover_problems_exit_1(tree, tmp_path):
    img = next(tree.rglob("*_T2w.nii.gz"))
    img.write_bytes(b"")  # an empty image: recorded, not fatal
    out = io.StringIO()
    rc = DiscoverCommand(bids_dirs=[tree], output=tmp_path / "scans.parquet").run(out)
    assert rc == 1
    failures = pq.read_table(tmp_path / "failures.parquet").to_pylist()
    assert len(failures) == 1
    assert "empty" in failures[0]["message"]
    assert pq.read_table(tmp_path / "scans.parquet").num_rows == 2


def test_main_fatal_error_exit_2(tmp_path, capsys):
    rc = main(["discover", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "not a BIDS dataset" in err
    assert "Fix:" in err


def test_run_output_path_that_is_a_file_exit_2(tree, tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("not a folder")
    rc = main(["run", str(tree), "-o", str(target), "--segmenter", "copy-manual", "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "output path is an existing file" in err
    assert "Fix:" in err
    assert "Traceback" not in err
    assert target.read_text() == "not a folder"


def test_run_strict_stops_before_any_scan(tree, tmp_path, capsys):
    next(tree.rglob("*_T2w.nii.gz")).write_bytes(b"")
    rc = main(["run", str(tree), "-o", str(tmp_path / "out"), "--segmenter", "copy-manual", "--strict",
               "--no-progress"])
    assert rc == 2
    assert "empty" in capsys.readouterr().err
    assert not (tmp_path / "out" / "tables").exists()


def test_an_internal_error_has_its_own_exit_status(tree, tmp_path, capsys, monkeypatch):
    """A bug (an uncaught exception) exits 70, never 1 ("finished, some scans failed") nor 2 ("fix this"):
    one line on the terminal naming the log file that holds the traceback."""
    import cohort_sciseg.cli as cli

    def boom(self, out=None):
        raise KeyError("a bug")

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(cli.DiscoverCommand, "run", boom)
    assert main(["discover", str(tree)]) == cli.EXIT_CRASH == 70
    err = capsys.readouterr().err
    assert "cohort-sciseg discover: internal error (KeyError: 'a bug'); the traceback is in " in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    logs = list((tmp_path / "state" / "cohort-sciseg" / "logs").glob("crash-*.log"))
    assert len(logs) == 1
    assert str(logs[0]) in err
    text = logs[0].read_text()
    assert f"command line: cohort-sciseg discover {tree}" in text
    assert "Traceback" in text
    assert "KeyError: 'a bug'" in text


def test_an_internal_error_of_run_goes_to_the_run_log(tree, tmp_path, capsys, monkeypatch):
    """Inside `run`, the traceback is appended to the run's own log file (logs/runs/run-*.log)."""
    import cohort_sciseg.batch.runner as runner

    def boom(*args, **kwargs):
        raise TypeError("a bug in the runner")

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(runner, "_run", boom)
    out = tmp_path / "out"
    rc = main(["run", str(tree), "-o", str(out), "--segmenter", "copy-manual", "--no-progress"])
    assert rc == 70
    err = capsys.readouterr().err
    assert "Traceback" not in err
    logs = list((out / "logs" / "runs").glob("run-*.log"))
    assert len(logs) == 1
    assert f"internal error (TypeError: a bug in the runner); the traceback is in {logs[0]}" in err
    assert "TypeError: a bug in the runner" in logs[0].read_text()
    assert not (tmp_path / "state").exists()


def test_every_subcommand_builds_its_command_from_the_parser():
    """The parser's entries are exactly fields of each command (no hand-written dispatch to forget)."""
    from dataclasses import fields

    from cohort_sciseg.cli import parser

    argv = {
        "discover": ["discover", "b"], "synth": ["synth", "o"], "analyze-lesion": ["analyze-lesion", "-m", "l", "-s", "c"],
        "metrics": ["metrics", "-i", "p", "-r", "r", "-o", "o.json"], "validate": ["validate", "b", "-o", "o"],
        "run": ["run", "b", "-o", "o"], "report": ["report", "o"], "ratings worklist": ["ratings", "worklist", "r", "o"],
        "ratings prepare": ["ratings", "prepare", "r", "o"], "segment": ["segment", "i.nii.gz"], "demo": ["demo"],
        "export-nnunet": ["export-nnunet", "o", "--bids", "b", "--dataset-id", "501", "--name", "X"],
        "compare": ["compare", "a", "b", "-o", "o"],
    }
    built = {}
    for name, args in argv.items():
        ns = parser.build_parser().parse_args(args)
        command = parser.command_from_namespace(ns)
        given = set(vars(ns)) - {"verbose", "command", "action", "command_class"}
        assert given <= {f.name for f in fields(command)}  # type: ignore[arg-type]
        built[name] = type(command).__name__
    assert len(set(built.values())) == len(argv)
    ns = parser.build_parser().parse_args(["analyze-lesion", "-m", "l.nii.gz", "-s", "c", "-nli-slice", "7",
                                           "-ofolder", "out"])
    cmd = parser.command_from_namespace(ns)
    assert (cmd.nli_slice, cmd.output_folder, cmd.prefix()) == (7, Path("out"), Path("out/l_analysis"))  # type: ignore[attr-defined]
    ns.typo = 1
    with pytest.raises(TypeError, match="not its fields"):
        parser.command_from_namespace(ns)


# -- known conditions are refused before any work, with the valid values -------------------------


def test_validate_unknown_reference_is_refused_before_any_metric(tree, tmp_path, capsys, monkeypatch):
    import cohort_sciseg.validation.cohort as cohort

    def no_metrics(*args, **kwargs):
        raise AssertionError("metrics computed before the options were checked")

    monkeypatch.setattr(cohort, "validate_scans", no_metrics)
    preds = tmp_path / "preds"
    preds.mkdir()
    rc = main(["validate", str(tree), "-p", f"dil={preds}", "-p", f"ero={preds}", "-o", str(tmp_path / "v"),
               "--reference", "typo"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "reference method 'typo' is not among the methods of the predictions; expected one of ['dil', 'ero']" in err
    assert "Fix:" in err
    assert "Traceback" not in err
    assert not (tmp_path / "v").exists()
    assert main(["validate", str(tree), "-p", f"dil={preds}", "-o", str(tmp_path / "v"), "--stratify", "etiolgy"]) == 2
    err = capsys.readouterr().err
    assert "cannot stratify by 'etiolgy'" in err
    assert "site, sub" in err  # the valid columns
    assert not (tmp_path / "v").exists()
    assert main(["validate", str(tree), "-p", f"=={preds}", "-o", str(tmp_path / "v")]) == 2
    assert "empty method name" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("segmenter", "option", "message"),
    [
        ("nnunet", "typo=1", "unknown nnunet segmenter option 'typo'; expected one of model, folds, checkpoint, device"),
        ("nnunet", "devcie=cpu", "(did you mean 'device'?)"),
        ("nnunet", "tta=yes", "tta='yes' has the wrong type; expected true or false"),
        ("nnunet", "device=gpu", "Fix: pass --device auto, cpu or cuda (run: --segmenter-option device=cpu)"),
        ("nnunet", "checkpoint=last", "expected 'auto', 'final' or 'best'"),
        ("nnunet", "threads=0", "(run: --segmenter-option threads=N)"),
        ("copy-manual", "dilate=1", "segmenter 'copy-manual' has no option 'dilate' (did you mean 'dilate_lesions'?)"),
    ],
)
def test_run_segmenter_options_are_checked_before_any_work(tree, tmp_path, capsys, segmenter, option, message):
    out = tmp_path / "out"
    rc = main(["run", str(tree), "-o", str(out), "--segmenter", segmenter, "--segmenter-option", option,
               "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("cohort-sciseg run: error: ")
    assert message in err
    assert "Fix:" in err
    assert "Traceback" not in err
    assert not out.exists()  # no folder, no discovery, no model


def test_demo_checks_segmenter_options_before_the_cohort(tmp_path):
    from cohort_sciseg.errors import SegmentationError

    with pytest.raises(SegmentationError, match="has no option 'dilate'"):
        DemoCommand(out=tmp_path / "demo", segmenter="copy-manual", segmenter_options=["dilate=1"]).run(io.StringIO())
    assert not (tmp_path / "demo").exists()


def test_main_strict_stops_at_first_problem(tree, capsys):
    next(tree.rglob("*_T2w.nii.gz")).write_bytes(b"")
    assert main(["discover", str(tree), "--strict"]) == 2
    assert "empty" in capsys.readouterr().err


def test_main_filters(tree, capsys):
    assert main(["discover", str(tree), "--participant-label", "nobody"]) == 2
    err = capsys.readouterr().err
    assert "no T2w images found" in err
    assert "nobody" in err


def test_main_discover_filters_pass_through(tree, tmp_path, capsys):
    rc = main(["discover", str(tree), "-o", str(tmp_path / "s.parquet"), "--session", "1"])
    assert rc == 0
    assert pq.read_table(tmp_path / "s.parquet").num_rows == 3


def test_version(capsys):
    with pytest.raises(SystemExit) as ei:
        main(["--version"])
    assert ei.value.code == 0
    assert "cohort-sciseg" in capsys.readouterr().out


def test_synth_then_discover(tmp_path):
    out = io.StringIO()
    assert SynthCommand(out=tmp_path / "c", sites=2, subjects_per_site=2, seed=3).run(out) == 0
    roots = sorted(p for p in (tmp_path / "c").iterdir() if (p / "dataset_description.json").is_file())
    assert len(roots) == 2
    rc = DiscoverCommand(bids_dirs=roots, output=tmp_path / "scans.parquet").run(io.StringIO())
    assert rc == 0
    df = pq.read_table(tmp_path / "scans.parquet").to_pandas()
    assert df["site"].nunique() == 2
    assert df["cord_mask_path"].notna().all()
    assert df["lesion_mask_path"].notna().all()


def test_demo_runs_and_resumes(tmp_path):
    """The demo pipeline end to end (with the fast stand-in segmenter; the bundled model is tested in tests/segment)."""
    import pandas as pd

    kw = {"out": tmp_path / "demo", "subjects_per_site": 1, "segmenter": "copy-manual", "workers": 2, "progress": False}
    out = io.StringIO()
    assert DemoCommand(**kw).run(out) == 0
    scans = pd.read_parquet(tmp_path / "demo" / "derivatives" / "tables" / "scans")
    assert len(scans) >= 3
    assert set(map(str, scans.site)) == {"site1", "site2", "site3"}
    assert "validation against the manual masks" in out.getvalue()
    assert (tmp_path / "demo" / "derivatives" / "validation" / "stats" / "agreement.csv").is_file()
    out2 = io.StringIO()
    assert DemoCommand(**kw).run(out2) == 0
    assert "reusing" in out2.getvalue()
    assert f"0 done, {len(scans)} already done" in out2.getvalue()


def test_console_script_installed(tree):
    exe = Path(sys.executable).parent / "cohort-sciseg"
    if not exe.exists():
        exe = Path(shutil.which("cohort-sciseg") or "missing")
    if not exe.exists():
        pytest.skip("console script not installed (pip install -e .)")
    r = subprocess.run([str(exe), "discover", str(tree)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "3 scan(s)" in r.stdout


# -- QC ratings: run --exclude-ratings, ratings worklist / prepare ---------------------------------


@pytest.fixture(scope="module")
def rated_run(tmp_path_factory) -> dict:
    """A run leaving out the scans rated fail/artifact, then the same run without the ratings."""
    import pandas as pd

    from cohort_sciseg.cli import RunCommand
    from cohort_sciseg.discover import find_scans
    from cohort_sciseg.report import write_ratings
    from cohort_sciseg.synth import synthesize_cohort

    root = tmp_path_factory.mktemp("rated")
    cohort = synthesize_cohort(root / "cohort", sites=2, subjects_per_site=2, seed=8)
    roots = [Path(r) for r in cohort.dataset_roots]
    scans = list(find_scans(roots).scans)
    fail, artifact = scans[0], scans[-1]
    rating = {fail.scan_id: "Fail", artifact.scan_id: "artifact"}
    rows = [
        {"scan_id": s.scan_id, "site": s.site, "sub": s.sub, "ses": s.ses, "rating": rating.get(s.scan_id, "pass"),
         "comment": 'cord cut, "C3"\n<script>alert(1)</script>', "rated_at": "2024-05-01T12:00:00Z"}
        for s in scans
    ]
    ratings = write_ratings(pd.DataFrame(rows), root / "ratings.csv")
    kw = {"bids_dirs": roots, "output": root / "run", "segmenter": "copy-manual",
          "segmenter_options": ["dilate_lesions=1"], "workers": 1, "progress": False}
    first, second = io.StringIO(), io.StringIO()
    rc1 = RunCommand(**kw, exclude_ratings=ratings).run(first)
    ids1 = set(pd.read_parquet(root / "run" / "tables" / "scans").scan_id)
    rc2 = RunCommand(**kw).run(second)
    return {"root": root, "scans": scans, "fail": fail, "artifact": artifact, "ratings": ratings, "kw": kw,
            "out": root / "run", "rc": (rc1, rc2), "text": (first.getvalue(), second.getvalue()), "ids1": ids1}


def test_run_exclude_ratings_then_without(rated_run):
    import json

    import pandas as pd

    n = len(rated_run["scans"])
    left_out = {rated_run["fail"].scan_id, rated_run["artifact"].scan_id}
    first, second = rated_run["text"]
    assert rated_run["rc"] == (0, 0)
    assert "2 scan(s) rated fail or artifact in" in first
    assert f"{n - 2} scan(s): {n - 2} done, 0 already done (resume), 0 failed, 2 excluded, in" in first
    assert rated_run["ids1"] == {s.scan_id for s in rated_run["scans"]} - left_out
    records = sorted((rated_run["out"] / "logs" / "runs").glob("run-*.json"))
    assert json.loads(records[0].read_text())["excluded"] == {"count": 2, "scan_ids": sorted(left_out)}
    # without the ratings, the excluded scans are processed and the others are up to date
    assert f"{n} scan(s): 2 done, {n - 2} already done (resume), 0 failed, in" in second
    assert "excluded" not in second
    scans = pd.read_parquet(rated_run["out"] / "tables" / "scans")
    assert set(scans.scan_id) == {s.scan_id for s in rated_run["scans"]}
    assert set(scans.status) == {"done"}


def test_ratings_worklist_cli(rated_run, tmp_path, capsys):
    import pandas as pd

    ratings, out = str(rated_run["ratings"]), str(rated_run["out"])
    assert main(["ratings", "worklist", ratings, out, "-o", str(tmp_path / "wl.csv")]) == 0
    assert "1 scan(s) rated fail to correct; worklist:" in capsys.readouterr().out
    wl = pd.read_csv(tmp_path / "wl.csv", dtype=str, keep_default_na=False)
    assert wl.scan_id.tolist() == [rated_run["fail"].scan_id]
    assert wl.cord_target_path[0] == rated_run["fail"].cord_mask_path
    assert wl.comment[0] == 'cord cut, "C3"\n<script>alert(1)</script>'
    assert main(["ratings", "worklist", ratings, out, "--include-artifact"]) == 0
    printed = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype=str)
    assert set(printed.scan_id) == {rated_run["fail"].scan_id, rated_run["artifact"].scan_id}


def test_ratings_cli_errors(rated_run, tmp_path, capsys):
    ratings = str(rated_run["ratings"])
    assert main(["ratings", "worklist", ratings, str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cohort-sciseg ratings: error:" in err
    assert "no scans table" in err
    assert "Fix:" in err
    bad = tmp_path / "ratings.txt"
    bad.write_text("whatever")
    assert main(["ratings", "prepare", str(bad), str(rated_run["out"])]) == 2
    assert "unknown ratings file extension '.txt'" in capsys.readouterr().err
    roots = [str(r) for r in rated_run["kw"]["bids_dirs"]]
    assert main(["run", *roots, "-o", str(tmp_path / "run"), "--exclude-ratings", str(bad)]) == 2
    assert "cohort-sciseg run: error: " in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing started


def test_ratings_prepare_then_resume_redoes_the_corrected_scan(rated_run):
    """The whole loop: prepare the failed scan's masks, correct them, re-run: only that scan is redone."""
    import nibabel as nib
    import numpy as np

    from cohort_sciseg.cli import RatingsPrepareCommand, RunCommand
    from cohort_sciseg.discover import find_scans

    fail = rated_run["fail"]
    Path(fail.cord_mask_path).unlink()  # a scan without manual masks
    Path(fail.lesion_mask_path).unlink()
    out = io.StringIO()
    rc = RatingsPrepareCommand(ratings=rated_run["ratings"], out_dir=rated_run["out"], include_artifact=True).run(out)
    assert rc == 0
    text = out.getvalue()
    assert f"{fail.cord_mask_path} (copy of the prediction, to correct)" in text
    assert f"{fail.lesion_mask_path} (copy of the prediction, to correct)" in text
    assert f"{rated_run['artifact'].cord_mask_path} (existing manual mask, kept;" in text
    assert "2 mask(s) written" in text
    assert "--resume" in text
    assert "FSLeyes" in text
    found = {s.scan_id: s for s in find_scans(rated_run["kw"]["bids_dirs"]).scans}
    assert found[fail.scan_id].cord_mask_path == fail.cord_mask_path
    # the reviewer erases a false-positive lesion and saves
    img = nib.load(fail.lesion_mask_path)
    nib.save(nib.Nifti1Image(np.zeros(img.shape, np.uint8), img.affine), fail.lesion_mask_path)
    n = len(rated_run["scans"])
    again = io.StringIO()
    assert RunCommand(**rated_run["kw"]).run(again) == 0
    assert f"{n} scan(s): 1 done, {n - 1} already done (resume), 0 failed, in" in again.getvalue()
