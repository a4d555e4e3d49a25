"""Validation figures are written as non-blank PNG and valid SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
from matplotlib import image as mpimg

from cohort_sciseg.report import (
    bland_altman_figure,
    correlation_figure,
    raincloud_figure,
    regression_figure,
    save_figure,
)


def _check(paths):
    png, svg = paths
    assert png.suffix == ".png"
    assert svg.suffix == ".svg"
    pixels = mpimg.imread(png)
    assert pixels.std() > 0.01, "blank PNG"
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")


def test_all_figures(tmp_path, rng):
    df = pd.DataFrame(
        {
            "site": rng.choice(["s1", "s2"], 40),
            "method": rng.choice(["a", "b"], 40),
            "Dice": rng.beta(8, 2, 40),
        }
    )
    _check(save_figure(raincloud_figure(df, value="Dice"), tmp_path / "rain"))
    manual = rng.gamma(2, 50, 25)
    pred = manual * 1.1 + rng.normal(0, 5, 25)
    pred[3] = np.nan  # dropped, not plotted
    _check(save_figure(regression_figure(manual, pred, measure="volume", unit="mm3"), tmp_path / "reg"))
    _check(save_figure(bland_altman_figure(manual, pred, measure="volume", unit="mm3"), tmp_path / "ba"))
    _check(save_figure(correlation_figure(manual, pred, x_label="x", y_label="y", rho=0.5, p=0.01), tmp_path / "cor"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{n}.{e}" for n in ("rain", "reg", "ba", "cor") for e in ("png", "svg")
    )


def test_svg_is_reproducible(tmp_path):
    df = pd.DataFrame({"site": ["a", "a", "b"], "method": ["m"] * 3, "Dice": [0.5, 0.7, 0.9]})
    a = save_figure(raincloud_figure(df, value="Dice"), tmp_path / "a")[1].read_bytes()
    b = save_figure(raincloud_figure(df, value="Dice"), tmp_path / "b")[1].read_bytes()
    assert a == b
