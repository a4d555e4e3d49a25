"""The work on one scan, as a worker runs it: segment, measure, validate, commit.

:func:`process_scan` is a plain function (no Dask): it takes a
:class:`~cohort_sciseg.records.Scan` and a :class:`TaskConfig` (small, picklable),
writes the masks into the run folder, commits the scan's rows to the
:class:`~cohort_sciseg.batch.store.RecordStore` and returns a small
:class:`Outcome` for the client. Errors of the scan's own data become a committed
failure record (the batch goes on); only infrastructure errors (the worker dies)
escape, for Dask to retry.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from dataclasses import dataclass, field, replace
from typing import Any, cast

import numpy as np
import pyarrow as pa

from cohort_sciseg.batch.keys import key_document, scan_key
from cohort_sciseg.batch.layout import MaskNaming, place_masks, work_prefix
from cohort_sciseg.batch.scanlog import scan_log
from cohort_sciseg.batch.segmenters import SegmenterSpec, StagedSegmenter, get_segmenter, is_staged
from cohort_sciseg.batch.store import RecordStore
from cohort_sciseg.errors import CohortSciSegError, format_error
from cohort_sciseg.io import (
    NiftiInfo,
    Volume,
    check_same_geometry,
    load_nifti,
    read_header,
)
from cohort_sciseg.morphometry import (
    LesionAnalysis,
    cord_plausibility,
    measure_lesions,
    scan_nli_slice,
    scan_vertebral_labels,
)
from cohort_sciseg.records import (
    RUN_SCANS_SCHEMA,
    RUN_TABLE_SCHEMAS,
    Failure,
    Scan,
    failures_to_table,
)
from cohort_sciseg.report.site import write_scan_page
from cohort_sciseg.validation import Prediction, validate_scans

__all__ = [
    "TABLE_SCHEMAS",
    "Outcome",
    "Staged",
    "TaskConfig",
    "finish_stage",
    "infer_stage",
    "prepare_stage",
    "process_scan",
]

logger = logging.getLogger(__name__)

#: The tables of a run and their schemas (``tables/<name>/site=<site>/``).
TABLE_SCHEMAS = RUN_TABLE_SCHEMAS


@dataclass(frozen=True, slots=True)
class TaskConfig:
    """Everything a worker needs besides the scan (travels with every task: keep it small)."""

    out_dir: str
    segmenter: SegmenterSpec = field(default_factory=SegmenterSpec)
    model_checksum: str = ""
    segmenter_name: str = ""
    settings: tuple[tuple[str, Any], ...] = ()
    units: str = "mm"
    resume: bool = True
    #: write the scan's QC page and images (report/scans/) when the scan is done
    report: bool = True
    #: this run's id, stored with each scan it commits: a task that runs again for a scan this
    #: run already committed (its result was lost with a dead worker) reports it ``done``
    run_id: str = ""
    #: names of the predicted masks: "bids" (per-site derivative datasets) or "sct" (batch.layout)
    mask_naming: str = "bids"

    @property
    def settings_dict(self) -> dict[str, Any]:
        return dict(self.settings)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the client learns about one scan."""

    scan_id: str
    site: str
    status: str  # done, failed, skipped
    key: str
    seconds: float = 0.0
    message: str = ""
    worker_pid: int = 0
    #: ``(worker, started, finished)`` wall-clock times of the model's device work, when staged
    device: tuple[str, float, float] | None = None


def _rel(path: str | os.PathLike[str], root: str) -> str:
    return os.path.relpath(path, root)


#: Errors of a scan's own data: they become the scan's failure record (the batch goes on).
_DATA_ERRORS = (CohortSciSegError, OSError, ValueError, MemoryError)


def _staged_segmenter(config: TaskConfig) -> StagedSegmenter:
    """The worker's segmenter, which made the prepared payload (so it has stages)."""
    return cast("StagedSegmenter", get_segmenter(config.segmenter))


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _start(
    scan: Scan, config: TaskConfig, current: Any = None
) -> tuple[RecordStore, dict[str, Any], str, str | None]:
    """The store, key document and key of ``scan``, and what to report without work.

    The last item is ``"done"`` when this run already committed the scan under its
    key (the task runs again because its result was lost with a dead worker:
    nothing is redone, with or without resume), ``"skipped"`` when an earlier run
    did and ``config.resume`` is on, else ``None`` (do the work). ``current``: the
    scan's current record when the caller has just read it.
    """
    store = RecordStore(config.out_dir)
    try:
        doc = key_document(
            scan, model_checksum=config.model_checksum, settings=config.settings_dict
        )
    except OSError as exc:
        doc = {"scan_id": scan.scan_id, "unreadable": str(exc)}
    key = scan_key(doc)
    if current is None:
        current = store.current(scan.site, scan.scan_id)
    if current is None or current.key != key or current.status != "done":
        return store, doc, key, None
    if config.run_id and (current.info or {}).get("run_id") == config.run_id:
        return store, doc, key, "done"
    return store, doc, key, "skipped" if config.resume else None


def resumed_outcome(scan: Scan, config: TaskConfig) -> Outcome | None:
    """``skipped`` when ``config.resume`` and a ``done`` record holds the scan's current key, else ``None``.

    The client's check before any task (the same rule as :func:`prepare_stage`):
    a resume with nothing to do starts no cluster. A scan without a ``done``
    record is answered from the store alone, without hashing its files.
    """
    if not config.resume:
        return None
    current = RecordStore(config.out_dir).current(scan.site, scan.scan_id)
    if current is None or current.status != "done":
        return None
    _, _, key, already = _start(scan, config, current)
    return Outcome(scan.scan_id, scan.site, "skipped", key) if already == "skipped" else None


def process_scan(scan: Scan, config: TaskConfig) -> Outcome:
    """Segment, measure and (with manual masks) validate one scan in one task; commit its rows.

    Returns ``skipped`` without work when the store already holds a ``done``
    record under the same key (and ``config.resume``). A staged segmenter runs
    its three stages here one after the other (the same code as the split tasks).
    """
    staged = prepare_stage(scan, config)
    if isinstance(staged, Outcome):
        return staged
    return finish_stage(infer_stage(staged, config), config)


@dataclass(frozen=True, slots=True, eq=False)
class Staged:
    """A scan between its stage tasks (worker to worker; never sent to the client).

    ``payload`` is the segmenter's prepared image, then its prediction;
    ``seconds`` the time spent in the stages so far; ``image`` the scan's image as
    read once by :func:`prepare_stage` (a :class:`~cohort_sciseg.io.Volume` when the
    segmenter or the QC page needs the voxels, else its header): later stages take
    its grid and voxels from here instead of the file.
    """

    scan: Scan
    key: str
    doc: dict[str, Any]
    attempt: int
    payload: Any
    seconds: float
    device: tuple[str, float, float] | None = None
    image: Volume | NiftiInfo | None = None


def prepare_stage(scan: Scan, config: TaskConfig) -> Outcome | Staged:
    """CPU stage: key and resume check; the segmenter reads and prepares the image.

    With a segmenter that has no stages, this stage does the whole segmentation
    (its masks are the payload) and the device stage passes it through. Each call
    that does work is one attempt of the run at the scan (the store counts them, so
    an attempt whose worker was killed stays counted); a retry appends to the scan's
    log instead of starting it afresh.
    """
    t0 = time.perf_counter()
    store, doc, key, already = _start(scan, config)
    if already is not None:
        return Outcome(scan.scan_id, scan.site, already, key, worker_pid=os.getpid())
    attempt = store.start_attempt(scan.site, scan.scan_id, run_id=config.run_id, worker=_worker_id())
    with scan_log(config.out_dir, scan.scan_id, append=attempt > 1):
        logger.info(
            "scan %s (key %s, attempt %d on %s): %s", scan.scan_id, key, attempt, _worker_id(), scan.image_path
        )
        try:
            segmenter = get_segmenter(config.segmenter)
            staged = is_staged(segmenter)
            # the scan's one read of the image: its voxels when a stage needs them, else its header
            image: Volume | NiftiInfo = (
                load_nifti(scan.image_path, scan_id=scan.scan_id) if staged or config.report
                else read_header(scan.image_path, scan_id=scan.scan_id)
            )
            if staged and hasattr(segmenter, "prepare") and isinstance(image, Volume):
                payload: Any = segmenter.prepare(image, scan_id=scan.scan_id)
            elif is_staged(segmenter):  # a plugin that reads the file itself
                payload = segmenter.prepare_file(scan.image_path, scan_id=scan.scan_id)
            else:
                ts = time.time()
                written = segmenter.segment(scan.image_path, str(work_prefix(config.out_dir, scan)))
                payload = _Masks(*_place(written, config, scan), seconds=time.time() - ts)
        except _DATA_ERRORS as exc:
            return record_failure(
                store, scan, key, attempt, exc, time.perf_counter() - t0, run_id=config.run_id
            )
        logger.info("prepared in %.2f s", time.perf_counter() - t0)
    return Staged(scan, key, doc, attempt, payload, time.perf_counter() - t0, image=image)


def infer_stage(staged: Outcome | Staged, config: TaskConfig) -> Outcome | Staged:
    """Device stage: the model on the prepared image (the only stage that holds a GPU)."""
    if isinstance(staged, Outcome) or isinstance(staged.payload, _Masks):
        return staged
    t0 = time.perf_counter()
    scan = staged.scan
    with scan_log(config.out_dir, scan.scan_id, append=True):
        try:
            predicted = _staged_segmenter(config).infer(staged.payload)
        except _DATA_ERRORS as exc:
            store = RecordStore(config.out_dir)
            return record_failure(
                store,
                scan,
                staged.key,
                staged.attempt,
                exc,
                staged.seconds + time.perf_counter() - t0,
                run_id=config.run_id,
            )
        device = (_worker_id(), float(predicted.started), float(predicted.finished))
        logger.info("model ran in %.2f s on %s", device[2] - device[1], device[0])
    return replace(
        staged, payload=predicted, seconds=staged.seconds + time.perf_counter() - t0, device=device
    )


def finish_stage(staged: Outcome | Staged, config: TaskConfig) -> Outcome:
    """CPU stage: masks written, morphometry, validation; the scan's rows committed."""
    if isinstance(staged, Outcome):
        return staged
    t0 = time.perf_counter()
    scan, key, attempt = staged.scan, staged.key, staged.attempt
    store = RecordStore(config.out_dir)
    with scan_log(config.out_dir, scan.scan_id, append=True):
        try:
            masks, uncertainty = None, None
            if isinstance(staged.payload, _Masks):
                cord_path, lesion_path = staged.payload.cord, staged.payload.lesion
                seconds_segment = staged.payload.seconds
            else:
                segmenter, prefix = _staged_segmenter(config), str(work_prefix(config.out_dir, scan))
                if hasattr(segmenter, "finish_masks"):  # the masks stay in memory: read once, measured once
                    *written, result = segmenter.finish_masks(staged.payload, prefix)
                    masks, uncertainty = (result.cord, result.lesion), getattr(result, "uncertainty", None)
                else:
                    written = segmenter.finish(staged.payload, prefix)
                cord_path, lesion_path = _place((written[0], written[1]), config, scan)
                seconds_segment = (
                    staged.device[2] - staged.device[1] if staged.device else float("nan")
                )
            tables, row, measured = _measure(
                scan, config, key, store, (cord_path, lesion_path), seconds_segment, masks, staged.image
            )
            if uncertainty is not None:  # segment.uncertainty; null for segmenters without probabilities
                row.update(uncertainty.as_row())
        except _DATA_ERRORS as exc:
            return record_failure(
                store, scan, key, attempt, exc, staged.seconds + time.perf_counter() - t0, run_id=config.run_id
            )
        if config.report:
            _qc_page(config, scan, key, row, tables, (cord_path, lesion_path), measured, staged.image)
        seconds = staged.seconds + time.perf_counter() - t0
        row["seconds_total"] = seconds
        tables["scans"] = pa.Table.from_pylist([row], schema=RUN_SCANS_SCHEMA)
        store.commit(
            scan_id=scan.scan_id,
            site=scan.site,
            key=key,
            status="done",
            tables=tables,
            attempt=row["attempt"],
            info={"key_document": staged.doc, "run_id": config.run_id, "suspect": bool(row.get("suspect"))},
        )
        logger.info("done in %.2f s (model %.2f s)", seconds, seconds_segment)
    return Outcome(
        scan.scan_id, scan.site, "done", key, seconds, worker_pid=os.getpid(), device=staged.device
    )


def _qc_page(
    config: TaskConfig,
    scan: Scan,
    key: str,
    row: dict[str, Any],
    tables: dict[str, pa.Table],
    paths: tuple[str, str],
    measured: tuple[np.ndarray, np.ndarray, LesionAnalysis],
    image: Volume | NiftiInfo | None,
) -> None:
    """The scan's QC page, made here by the worker that holds the scan (never fails the scan).

    The image, the masks and their morphometry are those the stages hold: the page only draws.
    """
    cord_path, lesion_path = paths
    t = time.perf_counter()
    try:
        lesions = tables.get("lesions")
        metrics = tables.get("metrics")
        write_scan_page(
            config.out_dir, row, key=key, image_path=scan.image_path, cord_path=cord_path,
            lesion_path=lesion_path,
            lesions=lesions.to_pandas() if lesions is not None else None,
            metrics=metrics.to_pandas() if metrics is not None else None,
            provenance={"settings": config.settings_dict},
            participant=scan.participant_dict,
            masks=measured[:2],
            analysis=measured[2],
            image=image if isinstance(image, Volume) else None,
        )
    except Exception:  # QC images are a view of the results: their loss must not lose the results
        logger.warning("QC page of %s not written (the report build retries it)", scan.scan_id, exc_info=True)
    logger.info("QC page in %.2f s", time.perf_counter() - t)


@dataclass(frozen=True, slots=True)
class _Masks:
    """Masks written by a segmenter without stages."""

    cord: str
    lesion: str
    seconds: float


def _place(written: tuple[str, str], config: TaskConfig, scan: Scan) -> tuple[str, str]:
    """The segmenter's masks moved to their names in the site's derivative dataset."""
    return place_masks(written, config.out_dir, scan, cast("MaskNaming", config.mask_naming))


def record_failure(
    store: RecordStore,
    scan: Scan,
    key: str,
    attempt: int,
    exc: BaseException,
    seconds: float,
    stage: str | None = None,
    *,
    run_id: str = "",
) -> Outcome:
    """Commit a failed scan: its ``scans`` row (status failed) and its ``failures`` record."""
    failure = Failure.from_exception(
        exc, scan_id=scan.scan_id, site=scan.site, attempt=attempt, stage=stage, run_id=run_id or None
    )
    if not isinstance(exc, CohortSciSegError):  # not one of ours: still say where to look and what to do
        message = format_error(
            f"unexpected {type(exc).__name__} while processing this scan: {exc}",
            scan_id=scan.scan_id,
            path=scan.image_path,
            expected="an image and masks the pipeline can process",
            fix=f"read logs/{scan.scan_id}.log (traceback) and check the image and its masks, then re-run with "
            "--resume; if the files look fine, report the log",
        )
        failure = dataclasses.replace(failure, message=message)
    logger.error("failed: %s", failure.message, exc_info=not isinstance(exc, CohortSciSegError))
    row = _scan_row(scan, key, "failed", store, run_id, segmenter="", checksum="")
    row["seconds_total"] = seconds
    store.commit(
        scan_id=scan.scan_id,
        site=scan.site,
        key=key,
        status="failed",
        attempt=row["attempt"],
        tables={
            "scans": pa.Table.from_pylist([row], schema=RUN_SCANS_SCHEMA),
            "failures": failures_to_table([failure]),
        },
        info={"run_id": run_id},
    )
    return Outcome(scan.scan_id, scan.site, "failed", key, seconds, failure.message, os.getpid())


def _attempts(store: RecordStore, scan: Scan, run_id: str, outcome: str) -> list[dict[str, Any]]:
    """This run's attempts at ``scan``: the last one ends now with ``outcome``, earlier ones were lost."""
    found: list[dict[str, Any]] = list(store.attempts(scan.site, scan.scan_id, run_id))
    if not found:  # work recorded without a start (a task killed before it could write its line)
        found = [{"worker": _worker_id(), "started": None}]
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    out = [{**a, "ended": None, "outcome": "lost"} for a in found[:-1]]
    return [*out, {**found[-1], "ended": now, "outcome": outcome}]


def _scan_row(
    scan: Scan, key: str, status: str, store: RecordStore, run_id: str, *, segmenter: str, checksum: str
) -> dict[str, Any]:
    attempts = _attempts(store, scan, run_id, status)
    return {
        "scan_id": scan.scan_id,
        "site": scan.site,
        "sub": scan.sub,
        "ses": scan.ses,
        "acq": scan.acq,
        "run": scan.run,
        "image_path": scan.image_path,
        "orientation": scan.orientation,
        "acquisition_plane": scan.acquisition_plane,
        "status": status,
        "key": key,
        "segmenter": segmenter,
        "model_checksum": checksum,
        "has_manual_masks": scan.has_manual_masks,
        "attempt": len(attempts),
        "attempts": attempts,
        "run_id": run_id or None,
    }


def _measure(
    scan: Scan,
    config: TaskConfig,
    key: str,
    store: RecordStore,
    paths: tuple[str, str],
    seconds_segment: float,
    masks: tuple[np.ndarray, np.ndarray] | None = None,
    image: Volume | NiftiInfo | None = None,
) -> tuple[dict[str, pa.Table], dict[str, Any], tuple[np.ndarray, np.ndarray, LesionAnalysis]]:
    """Morphometry (and validation with manual masks) of the predicted masks: tables, row, masks and analysis.

    ``masks``: the segmenter's masks already in memory (made on the image grid); else
    the files at ``paths`` are read and checked against the image's grid. ``image``:
    the image (or its header) as :func:`prepare_stage` read it; else its header is read.
    """
    cord_path, lesion_path = paths
    info = image if image is not None else read_header(scan.image_path, scan_id=scan.scan_id)
    if masks is not None and all(tuple(m.shape) == tuple(info.shape) for m in masks):
        cord_data, lesion_data = masks
    else:
        cord = load_nifti(cord_path, scan_id=scan.scan_id)
        lesion = load_nifti(lesion_path, scan_id=scan.scan_id)
        check_same_geometry(info, cord, what="predicted cord mask", scan_id=scan.scan_id)
        check_same_geometry(info, lesion, what="predicted lesion mask", scan_id=scan.scan_id)
        cord_data, lesion_data = cord.data, lesion.data
    nli, nli_note = scan_nli_slice(scan, info.affine, info.shape)
    levels, levels_note = scan_vertebral_labels(scan, info)
    analysis = measure_lesions(
        cord_data, lesion_data, info.affine, nli_slice=nli, levels=levels, scan_id=scan.scan_id
    )
    s = analysis.summary
    suspect = cord_plausibility(cord_data, info.affine)
    if suspect:
        logger.warning("suspect result: %s", "; ".join(suspect))
    row = _scan_row(
        scan, key, "done", store, config.run_id,
        segmenter=config.segmenter_name, checksum=config.model_checksum,
    )
    row.update(
        cord_seg_path=_rel(cord_path, config.out_dir),
        lesion_seg_path=_rel(lesion_path, config.out_dir),
        n_lesions=s.n_lesions,
        total_volume_mm3=s.total_volume_mm3,
        total_outside_cord_volume_mm3=s.total_outside_cord_volume_mm3,
        total_length_mm=s.total_length_mm,
        max_axial_damage_ratio=s.max_axial_damage_ratio,
        cord_volume_mm3=s.cord_volume_mm3,
        seconds_segment=seconds_segment,
        suspect=bool(suspect),
        suspect_reasons="; ".join(suspect) or None,
        nli_slice=s.nli_slice,
        nli_ap_diameter_mm=s.nli_ap_diameter_mm,
        vert_labels=s.vert_labels,
        lesion_vert_levels=None if s.lesion_vert_levels is None else list(s.lesion_vert_levels),
    )
    notes = [n for n in (nli_note, levels_note) if n] + list(s.notes)
    tables: dict[str, pa.Table] = {"lesions": analysis.lesions, "lesion_slices": analysis.slices}
    if scan.has_manual_masks:
        prediction = Prediction(
            cord_path, lesion_path, cord=cord_data, lesion=lesion_data, analysis=analysis, image=info
        )
        notes += _validate(scan, config, prediction, tables, row)
    elif scan.cord_mask_path or scan.lesion_mask_path:
        have, lack = ("cord", "lesion") if scan.cord_mask_path else ("lesion", "cord")
        row["validation"] = "incomplete"
        notes.append(f"manual {have} mask without a manual {lack} mask: not validated (add the {lack} mask to "
                     "derivatives/labels to validate this scan)")
    row["notes"] = "; ".join(notes) or None
    return tables, row, (cord_data, lesion_data, analysis)


def _validate(
    scan: Scan, config: TaskConfig, prediction: Prediction, tables: dict[str, pa.Table], row: dict[str, Any]
) -> list[str]:
    """Validation of the prediction against the manual masks: tables and row filled in; the manual masks' notes.

    The predicted masks and their morphometry travel in ``prediction`` (read and measured once).
    """
    v = validate_scans(
        [scan],
        {scan.scan_id: prediction},
        method=config.segmenter_name or "predicted",
        units=config.units,  # type: ignore[arg-type]
    )
    if v.failures:
        # manual masks unusable: the prediction and morphometry stand, the metrics do not
        logger.warning("validation excluded: %s", v.failures[0].message)
        failure = dataclasses.replace(v.failures[0], run_id=config.run_id or None)
        tables["failures"] = failures_to_table([failure])
        row["validation"] = "excluded"
        return []
    tables["metrics"] = v.metrics
    tables["biomarkers"] = v.biomarkers
    row["validation"] = "validated"
    m = v.metrics.to_pandas()
    for structure in ("cord", "lesion"):
        sel = m[(m.structure == structure) & (m.metric == "Dice")]
        if len(sel):
            row[f"{structure}_dice"] = float(sel.value.iloc[0])
    return [f"manual {n}" for n in v.manual_notes.get(scan.scan_id, ())]
