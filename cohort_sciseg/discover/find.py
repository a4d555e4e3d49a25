"""Find the T2w scans of one or many BIDS datasets: :func:`find_scans`.

Layout searched, per dataset::

    <dataset>/dataset_description.json                 required
    <dataset>/participants.tsv                         optional, merged per subject
    <dataset>/[acq-<label>_]T2w.json                   sidecars (BIDS inheritance)
    <dataset>/sub-<label>/[ses-<label>/]anat/sub-<label>[_ses-<label>][_<key>-<label>...]_T2w.nii[.gz]
    <dataset>/derivatives/labels/sub-<label>/[ses-<label>/]anat/<image stem>_<mask suffix>.nii[.gz]
                                                       (manual cord and lesion masks, vertebral
                                                       labellings, disc labels)

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

Bad files
---------
Every entry followed and every file opened goes through
:mod:`cohort_sciseg.discover._fs`: a symlink loop, a broken link, a FIFO or a
folder where a file is expected is one problem naming the path and a fix,
never an :class:`OSError` or a hang (see ``on_problem`` of :func:`find_scans`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cohort_sciseg.discover._options import check_options
from cohort_sciseg.discover._problems import OnProblem, Problems, dataset_id, drop_duplicate_ids
from cohort_sciseg.discover.datasets import (
    Dataset,
    assign_folder_sites,
    dataset_name,
    folder_site,
    read_site_tables,
    usable_datasets,
)
from cohort_sciseg.discover.entities import acq_plane
from cohort_sciseg.discover.filters import IdList, normalize_labels, read_id_list
from cohort_sciseg.discover.masks import (
    DEFAULT_CORD_SUFFIXES,
    DEFAULT_DISC_SUFFIXES,
    DEFAULT_LESION_SUFFIXES,
    DEFAULT_VERTEBRAL_SUFFIXES,
)
from cohort_sciseg.discover.sidecars import SidecarCache, merge_sidecars, parse_field_strength
from cohort_sciseg.discover.walk import Candidate, Walker, attach_masks
from cohort_sciseg.errors import DiscoveryError, NiftiError, format_error
from cohort_sciseg.io import NiftiInfo, acquisition_plane, read_header
from cohort_sciseg.records import Failure, Scan

__all__ = ["Dataset", "Discovery", "OnProblem", "find_scans"]

logger = logging.getLogger(__name__)

#: Below this many scans, headers are read in the calling thread (a pool costs more than it saves).
_POOL_FROM = 64
#: Scans read serially to decide whether header reads wait on storage.
_PROBE = 32
#: Wall time over CPU time above which reads count as waiting on storage.
_IO_BOUND_RATIO = 2.0


@dataclass(frozen=True, slots=True)
class Discovery:
    """What :func:`find_scans` found.

    Attributes
    ----------
    scans
        One record per readable T2w image, sorted by ``scan_id``.
    problems
        Failure records (stage ``"discover"``) for everything that was skipped
        or could not be read, one per bad file or folder: corrupt images, broken
        sidecars or ``participants.tsv``, symlink loops, FIFOs, masks without an
        image, symlinks leaving a dataset, duplicate scan ids, unusable datasets
        (see ``on_problem`` of :func:`find_scans`).
    filters
        The active filters and options (``datasets``, ``participant_labels``,
        ``sessions``, ``include``, ``exclude``, suffixes), for messages and summaries.
    datasets
        The datasets searched, in the order given (without those that could not
        be searched, which are in ``problems``).
    """

    scans: tuple[Scan, ...]
    problems: tuple[Failure, ...] = ()
    filters: dict[str, Any] = field(default_factory=dict)
    datasets: tuple[Dataset, ...] = ()

    def __len__(self) -> int:
        return len(self.scans)


def _as_paths(bids_dirs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    if isinstance(bids_dirs, (str, os.PathLike)):
        return [os.fspath(bids_dirs)]
    return [os.fspath(p) for p in bids_dirs]


def _read_one(c: Candidate) -> NiftiInfo | Exception:
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
    cands: Sequence[Candidate], max_workers: int | None
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


def find_scans(
    bids_dirs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    participant_labels: str | Iterable[str] | None = None,
    sessions: str | Iterable[str] | None = None,
    include: str | os.PathLike[str] | Iterable[str] | None = None,
    exclude: str | os.PathLike[str] | Iterable[str] | None = None,
    cord_suffixes: str | Sequence[str] = DEFAULT_CORD_SUFFIXES,
    lesion_suffixes: str | Sequence[str] = DEFAULT_LESION_SUFFIXES,
    vertebral_suffixes: str | Sequence[str] = DEFAULT_VERTEBRAL_SUFFIXES,
    disc_suffixes: str | Sequence[str] = DEFAULT_DISC_SUFFIXES,
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
        suffix with a file wins. A suffix is exact (``"seg-manual"``) or an
        :mod:`fnmatch` pattern (``"label-disc*"``) for the part of the name after
        ``<image stem>_`` (see :mod:`cohort_sciseg.discover.masks`). No two of the
        four suffix lists may share a suffix.
    vertebral_suffixes, disc_suffixes
        The same for vertebral labellings (``Scan.vert_labels_path``: a cord mask
        whose voxels hold vertebral level numbers, ``sct_label_vertebrae``'s
        ``_seg_labeled``; default ``("*seg*_labeled",)``) and disc labels
        (``Scan.disc_labels_path``: single voxels holding disc numbers; default
        ``("label-disc*", "labels-disc*", "*_labeled_disc*")``). ``()`` looks for
        none. A file name that an exact suffix fits is of that suffix's kind; else
        the first of cord, lesion, vertebral and disc patterns that fits decides.
    image_suffix
        BIDS suffix of the images (``"T2w"``).
    on_problem
        ``"record"``: each bad file or folder becomes one
        :class:`~cohort_sciseg.records.Failure` in ``Discovery.problems`` (naming
        the path, the bad value and a fix) and discovery goes on with everything
        else: a corrupt image; a sidecar, ``dataset_description.json`` or
        ``participants.tsv`` that is broken, not UTF-8, nested too deeply or too
        large; a symlink loop, a broken link or a FIFO, socket or folder where a
        file is expected (never opened, so never a hang); a mask or vertebral
        or disc labelling without an image; a symlink leaving the dataset; a name that is not UTF-8; images
        that give the same scan id (a ``.nii`` beside a ``.nii.gz``: all of them
        are dropped, since nothing says which is right); and, among several
        datasets, a folder that is missing or has no ``dataset_description.json``
        (the other datasets are searched). ``"raise"``: the first such problem
        raises :class:`~cohort_sciseg.errors.DiscoveryError`.
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
        No given folder is a usable BIDS dataset (the message gives each one's
        reason); a dataset is given twice; an include/exclude file cannot be
        read (missing, not a regular file, not UTF-8); no T2w image matches
        (the message lists the filters and datasets searched); or any problem
        when ``on_problem="raise"``.
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
    suffixes = check_options(
        on_problem,
        image_suffix,
        max_workers,
        cord_suffixes,
        lesion_suffixes,
        vertebral_suffixes,
        disc_suffixes,
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
    problems = Problems(on_problem)
    usable = usable_datasets(given, problems)
    roots = [r for _, r in usable]
    filters: dict[str, Any] = {
        "datasets": list(roots),
        "participant_labels": None if subjects is None else sorted(subjects),
        "sessions": None if session_set is None else sorted(session_set),
        "include": None if inc is None else list(inc.ids),
        "include_file": None if inc is None else inc.source,
        "exclude": None if exc is None else list(exc.ids),
        "exclude_file": None if exc is None else exc.source,
        "image_suffix": image_suffix,
        "cord_suffixes": list(suffixes.cords),
        "lesion_suffixes": list(suffixes.lesions),
        "vertebral_suffixes": list(suffixes.verts),
        "disc_suffixes": list(suffixes.discs),
    }

    def subject_ok(label: str) -> bool:
        return subjects is None or label in subjects

    def session_ok(label: str | None) -> bool:
        return session_set is None or label in session_set

    # Folder-derived site labels and participants.tsv of every usable dataset.
    folders, bases = zip(*(folder_site(g) for g, _ in usable), strict=True)
    site_tables = read_site_tables(roots, list(bases), problems)
    sites = assign_folder_sites(list(bases), site_tables.column_sites)

    datasets = []
    candidates: list[Candidate] = []
    for (g, root), folder, site, table in zip(
        usable, folders, sites, site_tables.tables, strict=True
    ):
        ds = Dataset(
            root=root,
            given=g,
            name=dataset_name(root, folder, problems, site),
            site=site,
            site_column=table is not None and "site" in table.columns,
        )
        datasets.append(ds)
        walker = Walker(
            ds,
            table,
            image_suffix=image_suffix,
            subject_ok=subject_ok,
            session_ok=session_ok,
            problems=problems,
        )
        walker.walk()
        attach_masks(
            ds,
            walker.found,
            suffixes.cords,
            suffixes.lesions,
            image_suffix,
            subject_ok,
            session_ok,
            problems,
            verts=suffixes.verts,
            discs=suffixes.discs,
        )
        candidates.extend(walker.found)
    candidates = drop_duplicate_ids(candidates, problems)

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


def _drain(cache: SidecarCache, ds: Dataset, problems: Problems) -> None:
    while cache.problems:
        problems.add(cache.problems.pop(0), scan_id=dataset_id(ds.root), site=ds.site)


def _apply_id_lists(
    candidates: list[Candidate], inc: IdList | None, exc: IdList | None, problems: Problems
) -> list[Candidate]:
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
    c: Candidate,
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
        vert_labels_path=None if c.vert is None else c.vert[1],
        disc_labels_path=None if c.disc is None else c.disc[1],
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
