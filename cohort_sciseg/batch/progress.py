"""The progress line of ``cohort-sciseg run``."""

from __future__ import annotations

import time
from collections import Counter
from typing import TextIO

from cohort_sciseg.batch.tasks import Outcome

__all__ = ["Progress"]


class Progress:
    """Done/failed/remaining and throughput on one terminal line (or nothing)."""

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self.total = total
        self.stream = stream
        self.counts: Counter[str] = Counter()
        self.t0 = time.perf_counter()
        self.last = 0.0

    def update(self, outcome: Outcome) -> None:
        self.counts[outcome.status] += 1
        if self.stream is None:
            return
        now = time.perf_counter()
        n = sum(self.counts.values())
        if now - self.last < 0.2 and n < self.total:
            return
        self.last = now
        rate = n / max(now - self.t0, 1e-9)
        c = self.counts
        end = "\n" if n == self.total else ""
        self.stream.write(
            f"\r{n}/{self.total} scans: {c['done']} done, {c['skipped']} skipped, {c['failed']} failed, "
            f"{self.total - n} remaining, {rate:.2f} scans/s{end}"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None and sum(self.counts.values()) < self.total:
            self.stream.write("\n")
