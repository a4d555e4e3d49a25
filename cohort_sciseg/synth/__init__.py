"""Synthetic multi-site SCI cohorts for demos, tests and benchmarks.

- :func:`synthesize_cohort`: fully synthetic BIDS datasets (one per site) of T2w
  phantoms with exact cord and lesion masks, clinical scores and ground-truth tables.
- :func:`insert_lesions`: semi-synthetic data, i.e. ellipsoidal lesions inserted
  into the cords of a real BIDS dataset.

``cohort_sciseg.synth.tree`` (skeleton BIDS trees for discovery tests) is a
separate module, imported on its own.
"""

from cohort_sciseg.synth.anatomy import (
    Anatomy,
    Implant,
    Lesion,
    draw_anatomy,
    draw_implant,
    draw_lesions,
    max_axial_damage_ratio,
)
from cohort_sciseg.synth.clinical import (
    AIS_GRADES,
    CLINICAL_COLUMNS,
    injury_severity,
    simulate_clinical_scores,
)
from cohort_sciseg.synth.cohort import (
    CORD_SUFFIX,
    LESION_SUFFIX,
    PARTICIPANT_COLUMNS,
    ScanPlan,
    SubjectPlan,
    SynthCohort,
    plan_cohort,
    plan_subject,
    synthesize_cohort,
)
from cohort_sciseg.synth.ground_truth import GT_LESIONS_SCHEMA, GT_SCANS_SCHEMA, measure_slices
from cohort_sciseg.synth.longitudinal import (
    LESION_EVENTS_SCHEMA,
    MOTION_SCHEMA,
    SESSION_COLUMNS,
    LongitudinalCohort,
    synthesize_longitudinal_cohort,
)
from cohort_sciseg.synth.protocols import DEFAULT_PROTOCOLS, SiteProtocol, site_protocol
from cohort_sciseg.synth.render import RenderedScan, render_scan
from cohort_sciseg.synth.semisynthetic import (
    find_masked_images,
    insert_lesions,
    insert_lesions_into_arrays,
)

__all__ = [
    "AIS_GRADES",
    "CLINICAL_COLUMNS",
    "CORD_SUFFIX",
    "DEFAULT_PROTOCOLS",
    "GT_LESIONS_SCHEMA",
    "GT_SCANS_SCHEMA",
    "LESION_EVENTS_SCHEMA",
    "LESION_SUFFIX",
    "MOTION_SCHEMA",
    "PARTICIPANT_COLUMNS",
    "SESSION_COLUMNS",
    "Anatomy",
    "Implant",
    "Lesion",
    "LongitudinalCohort",
    "RenderedScan",
    "ScanPlan",
    "SiteProtocol",
    "SubjectPlan",
    "SynthCohort",
    "draw_anatomy",
    "draw_implant",
    "draw_lesions",
    "find_masked_images",
    "injury_severity",
    "insert_lesions",
    "insert_lesions_into_arrays",
    "max_axial_damage_ratio",
    "measure_slices",
    "plan_cohort",
    "plan_subject",
    "render_scan",
    "simulate_clinical_scores",
    "site_protocol",
    "synthesize_cohort",
    "synthesize_longitudinal_cohort",
]
