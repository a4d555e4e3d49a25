"""Fixtures for the discovery tests: hand-made BIDS datasets (``spine_t2w`` is in tests/conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from cohort_sciseg.io import axis_directions, from_nibabel_axcodes

# Non-cubic on purpose, so that an axis mix-up changes the answer.
SHAPE = (7, 8, 9)

def affine_for(axcodes: str = "LAS", zooms: Sequence[float] = (0.5, 0.6, 3.0)) -> np.ndarray:
    """Affine whose array axes point to the nibabel ``axcodes`` with voxel sizes ``zooms``."""
    aff = np.eye(4)
    aff[:3, :3] = 0.0
    for i, (axis, sign) in enumerate(axis_directions(from_nibabel_axcodes(tuple(axcodes)))):
        aff[axis, i] = sign * zooms[i]
    aff[:3, 3] = (-10.0, 20.0, -30.0)
    return aff


def write_nifti(
    path: Path,
    *,
    axcodes: str = "LAS",
    zooms: Sequence[float] = (0.5, 0.6, 3.0),
    shape: Sequence[int] = SHAPE,
    dtype: Any = np.int16,
) -> Path:
    """Write a small NIfTI image (``.nii`` or ``.nii.gz``) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.arange(int(np.prod(shape))).reshape(shape).astype(dtype)
    img = nib.Nifti1Image(data, affine_for(axcodes, zooms))
    img.header.set_sform(img.affine, code=1)
    img.header.set_qform(img.affine, code=1)
    nib.save(img, path)
    return path


def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


class BidsBuilder:
    """Builds a small BIDS dataset file by file."""

    def __init__(self, root: Path, name: str | None = "test dataset") -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        desc: dict[str, Any] = {"BIDSVersion": "1.9.0"}
        if name is not None:
            desc["Name"] = name
        write_json(root / "dataset_description.json", desc)

    def image(
        self,
        sub: str,
        *,
        ses: str | None = None,
        entities: Sequence[tuple[str, str]] = (),
        ext: str = ".nii.gz",
        suffix: str = "T2w",
        **kwargs: Any,
    ) -> Path:
        folder = self.root / f"sub-{sub}"
        parts = [f"sub-{sub}"]
        if ses is not None:
            folder = folder / f"ses-{ses}"
            parts.append(f"ses-{ses}")
        parts += [f"{k}-{v}" for k, v in entities]
        name = "_".join([*parts, suffix]) + ext
        return write_nifti(folder / "anat" / name, **kwargs)

    def mask(self, image: Path, suffix: str, *, ext: str = ".nii.gz") -> Path:
        rel = image.parent.relative_to(self.root)
        stem = image.name.removesuffix(".gz").removesuffix(".nii")
        return write_nifti(
            self.root / "derivatives" / "labels" / rel / f"{stem}_{suffix}{ext}", dtype=np.uint8
        )

    def participants(self, text: str | bytes) -> Path:
        path = self.root / "participants.tsv"
        if isinstance(text, str):
            path.write_text(text, encoding="utf-8")
        else:
            path.write_bytes(text)
        return path


@pytest.fixture
def bids(tmp_path: Path) -> Callable[..., BidsBuilder]:
    """Factory: ``bids("zurich")`` creates an empty BIDS dataset folder ``tmp_path/zurich``."""

    def make(folder: str = "ds", *, name: str | None = "test dataset") -> BidsBuilder:
        return BidsBuilder(tmp_path / folder, name=name)

    return make


def truncate_gzip(path: Path, n_bytes: int = 20) -> Path:
    """Cut a ``.nii.gz`` file after ``n_bytes`` (an interrupted copy)."""
    raw = path.read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    path.write_bytes(raw[:n_bytes])
    return path


@pytest.fixture
def nifti() -> Callable[..., Path]:
    """The :func:`write_nifti` helper (path, axcodes, zooms, shape, dtype)."""
    return write_nifti


@pytest.fixture
def truncate() -> Callable[..., Path]:
    """The :func:`truncate_gzip` helper."""
    return truncate_gzip
