"""The small hostile run of the report tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from cohort_sciseg.batch.runner import RunOptions, run_cohort
from cohort_sciseg.batch.segmenters import SegmenterSpec
from cohort_sciseg.synth import synthesize_cohort

#: Strings an attacker (or an unlucky site) could put in folder names, tables and sidecars.
HOSTILE_DIR = "q\"'<img src=x onerror=alert(1)>"
HOSTILE_VALUE = "<script>alert('pwned')</script> ../../etc/passwd \"quoted\""
HOSTILE_NAME = "Site <b onmouseover=alert(2)>bold</b> & co"


def make_hostile_run(root: Path, *, subjects_per_site: int = 2) -> dict:
    """A 2-site cohort under a hostile folder name, hostile participants.tsv values and dataset
    name, one truncated image (a failure), run with the stand-in segmenter (QC report included)."""
    cohort = synthesize_cohort(root / HOSTILE_DIR / "cohort", sites=2, subjects_per_site=subjects_per_site, seed=7)
    roots = [Path(r) for r in cohort.dataset_roots]
    tsv = roots[0] / "participants.tsv"
    table = pd.read_csv(tsv, sep="\t", dtype=str)
    table["notes"] = HOSTILE_VALUE
    table.to_csv(tsv, sep="\t", index=False)
    desc_path = roots[1] / "dataset_description.json"
    desc = json.loads(desc_path.read_text())
    desc["Name"] = HOSTILE_NAME
    desc_path.write_text(json.dumps(desc))
    images = sorted(roots[1].glob("sub-*/**/anat/*_T2w.nii.gz"))
    broken = images[-1]
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    out = root / "run"
    summary = run_cohort(
        roots, out, RunOptions(segmenter=SegmenterSpec.make("copy-manual", dilate_lesions=1), workers=1,
                               progress=False)
    )
    return {"roots": roots, "out": out, "summary": summary, "broken": broken, "broken_bytes": data}
