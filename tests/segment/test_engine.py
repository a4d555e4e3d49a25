"""The engine: SCT's inference path, orientation invariance, cache, outputs, sidecars, CLI."""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cohort_sciseg.cli import SegmentCommand, main
from cohort_sciseg.errors import NiftiError, SegmentationError
from cohort_sciseg.io import load_nifti, orientation_code, reorient
from cohort_sciseg.segment import (
    EngineSettings,
    PostprocessOptions,
    SegmentationEngine,
    cache_info,
    segment_image,
)
from cohort_sciseg.segment.testing import make_tiny_model

# ------------------------------------------------------------------------------- orientation


def _save_reoriented(src: Path, code: str, dest: Path) -> Path:
    vol = load_nifti(src)
    data, affine = reorient(vol.data, vol.affine, code)
    img = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    img.set_qform(affine, code=1)
    nib.save(img, dest)
    return dest


def _in_rpi(path: Path) -> np.ndarray:
    vol = load_nifti(path)
    return reorient(vol.data, vol.affine, "RPI")[0]


def test_same_masks_for_every_input_orientation(
    tiny_model: Path, write_image: Callable[..., Path], tmp_path: Path, fresh_cache: None
) -> None:
    rpi = write_image("rpi.nii.gz")
    engine = SegmentationEngine(model=str(tiny_model))
    ref = engine.segment_file(rpi)
    ref_cord, ref_lesion = _in_rpi(ref.cord), _in_rpi(ref.lesion)
    assert 0.05 < ref_cord.mean() < 0.95
    assert ref_lesion.any()
    for code in ("PSR", "LAS", "AIL"):
        path = _save_reoriented(rpi, code, tmp_path / f"{code}.nii.gz")
        assert orientation_code(load_nifti(path).affine) == code
        out = engine.segment_file(path)
        assert load_nifti(out.cord).data.shape == load_nifti(path).data.shape
        assert np.array_equal(_in_rpi(out.cord), ref_cord), code
        assert np.array_equal(_in_rpi(out.lesion), ref_lesion), code
    assert cache_info()["loads"] == 1


def test_model_orientation_is_honoured(write_image: Callable[..., Path], tmp_path: Path, fresh_cache: None) -> None:
    """A model trained in LPI receives the image flipped left-right, an RPI model does not."""
    lpi_model = make_tiny_model(tmp_path / "lpi", image_orientation="LPI")
    rpi_model = make_tiny_model(tmp_path / "rpi", image_orientation="RPI")
    rpi = load_nifti(write_image("rpi.nii.gz"))
    flipped = nib.Nifti1Image(np.ascontiguousarray(rpi.data[::-1]), rpi.affine)
    nib.save(flipped, tmp_path / "flipped.nii.gz")
    # Both networks receive the same array: the LPI view of the RPI image is the flipped data.
    a = SegmentationEngine(model=str(lpi_model)).segment_volume(rpi)
    b = SegmentationEngine(model=str(rpi_model)).segment_volume(load_nifti(tmp_path / "flipped.nii.gz"))
    assert np.array_equal(a.label_map, b.label_map[::-1])
    assert not np.array_equal(a.label_map, b.label_map)


# ------------------------------------------------------------------------------------ outputs


def test_outputs_keep_the_input_header_and_sidecars_record_provenance(
    tiny_model: Path, write_image: Callable[..., Path], tmp_path: Path, fresh_cache: None
) -> None:
    # Oblique, with different qform and sform (codes 1 and 2): both kept as they are.
    theta = np.deg2rad(7.0)
    rot = np.array([[1, 0, 0], [0, np.cos(theta), -np.sin(theta)], [0, np.sin(theta), np.cos(theta)]])
    sform = np.eye(4)
    sform[:3, :3] = rot @ np.diag([-0.8, 1.0, 1.3])
    sform[:3, 3] = (5, 6, 7)
    path = tmp_path / "oblique.nii.gz"
    img = nib.Nifti1Image(np.asarray(nib.load(write_image()).dataobj), sform)
    img.set_sform(sform, code=2)
    qform = sform.copy()
    qform[:3, 3] = (5.5, 6, 7)
    img.set_qform(qform, code=1)
    nib.save(img, path)

    post = PostprocessOptions(keep_largest_cord=True)
    out = segment_image(path, tmp_path / "out" / "sub-01", model=tiny_model, postprocessing=post)
    assert out.cord == tmp_path / "out" / "sub-01_sc_seg.nii.gz"
    assert out.lesion == tmp_path / "out" / "sub-01_lesion_seg.nii.gz"
    src = nib.load(path)
    for mask in (out.cord, out.lesion):
        got = nib.load(mask)
        assert got.get_data_dtype() == np.uint8
        assert got.shape == src.shape
        assert np.array_equal(got.affine, src.affine)
        assert np.allclose(got.get_sform(), src.get_sform())
        assert np.allclose(got.get_qform(), src.get_qform())
        assert int(got.header["sform_code"]) == 2
        assert int(got.header["qform_code"]) == 1
        assert got.header.get_zooms() == src.header.get_zooms()
        assert set(np.unique(np.asarray(got.dataobj))) <= {0, 1}
    sidecar = json.loads(out.cord_sidecar.read_text())
    assert out.cord_sidecar.name == "sub-01_sc_seg.json"
    assert out.lesion_sidecar.name == "sub-01_lesion_seg.json"
    entry = sidecar["GeneratedBy"][0]
    assert entry["Name"] == "cohort-sciseg"
    assert entry["ModelName"] == "tiny-regions-seed0"
    assert entry["ModelIntegrity"] == "verified"
    assert len(entry["ModelChecksum"]) == 64
    assert "ModelFiles" not in entry
    assert {"CodeURL", "Version"} <= set(entry)
    settings = entry["Settings"]
    assert settings["tile_step_size"] == 0.5
    assert settings["tta"] is False
    assert settings["folds"] == ["0"]
    assert settings["checkpoint"] == ["checkpoint_final.pth"]
    assert settings["device"] in ("cpu", "cuda")
    assert settings["postprocessing"]["keep_largest_cord"] is True
    # Lesion inside the cord (cord = label >= 1), as SCT.
    cord = np.asarray(nib.load(out.cord).dataobj)
    lesion = np.asarray(nib.load(out.lesion).dataobj)
    assert lesion.any()
    no_post = segment_image(path, tmp_path / "raw", model=tiny_model)
    raw_cord = np.asarray(nib.load(no_post.cord).dataobj)
    assert not (lesion & ~raw_cord).any()
    assert (cord <= raw_cord).all()


def test_default_prefix_is_the_image_path_without_extension(
    tiny_model: Path, write_image: Callable[..., Path], fresh_cache: None
) -> None:
    image = write_image("sub-02_T2w.nii.gz")
    out = segment_image(image, model=tiny_model)
    assert out.cord == image.with_name("sub-02_T2w_sc_seg.nii.gz")
    assert out.lesion.is_file()
    assert out.lesion_sidecar.is_file()
    assert not list(image.parent.glob(".*tmp*"))  # atomic writes leave no temporary file


def test_unverified_model_checksums_go_into_the_sidecar(
    write_image: Callable[..., Path], tmp_path: Path, fresh_cache: None
) -> None:
    model = make_tiny_model(tmp_path / "m", manifest=False)
    out = segment_image(write_image(), tmp_path / "x", model=model)
    entry = json.loads(out.lesion_sidecar.read_text())["GeneratedBy"][0]
    assert entry["ModelIntegrity"] == "unverified"
    assert set(entry["ModelFiles"]) == {
        "nnUNetTrainer__nnUNetPlans__3d_fullres/dataset.json",
        "nnUNetTrainer__nnUNetPlans__3d_fullres/plans.json",
        "nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0/checkpoint_final.pth",
    }


def test_plain_label_layout_runs(write_image: Callable[..., Path], tmp_path: Path, fresh_cache: None) -> None:
    model = make_tiny_model(tmp_path / "m", layout="labels")
    result = SegmentationEngine(model=str(model)).segment_volume(load_nifti(write_image()))
    assert set(np.unique(result.label_map)) <= {0, 1, 2}
    assert np.array_equal(result.cord, result.label_map >= 1)
    assert np.array_equal(result.lesion, result.label_map == 2)


def test_ensemble_of_folds_differs_from_one_fold(
    write_image: Callable[..., Path], tmp_path: Path, fresh_cache: None
) -> None:
    model = make_tiny_model(tmp_path / "m", folds=(0, 1))
    vol = load_nifti(write_image())
    both = SegmentationEngine(model=str(model)).predict_labels(vol)
    one = SegmentationEngine(model=str(model), folds=("0",)).predict_labels(vol)
    assert both.shape == one.shape == vol.shape
    assert not np.array_equal(both, one)
    assert cache_info()["loads"] == 2


# --------------------------------------------------------------------------------- the cache


def test_predictor_loaded_once_and_reused_across_scans(
    tiny_model: Path, write_image: Callable[..., Path], fresh_cache: None
) -> None:
    images = [write_image(f"s{i}.nii.gz", seed=i, shape=(22 + i, 24, 20)) for i in range(3)]
    for image in images:
        SegmentationEngine(model=str(tiny_model)).segment_file(image)  # a new engine each time
    assert cache_info()["loads"] == 1
    # Other settings are another predictor; the LRU keeps two.
    SegmentationEngine(model=str(tiny_model), tile_step_size=1.0).predict_labels(load_nifti(images[0]))
    SegmentationEngine(model=str(tiny_model), tta=True).predict_labels(load_nifti(images[0]))
    assert cache_info()["loads"] == 3
    assert cache_info()["size"] == 2
    SegmentationEngine(model=str(tiny_model)).predict_labels(load_nifti(images[0]))
    assert cache_info()["loads"] == 4  # the first was evicted


def test_engine_refuses_pickling_but_settings_travel(tiny_model: Path) -> None:
    engine = SegmentationEngine(model=str(tiny_model))
    with pytest.raises(SegmentationError, match=r"cannot be pickled.*Fix: send engine.settings"):
        pickle.dumps(engine)
    settings = pickle.loads(pickle.dumps(engine.settings))
    assert settings == engine.settings
    assert SegmentationEngine(settings).key == engine.key


def test_tta_and_tile_step_are_applied(
    tiny_model: Path, write_image: Callable[..., Path], fresh_cache: None
) -> None:
    vol = load_nifti(write_image(shape=(24, 26, 20)))  # one tile: TTA costs 8 passes
    base = SegmentationEngine(model=str(tiny_model)).predict_labels(vol)
    tta = SegmentationEngine(model=str(tiny_model), tta=True).predict_labels(vol)
    assert tta.shape == base.shape
    assert not np.array_equal(tta, base)  # mirroring averages 8 flipped predictions


# ---------------------------------------------------------------------------- bad inputs/options


def test_corrupt_image_names_the_file(tiny_model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(NiftiError, match=r"broken.nii.gz"):
        segment_image(bad, model=tiny_model)
    four_d = tmp_path / "fmri.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8, 3), np.float32), np.eye(4)), four_d)
    with pytest.raises(NiftiError, match=r"fmri.nii.gz.*4D with 3 frames"):
        segment_image(four_d, model=tiny_model)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tile_step_size": 1.5}, r"tile_step_size=1.5 is not valid"),
        ({"tile_step_size": 0.0}, r"tile_step_size=0.0 is not valid"),
        ({"device": "tpu"}, r"device='tpu' is not valid"),
        ({"threads": 0}, r"threads=0 is not valid"),
    ],
)
def test_invalid_settings(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(SegmentationError, match=match):
        EngineSettings(**kwargs)  # type: ignore[arg-type]


def test_cuda_requested_without_a_gpu(
    tiny_model: Path, write_image: Callable[..., Path], tmp_path: Path, fresh_cache: None
) -> None:
    """The model's device is checked when the network loads, not before.

    A CPU-only worker of a GPU run (``device=cuda``) prepares and finishes scans; only
    running the model there is an error.
    """
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    engine = SegmentationEngine(model=str(tiny_model), device="cuda")
    prepared = engine.prepare_file(write_image())  # CPU stage: works without a GPU
    assert prepared.data is not None
    assert cache_info()["loads"] == 0  # no network was unpickled to prepare
    with pytest.raises(SegmentationError, match=r"device 'cuda' requested.*Fix: use --device cpu"):
        engine.infer(prepared)
    with pytest.raises(SegmentationError, match=r"device 'cuda' requested"):
        engine.segment_file(write_image("b.nii.gz"), tmp_path / "b")


def test_nnunet_prints_do_not_reach_the_terminal(
    tiny_model: Path, write_image: Callable[..., Path], fresh_cache: None, capfd: pytest.CaptureFixture[str]
) -> None:
    SegmentationEngine(model=str(tiny_model), threads=1).segment_file(write_image())
    captured = capfd.readouterr()
    assert "perform_everything_on_device" not in captured.out + captured.err
    assert captured.out == ""


# ----------------------------------------------------------------------------------------- CLI


def test_cli_segment_in_process(
    tiny_model: Path, write_image: Callable[..., Path], tmp_path: Path, fresh_cache: None
) -> None:
    image = write_image("sub-03_T2w.nii.gz")
    out = io.StringIO()
    rc = SegmentCommand(image=image, model=str(tiny_model), fill_holes="slice", keep_largest_cord=True,
                        remove_small=1.0, threads=1).run(out)
    assert rc == 0
    text = out.getvalue()
    assert "tiny-regions-seed0 (verified" in text
    assert f"cord mask: {image.with_name('sub-03_T2w_sc_seg.nii.gz')}" in text
    settings = json.loads(image.with_name("sub-03_T2w_sc_seg.json").read_text())["GeneratedBy"][0]["Settings"]
    assert settings["postprocessing"] == {
        "keep_largest_cord": True, "fill_holes": "slice", "remove_small_mm3": 1.0, "remove_small_lesion_mm3": None,
    }
    assert settings["threads"] == 1


def test_cli_main_parses_options_and_reports_errors(
    tiny_model: Path, write_image: Callable[..., Path], tmp_path: Path, fresh_cache: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = write_image()
    rc = main(["segment", str(image), "-o", str(tmp_path / "p"), "--model", str(tiny_model), "--folds", "0",
               "--checkpoint", "final", "--device", "cpu", "--tile-step-size", "1.0", "--fill-holes"])
    assert rc == 0
    entry = json.loads((tmp_path / "p_lesion_seg.json").read_text())["GeneratedBy"][0]
    assert entry["Settings"]["tile_step_size"] == 1.0
    assert entry["Settings"]["postprocessing"]["fill_holes"] == "3d"
    rc = main(["segment", str(image), "--model", str(tmp_path / "missing")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "cohort-sciseg segment: error:" in err
    assert "model folder not found" in err


# ------------------------------------------------------------ model-recommended post-processing


def _model_recommending(tmp_path: Path, value: object) -> Path:
    """A tiny model whose model.json recommends ``value`` as post-processing."""
    from cohort_sciseg.segment.manifest import write_manifest

    model = make_tiny_model(tmp_path / "recommends", seed=0)
    manifest = json.loads((model / "model.json").read_text())
    extra = {k: v for k, v in manifest.items() if k not in ("name", "version", "files", "format")}
    write_manifest(model, name=manifest["name"], version=manifest.get("version", ""),
                   extra={**extra, "postprocessing": value})
    return model


def test_model_recommended_postprocessing_applies_unless_the_user_chooses(
    tmp_path: Path, fresh_cache: None
) -> None:
    model = _model_recommending(tmp_path, {"keep_largest_cord": True})
    engine = SegmentationEngine(EngineSettings(model=str(model), device="cpu"))
    # two cord blobs and a lesion in the smaller one: the cord keeps its largest part only
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:12, 2:12, 2:12] = 1
    labels[15:18, 15:18, 15:18] = 1
    labels[16, 16, 16] = 2
    affine = np.eye(4)
    recommended = engine.masks_from_labels(labels, affine, None)
    assert recommended.cord.sum() == 1000
    assert recommended.lesion.sum() == 1  # lesions are never removed
    raw = engine.masks_from_labels(labels, affine, PostprocessOptions())  # --no-postprocessing
    assert raw.cord.sum() == 1000 + 27
    assert engine.settings_record()["postprocessing_source"] == "model"
    assert engine.settings_record()["postprocessing"]["keep_largest_cord"] is True
    user = engine.settings_record(PostprocessOptions(fill_holes="3d"))
    assert user["postprocessing_source"] == "user"
    assert user["postprocessing"]["keep_largest_cord"] is False


def test_model_without_recommendation_is_raw_as_sct(tiny_model: Path, fresh_cache: None) -> None:
    engine = SegmentationEngine(EngineSettings(model=str(tiny_model), device="cpu"))
    record = engine.settings_record()
    assert record["postprocessing_source"] == "none"
    assert not any(record["postprocessing"].values())


def test_invalid_recommended_postprocessing_is_a_clear_error(tmp_path: Path, fresh_cache: None) -> None:
    model = _model_recommending(tmp_path, {"keep_biggest": True})
    engine = SegmentationEngine(EngineSettings(model=str(model), device="cpu"))
    with pytest.raises(SegmentationError, match="recommended post-processing is not valid"):
        engine.settings_record()


def test_cli_segment_reports_and_overrides_the_model_recommendation(
    tmp_path: Path, write_image: Callable[..., Path], fresh_cache: None
) -> None:
    model = _model_recommending(tmp_path, {"keep_largest_cord": True})
    image = write_image("sub-04_T2w.nii.gz")
    out = io.StringIO()
    assert SegmentCommand(image=image, model=str(model), threads=1).run(out) == 0
    assert "post-processing: keep_largest_cord (model)" in out.getvalue()
    sidecar = image.with_name("sub-04_T2w_sc_seg.json")
    settings = json.loads(sidecar.read_text())["GeneratedBy"][0]["Settings"]
    assert settings["postprocessing"]["keep_largest_cord"] is True
    out = io.StringIO()
    assert SegmentCommand(image=image, model=str(model), threads=1, no_postprocessing=True).run(out) == 0
    assert "post-processing: none (user)" in out.getvalue()
    settings = json.loads(sidecar.read_text())["GeneratedBy"][0]["Settings"]
    assert settings["postprocessing"]["keep_largest_cord"] is False


def test_engine_setting_turns_the_recommendation_off(tmp_path: Path, fresh_cache: None) -> None:
    model = _model_recommending(tmp_path, {"keep_largest_cord": True})
    engine = SegmentationEngine(EngineSettings(model=str(model), device="cpu", postprocessing="none"))
    record = engine.settings_record()
    assert record["postprocessing"]["keep_largest_cord"] is False
    assert record["postprocessing_source"] == "user"
    with pytest.raises(SegmentationError, match="postprocessing='raw' is not valid"):
        EngineSettings(postprocessing="raw")  # type: ignore[arg-type]


def test_cli_no_postprocessing_with_options_is_a_clear_error(
    tiny_model: Path, write_image: Callable[..., Path], tmp_path: Path, fresh_cache: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = write_image()
    rc = main(["segment", str(image), "-o", str(tmp_path / "p"), "--model", str(tiny_model),
               "--no-postprocessing", "--keep-largest-cord"])
    assert rc != 0
    assert "--no-postprocessing was given with post-processing options" in capsys.readouterr().err
    assert not (tmp_path / "p_sc_seg.nii.gz").exists()
