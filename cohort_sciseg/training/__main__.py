"""``python -m cohort_sciseg.training``: train the demo model (see :mod:`cohort_sciseg.training.cli`)."""

import contextlib

from cohort_sciseg.training.cli import main

with contextlib.suppress(KeyboardInterrupt):
    raise SystemExit(main())
