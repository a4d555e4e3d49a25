"""Model folders: layout, folds/checkpoints, labels, manifest integrity, weight loading."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from cohort_sciseg.errors import SegmentationError
from cohort_sciseg.segment import (
    LabelSplit,
    SegmentationEngine,
    cache_info,
    find_model,
    load_network,
    load_plans,
    parse_labels,
    resolve_model_path,
)
from cohort_sciseg.segment.model import demo_model_path
from cohort_sciseg.segment.testing import TINY_TRAINER_FOLDER, make_tiny_model

# ------------------------------------------------------------------------ layout, folds, checkpoints


def test_find_model_reads_sciseg_layout(tiny_model: Path) -> None:
    folder = find_model(tiny_model)
    assert folder.root == tiny_model.resolve()
    assert folder.trainer_dir.name == TINY_TRAINER_FOLDER
    assert folder.folds == ("0",)
    assert folder.checkpoint_names == ("checkpoint_final.pth",)
    assert folder.image_orientation == "RPI"
    assert folder.configuration == "3d_fullres"
    assert folder.labels == LabelSplit("regions", (1, 2), (2,))


def test_trainer_folder_itself_is_accepted(tiny_model: Path) -> None:
    folder = find_model(tiny_model / TINY_TRAINER_FOLDER)
    assert folder.trainer_dir == (tiny_model / TINY_TRAINER_FOLDER).resolve()
    # The manifest one level up still covers it.
    assert folder.root == tiny_model.resolve()


def test_all_folds_ensembled_by_default_and_chosen_ones(tmp_path: Path) -> None:
    model = make_tiny_model(tmp_path / "m", folds=(0, 1, 2))
    assert find_model(model).folds == ("0", "1", "2")
    assert find_model(model, folds=[2, "0"]).folds == ("2", "0")
    with pytest.raises(SegmentationError, match=r"fold\(s\) \['7'\] not found.*Fix: pass --folds"):
        find_model(model, folds=[7])


def test_fold_all_used_when_no_numbered_fold(tmp_path: Path) -> None:
    model = make_tiny_model(tmp_path / "m", folds=("all",))
    assert find_model(model).folds == ("all",)


def test_checkpoint_best_is_the_fallback(tmp_path: Path) -> None:
    model = make_tiny_model(tmp_path / "m", checkpoint_name="checkpoint_best.pth")
    assert find_model(model).checkpoint_names == ("checkpoint_best.pth",)
    assert find_model(model, checkpoint="best").checkpoint_names == ("checkpoint_best.pth",)
    with pytest.raises(SegmentationError, match=r"no checkpoint_final\.pth in fold_0"):
        find_model(model, checkpoint="final")
    with pytest.raises(SegmentationError, match=r"checkpoint 'latest' is not valid"):
        find_model(model, checkpoint="latest")  # type: ignore[arg-type]


def test_missing_folder_and_missing_folds(tmp_path: Path) -> None:
    with pytest.raises(SegmentationError, match=r"model folder not found.*Fix:"):
        find_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SegmentationError, match=r"no nnUNetTrainer\*__\*__\* folder.*exactly one"):
        find_model(tmp_path / "empty")
    model = make_tiny_model(tmp_path / "m")
    shutil.rmtree(model / TINY_TRAINER_FOLDER / "fold_0")
    with pytest.raises(SegmentationError, match=r"no fold_\* folder"):
        find_model(model)


def test_two_trainer_folders_are_refused(tmp_path: Path) -> None:
    model = make_tiny_model(tmp_path / "m")
    shutil.copytree(model / TINY_TRAINER_FOLDER, model / "nnUNetTrainerDA5__nnUNetPlans__3d_fullres")
    with pytest.raises(SegmentationError, match=r"2 trainer folders \(nnUNetTrainerDA5.*exactly one"):
        find_model(model)


def test_broken_json_and_bad_orientation(tmp_path: Path) -> None:
    model = make_tiny_model(tmp_path / "m", manifest=False)
    ds = model / TINY_TRAINER_FOLDER / "dataset.json"
    content = json.loads(ds.read_text())
    ds.write_text(json.dumps({**content, "image_orientation": "RPX"}))
    with pytest.raises(SegmentationError, match=r"image_orientation 'RPX' in dataset.json is not valid"):
        find_model(model)
    ds.write_text("{not json")
    with pytest.raises(SegmentationError, match=r"cannot parse dataset.json"):
        find_model(model)
    ds.unlink()
    with pytest.raises(SegmentationError, match=r"dataset.json not found"):
        find_model(model)


def test_orientation_falls_back_to_lpi_as_sct(tmp_path: Path) -> None:
    model = make_tiny_model(tmp_path / "m", image_orientation=None)
    assert find_model(model).image_orientation == "LPI"


def test_demo_model_resolves_to_the_package_folder() -> None:
    path = demo_model_path()
    assert path.parts[-3:] == ("cohort_sciseg", "models", "demo")
    if path.is_dir():
        assert resolve_model_path("demo") == path
    else:
        with pytest.raises(SegmentationError, match=r"bundled demo model is not installed.*--model PATH"):
            resolve_model_path("demo")


# ------------------------------------------------------------------------------------- labels


def test_sciseg_region_layout() -> None:
    split = parse_labels({"labels": {"background": 0, "sc": [1, 2], "lesion": 2}, "regions_class_order": [1, 2]})
    assert split == LabelSplit("regions", (1, 2), (2,))
    cord, lesion = split.split(np.array([0, 1, 2, 2, 0]))
    assert cord.tolist() == [False, True, True, True, False]  # SCT: cord = label >= 1
    assert lesion.tolist() == [False, False, True, True, False]


def test_plain_label_layout_cord_includes_lesion() -> None:
    split = parse_labels({"labels": {"background": 0, "sc": 1, "lesion": 2}})
    assert split == LabelSplit("labels", (1, 2), (2,))


@pytest.mark.parametrize(
    ("dataset", "match"),
    [
        ({"labels": {"background": 0, "sc": 1}}, r"labels \{'background': 0, 'sc': 1\}"),
        ({"labels": {"background": 0, "sc": 1, "lesion": 2, "csf": 3}}, r"unsupported label layout"),
        ({"labels": {"background": 1, "sc": 0, "lesion": 2}}, r"background label 1"),
        ({"labels": {"background": 0, "sc": [1, 2], "lesion": 2}}, r"regions_class_order None"),
        ({"labels": {"background": 0, "sc": [1], "lesion": 2}, "regions_class_order": [1, 2]},
         r"lesion region \[2\] not inside the cord region \[1\]"),
        ({"labels": {"background": 0, "lesion": 2, "sc": [1, 2]}, "regions_class_order": [2, 1]},
         r"regions in the order \['lesion', 'sc'\]"),
        ({"labels": {"background": 0, "sc": 1, "lesion": 2}, "regions_class_order": [1, 2]},
         r"plain labels"),
        ({"labels": {"background": 0, "sc": 1, "lesion": 1}}, r"unsupported label layout"),
        ({"labels": {"background": 0, "sc": "1", "lesion": 2}}, r"unsupported label layout"),
        ({}, r"labels None"),
    ],
)
def test_other_label_layouts_fail_clearly(dataset: dict[str, object], match: str) -> None:
    with pytest.raises(SegmentationError, match=match) as info:
        parse_labels(dataset, path="x/dataset.json")
    assert "'x/dataset.json'" in str(info.value)
    assert "expected" in str(info.value)
    assert "Fix:" in str(info.value)


# ---------------------------------------------------------------------------------- integrity


def test_manifest_verified(tiny_model: Path) -> None:
    loaded = load_network(find_model(tiny_model))
    assert loaded.integrity.status == "verified"
    assert len(loaded.integrity.checksum) == 64
    assert loaded.trainer_name == "nnUNetTrainer"
    assert loaded.mirroring_axes == (0, 1, 2)


def test_manifest_mismatch_is_refused_before_unpickling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_tiny_model(tmp_path / "m")
    ckpt = model / TINY_TRAINER_FOLDER / "fold_0" / "checkpoint_final.pth"
    ckpt.write_bytes(ckpt.read_bytes() + b"\0")
    import torch

    def no_unpickling(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load called before the manifest check")

    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(SegmentationError, match=r"does not match its manifest: changed: .*checkpoint_final.pth.*--trust-model"):
        load_network(find_model(model))


def test_trust_model_accepts_a_mismatch(tmp_path: Path, fresh_cache: None) -> None:
    model = make_tiny_model(tmp_path / "m")
    (model / TINY_TRAINER_FOLDER / "notes.txt").write_text("added later")
    with pytest.raises(SegmentationError, match=r"not in the manifest: .*notes.txt"):
        SegmentationEngine(model=str(model)).load()
    engine = SegmentationEngine(model=str(model), trust_model=True)
    assert engine.describe()["integrity"] == "trusted"


def test_no_manifest_warns_once_and_records_checksums(
    tmp_path: Path, fresh_cache: None, caplog: pytest.LogCaptureFixture
) -> None:
    model = make_tiny_model(tmp_path / "m", manifest=False)
    engine = SegmentationEngine(model=str(model))
    with caplog.at_level(logging.WARNING, logger="cohort_sciseg.segment"):
        engine.load()
        engine.load()
    warnings = [r for r in caplog.records if "accepted once" in r.getMessage()]
    assert len(warnings) == 1
    info = engine.describe()
    assert info["integrity"] == "unverified"
    assert cache_info()["loads"] == 1


# ------------------------------------------------------------------------------ weight loading


def test_fp16_and_compiled_weights_load_as_float32(tmp_path: Path) -> None:
    model = make_tiny_model(tmp_path / "m", half=True, compiled_prefix=True)
    loaded = load_network(find_model(model))
    params = loaded.parameters[0]
    assert not any(k.startswith("_orig_mod.") for k in params)
    assert all(v.dtype.is_floating_point is False or str(v.dtype) == "torch.float32" for v in params.values())


def test_weights_that_do_not_fit_the_plans_fail_clearly(tmp_path: Path) -> None:
    model = make_tiny_model(tmp_path / "m", manifest=False)
    plans_path = model / TINY_TRAINER_FOLDER / "plans.json"
    plans = json.loads(plans_path.read_text())
    plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["features_per_stage"] = [8, 16, 32]
    plans_path.write_text(json.dumps(plans))
    with pytest.raises(SegmentationError, match=r"weights do not fit the network of plans.json"):
        load_network(find_model(model))


def test_checkpoint_without_weights_fails_clearly(tmp_path: Path) -> None:
    import torch

    model = make_tiny_model(tmp_path / "m", manifest=False)
    torch.save({"state_dict": {}}, model / TINY_TRAINER_FOLDER / "fold_0" / "checkpoint_final.pth")
    with pytest.raises(SegmentationError, match=r"checkpoint has no 'network_weights' \(found \['state_dict'\]\)"):
        load_network(find_model(model))
    (model / TINY_TRAINER_FOLDER / "fold_0" / "checkpoint_final.pth").write_bytes(b"garbage")
    with pytest.raises(SegmentationError, match=r"cannot load the checkpoint"):
        load_network(find_model(model))


# ------------------------------------------------------------------- plans without the network


def test_plans_are_read_without_unpickling_a_checkpoint(tmp_path: Path, fresh_cache: None) -> None:
    """A CPU worker prepares and finishes scans from the plans; a broken checkpoint only fails the network."""
    model = make_tiny_model(tmp_path / "m", manifest=False)
    (model / TINY_TRAINER_FOLDER / "fold_0" / "checkpoint_final.pth").write_bytes(b"not a pickle")
    folder = find_model(model)
    plans = load_plans(folder)
    assert plans.configuration_manager.patch_size == [32, 32, 32]
    assert plans.label_manager.has_regions
    engine = SegmentationEngine(model=str(model), device="cpu")
    assert engine.describe()["integrity"] == "unverified"  # name, checksum and settings: no unpickling
    assert cache_info()["loads"] == 0
    with pytest.raises(SegmentationError, match=r"cannot load the checkpoint"):
        engine.load()


def test_a_trainer_folder_naming_a_configuration_the_plans_lack_fails_clearly(tmp_path: Path) -> None:
    model = make_tiny_model(tmp_path / "m", manifest=False, trainer_folder="nnUNetTrainer__nnUNetPlans__3d_lowres")
    with pytest.raises(SegmentationError, match=r"configuration '3d_lowres' \(from the trainer folder's name\) "
                       r"not in plans.json.*one of \['3d_fullres'\]"):
        load_plans(find_model(model))


def test_checkpoints_of_another_configuration_than_the_folder_name_fail_clearly(tmp_path: Path) -> None:
    import torch

    model = make_tiny_model(tmp_path / "m", manifest=False)
    plans_path = model / TINY_TRAINER_FOLDER / "plans.json"
    plans = json.loads(plans_path.read_text())
    plans["configurations"]["3d_other"] = plans["configurations"]["3d_fullres"]
    plans_path.write_text(json.dumps(plans))
    ckpt_path = model / TINY_TRAINER_FOLDER / "fold_0" / "checkpoint_final.pth"
    ckpt = torch.load(ckpt_path, weights_only=False)
    ckpt["init_args"]["configuration"] = "3d_other"
    torch.save(ckpt, ckpt_path)
    with pytest.raises(SegmentationError, match=r"trained with configuration '3d_other' but the trainer folder "
                       r"names '3d_fullres'.*Fix: rename the folder to end in __3d_other"):
        load_network(find_model(model))
