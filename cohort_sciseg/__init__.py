"""cohort-sciseg: batch cohort analysis of spinal cord injury T2w MRI with SCIseg on Dask.

The package does not configure logging; the command line does (``cohort_sciseg.cli``).
``cohort_sciseg.open_run(OUT_DIR)`` opens a finished run for analysis
(:mod:`cohort_sciseg.analysis`; imported on first use, so that ``import cohort_sciseg``
stays light).
"""

import logging as _logging
from typing import Any as _Any

from cohort_sciseg._version import __version__

__all__ = ["__version__", "open_run"]

# A library stays silent unless the application configures logging (the CLI does).
_logging.getLogger(__name__).addHandler(_logging.NullHandler())


def __getattr__(name: str) -> _Any:
    if name == "open_run":
        from cohort_sciseg.analysis import open_run

        return open_run
    msg = f"module 'cohort_sciseg' has no attribute {name!r}"
    raise AttributeError(msg)
