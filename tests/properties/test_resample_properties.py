"""Torch resampling equals nnU-Net's default resampling for any small shape, spacing and order (hypothesis).

The reference is nnU-Net's ``resample_data_or_seg_to_shape`` (skimage ``resize`` slice by
slice, ``map_coordinates`` across the anisotropic axis): an independent implementation of the
operator that :func:`cohort_sciseg.segment.resample_to_shape` computes with matrix products.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from nnunetv2.preprocessing.resampling.default_resampling import (
    compute_new_shape,
    resample_data_or_seg_to_shape,
)

from cohort_sciseg.segment import resample_to_shape

SPACING = st.sampled_from([0.3, 0.5, 0.69, 0.8, 1.0, 1.3, 3.0, 5.0, 7.5])


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 14), st.integers(1, 14), st.integers(1, 14)),
    before=st.tuples(SPACING, SPACING, SPACING),
    after=st.tuples(SPACING, SPACING, SPACING),
    channels=st.integers(1, 2),
    order=st.sampled_from([1, 3]),
    order_z=st.sampled_from([0, 1]),
    seed=st.integers(0, 2**31 - 1),
)
def test_torch_resampling_equals_nnunet(
    shape: tuple[int, int, int],
    before: tuple[float, float, float],
    after: tuple[float, float, float],
    channels: int,
    order: int,
    order_z: int,
    seed: int,
) -> None:
    new = [max(1, int(s)) for s in compute_new_shape(shape, before, after)]
    data = np.random.default_rng(seed).normal(size=(channels, *shape)).astype(np.float32)
    kwargs = {"is_seg": False, "order": order, "order_z": order_z, "force_separate_z": None}
    expected = resample_data_or_seg_to_shape(data, new, before, after, **kwargs)
    got = resample_to_shape(data, new, before, after, **kwargs)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
