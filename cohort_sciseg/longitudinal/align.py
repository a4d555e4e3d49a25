"""Register a follow-up session to its baseline within the spinal cord (SimpleITK).

Conventions
-----------
World coordinates are nibabel's RAS+ millimetres (``Volume.affine``); ITK's physical space is LPS+.
Images are handed to SimpleITK with their geometry built here from the affine (spacing = column
norms, direction = normalised columns, both flipped to LPS), so oblique and non-RPI grids keep their
exact position. :attr:`Alignment.matrix` maps a follow-up world point to the baseline world point of
the same tissue (RAS+ mm, 4 x 4).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import SimpleITK as sitk  # noqa: N813 (SimpleITK's own convention)
from scipy import ndimage
from scipy.spatial.transform import Rotation

from cohort_sciseg.errors import LongitudinalError, format_error
from cohort_sciseg.io import Volume, voxel_sizes

__all__ = [
    "DEFAULT_MARGIN_MM",
    "DEFAULT_MIN_CORD_DICE",
    "Alignment",
    "align_sessions",
    "resample_to_baseline",
]

logger = logging.getLogger(__name__)

#: Cord Dice (baseline vs aligned follow-up) below which an alignment is not trusted.
DEFAULT_MIN_CORD_DICE = 0.7
#: Tissue around the cord that the registration sees, mm.
DEFAULT_MARGIN_MM = 10.0

_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS (its own inverse)
_SEED = 20240130
_MIN_SAMPLES = 20_000  # small masks are sampled more densely, so that the metric is not noisy
_MAX_ITERATIONS = 500  # per resolution level; affine needs ~250 at full resolution
_TRANSFORMS = ("rigid", "affine")
_METRICS = ("mattes", "mean_squares")


@dataclass(frozen=True)
class Alignment:
    """Result of :func:`align_sessions`.

    Attributes
    ----------
    matrix
        4 x 4 affine mapping follow-up world (RAS+ mm) to baseline world (RAS+ mm). The identity
        when the registration could not run (see ``message``).
    rotation_deg
        Rotation part of ``matrix`` as extrinsic angles about the world x (R), y (A) and z (S) axes,
        degrees (``scipy`` ``Rotation.as_euler("xyz")``; the orthogonal polar factor for ``affine``).
    translation_mm
        Displacement that ``matrix`` applies at the follow-up cord centroid, RAS+ mm (the motion of
        the cord, independent of where the world origin lies).
    cord_dice
        Dice of the baseline cord and the follow-up cord resampled onto the baseline grid
        (nearest neighbour); 0 when it could not be computed. Higher is better.
    ok
        ``cord_dice >= min_cord_dice`` and the optimiser converged: the follow-up can be compared
        with the baseline voxel by voxel.
    message
        Why ``ok`` is False (what, value, expected, fix); None when ok.
    metric_value
        Final registration metric (Mattes mutual information is negative: lower is better);
        NaN when the registration did not run.
    iterations
        Optimiser iterations summed over the resolution levels.
    seconds
        Wall time of :func:`align_sessions`, s.
    transform
        ``"rigid"`` or ``"affine"``.
    stop_condition
        SimpleITK's description of why the optimiser stopped at the last level ("" when it did not run).
    """

    matrix: np.ndarray
    rotation_deg: tuple[float, float, float]
    translation_mm: tuple[float, float, float]
    cord_dice: float
    ok: bool
    message: str | None
    metric_value: float
    iterations: int
    seconds: float
    transform: str = "rigid"
    stop_condition: str = field(default="", repr=False)


def _to_sitk(data: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """SimpleITK image of ``data`` (array axes i, j, k) placed by the RAS+ ``affine``."""
    aff = np.asarray(affine, dtype=np.float64)
    lps = _LPS @ aff
    spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    direction = lps[:3, :3] / spacing
    # SimpleITK reads numpy arrays as (k, j, i): transpose so that ITK index (i, j, k) = data[i, j, k]
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(data, (2, 1, 0))))
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetDirection(tuple(float(d) for d in direction.ravel()))
    img.SetOrigin(tuple(float(o) for o in lps[:3, 3]))
    return img


def _transform_matrix(tx: sitk.Transform) -> np.ndarray:
    """4 x 4 matrix of an affine ITK transform (probed at four points, so any affine kind works)."""
    pts = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    out = np.array([tx.TransformPoint(tuple(p)) for p in pts])
    m = np.eye(4)
    m[:3, 3] = out[0]
    m[:3, :3] = (out[1:] - out[0]).T
    return m


def _dilate_mm(mask: np.ndarray, vox: tuple[float, float, float], margin_mm: float) -> tuple[np.ndarray, tuple[slice, ...]]:
    """``mask`` grown by ``margin_mm`` (Euclidean, physical), cropped to its bounding box.

    Returns the grown mask within the box and the box (slices into the full grid).
    """
    idx = np.argwhere(mask)
    pad = [int(np.ceil(margin_mm / v)) + 1 for v in vox]
    lo = [max(int(idx[:, a].min()) - pad[a], 0) for a in range(3)]
    hi = [min(int(idx[:, a].max()) + pad[a] + 1, mask.shape[a]) for a in range(3)]
    box = tuple(slice(lo[a], hi[a]) for a in range(3))
    sub = mask[box]
    if margin_mm > 0:
        grown = ndimage.distance_transform_edt(~sub, sampling=vox) <= margin_mm
    else:
        grown = sub.copy()
    return grown, box


def _box_affine(affine: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    shifted = np.asarray(affine, dtype=np.float64).copy()
    shifted[:3, 3] = affine[:3, :3] @ np.array([s.start for s in box], dtype=np.float64) + affine[:3, 3]
    return shifted


def resample_to_baseline(
    mask_or_labels: np.ndarray,
    followup_affine: np.ndarray,
    alignment: Alignment | np.ndarray,
    baseline_shape: tuple[int, ...],
    baseline_affine: np.ndarray,
) -> np.ndarray:
    """Bring a follow-up mask or label map onto the baseline grid (nearest neighbour).

    Parameters
    ----------
    mask_or_labels
        Array on the follow-up grid (bool, integer labels or floats; the dtype is kept).
    followup_affine, baseline_affine
        Voxel-to-world affines (RAS+ mm) of the two grids.
    alignment
        The :class:`Alignment` (or its ``matrix``: follow-up world -> baseline world).
    baseline_shape
        Shape of the baseline grid.

    Returns
    -------
    numpy.ndarray
        Array of ``baseline_shape`` and the input dtype; 0 outside the follow-up field of view.
    """
    matrix = alignment.matrix if isinstance(alignment, Alignment) else np.asarray(alignment, dtype=np.float64)
    src = np.asarray(mask_or_labels)
    if src.ndim != 3:
        msg = format_error(
            f"mask has {src.ndim} dimensions (shape {src.shape!r})", expected="a 3D mask or label map",
            fix="pass one 3D volume at a time",
        )
        raise LongitudinalError(msg)
    # baseline voxel -> baseline world -> follow-up world -> follow-up voxel
    vox = np.linalg.inv(followup_affine) @ np.linalg.inv(matrix) @ np.asarray(baseline_affine, dtype=np.float64)
    work = src.view(np.uint8) if src.dtype == np.bool_ else src
    out = ndimage.affine_transform(
        work, vox[:3, :3], offset=vox[:3, 3], output_shape=tuple(int(n) for n in baseline_shape[:3]),
        order=0, mode="constant", cval=0, prefilter=False,
    )
    return out.astype(np.bool_) if src.dtype == np.bool_ else out


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int(np.logical_and(a, b).sum()) / total if total else 0.0


@dataclass(frozen=True)
class _Context:
    """What every alignment result of one call shares."""

    scan_id: str | None
    transform: str
    t0: float

    def failed(self, what: str, *, expected: str, fix: str, partial: Alignment | None = None) -> Alignment:
        """A not-ok alignment: ``partial`` holds what the registration gave, when it ran."""
        msg = format_error(what, scan_id=self.scan_id, expected=expected, fix=fix)
        logger.info("alignment not ok: %s", msg)
        seconds = time.perf_counter() - self.t0
        if partial is not None:
            return replace(partial, ok=False, message=msg, seconds=seconds)
        nan3 = (float("nan"), float("nan"), float("nan"))
        return Alignment(np.eye(4), nan3, nan3, 0.0, False, msg, float("nan"), 0, seconds, self.transform)


def _angles(matrix: np.ndarray) -> tuple[float, float, float]:
    u, _, vt = np.linalg.svd(matrix[:3, :3])
    rot = u @ vt
    if np.linalg.det(rot) < 0:  # a reflection cannot be a rotation: report the nearest one
        u[:, -1] *= -1
        rot = u @ vt
    a = Rotation.from_matrix(rot).as_euler("xyz", degrees=True)
    return (float(a[0]), float(a[1]), float(a[2]))


def _check_options(
    transform: str, metric: str, min_cord_dice: float, margin_mm: float, threads: int, sampling: float
) -> None:
    problems = []
    if transform not in _TRANSFORMS:
        problems.append((f"transform={transform!r}", f"one of {_TRANSFORMS!r}"))
    if metric not in _METRICS:
        problems.append((f"metric={metric!r}", f"one of {_METRICS!r}"))
    if not 0.0 <= min_cord_dice <= 1.0:
        problems.append((f"min_cord_dice={min_cord_dice!r}", "a number in [0, 1]"))
    if not (np.isfinite(margin_mm) and margin_mm >= 0):
        problems.append((f"margin_mm={margin_mm!r}", "a finite number >= 0"))
    if not 0.0 < sampling <= 1.0:
        problems.append((f"sampling={sampling!r}", "a fraction in (0, 1]"))
    if threads < 1:
        problems.append((f"threads={threads!r}", "an integer >= 1"))
    if problems:
        what, expected = problems[0]
        msg = format_error(f"invalid option {what}", expected=expected, fix="pass a valid value")
        raise LongitudinalError(msg)


def _registration(metric: str, threads: int, levels: int, sampling: float) -> sitk.ImageRegistrationMethod:
    reg = sitk.ImageRegistrationMethod()
    if metric == "mattes":
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    else:
        reg.SetMetricAsMeanSquares()
    # a fixed seed makes the random sample, hence the result, reproducible
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(sampling, _SEED)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-4, numberOfIterations=_MAX_ITERATIONS, relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-6,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    factors = [2**i for i in reversed(range(levels))]
    reg.SetShrinkFactorsPerLevel(factors)
    reg.SetSmoothingSigmasPerLevel([float(f) if f > 1 else 0.0 for f in factors])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetNumberOfThreads(threads)
    return reg


def align_sessions(
    baseline: Volume,
    baseline_cord: np.ndarray,
    followup: Volume,
    followup_cord: np.ndarray,
    *,
    transform: Literal["rigid", "affine"] = "rigid",
    metric: Literal["mattes", "mean_squares"] = "mattes",
    min_cord_dice: float = DEFAULT_MIN_CORD_DICE,
    margin_mm: float = DEFAULT_MARGIN_MM,
    threads: int = 1,
    sampling: float = 0.1,
    scan_id: str | None = None,
) -> Alignment:
    """Register ``followup`` to ``baseline`` within the cord and check the result (:func:`_align_once`).

    With ``metric="mattes"``, a result that fails its check (no convergence, low cord Dice) is
    tried again with mean squares (same contrast between sessions is the usual case), and the
    better of the two is kept (passing first, then the higher cord Dice): on thick-slice axial
    images (0.7 x 0.7 x 5 mm) Mattes mutual information can wander off where mean squares
    converges. The parameters, the result and the errors are those of :func:`_align_once`.
    """
    args = (baseline, baseline_cord, followup, followup_cord)
    kw = {"transform": transform, "min_cord_dice": min_cord_dice, "margin_mm": margin_mm, "threads": threads,
          "sampling": sampling, "scan_id": scan_id}
    result = _align_once(*args, metric=metric, **kw)  # type: ignore[arg-type]
    if metric != "mattes" or result.ok or result.iterations == 0:  # passed, or a data problem
        return result
    other = _align_once(*args, metric="mean_squares", **kw)  # type: ignore[arg-type]
    if other.ok or other.cord_dice > result.cord_dice:
        return replace(other, seconds=result.seconds + other.seconds)
    return replace(result, seconds=result.seconds + other.seconds)


def _align_once(
    baseline: Volume,
    baseline_cord: np.ndarray,
    followup: Volume,
    followup_cord: np.ndarray,
    *,
    transform: Literal["rigid", "affine"] = "rigid",
    metric: Literal["mattes", "mean_squares"] = "mattes",
    min_cord_dice: float = DEFAULT_MIN_CORD_DICE,
    margin_mm: float = DEFAULT_MARGIN_MM,
    threads: int = 1,
    sampling: float = 0.1,
    scan_id: str | None = None,
) -> Alignment:
    """Register ``followup`` to ``baseline`` within the cord and check the result.

    Both images are cropped to their cord mask grown by ``margin_mm``; the registration samples only
    there (fixed and moving masks). It starts from the transform that superimposes the cords'
    centres of mass (``CenteredTransformInitializer``, ``MOMENTS``), then optimises Mattes mutual
    information (or mean squares) with regular-step gradient descent over 2-3 resolution levels
    (SimpleITK), sampling ``sampling`` of the masked voxels with a fixed seed. ``ok`` needs the
    optimiser to stop on a small step (not on its iteration limit) and the cord Dice.

    Parameters
    ----------
    baseline, followup
        The two images (any orientation, oblique allowed; RAS+ affines).
    baseline_cord, followup_cord
        Cord masks on the grid of the matching image (nonzero = cord).
    transform
        ``"rigid"`` (Euler3D: 3 rotations + 3 translations) or ``"affine"`` (12 parameters).
    metric
        ``"mattes"`` (mutual information; robust to scanner gain between sessions) or
        ``"mean_squares"`` (same contrast and intensity scale).
    min_cord_dice
        Cord Dice below which the alignment is flagged not ok.
    margin_mm
        Tissue around each cord that the registration sees, mm.
    threads
        SimpleITK threads of the registration (results are reproducible to rounding, ~1e-15).
    sampling
        Fraction of the masked baseline voxels sampled by the metric, (0, 1]; at least 20,000
        samples (or every voxel) are taken.
    scan_id
        The follow-up scan, quoted in messages.

    Returns
    -------
    Alignment
        Never raises for a data problem (empty cord, mismatched mask, SimpleITK failure): the
        alignment comes back with ``ok=False`` and a ``message``. Invalid options raise
        :class:`LongitudinalError`.
    """
    t0 = time.perf_counter()
    _check_options(transform, metric, min_cord_dice, margin_mm, threads, sampling)
    ctx = _Context(scan_id, transform, t0)
    for name, vol, cord in (("baseline", baseline, baseline_cord), ("follow-up", followup, followup_cord)):
        if np.shape(cord)[:3] != vol.shape[:3]:
            return ctx.failed(f"{name} cord mask has shape {np.shape(cord)!r}, its image {vol.shape!r}",
                              expected="a cord mask on the image's grid",
                              fix=f"pass the cord segmentation of the {name} image")
        if not np.any(cord):
            return ctx.failed(f"{name} cord mask is empty", expected="a non-empty cord segmentation",
                              fix=f"check the {name} segmentation (QC report) and segment the scan again")
    b_cord, f_cord = np.asarray(baseline_cord) > 0, np.asarray(followup_cord) > 0
    b_vox, f_vox = voxel_sizes(baseline.affine), voxel_sizes(followup.affine)
    b_mask, b_box = _dilate_mm(b_cord, b_vox, margin_mm)
    f_mask, f_box = _dilate_mm(f_cord, f_vox, margin_mm)
    levels = 3 if min(min(b_mask.shape), min(f_mask.shape)) >= 32 else 2
    fraction = min(1.0, max(sampling, _MIN_SAMPLES / max(int(b_mask.sum()), 1)))
    reg = _registration(metric, threads, levels, fraction)
    n_iter = [0]
    reg.AddCommand(sitk.sitkIterationEvent, lambda: n_iter.__setitem__(0, n_iter[0] + 1))
    try:
        b_aff, f_aff = _box_affine(baseline.affine, b_box), _box_affine(followup.affine, f_box)
        fixed = _to_sitk(np.asarray(baseline.data[b_box], dtype=np.float32), b_aff)
        moving = _to_sitk(np.asarray(followup.data[f_box], dtype=np.float32), f_aff)
        fixed_mask = _to_sitk(b_mask.astype(np.uint8), b_aff)
        moving_mask = _to_sitk(f_mask.astype(np.uint8), f_aff)
        init_type = sitk.Euler3DTransform() if transform == "rigid" else sitk.AffineTransform(3)
        init = sitk.CenteredTransformInitializer(
            _to_sitk(b_cord[b_box].astype(np.float32), b_aff), _to_sitk(f_cord[f_box].astype(np.float32), f_aff),
            init_type, sitk.CenteredTransformInitializerFilter.MOMENTS,
        )
        reg.SetMetricFixedMask(fixed_mask)
        reg.SetMetricMovingMask(moving_mask)
        reg.SetInitialTransform(init, inPlace=False)
        out = reg.Execute(fixed, moving)
    except RuntimeError as exc:  # SimpleITK reports every ITK exception as RuntimeError
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        return ctx.failed(f"SimpleITK registration failed ({first})",
                          expected="overlapping cord regions of the same contrast",
                          fix="check both cord masks and images in the QC report; "
                          "try transform='rigid' or a larger margin_mm")
    # ITK's transform maps fixed (baseline) LPS points to moving (follow-up) LPS points
    matrix = _LPS @ np.linalg.inv(_transform_matrix(out)) @ _LPS
    stop = reg.GetOptimizerStopConditionDescription()
    converged = "maximum number of iterations" not in stop.lower()
    resampled = resample_to_baseline(f_cord, followup.affine, matrix, baseline.shape, baseline.affine)
    dice = _dice(b_cord, resampled)
    centroid = followup.affine @ np.append(np.argwhere(f_cord).mean(axis=0), 1.0)
    trans = (matrix @ centroid - centroid)[:3]
    result = Alignment(
        matrix, _angles(matrix), (float(trans[0]), float(trans[1]), float(trans[2])), dice, True, None,
        float(reg.GetMetricValue()), n_iter[0], time.perf_counter() - t0, transform, stop,
    )
    if not converged:
        return ctx.failed(f"the optimiser did not converge ({stop.strip()})",
                          expected=f"convergence within {_MAX_ITERATIONS} iterations per level",
                          fix="check the images for motion artefacts or a different field of view; "
                          "try a larger margin_mm", partial=result)
    if dice < min_cord_dice:
        return ctx.failed(f"cord Dice after alignment is {dice:.3f}", expected=f">= {min_cord_dice}",
                          fix="check both cord segmentations and that the two images show the same cord levels",
                          partial=result)
    return result
