"""Disagreement between ensemble members (segment.members): nnU-Net's ensemble reproduced, the measure by hand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from cohort_sciseg.errors import SegmentationError
from cohort_sciseg.io import load_nifti
from cohort_sciseg.segment import SegmentationEngine
from cohort_sciseg.segment.members import member_mirrorings, n_members
from cohort_sciseg.segment.testing import make_tiny_model
from cohort_sciseg.segment.uncertainty import binary_entropy, uncertainty_region


def test_member_mirrorings_are_nnunets_combinations() -> None:
    assert member_mirrorings((0, 1, 2), tta=False) == [()]
    assert member_mirrorings((0, 1, 2), tta=True) == [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
    assert member_mirrorings((0, 1), tta=True) == [(), (0,), (1,), (0, 1)]
    assert n_members(5, (0, 1, 2), tta=True) == 40
    assert n_members(3, None, tta=True) == 3


def test_one_member_is_refused_with_the_fix(tiny_model: Path) -> None:
    with pytest.raises(SegmentationError) as err:
        SegmentationEngine(model=str(tiny_model), disagreement=True)
    text = str(err.value)
    assert "one" in text
    assert "fold 0" in text
    assert "tta=true" in text
    SegmentationEngine(model=str(tiny_model), disagreement=True, tta=True)  # 8 mirrorings: accepted


def _members_by_hand(engine: SegmentationEngine, data: object) -> tuple[list[np.ndarray], np.ndarray]:
    """Each member's logits, written out without predict_members: folds x flips, each patch by hand."""
    import torch

    from cohort_sciseg.segment.predictors import get_entry

    pred = get_entry(engine.key, engine.folder).predictor
    x = data if isinstance(data, torch.Tensor) else torch.from_numpy(np.asarray(data))
    axes = pred.allowed_mirroring_axes if engine.settings.tta else ()
    flips = [()] + [c for n in range(1, len(axes) + 1) for c in __import__("itertools").combinations(axes, n)]
    members = []
    for params in pred.list_of_parameters:
        pred.network.load_state_dict(params)
        for f in flips:
            d = [a + 2 for a in f]
            with torch.no_grad():
                members.append(_window(pred, x, lambda p, d=d: torch.flip(pred.network(torch.flip(p, d)), d)
                                       if d else pred.network(p)))
    return members, np.mean(members, axis=0)


def _window(pred: object, x: object, net: Callable[..., object]) -> np.ndarray:
    """nnU-Net's Gaussian sliding window written out (its slicers and Gaussian, our loop): one member."""
    import torch
    from acvl_utils.cropping_and_padding.padding import pad_nd_image
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian

    patch = pred.configuration_manager.patch_size  # type: ignore[attr-defined]
    data, revert = pad_nd_image(x, patch, "constant", {"value": 0}, True, None)
    g = compute_gaussian(tuple(patch), sigma_scale=1.0 / 8, value_scaling_factor=10, device=torch.device("cpu"))
    acc = torch.zeros((pred.label_manager.num_segmentation_heads, *data.shape[1:]))  # type: ignore[attr-defined]
    n = torch.zeros(data.shape[1:])
    for sl in pred._internal_get_sliding_window_slicers(data.shape[1:]):  # type: ignore[attr-defined]
        acc[sl] += net(data[sl][None].float())[0] * g
        n[sl[1:]] += g
    return (acc / n)[(slice(None), *revert[1:])].numpy()


@pytest.mark.parametrize(("layout", "folds", "tta"), [("regions", (0, 1), False), ("labels", (0,), True),
                                                      ("regions", (0, 1), True)])
def test_members_reproduce_the_ensemble_and_measure_disagreement(
    layout: Literal["regions", "labels"], folds: tuple[int, ...], tta: bool,
    write_image: Callable[..., Path], tmp_path: Path, fresh_cache: None,
) -> None:
    model = make_tiny_model(tmp_path / "m", layout=layout, folds=folds, seed=3)
    volume = load_nifti(write_image())
    plain = SegmentationEngine(model=str(model), threads=1, tta=tta)
    members = SegmentationEngine(model=str(model), threads=1, tta=tta, disagreement=True)
    prepared = plain.prepare(volume)
    ensemble = plain.infer(prepared)
    found = members.infer(prepared)
    assert ensemble.disagreement is None
    # the mean of the members is nnU-Net's ensemble (its patch-level mirroring and fold average), up to
    # the float16 in which nnU-Net accumulates each sliding window: once per member here, once per fold
    # there (the tiny model's logits reach 35, so the accumulator's step is 0.25 at its largest)
    diff = np.abs(found.logits.numpy().astype(np.float64) - ensemble.logits.numpy().astype(np.float64))
    assert diff.max() <= (1.0 if tta else 1e-3)
    assert diff.mean() <= (0.02 if tta else 1e-4)
    agree = members.labels(found) == plain.labels(ensemble)
    assert agree.mean() >= 0.999
    # the measure, by hand from the members written out independently
    each, mean = _members_by_hand(plain, prepared.data)
    lm, split = plain.plans().label_manager, plain.folder.labels
    seg = np.asarray(lm.convert_logits_to_segmentation(mean))
    for name, values in (("lesion", split.lesion_values), ("cord", split.cord_values)):
        def prob(logits: np.ndarray, values: tuple[int, ...] = values) -> np.ndarray:
            if lm.has_regions:
                i = [tuple(np.atleast_1d(r)) for r in lm.foreground_regions].index(tuple(values))
                return 1.0 / (1.0 + np.exp(-logits[i].astype(np.float64)))
            e = np.exp(logits.astype(np.float64) - logits.max(axis=0, keepdims=True))
            return (e / e.sum(axis=0, keepdims=True))[list(values)].sum(axis=0)

        ps = [prob(m) for m in each]
        p_bar = np.mean(ps, axis=0)
        region, _ = uncertainty_region(p_bar, np.isin(seg, values))
        mi = binary_entropy(p_bar) - np.mean([binary_entropy(p) for p in ps], axis=0)
        expected = float(np.clip(mi[region], 0, None).mean()) if region.any() else 0.0
        assert found.disagreement[f"{name}_disagreement"] == pytest.approx(expected, rel=1e-3, abs=1e-6)
        assert 0.0 <= found.disagreement[f"{name}_disagreement"] <= 1.0
    assert found.disagreement["cord_disagreement"] > 0.0  # random tiny folds/flips do disagree
    # through write_outputs: the columns join the uncertainty of the same masks
    out = members.write_outputs(found, tmp_path / "o", uncertainty=True)
    assert out.masks.uncertainty.lesion_disagreement == found.disagreement["lesion_disagreement"]
    assert plain.write_outputs(ensemble, tmp_path / "p", uncertainty=True).masks.uncertainty.cord_disagreement is None


def test_identical_members_do_not_disagree(write_image: Callable[..., Path], tmp_path: Path, fresh_cache: None) -> None:
    """Two folds with the same weights, no mirroring: mutual information 0 wherever it is measured."""
    import shutil

    model = make_tiny_model(tmp_path / "m", folds=(0,), seed=5, manifest=False)
    trainer = next(p for p in model.iterdir() if p.is_dir())
    shutil.copytree(trainer / "fold_0", trainer / "fold_1")
    engine = SegmentationEngine(model=str(model), threads=1, disagreement=True)
    found = engine.infer(engine.prepare(load_nifti(write_image())))
    assert found.disagreement == {"lesion_disagreement": pytest.approx(0.0, abs=1e-6),
                                  "cord_disagreement": pytest.approx(0.0, abs=1e-6)}


def test_settings_record_names_disagreement_only_when_asked(tiny_model: Path) -> None:
    """Runs without the option keep their resume keys (the record is part of them)."""
    assert "disagreement" not in SegmentationEngine(model=str(tiny_model)).settings_record()
    assert SegmentationEngine(model=str(tiny_model), tta=True, disagreement=True).settings_record()["disagreement"]


def test_run_option_is_checked() -> None:
    from cohort_sciseg.segment.options import check_settings

    assert check_settings({"disagreement": True, "tta": True}).disagreement is True
    with pytest.raises(SegmentationError, match="disagreement='yes' has the wrong type"):
        check_settings({"disagreement": "yes"})
