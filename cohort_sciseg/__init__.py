"""cohort-sciseg: batch cohort analysis of spinal cord injury T2w MRI with SCIseg on Dask.

The package does not configure logging; the command line does (``cohort_sciseg.cli``).
"""

from cohort_sciseg._version import __version__

__all__ = ["__version__"]

import logging as _logging

# A library stays silent unless the application configures logging (the CLI does).
_logging.getLogger(__name__).addHandler(_logging.NullHandler())
