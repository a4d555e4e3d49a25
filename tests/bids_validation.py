"""The official BIDS validator (``bids-validator-deno``, schema-based 3.x, offline), for the tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _validator() -> str:
    exe = shutil.which("bids-validator-deno") or str(Path(sys.executable).parent / "bids-validator-deno")
    if not Path(exe).is_file():
        pytest.skip("bids-validator-deno is not installed (pip install -e '.[test]')")
    return exe


def validation_errors(dataset: Path) -> list[tuple[str, str]]:
    """``(code, location)`` of every error the validator reports for ``dataset``."""
    proc = subprocess.run(
        [_validator(), "--format", "json", str(dataset)], capture_output=True, text=True, timeout=300, check=False
    )
    report = json.loads(proc.stdout)
    return [
        (i["code"], str(i.get("location", "")))
        for i in report["issues"]["issues"]
        if i["severity"] == "error"
    ]
