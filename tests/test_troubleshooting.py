"""The README's troubleshooting guide quotes messages the package really writes.

Each entry of the README section "Troubleshooting" quotes the start of one or more
messages on a line ``**Message:** `...` `` (``…`` stands for what varies). Two checks:

- every quoted message agrees with a string of the package's source (a literal, an
  f-string with its ``{...}`` parts, or a ``%``-format string): :func:`_agrees`;
- most of them are triggered for real with small calls, and the quoted text must
  match the message the package raises or logs.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import shutil
from collections.abc import Callable
from functools import cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import cohort_sciseg
from cohort_sciseg.errors import CohortSciSegError

REPO = Path(__file__).resolve().parents[1]
PACKAGE = Path(cohort_sciseg.__file__).resolve().parent
ELLIPSIS = "…"
#: Literal characters a quoted message must share with a source string (beyond its ``{...}`` parts).
MIN_LITERAL = 8
#: Share of a quoted message's characters (``…`` left out) that must be the source string's own text.
LITERAL_SHARE = 0.5

#: Stands for a ``{...}`` part of an f-string or a ``%s`` of a format string.
WILD = None
_PERCENT = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[sdirfgx]")


# ------------------------------------------------------------------ the README's entries


def _section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"^## Troubleshooting\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README.md has no '## Troubleshooting' section"
    return m.group(1)


def _entries() -> dict[str, list[str]]:
    """``{entry title: [quoted messages]}`` of the Troubleshooting section."""
    entries = {}
    for chunk in re.split(r"^### ", _section(), flags=re.M)[1:]:
        title, _, body = chunk.partition("\n")
        entries[title.strip()] = re.findall(r"^\*\*Message:\*\* `([^`]+)`", body, re.M)
    return entries


def _messages() -> list[str]:
    return [m for msgs in _entries().values() for m in msgs]


def _quoted(start: str) -> str:
    """The one quoted message that begins with ``start``."""
    found = [m for m in _messages() if m.startswith(start)]
    assert len(found) == 1, f"README troubleshooting: expected one message starting {start!r}, found {found}"
    return found[0]


def _pattern(quoted: str) -> re.Pattern[str]:
    return re.compile(".*?".join(re.escape(part) for part in quoted.split(ELLIPSIS)), re.S)


# ------------------------------------------------------------------ the package's strings


def _items_of(node: ast.AST) -> list[str | None] | None:
    """A source string as characters and wildcards, or None when ``node`` is not a string."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        items: list[str | None] = []
        pos = 0
        for m in _PERCENT.finditer(node.value):
            items += list(node.value[pos : m.start()])
            items.append(WILD)
            pos = m.end()
        return items + list(node.value[pos:])
    if isinstance(node, ast.JoinedStr):
        items = []
        for part in node.values:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                items += list(part.value)
            else:
                items.append(WILD)
        return items
    return None


@cache
def _templates() -> tuple[tuple[str | None, ...], ...]:
    """Every string of the package's code (docstrings and f-string pieces excluded)."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Expr):  # docstrings and bare strings: not messages
                skip.add(id(node.value))
            if isinstance(node, ast.JoinedStr):
                skip.update(id(v) for v in node.values)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            items = _items_of(node)
            if items and sum(i is not WILD for i in items) >= MIN_LITERAL:
                out.append(tuple(items))
    return tuple(out)


def _closure(states: dict[int, int], items: tuple[str | None, ...]) -> dict[int, int]:
    """States plus those reached by letting a wildcard match nothing."""
    out = dict(states)
    for p in sorted(states):
        q, c = p, states[p]
        while q < len(items) and items[q] is WILD:
            q += 1
            out[q] = max(out.get(q, -1), c)
    return out


def _agrees(quoted: str, items: tuple[str | None, ...]) -> bool:
    """Whether ``quoted`` is a message the source string (``items``) can start.

    A source wildcard matches any text of ``quoted``; an ``…`` of ``quoted`` stands
    for a varying part: it skips the source string up to one of its wildcards (or
    just after one). ``quoted`` must end where the source string ends, end with
    ``…`` (the rest is left out), or go on after the source string ends (the rest is
    appended at run time). Enough of ``quoted`` must be the source's own text: at
    least :data:`MIN_LITERAL` characters and :data:`LITERAL_SHARE` of its characters
    matched by literal characters of the source, not by its wildcards.
    """
    n = len(items)
    needed = max(MIN_LITERAL, LITERAL_SHARE * sum(ch != ELLIPSIS for ch in quoted))
    landings = [p for p in range(n) if p == 0 or items[p] is WILD or items[p - 1] is WILD]
    states = _closure({0: 0}, items)  # position in items -> literal characters matched so far
    for k, ch in enumerate(quoted):
        if ch == ELLIPSIS:
            if k == len(quoted) - 1:  # "the rest is left out"
                return max(states.values()) >= needed
            low = min(states)
            skipped = {
                p: max(c for q, c in states.items() if q <= p) for p in landings if p >= low
            }
            if not skipped:
                return False
            states = _closure(skipped, items)
            continue
        new: dict[int, int] = {}
        for p, c in states.items():
            if p == n:
                if c >= needed:  # the message goes on after the source string
                    return True
                continue
            if items[p] is WILD:
                new[p] = max(new.get(p, -1), c)
            elif items[p] == ch:
                new[p + 1] = max(new.get(p + 1, -1), c + 1)
        if not new:
            return False
        states = _closure(new, items)
    return states.get(n, -1) >= needed


# ------------------------------------------------------------------ the guide's shape


def test_the_guide_has_at_least_ten_entries_each_with_message_cause_and_fix():
    entries = _entries()
    assert len(entries) >= 10
    section = _section()
    for title, messages in entries.items():
        assert messages, f"troubleshooting entry {title!r} quotes no **Message:**"
        body = section.split(f"### {title}\n", 1)[1].split("\n### ", 1)[0]
        assert "**Cause:**" in body, f"entry {title!r} needs a **Cause:**"
        assert "**Fix:**" in body, f"entry {title!r} needs a **Fix:**"


@pytest.mark.parametrize("quoted", _messages())
def test_each_quoted_message_is_written_by_the_package(quoted: str):
    assert any(_agrees(quoted, t) for t in _templates()), (
        f"the README quotes {quoted!r}, which no string of cohort_sciseg/ writes: update the README's "
        "Troubleshooting entry to the message the code gives"
    )


@pytest.mark.parametrize(
    ("quoted", "source", "agrees"),
    [
        ("image is 4D with 3 frames, shape (…)", ("image is ", WILD, "D", WILD, ", shape ", WILD), True),
        ("image was 4D with 3 frames", ("image is ", WILD, "D", WILD, ", shape ", WILD), False),
        ("image is 4D and more", ("image is ", WILD, "D", WILD, ", shape ", WILD), False),  # stops half-way
        ("stops in the middle …", ("stops in the middle of the string",), True),
        ("cohort-sciseg run: internal failure (X)", ("cohort-sciseg ", WILD, ": internal error (", WILD, ")"), False),
        ("… scan(s): … done, 0 skipped", (WILD, " scan(s): ", WILD, " done, ", WILD, " already done, "), False),
        ("model folder /m has no model.json: ok", ("model folder %s has no %s: ok",), True),
        ("unknown keys ['x']", ("unknown keys ", WILD), True),
        ("unknown kezs ['x']", ("unknown keys ", WILD), False),
        ("the message goes on: and on", ("the message goes on: ",), True),
        ("x: y", (WILD, ": ", WILD), False),  # too little literal text to tell
    ],
)
def test_agreement_rule(quoted: str, source: tuple[str | None, ...], agrees: bool):
    items: list[str | None] = []
    for part in source:
        if part is WILD:
            items.append(WILD)
        else:
            for i, piece in enumerate(_PERCENT.split(part)):
                items += ([WILD] if i else []) + list(piece)
    assert _agrees(quoted, tuple(items)) is agrees


# ------------------------------------------------------------------ triggered for real


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([0.5, 0.6, 3.0, 1.0]) if affine is None else affine), path)
    return path


def _raw_header_image(path: Path, *, pixdim: tuple[float, float, float], sform_code: int, qform_code: int,
                      sform: np.ndarray) -> Path:
    """A NIfTI-1 file written byte by byte (nibabel would repair the header we need broken)."""
    data = np.zeros((7, 8, 9), dtype=np.float32)
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(data.shape)
    hdr.set_data_dtype(np.float32)
    hdr["pixdim"] = [1.0, *pixdim, 1.0, 1.0, 1.0, 1.0]
    hdr["sform_code"], hdr["qform_code"] = sform_code, qform_code
    hdr["srow_x"], hdr["srow_y"], hdr["srow_z"] = sform[0], sform[1], sform[2]
    hdr["vox_offset"] = 352
    path.write_bytes(hdr.binaryblock + b"\0" * 4 + data.tobytes(order="F"))
    return path


def _dataset(root: Path, image_name: str) -> Path:
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "t", "BIDSVersion": "1.9.0"}))
    _nifti(root / "sub-01" / "anat" / image_name, np.zeros((7, 8, 9), dtype=np.float32))
    return root


def _raised(fn: Callable[[], object]) -> str:
    with pytest.raises(CohortSciSegError) as info:
        fn()
    return str(info.value)


def _no_t2w(tmp: Path) -> str:
    from cohort_sciseg.discover import find_scans

    return _raised(lambda: find_scans([_dataset(tmp / "site1", "sub-01_t2.nii.gz")]))


def _not_bids(tmp: Path) -> str:
    from cohort_sciseg.discover import find_scans

    (tmp / "notbids" / "sub-01").mkdir(parents=True)
    return _raised(lambda: find_scans([tmp / "notbids"]))


def _four_d(tmp: Path) -> str:
    from cohort_sciseg.io import load_nifti

    path = _nifti(tmp / "sub-01_T2w.nii.gz", np.zeros((7, 8, 9, 3), dtype=np.float32))
    return _raised(lambda: load_nifti(path))


def _zero_pixdim(tmp: Path) -> str:
    from cohort_sciseg.io import load_nifti

    path = _raw_header_image(tmp / "a.nii", pixdim=(0.5, 0.6, 0.0), sform_code=0, qform_code=1, sform=np.eye(4))
    return _raised(lambda: load_nifti(path))


def _bad_sform(tmp: Path) -> str:
    from cohort_sciseg.io import load_nifti

    sform = np.diag([0.5, 0.6, 0.0, 1.0])
    path = _raw_header_image(tmp / "b.nii", pixdim=(0.5, 0.6, 3.0), sform_code=1, qform_code=0, sform=sform)
    return _raised(lambda: load_nifti(path))


def _off_grid(tmp: Path) -> str:
    from cohort_sciseg.io import check_same_geometry, load_nifti

    image = load_nifti(_nifti(tmp / "img.nii.gz", np.zeros((7, 8, 9), dtype=np.float32)))
    mask = load_nifti(_nifti(tmp / "mask.nii.gz", np.zeros((7, 8, 7), dtype=np.uint8)))
    # the validation of a run names the mask "manual cord mask" (validation/cohort.py)
    return _raised(lambda: check_same_geometry(image, mask, what="manual cord mask", scan_id="site-a_sub-01_T2w"))


def _manifest(tmp: Path) -> str:
    from cohort_sciseg.segment.manifest import check_manifest, write_manifest

    folder = tmp / "model"
    (folder / "fold_0").mkdir(parents=True)
    (folder / "plans.json").write_text("{}")
    write_manifest(folder, name="m")
    (folder / "plans.json").write_text('{"edited": true}')
    return _raised(lambda: check_manifest(folder))


def _no_manifest(tmp: Path, caplog: pytest.LogCaptureFixture) -> str:
    from cohort_sciseg.segment.loading import check_model
    from cohort_sciseg.segment.model import demo_model_path, find_model

    folder = tmp / "model"
    shutil.copytree(demo_model_path(), folder)
    (folder / "model.json").unlink()
    with caplog.at_level(logging.WARNING, logger="cohort_sciseg.segment.loading"):
        check_model(find_model(folder))
    return "\n".join(r.getMessage() for r in caplog.records)


def _no_gpu(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    from cohort_sciseg.segment import predictors

    monkeypatch.setattr(predictors, "_cuda_available", lambda: False)
    return _raised(lambda: predictors.require_device("cuda"))


def _cluster_key(tmp: Path) -> str:
    from cohort_sciseg.batch.clusters import load_cluster_config

    (tmp / "c.yaml").write_text("kind: slurm\nworkerz: 2\n")
    return _raised(lambda: load_cluster_config(tmp / "c.yaml"))


def _cluster_kind(tmp: Path) -> str:
    from cohort_sciseg.batch.clusters import load_cluster_config

    (tmp / "c.yaml").write_text("kind: slurmm\n")
    return _raised(lambda: load_cluster_config(tmp / "c.yaml"))


def _no_tables(tmp: Path) -> str:
    from cohort_sciseg.report import build_report

    return _raised(lambda: build_report(tmp))


#: The start of a quoted message -> a call that makes the package write it.
TRIGGERS: dict[str, Callable[..., str]] = {
    "no T2w images found": _no_t2w,
    "not a BIDS dataset": _not_bids,
    "image is 4D": _four_d,
    "voxel size pixdim": _zero_pixdim,
    "the sform (srow_x/y/z": _bad_sform,
    "manual cord mask": _off_grid,
    "model folder does not match": _manifest,
    "model folder … has no model.json": _no_manifest,
    "device 'cuda' requested": _no_gpu,
    "unknown keys": _cluster_key,
    "kind is": _cluster_kind,
    "no tables/ folder": _no_tables,
}


@pytest.mark.parametrize("start", sorted(TRIGGERS))
def test_quoted_message_is_what_the_package_says(
    start: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    quoted = _quoted(start)
    trigger = TRIGGERS[start]
    extra = {"monkeypatch": monkeypatch} if trigger is _no_gpu else {"caplog": caplog} if trigger is _no_manifest else {}
    real = trigger(tmp_path, **extra)
    assert _pattern(quoted).search(real), f"README quotes {quoted!r}; the package says {real!r}"


def test_most_entries_are_triggered():
    triggered = {title for title, msgs in _entries().items() if any(m.startswith(tuple(TRIGGERS)) for m in msgs)}
    assert len(triggered) >= 8, sorted(triggered)
