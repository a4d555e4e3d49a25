"""Walk one dataset: the T2w images (:class:`Walker`), their manual masks and vertebral labellings (:func:`attach_masks`).

Layout, sidecar levels and site rules are described in
:mod:`cohort_sciseg.discover.find`. A subject, session or ``anat`` folder
that is a symlink loop or a broken link, and an image that is a symlink loop,
are one problem each and skipped; the rest of the dataset is walked.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from cohort_sciseg.discover._fs import entry_kind, list_dir, unusable
from cohort_sciseg.discover._problems import Problems, dataset_id
from cohort_sciseg.discover.datasets import MISSING_VALUES, Dataset
from cohort_sciseg.discover.entities import (
    Entities,
    parse_name,
    scan_id,
    site_label,
    split_extension,
)
from cohort_sciseg.discover.masks import find_masks, is_pattern, mask_image_stem
from cohort_sciseg.discover.participants import Participants
from cohort_sciseg.discover.sidecars import (
    LEVEL_DATASET,
    LEVEL_DATATYPE,
    LEVEL_SESSION,
    LEVEL_SUBJECT,
    SidecarFile,
    sidecar_file,
)
from cohort_sciseg.errors import DiscoveryError, format_error

__all__ = ["Candidate", "Walker", "attach_masks"]


@dataclass(slots=True)
class Candidate:
    """An image found on disk, before its header is read.

    ``cord``, ``lesion``, ``vert`` and ``disc`` are the preferred manual masks,
    vertebral labelling and disc labels as ``(suffix rank, path)``.
    """

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
    vert: tuple[int, str] | None = None
    disc: tuple[int, str] | None = None


class Walker:
    """Lists one dataset and collects :class:`Candidate` images."""

    def __init__(
        self,
        dataset: Dataset,
        participants: Participants | None,
        *,
        image_suffix: str,
        subject_ok: Callable[[str], bool],
        session_ok: Callable[[str | None], bool],
        problems: Problems,
    ) -> None:
        self.ds = dataset
        self.participants = participants
        self.suffix = image_suffix
        self.tails = (f"_{image_suffix}.nii.gz", f"_{image_suffix}.nii")
        self.json_tail = f"{image_suffix}.json"
        self.subject_ok = subject_ok
        self.session_ok = session_ok
        self.problems = problems
        self.found: list[Candidate] = []
        self._sites: dict[str, str] = {}

    def _report(self, exc: DiscoveryError) -> None:
        self.problems.add(exc, scan_id=dataset_id(self.ds.root), site=self.ds.site)

    def _enter(self, entry: os.DirEntry[str], what: str) -> bool:
        """Whether ``entry`` is a folder; a symlink loop or a broken link there is a problem."""
        kind = entry_kind(entry)
        if kind.kind in ("broken", "error"):
            self._report(
                unusable(entry.path, kind, what=what, expected="a folder", then="; skipped")
            )
        return kind.kind == "dir"

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
            if raw is not None and raw.strip() not in MISSING_VALUES:
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
            label = name[4:]
            if not name.startswith("sub-") or not label or not self.subject_ok(label):
                continue
            if not self._enter(sub, "subject folder"):
                continue
            sub_entries = self._list(sub.path, self._relevant_folder)
            sub_sc = root_sc + self._sidecars(sub_entries, LEVEL_SUBJECT)
            for e in sub_entries:
                if e.name == "anat":
                    if self.session_ok(None) and self._enter(e, "anat folder"):
                        self._anat(e.path, f"{name}/anat", label, None, sub_sc)
                elif e.name.startswith("ses-") and len(e.name) > 4:
                    ses = e.name[4:]
                    if not self.session_ok(ses) or not self._enter(e, "session folder"):
                        continue
                    ses_entries = self._list(e.path, self._relevant_folder)
                    ses_sc = sub_sc + self._sidecars(ses_entries, LEVEL_SESSION)
                    for a in ses_entries:
                        if a.name == "anat" and self._enter(a, "anat folder"):
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
            kind = entry_kind(e)
            if kind.kind == "error":  # a link loop; broken links and FIFOs are left to read_header
                self._report(
                    unusable(e.path, kind, what="image", expected="a NIfTI file", then="; skipped")
                )
            if kind.kind in ("dir", "error"):
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
                Candidate(
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


def attach_masks(
    ds: Dataset,
    found: list[Candidate],
    cords: tuple[str, ...],
    lesions: tuple[str, ...],
    image_suffix: str,
    subject_ok: Callable[[str], bool],
    session_ok: Callable[[str | None], bool],
    problems: Problems,
    *,
    verts: tuple[str, ...] = (),
    discs: tuple[str, ...] = (),
) -> None:
    """Set ``cord``, ``lesion``, ``vert`` and ``disc`` of each of ``found`` to its preferred file in ``derivatives/labels``.

    Within each list of suffixes (``cords``, ``lesions``, ``verts``, ``discs``;
    disjoint) the first suffix that fits a file wins, then the smaller path. A
    file name that an exact suffix fits is of that suffix's kind (see
    :func:`~cohort_sciseg.discover.masks.mask_image_stem`); one that only
    patterns of two kinds fit is a problem and not used, as is a file without an
    image or one that cannot be used (see
    :func:`~cohort_sciseg.discover.masks.find_masks`).
    """
    kinds = (
        ("cord", cords, "manual mask", "cord"),
        ("lesion", lesions, "manual mask", "lesion"),
        ("vert", verts, "vertebral labelling", "vertebral"),
        ("disc", discs, "disc labelling", "disc"),
    )
    owner = {s: (attr, what, label) for attr, group, what, label in kinds for s in group}
    groups = {attr: group for attr, group, _, _ in kinds}
    suffixes = cords + lesions + verts + discs
    masks, errs = find_masks(
        ds.root,
        suffixes=suffixes,
        image_suffix=image_suffix,
        subject_ok=subject_ok,
        session_ok=session_ok,
        what=lambda suffix: owner[suffix][1],
    )
    for err in errs:
        problems.add(err, scan_id=dataset_id(ds.root), site=ds.site)

    def report(msg: str, path: str) -> None:
        problems.add(DiscoveryError(msg, path=path), scan_id=dataset_id(ds.root), site=ds.site)

    index = {(c.folder, c.stem): c for c in found}
    for m in masks:
        name = os.path.basename(m.path)
        attr, what, _ = owner[m.suffix]
        # the suffixes that fit: of every kind, or of its kind when an exact suffix decides
        fitting = [
            s
            for s in (suffixes if is_pattern(m.suffix) else groups[attr])
            if mask_image_stem(name, (s,), image_suffix) == (m.image_stem, s)
        ]
        others = {owner[s][0]: s for s in fitting if owner[s][0] != attr}
        if others:
            shown = " and ".join(
                f"{owner[s][2]} suffix {s!r}" for s in [m.suffix, *others.values()]
            )
            split = split_extension(name)
            tail = (split[0] if split else name)[len(m.image_stem) + 1 :]
            report(
                format_error(
                    f"file name fits the {shown}; not used",
                    path=m.path,
                    expected="suffix patterns that fit one kind of file only",
                    fix=f"add its exact suffix {tail!r} to the list of its kind (an exact suffix "
                    "decides), or narrow the patterns",
                ),
                m.path,
            )
            continue
        c = index.get((m.folder, m.image_stem))
        if c is None:
            expected = os.path.join(ds.root, *m.folder.split("/"), m.image_stem + ".nii.gz")
            report(
                format_error(
                    f"{what} ({m.suffix!r}) has no matching image; expected the image {expected!r}",
                    path=m.path,
                    expected=f"derivatives/labels/<image folder>/<image name without extension>_{m.suffix}.nii.gz",
                    fix=f"add the missing image, rename the {what} after its image, or remove it",
                ),
                m.path,
            )
            continue
        # the first suffix of its kind that fits (a pattern may come before an exact suffix)
        group = groups[attr]
        rank = min(group.index(s) for s in fitting if s in group)
        choice = (rank, m.path)
        current = getattr(c, attr)
        if current is None or choice < current:
            setattr(c, attr, choice)
