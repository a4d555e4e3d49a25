"""Is a predicted cord plausible for the image it came from?

A network given an image that holds no cord (a blank or noise image, a phantom,
the wrong contrast or body part) still outputs *something*. Those results must
not pass as plain ``done``: :func:`cord_plausibility` gives the reasons why a cord
mask is suspect, which ``cohort-sciseg run`` writes to ``tables/scans``
(``suspect``, ``suspect_reasons``) and the QC report shows as the ``suspect`` flag.

The limits are deliberately wide (they catch results that cannot be a human
spinal cord, not atrophy or swelling): the cord runs through the whole
superior-inferior field of view of a spinal cord MRI, so a mask on fewer than
:data:`MIN_SLICE_COVERAGE` of the axial slices is no cord; adult cord cross-sectional areas are
~40-100 mm2 along the cervical and thoracic cord (Kato et al. 2012, Papinutto
et al. 2020), so a median outside [:data:`MIN_CORD_AREA_MM2`,
:data:`MAX_CORD_AREA_MM2`] is not a cord, nor is a mask filling more than
:data:`MAX_CORD_FRACTION` of the field of view.
"""

from __future__ import annotations

import numpy as np

from cohort_sciseg.io import RPI, binarize, reorient, voxel_sizes

__all__ = ["MAX_CORD_AREA_MM2", "MAX_CORD_FRACTION", "MIN_CORD_AREA_MM2", "MIN_SLICE_COVERAGE", "cord_plausibility"]

#: Smallest plausible median cross-sectional area of a cord mask, mm2.
MIN_CORD_AREA_MM2 = 15.0
#: Largest plausible median cross-sectional area of a cord mask, mm2.
MAX_CORD_AREA_MM2 = 250.0
#: Largest plausible fraction of the image volume covered by the cord mask.
MAX_CORD_FRACTION = 0.25
#: Smallest plausible fraction of the axial slices that hold cord (on the real scans of
#: the test data: 0.87-1.0; the demo model on a noise image: 0.19).
MIN_SLICE_COVERAGE = 0.5


def cord_plausibility(cord: np.ndarray, affine: np.ndarray, *, threshold: float = 0.5) -> tuple[str, ...]:
    """Reasons why ``cord`` does not look like a spinal cord (empty tuple: plausible).

    Parameters
    ----------
    cord
        Cord mask on the image grid, any orientation (``value > threshold`` is cord).
    affine
        Voxel-to-world affine of the grid, mm.
    threshold
        Binarisation threshold.

    Returns
    -------
    tuple of str
        Plain-language reasons, each with the value and the limit: no cord; cord
        covering more than :data:`MAX_CORD_FRACTION` of the image; on fewer than
        :data:`MIN_SLICE_COVERAGE` of the axial slices; median axial
        cross-sectional area (over the axial slices that hold cord) outside
        [:data:`MIN_CORD_AREA_MM2`, :data:`MAX_CORD_AREA_MM2`] mm2.
    """
    mask, rpi_affine = reorient(binarize(cord, threshold), np.asarray(affine, dtype=np.float64), RPI)
    n = int(np.count_nonzero(mask))
    if n == 0:
        return ("no spinal cord found in the image (check the contrast, field of view and orientation)",)
    reasons = []
    fraction = n / mask.size
    if fraction > MAX_CORD_FRACTION:
        reasons.append(
            f"the cord mask covers {100 * fraction:.0f}% of the image "
            f"(at most {100 * MAX_CORD_FRACTION:.0f}% expected for a spinal cord)"
        )
    px, py, _ = voxel_sizes(rpi_affine)
    per_slice = np.count_nonzero(mask, axis=(0, 1))
    coverage = float(np.count_nonzero(per_slice)) / per_slice.size
    if coverage < MIN_SLICE_COVERAGE:
        reasons.append(
            f"the cord mask is on {100 * coverage:.0f}% of the axial slices (a spinal cord runs through "
            f"the field of view: at least {100 * MIN_SLICE_COVERAGE:.0f}% expected)"
        )
    area = float(np.median(per_slice[per_slice > 0])) * px * py
    if not MIN_CORD_AREA_MM2 <= area <= MAX_CORD_AREA_MM2:
        reasons.append(
            f"median cord cross-sectional area is {area:.1f} mm2 "
            f"(a spinal cord has {MIN_CORD_AREA_MM2:.0f}-{MAX_CORD_AREA_MM2:.0f} mm2)"
        )
    return tuple(reasons)
