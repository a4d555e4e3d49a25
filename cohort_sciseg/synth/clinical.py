"""Clinical scores that depend on lesion burden, for synthetic ``participants.tsv``.

The columns are those of the SCIseg clinical table (REFERENCE.md section 5). Scores
are driven by a latent injury severity in [0, 1] built from the analytic lesion
burden (total volume and maximal axial damage ratio) plus noise, so a cohort shows
the negative burden-outcome correlations the paper reports (Spearman), without
being a deterministic function of the masks.

Model (all draws from the subject's own generator)::

    severity  = clip(0.55 min(ratio / 0.7, 1) + 0.45 min(volume / 600 mm3, 1) + N(0, 0.1), 0, 1)
    AIS       = A if severity >= 0.8, B >= 0.68, C >= 0.5, D >= 0.1, else E
    LEMS      = 50 (1 - severity)^1.5 + N(0, 3)          (0 for AIS A, 50 for AIS E)
    pin prick = 112 (1 - 0.9 severity) + N(0, 6)          (112 for AIS E)
    light touch = 112 (1 - 0.8 severity) + N(0, 6)        (112 for AIS E)
    recovery  r = clip(0.5 (1 - severity) + N(0, 0.1), 0, 1)
    discharge score = initial + (max - initial) r + N(0, 1.5 or 3); AIS from severity (1 - 0.6 r),
                      never worse than the initial grade

Scores are rounded and clipped to their ranges (LEMS 0-50, pin prick and light
touch totals 0-112; ISNCSCI).
"""

from __future__ import annotations

import numpy as np

from cohort_sciseg.records import CLINICAL_COLUMNS

__all__ = ["AIS_GRADES", "CLINICAL_COLUMNS", "injury_severity", "simulate_clinical_scores"]

#: ASIA Impairment Scale grades, most to least severe.
AIS_GRADES = ("A", "B", "C", "D", "E")


_AIS_THRESHOLDS = (0.8, 0.68, 0.5, 0.1)
REFERENCE_VOLUME_MM3 = 600.0
REFERENCE_RATIO = 0.7


def injury_severity(total_lesion_volume_mm3: float, max_axial_damage_ratio: float) -> float:
    """Noise-free severity in [0, 1] from lesion burden (0: no lesion)."""
    v = min(max(total_lesion_volume_mm3, 0.0) / REFERENCE_VOLUME_MM3, 1.0)
    r = min(max(max_axial_damage_ratio, 0.0) / REFERENCE_RATIO, 1.0)
    return 0.55 * r + 0.45 * v


def _grade(severity: float) -> int:
    for i, t in enumerate(_AIS_THRESHOLDS):
        if severity >= t:
            return i
    return 4


def _score(value: float, top: int) -> int:
    return int(np.clip(np.rint(value), 0, top))


def simulate_clinical_scores(
    total_lesion_volume_mm3: float,
    max_axial_damage_ratio: float,
    rng: np.random.Generator,
) -> dict[str, int | str]:
    """Initial and discharge scores of one subject (keys: :data:`CLINICAL_COLUMNS`).

    Parameters
    ----------
    total_lesion_volume_mm3
        Total lesion volume, mm3.
    max_axial_damage_ratio
        Maximal lesion/cord area ratio over axial planes (unitless, 0-1).
    rng
        The subject's generator.
    """
    s = float(
        np.clip(
            injury_severity(total_lesion_volume_mm3, max_axial_damage_ratio) + rng.normal(0, 0.1),
            0,
            1,
        )
    )
    g0 = _grade(s)
    lems0 = _score(50 * (1 - s) ** 1.5 + rng.normal(0, 3), 50)
    pp0 = _score(112 * (1 - 0.9 * s) + rng.normal(0, 6), 112)
    lt0 = _score(112 * (1 - 0.8 * s) + rng.normal(0, 6), 112)
    r = float(np.clip(0.5 * (1 - s) + rng.normal(0, 0.1), 0, 1))
    lems1 = _score(lems0 + (50 - lems0) * r + rng.normal(0, 1.5), 50)
    pp1 = _score(pp0 + (112 - pp0) * r + rng.normal(0, 3), 112)
    lt1 = _score(lt0 + (112 - lt0) * r + rng.normal(0, 3), 112)
    g1 = max(g0, _grade(s * (1 - 0.6 * r)))
    if g0 == 0:
        lems0 = 0
    if g1 == 0:
        lems1 = 0
    if g0 == 4:
        lems0, pp0, lt0 = 50, 112, 112
    if g1 == 4:
        lems1, pp1, lt1 = 50, 112, 112
    return {
        "initial_LEMS": lems0,
        "discharge_LEMS": lems1,
        "initial_ais": AIS_GRADES[g0],
        "discharge_ais": AIS_GRADES[g1],
        "initial_pin_prick_total": pp0,
        "discharge_pin_prick_total": pp1,
        "initial_light_touch_total": lt0,
        "discharge_light_touch_total": lt1,
    }
