"""Problems of one discovery: recorded as failure records, or raised at the first (``--strict``)."""

from __future__ import annotations

import logging
from typing import Literal, Protocol, TypeVar

from cohort_sciseg.errors import CohortSciSegError, DiscoveryError, format_error
from cohort_sciseg.records import Failure

__all__ = ["OnProblem", "Problems", "dataset_id", "drop_duplicate_ids"]

logger = logging.getLogger(__name__)

OnProblem = Literal["record", "raise"]


def dataset_id(root: str) -> str:
    """The ``scan_id`` of a problem about a whole dataset (or a file of it that is not a scan)."""
    return f"dataset:{root}"


class Problems:
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


class _Found(Protocol):
    scan_id: str
    path: str
    site: str


F = TypeVar("F", bound=_Found)


def drop_duplicate_ids(found: list[F], problems: Problems) -> list[F]:
    """``found`` without the images whose scan id another image also gives.

    A ``.nii`` beside a ``.nii.gz`` of the same scan, or two datasets whose
    ``site`` columns give the same site to the same subject, give one scan id
    to two files. Nothing says which one is right, so none of them is kept:
    one problem per id names every file (``on_problem="raise"``: raised).
    """
    groups: dict[str, list[F]] = {}
    for f in found:
        groups.setdefault(f.scan_id, []).append(f)
    kept = []
    for f in found:
        group = groups[f.scan_id]
        if len(group) == 1:
            kept.append(f)
        elif f is group[0]:
            paths = [g.path for g in group]
            count = "two" if len(group) == 2 else str(len(group))
            listed = " and ".join(repr(p) for p in paths)
            msg = format_error(
                f"{count} images give the same scan id {f.scan_id!r}: {listed}; none of them is used",
                path=group[1].path,
                scan_id=f.scan_id,
                expected="each scan once across all datasets",
                fix="remove the duplicate image (e.g. a .nii next to a .nii.gz), pass each dataset once, "
                "or correct the participants.tsv site column so that the two scans get different sites",
            )
            problems.add(
                DiscoveryError(msg, path=group[1].path, scan_id=f.scan_id),
                scan_id=f.scan_id,
                site=f.site,
            )
    return kept
