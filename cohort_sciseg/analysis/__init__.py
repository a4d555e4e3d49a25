"""The analysis side: a finished run folder as tables, statistics and queries (``open_run``).

:func:`open_run` reads only the run folder (``OUT_DIR`` of ``cohort-sciseg run``);
the notebooks in ``notebooks/`` are written against it. The computations behind
:class:`Run`'s question methods take plain DataFrames and live in
:mod:`cohort_sciseg.analysis.questions` (imported on first use: it loads scipy and
statsmodels).
"""

from cohort_sciseg.analysis.run import TABLE_NAMES, Run, open_run

__all__ = ["TABLE_NAMES", "Run", "open_run"]
