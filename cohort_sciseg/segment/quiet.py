"""nnU-Net's prints and warnings, captured and logged at DEBUG instead of reaching the terminal."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

__all__ = ["quiet_nnunet"]

logger = logging.getLogger(__name__)


class _Capture(io.StringIO):
    """A thread-safe text buffer standing in for ``sys.stdout``."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            return super().write(text)


_quiet_lock = threading.Lock()
_quiet_state: dict[str, Any] = {"depth": 0}


@contextlib.contextmanager
def quiet_nnunet(what: str) -> Iterator[None]:
    """Capture nnU-Net's prints and warnings; log them at DEBUG.

    ``sys.stdout`` and the warning filters are process-wide, and a batch worker
    runs stages of several scans in threads at once: the first thread in installs
    one capture, the last one out restores the originals and logs what was caught
    (nesting per thread would restore them in the wrong order).
    """
    with _quiet_lock:
        if _quiet_state["depth"] == 0:
            buf = _Capture()
            catcher = warnings.catch_warnings(record=True)
            caught = catcher.__enter__()
            warnings.simplefilter("always")
            _quiet_state.update(stdout=sys.stdout, buf=buf, catcher=catcher, caught=caught)
            sys.stdout = buf
        _quiet_state["depth"] += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_state["depth"] -= 1
            if _quiet_state["depth"] == 0:
                sys.stdout = _quiet_state.pop("stdout")
                _quiet_state.pop("catcher").__exit__(None, None, None)
                text = _quiet_state.pop("buf").getvalue().strip()
                caught = _quiet_state.pop("caught")
                if text:
                    logger.debug("nnU-Net output while %s: %s", what, text)
                for w in caught:
                    logger.debug("nnU-Net warning while %s: %s", what, w.message)
