"""participants.tsv: strict reading, clear errors, merged into the scans."""

from __future__ import annotations

from pathlib import Path

import pytest

from cohort_sciseg.discover import find_scans, read_participants
from cohort_sciseg.errors import DiscoveryError


def _write(tmp_path: Path, data: str | bytes) -> Path:
    p = tmp_path / "participants.tsv"
    if isinstance(data, bytes):
        p.write_bytes(data)
    else:
        p.write_text(data, encoding="utf-8")
    return p


def test_read_participants(tmp_path: Path) -> None:
    p = _write(tmp_path, "participant_id\tage\tsex\nsub-01\t34\tF\n02\tn/a\tM\n\n")
    t = read_participants(p)
    assert t.columns == ("participant_id", "age", "sex")
    assert set(t.rows) == {"01", "02"}
    assert dict(t.rows["01"]) == {"participant_id": "sub-01", "age": "34", "sex": "F"}
    assert t.value("02", "age") == "n/a"
    assert t.value("03", "age") is None
    assert t.value("01", "site") is None


def test_read_participants_bom_and_crlf(tmp_path: Path) -> None:
    p = _write(tmp_path, "\ufeffparticipant_id\tage\r\nsub-01\t34\r\n".encode())
    assert dict(read_participants(p).rows["01"]) == {"participant_id": "sub-01", "age": "34"}


def test_bad_encoding_names_the_line(tmp_path: Path) -> None:
    p = _write(tmp_path, b"participant_id\tcity\nsub-01\tZ\xfcrich\n")
    with pytest.raises(
        DiscoveryError, match=r"not UTF-8 text \(line 2, byte 0xfc\).*Fix: re-save it as UTF-8"
    ):
        read_participants(p)


def test_ragged_rows_name_the_lines(tmp_path: Path) -> None:
    p = _write(tmp_path, "participant_id\tage\tsex\nsub-01\t34\tF\nsub-02\t40\nsub-03\t1\t2\t3\n")
    with pytest.raises(
        DiscoveryError,
        match=r"lines 3, 4: wrong number of fields \(the header has 3 columns\).*n/a",
    ):
        read_participants(p)


def test_no_participant_id_column(tmp_path: Path) -> None:
    p = _write(tmp_path, "subject\tage\n01\t3\n")
    with pytest.raises(
        DiscoveryError, match=r"line 1: no participant_id column among \['subject', 'age'\]"
    ):
        read_participants(p)


def test_comma_separated_file_gets_a_hint(tmp_path: Path) -> None:
    p = _write(tmp_path, "participant_id,age\nsub-01,3\n")
    with pytest.raises(DiscoveryError, match="looks comma-separated; BIDS requires tabs"):
        read_participants(p)


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match=r"participants\.tsv is empty"):
        read_participants(_write(tmp_path, "\n\n"))


def test_duplicate_subject(tmp_path: Path) -> None:
    p = _write(tmp_path, "participant_id\tage\nsub-01\t3\n01\t4\n")
    with pytest.raises(DiscoveryError, match=r"line 3: participant_id '01' is already on line 2"):
        read_participants(p)


def test_empty_participant_id(tmp_path: Path) -> None:
    p = _write(tmp_path, "participant_id\tage\nsub-\t3\n")
    with pytest.raises(DiscoveryError, match=r"line 2: empty participant_id 'sub-'"):
        read_participants(p)


def test_unreadable_file(tmp_path: Path) -> None:
    folder = tmp_path / "participants.tsv"
    folder.mkdir()
    with pytest.raises(DiscoveryError, match=r"cannot read participants\.tsv"):
        read_participants(folder)


def test_columns_are_merged_into_scans(bids) -> None:
    ds = bids()
    ds.image("01")
    ds.image("02", ses="a")
    ds.image("03")
    ds.participants("participant_id\tage\tgroup\nsub-01\t34\tSCI\nsub-02\t51\tHC\n")
    disc = find_scans(ds.root)
    by_sub = {s.sub: s for s in disc.scans}
    assert by_sub["01"].participant_dict == {
        "participant_id": "sub-01",
        "age": "34",
        "group": "SCI",
    }
    assert by_sub["02"].participant_dict["group"] == "HC"
    assert by_sub["03"].participant == ()  # not listed: no row, no problem
    assert disc.problems == ()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"participant_id\tage\nsub-01\t3\xe9\n", "not UTF-8 text (line 2"),
        (b"participant_id\tage\nsub-01\t3\t4\n", "line 2: wrong number of fields"),
        (b"id\tage\nsub-01\t3\n", "no participant_id column"),
    ],
)
def test_broken_participants_is_a_problem_and_scans_are_still_found(
    bids, content: bytes, fragment: str
) -> None:
    ds = bids()
    ds.image("01")
    ds.image("02")
    path = ds.participants(content)
    disc = find_scans(ds.root)
    assert [s.sub for s in disc.scans] == ["01", "02"]
    assert all(s.participant == () for s in disc.scans)
    (problem,) = disc.problems
    assert problem.path == str(path)
    assert problem.stage == "discover"
    assert problem.scan_id == f"dataset:{ds.root}"
    assert fragment in problem.message
    assert "Fix:" in problem.message


def test_broken_participants_raises_with_raise_policy(bids) -> None:
    ds = bids()
    ds.image("01")
    ds.participants("participant_id\tage\nsub-01\n")
    with pytest.raises(DiscoveryError, match=r"participants\.tsv'.*line 2: wrong number of fields"):
        find_scans(ds.root, on_problem="raise")
