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
from cohort_sciseg.batch.gpus import gpu_names
from cohort_sciseg.batch.layout import site_dataset
from cohort_sciseg.io import write_dataset_description
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
        path = write_dataset_description(
            site_dataset(out_dir, site),
            name=f"cohort-sciseg segmentations of {', '.join(sorted(names[site]))} (site {site})",
            dataset_type="derivative",
            generated_by=[
                {
                    "Name": "cohort-sciseg",
                    "Version": __version__,
                    "Description": f"cord and lesion masks by the nnU-Net model {describe.get('name')} "
                    f"(checksum {describe.get('checksum')})",
                }
            ],
            source_datasets=[Path(r).resolve().as_uri() for r in sorted(roots[site])],
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

