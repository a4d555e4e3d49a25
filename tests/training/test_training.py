"""Tests of the demo-model training (cohort_sciseg.training).

Fast tests cover the pure parts (label map, dataset.json, plans reduction, export,
lesion gate, evaluation summary) and the evaluation through the inference engine on
a tiny model; one slow test trains a model from scratch with ``--quick`` and checks
that nnU-Net loads it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cohort_sciseg import training as train
from cohort_sciseg.errors import SegmentationError, ValidationError
from cohort_sciseg.io import Volume
from cohort_sciseg.segment import SegmentationEngine
from cohort_sciseg.segment.loading import load_network_weights
from cohort_sciseg.segment.manifest import check_manifest
from cohort_sciseg.segment.testing import make_tiny_model, textured_image
from cohort_sciseg.training.data import _crop_to_cord
from cohort_sciseg.training.evaluation import _case_row
from cohort_sciseg.validation.metrics import dice

# ----------------------------------------------------------------------------- label map


def test_label_map_is_sciseg_layout() -> None:
    cord = np.zeros((7, 8, 9), bool)
    cord[2:5, 2:6, :] = True
    lesion = np.zeros_like(cord)
    lesion[3, 3, 4:6] = True
    lesion[0, 0, 0] = True  # outside the cord: still lesion (sc = [1, 2])
    out = train.label_map(cord, lesion)
    assert out.dtype == np.uint8
    assert set(np.unique(out)) == {0, 1, 2}
    assert np.array_equal(out == 2, lesion)
    assert np.array_equal(out == 1, cord & ~lesion)
    # SCT's split: cord = label >= 1 covers cord and lesion
    assert np.array_equal(out >= 1, cord | lesion)


def test_label_map_without_lesion() -> None:
    cord = np.eye(4, dtype=np.float32)[:, :, None].repeat(3, axis=2)
    out = train.label_map(cord)
    assert set(np.unique(out)) == {0, 1}


def test_label_map_shape_mismatch() -> None:
    with pytest.raises(SegmentationError, match=r"lesion mask shape \(2, 2, 2\) differs"):
        train.label_map(np.zeros((3, 3, 3)), np.zeros((2, 2, 2)))


# ----------------------------------------------------------------------------- dataset.json


def test_dataset_json_matches_sciseg() -> None:
    assert train.dataset_json(12) == {
        "channel_names": {"0": "T2w"},
        "labels": {"background": 0, "sc": [1, 2], "lesion": 2},
        "regions_class_order": [1, 2],
        "file_ending": ".nii.gz",
        "numTraining": 12,
        "image_orientation": "RPI",
    }


def test_dataset_json_is_a_copy() -> None:
    body = train.dataset_json(1)
    body["labels"]["sc"].append(3)
    assert train.DATASET_JSON["labels"]["sc"] == [1, 2]


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_dataset_json_rejects_bad_counts(bad: object) -> None:
    with pytest.raises(SegmentationError, match="n_training="):
        train.dataset_json(bad)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- plans


def _planner_output() -> dict:
    """The parts of nnU-Net's planner output that reduce_plans touches."""
    arch = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": 6,
            "features_per_stage": [32, 64, 128, 256, 320, 320],
            "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3]] * 6,
            "strides": [[1, 1, 1]] + [[2, 2, 2]] * 5,
            "n_conv_per_stage": [2] * 6,
            "n_conv_per_stage_decoder": [2] * 5,
            "conv_bias": True,
        },
        "_kw_requires_import": ["conv_op"],
    }
    cfg = {"patch_size": [128, 128, 128], "batch_size": 2, "spacing": [0.9, 0.9, 2.0],
           "architecture": arch}
    return {
        "dataset_name": "Dataset901_X",
        "transpose_forward": [2, 0, 1],
        "transpose_backward": [1, 2, 0],
        "image_reader_writer": "NibabelIO",
        "configurations": {"2d": dict(cfg), "3d_fullres": cfg},
    }


def test_reduce_plans_small_network() -> None:
    src = _planner_output()
    out = train.reduce_plans(src, patch_size=(64, 64, 48), features=(8, 16, 32, 64),
                             batch_size=2, spacing_mm=1.0)
    assert list(out["configurations"]) == ["3d_fullres"]
    cfg = out["configurations"]["3d_fullres"]
    kw = cfg["architecture"]["arch_kwargs"]
    assert kw["n_stages"] == 4
    assert kw["features_per_stage"] == [8, 16, 32, 64]
    assert kw["strides"] == [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
    assert len(kw["n_conv_per_stage_decoder"]) == 3
    assert kw["conv_bias"] is True  # planner settings not named are kept
    assert cfg["patch_size"] == [64, 64, 48]
    assert cfg["batch_size"] == 2
    assert cfg["spacing"] == [1.0, 1.0, 1.0]
    assert out["transpose_forward"] == [0, 1, 2]
    assert out["image_reader_writer"] == "SimpleITKIO"
    # the input is not modified
    assert src["configurations"]["3d_fullres"]["patch_size"] == [128, 128, 128]
    assert "2d" in src["configurations"]


def test_reduce_plans_rejects_patch_not_divisible() -> None:
    with pytest.raises(SegmentationError, match="divisible by 8"):
        train.reduce_plans(_planner_output(), patch_size=(64, 60, 48))


# ----------------------------------------------------------------------------- export


def test_export_checkpoint_keys_and_fp16() -> None:
    torch = pytest.importorskip("torch")
    w = torch.randn(4, 2, 3, 3, 3)
    ckpt = {
        "network_weights": {
            "enc.conv.weight": w,
            "enc.all_modules.0.weight": w,  # nnU-Net's alias of the same tensor
            "norm.num_batches_tracked": torch.tensor(3),
        },
        "optimizer_state": {"lr": 0.01},
        "logging": {"loss": [1.0]},
        "init_args": {"configuration": "3d_fullres", "plans": {"big": "dict"}},
        "trainer_name": "DemoTrainer",
        "inference_allowed_mirroring_axes": (0, 1, 2),
        "current_epoch": 10,
    }
    out = train.export_checkpoint(ckpt)
    assert set(out) == {"network_weights", "init_args", "trainer_name",
                        "inference_allowed_mirroring_axes"}
    assert out["trainer_name"] == "nnUNetTrainer"
    assert out["init_args"]["configuration"] == "3d_fullres"
    assert out["inference_allowed_mirroring_axes"] == (0, 1, 2)
    weights = out["network_weights"]
    assert weights["enc.conv.weight"].dtype == torch.float16
    assert torch.allclose(weights["enc.conv.weight"].float(), w, atol=1e-2)
    assert weights["enc.conv.weight"] is weights["enc.all_modules.0.weight"]
    assert weights["norm.num_batches_tracked"].dtype == torch.int64
    full = train.export_checkpoint(ckpt, half=False)
    assert full["network_weights"]["enc.conv.weight"].dtype == torch.float32


# ----------------------------------------------------------------------------- gate and metrics


def _row(kind: str, reference: str, cord: float, lesion: float | None,
         ref_vox: int = 0, pred_vox: int = 0, case: str = "c") -> dict:
    return {"case": case, "kind": kind, "reference": reference, "cord_dice": cord,
            "lesion_dice": lesion, "lesion_ref_voxels": ref_vox, "lesion_pred_voxels": pred_vox}


def test_dice_values() -> None:
    a = np.zeros((4, 5, 6), bool)
    b = np.zeros_like(a)
    assert dice(a, b) == 1.0
    a[0, 0, :4] = True
    b[0, 0, 2:6] = True
    assert dice(a, b) == pytest.approx(2 * 2 / 8)
    assert dice(a, np.zeros_like(a)) == 0.0
    assert dice(a.astype(np.uint8) * 2, b) == pytest.approx(0.5)  # labels: non-zero is foreground


def test_dice_rejects_different_shapes() -> None:
    with pytest.raises(ValidationError, match=r"prediction shape \(4, 5, 6\) differs from reference shape \(4, 5, 7\)"):
        dice(np.zeros((4, 5, 6)), np.zeros((4, 5, 7)))


def test_summarize_groups_by_kind() -> None:
    rows = [
        _row("real", "manual", 0.92, None),
        _row("real+lesions", "manual", 0.90, 0.6, 50, 40),
        _row("real+lesions", "manual", 0.88, 0.4, 30, 20),
        _row("real", "scisegv2", 0.85, 0.5, 163, 100),
        _row("synthetic", "phantom", 0.95, 0.7, 80, 70),
    ]
    s = train.summarize(rows)
    assert s["cord_dice_real"] == pytest.approx(0.92)  # SCIsegV2 references apart
    assert s["scisegv2_cord_dice"] == pytest.approx(0.85)
    assert s["scisegv2_lesion_dice"] == pytest.approx(0.5)
    assert s["lesion_dice_real_synthetic"] == pytest.approx(0.5)
    assert s["cord_dice_synthetic"] == pytest.approx(0.95)
    assert s["gate_cases"] == "real+lesions"
    assert s["gate_lesion_dice"] == pytest.approx(0.5)
    assert s["gate_empty_lesion_predictions"] == 0
    assert len(s["cases"]) == 5


def test_summarize_keeps_the_training_scans_fit_apart() -> None:
    rows = [_row("real", "manual", 0.90, None), _row("real-train", "manual", 0.99, None),
            _row("real-train", "manual", 0.97, None)]
    s = train.summarize(rows)
    assert s["cord_dice_real"] == pytest.approx(0.90)  # held-out only
    assert s["cord_dice_real_train"] == pytest.approx(0.98)


def test_fine_tune_settings() -> None:
    args = train.build_parser().parse_args(
        ["--out", "x", "--data", "none", "--init-weights", "w.pth", "--initial-lr", "0.003",
         "--oversample-foreground", "0.33", "--epochs", "40"])
    s = train.settings_from_args(args)
    assert s.init_weights == Path("w.pth")
    assert s.from_checkpoint is None
    assert (s.initial_lr, s.oversample_foreground, s.epochs) == (0.003, 0.33, 40)
    assert s.as_json()["init_weights"] == "w.pth"
    defaults = train.settings_from_args(train.build_parser().parse_args(["--out", "x", "--data", "none"]))
    assert (defaults.initial_lr, defaults.oversample_foreground, defaults.init_weights) == (0.01, 0.66, None)


def test_fine_tune_and_continue_are_exclusive() -> None:
    args = train.build_parser().parse_args(
        ["--out", "x", "--data", "none", "--init-weights", "a.pth", "--from-checkpoint", "b.pth"])
    with pytest.raises(SegmentationError, match="both given"):
        train.settings_from_args(args)


def test_load_network_weights_strips_prefixes_and_upcasts(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    w = torch.randn(4, 2, 3, 3, 3)
    path = tmp_path / "ckpt.pth"
    torch.save({"network_weights": {"_orig_mod.enc.weight": w.half(),
                                    "module.norm.num_batches_tracked": torch.tensor(3)}}, path)
    out = load_network_weights(path)
    assert set(out) == {"enc.weight", "norm.num_batches_tracked"}
    assert out["enc.weight"].dtype == torch.float32
    assert torch.allclose(out["enc.weight"], w, atol=1e-2)
    assert out["norm.num_batches_tracked"].dtype == torch.int64


def test_summarize_falls_back_to_phantoms_for_the_gate() -> None:
    s = train.summarize([_row("synthetic", "phantom", 0.95, 0.0, 80, 0)])
    assert s["gate_cases"] == "synthetic"
    assert s["cord_dice_real"] is None
    assert s["gate_empty_lesion_predictions"] == 1


def test_lesion_gate_passes() -> None:
    ok, reason = train.lesion_gate({"gate_lesion_dice": 0.55, "gate_empty_lesion_predictions": 0}, 0.3)
    assert ok
    assert "0.550" in reason


def test_lesion_gate_low_dice() -> None:
    ok, reason = train.lesion_gate({"gate_lesion_dice": 0.1, "gate_empty_lesion_predictions": 0}, 0.3)
    assert not ok
    assert "< 0.3" in reason


def test_lesion_gate_empty_prediction_fails_even_with_good_mean() -> None:
    ok, reason = train.lesion_gate({"gate_lesion_dice": 0.5, "gate_empty_lesion_predictions": 1}, 0.3)
    assert not ok
    assert "empty lesion prediction" in reason


def test_lesion_gate_without_cases() -> None:
    ok, reason = train.lesion_gate({"gate_lesion_dice": None}, 0.3)
    assert not ok
    assert "no held-out case" in reason


def test_lesion_gate_disabled() -> None:
    assert train.lesion_gate({}, 0.0) == (True, "lesion gate disabled")


# ----------------------------------------------------------------------------- data


def test_crop_to_cord_keeps_world_positions(rng: np.random.Generator) -> None:
    labels = np.zeros((20, 30, 40), np.uint8)
    labels[8:11, 12:15, 5:35] = 1
    affine = np.diag([0.8, 0.9, 1.2, 1.0])
    affine[:3, 3] = (-5.0, 7.0, 11.0)
    case = train.Case("c", rng.random(labels.shape).astype(np.float32), labels, affine,
                      "real", "seg-manual")
    out = _crop_to_cord(case, margin_mm=2.0)
    assert out.labels.shape == (3 + 2 * 3, 3 + 2 * 3, 30 + 2 * 2)
    assert out.labels.sum() == labels.sum()
    # voxel (0, 0, 0) of the crop is voxel (5, 9, 3) of the original, in world mm
    world_crop = out.affine @ [0, 0, 0, 1]
    world_orig = affine @ [5, 9, 3, 1]
    assert np.allclose(world_crop, world_orig)
    assert np.array_equal(out.image, case.image[5:14, 9:18, 3:37])


def test_quick_settings() -> None:
    args = train.build_parser().parse_args(["--out", "x", "--quick"])
    s = train.settings_from_args(args)
    assert s.quick
    assert s.data is None
    assert s.min_lesion_dice == 0.0
    assert s.max_attempts == 1


def test_missing_data_folder(tmp_path: Path) -> None:
    args = train.build_parser().parse_args(["--out", "x", "--data", str(tmp_path / "nope")])
    with pytest.raises(SegmentationError, match="real dataset folder does not exist"):
        train.settings_from_args(args)


@pytest.mark.shared_data
def test_real_scans_and_holdout(spine_t2w: Path) -> None:
    scans = {sub: (source, lesion) for sub, _, _, source, lesion in train.find_real_scans(spine_t2w)}
    assert scans["sub-errsm11"] == ("manual", None)
    assert scans["sub-sctcrop"][0] == "deepsegsc"
    assert scans["sub-sctfakelesion"][0] == "scisegv2"
    assert scans["sub-sctfakelesion"][1] is not None
    assert "sub-errsm20" not in scans  # no cord mask
    settings = train.TrainSettings(data=spine_t2w, lesion_copies=1,
                                   holdout=("sub-errsm21", "sub-sctfakelesion", "sub-errsm18"))
    cases = train.real_training_cases(settings)
    names = [c.name for c in cases]
    assert names == ["sub_errsm11", "sub_errsm11_les0", "sub_sctcrop", "sub_sctcrop_les0"]
    plain, lesioned = cases[0], cases[1]
    assert not plain.has_lesion_reference
    assert (lesioned.labels == 2).any()
    # lesions lie inside the real cord; the cord is unchanged
    assert np.array_equal(lesioned.labels > 0, plain.labels > 0)
    # RPI: the third axis runs inferior -> superior
    assert plain.affine[2, 2] > 0


# ----------------------------------------------------------------------------- from scratch


@pytest.mark.slow
def test_quick_training_produces_loadable_model(tmp_path: Path) -> None:
    """Train from scratch (--quick, phantoms only), then load the result with plain nnU-Net."""
    out = tmp_path / "model"
    env = dict(os.environ)
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env.pop(key, None)
    proc = subprocess.run(
        [sys.executable, "-m", "cohort_sciseg.training", "--out", str(out), "--quick",
         "--work", str(tmp_path / "work")],
        # ~6 min on one core (48x48x32 patches: cord Dice 0.933 here); the limit only catches hangs
        env=env, capture_output=True, text=True, timeout=1800, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert check_manifest(out).status == "verified"
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["metrics"]["cord_dice_synthetic"] > 0.9
    assert manifest["trained_by"] == "cohort_sciseg.training"
    assert manifest["command"].startswith("python -m cohort_sciseg.training --out ")
    assert (out / "MODEL_CARD.md").is_file()
    trainer_dir = out / train.TRAINER_FOLDER
    assert json.loads((trainer_dir / "dataset.json").read_text())["labels"] == {
        "background": 0, "sc": [1, 2], "lesion": 2}

    # nnU-Net's own loader (a fresh process: nnunetv2.paths reads the environment at import)
    code = (
        "import torch\n"
        "from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor\n"
        "p = nnUNetPredictor(device=torch.device('cpu'), perform_everything_on_device=False,"
        " use_mirroring=False, allow_tqdm=False)\n"
        f"p.initialize_from_trained_model_folder({str(trainer_dir)!r}, use_folds=(0,))\n"
        "print('LOADED', type(p.network).__name__)\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert "LOADED PlainConvUNet" in loaded.stdout, loaded.stderr[-3000:]

    # fine-tuning starts from the given weights: one iteration at a vanishing learning rate
    # gives back the same model (a network that ignored --init-weights would score ~0)
    tuned = tmp_path / "tuned"
    proc = subprocess.run(
        [sys.executable, "-m", "cohort_sciseg.training", "--out", str(tuned), "--quick",
         "--work", str(tmp_path / "work"), "--epochs", "1", "--iterations-per-epoch", "1",
         "--initial-lr", "1e-9",
         "--init-weights", str(trainer_dir / "fold_0" / "checkpoint_final.pth")],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    tuned_manifest = json.loads((tuned / "model.json").read_text())
    assert tuned_manifest["settings"]["init_weights"].endswith("checkpoint_final.pth")
    assert tuned_manifest["metrics"]["cord_dice_synthetic"] == pytest.approx(
        manifest["metrics"]["cord_dice_synthetic"], abs=0.01)
    assert "fine-tuned from the weights of" in (tuned / "MODEL_CARD.md").read_text()


def test_postprocessing_is_chosen_on_training_scans_only() -> None:
    def row(kind: str, raw: float, largest: float) -> dict:
        return {**_row(kind, "manual", raw, None), "cord_dice_raw": raw, "cord_dice_largest": largest}

    # largest component helps the training scans: recommended, whatever the held-out scan says
    rows = [row("real-train", 0.89, 0.91), row("real-train", 0.90, 0.90), row("real", 0.95, 0.80)]
    assert train.choose_postprocessing(rows) == {"keep_largest_cord": True}
    # it does not help them: none, even if it would help the held-out scan
    rows = [row("real-train", 0.91, 0.90), row("real", 0.80, 0.95)]
    assert train.choose_postprocessing(rows) == {}
    assert train.choose_postprocessing([row("synthetic", 0.8, 0.9)]) == {}
    s = train.summarize([{**row("real", 0.88, 0.92), "cord_dice": 0.92}])
    assert (s["cord_dice_real"], s["cord_dice_real_raw"]) == (0.92, 0.88)


# ----------------------------------------------------------------------------- evaluation


def _rpi_affine() -> np.ndarray:
    """RPI (x runs right -> left), anisotropic voxels, so axis mix-ups change the result."""
    aff = np.diag([-0.8, 1.0, 1.3, 1.0])
    aff[:3, 3] = (20.0, -15.0, -30.0)
    return aff


def test_evaluate_runs_the_engine_and_reloads_a_retrained_model(tmp_path: Path) -> None:
    """Scored against the engine's own output the Dice is 1; new weights in the same folder are used."""
    pytest.importorskip("nnunetv2")
    model = make_tiny_model(tmp_path / "model", seed=0)
    image, affine = textured_image((40, 36, 28), seed=0), _rpi_affine()
    seg = SegmentationEngine(model=str(model), device="cpu").predict_labels(Volume(image, affine, None))
    assert (seg == 1).any()  # a non-trivial reference
    assert (seg == 2).any()
    case = train.Case("c", image, train.label_map(seg > 0, seg == 2), affine, "synthetic", "phantom")
    log = tmp_path / "nnunet.log"

    row = train.evaluate(model, [case], log)["cases"][0]
    assert (row["cord_dice_raw"], row["lesion_dice"]) == (1.0, 1.0)
    assert row["lesion_ref_voxels"] == row["lesion_pred_voxels"] == int((seg == 2).sum())

    make_tiny_model(model, seed=1)  # "retrained": same folder, other weights, new manifest
    row = train.evaluate(model, [case], log)["cases"][0]
    assert row["cord_dice_raw"] < 1.0


def test_evaluation_row_without_lesion_reference() -> None:
    labels = np.zeros((7, 8, 9), np.uint8)
    labels[2:5, 2:6, :] = 1
    seg = labels.copy()
    seg[3, 3, 3] = 2  # a lesion where the reference says nothing about lesions
    case = train.Case("c", labels.astype(np.float32), labels, np.eye(4), "real", "manual",
                      has_lesion_reference=False)
    row = _case_row(case, seg)
    assert row["cord_dice_raw"] == row["cord_dice"] == 1.0
    assert row["lesion_dice"] is None
    assert (row["lesion_ref_voxels"], row["lesion_pred_voxels"]) == (0, 1)


def test_reevaluate_refuses_a_model_it_did_not_train(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    model = make_tiny_model(tmp_path / "tiny", seed=0)  # verified manifest, but no training attempts
    with pytest.raises(SegmentationError, match="not a model exported by this training script"):
        train.reevaluate_model(train.TrainSettings(), model, work_dir=tmp_path / "work")


def test_nnunet_folders_must_be_set_before_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nnunetv2.paths", object())
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "elsewhere"))
    with pytest.raises(SegmentationError, match="nnunetv2 was imported before its folders were set"):
        train.set_nnunet_environment(tmp_path / "work")


def test_importing_training_loads_neither_torch_nor_nnunet() -> None:
    code = ("import sys, cohort_sciseg.training\n"
            "print(sorted(m for m in ('torch', 'nnunetv2', 'dask') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.strip() == "[]"
