"""``python -m cohort_sciseg.cli ...``: the same as ``cohort-sciseg ...``."""

import sys

from cohort_sciseg.cli import main

sys.exit(main())
