"""cohort-sciseg: batch cohort analysis of spinal cord injury T2w MRI with SCIseg on Dask.

The package does not configure logging; the command line does (``cohort_sciseg.cli``).
"""

from cohort_sciseg._version import __version__

__all__ = ["__version__"]
