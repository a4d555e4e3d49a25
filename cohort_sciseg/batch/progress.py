"""The progress display of ``cohort-sciseg run``.

On a terminal: a tqdm bar (scans per second and ETA from tqdm) with done / skipped /
failed as its postfix. Elsewhere (CI logs, SLURM output files, a pipe): one plain
line each time another 5% of the scans has finished, so a log file holds ~20
readable lines instead of thousands of carriage returns.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, TextIO

from cohort_sciseg.batch.tasks import Outcome

__all__ = ["Progress"]

#: A plain line each time this fraction of the scans more has finished (non-terminal streams).
STEP = 0.05


class Progress:
    """Done / skipped / failed / remaining, scans per second and ETA (or nothing without a stream).

    Parameters
    ----------
    total
        Scans to process.
    stream
        Where to write (``None``: nothing); a terminal gets a bar, anything else lines.
    """

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self.total = total
        self.stream = stream
        self.counts: Counter[str] = Counter()
        self.t0 = time.perf_counter()
        self._next_line = STEP
        self._bar: Any = None
        if stream is not None and _is_terminal(stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, file=stream, unit="scan", dynamic_ncols=True, smoothing=0.1,
                             bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, "
                             "{rate_fmt}] {postfix}")

    @property
    def finished(self) -> int:
        return sum(self.counts.values())

    def update(self, outcome: Outcome) -> None:
        """Count one finished scan (``outcome.status``: done, skipped or failed) and show it."""
        self.counts[outcome.status] += 1
        if self._bar is not None:
            self._bar.set_postfix_str(self._counts_text(), refresh=False)
            self._bar.update(1)
        elif self.stream is not None and (self.finished / max(self.total, 1) >= self._next_line or
                                          self.finished == self.total):
            while self._next_line <= self.finished / max(self.total, 1):
                self._next_line += STEP
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def line(self) -> str:
        """One plain progress line: ``[ 35%] 35/100 scans: ... 1.20 scans/s, ETA 54 s``."""
        n = self.finished
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        rate = n / elapsed
        left = self.total - n
        eta = f"ETA {left / rate:.0f} s" if rate > 0 and left else "ETA -"
        pct = 100 * n / max(self.total, 1)
        return f"[{pct:3.0f}%] {n}/{self.total} scans: {self._counts_text()}, {left} remaining, {rate:.2f} scans/s, {eta}"

    def _counts_text(self) -> str:
        c = self.counts
        return f"{c['done']} done, {c['skipped']} skipped, {c['failed']} failed"

    def close(self) -> None:
        """End the display (the bar's line stays on the terminal)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
