"""What reaches the terminal: plain warnings, no library chatter or tracebacks, a progress display."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from cohort_sciseg.batch.progress import Progress
from cohort_sciseg.batch.tasks import Outcome
from cohort_sciseg.terminal import configure_logging


@pytest.fixture
def terminal():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    stream = io.StringIO()
    yield stream
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    logging.captureWarnings(False)


def _exc(error: BaseException):
    try:
        raise error
    except BaseException:
        return sys.exc_info()


def test_quiet_terminal_shows_warnings_once_in_plain_words(terminal):
    configure_logging(0, terminal)
    logging.getLogger("distributed.scheduler").info("State start")
    logging.getLogger("distributed.http.proxy").info("please install jupyter-server-proxy")
    for _ in range(3):
        logging.getLogger("distributed.worker").warning("Worker is at 85% memory usage.\nsecond line")
    logging.getLogger("distributed.batched").error("Error in batched write", exc_info=_exc(OSError("CommClosedError")))
    logging.getLogger("distributed.scheduler").error("Error transitioning", exc_info=_exc(KeyError("startstops")))
    logging.getLogger("distributed.core").error("boom", exc_info=_exc(RuntimeError("real problem")))
    logging.getLogger("cohort_sciseg.batch.runner").warning("a note for the user")
    logging.getLogger("cohort_sciseg.batch.runner").info("an info line")
    text = terminal.getvalue()
    assert text.splitlines() == [
        "warning (dask): Worker is at 85% memory usage.",
        "error (dask): boom",
        "warning: a note for the user",
    ]
    assert "Traceback" not in text


def test_verbose_terminal_shows_everything(terminal):
    configure_logging(1, terminal)
    logging.getLogger("distributed.scheduler").info("State start")
    logging.getLogger("distributed.core").error("boom", exc_info=_exc(RuntimeError("real problem")))
    text = terminal.getvalue()
    assert "info distributed.scheduler: State start" in text
    assert "Traceback" in text
    assert "RuntimeError: real problem" in text


def test_python_warnings_are_shown_once(terminal):
    import warnings

    configure_logging(0, terminal)
    for _ in range(2):
        warnings.warn_explicit("pixdim[1,2,3] should be positive", UserWarning, "nibabel/nifti1.py", 10)
    assert terminal.getvalue().count("pixdim[1,2,3] should be positive") == 1


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _feed(progress: Progress, statuses: list[str]) -> None:
    for i, s in enumerate(statuses):
        progress.update(Outcome(f"s{i}", "site", s, "k"))
    progress.close()


def test_progress_lines_every_5_percent_when_not_a_terminal():
    stream = io.StringIO()
    _feed(Progress(100, stream), ["done"] * 90 + ["skipped"] * 5 + ["failed"] * 5)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 20
    assert lines[0].startswith("[  5%] 5/100 scans: 5 done, 0 skipped, 0 failed, 95 remaining")
    assert "ETA" in lines[0]
    assert lines[-1].startswith("[100%] 100/100 scans: 90 done, 5 skipped, 5 failed, 0 remaining")
    assert "\r" not in stream.getvalue()


def test_progress_few_scans_a_line_each():
    stream = io.StringIO()
    _feed(Progress(3, stream), ["done", "failed", "done"])
    assert [line.split("]")[0] for line in stream.getvalue().splitlines()] == ["[ 33%", "[ 67%", "[100%"]


def test_progress_bar_on_a_terminal():
    stream = _Tty()
    _feed(Progress(4, stream), ["done", "done", "skipped", "failed"])
    text = stream.getvalue()
    assert "4/4" in text
    assert "2 done, 1 skipped, 1 failed" in text
    assert "scan/s" in text


@pytest.mark.slow
def test_run_command_line_is_quiet_and_takes_the_synth_folder(tmp_path):
    """The console script on `synth`'s output folder (datasets + ground_truth/): it runs the datasets;
    stderr holds no traceback and no Dask INFO line; the run's log file has them."""
    from cohort_sciseg.synth import synthesize_cohort

    synthesize_cohort(tmp_path / "cohort", sites=2, subjects_per_site=1, seed=2)
    exe = Path(sys.executable).parent / "cohort-sciseg"
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(exe), "run", str(tmp_path / "cohort"), "-o", str(out), "--segmenter", "copy-manual", "--workers", "1",
         "--gpus", "0", "--no-report"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "is not a BIDS dataset but holds 2: site1, site2" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "INFO" not in proc.stderr
    assert "distributed" not in proc.stderr
    assert "[100%]" in proc.stderr  # not a terminal: plain progress lines
    assert "0 failed" in proc.stdout
    logs = list((out / "logs" / "runs").glob("run-*.log"))
    assert len(logs) == 1
    assert "distributed.scheduler" in logs[0].read_text()


def test_internal_error_traceback_only_with_verbose(terminal, tmp_path, monkeypatch, capsys):
    """An internal error is one line on the terminal; -v also prints its traceback (the log file has it anyway)."""
    import cohort_sciseg.cli as cli

    def boom(self, out=None):
        raise ValueError("unexpected")

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setattr(cli.SynthCommand, "run", boom)
    assert cli.main(["synth", str(tmp_path / "c")]) == cli.EXIT_CRASH
    quiet = capsys.readouterr().err
    assert "Traceback" not in quiet
    assert "internal error (ValueError: unexpected)" in quiet
    assert cli.main(["-v", "synth", str(tmp_path / "c")]) == cli.EXIT_CRASH
    loud = capsys.readouterr().err
    assert "Traceback" in loud
    assert len(list((tmp_path / "cohort-sciseg" / "logs").glob("crash-*.log"))) >= 1
