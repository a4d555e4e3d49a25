"""The batch runner: Dask scheduling, exactly-once records and run bookkeeping.

The only package (with the CLI) that imports Dask.
"""
