"""Each scan's own log file (``OUT/logs/<scan_id>.log``) while a worker thread runs one of its stages."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from cohort_sciseg.io import RunLayout

__all__ = ["scan_log"]


@contextlib.contextmanager
def scan_log(out_dir: str, scan_id: str, *, append: bool = False) -> Iterator[Path]:
    """Route this thread's log records to ``OUT/logs/<scan_id>.log`` while the scan's stage runs.

    A worker runs stages of several scans in threads at once: the handler keeps
    only the records of the thread that installed it. The first stage of a scan
    starts the file afresh, later stages append.
    """
    path = RunLayout(out_dir).scan_log(scan_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a" if append else "w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ident = threading.get_ident()
    handler.addFilter(lambda record: record.thread == ident)
    root = logging.getLogger("cohort_sciseg")
    _raise_log_level(root)
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        _restore_log_level(root)
        handler.close()


# The package logger must pass INFO while any thread of the worker writes a scan log:
# the level is raised by the first such thread and restored by the last one (a thread
# that restored it on its own exit silenced the INFO records of the others).
_level_lock = threading.Lock()
_level_users = 0
_level_saved = logging.NOTSET


def _raise_log_level(logger_: logging.Logger) -> None:
    global _level_users, _level_saved
    with _level_lock:
        if _level_users == 0:
            _level_saved = logger_.level
            logger_.setLevel(min(_level_saved or logging.INFO, logging.INFO))
        _level_users += 1


def _restore_log_level(logger_: logging.Logger) -> None:
    global _level_users
    with _level_lock:
        _level_users -= 1
        if _level_users == 0:
            logger_.setLevel(_level_saved)
