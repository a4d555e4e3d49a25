"""The worklist of a QC review: the rated scans to correct, with their images, predictions and targets.

See :mod:`cohort_sciseg.report.ratings` for the correction loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa

from cohort_sciseg.discover import DEFAULT_CORD_SUFFIXES, DEFAULT_LESION_SUFFIXES
from cohort_sciseg.errors import ReportError, format_error
from cohort_sciseg.io import (
    RunLayout,
    find_labels_masks,
    image_folder,
    labels_mask_path,
    read_partitioned_table,
)
from cohort_sciseg.report.rating_files import (
    RATING_COLUMNS,
    PathLike,
    Rating,
    as_ratings,
    check_choice,
)

__all__ = [
    "RANKED_COLUMNS",
    "STRUCTURES",
    "WORKLIST_COLUMNS",
    "dataset_folder",
    "str_or_none",
    "worklist",
]

#: Columns of :func:`worklist`' frame, in order (paths absolute).
WORKLIST_COLUMNS: tuple[str, ...] = (
    *RATING_COLUMNS,
    "image_path",
    "cord_seg_path",
    "lesion_seg_path",
    "cord_target_path",
    "lesion_target_path",
    "cord_existing_path",
    "lesion_existing_path",
)
#: The uncertainty columns of ``tables/scans`` a ranked worklist reads and shows (null when the run has none).
_RANK_COLUMNS = ("lesion_uncertainty", "cord_uncertainty", "lesion_disagreement", "cord_disagreement")
#: Columns of :func:`worklist` ranked by uncertainty or disagreement: the rank first, the uncertainties last.
RANKED_COLUMNS: tuple[str, ...] = ("rank", *WORKLIST_COLUMNS, *_RANK_COLUMNS)
#: What a ranked worklist sorts by: ``rank`` -> ``tables/scans`` column.
RANK_BY = {"uncertainty": "lesion_uncertainty", "disagreement": "lesion_disagreement"}
#: The structures of a correction, with the manual-mask suffixes discovery reads (the first is written).
STRUCTURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cord", DEFAULT_CORD_SUFFIXES),
    ("lesion", DEFAULT_LESION_SUFFIXES),
)
_SCAN_COLUMNS = (
    "scan_id",
    "site",
    "sub",
    "ses",
    "image_path",
    "cord_seg_path",
    "lesion_seg_path",
    "status",
)


def _run_scans(out_dir: Path, extra: Sequence[str] = ()) -> pd.DataFrame:
    """The run's ``tables/scans`` (one row per scan id), ``site`` as text; ``extra`` columns null when absent."""
    folder = RunLayout(out_dir).table("scans")
    try:
        table = read_partitioned_table(folder)
    except (OSError, pa.ArrowException) as exc:
        msg = format_error(
            f"cannot read the scans table: {type(exc).__name__}: {exc}",
            path=folder,
            expected="Parquet files written by `cohort-sciseg run`",
            fix="re-run `cohort-sciseg run --resume` to rewrite the tables",
        )
        raise ReportError(msg, path=folder) from exc
    if table is None:
        msg = format_error(
            "no scans table (tables/scans/site=*/*.parquet) in this folder",
            path=out_dir,
            expected="the OUT_DIR of a `cohort-sciseg run`",
            fix="pass the folder given to `cohort-sciseg run -o`",
        )
        raise ReportError(msg, path=out_dir)
    missing = [c for c in _SCAN_COLUMNS if c not in table.schema.names]
    if missing:
        msg = format_error(
            f"the scans table has no column(s) {missing!r}",
            path=folder,
            expected="a scans table written by `cohort-sciseg run`",
            fix="re-run `cohort-sciseg run --resume` to rewrite the tables",
        )
        raise ReportError(msg, path=folder)
    frame = table.select([c for c in (*_SCAN_COLUMNS, *extra) if c in table.schema.names]).to_pandas()
    for c in extra:
        if c not in frame:
            frame[c] = float("nan")
    return frame.drop_duplicates("scan_id", keep="last").set_index("scan_id", drop=False)


def dataset_folder(scan_id: str, image: Path, sub: str, ses: str | None) -> tuple[Path, Path]:
    """``(dataset root, image folder relative to it)`` of ``<root>/sub-X/[ses-Y/]anat/<image>``.

    The folder must be the one of the scans table's ``sub`` and ``ses``.
    """
    rel = Path(f"sub-{sub}", *([f"ses-{ses}"] if ses else []), "anat")
    try:
        root, found = image_folder(image)
    except ValueError:
        root, found = image.parent, Path()
    if not image.is_absolute() or found != rel:
        msg = format_error(
            f"the image {str(image)!r} is not in a BIDS folder {str(rel)!r}",
            scan_id=scan_id,
            expected="an absolute image path <dataset>/sub-<label>/[ses-<label>/]anat/<image> in the scans table",
            fix="re-run `cohort-sciseg run --resume` on the BIDS datasets to rewrite the scans table",
        )
        raise ReportError(msg, path=image, scan_id=scan_id)
    return root, rel


def str_or_none(value: Any) -> str | None:
    """A table cell as text; missing and empty cells as None."""
    return None if value is None or pd.isna(value) or value == "" else str(value)


def worklist(
    ratings: pd.DataFrame | PathLike,
    out_dir: PathLike,
    *,
    ratings_to_fix: Sequence[Rating] = ("fail",),
    rank: Literal["rating", "uncertainty", "disagreement"] = "rating",
    top: int | None = None,
) -> pd.DataFrame:
    """The scans to correct by hand, with their images, predictions and manual-mask targets.

    Parameters
    ----------
    ratings
        A frame from :func:`read_ratings`, or a ratings file.
    out_dir
        The ``cohort-sciseg run`` folder the QC report was made from (its
        ``tables/scans`` gives the images and the predicted masks).
    ratings_to_fix
        Ratings that put a scan on the list (default: fail; add artifact to
        review those as well). Not used with a ranked worklist.
    rank
        ``"rating"`` (default): the rated scans, as below. ``"uncertainty"``: the
        scans to send to annotators next, columns :data:`RANKED_COLUMNS`: every scan
        of the run with a prediction (status done) that is not yet corrected (no
        manual lesion mask in ``derivatives/labels``) and not rated pass, by
        ``lesion_uncertainty`` descending (null last: scans of older runs), ties by
        ``scan_id``; ``rank`` 1, 2, ...; unrated scans have no rating.
        ``"disagreement"``: the same scans by ``lesion_disagreement`` (runs with
        ``--segmenter-option disagreement=true``; null last).
    top
        Keep the first ``top`` rows (ranked worklists only; default: all).

    Returns
    -------
    pandas.DataFrame
        One row per scan to correct, columns :data:`WORKLIST_COLUMNS`, in the
        order of the ratings: the rating columns (``site``, ``sub``, ``ses`` from
        the run's table), ``image_path``; ``cord_seg_path`` and
        ``lesion_seg_path``, the run's predicted masks (absolute; missing when the
        scan failed); ``cord_target_path`` and ``lesion_target_path``, where the
        corrected masks go so that discovery reads them as the scan's manual
        masks (``<dataset>/derivatives/labels/sub-X/[ses-Y/]anat/<image
        stem>_seg-manual.nii.gz`` and ``..._lesion-manual.nii.gz``, the first of
        :data:`~cohort_sciseg.discover.DEFAULT_CORD_SUFFIXES` and
        :data:`~cohort_sciseg.discover.DEFAULT_LESION_SUFFIXES`);
        ``cord_existing_path`` and ``lesion_existing_path``, the manual mask
        discovery reads now (missing when there is none).

    Raises
    ------
    ReportError
        ``out_dir`` has no scans table, or rated scans are not in it (the message
        lists a few), or the ratings file is bad (see :func:`read_ratings`).
    ValueError
        ``ratings_to_fix`` holds a value outside :data:`RATINGS`, ``rank`` is not
        one of the three, or ``top`` is given without ranking or is below 1.
    """
    chosen = check_choice(ratings_to_fix, "ratings_to_fix")
    _check_rank(rank, top)
    frame = as_ratings(ratings)
    out = Path(out_dir).resolve()
    scans = _run_scans(out, _RANK_COLUMNS if rank in RANK_BY else ())
    ids = frame["scan_id"].astype(str)
    unknown = list(dict.fromkeys(i for i in ids if i not in scans.index))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5]) + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        )
        msg = format_error(
            f"{len(unknown)} rated scan(s) are not in the run's scans table: {shown}",
            path=RunLayout(out).table("scans"),
            expected="ratings of scans of this run",
            fix="pass the OUT_DIR of the run the QC report was made from (wrong OUT_DIR?), "
            "or remove the ratings of other runs from the file",
        )
        raise ReportError(msg, path=out)
    if rank in RANK_BY:
        return _ranked(frame, scans, out, top, RANK_BY[rank])
    selected = frame[frame["rating"].astype(str).str.lower().isin(chosen)]
    rows = [_row(r, scans.loc[str(r["scan_id"])], out) for r in selected.to_dict("records")]
    return pd.DataFrame(rows, columns=list(WORKLIST_COLUMNS), dtype="str")


def _check_rank(rank: str, top: int | None) -> None:
    if rank != "rating" and rank not in RANK_BY:
        msg = f"rank={rank!r} is not valid: expected 'rating' (the rated scans), 'uncertainty' or 'disagreement'"
        raise ValueError(msg)
    if top is not None and (rank not in RANK_BY or isinstance(top, bool) or int(top) < 1):
        msg = f"top={top!r} is not valid: expected an integer >= 1, with rank='uncertainty' or 'disagreement'"
        raise ValueError(msg)


def _ranked(frame: pd.DataFrame, scans: pd.DataFrame, out: Path, top: int | None, by: str) -> pd.DataFrame:
    """The scans not yet corrected nor rated pass, highest ``by`` first (see :func:`worklist`)."""
    latest = frame.drop_duplicates("scan_id", keep="last").set_index("scan_id", drop=False)
    rows = []
    for sid, s in scans[scans["status"].astype(str) == "done"].iterrows():
        rated = latest.loc[sid].to_dict() if sid in latest.index else {"scan_id": sid}
        if str(rated.get("rating") or "").lower() == "pass":
            continue
        row = _row(rated, s, out)
        if row["lesion_existing_path"] is None:  # a manual lesion mask: corrected already
            rows.append({**row, **{c: s[c] for c in _RANK_COLUMNS}})
    ranked = pd.DataFrame(rows, columns=[c for c in RANKED_COLUMNS if c != "rank"])
    u = pd.to_numeric(ranked[by], errors="coerce")
    order = ranked.assign(_u=u.fillna(-1.0), _null=u.isna()).sort_values(
        ["_null", "_u", "scan_id"], ascending=[True, False, True], kind="mergesort")
    ranked = ranked.loc[order.index].reset_index(drop=True)
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    return ranked.head(top) if top is not None else ranked


def _row(r: dict[str, Any], s: pd.Series, out: Path) -> dict[str, Any]:
    """One worklist row: the rating columns of ``r``, the paths of the run's scan ``s``."""
    image = Path(str(s["image_path"]))
    ses = str_or_none(s["ses"])
    root, _ = dataset_folder(str(r["scan_id"]), image, str(s["sub"]), ses)
    row = {c: r.get(c) for c in RATING_COLUMNS}
    row.update(site=str(s["site"]), sub=str(s["sub"]), ses=ses, image_path=str(image))
    for structure, suffixes in STRUCTURES:
        pred = str_or_none(s[f"{structure}_seg_path"])
        row[f"{structure}_seg_path"] = None if pred is None else str(out / pred)
        row[f"{structure}_target_path"] = str(labels_mask_path(root, image, suffixes[0]))
        existing = find_labels_masks(root, image, suffixes)
        row[f"{structure}_existing_path"] = str(existing[0]) if existing else None
    return row
