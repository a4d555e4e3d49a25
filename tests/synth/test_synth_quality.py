"""``quality_spread``: cohorts of uneven image quality (SNR and lesion contrast scaled per image)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohort_sciseg.cli import main
from cohort_sciseg.errors import SynthError
from cohort_sciseg.io import load_nifti
from cohort_sciseg.synth import plan_cohort, synthesize_cohort

OPTS = {"sites": 2, "subjects_per_site": 2, "seed": 3}


def test_plans_scale_lesion_contrast_and_leave_every_other_draw() -> None:
    plain = plan_cohort(**OPTS)
    spread = plan_cohort(**OPTS, quality_spread=0.7)
    qualities = []
    for a, b in zip(plain, spread, strict=True):
        assert a.anatomy == b.anatomy
        assert a.participant == b.participant
        assert a.lesions == b.lesions  # the subject's lesions as drawn; each image shows them degraded
        for sa, sb in zip(a.scans, b.scans, strict=True):
            assert sa.quality == 1.0
            assert 0.3 <= sb.quality <= 1.0
            qualities.append(sb.quality)
            assert replace(sb, quality=1.0, lesions=sa.lesions) == sa  # geometry, sessions, days unchanged
            for la, lb in zip(sa.lesions, sb.lesions, strict=True):
                assert lb.contrast - 1.0 == pytest.approx((la.contrast - 1.0) * sb.quality)
                assert replace(lb, contrast=la.contrast) == la
    assert len(set(qualities)) == len(qualities)  # drawn per image


def test_images_are_noisier_and_the_ground_truth_says_how_much(tmp_path: Path) -> None:
    a = synthesize_cohort(tmp_path / "a", **OPTS)
    b = synthesize_cohort(tmp_path / "b", **OPTS, quality_spread=0.7)
    ga, gb = pd.read_parquet(a.scans_table), pd.read_parquet(b.scans_table)
    assert (ga["image_quality"] == 1.0).all()
    assert gb["image_quality"].between(0.3, 1.0).all()
    # the masks (geometry) are the same, the images are not
    for rel in ga["lesion_mask_path"]:
        assert hashlib.sha256((a.out_dir / rel).read_bytes()).digest() == \
            hashlib.sha256((b.out_dir / rel).read_bytes()).digest()
    worst = gb.sort_values("image_quality").iloc[0]
    img_a = load_nifti(a.out_dir / worst["image_path"]).data.astype(np.float64)
    img_b = load_nifti(b.out_dir / worst["image_path"]).data.astype(np.float64)
    cord = load_nifti(a.out_dir / worst["cord_mask_path"]).data > 0
    lesion = load_nifti(a.out_dir / worst["lesion_mask_path"]).data > 0
    healthy = cord & ~lesion
    # same noise draws, standard deviation divided by the quality: in the cord (high SNR, Rician ~ Gaussian)
    # the difference of the two images is that noise times gain x cord signal / SNR x (1 / q - 1)
    plan = next(p for p in plan_cohort(**OPTS) if p.site == worst["site"] and p.sub == worst["sub"])
    q = float(worst["image_quality"])
    sd = plan.protocol.gain * plan.anatomy.cord_intensity / plan.protocol.snr * (1.0 / q - 1.0)
    assert float(np.std((img_b - img_a)[healthy])) == pytest.approx(sd, rel=0.1)
    if lesion.any():
        excess_a = img_a[lesion].mean() / img_a[healthy].mean()
        excess_b = img_b[lesion].mean() / img_b[healthy].mean()
        assert excess_b < excess_a


@pytest.mark.parametrize("bad", [1.0, -0.1, "0.5", True])
def test_bad_spread_is_refused(bad: object, tmp_path: Path) -> None:
    with pytest.raises(SynthError, match=r"quality_spread=.* is not valid; expected a number in \[0, 1\)"):
        synthesize_cohort(tmp_path / "x", **OPTS, quality_spread=bad)  # type: ignore[arg-type]


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", str(tmp_path / "c"), "--sites", "1", "--subjects-per-site", "2",
                 "--quality-spread", "0.5"]) == 0
    gt = pd.read_parquet(tmp_path / "c" / "ground_truth" / "scans.parquet")
    assert gt["image_quality"].between(0.5, 1.0).all()
    assert (gt["image_quality"] < 1.0).all()
    capsys.readouterr()
    assert main(["synth", str(tmp_path / "d"), "--from-bids", str(tmp_path / "c" / "site1"),
                 "--quality-spread", "0.5"]) == 2
    assert "--quality-spread 0.5 with --from-bids" in capsys.readouterr().err
