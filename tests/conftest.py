"""Fixtures shared by every test module."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path:
    """Folder of the real scans: $COHORT_SCISEG_TEST_DATA, default ``<repo>/../shared/data``."""
    return Path(os.environ.get("COHORT_SCISEG_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def rng() -> np.random.Generator:
    """Seeded generator: tests are deterministic."""
    return np.random.default_rng(20240130)


@pytest.fixture(scope="session")
def spine_t2w() -> Path:
    """The real BIDS dataset ``spine-t2w``; skips with the reason when it is absent."""
    root = shared_data_root() / "spine-t2w"
    if not (root / "dataset_description.json").is_file():
        pytest.skip(
            f"real scans not found at {root} (set COHORT_SCISEG_TEST_DATA to the folder holding spine-t2w/)"
        )
    return root


#: The suite's longest test (a from-scratch training, 12-14 min on the 2-core CI machine) runs
#: first, so that with ``-n 2 --dist worksteal`` the other worker takes the rest of the suite
#: beside it instead of the training starting last and the run waiting for it.
_LONGEST = "test_quick_training_produces_loadable_model"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.name != _LONGEST)  # stable: the rest keep their order
