# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · The cohort at a glance
#
# What went into a run and what came out of it: the cohort's Table 1 per site
# (participants and scanners, as in the SCIseg paper), the acquisitions (orientation,
# plane and voxel sizes of every discovered scan), and which scans were segmented,
# which failed and why.
#
# **Your own run.** The notebook reads a finished run folder (the `-o` folder of
# `cohort-sciseg run`): set the environment variable `COHORT_SCISEG_RUN` to it before
# starting Jupyter, or edit `RUN_DIR` below. The default, `../demo/derivatives`
# (relative to this notebook's folder), is the run of `cohort-sciseg demo` started in
# the repository root.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from cohort_sciseg import open_run

RUN_DIR = Path(os.environ.get("COHORT_SCISEG_RUN", "../demo/derivatives"))
run = open_run(RUN_DIR)
print(f"run folder: {run.root}")
print(f"tables: {', '.join(run.table_names)}")

# %% [markdown]
# ## The last run
#
# Each `cohort-sciseg run` writes a record (`logs/runs/run-*.json`): versions,
# options, counts and timings. `run.summary` is the last one.

# %%
summary = run.summary
pd.Series(
    {
        "started": summary["started"],
        "tool": summary["tool"],
        "segmenter": summary["segmenter"]["name"],
        "datasets": len(summary["bids_dirs"]),
        "scans": summary["n_scans"],
        **{f"scans {k}": v for k, v in summary["counts"].items()},
        "excluded by the user": summary["excluded"]["count"],
        "discovery problems": summary["discovery_problems"],
        "minutes": round(summary["seconds"] / 60, 1),
    },
    name="last run",
).to_frame()

# %% [markdown]
# ## Table 1: the cohort per site
#
# Subjects are counted once per site; scanner and acquisition rows count scans.
# Numbers are `mean ± SD (min-max)` or `count (percent)`.

# %%
run.table1(by="site")

# %% [markdown]
# ## Acquisitions
#
# From the discovered scans (`tables/discovered_scans.parquet`): one row per
# site, plane and voxel size, with the orientations the arrays are stored in. Voxel
# sizes are along the array axes as stored (the orientation says which anatomical axis
# each one is: `PSR` stores posterior, superior, right).

# %%
acquisitions = run.discovered.groupby(
    ["site", "acquisition_plane", "voxel_x_mm", "voxel_y_mm", "voxel_z_mm"], dropna=False
).agg(
    scans=("scan_id", "size"),
    orientations=("orientation", lambda o: ", ".join(sorted(set(o)))),
    manufacturer=("manufacturer", "first"),
    field_strength_t=("magnetic_field_strength_t", "first"),
)
acquisitions

# %% [markdown]
# ## Scans done, failed and left out
#
# `run.site_summary()` counts the scans of each site by outcome; `run.excluded()`
# lists every scan an analysis leaves out (failed, unusable manual masks, suspect
# results, excluded by QC ratings) with the reason.

# %%
sites = run.site_summary()
sites

# %%
counts = sites.set_index("site")
outcomes = pd.DataFrame({
    "done": counts["scans_done"] - counts["scans_suspect"],
    "suspect": counts["scans_suspect"],
    "failed": counts["scans_failed"],
})
ax = outcomes.plot.bar(stacked=True, figsize=(5, 3), rot=0,
                       color=["tab:blue", "tab:orange", "tab:red"])
ax.set_ylabel("scans")
ax.set_title("Scans per site and outcome")
ax.legend(loc="upper left", bbox_to_anchor=(1, 1))
plt.show()

# %%
excluded = run.excluded()
print(f"{excluded['scan_id'].nunique()} scan(s) left out of the analyses")
excluded

# %% [markdown]
# The failures (`tables/failures`), with the stage that failed and the message
# (which says what to fix):

# %%
run.failures
