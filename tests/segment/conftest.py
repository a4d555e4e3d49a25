"""Fixtures of the segmentation-engine tests: a tiny seeded nnU-Net model and images."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cohort_sciseg.segment import clear_cache
from cohort_sciseg.segment.testing import make_tiny_model, textured_image

#: Deliberately non-cubic, anisotropic (so axis mix-ups fail), in RPI (nibabel LAS).
SHAPE = (40, 36, 28)
ZOOMS = (0.8, 1.0, 1.3)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A verified tiny model folder (regions layout, fold_0, RPI). Do not modify it."""
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    """An empty predictor cache before and after the test."""
    clear_cache()
    yield
    clear_cache()


def rpi_affine(zooms: tuple[float, float, float] = ZOOMS) -> np.ndarray:
    """Affine of an RPI image (x runs right->left) with the given voxel sizes."""
    aff = np.diag([-zooms[0], zooms[1], zooms[2], 1.0])
    aff[:3, 3] = (20.0, -15.0, -30.0)
    return aff


@pytest.fixture
def write_image(tmp_path: Path) -> Callable[..., Path]:
    """Write a textured float32 RPI image; ``write_image(name, shape=..., seed=...)`` -> path."""

    def _write(name: str = "img.nii.gz", shape: tuple[int, int, int] = SHAPE, seed: int = 0,
               affine: np.ndarray | None = None) -> Path:
        path = tmp_path / name
        img = nib.Nifti1Image(textured_image(shape, seed=seed), rpi_affine() if affine is None else affine)
        img.set_qform(img.affine, code=1)
        nib.save(img, path)
        return path

    return _write
