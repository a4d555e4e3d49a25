"""Find the T2w scans of one or many BIDS datasets: :func:`find_scans`.

Layout searched, per dataset::

    <dataset>/dataset_description.json                 required
    <dataset>/participants.tsv                         optional, merged per subject
    <dataset>/[acq-<label>_]T2w.json                   sidecars (BIDS inheritance)
    <dataset>/sub-<label>/[ses-<label>/]anat/sub-<label>[_ses-<label>][_<key>-<label>...]_T2w.nii[.gz]
    <dataset>/derivatives/labels/sub-<label>/[ses-<label>/]anat/<image stem>_<mask suffix>.nii[.gz]

Sites
-----
Each dataset is one site by default, labelled with its folder name reduced to
BIDS alphanumerics (``site_Zurich-2`` -> ``siteZurich2``). When its
``participants.tsv`` has a ``site`` column, each subject gets the site of its
row (reduced the same way; an empty or ``n/a`` value falls back to the
dataset's label). A label that Parquet readers would take for a number (or a
boolean or date) is prefixed with ``site`` (folder ``001`` or site value ``01``
-> ``site001``, ``site01``), because the run tables are hive-partitioned by
site and must read back with ``site`` as a string, unchanged (see
:func:`~cohort_sciseg.discover.entities.site_label`). Site labels from
``site`` columns are explicit and may be shared by several datasets (the same
scanner contributing to two datasets); different raw values that reduce to the
same label (``site_01`` and ``01``) are one site, and a warning is logged.
Labels derived from folder names are implicit, so a folder-derived label that
is already used by an earlier dataset, or by another dataset's ``site`` column,
gets the smallest numeric suffix that makes it unique (``data``, ``data2``,
...) and a warning is logged. Two different datasets therefore never merge
into one site by accident of folder naming, and a dataset passed twice is an
error rather than a second site.

Speed
-----
Folders are listed once with :func:`os.scandir` (no pybids, no regular
expression per file), sidecars are parsed once per file, and NIfTI headers are
read in a thread pool when there are many scans.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from cohort_sciseg.discover._fs import inside, list_dir
from cohort_sciseg.discover.entities import (
    Entities,
    acq_plane,
    encode_label,
    parse_name,
    scan_id,
    site_label,
)
from cohort_sciseg.discover.filters import IdList, normalize_labels, read_id_list
from cohort_sciseg.discover.masks import DEFAULT_CORD_SUFFIXES, DEFAULT_LESION_SUFFIXES, find_masks
from cohort_sciseg.discover.participants import Participants, read_participants
from cohort_sciseg.discover.sidecars import (
    LEVEL_DATASET,
    LEVEL_DATATYPE,
    LEVEL_SESSION,
    LEVEL_SUBJECT,
    SidecarCache,
    SidecarFile,
    merge_sidecars,
    parse_field_strength,
    sidecar_file,
)
from cohort_sciseg.errors import CohortSciSegError, DiscoveryError, NiftiError, format_error
from cohort_sciseg.io import NiftiInfo, acquisition_plane, read_header
from cohort_sciseg.records import Failure, Scan

__all__ = ["Dataset", "Discovery", "OnProblem", "find_scans"]

logger = logging.getLogger(__name__)

OnProblem = Literal["record", "raise"]
_ON_PROBLEM = ("record", "raise")

#: Below this many scans, headers are read in the calling thread (a pool costs more than it saves).
_POOL_FROM = 64
#: Scans read serially to decide whether header reads wait on storage.
_PROBE = 32
#: Wall time over CPU time above which reads count as waiting on storage.
_IO_BOUND_RATIO = 2.0
_MISSING_VALUES = ("", "n/a")


@dataclass(frozen=True, slots=True)
class Dataset:
    """A BIDS dataset searched by :func:`find_scans`.

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


@dataclass(frozen=True, slots=True)
class Discovery:
    """What :func:`find_scans` found.

    Attributes
    ----------
    scans
        One record per readable T2w image, sorted by ``scan_id``.
    problems
        Failure records (stage ``"discover"``) for everything that was skipped
        or could not be read: corrupt images, broken sidecars or
        ``participants.tsv``, masks without an image, symlinks leaving a dataset.
    filters
        The active filters and options (``datasets``, ``participant_labels``,
        ``sessions``, ``include``, ``exclude``, suffixes), for messages and summaries.
    datasets
        The datasets searched, in the order given.
    """

    scans: tuple[Scan, ...]
    problems: tuple[Failure, ...] = ()
    filters: dict[str, Any] = field(default_factory=dict)
    datasets: tuple[Dataset, ...] = ()

    def __len__(self) -> int:
        return len(self.scans)


@dataclass(slots=True)
class _Candidate:
    """An image found on disk, before its header is read."""

    dataset: Dataset
    sub: str
    ses: str | None
    entities: Entities
    stem: str
    path: str
    folder: str
    site: str
    scan_id: str
    sidecars: tuple[SidecarFile, ...]
    participant: tuple[tuple[str, str], ...]
    cord: tuple[int, str] | None = None
    lesion: tuple[int, str] | None = None


class _Problems:
    """Collects failure records, or raises at the first one (``on_problem="raise"``)."""

    def __init__(self, policy: OnProblem) -> None:
        self.policy = policy
        self.records: list[Failure] = []

    def add(self, exc: BaseException, *, scan_id: str, site: str | None) -> None:
        if self.policy == "raise":
            if isinstance(exc, DiscoveryError):
                raise exc
            path = getattr(exc, "path", None)
            msg = str(exc) if isinstance(exc, CohortSciSegError) else f"{type(exc).__name__}: {exc}"
            raise DiscoveryError(msg, path=path, scan_id=scan_id) from exc
        # Returned as records; logged at debug level only, so a library call stays quiet.
        logger.debug("discovery problem: %s", exc)
        self.records.append(
            Failure.from_exception(exc, scan_id=scan_id, stage="discover", site=site)
        )


def _dataset_id(root: str) -> str:
    return f"dataset:{root}"


def _as_paths(bids_dirs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    if isinstance(bids_dirs, (str, os.PathLike)):
        return [os.fspath(bids_dirs)]
    return [os.fspath(p) for p in bids_dirs]


def _as_suffixes(value: str | Sequence[str], what: str) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else tuple(value)
    for s in items:
        if not isinstance(s, str) or not s or "/" in s or os.sep in s:
            msg = format_error(
                f"{what} contains {s!r}",
                expected="non-empty file-name suffixes such as 'seg-manual'",
                fix=f"pass {what} as a tuple of strings, e.g. ('seg-manual', 'label-SC_seg')",
            )
            raise ValueError(msg)
    return items


def _check_dataset(given: str) -> str:
    if not os.path.exists(given):
        msg = format_error(
            "BIDS dataset folder does not exist",
            path=given,
            expected="an existing folder with dataset_description.json",
            fix="check the path (and that the disk is mounted)",
        )
        raise DiscoveryError(msg, path=given)
    if not os.path.isdir(given):
        msg = format_error(
            "is a file, not a BIDS dataset folder",
            path=given,
            expected="a folder with dataset_description.json",
            fix="pass the dataset's top folder (the one holding dataset_description.json and sub-*/)",
        )
        raise DiscoveryError(msg, path=given)
    if not os.path.isfile(os.path.join(given, "dataset_description.json")):
        msg = format_error(
            "not a BIDS dataset: dataset_description.json is missing",
            path=given,
            expected="a BIDS dataset folder with dataset_description.json and sub-*/ folders",
            fix='pass the dataset\'s top folder, or create dataset_description.json with at least {"Name": "...", "BIDSVersion": "1.9.0"}',
        )
        raise DiscoveryError(msg, path=given)
    return os.path.realpath(given)


def _check_inside(path: str, root: str) -> None:
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


def _dataset_name(root: str, folder: str, problems: _Problems, site: str) -> str:
    path = os.path.join(root, "dataset_description.json")
    try:
        _check_inside(path, root)
    except DiscoveryError as err:
        problems.add(err, scan_id=_dataset_id(root), site=site)
        return folder
    try:
        with open(path, "rb") as fh:
            desc = json.loads(fh.read())
    except (OSError, ValueError) as exc:
        msg = format_error(
            f"dataset_description.json cannot be read ({type(exc).__name__}: {exc})",
            path=path,
            expected="a JSON object with Name and BIDSVersion",
            fix="fix the JSON syntax (check it with `python -m json.tool FILE`); the folder name is used meanwhile",
        )
        problems.add(DiscoveryError(msg, path=path), scan_id=_dataset_id(root), site=site)
        return folder
    name = desc.get("Name") if isinstance(desc, dict) else None
    return name if isinstance(name, str) and name.strip() else folder


def _assign_folder_sites(folder_labels: list[str], column_sites: list[frozenset[str]]) -> list[str]:
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


class _Walker:
    """Lists one dataset and collects :class:`_Candidate` images."""

    def __init__(
        self,
        dataset: Dataset,
        participants: Participants | None,
        *,
        image_suffix: str,
        subject_ok: Callable[[str], bool],
        session_ok: Callable[[str | None], bool],
        problems: _Problems,
    ) -> None:
        self.ds = dataset
        self.participants = participants
        self.suffix = image_suffix
        self.tails = (f"_{image_suffix}.nii.gz", f"_{image_suffix}.nii")
        self.json_tail = f"{image_suffix}.json"
        self.subject_ok = subject_ok
        self.session_ok = session_ok
        self.problems = problems
        self.found: list[_Candidate] = []
        self._sites: dict[str, str] = {}

    def _report(self, exc: DiscoveryError) -> None:
        self.problems.add(exc, scan_id=_dataset_id(self.ds.root), site=self.ds.site)

    def _list(self, path: str, relevant: Callable[[str], bool]) -> list[os.DirEntry[str]]:
        entries, errs = list_dir(path, self.ds.root, relevant)
        for e in errs:
            self._report(e)
        return entries

    def _is_sidecar(self, name: str) -> bool:
        return name.endswith(self.json_tail)

    def _relevant_top(self, name: str) -> bool:
        return name.startswith("sub-") or self._is_sidecar(name)

    def _relevant_folder(self, name: str) -> bool:
        return name == "anat" or name.startswith("ses-") or self._is_sidecar(name)

    def _relevant_anat(self, name: str) -> bool:
        return name.endswith(self.tails) or self._is_sidecar(name)

    def _sidecars(self, entries: list[os.DirEntry[str]], level: int) -> tuple[SidecarFile, ...]:
        out = []
        for e in entries:
            if e.name.endswith(".json"):
                sf = sidecar_file(e.name, e.path, level, self.suffix)
                if sf is not None:
                    out.append(sf)
        return tuple(out)

    def site_of(self, sub: str) -> str:
        try:
            return self._sites[sub]
        except KeyError:
            pass
        site = self.ds.site
        if self.participants is not None and self.ds.site_column:
            raw = self.participants.value(sub, "site")
            if raw is not None and raw.strip() not in _MISSING_VALUES:
                reduced = site_label(raw.strip())
                if reduced:
                    site = reduced
                else:
                    msg = format_error(
                        f"site {raw!r} of sub-{sub} has no letters or digits; using the dataset's site {site!r}",
                        path=self.participants.path,
                        expected="a site label with BIDS alphanumerics [A-Za-z0-9]",
                        fix="give the subject a site label made of letters and digits (e.g. 'zurich')",
                    )
                    self._report(DiscoveryError(msg, path=self.participants.path))
        self._sites[sub] = site
        return site

    def walk(self) -> None:
        root = self.ds.root
        top = self._list(root, self._relevant_top)
        root_sc = self._sidecars(top, LEVEL_DATASET)
        for sub in top:
            name = sub.name
            if not name.startswith("sub-") or len(name) == 4 or not sub.is_dir():
                continue
            label = name[4:]
            if not self.subject_ok(label):
                continue
            sub_entries = self._list(sub.path, self._relevant_folder)
            sub_sc = root_sc + self._sidecars(sub_entries, LEVEL_SUBJECT)
            for e in sub_entries:
                if e.name == "anat":
                    if e.is_dir() and self.session_ok(None):
                        self._anat(e.path, f"{name}/anat", label, None, sub_sc)
                elif e.name.startswith("ses-") and len(e.name) > 4 and e.is_dir():
                    ses = e.name[4:]
                    if not self.session_ok(ses):
                        continue
                    ses_entries = self._list(e.path, self._relevant_folder)
                    ses_sc = sub_sc + self._sidecars(ses_entries, LEVEL_SESSION)
                    for a in ses_entries:
                        if a.name == "anat" and a.is_dir():
                            self._anat(a.path, f"{name}/{e.name}/anat", label, ses, ses_sc)

    def _anat(
        self, folder: str, rel: str, sub: str, ses: str | None, inherited: tuple[SidecarFile, ...]
    ) -> None:
        entries = self._list(folder, self._relevant_anat)
        sidecars = inherited + self._sidecars(entries, LEVEL_DATATYPE)
        tail_gz, tail_nii = self.tails
        for e in entries:
            name = e.name
            if name.endswith(tail_gz):
                stem = name[:-7]
            elif name.endswith(tail_nii):
                stem = name[:-4]
            else:
                continue
            if e.is_dir():
                continue
            parsed = parse_name(stem)
            if parsed is None:
                msg = format_error(
                    f"file name {name!r} is not a valid BIDS name; skipped",
                    path=e.path,
                    expected=f"sub-<label>[_ses-<label>][_<key>-<label>...]_{self.suffix}.nii.gz "
                    "(labels without '_', every key with a label, no repeated key)",
                    fix="rename the file to the BIDS pattern",
                )
                self._report(DiscoveryError(msg, path=e.path))
                continue
            entities = parsed[0]
            ent = dict(entities)
            if ent.get("sub") != sub or ent.get("ses") != ses:
                want = f"sub-{sub}" + ("" if ses is None else f" and ses-{ses}")
                got = f"sub={ent.get('sub')!r}, ses={ent.get('ses')!r}"
                msg = format_error(
                    f"file name entities ({got}) do not match its folder {rel!r}; skipped",
                    path=e.path,
                    expected=f"a name starting with {want}",
                    fix="move the file to its subject/session folder or correct its name",
                )
                self._report(DiscoveryError(msg, path=e.path))
                continue
            site = self.site_of(sub)
            participant = () if self.participants is None else self.participants.rows.get(sub, ())
            self.found.append(
                _Candidate(
                    dataset=self.ds,
                    sub=sub,
                    ses=ses,
                    entities=entities,
                    stem=stem,
                    path=e.path,
                    folder=rel,
                    site=site,
                    scan_id=scan_id(site, entities, self.suffix),
                    sidecars=sidecars,
                    participant=participant,
                )
            )


def _read_one(c: _Candidate) -> NiftiInfo | Exception:
    try:
        return read_header(c.path, scan_id=c.scan_id)
    except NiftiError as exc:
        return exc
    except Exception as exc:  # a batch must survive any one unreadable file
        msg = format_error(
            f"cannot read the NIfTI header ({type(exc).__name__}: {exc})",
            path=c.path,
            scan_id=c.scan_id,
            expected="a valid NIfTI-1 or NIfTI-2 file",
            fix="re-export the image (e.g. with dcm2niix) or restore it from the source",
        )
        err = NiftiError(msg, path=c.path, scan_id=c.scan_id)
        err.__cause__ = exc
        return err


def _read_headers(
    cands: Sequence[_Candidate], max_workers: int | None
) -> list[NiftiInfo | Exception]:
    """Headers of ``cands`` in order; a thread pool when it pays off (see :func:`find_scans`)."""
    if max_workers == 1 or len(cands) < _POOL_FROM:
        return [_read_one(c) for c in cands]
    head: list[NiftiInfo | Exception] = []
    if max_workers is None:
        # Header reads are CPU-bound in nibabel when the files are local or cached
        # (threads then only fight over the GIL) and wait-bound on network storage
        # (NFS, Lustre, SMB), where threads overlap the round trips. Measure which.
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        head = [_read_one(c) for c in cands[:_PROBE]]
        wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
        if wall < _IO_BOUND_RATIO * cpu:
            logger.debug(
                "header reads are CPU-bound (%.2g s wall, %.2g s CPU); reading serially", wall, cpu
            )
            return head + [_read_one(c) for c in cands[_PROBE:]]
        logger.debug(
            "header reads wait on storage (%.2g s wall, %.2g s CPU); using threads", wall, cpu
        )
        cands = cands[_PROBE:]
    workers = max_workers or min(32, 4 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cohort-sciseg-header") as pool:
        return head + list(pool.map(_read_one, cands))


def _describe(filters: dict[str, Any]) -> str:
    parts = []
    for key in ("participant_labels", "sessions", "include", "exclude"):
        value = filters.get(key)
        if value is None:
            continue
        items = list(value)
        shown = ", ".join(repr(v) for v in items[:5]) + (
            f", ... ({len(items)} in all)" if len(items) > 5 else ""
        )
        src = filters.get(f"{key}_file")
        parts.append(f"{key}=[{shown}]" + (f" from {src!r}" if src else ""))
    parts.append(f"image_suffix={filters['image_suffix']!r}")
    return "; ".join(parts)


def _to_json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _check_options(
    on_problem: str,
    image_suffix: str,
    max_workers: int | None,
    cord_suffixes: str | Sequence[str],
    lesion_suffixes: str | Sequence[str],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Validate the options of :func:`find_scans`; return the cord and lesion suffixes."""
    if on_problem not in _ON_PROBLEM:
        msg = format_error(
            f"on_problem={on_problem!r} is not a valid policy",
            expected=f"one of {_ON_PROBLEM!r}",
            fix="use 'record' to collect problems and go on, or 'raise' to stop at the first",
        )
        raise ValueError(msg)
    if (
        not isinstance(image_suffix, str)
        or not image_suffix
        or encode_label(image_suffix) != image_suffix
    ):
        msg = format_error(
            f"image_suffix={image_suffix!r} is not a BIDS suffix",
            expected="letters and digits only, e.g. 'T2w'",
            fix="pass image_suffix='T2w'",
        )
        raise ValueError(msg)
    if max_workers is not None and (
        isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
    ):
        msg = format_error(
            f"max_workers={max_workers!r} is not valid",
            expected="None (automatic) or an integer >= 1",
            fix="pass max_workers=None, 1 (serial) or e.g. 8",
        )
        raise ValueError(msg)
    cords = _as_suffixes(cord_suffixes, "cord_suffixes")
    lesions = _as_suffixes(lesion_suffixes, "lesion_suffixes")
    shared = sorted(set(cords) & set(lesions))
    if shared:
        msg = format_error(
            f"suffixes {shared!r} are both cord and lesion suffixes",
            expected="disjoint cord_suffixes and lesion_suffixes",
            fix="remove them from one of the two lists",
        )
        raise ValueError(msg)
    return cords, lesions


def find_scans(
    bids_dirs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    participant_labels: str | Iterable[str] | None = None,
    sessions: str | Iterable[str] | None = None,
    include: str | os.PathLike[str] | Iterable[str] | None = None,
    exclude: str | os.PathLike[str] | Iterable[str] | None = None,
    cord_suffixes: str | Sequence[str] = DEFAULT_CORD_SUFFIXES,
    lesion_suffixes: str | Sequence[str] = DEFAULT_LESION_SUFFIXES,
    image_suffix: str = "T2w",
    on_problem: OnProblem = "record",
    max_workers: int | None = None,
) -> Discovery:
    """Find the T2w images of one or many BIDS datasets, with their sites, metadata and manual masks.

    Parameters
    ----------
    bids_dirs
        One BIDS dataset folder or several; each needs ``dataset_description.json``.
        By default each dataset is one site (see the module docstring for site labels).
    participant_labels
        Keep only these subjects (``"sub-01"`` or ``"01"``); ``None`` keeps all.
    sessions
        Keep only these sessions (``"ses-01"`` or ``"01"``); scans without a session
        are then dropped. ``None`` keeps all, with or without sessions.
    include, exclude
        Scan ids to keep / drop: a path to a text file with one id per line (``#``
        starts a comment line) or a list of ids. An entry matches a scan by its
        ``scan_id`` (``site-<site>_sub-01_acq-sag_T2w``) or by its BIDS file name
        without extension (``sub-01_acq-sag_T2w``, at every site). Exclusion wins.
    cord_suffixes, lesion_suffixes
        Mask suffixes in ``derivatives/labels``, in order of preference: the first
        suffix with a file wins. The two lists must not share a suffix.
    image_suffix
        BIDS suffix of the images (``"T2w"``).
    on_problem
        ``"record"``: a corrupt image, a broken sidecar or ``participants.tsv``, a
        mask without an image, a symlink leaving the dataset, ... becomes a
        :class:`~cohort_sciseg.records.Failure` in ``Discovery.problems`` and
        discovery goes on. ``"raise"``: the first such problem raises
        :class:`~cohort_sciseg.errors.DiscoveryError`.
    max_workers
        Threads that read NIfTI headers. ``None`` (default): with 64 scans or more,
        the first 32 headers are read serially and timed; if they spent more than
        half their time waiting on storage (network file systems), the rest are
        read by ``min(32, 4 * CPUs)`` threads, else serially (on local or cached
        files nibabel's header parsing is CPU-bound and threads only contend for
        the GIL). ``1``: always serial. ``n > 1``: always ``n`` threads.

    Returns
    -------
    Discovery
        Scans sorted by ``scan_id``, problems, the active filters and the datasets.
        When images were found but none could be read, ``scans`` is empty and
        ``problems`` says why.

    Raises
    ------
    DiscoveryError
        A folder is missing or not a BIDS dataset; a dataset is given twice; two
        images give the same scan id; an include/exclude file cannot be read; no
        T2w image matches (the message lists the filters and datasets searched);
        or any problem when ``on_problem="raise"``.
    ValueError
        An option has an invalid value (the message lists the valid ones).

    Notes
    -----
    Labels are kept raw in the record fields; the ``scan_id`` percent-encodes
    every character outside ``[A-Za-z0-9]`` so it is a safe single path
    component (see :mod:`cohort_sciseg.discover.entities`). The ``acquisition_plane``
    comes from the ``acq`` label when it names a plane (``sag*``, ``ax*``/``tra*``,
    ``cor*``), else from the geometry (:func:`cohort_sciseg.io.acquisition_plane`).
    Mask geometry is not checked here.
    """
    cords, lesions = _check_options(
        on_problem, image_suffix, max_workers, cord_suffixes, lesion_suffixes
    )
    subjects = normalize_labels(participant_labels, "sub-")
    session_set = normalize_labels(sessions, "ses-")
    inc = read_id_list(include, what="include")
    exc = read_id_list(exclude, what="exclude")

    given = _as_paths(bids_dirs)
    if not given:
        msg = format_error(
            "no BIDS dataset given",
            expected="at least one dataset folder",
            fix="pass find_scans('path/to/bids') or a list of folders",
        )
        raise DiscoveryError(msg)
    roots = [_check_dataset(g) for g in given]
    seen: dict[str, str] = {}
    for g, r in zip(given, roots, strict=True):
        if r in seen:
            msg = format_error(
                f"dataset listed twice: {seen[r]!r} and {g!r} are the same folder {r!r}",
                path=g,
                expected="each dataset once",
                fix="remove the duplicate from the list of datasets",
            )
            raise DiscoveryError(msg, path=g)
        seen[r] = g

    filters: dict[str, Any] = {
        "datasets": list(roots),
        "participant_labels": None if subjects is None else sorted(subjects),
        "sessions": None if session_set is None else sorted(session_set),
        "include": None if inc is None else list(inc.ids),
        "include_file": None if inc is None else inc.source,
        "exclude": None if exc is None else list(exc.ids),
        "exclude_file": None if exc is None else exc.source,
        "image_suffix": image_suffix,
        "cord_suffixes": list(cords),
        "lesion_suffixes": list(lesions),
    }
    problems = _Problems(on_problem)

    def subject_ok(label: str) -> bool:
        return subjects is None or label in subjects

    def session_ok(label: str | None) -> bool:
        return session_set is None or label in session_set

    # Folder-derived site labels and participants.tsv of every dataset.
    folders = [os.path.basename(os.path.abspath(g)) or "dataset" for g in given]
    bases = [site_label(f) or "dataset" for f in folders]
    tables: list[Participants | None] = []
    column_sites: list[frozenset[str]] = []
    raw_of_label: dict[str, set[str]] = {}
    for root, base in zip(roots, bases, strict=True):
        table = None
        path = os.path.join(root, "participants.tsv")
        if os.path.lexists(path):
            try:
                _check_inside(path, root)
                table = read_participants(path)
            except DiscoveryError as err:
                problems.add(err, scan_id=_dataset_id(root), site=base)
        tables.append(table)
        cols: frozenset[str] = frozenset()
        if table is not None and "site" in table.columns:
            labels: set[str] = set()
            for row in table.rows.values():
                for k, v in row:
                    raw = v.strip()
                    if k == "site" and raw not in _MISSING_VALUES and (label := site_label(raw)):
                        labels.add(label)
                        raw_of_label.setdefault(label, set()).add(raw)
            cols = frozenset(labels)
        column_sites.append(cols)
    for label, raws in sorted(raw_of_label.items()):
        if len(raws) > 1:
            logger.warning(
                "participants.tsv site values %s all give the site label %r; they are one site",
                sorted(raws),
                label,
            )
    sites = _assign_folder_sites(bases, column_sites)

    datasets = []
    candidates: list[_Candidate] = []
    for g, root, folder, site, table in zip(given, roots, folders, sites, tables, strict=True):
        name = _dataset_name(root, folder, problems, site)
        ds = Dataset(
            root=root,
            given=g,
            name=name,
            site=site,
            site_column=table is not None and "site" in table.columns,
        )
        datasets.append(ds)
        walker = _Walker(
            ds,
            table,
            image_suffix=image_suffix,
            subject_ok=subject_ok,
            session_ok=session_ok,
            problems=problems,
        )
        walker.walk()
        _attach_masks(
            ds, walker.found, cords, lesions, image_suffix, subject_ok, session_ok, problems
        )
        candidates.extend(walker.found)

    by_id: dict[str, _Candidate] = {}
    for c in candidates:
        other = by_id.get(c.scan_id)
        if other is not None:
            msg = format_error(
                f"two images give the same scan id {c.scan_id!r}: {other.path!r} and {c.path!r}",
                path=c.path,
                scan_id=c.scan_id,
                expected="each scan once across all datasets",
                fix="remove the duplicate image (e.g. a .nii next to a .nii.gz), pass each dataset once, "
                "or correct the participants.tsv site column so that the two scans get different sites",
            )
            raise DiscoveryError(msg, path=c.path, scan_id=c.scan_id)
        by_id[c.scan_id] = c

    selected = _apply_id_lists(candidates, inc, exc, problems)
    if not selected:
        n_problems = len(problems.records)
        note = (
            f"; {n_problems} problem(s) recorded, first: {problems.records[0].message}"
            if n_problems
            else ""
        )
        msg = format_error(
            f"no {image_suffix} images found in {len(roots)} dataset(s) {roots!r} "
            f"with filters {_describe(filters)}{note}",
            expected=f"images sub-<label>/[ses-<label>/]anat/sub-<label>[_<key>-<label>...]_{image_suffix}.nii.gz",
            fix="check the dataset paths, the file names and the filters (participant_labels, sessions, include, exclude)",
        )
        raise DiscoveryError(msg)

    selected.sort(key=lambda c: c.scan_id)
    headers = _read_headers(selected, max_workers)
    caches: dict[str, SidecarCache] = {}
    scans = []
    for c, info in zip(selected, headers, strict=True):
        if isinstance(info, Exception):
            problems.add(info, scan_id=c.scan_id, site=c.site)
            continue
        cache = caches.setdefault(c.dataset.root, SidecarCache())
        scans.append(_build_scan(c, info, cache, image_suffix))
        _drain(cache, c.dataset, problems)

    logger.info(
        "found %d %s scans in %d dataset(s); %d problem(s)",
        len(scans),
        image_suffix,
        len(datasets),
        len(problems.records),
    )
    return Discovery(
        scans=tuple(scans),
        problems=tuple(problems.records),
        filters=filters,
        datasets=tuple(datasets),
    )


def _drain(cache: SidecarCache, ds: Dataset, problems: _Problems) -> None:
    while cache.problems:
        problems.add(cache.problems.pop(0), scan_id=_dataset_id(ds.root), site=ds.site)


def _attach_masks(
    ds: Dataset,
    found: list[_Candidate],
    cords: tuple[str, ...],
    lesions: tuple[str, ...],
    image_suffix: str,
    subject_ok: Callable[[str], bool],
    session_ok: Callable[[str | None], bool],
    problems: _Problems,
) -> None:
    masks, errs = find_masks(
        ds.root,
        suffixes=cords + lesions,
        image_suffix=image_suffix,
        subject_ok=subject_ok,
        session_ok=session_ok,
    )
    for err in errs:
        problems.add(err, scan_id=_dataset_id(ds.root), site=ds.site)
    index = {(c.folder, c.stem): c for c in found}
    rank = {s: i for i, s in enumerate(cords)} | {s: i for i, s in enumerate(lesions)}
    for m in masks:
        c = index.get((m.folder, m.image_stem))
        if c is None:
            expected = os.path.join(ds.root, *m.folder.split("/"), m.image_stem + ".nii.gz")
            msg = format_error(
                f"manual mask ({m.suffix!r}) has no matching image; expected the image {expected!r}",
                path=m.path,
                expected=f"derivatives/labels/<image folder>/<image name without extension>_{m.suffix}.nii.gz",
                fix="add the missing image, rename the mask after its image, or remove the mask",
            )
            problems.add(
                DiscoveryError(msg, path=m.path), scan_id=_dataset_id(ds.root), site=ds.site
            )
            continue
        choice = (rank[m.suffix], m.path)
        if m.suffix in cords:
            if c.cord is None or choice < c.cord:
                c.cord = choice
        elif c.lesion is None or choice < c.lesion:
            c.lesion = choice


def _apply_id_lists(
    candidates: list[_Candidate], inc: IdList | None, exc: IdList | None, problems: _Problems
) -> list[_Candidate]:
    selected = candidates
    if inc is not None:
        wanted = set(inc.ids)
        selected = [c for c in selected if c.scan_id in wanted or c.stem in wanted]
        matched = {c.scan_id for c in selected} | {c.stem for c in selected}
        for entry in inc.ids:
            if entry not in matched:
                msg = format_error(
                    f"include entry {entry!r} matches no scan",
                    path=inc.source,
                    expected="a scan id ('site-<site>_sub-01_T2w') or a BIDS file name without extension ('sub-01_T2w')",
                    fix="correct the entry (scan ids are in the scan_id column of scans.parquet) or remove it",
                )
                problems.add(
                    DiscoveryError(msg, path=inc.source), scan_id=f"include:{entry}", site=None
                )
    if exc is not None:
        dropped = set(exc.ids)
        selected = [c for c in selected if c.scan_id not in dropped and c.stem not in dropped]
    return list(selected)


def _build_scan(
    c: _Candidate,
    info: NiftiInfo,
    cache: SidecarCache,
    image_suffix: str,
) -> Scan:
    ent = dict(c.entities)
    merged = merge_sidecars(c.sidecars, ent, cache)
    values = merged.values
    manufacturer = values.get("Manufacturer")
    if manufacturer is not None and not isinstance(manufacturer, str):
        manufacturer = _to_json_text(manufacturer)
    field_t = None
    raw_field = values.get("MagneticFieldStrength")
    if raw_field is not None:
        field_t = parse_field_strength(raw_field)
        if field_t is None:
            cache.report(
                merged.sources["MagneticFieldStrength"],
                f"MagneticFieldStrength is {raw_field!r}; left empty",
                expected="a positive number in tesla (e.g. 3 or 1.5)",
                fix='write it as a number, e.g. "MagneticFieldStrength": 3',
            )
    plane = acq_plane(ent.get("acq")) or acquisition_plane(info.affine, info.voxel_size_mm)
    return Scan(
        scan_id=c.scan_id,
        site=c.site,
        dataset_root=c.dataset.root,
        dataset_name=c.dataset.name,
        sub=c.sub,
        ses=c.ses,
        acq=ent.get("acq"),
        run=ent.get("run"),
        entities=c.entities,
        suffix=image_suffix,
        image_path=c.path,
        cord_mask_path=None if c.cord is None else c.cord[1],
        lesion_mask_path=None if c.lesion is None else c.lesion[1],
        sidecar_path=merged.path,
        orientation=info.orientation,
        acquisition_plane=plane,
        shape=info.shape,
        voxel_size_mm=info.voxel_size_mm,
        manufacturer=manufacturer,
        magnetic_field_strength_t=field_t,
        sidecar=tuple(sorted((k, _to_json_text(v)) for k, v in values.items())),
        participant=c.participant,
    )
