"""Validation figures (reportlets): one figure per function, saved as PNG and SVG.

Each function takes tidy pandas data, returns a :class:`matplotlib.figure.Figure`
and never shows it; :func:`save_figure` writes it atomically. Figures are made
with matplotlib's object API, not pyplot: no GUI backend is needed (headless
machines, Dask workers) and none is changed (a notebook keeps its inline figures;
``display(fig)`` shows one there).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cohort_sciseg.io import atomic_write_bytes
from cohort_sciseg.validation.stat_tests import bland_altman

__all__ = [
    "bland_altman_figure",
    "correlation_figure",
    "raincloud_figure",
    "regression_figure",
    "save_figure",
]

_FORMATS = ("png", "svg")


def save_figure(fig: Figure, stem: str | os.PathLike[str], *, dpi: int = 150) -> list[Path]:
    """Write ``fig`` to ``<stem>.png`` and ``<stem>.svg`` atomically."""
    out = []
    for fmt in _FORMATS:
        buf = io.BytesIO()
        # A fixed SVG hash salt and no date keep the files identical between runs.
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", metadata=_metadata(fmt))
        out.append(atomic_write_bytes(Path(f"{os.fspath(stem)}.{fmt}"), buf.getvalue()))
    return out


def _metadata(fmt: str) -> dict[str, str | None]:
    if fmt == "svg":
        return {"Date": None}
    return {"Software": "cohort-sciseg"}


def raincloud_figure(
    table: pd.DataFrame, *, value: str, group: str = "site", hue: str = "method", title: str = ""
) -> Figure:
    """Raincloud plot: half violin, box and jittered points of ``value`` per ``group`` and ``hue``."""
    matplotlib.rcParams["svg.hashsalt"] = "cohort-sciseg"
    data = table.dropna(subset=[value])
    groups = sorted(data[group].astype(str).unique())
    hues = sorted(data[hue].astype(str).unique())
    fig = Figure(figsize=(max(4.0, 1.6 * len(groups) * max(1, len(hues))), 4.0))
    ax = fig.subplots()
    rng = np.random.default_rng(0)
    width = 0.8 / max(1, len(hues))
    colors = matplotlib.colormaps["tab10"]
    for gi, g in enumerate(groups):
        for hi, h in enumerate(hues):
            vals = data.loc[(data[group].astype(str) == g) & (data[hue].astype(str) == h), value].to_numpy(float)
            if not vals.size:
                continue
            pos = gi + (hi - (len(hues) - 1) / 2) * width
            if vals.size > 1 and np.ptp(vals) > 0:
                parts = ax.violinplot(vals, positions=[pos], widths=width * 0.9, showextrema=False)
                for body in parts["bodies"]:  # type: ignore[attr-defined]
                    verts = body.get_paths()[0].vertices
                    verts[:, 0] = np.clip(verts[:, 0], pos, np.inf)  # keep the right half: the "cloud"
                    body.set_facecolor(colors(hi))
                    body.set_alpha(0.4)
            ax.boxplot(vals, positions=[pos - width * 0.15], widths=width * 0.15, showfliers=False)
            jitter = rng.uniform(-width * 0.35, -width * 0.2, size=vals.size)
            ax.scatter(pos + jitter, vals, s=8, color=colors(hi), label=h if gi == 0 else None)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_xlabel(group)
    ax.set_ylabel(value)
    ax.set_title(title or f"{value} by {group}")
    if len(hues) > 1 or hues:
        ax.legend(title=hue, fontsize="small")
    return fig


def regression_figure(
    manual: np.ndarray, predicted: np.ndarray, *, measure: str, unit: str = ""
) -> Figure:
    """Manual vs predicted scatter with the identity line and the least-squares line."""
    x, y = _pairs(manual, predicted)
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    ax.scatter(x, y, s=12)
    lim = [min(x.min(initial=0), y.min(initial=0)), max(x.max(initial=1), y.max(initial=1))]
    ax.plot(lim, lim, "k--", lw=1, label="identity")
    if x.size >= 2 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        xs = np.array(lim)
        ax.plot(xs, slope * xs + intercept, lw=1, label=f"fit: y = {slope:.2f}x + {intercept:.2f}")
    label = f"{measure} [{unit}]" if unit else measure
    ax.set_xlabel(f"manual {label}")
    ax.set_ylabel(f"predicted {label}")
    ax.set_title(f"{measure}: manual vs predicted (n = {x.size})")
    ax.legend(fontsize="small")
    return fig


def bland_altman_figure(
    manual: np.ndarray, predicted: np.ndarray, *, measure: str, unit: str = ""
) -> Figure:
    """Bland-Altman plot: difference (predicted - manual) against the mean, bias and 95% limits."""
    x, y = _pairs(manual, predicted)
    mean, diff = (x + y) / 2.0, y - x
    fig = Figure(figsize=(5.0, 4.0))
    ax = fig.subplots()
    ax.scatter(mean, diff, s=12)
    ba = bland_altman(x, y, measure=measure).iloc[0]  # the same numbers as the statistics table
    if diff.size:
        lines = [(float(ba.estimate), "-", f"bias {ba.estimate:.2f}")]
        if np.isfinite(ba.upper):
            lines += [
                (float(ba.upper), "--", f"+1.96 SD {ba.upper:.2f}"),
                (float(ba.lower), "--", f"-1.96 SD {ba.lower:.2f}"),
            ]
        for yv, style, text in lines:
            ax.axhline(yv, color="k", ls=style, lw=1)
            ax.annotate(text, (1.0, yv), xycoords=("axes fraction", "data"), fontsize="small", ha="right", va="bottom")
    u = f" [{unit}]" if unit else ""
    ax.set_xlabel(f"mean of manual and predicted {measure}{u}")
    ax.set_ylabel(f"predicted - manual{u}")
    ax.set_title(f"Bland-Altman: {measure} (n = {diff.size})")
    return fig


def correlation_figure(
    x: np.ndarray, y: np.ndarray, *, x_label: str, y_label: str, rho: float | None = None, p: float | None = None
) -> Figure:
    """Scatter of a biomarker against a clinical score, with Spearman's rho in the title."""
    xs, ys = _pairs(x, y)
    fig = Figure(figsize=(4.5, 4.0))
    ax = fig.subplots()
    ax.scatter(xs, ys, s=12)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    stat = f", rho = {rho:.2f}, p = {p:.3g}" if rho is not None and p is not None else ""
    ax.set_title(f"n = {xs.size}{stat}", fontsize="medium")
    return fig


def _pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]
