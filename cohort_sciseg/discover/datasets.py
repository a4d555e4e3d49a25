"""The datasets of one discovery: which folders are usable, their names, sites and participants.tsv.

With several datasets, a folder that cannot be searched (missing, not a folder,
no ``dataset_description.json``) is one problem and the others are searched;
only when none is usable does discovery stop (see :func:`usable_datasets`).
Site labels are explained in :mod:`cohort_sciseg.discover.find`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass

from cohort_sciseg.discover._fs import inside, kind_of, printable, unusable
from cohort_sciseg.discover._json import read_json
from cohort_sciseg.discover._problems import Problems, dataset_id
from cohort_sciseg.discover.entities import site_label
from cohort_sciseg.discover.participants import Participants, read_participants
from cohort_sciseg.errors import DiscoveryError, format_error

__all__ = [
    "Dataset",
    "SiteTables",
    "assign_folder_sites",
    "check_dataset",
    "check_inside",
    "dataset_name",
    "expand_dataset_folders",
    "folder_site",
    "read_site_tables",
    "usable_datasets",
]

logger = logging.getLogger(__name__)

MISSING_VALUES = ("", "n/a")
_DESCRIPTION = "dataset_description.json"


@dataclass(frozen=True, slots=True)
class Dataset:
    """A BIDS dataset searched by :func:`~cohort_sciseg.discover.find_scans`.

    Attributes
    ----------
    root
        The dataset folder, resolved (absolute, symlinks followed).
    given
        The path as it was passed.
    name
        ``Name`` from ``dataset_description.json``, else the folder name.
    site
        The dataset's own site label (folder-derived, made unique across the
        datasets of the call); subjects with a ``site`` value in
        ``participants.tsv`` use that instead.
    site_column
        Whether ``participants.tsv`` was read and has a ``site`` column.
    """

    root: str
    given: str
    name: str
    site: str
    site_column: bool = False


def folder_site(given: str) -> tuple[str, str]:
    """``(folder name, site label)`` of a dataset path as given (``site_Zurich-2`` -> ``siteZurich2``)."""
    folder = os.path.basename(os.path.abspath(given)) or "dataset"
    return folder, site_label(folder) or "dataset"


def check_dataset(given: str) -> str:
    """The resolved root of the BIDS dataset ``given``.

    Raises
    ------
    DiscoveryError
        ``given`` is missing, not a folder (a file, a symlink loop, ...), not
        UTF-8, or has no regular ``dataset_description.json``.
    """
    kind = kind_of(given)
    shown = printable(given)
    if kind.kind == "missing":
        msg = format_error(
            "BIDS dataset folder does not exist",
            path=shown,
            expected="an existing folder with dataset_description.json",
            fix="check the path (and that the disk is mounted)",
        )
        raise DiscoveryError(msg, path=shown)
    if kind.kind == "file":
        msg = format_error(
            "is a file, not a BIDS dataset folder",
            path=shown,
            expected="a folder with dataset_description.json",
            fix="pass the dataset's top folder (the one holding dataset_description.json and sub-*/)",
        )
        raise DiscoveryError(msg, path=shown)
    if kind.kind != "dir":
        raise unusable(given, kind, what="the BIDS dataset folder", expected="a folder")
    if shown != given:
        msg = format_error(
            "the dataset path is not UTF-8 text",
            path=shown,
            expected="a UTF-8 path (the scan tables store it)",
            fix="rename the folder, or pass it through a symlink with a UTF-8 name",
        )
        raise DiscoveryError(msg, path=shown)
    desc = os.path.join(given, _DESCRIPTION)
    kind = kind_of(desc)
    if kind.kind == "missing":
        msg = format_error(
            "not a BIDS dataset: dataset_description.json is missing",
            path=shown,
            expected="a BIDS dataset folder with dataset_description.json and sub-*/ folders",
            fix='pass the dataset\'s top folder, or create dataset_description.json with at least {"Name": "...", "BIDSVersion": "1.9.0"}',
        )
        raise DiscoveryError(msg, path=shown)
    if kind.kind != "file":
        raise unusable(
            desc, kind, what=f"not a BIDS dataset: {_DESCRIPTION}", expected="a regular file"
        )
    return os.path.realpath(given)


def usable_datasets(given: list[str], problems: Problems) -> list[tuple[str, str]]:
    """``(given, root)`` of each dataset that can be searched, in the order given.

    A dataset that cannot be searched (see :func:`check_dataset`) is one
    problem with the site of its folder name, and the others are searched
    (``on_problem="raise"``: raised at the first).

    Raises
    ------
    DiscoveryError
        No dataset is usable (the message gives each reason; with one dataset,
        its own error); or a dataset is given twice.
    """
    usable: list[tuple[str, str]] = []
    failed: list[DiscoveryError] = []
    for g in given:
        try:
            usable.append((g, check_dataset(g)))
        except DiscoveryError as err:
            problems.add(
                err, scan_id=dataset_id(printable(os.path.abspath(g))), site=folder_site(g)[1]
            )
            failed.append(err)
    if not usable:
        if len(failed) == 1:
            raise failed[0]
        msg = format_error(
            f"none of the {len(failed)} BIDS datasets given can be searched",
            expected="at least one folder with dataset_description.json",
            fix="correct the paths listed below, as each message says",
        )
        raise DiscoveryError(msg + "".join(f"\n  - {err}" for err in failed))
    seen: dict[str, str] = {}
    for g, r in usable:
        if r in seen:
            msg = format_error(
                f"dataset listed twice: {seen[r]!r} and {g!r} are the same folder {r!r}",
                path=g,
                expected="each dataset once",
                fix="remove the duplicate from the list of datasets",
            )
            raise DiscoveryError(msg, path=g)
        seen[r] = g
    return usable


def check_inside(path: str, root: str) -> None:
    """Raise unless ``path`` resolves inside the dataset ``root`` (a top-level file read by name)."""
    if not inside(path, root):
        target = os.path.realpath(path)
        msg = format_error(
            f"symlink points outside the dataset, to {target!r}; not followed",
            path=path,
            expected=f"files that stay inside {root!r}",
            fix="copy the file into the dataset",
        )
        raise DiscoveryError(msg, path=path)


def dataset_name(root: str, folder: str, problems: Problems, site: str) -> str:
    """``Name`` from ``dataset_description.json``, else ``folder`` (and a problem when unreadable)."""
    path = os.path.join(root, _DESCRIPTION)
    try:
        check_inside(path, root)
        desc = read_json(
            path,
            what=_DESCRIPTION,
            expected="a JSON object with Name and BIDSVersion",
            fix="fix the JSON syntax (check it with `python -m json.tool FILE`); the folder name is used meanwhile",
        )
    except DiscoveryError as err:
        problems.add(err, scan_id=dataset_id(root), site=site)
        return folder
    name = desc.get("Name") if isinstance(desc, dict) else None
    return name if isinstance(name, str) and name.strip() else folder


@dataclass(frozen=True, slots=True)
class SiteTables:
    """The ``participants.tsv`` of each dataset and the site labels of its ``site`` column.

    Attributes
    ----------
    tables
        Per dataset, its table or ``None`` (absent or unreadable).
    column_sites
        Per dataset, the site labels of its ``site`` column (empty without one).
    """

    tables: list[Participants | None]
    column_sites: list[frozenset[str]]


def read_site_tables(roots: list[str], bases: list[str], problems: Problems) -> SiteTables:
    """Read each dataset's ``participants.tsv`` (a problem when unreadable) and its site labels.

    Logs a warning when different raw ``site`` values reduce to the same label.
    """
    tables: list[Participants | None] = []
    column_sites: list[frozenset[str]] = []
    raw_of_label: dict[str, set[str]] = {}
    for root, base in zip(roots, bases, strict=True):
        table = None
        path = os.path.join(root, "participants.tsv")
        if os.path.lexists(path):
            try:
                check_inside(path, root)
                table = read_participants(path)
            except DiscoveryError as err:
                problems.add(err, scan_id=dataset_id(root), site=base)
        tables.append(table)
        labels: set[str] = set()
        if table is not None and "site" in table.columns:
            for row in table.rows.values():
                for k, v in row:
                    raw = v.strip()
                    if k == "site" and raw not in MISSING_VALUES and (label := site_label(raw)):
                        labels.add(label)
                        raw_of_label.setdefault(label, set()).add(raw)
        column_sites.append(frozenset(labels))
    for label, raws in sorted(raw_of_label.items()):
        if len(raws) > 1:
            logger.warning(
                "participants.tsv site values %s all give the site label %r; they are one site",
                sorted(raws),
                label,
            )
    return SiteTables(tables=tables, column_sites=column_sites)


def assign_folder_sites(folder_labels: list[str], column_sites: list[frozenset[str]]) -> list[str]:
    """Folder-derived site labels made unique (``data``, ``data2``, ...), avoiding ``site`` column labels."""
    taken: set[str] = set()
    out = []
    for i, base in enumerate(folder_labels):
        others: set[str] = set()
        for j, cols in enumerate(column_sites):
            if j != i:
                others |= cols
        label, k = base, 2
        while label in taken or label in others:
            label, k = f"{base}{k}", k + 1
        if label != base:
            logger.warning(
                "site label %r of dataset %d is already used by another dataset; using %r",
                base,
                i + 1,
                label,
            )
        taken.add(label)
        out.append(label)
    return out


def expand_dataset_folders(
    folders: Iterable[str | os.PathLike[str]],
) -> tuple[list[str], list[str]]:
    """Replace a folder that holds BIDS datasets (not one itself) by those datasets.

    ``cohort-sciseg synth`` writes one dataset per site under one folder (beside
    ``ground_truth/``); a user naturally passes that folder. A given folder without
    ``dataset_description.json`` whose sub-folders include datasets stands for
    them, in name order; anything else is kept as given (and checked as usual).

    Returns
    -------
    tuple
        The folders to search, and one plain-language note per expanded folder.
    """
    out: list[str] = []
    notes: list[str] = []
    for given in (os.fspath(f) for f in folders):
        if os.path.isdir(given) and not os.path.lexists(os.path.join(given, _DESCRIPTION)):
            try:
                children = sorted(e.path for e in os.scandir(given) if e.is_dir() and not e.name.startswith("."))
            except OSError:
                children = []
            datasets = [c for c in children if os.path.isfile(os.path.join(c, _DESCRIPTION))]
            if datasets:
                names = ", ".join(os.path.basename(d) for d in datasets)
                notes.append(f"{given} is not a BIDS dataset but holds {len(datasets)}: {names} (one site each)")
                out += datasets
                continue
        out.append(given)
    return out, notes
