"""What a run writes about itself: each site derivative's ``dataset_description.json``, the environment."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cohort_sciseg._version import __version__
from cohort_sciseg.batch.layout import site_dataset
from cohort_sciseg.io import write_json
from cohort_sciseg.records import Scan

__all__ = ["environment", "gpu_names", "write_dataset_descriptions"]


def write_dataset_descriptions(out_dir: Path, scans: Sequence[Scan], describe: dict[str, Any]) -> list[Path]:
    """One ``dataset_description.json`` per site's derivative dataset (``OUT/<site>/``).

    BIDS derivatives: ``DatasetType`` derivative, ``GeneratedBy`` (this tool's version,
    the model's name and checksum), ``SourceDatasets`` (the BIDS datasets the site's
    scans come from, as file URLs). Returns the files written.
    """
    roots: dict[str, set[str]] = {}
    names: dict[str, set[str]] = {}
    for s in scans:
        roots.setdefault(s.site, set()).add(s.dataset_root)
        names.setdefault(s.site, set()).add(s.dataset_name)
    written = []
    for site in sorted(roots):
        path = site_dataset(out_dir, site) / "dataset_description.json"
        write_json(
            path,
            {
                "Name": f"cohort-sciseg segmentations of {', '.join(sorted(names[site]))} (site {site})",
                "BIDSVersion": "1.9.0",
                "DatasetType": "derivative",
                "GeneratedBy": [
                    {
                        "Name": "cohort-sciseg",
                        "Version": __version__,
                        "Description": f"cord and lesion masks by the nnU-Net model {describe.get('name')} "
                        f"(checksum {describe.get('checksum')})",
                    }
                ],
                "SourceDatasets": [{"URL": Path(r).resolve().as_uri()} for r in sorted(roots[site])],
            },
        )
        written.append(path)
    return written


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
