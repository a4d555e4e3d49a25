"""Surface distances between a prediction and a reference mask.

Two families, kept apart on purpose:

* ANIMA-compatible values (``animaSegPerfAnalyzer -d``), reproduced with their
  quirks so that numbers match the SCIseg paper: :func:`anima_hausdorff`,
  :func:`anima_contour_mean_distance` and :func:`anima_surface_distance` (which
  keeps ANIMA's never-reset running minimum).
* Corrected values: :func:`surface_distances` gives, for every surface voxel of
  one mask, the distance to the nearest surface voxel of the other; the pooled
  average symmetric surface distance, the 95th-percentile Hausdorff distance
  and the normalized surface distance are computed from them.

Contour (surface) voxels, used by both families, follow REFERENCE §3 and ITK's
``BinaryContourImageFilter`` with ``FullyConnected = 0`` as ANIMA calls it
(animaSegPerfCAnalyzer.cxx, ``contourDectection``): a foreground voxel is on
the contour when at least one of its 6 face neighbours *inside the image* is
background. The image border is not background, so a mask cut by the field of
view has no surface on the cut. All distances are Euclidean between voxel
centres, in the units of ``spacing`` (mm for the real spacing, voxels for
``(1, 1, 1)``), computed exactly as
:func:`scipy.ndimage.distance_transform_edt` (``sampling=spacing``) on the
complement of the other mask's contour would give them, by nearest-neighbour
queries on the contour voxels (:func:`distance_maps`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

__all__ = [
    "ANIMA_DISTANCE_INIT",
    "DistanceMaps",
    "SurfaceDistances",
    "anima_contour_mean_distance",
    "anima_hausdorff",
    "anima_surface_distance",
    "assd",
    "contour",
    "distance_maps",
    "hd_percentile",
    "itk_order_points",
    "normalized_surface_distance",
    "surface_distances",
]

#: ANIMA's initial value of the running minimum in ``computeAverageSurfaceDistance``.
ANIMA_DISTANCE_INIT = 1_000_000.0


def contour(mask: np.ndarray) -> np.ndarray:
    """Contour voxels of a 3D boolean mask (face connectivity, border is not background).

    Parameters
    ----------
    mask
        3D boolean array.

    Returns
    -------
    numpy.ndarray
        Boolean array, True on foreground voxels that have at least one face
        neighbour inside the array that is background.
    """
    m = np.asarray(mask, dtype=bool)
    out = np.zeros_like(m)
    for axis in range(m.ndim):
        n = m.shape[axis]
        if n < 2:
            continue
        lo = [slice(None)] * m.ndim
        hi = [slice(None)] * m.ndim
        lo[axis] = slice(0, n - 1)
        hi[axis] = slice(1, n)
        a, b = m[tuple(lo)], m[tuple(hi)]
        # A foreground voxel whose neighbour one step up (or down) is background.
        out[tuple(lo)] |= a & ~b
        out[tuple(hi)] |= b & ~a
    return out


def itk_order_points(mask: np.ndarray) -> np.ndarray:
    """Indices ``(i, j, k)`` of the True voxels in ITK iteration order (axis 0 fastest).

    ANIMA's loops over contour voxels (``itk::ImageRegionConstIterator``) visit
    them in this order, which its running-minimum surface distance depends on.
    """
    return np.argwhere(mask.T)[:, ::-1]


@dataclass(frozen=True, slots=True, eq=False)
class DistanceMaps:
    """Nearest-contour distances between two masks, computed once for every metric.

    Attributes
    ----------
    pred_contour_to_ref, ref_contour_to_pred
        For each contour voxel of one mask (in ITK iteration order, axis 0
        fastest), the distance to the nearest contour voxel of the other.
    pred_outside_to_ref, ref_outside_to_pred
        For each voxel of one mask outside the other, the distance to the
        nearest voxel of the other (= to its nearest contour voxel).
    """

    pred_contour_to_ref: np.ndarray
    ref_contour_to_pred: np.ndarray
    pred_outside_to_ref: np.ndarray
    ref_outside_to_pred: np.ndarray


def distance_maps(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> DistanceMaps:
    """Nearest-contour distances of two masks whose contours are both non-empty.

    Exact Euclidean nearest-neighbour queries (:class:`scipy.spatial.cKDTree`)
    between voxel centres scaled by ``spacing``: the same values as
    :func:`scipy.ndimage.distance_transform_edt` with ``sampling=spacing`` on the
    complement of a contour, read at the query voxels, without transforming the
    whole volume. The voxel of a mask nearest to a voxel outside it is always
    one of its contour voxels (its face neighbour towards that voxel is
    background and lies inside the image), so distances to a mask are distances
    to its contour.

    Raises
    ------
    ValueError
        A mask has no contour voxel (it is empty or fills the image).
    """
    pc, rc = contour(pred), contour(ref)
    if not pc.any() or not rc.any():
        msg = "both masks need at least one contour voxel"
        raise ValueError(msg)
    sp = np.asarray([float(s) for s in spacing])
    p_pts = itk_order_points(pc) * sp
    r_pts = itk_order_points(rc) * sp
    p_tree, r_tree = cKDTree(p_pts), cKDTree(r_pts)
    p_out = np.argwhere(pred & ~ref) * sp
    r_out = np.argwhere(ref & ~pred) * sp
    return DistanceMaps(
        pred_contour_to_ref=r_tree.query(p_pts)[0],
        ref_contour_to_pred=p_tree.query(r_pts)[0],
        pred_outside_to_ref=r_tree.query(p_out)[0] if len(p_out) else np.zeros(0),
        ref_outside_to_pred=p_tree.query(r_out)[0] if len(r_out) else np.zeros(0),
    )


def anima_hausdorff(maps: DistanceMaps) -> float:
    """ANIMA's ``HausdorffDistance``: symmetric Hausdorff distance between whole masks.

    ANIMA calls ``itk::HausdorffDistanceImageFilter`` on the masks themselves (not
    on their contours): the larger of the two directed distances, each the
    largest distance from a voxel of one mask to the nearest voxel of the other
    (0 for a voxel inside the other mask).

    Units: those of the spacing. Lower is better; 0 for identical masks.
    Reference: animaSegPerfCAnalyzer.cxx, ``computeHausdorffDist``.
    """
    h1 = float(maps.pred_outside_to_ref.max()) if maps.pred_outside_to_ref.size else 0.0
    h2 = float(maps.ref_outside_to_pred.max()) if maps.ref_outside_to_pred.size else 0.0
    return max(h1, h2)


def anima_contour_mean_distance(maps: DistanceMaps) -> float:
    """ANIMA's ``ContourMeanDistance``: the larger of the two directed mean contour distances.

    ``itk::ContourMeanDistanceImageFilter`` on the two contour images: for each
    contour voxel of one mask, the distance to the nearest contour voxel of the
    other; mean per direction; the maximum of the two means is returned (not
    their pooled mean).

    Units: those of the spacing. Lower is better.
    Reference: animaSegPerfCAnalyzer.cxx, ``computeMeanDist``; ITK
    itkContourMeanDistanceImageFilter / itkContourDirectedMeanDistanceImageFilter.
    """
    return float(max(maps.pred_contour_to_ref.mean(), maps.ref_contour_to_pred.mean()))


def anima_surface_distance(maps: DistanceMaps) -> float:
    """ANIMA's ``SurfaceDistance``, bug included: a pooled mean of running minima.

    ANIMA means to average, over both contours, each contour voxel's distance to
    the nearest voxel of the other contour. Its accumulator
    (``fDistanceTemp1``/``fDistanceTemp2``, initialised to 1,000,000) is never
    reset between contour voxels, so the value stored for the n-th voxel (in
    ITK iteration order, axis 0 fastest) is the minimum over voxels 1..n. Once
    one voxel lies on the other contour every later term is 0, hence values
    near 0. Reproduced for compatibility with the paper; use :func:`assd` for
    the correct quantity.

    Units: those of the spacing. Reference: animaSegPerfCAnalyzer.cxx,
    ``computeAverageSurfaceDistance``.
    """
    # The distances are stored in ITK iteration order, the order of ANIMA's loops.
    d_ref = np.minimum.accumulate(np.minimum(maps.ref_contour_to_pred, ANIMA_DISTANCE_INIT))
    d_pred = np.minimum.accumulate(np.minimum(maps.pred_contour_to_ref, ANIMA_DISTANCE_INIT))
    return float((d_ref.sum() + d_pred.sum()) / (d_ref.size + d_pred.size))


class SurfaceDistances:
    """Distances between the surface voxels of two masks (corrected metrics).

    Attributes
    ----------
    pred_to_ref
        For each surface voxel of the prediction, the distance to the nearest
        surface voxel of the reference (units of ``spacing``).
    ref_to_pred
        The same from the reference to the prediction.
    """

    __slots__ = ("pred_to_ref", "ref_to_pred")

    def __init__(self, pred_to_ref: np.ndarray, ref_to_pred: np.ndarray) -> None:
        self.pred_to_ref = pred_to_ref
        self.ref_to_pred = ref_to_pred


def surface_distances(maps: DistanceMaps) -> SurfaceDistances:
    """Nearest-surface distances both ways (see :class:`SurfaceDistances`)."""
    return SurfaceDistances(
        pred_to_ref=maps.pred_contour_to_ref, ref_to_pred=maps.ref_contour_to_pred
    )


def assd(sd: SurfaceDistances) -> float:
    """Average symmetric surface distance, pooled over both surfaces.

    Definition: (sum of pred->ref distances + sum of ref->pred distances) /
    (number of pred surface voxels + number of ref surface voxels). Units: those
    of the spacing (mm). Lower is better; 0 for identical masks. Reference:
    Heimann et al., IEEE TMI 28(8), 2009 (MICCAI 2007 liver challenge).
    """
    n = sd.pred_to_ref.size + sd.ref_to_pred.size
    return float((sd.pred_to_ref.sum() + sd.ref_to_pred.sum()) / n)


def hd_percentile(sd: SurfaceDistances, q: float = 95.0) -> float:
    """Percentile Hausdorff distance (HD95 by default).

    Definition: the larger of the two directed ``q``-th percentiles (numpy's
    linear interpolation) of the nearest-surface distances, as MONAI's
    ``compute_hausdorff_distance(percentile=95)`` and MetricsReloaded.
    Units: those of the spacing (mm). Lower is better. Reference: Huttenlocher
    et al., IEEE PAMI 15(9), 1993; Maier-Hein et al., Nat Methods 21, 2024.
    """
    return float(max(np.percentile(sd.pred_to_ref, q), np.percentile(sd.ref_to_pred, q)))


def normalized_surface_distance(sd: SurfaceDistances, tolerance: float) -> float:
    """Normalized surface distance (surface Dice) at a tolerance.

    Definition: the fraction of surface voxels of both masks that lie within
    ``tolerance`` (inclusive) of the other mask's surface:
    (|{d_pred->ref <= tol}| + |{d_ref->pred <= tol}|) / (n_pred + n_ref).
    Surface voxels are counted with equal weight (MetricsReloaded's voxel
    version, not the surface-element areas of the original). Unitless, in
    [0, 1]; higher is better. Reference: Nikolov et al., JMIR 23(7), 2021.
    """
    n = sd.pred_to_ref.size + sd.ref_to_pred.size
    within = int(np.count_nonzero(sd.pred_to_ref <= tolerance)) + int(
        np.count_nonzero(sd.ref_to_pred <= tolerance)
    )
    return float(within / n)
