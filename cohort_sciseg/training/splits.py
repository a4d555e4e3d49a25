"""Patient-level splits of an nnU-Net export: a held-out test set and cross-validation folds.

The unit of every split is the subject, ``(site, sub)``: all scans of one subject
(sessions, orientations, acquisitions) go to the same side of the test split and to
the same cross-validation fold, so that no subject is seen in training and evaluated
on (SCIseg's splits are per patient for the same reason). Subjects of different sites
are different people, even with the same ``sub`` label.

The test subjects are drawn per site (``round(test_fraction * subjects of the site)``,
half-up), so every site with enough subjects is represented in the test set; each
site's draw uses its own generator seeded with ``(seed, crc32(site))``, so adding a
site never changes the draw of the others. The training subjects are then shuffled
(seeded) and dealt to ``folds`` folds greedily by number of scans (largest subject
first, into the fold with the fewest scans), which keeps the folds balanced when
some subjects have several sessions.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cohort_sciseg.errors import SegmentationError, format_error

__all__ = ["SplitCase", "Splits", "split_by_subject"]


@dataclass(frozen=True, slots=True)
class SplitCase:
    """What a split needs of a case: its id, its subject and its site."""

    case_id: str
    site: str
    sub: str

    @property
    def subject(self) -> str:
        """The subject key ``<site>/<sub>``: the unit of every split."""
        return f"{self.site}/{self.sub}"


@dataclass(frozen=True, slots=True)
class Splits:
    """A test set and cross-validation folds over the rest.

    Attributes
    ----------
    test
        Held-out case ids, sorted.
    folds
        nnU-Net's ``splits_final.json``: one ``{"train": [...], "val": [...]}`` per fold,
        over the training cases only, ids sorted.
    fold_of
        Validation fold of every training case.
    """

    test: tuple[str, ...]
    folds: tuple[dict[str, list[str]], ...]
    fold_of: dict[str, int]

    @property
    def train(self) -> tuple[str, ...]:
        """Training case ids (every case not in the test set), sorted."""
        return tuple(sorted(self.fold_of))


def _check_options(test_fraction: float, folds: int) -> None:
    if not (isinstance(test_fraction, int | float) and 0.0 <= float(test_fraction) < 1.0):
        msg = format_error(
            f"test_fraction={test_fraction!r} is not valid",
            expected="a share of subjects in [0, 1), e.g. 0.2",
            fix="pass --test-fraction 0.2 (0 keeps every subject for training)",
        )
        raise SegmentationError(msg)
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        msg = format_error(
            f"folds={folds!r} is not valid",
            expected="an integer >= 2 (nnU-Net trains 5 folds by default)",
            fix="pass --folds 5",
        )
        raise SegmentationError(msg)


def _site_rng(seed: int, site: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(site.encode())])


def split_by_subject(
    cases: Sequence[SplitCase], *, test_fraction: float = 0.2, folds: int = 5, seed: int = 0
) -> Splits:
    """Draw the test subjects and the cross-validation folds (see the module docstring).

    Parameters
    ----------
    cases
        The cases to split (ids unique).
    test_fraction
        Share of each site's subjects held out for testing, in [0, 1).
    folds
        Cross-validation folds over the training subjects (>= 2).
    seed
        Non-negative seed; the same cases and seed give the same splits.

    Raises
    ------
    SegmentationError
        Bad options, duplicate case ids, or fewer training subjects than folds.
    """
    _check_options(test_fraction, folds)
    ids = [c.case_id for c in cases]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        msg = format_error(f"duplicate case ids {dup[:5]!r}", expected="unique case ids",
                           fix="report this: case ids are derived from unique scan ids")
        raise SegmentationError(msg)
    members: dict[str, list[str]] = {}
    site_of: dict[str, str] = {}
    for c in cases:
        members.setdefault(c.subject, []).append(c.case_id)
        site_of[c.subject] = c.site
    test_subjects: set[str] = set()
    for site in sorted(set(site_of.values())):
        subjects = sorted(s for s, v in site_of.items() if v == site)
        n_test = math.floor(test_fraction * len(subjects) + 0.5)
        order = _site_rng(seed, site).permutation(len(subjects))
        test_subjects.update(subjects[i] for i in order[:n_test])
    train_subjects = sorted(s for s in members if s not in test_subjects)
    if len(train_subjects) < folds:
        msg = format_error(
            f"{len(train_subjects)} training subject(s) for {folds} folds "
            f"({len(members)} subject(s), {len(test_subjects)} held out for testing)",
            expected="at least one training subject per fold",
            fix="lower --folds or --test-fraction, or add scans with manual masks",
        )
        raise SegmentationError(msg)
    shuffled = [train_subjects[i] for i in np.random.default_rng(seed).permutation(len(train_subjects))]
    shuffled.sort(key=lambda s: -len(members[s]))  # stable: ties keep the seeded order
    load = [0] * folds
    fold_subjects: list[list[str]] = [[] for _ in range(folds)]
    for subject in shuffled:
        k = min(range(folds), key=lambda i: (load[i], i))
        fold_subjects[k].append(subject)
        load[k] += len(members[subject])
    fold_of = {case: k for k, subs in enumerate(fold_subjects) for s in subs for case in members[s]}
    train = sorted(fold_of)
    out = []
    for k in range(folds):
        val = sorted(c for c in train if fold_of[c] == k)
        out.append({"train": [c for c in train if fold_of[c] != k], "val": val})
    test = tuple(sorted(c for s in test_subjects for c in members[s]))
    return Splits(test=test, folds=tuple(out), fold_of=fold_of)
