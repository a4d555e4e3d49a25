"""``cohort-sciseg synth --sessions`` and ``cohort-sciseg longitudinal``: what a user types."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cohort_sciseg.cli import main


def test_synth_sessions_writes_a_longitudinal_cohort(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", str(tmp_path / "c"), "--sites", "1", "--subjects-per-site", "2", "--sessions", "2"]) == 0
    assert "2 subject(s) x 2 sessions" in capsys.readouterr().out
    motion = pd.read_parquet(tmp_path / "c" / "ground_truth" / "motion.parquet")
    assert sorted(motion["ses"].unique()) == ["01", "02"]
    assert (tmp_path / "c" / "site1" / "sub-01" / "sub-01_sessions.tsv").is_file()
    assert main(["synth", str(tmp_path / "d"), "--sessions", "2", "--quality-spread", "0.5"]) == 2
    assert "--sessions 2 with --from-bids or --quality-spread" in capsys.readouterr().err


def test_longitudinal_on_a_folder_that_is_no_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["longitudinal", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no scans table" in err
    assert "Traceback" not in err
