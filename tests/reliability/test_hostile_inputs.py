"""60+ hostile inputs mixed into good scans, through ``cohort-sciseg run`` (real nnU-Net, real Dask workers).

Each case of :mod:`hostile_corpus` has its exact outcome asserted: a failure record of
the right stage whose message names the file and a fix, a discovery problem, or a
done scan with the right ``suspect`` flag and validation status. Then the run as a
whole: every row once, no temporary file left, exit status 1 ("ran, some scans
failed"), and the summary agrees with the tables.
"""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from hostile_corpus import Case, Done, Failed, Problem, build_corpus, the_template

from cohort_sciseg.cli import EXIT_PROBLEMS, RunCommand

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    _, template = the_template(tmp / "synth")
    main = tmp / "bids" / "main"
    main.mkdir(parents=True)
    (main / "dataset_description.json").write_text(json.dumps({"Name": "main", "BIDSVersion": "1.9.0"}))
    roots, cases = build_corpus(main, template)
    out = tmp / "out"
    cmd = RunCommand(bids_dirs=roots, output=out, model="demo", workers=2, gpus="0", progress=False, report=True)
    import io

    text = io.StringIO()
    status = cmd.run(text)
    tables = {
        name: pd.read_parquet(out / "tables" / name) for name in ("scans", "failures")
    }
    return cases, out, status, text.getvalue(), tables


def test_the_corpus_is_large_enough(corpus_run):
    cases = corpus_run[0]
    assert len(cases) >= 60
    assert len({c.name for c in cases}) == len(cases)


def _row(scans: pd.DataFrame, case: Case) -> pd.DataFrame:
    return scans[scans.scan_id == case.scan_id]


def _check_failed(case: Case, exp: Failed, scans: pd.DataFrame, failures: pd.DataFrame) -> None:
    """One failure record; a scans row ``failed`` unless discovery refused the header (then no row)."""
    row = _row(scans, case)
    assert len(row) <= 1, f"{case.name}: {len(row)} scans rows"
    if len(row):
        assert row.status.iloc[0] == "failed", f"{case.name}: {row.status.iloc[0]}"
    f = failures[failures.scan_id == case.scan_id]
    assert len(f) == 1, f"{case.name}: {len(f)} failure records"
    msg = f.message.iloc[0]
    assert f.stage.iloc[0] == exp.stage, f"{case.name}: stage {f.stage.iloc[0]}: {msg}"
    assert re.search(exp.match, msg), f"{case.name}: {msg!r} does not match {exp.match!r}"
    assert "Fix:" in msg, f"{case.name}: no fix in {msg!r}"
    assert f"sub-{case.name}" in msg, f"{case.name}: the message does not name the file: {msg!r}"
    assert "unexpected" not in msg, f"{case.name}: an unknown error: {msg!r}"


def _check_done(case: Case, exp: Done, scans: pd.DataFrame, failures: pd.DataFrame) -> None:
    row = _row(scans, case)
    assert len(row) == 1, f"{case.name}: expected one scans row, got {len(row)}"
    r = row.iloc[0]
    f = failures[failures.scan_id == case.scan_id]
    assert r.status == "done", f"{case.name}: {r.status}: {list(f.message)}"
    assert bool(r.suspect) is exp.suspect, f"{case.name}: suspect={r.suspect} ({r.suspect_reasons})"
    if exp.suspect:
        assert r.suspect_reasons, case.name
    validation = None if pd.isna(r.validation) else r.validation
    assert validation == exp.validation, f"{case.name}: validation {validation!r}; {r.notes}; {list(f.message)}"
    if exp.notes:
        assert exp.notes in (r.notes or ""), f"{case.name}: notes {r.notes!r}"
    if exp.validation == "excluded":
        assert len(f) == 1, f"{case.name}: {len(f)} failure records"
        assert f.stage.iloc[0] == "validation"
        assert re.search(exp.excluded_match or "", f.message.iloc[0]), f"{case.name}: {f.message.iloc[0]!r}"
        assert pd.isna(r.cord_dice), case.name  # no metrics from an unusable reference
    else:
        assert len(f) == 0, f"{case.name}: unexpected failure records {list(f.message)}"
    if exp.validation == "validated":
        assert not pd.isna(r.cord_dice), case.name


def test_every_case_has_its_exact_outcome(corpus_run):
    cases, _, _, _, tables = corpus_run
    scans, failures = tables["scans"], tables["failures"]
    wrong = []
    for case in cases:
        exp = case.expect
        try:
            if isinstance(exp, Problem):
                where = f"sub-{case.name}[/_']" if case.dataset == "main" else f"/{case.dataset}[/']"
                problems = failures[(failures.stage == "discover") & failures.message.str.contains(where, regex=True)]
                assert len(problems) >= 1, f"{case.name}: no discovery problem"
                assert any(re.search(exp.match, m) for m in problems.message), (case.name, list(problems.message))
                assert all("Fix:" in m for m in problems.message), case.name
                if exp.then is None:
                    assert len(_row(scans, case)) == 0, f"{case.name}: run although discovery refused it"
                elif isinstance(exp.then, Done):
                    _check_done(case, exp.then, scans, failures[failures.stage != "discover"])
                else:
                    _check_failed(case, exp.then, scans, failures[failures.stage != "discover"])
            elif isinstance(exp, Failed):
                _check_failed(case, exp, scans, failures)
            else:
                _check_done(case, exp, scans, failures)
        except AssertionError as err:
            wrong.append(str(err))
    assert not wrong, "\n".join(wrong)


def test_the_run_as_a_whole(corpus_run):
    _cases, out, status, text, tables = corpus_run
    scans, failures = tables["scans"], tables["failures"]
    assert status == EXIT_PROBLEMS
    assert scans.scan_id.is_unique
    assert not failures.duplicated(["scan_id", "stage", "message"]).any()
    assert set(scans.run_id) == {scans.run_id.iloc[0]}  # one run produced every row
    assert (scans.attempt == 1).all()
    leftovers = [p for p in out.rglob("*.tmp*") if p.is_file()]
    assert not leftovers
    n_failed = int((scans.status == "failed").sum())
    assert f"{n_failed} failed" in text
    assert "suspect" in text
    assert "NOT VALIDATED" in text
    assert "Traceback" not in text
    # the report shows the flags
    index = (out / "report" / "data" / "index.js").read_text()
    assert "suspect" in index
    assert "validation-excluded" in index
