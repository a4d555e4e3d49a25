"""One bad file never stops (or hangs) discovery: symlink loops, deep JSON, FIFOs, duplicate ids, bad datasets.

Every case is built from real files (``os.symlink`` loops, ``os.mkfifo``, a JSON
file nested 100,000 levels deep, ...). With ``on_problem="record"`` each bad
file is exactly one problem that names it and gives a fix, and the other scans
are found; with ``on_problem="raise"`` it raises :class:`DiscoveryError`.
Discovery runs in a thread with a deadline (pytest-timeout is not installed),
so a regression that blocks on a FIFO fails the test instead of hanging the suite.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import cohort_sciseg.discover._fs as fs
import cohort_sciseg.discover._json as json_module
import cohort_sciseg.discover.participants as participants_module
from cohort_sciseg.discover import Discovery, find_scans, write_failures, write_scans
from cohort_sciseg.discover._fs import read_regular
from cohort_sciseg.errors import DiscoveryError
from cohort_sciseg.records import Failure

DEADLINE_S = 30.0
DEEP = "[" * 100_000 + "]" * 100_000


def run(call: Callable[[], Any], deadline: float = DEADLINE_S) -> Any:
    """``call()`` in a thread; fails (instead of hanging the suite) when it does not finish in time."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(deadline)
    assert not thread.is_alive(), f"discovery did not finish in {deadline} s (blocked on a file?)"
    if "error" in box:
        raise box["error"]
    return box["value"]


def discover(*args: Any, **kwargs: Any) -> Discovery:
    return run(lambda: find_scans(*args, **kwargs))


def ids(disc: Discovery) -> list[str]:
    return [s.scan_id for s in disc.scans]


def only_problem(disc: Discovery, path: Path | str, *words: str) -> Failure:
    """The one problem of ``disc``: about ``path``, naming it, with a fix and ``words``."""
    assert len(disc.problems) == 1, [p.message for p in disc.problems]
    (problem,) = disc.problems
    assert problem.stage == "discover"
    assert problem.error_type == "DiscoveryError"
    assert problem.path == str(path)
    assert repr(str(path)) in problem.message
    assert "Fix: " in problem.message
    for word in words:
        assert word in problem.message
    assert "Traceback" not in problem.message
    return problem


def raises_in_strict_mode(root: Path | list[Path], words: str) -> None:
    with pytest.raises(DiscoveryError, match=re.escape(words)):
        discover(root, on_problem="raise")


# ---------------------------------------------------------------- 1. symlink loops


def _loop(path: Path, via: Path | None = None) -> Path:
    """``path`` -> itself, or ``path`` -> ``via`` -> ``path`` (a loop of two links)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if via is None:
        path.symlink_to(path.name)
    else:
        via.parent.mkdir(parents=True, exist_ok=True)
        via.symlink_to(path)
        path.symlink_to(via)
    return path


# Each builds one bad entry under the dataset root and returns it; the second
# link of a two-link loop has a name discovery does not use, so it is not a problem.
LOOPS: dict[str, Callable[[Path], Path]] = {
    "image": lambda r: _loop(r / "sub-02" / "anat" / "sub-02_T2w.nii.gz"),
    "image, two links": lambda r: _loop(
        r / "sub-02" / "anat" / "sub-02_T2w.nii.gz", r / "sub-02" / "anat" / "other"
    ),
    "subject folder": lambda r: _loop(r / "sub-02"),
    "subject folder, two links": lambda r: _loop(r / "sub-02", r / "sourcedata" / "loop"),
    "session folder": lambda r: _loop(r / "sub-02" / "ses-01"),
    "anat folder": lambda r: _loop(r / "sub-02" / "anat"),
    "session anat folder": lambda r: _loop(r / "sub-02" / "ses-01" / "anat"),
    "mask": lambda r: _loop(
        r / "derivatives" / "labels" / "sub-01" / "anat" / "sub-01_T2w_seg-manual.nii.gz"
    ),
    "mask subject folder": lambda r: _loop(r / "derivatives" / "labels" / "sub-01"),
    "labels folder": lambda r: _loop(r / "derivatives" / "labels"),
    "participants.tsv": lambda r: _loop(r / "participants.tsv"),
    "dataset sidecar": lambda r: _loop(r / "T2w.json"),
}


@pytest.mark.parametrize("where", list(LOOPS))
def test_symlink_loop_is_one_problem(bids, where: str) -> None:
    ds = bids()
    ds.image("01")
    bad = LOOPS[where](ds.root)
    disc = discover(ds.root)
    assert ids(disc) == ["site-ds_sub-01_T2w"]
    assert disc.scans[0].cord_mask_path is None
    only_problem(disc, bad, "is a symlink loop", "remove the link")
    raises_in_strict_mode(ds.root, "symlink loop")


def test_symlink_loop_of_two_relevant_links_is_one_problem_each(bids) -> None:
    ds = bids()
    ds.image("01")
    a, b = ds.root / "sub-02" / "ses-a", ds.root / "sub-02" / "ses-b"
    _loop(a, b)
    disc = discover(ds.root)
    assert ids(disc) == ["site-ds_sub-01_T2w"]
    assert sorted(p.path for p in disc.problems) == [str(a), str(b)]
    assert all("symlink loop" in p.message for p in disc.problems)


def test_dataset_folder_that_is_a_symlink_loop_is_skipped(bids, tmp_path: Path) -> None:
    good = bids("good")
    good.image("01")
    bad = _loop(tmp_path / "loop", tmp_path / "loop2")
    disc = discover([good.root, bad])
    assert ids(disc) == ["site-good_sub-01_T2w"]
    only_problem(disc, bad, "BIDS dataset folder is a symlink loop")


# ---------------------------------------------------------------- 2. JSON nested 100,000 levels


@pytest.mark.parametrize(
    "where",
    [
        "sub-01/anat/sub-01_T2w.json",  # file level
        "sub-01/sub-01_T2w.json",  # subject level (inherited)
        "T2w.json",  # dataset level (inherited by every scan, reported once)
    ],
)
def test_deeply_nested_sidecar_is_one_problem(bids, where: str) -> None:
    ds = bids()
    ds.image("01")
    ds.image("02")
    (ds.root / "sub-02" / "anat" / "sub-02_T2w.json").write_text(
        '{"Manufacturer": "GE"}', encoding="utf-8"
    )
    bad = ds.root / where
    bad.write_text(DEEP, encoding="utf-8")
    disc = discover(ds.root)
    assert ids(disc) == ["site-ds_sub-01_T2w", "site-ds_sub-02_T2w"]
    assert disc.scans[0].sidecar == ()  # kept, without the metadata it cannot read
    assert disc.scans[1].manufacturer == "GE"
    only_problem(disc, bad, "cannot read the sidecar: nested too deeply", "json.tool")
    raises_in_strict_mode(ds.root, "nested too deeply")


def test_deeply_nested_dataset_description_is_one_problem(bids) -> None:
    ds = bids("mydata")
    ds.image("01")
    bad = ds.root / "dataset_description.json"
    bad.write_text(DEEP, encoding="utf-8")
    disc = discover(ds.root)
    assert ids(disc) == ["site-mydata_sub-01_T2w"]
    assert disc.scans[0].dataset_name == "mydata"  # the folder name stands in
    only_problem(disc, bad, "dataset_description.json: nested too deeply")
    raises_in_strict_mode(ds.root, "nested too deeply")


def test_deeply_nested_participants_json_is_not_read(bids) -> None:
    # Discovery reads participants.tsv only; its JSON description is for people.
    ds = bids()
    ds.image("01")
    (ds.root / "participants.json").write_text(DEEP, encoding="utf-8")
    disc = discover(ds.root, on_problem="raise")
    assert ids(disc) == ["site-ds_sub-01_T2w"]
    assert disc.problems == ()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"A": ' + "[" * 100 + "]" * 100 + "}", "nested more than 64 levels deep"),
        ('{"A": ' + "1" * 5000 + "}", "not readable JSON (Exceeds the limit"),
        ('{"Manufacturer": "GE\\ud800"}', "is not valid Unicode"),
        ('{"EchoTime": 0.1,,}', "not valid JSON (line 1"),
        (b'{"Manufacturer": "Sie\xffmens"}', "not UTF-8 text (line 1, byte 0xff)"),
    ],
    ids=["depth-100", "5000-digit-int", "lone-surrogate", "syntax", "latin1"],
)
def test_unusable_json_content_is_one_problem(bids, tmp_path: Path, content, words: str) -> None:
    ds = bids()
    ds.image("01")
    bad = ds.root / "sub-01" / "anat" / "sub-01_T2w.json"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        bad.write_text(content, encoding="utf-8")
    disc = discover(ds.root)
    assert ids(disc) == ["site-ds_sub-01_T2w"]
    only_problem(disc, bad, words)
    # What is kept can be written: no value the Parquet tables cannot hold.
    write_scans(disc, tmp_path / "out" / "scans.parquet")
    write_failures(disc, tmp_path / "out" / "failures.parquet")


# ---------------------------------------------------------------- 3. FIFOs, folders, sockets


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _folder(path: Path) -> None:
    path.mkdir()


def _socket(path: Path) -> None:
    # AF_UNIX paths are limited to ~107 bytes: bind the bare name from its folder.
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path.name)
        sock.close()  # the socket file stays
    finally:
        os.chdir(cwd)


MAKERS: dict[str, tuple[Callable[[Path], None], str]] = {
    "fifo": (_fifo, "a FIFO (named pipe)"),
    "folder": (_folder, "a folder"),
    "socket": (_socket, "a socket"),
}
TARGETS = {
    "participants.tsv": ("participants.tsv", "cannot read participants.tsv"),
    "dataset sidecar": ("T2w.json", "cannot read the sidecar"),
    "subject sidecar": ("sub-01/sub-01_T2w.json", "cannot read the sidecar"),
    "file sidecar": ("sub-01/anat/sub-01_T2w.json", "cannot read the sidecar"),
}


@pytest.mark.parametrize("kind", list(MAKERS))
@pytest.mark.parametrize("target", list(TARGETS))
def test_non_regular_file_is_one_problem_and_never_opened(bids, kind: str, target: str) -> None:
    ds = bids()
    ds.image("01")
    rel, prefix = TARGETS[target]
    bad = ds.root / rel
    make, detail = MAKERS[kind]
    make(bad)
    disc = discover(ds.root)  # a FIFO that were opened would block here forever
    assert ids(disc) == ["site-ds_sub-01_T2w"]
    only_problem(disc, bad, f"{prefix}: it is {detail}", "expected a regular file")
    raises_in_strict_mode(ds.root, f"it is {detail}")


def test_include_list_that_is_a_fifo_raises_without_blocking(bids, tmp_path: Path) -> None:
    # An include/exclude list is an option of the call, not part of a dataset:
    # going on without it would run scans the user left out, so it raises.
    ds = bids()
    ds.image("01")
    fifo = tmp_path / "include.txt"
    os.mkfifo(fifo)
    for option in ("include", "exclude"):
        with pytest.raises(DiscoveryError, match=rf"cannot read the {option} list: it is a FIFO"):
            discover(ds.root, **{option: fifo})


def test_dataset_description_that_is_a_fifo(bids) -> None:
    a, b = bids("a"), bids("b")
    a.image("01")
    b.image("01")
    desc = b.root / "dataset_description.json"
    desc.unlink()
    os.mkfifo(desc)
    disc = discover([a.root, b.root])
    assert ids(disc) == ["site-a_sub-01_T2w"]
    only_problem(disc, desc, "dataset_description.json is a FIFO", "expected a regular file")
    with pytest.raises(DiscoveryError, match=r"dataset_description\.json is a FIFO"):
        discover(b.root)


def test_read_regular_rechecks_the_open_file(tmp_path: Path, monkeypatch) -> None:
    # A file replaced by a FIFO between the type check and the open is opened
    # without blocking and refused on its descriptor.
    fifo = tmp_path / "p.tsv"
    os.mkfifo(fifo)
    monkeypatch.setattr(fs, "kind_of", lambda path: fs.PathKind("file", "a regular file"))
    with pytest.raises(DiscoveryError, match="cannot read the table: it is a FIFO"):
        run(lambda: read_regular(str(fifo), what="the table", max_bytes=100))


# ---------------------------------------------------------------- 4. one scan id, two images


def test_nii_beside_nii_gz_drops_the_scan_and_goes_on(bids) -> None:
    ds = bids()
    gz = ds.image("01")
    nii = ds.image("01", ext=".nii")
    ds.mask(gz, "seg-manual")  # matches the dropped scan: not "a mask without an image"
    ds.image("02")
    disc = discover(ds.root)
    assert ids(disc) == ["site-ds_sub-02_T2w"]
    problem = only_problem(disc, gz, "two images give the same scan id", str(nii), "remove")
    assert problem.scan_id == "site-ds_sub-01_T2w"
    assert problem.site == "ds"
    raises_in_strict_mode(ds.root, "two images give the same scan id 'site-ds_sub-01_T2w'")


def test_same_scan_id_across_datasets_drops_both(bids) -> None:
    a, b = bids("batch1"), bids("batch2")
    ia = a.image("01")
    ib = b.image("01")
    b.image("02")
    a.participants("participant_id\tsite\nsub-01\tzurich\n")
    b.participants("participant_id\tsite\nsub-01\tzurich\nsub-02\tzurich\n")
    disc = discover([a.root, b.root])
    assert ids(disc) == ["site-zurich_sub-02_T2w"]
    only_problem(disc, ib, "same scan id 'site-zurich_sub-01_T2w'", str(ia), "site column")
    raises_in_strict_mode([a.root, b.root], "same scan id 'site-zurich_sub-01_T2w'")


def test_only_duplicates_means_nothing_found(bids) -> None:
    ds = bids()
    ds.image("01")
    ds.image("01", ext=".nii")
    with pytest.raises(DiscoveryError, match=r"no T2w images found.*two images give the same"):
        discover(ds.root)


# ---------------------------------------------------------------- 5. a dataset that cannot be searched


def _no_description(path: Path) -> Path:
    path.mkdir()
    (path / "sub-01" / "anat").mkdir(parents=True)
    return path


def _missing(path: Path) -> Path:
    return path


def _a_file(path: Path) -> Path:
    path.write_text("x", encoding="utf-8")
    return path


BAD_DATASETS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "no description": (_no_description, "dataset_description.json is missing"),
    "missing folder": (_missing, "BIDS dataset folder does not exist"),
    "a file": (_a_file, "is a file, not a BIDS dataset folder"),
}


@pytest.mark.parametrize("case", list(BAD_DATASETS))
def test_unusable_dataset_among_good_ones_is_one_problem(bids, tmp_path: Path, case: str) -> None:
    a, b = bids("zurich"), bids("paris")
    a.image("01")
    b.image("01")
    reference = discover([a.root, b.root])
    make, words = BAD_DATASETS[case]
    bad = make(tmp_path / "site_Bad-3")
    disc = discover([a.root, bad, b.root])
    assert ids(disc) == ["site-paris_sub-01_T2w", "site-zurich_sub-01_T2w"]
    assert disc.scans == reference.scans  # the other datasets' sites do not move
    assert [d.root for d in disc.datasets] == [str(a.root), str(b.root)]
    problem = only_problem(disc, bad, words)
    assert problem.site == "siteBad3"
    assert problem.scan_id == f"dataset:{bad}"
    raises_in_strict_mode([a.root, bad, b.root], words)


def test_no_usable_dataset_raises_with_every_reason(tmp_path: Path) -> None:
    bad = [_no_description(tmp_path / "a"), tmp_path / "gone", _a_file(tmp_path / "f")]
    with pytest.raises(
        DiscoveryError, match="none of the 3 BIDS datasets given can be searched"
    ) as info:
        discover(bad)
    message = str(info.value)
    for path in bad:
        assert f"{str(path)!r}: " in message
    for _, words in BAD_DATASETS.values():
        assert words in message
    assert message.count("Fix: ") == 4


def test_dataset_listed_twice_still_raises(bids, tmp_path: Path) -> None:
    ds = bids("zurich")
    ds.image("01")
    with pytest.raises(DiscoveryError, match="dataset listed twice"):
        discover([ds.root, tmp_path / "missing", ds.root])


# ---------------------------------------------------------------- other hostile files


def test_broken_symlinks_are_one_problem_each(bids) -> None:
    ds = bids()
    ds.image("01")
    (ds.root / "participants.tsv").symlink_to("gone.tsv")
    (ds.root / "T2w.json").symlink_to("gone.json")
    (ds.root / "sub-02").symlink_to("gone")
    disc = discover(ds.root)
    assert ids(disc) == ["site-ds_sub-01_T2w"]
    assert sorted(p.path for p in disc.problems) == sorted(
        str(ds.root / n) for n in ("participants.tsv", "T2w.json", "sub-02")
    )
    assert all("broken symlink" in p.message and "Fix: " in p.message for p in disc.problems)


def test_broken_symlink_mask_is_a_problem_not_a_mask(bids) -> None:
    ds = bids()
    img = ds.image("01")
    mask = ds.mask(img, "seg-manual")
    mask.unlink()
    mask.symlink_to("gone.nii.gz")
    disc = discover(ds.root)
    assert disc.scans[0].cord_mask_path is None
    only_problem(disc, mask, "manual mask is a broken symlink")


def test_file_name_that_is_not_utf8_is_one_problem(bids, tmp_path: Path) -> None:
    ds = bids()
    img = ds.image("01")
    anat = os.fsencode(img.parent)
    os.symlink(img.name, anat + b"/sub-01_acq-\xff_T2w.nii.gz")
    disc = discover(ds.root)
    assert ids(disc) == ["site-ds_sub-01_T2w"]
    only_problem(disc, img.parent / "sub-01_acq-\\xff_T2w.nii.gz", "is not UTF-8 text", "convmv")
    write_scans(disc, tmp_path / "out" / "scans.parquet")
    write_failures(disc, tmp_path / "out" / "failures.parquet")
    assert pq.read_table(tmp_path / "out" / "failures.parquet").num_rows == 1


def test_permission_error_on_a_file_is_one_problem(bids, monkeypatch) -> None:
    # The suite may run as root, which chmod cannot stop: the denial is simulated.
    ds = bids()
    ds.image("01")
    table = ds.participants("participant_id\nsub-01\n")
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if os.fspath(path) == str(table):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(fs.os, "stat", stat)
    disc = discover(ds.root)
    assert ids(disc) == ["site-ds_sub-01_T2w"]
    only_problem(disc, table, "not accessible (PermissionError: Permission denied)", "ls -ld")


@pytest.mark.parametrize("which", ["sidecar", "participants.tsv"])
def test_huge_file_is_refused_unread(bids, monkeypatch, which: str) -> None:
    ds = bids()
    ds.image("01")
    if which == "sidecar":
        monkeypatch.setattr(json_module, "MAX_JSON_BYTES", 100)
        bad = ds.root / "T2w.json"
        bad.write_text('{"A": "' + "x" * 200 + '"}', encoding="utf-8")
    else:
        monkeypatch.setattr(participants_module, "MAX_TABLE_BYTES", 100)
        bad = ds.participants("participant_id\tnote\nsub-01\t" + "x" * 200 + "\n")
    disc = discover(ds.root)
    assert ids(disc) == ["site-ds_sub-01_T2w"]
    only_problem(disc, bad, "larger than the limit of 100 bytes")
