"""``ratings worklist --rank uncertainty``: the scans not yet corrected, most uncertain lesion first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohort_sciseg.cli import main
from cohort_sciseg.report import RATING_COLUMNS, WORKLIST_COLUMNS, worklist, write_ratings
from cohort_sciseg.report.qc_worklist import RANKED_COLUMNS

# (sub, status, lesion_uncertainty): s02 and s03 tie, s04 comes from an older run (null)
SCANS = [
    ("01", "done", 0.30),
    ("02", "done", 0.50),
    ("03", "done", 0.50),
    ("04", "done", None),
    ("05", "done", 0.10),
    ("06", "failed", None),
    ("07", "done", 0.90),  # rated pass: not sent
    ("08", "done", 0.80),  # has a manual lesion mask: corrected already
]


def _sid(sub: str) -> str:
    return f"site-a_sub-{sub}_T2w"


def _run(tmp_path: Path, *, with_uncertainty: bool = True) -> Path:
    ds = tmp_path / "ds"
    rows = []
    for sub, status, u in SCANS:
        row: dict[str, object] = {
            "scan_id": _sid(sub), "sub": sub, "ses": None,
            "image_path": str(ds / f"sub-{sub}" / "anat" / f"sub-{sub}_T2w.nii.gz"),
            "cord_seg_path": f"a/sub-{sub}_sc_seg.nii.gz" if status == "done" else None,
            "lesion_seg_path": f"a/sub-{sub}_lesion_seg.nii.gz" if status == "done" else None,
            "status": status,
        }
        if with_uncertainty:  # disagreement: the reverse order of the uncertainty, null where it is null
            row.update(lesion_uncertainty=u, cord_uncertainty=None if u is None else u / 2,
                       lesion_disagreement=None if u is None else 1.0 - u, cord_disagreement=None)
        rows.append(row)
    folder = tmp_path / "run" / "tables" / "scans" / "site=a"
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "part-0.parquet")
    labels = ds / "derivatives" / "labels" / "sub-08" / "anat"
    labels.mkdir(parents=True)
    (labels / "sub-08_T2w_lesion-manual.nii.gz").write_bytes(b"")
    return tmp_path / "run"


def _ratings(tmp_path: Path) -> Path:
    rows = [
        {"scan_id": _sid("07"), "site": "a", "sub": "07", "ses": None, "rating": "pass", "comment": "",
         "rated_at": "2024-05-01T12:00:00.000Z"},
        {"scan_id": _sid("05"), "site": "a", "sub": "05", "ses": None, "rating": "fail", "comment": "missed",
         "rated_at": "2024-05-01T12:01:00.000Z"},
    ]
    return write_ratings(pd.DataFrame(rows, columns=list(RATING_COLUMNS), dtype="str"), tmp_path / "r.csv")


def test_ranked_by_lesion_uncertainty_ties_by_scan_id_null_last(tmp_path: Path) -> None:
    out = _run(tmp_path)
    ranked = worklist(_ratings(tmp_path), out, rank="uncertainty")
    assert list(ranked.columns) == list(RANKED_COLUMNS)
    assert list(ranked["scan_id"]) == [_sid(s) for s in ("02", "03", "01", "05", "04")]
    assert list(ranked["rank"]) == [1, 2, 3, 4, 5]
    assert ranked["lesion_uncertainty"].iloc[:4].tolist() == [0.5, 0.5, 0.3, 0.1]
    assert np.isnan(ranked["lesion_uncertainty"].iloc[4])
    assert ranked.set_index("scan_id").loc[_sid("05"), "rating"] == "fail"  # rated scans keep their rating
    assert pd.isna(ranked.set_index("scan_id").loc[_sid("01"), "rating"])  # unrated
    top = worklist(_ratings(tmp_path), out, rank="uncertainty", top=2)
    assert list(top["scan_id"]) == [_sid("02"), _sid("03")]


def test_ranked_by_lesion_disagreement(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(tmp_path)
    ranked = worklist(_ratings(tmp_path), out, rank="disagreement")
    assert list(ranked.columns) == list(RANKED_COLUMNS)
    assert list(ranked["scan_id"]) == [_sid(s) for s in ("05", "01", "02", "03", "04")]
    assert main(["ratings", "worklist", str(_ratings(tmp_path)), str(out), "--rank", "disagreement", "--top", "2",
                 "-o", str(tmp_path / "w.csv")]) == 0
    assert "2 scan(s) not yet corrected, lesion the ensemble members disagree on most first" in capsys.readouterr().out
    assert list(pd.read_csv(tmp_path / "w.csv")["scan_id"]) == [_sid("05"), _sid("01")]


def test_default_worklist_unchanged(tmp_path: Path) -> None:
    todo = worklist(_ratings(tmp_path), _run(tmp_path))
    assert list(todo.columns) == list(WORKLIST_COLUMNS)
    assert list(todo["scan_id"]) == [_sid("05")]


def test_run_without_uncertainty_ranks_by_scan_id(tmp_path: Path) -> None:
    ranked = worklist(_ratings(tmp_path), _run(tmp_path, with_uncertainty=False), rank="uncertainty")
    assert list(ranked["scan_id"]) == [_sid(s) for s in ("01", "02", "03", "04", "05")]
    assert ranked["lesion_uncertainty"].isna().all()
    assert ranked["lesion_disagreement"].isna().all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rank": "entropy"}, r"rank='entropy' is not valid: expected 'rating'"),
        ({"top": 3}, r"top=3 is not valid: expected an integer >= 1, with rank='uncertainty' or 'disagreement'"),
        ({"rank": "uncertainty", "top": 0}, r"top=0 is not valid"),
    ],
)
def test_bad_rank_options(tmp_path: Path, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        worklist(_ratings(tmp_path), _run(tmp_path), **kwargs)  # type: ignore[arg-type]


def test_cli_rank_uncertainty_top(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, ratings = _run(tmp_path), _ratings(tmp_path)
    assert main(["ratings", "worklist", str(ratings), str(out), "--rank", "uncertainty", "--top", "3",
                 "-o", str(tmp_path / "w.csv")]) == 0
    assert "3 scan(s) not yet corrected, most uncertain lesion first" in capsys.readouterr().out
    written = pd.read_csv(tmp_path / "w.csv")
    assert list(written["rank"]) == [1, 2, 3]
    assert written["scan_id"].iloc[0] == _sid("02")
    assert main(["ratings", "worklist", str(ratings), str(out), "--top", "3"]) == 2
    assert "--top 3 is not valid" in capsys.readouterr().err


def test_qc_index_shows_and_sorts_the_uncertainty() -> None:
    from cohort_sciseg.report import INDEX_COLUMNS

    assert "lesion_uncertainty" in INDEX_COLUMNS  # data/index.js carries it (null for older runs)
    js = (Path(__file__).resolve().parents[2] / "cohort_sciseg" / "report" / "assets" / "index.js").read_text()
    assert '["lesion_uncertainty", "Lesion uncert."]' in js  # a column header: sortable like every header
