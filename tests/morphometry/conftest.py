"""Fixtures of the morphometry tests (helpers are in ``morpho_phantoms.py``, the oracle in
``morpho_reference.py``)."""

from __future__ import annotations

import pytest
from morpho_phantoms import GRIDS


@pytest.fixture(params=sorted(GRIDS))
def grid(request: pytest.FixtureRequest) -> tuple[tuple[float, float, float], tuple[int, int, int]]:
    """Isotropic and anisotropic RPI grids with non-cubic shapes."""
    return GRIDS[request.param]
