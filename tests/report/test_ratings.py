"""QC ratings read back: file formats, errors, worklists, manual-mask starting points, exclusions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from cohort_sciseg.batch.runner import RunOptions, run_cohort
from cohort_sciseg.batch.segmenters import SegmenterSpec
from cohort_sciseg.discover import find_scans
from cohort_sciseg.errors import ReportError
from cohort_sciseg.report import (
    RATING_COLUMNS,
    WORKLIST_COLUMNS,
    excluded_scans,
    prepare_corrections,
    read_ratings,
    worklist,
    write_ratings,
)
from cohort_sciseg.synth import synthesize_cohort

HEADER = ",".join(RATING_COLUMNS)
HOSTILE = [
    "lesion missed, see C4-C5",
    "reviewer said \"no\", then 'maybe'",
    "line one\nline two\n\nline four",
    "windows\r\nline end",
    "<script>alert('x')</script> & <b>bold</b>",
    "",
    "  leading and trailing spaces  ",
    "unicode: é, 脊髄, emoji 🧠",
    'ends with a quote"',
    "# not a comment, =1+1 not a formula",
]


def _ratings(n: int = len(HOSTILE)) -> pd.DataFrame:
    rows = []
    for i in range(n):
        rows.append(
            {
                "scan_id": f"site-s{i % 2}_sub-{i:02d}_T2w",
                "site": f"s{i % 2}",
                "sub": f"{i:02d}",
                "ses": None if i % 3 else "01",
                "rating": ("pass", "fail", "artifact")[i % 3],
                "comment": HOSTILE[i % len(HOSTILE)],
                "rated_at": f"2024-05-01T12:{i:02d}:00.000Z",
            }
        )
    return pd.DataFrame(rows, columns=list(RATING_COLUMNS), dtype="str")


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("ext", [".csv", ".yaml", ".yml"])
def test_round_trip_with_hostile_comments(tmp_path, ext):
    df = _ratings()
    path = write_ratings(df, tmp_path / f"ratings{ext}")
    back = read_ratings(path)
    pd.testing.assert_frame_equal(back, df)
    assert back.comment.tolist() == HOSTILE
    assert back["sub"].tolist()[:2] == ["00", "01"]  # leading zeros kept (YAML quotes them)


def test_csv_is_rfc4180(tmp_path):
    path = write_ratings(_ratings(), tmp_path / "r.csv")
    raw = path.read_bytes().decode()
    assert raw.startswith(HEADER + "\r\n")
    assert '"lesion missed, see C4-C5"' in raw
    assert '"reviewer said ""no"", then \'maybe\'"' in raw
    assert '"line one\nline two\n\nline four"' in raw


def test_csv_as_the_browser_exports_it(tmp_path):
    # BOM, CRLF records, a quoted comment spanning lines, an empty session, mixed-case ratings
    text = (
        "\ufeff" + HEADER + "\r\n"
        'site-a_sub-01_T2w,a,01,,FAIL,"cord cut, at C3\r\nsee ""axial"" view",2024-05-01T10:00:00.000Z\r\n'
        "site-a_sub-02_ses-01_T2w,a,02,01, Artifact ,<script>x</script>,2024-05-01T10:01:00Z\r\n"
        "\r\n"
        "site-a_sub-03_T2w,a,03,,Pass,,2024-05-01T10:02:00+02:00\r\n"
    )
    path = tmp_path / "r.csv"
    path.write_bytes(text.encode())
    df = read_ratings(path)
    assert df.scan_id.tolist() == [
        "site-a_sub-01_T2w",
        "site-a_sub-02_ses-01_T2w",
        "site-a_sub-03_T2w",
    ]
    assert df.rating.tolist() == ["fail", "artifact", "pass"]
    assert df.comment[0] == 'cord cut, at C3\r\nsee "axial" view'
    assert df.comment[1] == "<script>x</script>"
    assert pd.isna(df.ses[0])
    assert df.ses[1] == "01"
    assert df.comment[2] == ""


def test_yaml_as_the_browser_exports_it(tmp_path):
    text = """report: cohort-qc-2024-05-01
exported_at: 2024-05-01T12:05:00.000Z
ratings:
  - {scan_id: "site-a_sub-01_T2w", site: "a", sub: "01", ses: "", rating: "Fail",
     comment: "missed lesion, \\"C4\\"\\n<script>", rated_at: "2024-05-01T12:00:00.000Z"}
  - {scan_id: site-a_sub-02_ses-01_T2w, site: a, sub: "02", ses: "01", rating: pass,
     comment: , rated_at: 2024-05-01T12:01:00Z}
"""
    path = tmp_path / "r.yaml"
    path.write_text(text)
    df = read_ratings(path)
    assert df.rating.tolist() == ["fail", "pass"]
    assert df.comment.tolist() == ['missed lesion, "C4"\n<script>', ""]
    assert pd.isna(df.ses[0])
    assert df.attrs == {
        "report": "cohort-qc-2024-05-01",
        "exported_at": "2024-05-01T12:05:00+00:00",
    }
    assert df.rated_at[1].startswith(
        "2024-05-01T12:01:00"
    )  # an unquoted YAML timestamp is accepted
    again = read_ratings(write_ratings(df, tmp_path / "again.yml"))
    pd.testing.assert_frame_equal(again, df)
    assert again.attrs == df.attrs


def test_yaml_without_ratings_is_empty(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("report: x\nexported_at: 2024-05-01T00:00:00Z\nratings:\n")
    df = read_ratings(path)
    assert df.empty
    assert list(df.columns) == list(RATING_COLUMNS)


def test_latest_rating_wins(tmp_path):
    text = (
        HEADER + "\n"
        # 13:00+02:00 is 11:00Z: earlier than 12:00Z although its text sorts later
        "site-a_sub-01_T2w,a,01,,pass,second look,2024-05-01T13:00:00+02:00\n"
        "site-a_sub-02_T2w,a,02,,pass,,2024-05-01T09:00:00Z\n"
        "site-a_sub-01_T2w,a,01,,fail,first look,2024-05-01T12:00:00Z\n"
        "site-a_sub-02_T2w,a,02,,artifact,same time: the later row wins,2024-05-01T09:00:00Z\n"
        "site-a_sub-01_T2w,a,01,,pass,oldest,2024-04-30T12:00:00Z\n"
    )
    path = tmp_path / "r.csv"
    path.write_text(text)
    df = read_ratings(path).set_index("scan_id")
    assert len(df) == 2
    assert df.loc["site-a_sub-01_T2w", "rating"] == "fail"
    assert df.loc["site-a_sub-01_T2w", "comment"] == "first look"
    assert df.loc["site-a_sub-02_T2w", "rating"] == "artifact"


def test_merging_reviewers(tmp_path):
    a = _ratings(4)
    b = a.copy()
    b["rating"] = "fail"
    b["rated_at"] = "2024-06-01T00:00:00Z"
    merged = write_ratings(pd.concat([a, b]), tmp_path / "merged.csv")
    assert len(pd.read_csv(merged, dtype=str)) == 8  # every row written
    assert set(read_ratings(merged).rating) == {"fail"}  # the later reviewer wins


# --------------------------------------------------------------------------- errors


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


ROW = "site-a_sub-01_T2w,a,01,,fail,c,2024-05-01T12:00:00Z"


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        (
            "r.txt",
            HEADER + "\n" + ROW,
            r"unknown ratings file extension '\.txt'.*expected one of.*Fix: export",
        ),
        ("r.csv", "", r"r\.csv': the ratings file is empty.*Fix:"),
        ("r.yaml", "  \n\n", r"the ratings file is empty.*expected a YAML export"),
        ("r.csv", b"\xff\xfe\x00bad", r"cannot read the ratings file: UnicodeDecodeError.*Fix:"),
        (
            "r.csv",
            "scan_id,site,sub,ses,rating,comment\n" + ROW,
            r"has no column\(s\) \['rated_at'\]; expected the header scan_id,site,sub,ses,rating,comment,rated_at",
        ),
        (
            "r.csv",
            HEADER
            + "\nsite-a_sub-01_T2w,a,01,,fail,c,2024-05-01T12:00:00Z\nsite-a_sub-02_T2w,a,02,,bad,c,2024-05-01T12:00:00Z",
            r"row 2 \(line 3\) \(scan 'site-a_sub-02_T2w'\): rating 'bad' is not valid; "
            r"expected one of \['pass', 'fail', 'artifact'\].*Fix: correct the rating",
        ),
        (
            "r.csv",
            HEADER + "\nsite-a_sub-01_T2w,a,01,,fail,a, b,2024-05-01T12:00:00Z",
            r"row 1 \(line 2\) has 8 field\(s\), the header 7.*Fix: quote the field",
        ),
        (
            "r.csv",
            HEADER + '\nsite-a_sub-01_T2w,a,01,,fail,"open quote',
            r"not a valid CSV file.*RFC 4180",
        ),
        (
            "r.csv",
            HEADER + "\n,a,01,,fail,c,2024-05-01T12:00:00Z",
            r"row 1 \(line 2\) has an empty scan_id.*Fix:",
        ),
        (
            "r.csv",
            HEADER + "\nsite-a_sub-01_T2w,a,01,,fail,c,yesterday",
            r"rated_at 'yesterday' is not an ISO 8601 time; expected e\.g\.",
        ),
        ("r.yaml", "report: x\nratings: [unclosed\n", r"not valid YAML \(line \d+: .*\).*Fix:"),
        (
            "r.yaml",
            "- just\n- a list\n",
            r"the YAML document is a list; expected a mapping with the keys",
        ),
        (
            "r.yml",
            "report: x\n",
            r"is a dict with the keys \['report'\]; expected a mapping with the keys",
        ),
        (
            "r.yaml",
            "report: x\nratings: {a: 1}\n",
            r"'ratings' is a dict; expected a list of mappings",
        ),
        ("r.yaml", "ratings:\n  - just text\n", r"rating 1 is 'just text', not a mapping"),
        (
            "r.yaml",
            "ratings:\n  - {scan_id: x, site: a, sub: '01', ses: '', rating: fail, comment: ''}\n",
            r"rating 1 \(scan 'x'\) has no key\(s\) \['rated_at'\]",
        ),
        (
            "r.yaml",
            "ratings:\n  - {scan_id: x, site: a, sub: 01, ses: '', rating: fail, comment: '', rated_at: ''}\n",
            r"rating 1: sub is the YAML int 1, not text; expected a quoted string.*Fix: quote the value",
        ),
        (
            "r.yaml",
            "ratings:\n  - {scan_id: x, site: a, sub: '01', ses: '', rating: fail, comment: [a], rated_at: ''}\n",
            r"rating 1: comment is \['a'\]; expected a single text value",
        ),
        (
            "r.yaml",
            "ratings:\n  - {scan_id: x, site: a, sub: '01', ses: '', rating: 'no way', comment: '', rated_at: ''}\n",
            r"rating 1 \(scan 'x'\): rating 'no way' is not valid",
        ),
    ],
)
def test_bad_files(tmp_path, name, text, match):
    path = _write(tmp_path, name, text)
    with pytest.raises(ReportError, match=match) as ei:
        read_ratings(path)
    assert ei.value.path == str(path)
    assert str(path) in str(ei.value)


def test_missing_file(tmp_path):
    with pytest.raises(
        ReportError, match=r"cannot read the ratings file: FileNotFoundError.*Fix: check the path"
    ):
        read_ratings(tmp_path / "absent.csv")


def test_write_errors(tmp_path):
    df = _ratings(3)
    with pytest.raises(ReportError, match=r"unknown ratings file extension '\.json'"):
        write_ratings(df, tmp_path / "r.json")
    with pytest.raises(
        ReportError, match=r"the ratings have no column\(s\) \['rated_at'\].*Fix: build the frame"
    ):
        write_ratings(df.drop(columns="rated_at"), tmp_path / "r.csv")
    bad = df.copy()
    bad.loc[2, "rating"] = "maybe"
    with pytest.raises(
        ReportError,
        match=r"DataFrame row 3 \(scan 'site-s0_sub-02_T2w'\): rating 'maybe' is not valid",
    ):
        write_ratings(bad, tmp_path / "r.csv")
    assert not (tmp_path / "r.csv").exists()  # nothing written


def test_excluded_scans(tmp_path):
    df = _ratings(6)  # pass, fail, artifact, pass, fail, artifact
    assert excluded_scans(df) == set(df.scan_id[df.rating != "pass"])
    assert excluded_scans(df, exclude=("artifact",)) == {df.scan_id[2], df.scan_id[5]}
    assert excluded_scans(write_ratings(df, tmp_path / "r.csv"), exclude=("fail",)) == {
        df.scan_id[1],
        df.scan_id[4],
    }
    with pytest.raises(
        ValueError, match=r"exclude=\['bad'\] holds unknown ratings; expected values among"
    ):
        excluded_scans(df, exclude=("bad",))  # type: ignore[arg-type]
    with pytest.raises(ReportError, match=r"the ratings have no column\(s\) \['rating'\]"):
        excluded_scans(df.drop(columns="rating"))


# --------------------------------------------------------------------------- worklists on a fake run


def _fake_run(out: Path, rows: list[dict]) -> Path:
    folder = out / "tables" / "scans" / "site=a"
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "part-0.parquet")
    return out


def _scan_row(image: str, **kw) -> dict:
    row = {
        "scan_id": "site-a_sub-01_T2w",
        "sub": "01",
        "ses": None,
        "image_path": image,
        "cord_seg_path": "a/sub-01/anat/site-a_sub-01_T2w_sc_seg.nii.gz",
        "lesion_seg_path": "a/sub-01/anat/site-a_sub-01_T2w_lesion_seg.nii.gz",
        "status": "done",
    }
    row.update(kw)
    return row


def _one_fail(tmp_path: Path, scan_id: str = "site-a_sub-01_T2w") -> Path:
    df = _ratings(1)
    df["scan_id"] = scan_id
    df["rating"] = "fail"
    return write_ratings(df, tmp_path / "r.csv")


def test_worklist_errors_without_a_run(tmp_path):
    ratings = _one_fail(tmp_path)
    with pytest.raises(
        ReportError, match=r"no scans table .* expected the OUT_DIR of a `cohort-sciseg run`"
    ):
        worklist(ratings, tmp_path / "nothing")
    with pytest.raises(ValueError, match=r"ratings_to_fix=\['ok'\] holds unknown ratings"):
        worklist(ratings, tmp_path, ratings_to_fix=("ok",))  # type: ignore[arg-type]
    out = _fake_run(tmp_path / "noimage", [{"scan_id": "site-a_sub-01_T2w", "sub": "01"}])
    with pytest.raises(
        ReportError, match=r"the scans table has no column\(s\) \['ses', 'image_path'.*Fix: re-run"
    ):
        worklist(ratings, out)
    broken = tmp_path / "broken" / "tables" / "scans" / "site=a"
    broken.mkdir(parents=True)
    (broken / "part-0.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ReportError, match=r"cannot read the scans table: .*Fix: re-run"):
        worklist(ratings, tmp_path / "broken")


def test_worklist_image_outside_bids_folder(tmp_path):
    out = _fake_run(tmp_path / "run", [_scan_row("/data/flat/site-a_sub-01_T2w.nii.gz")])
    with pytest.raises(
        ReportError,
        match=r"scan 'site-a_sub-01_T2w': the image .* is not in a BIDS folder 'sub-01/anat'",
    ):
        worklist(_one_fail(tmp_path), out)
    out = _fake_run(
        tmp_path / "run2",
        [_scan_row("/data/ds/sub-01/ses-02/anat/sub-01_ses-02_T2w.nii.gz", ses="03")],
    )
    with pytest.raises(ReportError, match=r"not in a BIDS folder 'sub-01/ses-03/anat'"):
        worklist(_one_fail(tmp_path), out)


def test_worklist_of_a_fake_run(tmp_path):
    image = tmp_path / "ds" / "sub-01" / "ses-02" / "anat" / "sub-01_ses-02_T2w.nii.gz"
    out = _fake_run(
        tmp_path / "run", [_scan_row(str(image), ses="02", cord_seg_path=None, status="failed")]
    )
    todo = worklist(_one_fail(tmp_path), out)
    assert list(todo.columns) == list(WORKLIST_COLUMNS)
    row = todo.iloc[0]
    labels = tmp_path / "ds" / "derivatives" / "labels" / "sub-01" / "ses-02" / "anat"
    assert row.cord_target_path == str(labels / "sub-01_ses-02_T2w_seg-manual.nii.gz")
    assert row.lesion_target_path == str(labels / "sub-01_ses-02_T2w_lesion-manual.nii.gz")
    assert pd.isna(row.cord_seg_path)  # the scan failed: no prediction
    assert row.lesion_seg_path == str(
        out.resolve() / "a/sub-01/anat/site-a_sub-01_T2w_lesion_seg.nii.gz"
    )
    assert (row["site"], row["sub"], row["ses"]) == ("a", "01", "02")  # from the run's table
    with pytest.raises(
        ReportError,
        match=r"2 predicted mask\(s\) are missing: site-a_sub-01_T2w \(cord: None\).*Fix: re-run",
    ):
        prepare_corrections(todo)
    with pytest.raises(ReportError, match=r"the worklist has no column\(s\) \['image_path'\]"):
        prepare_corrections(todo.drop(columns="image_path"))


def test_prepare_into_a_dataset_without_labels_creates_the_derivative(tmp_path):
    # a dataset without derivatives/labels: the copies make one, with the description BIDS requires
    ds = tmp_path / "ds"
    image = ds / "sub-01" / "anat" / "sub-01_T2w.nii.gz"
    out = _fake_run(tmp_path / "run", [_scan_row(str(image))])
    for name, data in (("sc_seg", b"cord"), ("lesion_seg", b"lesion")):
        pred = out / "a" / "sub-01" / "anat" / f"site-a_sub-01_T2w_{name}.nii.gz"
        pred.parent.mkdir(parents=True, exist_ok=True)
        pred.write_bytes(data)
    todo = worklist(_one_fail(tmp_path), out)
    labels = ds / "derivatives" / "labels"
    anat = labels / "sub-01" / "anat"
    assert prepare_corrections(todo) == [
        anat / "sub-01_T2w_seg-manual.nii.gz",
        anat / "sub-01_T2w_lesion-manual.nii.gz",
    ]
    assert (anat / "sub-01_T2w_seg-manual.nii.gz").read_bytes() == b"cord"
    assert (anat / "sub-01_T2w_lesion-manual.nii.gz").read_bytes() == b"lesion"
    sidecar = json.loads((anat / "sub-01_T2w_lesion-manual.json").read_text())
    assert sidecar["SpatialReference"] == "bids::sub-01/anat/sub-01_T2w.nii.gz"
    assert sidecar["Structure"] == "lesion"
    desc = json.loads((labels / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    assert desc["BIDSVersion"] == "1.9.0"
    assert desc["SourceDatasets"] == [{"URL": "../../"}]
    assert desc["GeneratedBy"][0]["Name"] == "cohort-sciseg"
    assert sorted(p.name for p in labels.iterdir()) == ["dataset_description.json", "sub-01"]


# --------------------------------------------------------------------------- on a real run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One run of a 2-site cohort (site2 has sessions) with the fast stand-in segmenter."""
    root = tmp_path_factory.mktemp("ratings")
    cohort = synthesize_cohort(root / "cohort", sites=2, subjects_per_site=2, seed=7)
    roots = [Path(r) for r in cohort.dataset_roots]
    out = root / "run"
    opts = RunOptions(
        segmenter=SegmenterSpec.make("copy-manual", dilate_lesions=1), workers=1, progress=False
    )
    summary = run_cohort(roots, out, opts)
    assert summary.ok, summary.format()
    scans = {s.scan_id: s for s in find_scans(roots).scans}
    return roots, out, scans


@pytest.fixture
def labels_restored(run):
    """Tests change the datasets' manual masks: put them back afterwards."""
    roots = run[0]
    saved = [(r / "derivatives" / "labels", r.parent / f".saved-{r.name}") for r in roots]
    for labels, copy in saved:
        shutil.copytree(labels, copy)
    yield
    for labels, copy in saved:
        shutil.rmtree(labels)
        copy.rename(labels)


def _rate(run, tmp_path: Path, ratings: dict[str, str], ext: str = ".csv") -> Path:
    scans = run[2]
    rows = [
        {
            "scan_id": sid,
            "site": scans[sid].site,
            "sub": scans[sid].sub,
            "ses": scans[sid].ses,
            "rating": rating,
            "comment": f"{rating}, <b>checked</b>",
            "rated_at": "2024-05-01T12:00:00Z",
        }
        for sid, rating in ratings.items()
    ]
    return write_ratings(
        pd.DataFrame(rows, columns=list(RATING_COLUMNS)), tmp_path / f"ratings{ext}"
    )


def _pick(run) -> tuple[str, str, str]:
    """A scan without session, one with, and another one."""
    scans = run[2]
    no_ses = sorted(s for s in scans if scans[s].ses is None)
    ses = sorted(s for s in scans if scans[s].ses is not None)
    assert no_ses
    assert len(ses) >= 2
    return no_ses[0], ses[0], ses[1]


def test_worklist_targets_are_what_discovery_reads(run, tmp_path):
    _, out, scans = run
    a, b, c = _pick(run)
    ratings = _rate(
        run, tmp_path, {s: "pass" for s in scans} | {a: "fail", b: "FAIL", c: "artifact"}, ".yaml"
    )
    todo = worklist(ratings, out)
    assert todo.scan_id.tolist() == [s for s in scans if s in (a, b)]  # in the order of the ratings
    assert set(worklist(ratings, out, ratings_to_fix=("fail", "artifact")).scan_id) == {a, b, c}
    for row in todo.itertuples():
        scan = scans[row.scan_id]
        # the synthetic datasets have manual masks: the targets are exactly the files discovery reads
        assert row.cord_target_path == scan.cord_mask_path == row.cord_existing_path
        assert row.lesion_target_path == scan.lesion_mask_path == row.lesion_existing_path
        assert row.image_path == scan.image_path
        assert row.rating == "fail"
        assert row.comment.lower() == "fail, <b>checked</b>"
        for pred in (row.cord_seg_path, row.lesion_seg_path):
            assert Path(pred).is_absolute()
            assert Path(pred).is_file()
            assert Path(pred).is_relative_to(out.resolve())
    assert pd.isna(todo.set_index("scan_id").loc[a, "ses"])
    assert todo.set_index("scan_id").loc[b, "ses"] == scans[b].ses


def test_worklist_unknown_scans(run, tmp_path):
    _, out, scans = run
    ratings = {s: "pass" for s in scans} | {f"site-x_sub-{i:02d}_T2w": "fail" for i in range(7)}
    with pytest.raises(
        ReportError,
        match=r"7 rated scan\(s\) are not in the run's scans table: 'site-x_sub-00_T2w', .* and 2 more.*"
        r"Fix: pass the OUT_DIR of the run .*\(wrong OUT_DIR\?\)",
    ):
        worklist(_rate_unknown(tmp_path, ratings), out)


def _rate_unknown(tmp_path: Path, ratings: dict[str, str]) -> Path:
    rows = [
        {"scan_id": s, "site": "", "sub": "", "ses": "", "rating": r, "comment": "", "rated_at": ""}
        for s, r in ratings.items()
    ]
    return write_ratings(pd.DataFrame(rows), tmp_path / "unknown.csv")


def test_prepare_never_overwrites_an_existing_manual_mask(run, tmp_path, labels_restored):
    _, out, _scans = run
    a, b, _ = _pick(run)
    todo = worklist(_rate(run, tmp_path, {a: "fail", b: "fail"}), out)
    before = {p: Path(p).read_bytes() for p in [*todo.cord_target_path, *todo.lesion_target_path]}
    assert prepare_corrections(todo) == []
    assert {p: Path(p).read_bytes() for p in before} == before
    assert not list(Path(todo.cord_target_path[0]).parent.glob("*.json"))
    # asked to: the predictions replace them, each with a sidecar
    written = prepare_corrections(todo, overwrite=True)
    assert written == [
        Path(p)
        for pair in zip(todo.cord_target_path, todo.lesion_target_path, strict=True)
        for p in pair
    ]
    for row in todo.itertuples():
        assert Path(row.cord_target_path).read_bytes() == Path(row.cord_seg_path).read_bytes()
        assert Path(row.lesion_target_path).read_bytes() == Path(row.lesion_seg_path).read_bytes()


def test_prepare_refuses_a_copy_discovery_would_ignore(run, tmp_path, labels_restored):
    _, out, _ = run
    a, _, _ = _pick(run)
    todo = worklist(_rate(run, tmp_path, {a: "fail"}), out)
    target = Path(todo.cord_target_path[0])
    plain = target.with_name(
        target.name.removesuffix(".gz")
    )  # ..._seg-manual.nii: discovery prefers it
    img = nib.load(target)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine), plain)
    with pytest.raises(
        ReportError, match=r"seg-manual\.nii' would be read instead of the copy .*Fix: correct"
    ):
        prepare_corrections(todo, overwrite=True)
    assert prepare_corrections(todo) == []  # without overwrite: kept, no error


def test_prepare_then_discovery_reads_the_copies(run, tmp_path, labels_restored):
    roots, out, scans = run
    a, b, _ = _pick(run)
    # another manual suffix that discovery reads counts as an existing mask: b's cord is kept
    other = Path(scans[b].cord_mask_path.replace("_seg-manual", "_label-SC_seg"))
    shutil.copy(scans[b].cord_mask_path, other)
    for sid in (a, b):  # scans without manual masks (datasets often have none)
        Path(scans[sid].cord_mask_path).unlink()
        Path(scans[sid].lesion_mask_path).unlink()
    todo = worklist(_rate(run, tmp_path, {a: "fail", b: "fail"}), out)
    assert todo.set_index("scan_id").loc[b, "cord_existing_path"] == str(other)
    assert (
        todo.set_index("scan_id")
        .loc[a, ["cord_existing_path", "lesion_existing_path"]]
        .isna()
        .all()
    )
    written = prepare_corrections(todo)
    assert len(written) == 3
    found = {s.scan_id: s for s in find_scans(roots).scans}
    row = todo.set_index("scan_id")
    assert found[a].cord_mask_path == row.loc[a, "cord_target_path"]
    assert found[a].lesion_mask_path == row.loc[a, "lesion_target_path"]
    assert found[b].cord_mask_path == str(other)  # kept, still read
    assert found[b].lesion_mask_path == row.loc[b, "lesion_target_path"]
    assert (
        Path(found[a].cord_mask_path).read_bytes() == Path(row.loc[a, "cord_seg_path"]).read_bytes()
    )
    # the sidecar says where the mask comes from
    sidecar = json.loads(
        Path(row.loc[a, "cord_target_path"].replace(".nii.gz", ".json")).read_text()
    )
    assert sidecar["GeneratedBy"][0]["Name"] == "cohort-sciseg"
    assert sidecar["GeneratedBy"][0]["Description"] == "predicted mask copied for manual correction"
    assert (
        sidecar["SpatialReference"]
        == "bids::" + Path(scans[a].image_path).relative_to(scans[a].dataset_root).as_posix()
    )
    assert sidecar["Sources"] == [Path(row.loc[a, "cord_seg_path"]).as_uri()]
    assert sidecar["QC"]["rating"] == "fail"
    # a second prepare leaves the reviewer's corrections alone
    edited = Path(row.loc[a, "lesion_target_path"])
    img = nib.load(edited)
    nib.save(nib.Nifti1Image(np.zeros(img.shape, np.uint8), img.affine), edited)
    corrected = edited.read_bytes()
    assert prepare_corrections(worklist(_rate(run, tmp_path, {a: "fail"}), out)) == []
    assert edited.read_bytes() == corrected
    # the datasets' own labels description is left as it was
    for root in roots:
        desc = json.loads((root / "derivatives" / "labels" / "dataset_description.json").read_text())
        assert desc["Name"].startswith("Analytic manual labels of ")
