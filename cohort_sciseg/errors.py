"""Domain exceptions of cohort-sciseg, one subclass per pipeline stage.

Every message says what was wrong, quotes the bad value, says what was expected,
names the scan or path, and gives a fix. Build them with :func:`format_error` so
they read the same everywhere::

    msg = format_error(
        "image is 4D with 3 frames",
        path=path,
        expected="a 3D volume (or 4D with a single frame)",
        fix="split the series with `fslsplit` and point the tool at one volume",
    )
    raise NiftiError(msg, path=path)
"""

from __future__ import annotations

from os import PathLike

__all__ = [
    "AnalysisError",
    "BatchError",
    "CohortSciSegError",
    "DiscoveryError",
    "GeometryError",
    "LongitudinalError",
    "MorphometryError",
    "NiftiError",
    "ReportError",
    "SegmentationError",
    "SynthError",
    "ValidationError",
    "format_error",
]


def format_error(
    what: str,
    *,
    path: str | PathLike[str] | None = None,
    scan_id: str | None = None,
    expected: str | None = None,
    fix: str | None = None,
) -> str:
    """Assemble a message: ``<scan/path>: <what>; expected <expected>. Fix: <fix>``."""
    where = []
    if scan_id is not None:
        where.append(f"scan {scan_id!r}")
    if path is not None:
        where.append(f"{str(path)!r}")
    msg = f"{' '.join(where)}: {what}" if where else what
    if expected:
        msg += f"; expected {expected}"
    msg += "."
    if fix:
        msg += f" Fix: {fix}"
    return msg


class CohortSciSegError(Exception):
    """Base class of every error raised by cohort-sciseg.

    Parameters
    ----------
    message
        Full human-readable message (see :func:`format_error`).
    path
        The file or folder the error is about, when there is one.
    scan_id
        The site-qualified scan id the error is about, when there is one.
    """

    stage: str = "general"

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike[str] | None = None,
        scan_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.scan_id = scan_id


class NiftiError(CohortSciSegError):
    """A NIfTI file cannot be read safely (missing, empty, corrupt, wrong dimensionality, ...)."""

    stage = "io"


class GeometryError(CohortSciSegError):
    """Two images that must share a voxel grid do not (mask vs image, prediction vs reference)."""

    stage = "io"


class DiscoveryError(CohortSciSegError):
    """A BIDS dataset cannot be searched or its tables cannot be read."""

    stage = "discover"


class SynthError(CohortSciSegError):
    """A synthetic cohort cannot be generated with the given options."""

    stage = "synth"


class SegmentationError(CohortSciSegError):
    """The nnU-Net model cannot be loaded or run."""

    stage = "segment"


class MorphometryError(CohortSciSegError):
    """Lesion measures cannot be computed from the given masks."""

    stage = "morphometry"


class ValidationError(CohortSciSegError):
    """Metrics or statistics cannot be computed from the given inputs."""

    stage = "validation"


class BatchError(CohortSciSegError):
    """The batch runner cannot schedule or record work."""

    stage = "batch"


class ReportError(CohortSciSegError):
    """The QC report cannot be built."""

    stage = "report"


class AnalysisError(CohortSciSegError):
    """A finished run folder cannot be opened or queried (:func:`cohort_sciseg.open_run`)."""

    stage = "analysis"


class LongitudinalError(CohortSciSegError):
    """Sessions of a subject cannot be aligned or their lesions cannot be tracked (:mod:`cohort_sciseg.longitudinal`)."""

    stage = "longitudinal"
