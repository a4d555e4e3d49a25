"""Command line: ``cohort-sciseg <command> ...``.

The only package that prints, configures logging or exits. Each subcommand is a
small dataclass (:mod:`cohort_sciseg.cli.commands`) whose ``run`` the tests call
in-process; :mod:`cohort_sciseg.cli.parser` parses arguments into one of them and
:func:`main` runs it and turns what it raises into a message and an exit status.

Exit status (reserved so that scripts can tell them apart): 0 success; 1 the
command finished but some scans or files had problems (they are in the failures
table and the summary); 2 the command could not run (bad arguments or a fatal
input error, printed with its fix); 70 an internal error (a bug: one line on the
terminal, the traceback in a log file the line names; please report it); 130
interrupted (Ctrl-C).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from cohort_sciseg._version import __version__
from cohort_sciseg.cli._common import (
    EXIT_CRASH,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PROBLEMS,
)
from cohort_sciseg.cli.commands import (
    AnalyzeLesionCommand,
    CompareCommand,
    DemoCommand,
    DiscoverCommand,
    ExportNnunetCommand,
    MetricsCommand,
    RatingsPrepareCommand,
    RatingsWorklistCommand,
    ReportCommand,
    RunCommand,
    SegmentCommand,
    SynthCommand,
    ValidateCommand,
)
from cohort_sciseg.cli.commands.run import _segmenter_spec as _segmenter_spec
from cohort_sciseg.cli.parser import Command, build_parser, command_from_namespace
from cohort_sciseg.errors import CohortSciSegError
from cohort_sciseg.terminal import configure_logging

__all__ = [
    "EXIT_CRASH",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "AnalyzeLesionCommand",
    "CompareCommand",
    "DemoCommand",
    "DiscoverCommand",
    "ExportNnunetCommand",
    "MetricsCommand",
    "RatingsPrepareCommand",
    "RatingsWorklistCommand",
    "ReportCommand",
    "RunCommand",
    "SegmentCommand",
    "SynthCommand",
    "ValidateCommand",
    "crash_log_dir",
    "main",
]

# Earlier names, kept for the tests and scripts that import them.
_parser = build_parser
_command = command_from_namespace


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cohort-sciseg`` command; returns the exit status."""
    ns = build_parser().parse_args(argv)
    configure_logging(ns.verbose)
    started = time.time()
    command: Command | None = None
    try:
        command = command_from_namespace(ns)
        return command.run()
    except CohortSciSegError as exc:
        print(f"cohort-sciseg {ns.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"cohort-sciseg {ns.command}: interrupted; finished scans are kept (re-run with --resume)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, not a known condition: one line here, the traceback in a log file
        log = _write_crash_log(exc, command, started, argv)
        if ns.verbose:
            traceback.print_exception(exc, file=sys.stderr)
        where = f"the traceback is in {log}" if log else "the traceback could not be written to a log file"
        print(f"cohort-sciseg {ns.command}: internal error ({_one_line(exc)}); {where}. Finished scans are "
              "kept. Please report it with the command line and that file.", file=sys.stderr)
        return EXIT_CRASH


def crash_log_dir() -> Path:
    """Where :func:`main` writes the traceback of an internal error outside a run folder.

    ``$XDG_STATE_HOME/cohort-sciseg/logs`` (default ``~/.local/state/cohort-sciseg/logs``);
    ``run`` and ``demo`` append it to the run's own log (``OUT/logs/runs/run-*.log``) instead.
    """
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "cohort-sciseg" / "logs"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _write_crash_log(
    exc: BaseException, command: Command | None, started: float, argv: Sequence[str] | None
) -> Path | None:
    """Append the traceback to this run's log file, else to a new crash log; its path (None: not writable)."""
    args = list(sys.argv[1:] if argv is None else argv)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    text = (f"{time.strftime('%Y-%m-%d %H:%M:%S')} internal error of cohort-sciseg {__version__}\n"
            f"command line: cohort-sciseg {' '.join(args)}\n" + "".join(traceback.format_exception(exc)))
    candidates = []
    run_layout = getattr(command, "run_layout", None)
    if callable(run_layout):  # the log file this process opened for this run, if it got that far
        mine = [p for p in run_layout().run_logs_of(os.getpid()) if p.stat().st_mtime >= started - 1]
        candidates += mine[-1:]
    name = f"crash-{stamp}-{os.getpid()}.log"
    candidates += [crash_log_dir() / name, Path(tempfile.gettempdir()) / f"cohort-sciseg-{name}"]
    for path in candidates:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(text)
        except OSError:
            continue
        return path
    return None

