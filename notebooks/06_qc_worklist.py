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
# # 06 · From QC ratings to the correction worklist, and back
#
# Reviewers rate each scan of the HTML QC report (`OUT_DIR/report/index.html`)
# *pass*, *fail* or *artifact*, with a comment, and export the ratings as CSV or YAML.
# This notebook does in Python what `cohort-sciseg ratings worklist` and
# `cohort-sciseg ratings prepare` do: it reads the ratings, sets them beside the
# report's automatic flags, lists the scans to correct with their images, predicted
# masks and the manual-mask paths the corrections go to, and shows how the corrected
# masks and the exclusions come back into the next run.
#
# **Your own run.** Set `COHORT_SCISEG_RUN` to a finished run folder (the `-o` folder
# of `cohort-sciseg run`) and `COHORT_SCISEG_RATINGS` to the ratings file exported
# from its report, before starting Jupyter, or edit `RUN_DIR` and `RATINGS` below.
# The default run, `../demo/derivatives`, is the one of `cohort-sciseg demo` started in
# the repository root; without a ratings file the notebook writes a small one of its
# own (in a temporary folder) to show the round trip.

# %%
import os
import tempfile
from pathlib import Path

import pandas as pd

from cohort_sciseg import open_run
from cohort_sciseg.report import (
    excluded_scans,
    prepare_corrections,
    read_ratings,
    scan_flags,
    worklist,
    write_ratings,
)

RUN_DIR = Path(os.environ.get("COHORT_SCISEG_RUN", "../demo/derivatives"))
RATINGS = os.environ.get("COHORT_SCISEG_RATINGS")  # None: the demo ratings below
PREPARE = False  # True: copy the failed scans' predicted masks into the datasets (see the end)
run = open_run(RUN_DIR)

# %% [markdown]
# ## The report's flags
#
# The QC report flags scans that failed, look implausible (`suspect`, with the
# reasons), have an empty cord, lesion outside the cord, or manual masks unusable as
# a reference (`validation-excluded`). The same rule, on the scans table:

# %%
scans = run.scans.assign(flags=[" ".join(scan_flags(row)) for row in run.scans.to_dict("records")])
scans[["site", "scan_id", "status", "flags", "lesion_dice", "total_volume_mm3", "suspect_reasons"]]

# %% [markdown]
# ## The ratings
#
# The export format (`cohort_sciseg.report.rating_files`): columns `scan_id, site, sub,
# ses, rating, comment, rated_at`. For the demo, a reviewer's file is made here:
# the scan with the lowest lesion Dice rated *fail*, the next one *artifact*, the
# rest *pass*.

# %%
if RATINGS is None:
    worst = scans.sort_values("lesion_dice").reset_index(drop=True)
    rest = max(len(worst) - 2, 0)
    rating = (["fail", "artifact"] + ["pass"] * rest)[: len(worst)]
    comment = ["lesion under-segmented, see the sagittal view", "motion artifact"] + [""] * rest
    comment = comment[: len(worst)]
    demo = worst[["scan_id", "site", "sub", "ses"]].assign(
        rating=rating, comment=comment, rated_at="2024-05-01T12:00:00Z"
    )
    folder = tempfile.TemporaryDirectory()  # removed when the kernel stops
    RATINGS = Path(folder.name) / "ratings.csv"
    write_ratings(demo, RATINGS)
    print(Path(RATINGS).read_text()[:400])

# %%
ratings = read_ratings(RATINGS)
ratings["rating"].value_counts()

# %% [markdown]
# Ratings and flags side by side: a scan the reviewer failed that carries no flag
# (or a flagged scan rated *pass*) is worth a second look at the flag rules.

# %%
ratings.merge(scans[["scan_id", "flags", "lesion_dice"]], on="scan_id", how="left")[
    ["site", "scan_id", "rating", "flags", "lesion_dice", "comment"]
]

# %% [markdown]
# ## The worklist
#
# `worklist()` is `cohort-sciseg ratings worklist RATINGS OUT_DIR`: the scans rated
# *fail* (and here *artifact*, as `--include-artifact` does), with the image, the run's
# predicted masks, where the corrected masks go (`*_target_path`, in the dataset's
# `derivatives/labels`, where discovery reads manual masks) and the manual masks that
# exist already (`*_existing_path`).

# %%
todo = worklist(ratings, run.root, ratings_to_fix=("fail", "artifact"))
todo.T

# %% [markdown]
# ## Back into the run
#
# `prepare_corrections(todo)` (`cohort-sciseg ratings prepare RATINGS OUT_DIR`) copies
# each predicted mask to its target as the starting point of the correction, never
# over an existing manual mask unless `overwrite=True`. It writes into the BIDS
# datasets, so it runs here only with `PREPARE = True`. What it would do:

# %%
plan = pd.DataFrame(
    [
        {"scan_id": r["scan_id"], "structure": s, "target": r[f"{s}_target_path"],
         "action": "copy the prediction" if pd.isna(r[f"{s}_existing_path"]) else "keep the manual mask"}
        for r in todo.to_dict("records")
        for s in ("cord", "lesion")
    ]
)
if PREPARE:
    print(prepare_corrections(todo))
plan

# %% [markdown]
# After correcting the masks (FSLeyes: `fsleyes IMAGE MASK`; ITK-SNAP:
# `itksnap -g IMAGE -s MASK`), the next `cohort-sciseg run ... --resume` reads them as
# manual masks and validates those scans again. Scans that should stay out of the
# analyses (rated *fail* or *artifact*) are left out with `--exclude-ratings`:

# %%
dropped = sorted(excluded_scans(ratings, exclude=("fail", "artifact")))
bids_dirs = " ".join(run.summary["bids_dirs"])
print(f"scans left out: {dropped}")
print(f"cohort-sciseg run {bids_dirs} -o {run.root} --resume --exclude-ratings {RATINGS}")

# %% [markdown]
# After that run, `run.excluded()` lists them with the reason `excluded from the run`,
# next to the failed and suspect scans:

# %%
run.excluded()
