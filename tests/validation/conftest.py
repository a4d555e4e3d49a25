"""Fixtures of the validation tests (metrics)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest


@pytest.fixture
def write_mask(tmp_path: Path) -> Callable[..., Path]:
    """Write a mask as NIfTI: ``write_mask(name, data, zooms=(1, 1, 1), origin=(0, 0, 0))``."""

    def _write(
        name: str,
        data: np.ndarray,
        zooms: tuple[float, float, float] = (1.0, 1.0, 1.0),
        origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> Path:
        affine = np.diag([*zooms, 1.0])
        affine[:3, 3] = origin
        path = tmp_path / name
        nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.uint8), affine), path)
        return path

    return _write
