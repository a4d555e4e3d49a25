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
# # 03 · Biomarkers: manual vs predicted
#
# The SCIseg paper's headline test: are the lesion biomarkers measured on the
# predicted masks the same as those measured on the manual masks? Per scan, for the
# total lesion volume, the total lesion length and the maximal axial damage ratio:
# normality of both and of their difference (D'Agostino-Pearson), the Wilcoxon
# signed-rank test, regression against the identity line and the Bland-Altman bias
# and limits of agreement. Then the tissue bridges of the predicted lesions.
#
# **Your own run.** Set `COHORT_SCISEG_RUN` to a finished run folder (the `-o` folder
# of `cohort-sciseg run`) before starting Jupyter, or edit `RUN_DIR` below; the
# default `../demo/derivatives` is the run of `cohort-sciseg demo` started in the
# repository root. The comparison needs scans with manual masks.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import display

from cohort_sciseg import open_run
from cohort_sciseg.report.figures import bland_altman_figure, regression_figure
from cohort_sciseg.report.validation import BIOMARKER_UNITS
from cohort_sciseg.validation.stats import BIOMARKERS, average_over_splits

RUN_DIR = Path(os.environ.get("COHORT_SCISEG_RUN", "../demo/derivatives"))
run = open_run(RUN_DIR)
BIOMARKER_UNITS  # the paper's per-scan biomarkers and their units

# %% [markdown]
# ## The tests, overall
#
# One row per method and biomarker (`run.biomarker_agreement()`). The paper found
# no significant difference for length and damage ratio, and a significant one for
# volume. Normality p-values are missing below 8 scans (the test needs them); the
# `note` column says so.

# %%
agreement = run.biomarker_agreement()
agreement[["method", "biomarker", "unit", "n", "mean_manual", "mean_predicted",
           "normality_p_manual", "normality_p_predicted", "normality_p_difference",
           "wilcoxon_p", "bias", "loa_lower", "loa_upper", "slope", "intercept", "note"]]

# %% [markdown]
# The same per site (`by_site=True`; the validation study's
# `validation/stats/agreement.parquet` holds these rows in long form). The Wilcoxon
# p-values:

# %%
by_site = run.biomarker_agreement(by_site=True)
by_site.pivot_table(index=["method", "biomarker"], columns="stratum", values="wilcoxon_p")

# %% [markdown]
# ## Regression and Bland-Altman
#
# Each point is a scan (averaged over a model's splits). For each biomarker, first the
# predicted value against the manual one, with the identity line (dashed) and the
# least-squares line; then the Bland-Altman plot: the difference (predicted - manual)
# against the mean, with the bias and the 95% limits of agreement.

# %%
per_scan = average_over_splits(run.biomarkers, value=list(BIOMARKERS))
wide = per_scan.pivot_table(index="scan_id", columns="method", values=list(BIOMARKERS))
methods = sorted(set(per_scan["method"]) - {"manual"})

for method in methods:
    for name in BIOMARKERS:
        manual, predicted = wide[(name, "manual")], wide[(name, method)]
        label, unit = f"{name} ({method})", BIOMARKER_UNITS[name]
        display(regression_figure(manual, predicted, measure=label, unit=unit))
        display(bland_altman_figure(manual, predicted, measure=label, unit=unit))

# %% [markdown]
# ## Tissue bridges
#
# Midsagittal dorsal and ventral tissue bridges (Huber 2017, Pfyffer 2019). Per scan,
# the biomarkers table holds those of the scan's largest lesion (most voxels in the
# cord; null without lesion), for the manual and the predicted masks, so
# `run.biomarker_agreement()` compares them like the other biomarkers (scans without
# a lesion in either mask are left out of a pair).

# %%
BRIDGES = ["dorsal_bridge_width_mm", "ventral_bridge_width_mm", "total_bridge_width_mm"]
bridged = [b for b in BRIDGES if b in agreement["biomarker"].values]
print(f"bridges compared with the manual masks: {bridged or 'none in this run'}")
agreement[agreement["biomarker"].isin(BRIDGES)][["method", "biomarker", "n", "wilcoxon_p", "bias", "loa_lower",
                                                 "loa_upper"]]

# %%
bridges = average_over_splits(run.biomarkers, value=BRIDGES).pivot_table(
    index="scan_id", columns="method", values="total_bridge_width_mm")
for method in methods:
    pair = bridges[["manual", method]].dropna()
    display(bland_altman_figure(pair["manual"], pair[method], measure=f"total tissue bridge ({method})", unit="mm"))

# %% [markdown]
# Per lesion, from `tables/lesions` (the predicted masks). `bridge_fallback` marks
# lesions that miss the midsagittal slices (SCT's fallback: the minimum cord A-P
# diameter split 50/50).

# %%
lesions = run.lesions
lesions.groupby("site")[BRIDGES].agg(["count", "median", "min", "max"]).T.round(2)

# %%
fig, ax = plt.subplots(figsize=(5, 4))
for site, group in lesions.groupby("site"):
    ax.scatter(group["max_axial_damage_ratio"], group["total_bridge_width_mm"], label=site, s=15)
ax.set_xlabel("maximal axial damage ratio")
ax.set_ylabel(f"total tissue bridge width [{lesions.attrs['units']['total_bridge_width_mm']}]")
ax.set_title("Predicted lesions: damage ratio vs tissue bridges")
ax.legend(title="site")
plt.show()
