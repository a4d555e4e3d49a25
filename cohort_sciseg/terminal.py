"""What reaches the user's terminal: the command line's logging set-up (called by :mod:`cohort_sciseg.cli` only).

The terminal shows the tool's warnings and errors in plain words, and, from Dask,
nnU-Net and the other libraries, only warnings and errors, each once, on one line
(their tracebacks and INFO chatter go to the run's log file, ``logs/runs/run-*.log``,
which :func:`cohort_sciseg.batch.runner.run_cohort` writes). Known noise of a
normal run is not shown at all: the ``CommClosedError`` Dask logs when workers
close at shutdown, the ``KeyError: 'startstops'`` its scheduler logs after a
killed worker (the runner retries and records that scan itself), the hint to
install jupyter-server-proxy. ``-v`` shows INFO and every library record as it
comes; ``-vv`` DEBUG.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

__all__ = ["configure_logging"]

_HANDLER_NAME = "cohort-sciseg-terminal"
#: Loggers of the tool itself (everything else is a library).
_OWN = "cohort_sciseg"
#: Fragments of library records that a normal run produces and that say nothing to the user.
_NOISE = (
    "CommClosedError",
    "StreamClosedError",
    "'startstops'",
    "jupyter-server-proxy",
    "Stream is closed",
)


class _PlainFormatter(logging.Formatter):
    """``warning: message`` for the tool; ``warning (dask): message`` for a library, first line only."""

    def __init__(self, verbose: int) -> None:
        super().__init__()
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        level = record.levelname.lower()
        if self.verbose:
            return f"{level} {record.name}: " + super().format(record)
        text = record.getMessage()
        if record.name == _OWN or record.name.startswith(_OWN + "."):
            return f"{level}: {text}"
        first = text.strip().splitlines()[0] if text.strip() else text
        return f"{level} ({_library(record.name)}): {first}"


class _QuietLibraries(logging.Filter):
    """Library records: no known noise, each message once, no traceback (the run log keeps it)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == _OWN or record.name.startswith(_OWN + "."):
            return True
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        if any(n in text for n in _NOISE):
            return False
        key = (record.name, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


class _NoTraceback(logging.Handler):
    """A stream handler that never prints a record's traceback (the run log has it)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")
            self.stream.flush()
        except Exception:
            self.handleError(record)


def _library(name: str) -> str:
    top = name.split(".")[0]
    return {"distributed": "dask", "py": "python"}.get(top, top)


def configure_logging(verbose: int, stream: TextIO | None = None) -> logging.Handler:
    """Set up the terminal handler (see the module docstring); return it.

    The root logger passes INFO so that the run's log file gets the libraries' INFO
    records; the terminal handler shows WARNING and above (``verbose`` 1: INFO, 2:
    DEBUG, with every record and its traceback). Python warnings (nibabel's, ...) go
    through logging, so they are shown once like the rest.
    """
    out = stream or sys.stderr
    root = logging.getLogger()
    for h in list(root.handlers):
        if h.get_name() == _HANDLER_NAME:
            root.removeHandler(h)
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(out)
    else:
        handler = _NoTraceback(out)
        handler.addFilter(_QuietLibraries())
    handler.setLevel((logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)])
    handler.setFormatter(_PlainFormatter(verbose))
    handler.set_name(_HANDLER_NAME)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
    logging.captureWarnings(True)
    return handler
