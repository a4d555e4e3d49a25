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
# # 04 · Biomarkers and clinical scores
#
# Do the lesion biomarkers follow the patients' impairment? Spearman correlations of
# the total lesion volume, total lesion length and maximal axial damage ratio (manual
# and predicted masks) with the lower-extremity motor score (LEMS), light touch and
# pin prick totals at discharge, as in the SCIseg paper's clinical figure. Each
# subject counts once (the mean of its scans); `n` is the number of subjects left
# after dropping missing values.
#
# **Your own run.** Set `COHORT_SCISEG_RUN` to a finished run folder (the `-o` folder
# of `cohort-sciseg run`) before starting Jupyter, or edit `RUN_DIR` below; the
# default `../demo/derivatives` is the run of `cohort-sciseg demo` started in the
# repository root. The scores come from each dataset's `participants.tsv`
# (`initial_*` and `discharge_*` columns; AIS grades A-E count as 1-5).

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import display

from cohort_sciseg import open_run
from cohort_sciseg.report.figures import correlation_figure
from cohort_sciseg.validation.stats import BIOMARKERS

RUN_DIR = Path(os.environ.get("COHORT_SCISEG_RUN", "../demo/derivatives"))
run = open_run(RUN_DIR)
SCORES = ["discharge_LEMS", "discharge_light_touch_total", "discharge_pin_prick_total"]
run.participants.groupby("site")[SCORES].count()  # subjects with each score, per site

# %% [markdown]
# ## The correlations
#
# `run.clinical_correlations()` uses the validated scans' biomarkers (manual and
# predicted); `source="scans"` would use the predicted biomarkers of every segmented
# scan instead, with or without manual masks. `estimate` is Spearman's rho.

# %%
correlations = run.clinical_correlations(scores=SCORES)
correlations[["method", "biomarker", "score", "n", "estimate", "p", "note"]].round(3)

# %%
methods = list(correlations["method"].unique())
fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods) + 2.5, 3.5), squeeze=False,
                         layout="constrained")
for k, (ax, method) in enumerate(zip(axes[0], methods, strict=True)):
    mine = correlations[correlations["method"] == method]
    rho = mine.pivot(index="biomarker", columns="score", values="estimate")
    rho = rho.loc[[b for b in BIOMARKERS if b in rho.index], SCORES]
    image = ax.imshow(rho.to_numpy(float), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(SCORES)), [s.removeprefix("discharge_") for s in SCORES],
                  rotation=30, ha="right")
    ax.set_yticks(range(len(rho.index)), rho.index if k == 0 else [])
    for i, biomarker in enumerate(rho.index):
        for j, score in enumerate(SCORES):
            ax.annotate(f"{rho.loc[biomarker, score]:.2f}", (j, i), ha="center", va="center",
                        fontsize="small")
    ax.set_title(method)
fig.colorbar(image, ax=axes[0].tolist(), label="Spearman rho (discharge scores)")
plt.show()

# %% [markdown]
# ## Subject by subject
#
# One point per subject: its biomarker (mean over its scans and a model's splits)
# against its score, with rho and p from the table above.

# %%
subjects = (
    run.biomarkers.groupby(["method", "site", "sub"])[list(BIOMARKERS)].mean().reset_index()
    .assign(participant_id=lambda d: "sub-" + d["sub"])
    .merge(run.participants, on=["site", "participant_id"], how="left")
)
method = next(m for m in methods if m != "manual")  # the first predicted method
for biomarker in BIOMARKERS:
    row = correlations.query(
        "method == @method and biomarker == @biomarker and score == 'discharge_LEMS'"
    ).iloc[0]
    mine = subjects[subjects["method"] == method]
    display(correlation_figure(mine[biomarker], mine["discharge_LEMS"], x_label=f"{biomarker} ({method})",
                               y_label="discharge LEMS", rho=row["estimate"], p=row["p"]))
