"""Torch resampling against nnU-Net's own scipy/skimage path (an independent implementation)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg_to_shape

from cohort_sciseg.errors import SegmentationError
from cohort_sciseg.io import load_nifti
from cohort_sciseg.segment import EngineSettings, SegmentationEngine, resample_to_shape
from cohort_sciseg.segment.resample import with_resampling
from cohort_sciseg.segment.testing import make_tiny_model, textured_image

# (shape, new shape, spacing before, spacing after, order): non-cubic shapes, the anisotropic
# axis on each position (separate-z handling), up- and down-sampling, images (3) and logits (1)
CASES = [
    ((1, 19, 40, 33), (60, 28, 23), (7.5, 0.69, 0.69), (2.4, 1.0, 1.0), 3),  # axial: slow axis 0, upsampled
    ((2, 60, 28, 23), (19, 40, 33), (2.4, 1.0, 1.0), (7.5, 0.69, 0.69), 1),  # its logits back: slices dropped
    ((1, 30, 12, 34), (15, 36, 17), (0.5, 3.0, 0.5), (1.0, 1.0, 1.0), 3),  # sagittal-like: slow axis 1
    ((1, 21, 17, 9), (19, 15, 27), (0.9, 0.9, 3.3), (1.0, 1.0, 1.1), 3),  # slow axis 2
    ((1, 7, 8, 9), (9, 8, 7), (1.0, 1.1, 1.3), (0.8, 1.1, 1.7), 3),  # isotropic-ish: one 3D resize
    ((3, 9, 8, 7), (7, 8, 9), (0.8, 1.1, 1.7), (1.0, 1.1, 1.3), 1),
]


@pytest.mark.parametrize(("shape", "new", "before", "after", "order"), CASES)
def test_equals_nnunet_default_resampling(
    shape: tuple[int, ...], new: tuple[int, ...], before: tuple[float, ...], after: tuple[float, ...], order: int
) -> None:
    rng = np.random.default_rng(7)
    data = (rng.normal(size=shape) * 3 + 1).astype(np.float32)
    kwargs = {"is_seg": False, "order": order, "order_z": 0, "force_separate_z": None}
    expected = resample_data_or_seg_to_shape(data, new, before, after, **kwargs)
    got = resample_to_shape(data, new, before, after, **kwargs)
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.float32
    assert got.shape == expected.shape == (shape[0], *new)
    # float64 on both sides, float32 out: equal to the last bit but for rounding
    np.testing.assert_allclose(got, expected, rtol=0, atol=4e-6 * float(np.abs(expected).max()))


@pytest.mark.parametrize(
    ("shape", "args", "force", "order_z"),
    [
        ((1, 6, 20, 22), ((9, 25, 18), (3.0, 1.0, 1.0), (2.0, 0.8, 1.2)), True, 0),  # forced separate-z
        ((1, 6, 20, 22), ((9, 25, 18), (3.0, 1.0, 1.0), (2.0, 0.8, 1.2)), False, 0),  # forced 3D
        ((1, 5, 12, 14), ((11, 16, 10), (4.0, 1.0, 1.0), (1.8, 0.75, 1.4)), None, 1),  # interpolated across slices
    ],
    ids=["forced-separate-z", "forced-3d", "order-z-1"],
)
def test_nnunet_options_are_followed(
    shape: tuple[int, ...], args: tuple[object, ...], force: bool | None, order_z: int
) -> None:
    data = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    kwargs = {"is_seg": False, "order": 3, "order_z": order_z, "force_separate_z": force}
    expected = resample_data_or_seg_to_shape(data, *args, **kwargs)
    np.testing.assert_allclose(resample_to_shape(data, *args, **kwargs), expected, rtol=0, atol=1e-5)


def test_tensor_in_tensor_out_and_same_shape_is_untouched() -> None:
    import torch

    data = torch.from_numpy(np.random.default_rng(3).normal(size=(2, 6, 7, 8)).astype(np.float32))
    out = resample_to_shape(data, (3, 9, 8), (1.0, 1.0, 1.0), (2.0, 0.8, 1.0), order=1)
    assert isinstance(out, torch.Tensor)
    assert out.dtype == torch.float32
    assert tuple(out.shape) == (2, 3, 9, 8)
    same = np.zeros((1, 4, 5, 6), np.float32)
    assert resample_to_shape(same, (4, 5, 6), (1.0,) * 3, (1.0,) * 3) is same


def test_label_maps_and_bad_shapes_are_refused() -> None:
    data = np.zeros((1, 4, 5, 6), np.float32)
    with pytest.raises(NotImplementedError, match="label maps"):
        resample_to_shape(data, (2, 2, 2), (1.0,) * 3, (2.0,) * 3, is_seg=True)
    with pytest.raises(ValueError, match=r"expected \(c, x, y, z\)"):
        resample_to_shape(data[0], (2, 2, 2), (1.0,) * 3, (2.0,) * 3)


def test_with_resampling_swaps_only_nnunets_default_function(tiny_model: Path) -> None:
    engine = SegmentationEngine(model=str(tiny_model), device="cpu")
    base = engine.plans().configuration_manager
    assert with_resampling(base, "exact", device="cpu", threads=1) is base
    fast = with_resampling(base, "torch", device="cpu", threads=1)
    assert fast.resampling_fn_data.func is resample_to_shape
    assert fast.resampling_fn_probabilities.func is resample_to_shape
    assert fast.resampling_fn_data.keywords["order"] == base.configuration["resampling_fn_data_kwargs"]["order"]
    # plans naming another function keep it
    other = dict(base.configuration, resampling_fn_data="resample_torch_fornnunet",
                 resampling_fn_data_kwargs={"is_seg": False})
    kept = with_resampling(type(base)(other), "torch", device="cpu", threads=1)
    assert kept.resampling_fn_data.func.__name__ == "resample_torch_fornnunet"
    assert kept.resampling_fn_probabilities.func is resample_to_shape


def test_invalid_resampling_setting_is_a_clear_error() -> None:
    with pytest.raises(SegmentationError, match=r"resampling='fast' is not valid.*Fix: pass --resampling"):
        EngineSettings(resampling="fast")  # type: ignore[arg-type]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


@pytest.mark.parametrize(
    ("zooms", "shape"),
    [((3.0, 0.5, 0.5), (12, 64, 90)), ((0.7, 0.7, 5.0), (46, 46, 14)), ((0.9, 0.9, 0.9), (22, 33, 41))],
    ids=["site1-sagittal", "site2-axial", "site3-isotropic"],
)
def test_engine_masks_match_the_exact_path_on_each_site_style(
    tmp_path: Path, zooms: tuple[float, float, float], shape: tuple[int, int, int], fresh_cache: None
) -> None:
    """The synthetic cohort's three protocols: anisotropic both ways and isotropic, model at 1 mm."""
    model = make_tiny_model(tmp_path / "m", seed=3, head_bias=(-0.5, -2.0))
    path = tmp_path / "img.nii.gz"
    nib.save(nib.Nifti1Image(textured_image(shape, seed=5), np.diag([-zooms[0], zooms[1], zooms[2], 1.0])), path)
    masks = {}
    for mode in ("exact", "torch"):
        engine = SegmentationEngine(model=str(model), device="cpu", resampling=mode)
        masks[mode] = engine.predict_labels(load_nifti(path))
    exact, fast = masks["exact"], masks["torch"]
    assert (exact >= 1).any()
    assert (exact == 2).any()
    assert _dice(exact >= 1, fast >= 1) >= 0.995
    assert _dice(exact == 2, fast == 2) >= 0.995


def test_sidecars_record_the_resampling(
    tiny_model: Path, write_image: Callable[..., Path], tmp_path: Path, fresh_cache: None
) -> None:
    import json

    out = SegmentationEngine(model=str(tiny_model), device="cpu", resampling="torch").segment_file(
        write_image(), tmp_path / "x"
    )
    settings = json.loads(out.cord_sidecar.read_text())["GeneratedBy"][0]["Settings"]
    assert settings["resampling"] == "torch"


def test_cli_segment_resampling_option(
    tiny_model: Path, write_image: Callable[..., Path], tmp_path: Path, fresh_cache: None
) -> None:
    import json

    from cohort_sciseg.cli import main

    image = write_image("sub-04_T2w.nii.gz")
    assert main(["segment", str(image), "-o", str(tmp_path / "t"), "--model", str(tiny_model),
                 "--resampling", "torch"]) == 0
    settings = json.loads((tmp_path / "t_sc_seg.json").read_text())["GeneratedBy"][0]["Settings"]
    assert settings["resampling"] == "torch"


def test_cli_run_resampling_and_gpu_threads_reach_the_run_options() -> None:
    from cohort_sciseg.cli import RunCommand, _command, _parser, _segmenter_spec
    from cohort_sciseg.errors import CohortSciSegError

    ns = _parser().parse_args(["run", "bids", "-o", "out", "--resampling", "torch", "--gpu-worker-threads", "3"])
    command = _command(ns)
    assert isinstance(command, RunCommand)
    assert (command.resampling, command.gpu_worker_threads) == ("torch", 3)
    spec = _segmenter_spec("nnunet", None, ["tile_step_size=1.0", "resampling=torch"])
    assert spec.options_dict == {"resampling": "torch", "tile_step_size": 1.0}  # type: ignore[attr-defined]
    with pytest.raises(CohortSciSegError, match="given twice with different values"):
        _segmenter_spec("nnunet", None, ["resampling=exact", "resampling=torch"])
