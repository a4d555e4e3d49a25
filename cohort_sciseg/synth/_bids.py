"""Small BIDS-writing helpers shared by the synthetic and semi-synthetic generators."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib

from cohort_sciseg._version import __version__
from cohort_sciseg.discover.entities import site_label as discover_site_label
from cohort_sciseg.errors import SynthError, format_error
from cohort_sciseg.io import atomic_write_text
from cohort_sciseg.io import write_dataset_description as _write_description


def check_int(name: str, value: object, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, else :class:`SynthError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = format_error(
            f"{name}={value!r} is not valid",
            expected=f"an integer >= {minimum}",
            fix=f"pass {name}={minimum} or more",
        )
        raise SynthError(msg)
    return value


def prepare_output(out_dir: str | os.PathLike[str]) -> Path:
    """Create ``out_dir`` (absolute) if needed; refuse a file or a non-empty folder."""
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        msg = format_error(
            "the output path exists and is not a folder",
            path=out,
            expected="a new or empty folder",
            fix="choose another output path",
        )
        raise SynthError(msg, path=out)
    if out.is_dir() and any(out.iterdir()):
        msg = format_error(
            "the output folder is not empty",
            path=out,
            expected="a new or empty folder (generated files are never mixed with existing ones)",
            fix="remove its contents or choose another output folder",
        )
        raise SynthError(msg, path=out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def bids_stem(sub: str, ses: str | None, acq: str | None, suffix: str = "T2w") -> str:
    """``sub-<sub>[_ses-<ses>][_acq-<acq>]_<suffix>``."""
    parts = [f"sub-{sub}"]
    if ses is not None:
        parts.append(f"ses-{ses}")
    if acq is not None:
        parts.append(f"acq-{acq}")
    parts.append(suffix)
    return "_".join(parts)


def anat_dir(root: Path, sub: str, ses: str | None) -> Path:
    """``<root>/sub-<sub>[/ses-<ses>]/anat``."""
    d = root / f"sub-{sub}"
    if ses is not None:
        d = d / f"ses-{ses}"
    return d / "anat"


def site_label(name: str) -> str:
    """Site label from a dataset folder name: discovery's rule (:func:`cohort_sciseg.discover.entities.site_label`)."""
    return discover_site_label(name)


def scan_id(site: str, stem: str) -> str:
    """Site-qualified scan id as :class:`cohort_sciseg.records.Scan` defines it."""
    return f"site-{site_label(site)}_{stem}"


def nifti_header(description: str) -> nib.Nifti1Header:
    """Fresh NIfTI-1 header with mm/s units and a description."""
    hdr = nib.Nifti1Header()
    hdr.set_xyzt_units("mm", "sec")
    hdr["descrip"] = description.encode("ascii")[:79]
    return hdr


def generated_by(description: str) -> list[dict[str, str]]:
    """BIDS ``GeneratedBy`` entry naming this package."""
    return [{"Name": "cohort-sciseg", "Version": __version__, "Description": description}]


def write_tsv(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    """Tab-separated table with a header line; ``None`` is written as ``n/a``."""
    lines = ["\t".join(columns)]
    for row in rows:
        lines.append("\t".join("n/a" if row.get(c) is None else str(row[c]) for c in columns))
    return atomic_write_text(path, "\n".join(lines) + "\n")


def write_dataset_description(
    root: Path, name: str, description: str, *, derivative: bool = False
) -> Path:
    """``dataset_description.json`` of a raw dataset or of its ``derivatives/labels`` (CC0)."""
    return _write_description(
        root,
        name=name,
        dataset_type="derivative" if derivative else "raw",
        license="CC0",
        generated_by=generated_by(description),
        source_datasets=["../../"] if derivative else [],
    )


def relpath(path: Path, start: Path) -> str:
    """POSIX path of ``path`` relative to ``start``."""
    return Path(os.path.relpath(path, start)).as_posix()
