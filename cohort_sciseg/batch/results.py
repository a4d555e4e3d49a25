"""What a run leaves behind, read back from the record store: the validation study, counts, failures.

Called by :mod:`cohort_sciseg.batch.runner` after the tasks and the compaction;
no Dask here.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from cohort_sciseg._version import __version__
from cohort_sciseg.batch.store import RecordStore
from cohort_sciseg.batch.tasks import Outcome
from cohort_sciseg.io import RunLayout, read_partitioned_table
from cohort_sciseg.io.atomic import atomic_write_text, sha256_file
from cohort_sciseg.records import Failure, Scan, failures_from_table

__all__ = ["device_busy", "failures_of", "longitudinal_step", "read_partitioned", "table_counts", "validate_run"]

logger = logging.getLogger(__name__)


def device_busy(outcomes: Sequence[Outcome]) -> dict[str, dict[str, float]]:
    """How busy the model kept each worker's device: ``{worker: {busy_s, span_s, fraction, scans}}``.

    ``span_s`` runs from the first model start to the last model end on that
    worker; ``fraction`` = busy / span (1.0: the device never waited for CPU work
    between scans). Only staged runs record device intervals.
    """
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for o in outcomes:
        if o.device is not None:
            by_worker.setdefault(o.device[0], []).append((o.device[1], o.device[2]))
    result = {}
    for worker, spans in sorted(by_worker.items()):
        busy = sum(b - a for a, b in spans)
        span = max(b for _, b in spans) - min(a for a, _ in spans)
        result[worker] = {
            "busy_s": busy, "span_s": span, "fraction": busy / span if span > 0 else 1.0, "scans": float(len(spans)),
        }
    return result


def validate_run(out: Path, scans: Sequence[Scan]) -> Path | None:
    """The validation study of the run's predictions (when some scans have manual masks).

    Skipped when its inputs (the compacted metrics and biomarkers files, the scans'
    clinical and acquisition values, the tool version) are those of the study
    already in ``validation/``: a resume with nothing new redraws no figure.
    """
    from cohort_sciseg.validation.study import flat_scans

    layout = RunLayout(out)
    metrics_dir = layout.table("metrics")
    if not any(metrics_dir.glob("site=*/*.parquet")):
        return None
    target = layout.validation
    flat = flat_scans(scans)
    h = hashlib.sha256(__version__.encode())
    for name in ("metrics", "biomarkers"):
        for f in sorted(layout.table(name).glob("site=*/*.parquet")):
            h.update(f"{f.relative_to(out).as_posix()}:{sha256_file(f)}".encode())
    h.update(flat.to_json(orient="split", date_format="iso", default_handler=str).encode())
    stamp, digest = target / _VALIDATION_STAMP, h.hexdigest()
    if stamp.is_file() and stamp.read_text() == digest and (target / "validation.json").is_file():
        logger.info("validation study unchanged (same inputs): kept")
        return target
    from cohort_sciseg.report.validation import write_validation  # matplotlib: only when drawing

    stamp.unlink(missing_ok=True)
    metrics = read_partitioned(metrics_dir)
    biomarkers = read_partitioned(layout.table("biomarkers"))
    write_validation(target, metrics, biomarkers, flat, figures=True)
    atomic_write_text(stamp, digest)
    return target


#: Digest of the inputs of the validation study in ``validation/`` (see :func:`validate_run`).
_VALIDATION_STAMP = ".inputs.sha256"


def longitudinal_step(out: Path, *, report: bool) -> Any:
    """The longitudinal step (:func:`cohort_sciseg.longitudinal.analyze_run`) when a subject has several sessions.

    Returns its summary, or None when no subject has several sessions of the same acquisition
    (nothing written) or when its inputs (the compacted scans and lesions files, the tool
    version, ``report``) are those of the tables already written (a resume with nothing new
    registers nothing again).
    """
    from cohort_sciseg.longitudinal import analyze_run, session_groups

    layout = RunLayout(out)
    scans = read_partitioned(layout.table("scans"))
    if scans is None or scans.empty or not session_groups(scans, out):
        return None
    h = hashlib.sha256(f"{__version__}:report={report}".encode())
    for name in ("scans", "lesions", "biomarkers"):
        for f in sorted(layout.table(name).glob("site=*/*.parquet")):
            h.update(f"{f.relative_to(out).as_posix()}:{sha256_file(f)}".encode())
    stamp, digest = layout.longitudinal / _VALIDATION_STAMP, h.hexdigest()
    if stamp.is_file() and stamp.read_text() == digest:
        logger.info("longitudinal tables unchanged (same inputs): kept")
        return None
    stamp.unlink(missing_ok=True)
    summary = analyze_run(out, report=report)
    atomic_write_text(stamp, digest)
    return summary


def read_partitioned(folder: Path) -> Any:
    """A hive-partitioned table as pandas, with ``site`` as plain strings."""
    import pandas as pd

    table = read_partitioned_table(folder)
    return pd.DataFrame() if table is None else table.to_pandas()


def failures_of(store: RecordStore, scans: Sequence[Scan]) -> tuple[list[Failure], list[Failure]]:
    """Failure records of the run's scans: of failed scans, and of done scans whose validation was excluded."""
    failed: list[Failure] = []
    excluded: list[Failure] = []
    for s in scans:
        c = store.current(s.site, s.scan_id)
        if c is None or not c.tables.get("failures"):
            continue
        t = store.read(c, "failures")
        if t is None or not t.num_rows:
            continue
        records = failures_from_table(t.append_column("site", pa.array([s.site] * t.num_rows, pa.string())))
        (failed if c.status == "failed" else excluded).extend(records)
    return failed, excluded


def table_counts(store: RecordStore, scans: Sequence[Scan]) -> dict[str, int]:
    """What the tables hold beyond this run's outcomes: suspect scans, and rows of earlier runs' scans."""
    this = {s.scan_id for s in scans}
    counts: Counter[str] = Counter()
    for c in store.commits():
        if c.scan_id not in this:
            counts["earlier_runs"] += 1
            counts["earlier_failed"] += c.status == "failed"
        elif c.status == "done" and (c.info or {}).get("suspect"):
            counts["suspect"] += 1
    return dict(counts)
