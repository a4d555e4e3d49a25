# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Segmentation against the manual masks
#
# How close the predicted cord and lesion masks are to the manual ones, per site and
# method, in the form of the SCIseg paper's tables: Dice, relative volume error,
# surface distances, and lesion-wise PPV, sensitivity and F1. The ANIMA-compatible
# values (what the paper reports, quirks included) stand next to the corrected ones.
#
# **Your own run.** Set `COHORT_SCISEG_RUN` to a finished run folder (the `-o` folder
# of `cohort-sciseg run`) before starting Jupyter, or edit `RUN_DIR` below; the
# default `../demo/derivatives` is the run of `cohort-sciseg demo` started in the
# repository root. The run needs manual masks (its `validation/` folder).

# %%
import os
from pathlib import Path

import pandas as pd
from IPython.display import display

from cohort_sciseg import open_run
from cohort_sciseg.report.figures import raincloud_figure
from cohort_sciseg.validation.stats import average_over_splits

# %matplotlib inline

RUN_DIR = Path(os.environ.get("COHORT_SCISEG_RUN", "../demo/derivatives"))
run = open_run(RUN_DIR)
if run.validation is None:
    raise RuntimeError(f"{run.root} has no validation: its scans have no manual masks")
print(f"methods: {run.validation['methods']}; distances in {run.validation['units']}")

# %% [markdown]
# ## The metrics and what they mean
#
# `tables/metrics` is long: one row per scan, method, structure and metric.
# `source` says whether a value is ANIMA-compatible (`anima`, ANIMA's names:
# `animaSegPerfAnalyzer -d -s [-l]` as the paper ran it) or `corrected`.
#
# | metric | source | definition (S = prediction, T = manual mask) | better |
# |---|---|---|---|
# | `Dice` | anima | 2\|S∩T\| / (\|S\|+\|T\|) | higher |
# | `RelativeVolumeError` | anima | 100 (\|S\|-\|T\|) / \|T\|, signed %, voxel counts | 0 |
# | `HausdorffDistance` | anima | largest distance between the two masks, whole masks | lower |
# | `ContourMeanDistance` | anima | the larger of the two directed mean contour distances | lower |
# | `SurfaceDistance` | anima | meant as the pooled mean surface distance; ANIMA never resets an accumulator, so it is a running minimum (often ~0): the paper's "surface distance" | — |
# | `PPVL`, `SensL`, `F1_score` | anima | lesion-wise PPV, sensitivity and F1: 6-connected lesions of at least 3 mm³; a lesion is detected when more than 10% of it is covered and the covering lesions lie at most 70% outside (ANIMA's alpha, beta, gamma) | higher |
# | `assd` | corrected | pooled average symmetric surface distance | lower |
# | `hd95` | corrected | 95th percentile of the surface distances | lower |
# | `nsd_1mm` | corrected | normalised surface distance: share of both contours within 1 mm of the other | higher |
# | `lesion_ppv_mr`, `lesion_sensitivity_mr`, `lesion_f1_mr` | corrected | lesion-wise, MetricsReloaded style: a lesion counts as found at ≥ 10% coverage | higher |
# | `lesion_f1_1to1` | corrected | lesion-wise F1 with one-to-one matching | higher |
#
# Distances are in the run's convention (`units`: mm, or voxels as model_seg_sci
# effectively computed them). The columns of the table describe themselves:

# %%
metrics = run.metrics
pd.Series(metrics.attrs["descriptions"], name="description").to_frame()

# %% [markdown]
# ## The paper's tables: mean ± SD per site and method
#
# From the validation study's summary (`validation/stats/metrics_summary.parquet`;
# a model trained on several splits is averaged per scan first).

# %%
summary = run.statistics["metrics_summary"]


def paper_table(structure, names, source="anima"):
    rows = summary[(summary["structure"] == structure) & (summary["source"] == source)
                   & summary["metric"].isin(names)]
    table = rows.pivot(index=["method", "stratum"], columns="metric", values="mean_sd")
    return table[[n for n in names if n in table.columns]]


paper_table("cord", ["Dice", "RelativeVolumeError", "HausdorffDistance", "SurfaceDistance"])

# %%
paper_table("lesion", ["Dice", "RelativeVolumeError", "PPVL", "SensL", "F1_score"])

# %% [markdown]
# ## ANIMA-compatible next to corrected
#
# The same comparison measured both ways (overall): the ANIMA surface distance
# is a running minimum, the corrected ASSD the real mean; ANIMA's lesion F1 uses its
# detection rule, the corrected one MetricsReloaded's.

# %%
PAIRS = [("HausdorffDistance", "hd95"), ("SurfaceDistance", "assd"), ("PPVL", "lesion_ppv_mr"),
         ("SensL", "lesion_sensitivity_mr"), ("F1_score", "lesion_f1_mr")]
overall = summary[summary["stratum"] == "overall"]
overall = overall.set_index(["method", "structure", "metric"])["mean_sd"]
pd.DataFrame(
    [
        {"method": m, "structure": s, "ANIMA": a, "ANIMA value": overall.get((m, s, a)),
         "corrected": c, "corrected value": overall.get((m, s, c))}
        for m, s in sorted({k[:2] for k in overall.index})
        for a, c in PAIRS
        if (m, s, a) in overall.index or (m, s, c) in overall.index
    ]
)

# %% [markdown]
# ## Per site, scan by scan
#
# Raincloud plots (the validation figures' function): each point is a scan.

# %%
per_scan = average_over_splits(metrics, value="value")
for structure in ("cord", "lesion"):
    dice = per_scan[(per_scan["structure"] == structure) & (per_scan["metric"] == "Dice")]
    display(raincloud_figure(dice, value="value", group="site", hue="method", title=f"{structure} Dice"))

# %%
f1 = per_scan[(per_scan["structure"] == "lesion") & (per_scan["metric"] == "lesion_f1_mr")]
raincloud_figure(f1, value="value", group="site", hue="method", title="lesion F1 (MetricsReloaded)")
