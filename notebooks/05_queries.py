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
# # 05 · Queries across sites with DuckDB and polars
#
# The run's tables are Parquet files partitioned by site (`tables/<table>/site=<site>/`).
# DuckDB and polars read them in place, all sites at once, without loading them
# into memory first: the way to query a cohort of thousands of scans. Three
# questions, each asked both ways:
#
# 1. every lesion longer than 20 mm with a maximal axial damage ratio above 0.5 in a
#    cervical injury;
# 2. the lesion burden of each site;
# 3. the scans an analysis leaves out, and why.
#
# **Your own run.** Set `COHORT_SCISEG_RUN` to a finished run folder (the `-o` folder
# of `cohort-sciseg run`) before starting Jupyter, or edit `RUN_DIR` below; the
# default `../demo/derivatives` is the run of `cohort-sciseg demo` started in the
# repository root.

# %%
import os
from pathlib import Path

import polars as pl

from cohort_sciseg import open_run

RUN_DIR = Path(os.environ.get("COHORT_SCISEG_RUN", "../demo/derivatives"))
run = open_run(RUN_DIR)
con = run.duckdb()  # one view per table over the Parquet files
lazy = run.polars()  # one LazyFrame per table
con.sql("SHOW TABLES")

# %% [markdown]
# ## 1. Long, severe lesions in cervical injuries
#
# "Cervical" is read from the lesion's vertebral levels (`lesions.vert_levels`,
# C1-C7) when the run had a vertebral labelling; otherwise from the participant's
# neurological level of injury (`injury_level` in `participants.tsv`, C1-C8).
# The thresholds are parameters of the query.

# %%
n_lesions, n_levels = con.execute("SELECT count(*), count(vert_levels) FROM lesions").fetchone()
print(f"{n_levels} of {n_lesions} lesions have vertebral levels")
if n_levels == 0:
    print("no vertebral labelling in this run (the demo has none): injury_level says cervical")

# %%
LONG_SEVERE = """
    SELECT l.site, l.scan_id, l.lesion_id,
           round(l.length_mm, 1) AS length_mm,
           round(l.max_axial_damage_ratio, 2) AS damage_ratio,
           l.vert_levels, p.injury_level
    FROM lesions AS l
    JOIN scans AS s USING (site, scan_id)
    LEFT JOIN participants AS p ON p.site = s.site AND p.participant_id = 'sub-' || s.sub
    WHERE l.length_mm > $min_length_mm
      AND l.max_axial_damage_ratio > $min_ratio
      AND CASE WHEN l.vert_levels IS NOT NULL
               THEN len(list_filter(l.vert_levels, lambda v: regexp_full_match(v, 'C[1-7]'))) > 0
               ELSE regexp_full_match(p.injury_level, 'C[1-8]') END
    ORDER BY l.length_mm DESC
"""
long_severe = con.execute(LONG_SEVERE, {"min_length_mm": 20, "min_ratio": 0.5}).df()
print(f"{len(long_severe)} lesion(s) longer than 20 mm, damage ratio above 0.5, cervical injury")
long_severe

# %% [markdown]
# The same query with looser thresholds (the synthetic demo's lesions are milder):

# %%
con.execute(LONG_SEVERE, {"min_length_mm": 10, "min_ratio": 0.3}).df()

# %% [markdown]
# With polars: the same joins and filter as expressions, evaluated lazily.

# %%
cervical = (
    pl.when(pl.col("vert_levels").is_not_null())
    .then(pl.col("vert_levels").list.eval(pl.element().str.contains(r"^C[1-7]$")).list.any())
    .otherwise(pl.col("injury_level").str.contains(r"^C[1-8]$"))
)
scans = lazy["scans"].select("site", "scan_id", participant_id=pl.lit("sub-") + pl.col("sub"))
participants = lazy["participants"].select("site", "participant_id", "injury_level")
(
    lazy["lesions"]
    .join(scans, on=["site", "scan_id"])
    .join(participants, on=["site", "participant_id"], how="left")
    .filter(pl.col("length_mm") > 20, pl.col("max_axial_damage_ratio") > 0.5, cervical)
    .select("site", "scan_id", "lesion_id", "length_mm", "max_axial_damage_ratio",
            "vert_levels", "injury_level")
    .sort("length_mm", descending=True)
    .collect()
)

# %% [markdown]
# ## 2. Lesion burden per site
#
# Over the segmented scans (`status = 'done'`), a scan without lesion counting as 0.

# %%
con.sql("""
    SELECT site,
           count(*) AS scans,
           sum(n_lesions) AS lesions,
           round(median(total_volume_mm3), 1) AS median_volume_mm3,
           round(median(total_length_mm), 1) AS median_length_mm,
           round(max(max_axial_damage_ratio), 2) AS max_damage_ratio
    FROM scans
    WHERE status = 'done'
    GROUP BY site
    ORDER BY site
""")

# %%
(
    lazy["scans"]
    .filter(pl.col("status") == "done")
    .group_by("site")
    .agg(
        scans=pl.len(),
        lesions=pl.col("n_lesions").sum(),
        median_volume_mm3=pl.col("total_volume_mm3").median().round(1),
        median_length_mm=pl.col("total_length_mm").median().round(1),
        max_damage_ratio=pl.col("max_axial_damage_ratio").max().round(2),
    )
    .sort("site")
    .collect()
)

# %% [markdown]
# ## 3. The scans an analysis leaves out, and why
#
# `run.excluded()` gathers them (failed scans, unusable manual masks, suspect results,
# scans excluded by QC ratings); a DataFrame registered in DuckDB joins the tables
# like any view.

# %%
con.register("excluded", run.excluded())
con.sql("""
    SELECT e.site, e.reason, count(*) AS scans, any_value(e.detail) AS example
    FROM excluded AS e
    GROUP BY e.site, e.reason
    ORDER BY e.site, e.reason
""")

# %% [markdown]
# From the tables themselves: the failed scans with the stage and message of their
# last failure, and the done scans whose results the validation or morphometry flagged.

# %%
con.sql("""
    SELECT s.site, s.scan_id, s.status, s.validation, s.suspect_reasons,
           f.stage AS failed_stage, f.message
    FROM scans AS s
    LEFT JOIN (
        SELECT * FROM failures
        QUALIFY row_number() OVER (PARTITION BY scan_id ORDER BY timestamp DESC) = 1
    ) AS f USING (scan_id)
    WHERE s.status <> 'done' OR s.validation IN ('excluded', 'incomplete') OR s.suspect
    ORDER BY s.site, s.scan_id
""").df()
