"""What a run writes about itself: the derivative's ``dataset_description.json`` and the environment."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cohort_sciseg._version import __version__
from cohort_sciseg.io import write_json

__all__ = ["environment", "gpu_names", "write_dataset_description"]


def write_dataset_description(out_dir: Path, roots: Sequence[Path], describe: dict[str, Any]) -> None:
    """The run folder's ``dataset_description.json`` (a BIDS derivative naming the model and its sources)."""
    write_json(
        out_dir / "dataset_description.json",
        {
            "Name": "cohort-sciseg derivatives",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [
                {
                    "Name": "cohort-sciseg",
                    "Version": __version__,
                    "Description": f"segmenter {describe.get('name')} (checksum {describe.get('checksum')})",
                }
            ],
            "SourceDatasets": [{"URL": Path(r).resolve().as_uri()} for r in roots],
        },
    )


def environment() -> dict[str, Any]:
    from importlib.metadata import version

    versions = {}
    for name in ("dask", "distributed", "nnunetv2", "torch", "numpy", "scipy", "pyarrow", "nibabel"):
        with contextlib.suppress(Exception):
            versions[name] = version(name)
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "gpus": gpu_names(),
        "versions": versions,
    }


def gpu_names() -> list[str]:
    """Names of this machine's NVIDIA GPUs (``nvidia-smi -L``; none without it). No torch import."""
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.startswith("GPU ")]
