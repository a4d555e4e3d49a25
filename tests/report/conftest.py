"""Fixtures of the report tests: a small run with hostile labels, and a real headless Chromium."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from _report_cohort import make_hostile_run


@pytest.fixture(scope="session")
def hostile_run(tmp_path_factory) -> dict:
    return make_hostile_run(tmp_path_factory.mktemp("report"))


# -- a real browser -----------------------------------------------------------------------------

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


def find_chromium() -> str | None:
    env = os.environ.get("COHORT_SCISEG_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _install_debian_chromium() -> str:
    """Install Debian's chromium (test set-up; root and apt-get only). Returns why not, or ''."""
    if os.environ.get("COHORT_SCISEG_NO_BROWSER_INSTALL"):
        return "COHORT_SCISEG_NO_BROWSER_INSTALL is set"
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return "no apt-get, or not root"
    lock = Path("/tmp/cohort-sciseg-chromium-install.lock")
    with lock.open("w") as handle:  # xdist workers: one installs, the others wait for it
        fcntl.flock(handle, fcntl.LOCK_EX)
        if find_chromium():
            return ""
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            if subprocess.run(cmd, env=env, capture_output=True, timeout=900).returncode != 0:
                subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
                subprocess.run(cmd, env=env, capture_output=True, timeout=900)
    return "" if find_chromium() else "apt-get install chromium failed"


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of a Chromium; installs Debian's package when possible, else skips with the reason."""
    path = find_chromium()
    if path is None:
        why = _install_debian_chromium()
        path = find_chromium()
        if path is None:
            pytest.skip(f"no Chromium for the browser tests ({why}); install Debian's chromium "
                        "(apt-get install chromium) or set COHORT_SCISEG_CHROMIUM")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    """A headless Chromium driven by Playwright (the driver from PyPI, the browser from Debian)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (pip install -e '.[test]')")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh page (own storage) that fails the test on any script error or dialog."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    pg.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)

    def on_dialog(dialog):
        problems.append(f"dialog opened ({dialog.type}): {dialog.message}")
        dialog.dismiss()

    pg.on("dialog", on_dialog)
    pg.problems = problems  # type: ignore[attr-defined]
    yield pg
    context.close()
    assert problems == [], problems
