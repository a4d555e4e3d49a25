"""Per-scan logs of threads that share a worker process."""

from __future__ import annotations

import logging
import threading

from cohort_sciseg.batch.scanlog import scan_log

log = logging.getLogger("cohort_sciseg.batch.tasks")


def test_a_thread_that_ends_its_scan_log_does_not_silence_another(tmp_path):
    """B enters, A enters, B leaves, then A logs: A's INFO line is in A's log, B's only in B's."""
    b_in, a_in, b_done = threading.Event(), threading.Event(), threading.Event()
    pkg = logging.getLogger("cohort_sciseg")
    before = pkg.level
    pkg.setLevel(logging.NOTSET)  # as in a worker process: the package logger has no level of its own
    root_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.WARNING)

    def a():
        b_in.wait(10)
        with scan_log(str(tmp_path), "scan-a"):
            log.info("a starts")
            a_in.set()
            b_done.wait(10)
            log.info("a after b left")

    def b():
        with scan_log(str(tmp_path), "scan-b"):
            log.info("b only")
            b_in.set()
            a_in.wait(10)
        b_done.set()

    try:
        threads = [threading.Thread(target=a), threading.Thread(target=b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert pkg.level == logging.NOTSET  # restored by the last one out
    finally:
        pkg.setLevel(before)
        logging.getLogger().setLevel(root_level)
    a_text = (tmp_path / "logs" / "scan-a.log").read_text()
    b_text = (tmp_path / "logs" / "scan-b.log").read_text()
    assert "a starts" in a_text
    assert "a after b left" in a_text
    assert "b only" not in a_text
    assert "b only" in b_text
    assert "a starts" not in b_text
