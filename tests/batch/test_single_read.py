"""One scan, one read: the stages of a scan decode each input file once and never read back their own masks.

The count is taken where the voxels and the header come off the disk
(``cohort_sciseg.io.nifti``'s payload and header readers), for one scan with
manual masks processed by the real nnU-Net engine, with validation and the QC
page. The content hash of the resume key reads the files' bytes separately
(:func:`cohort_sciseg.io.sha256_file`, which decodes nothing) and is not counted.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from cohort_sciseg.batch.segmenters import SegmenterSpec
from cohort_sciseg.batch.store import RecordStore
from cohort_sciseg.batch.tasks import TaskConfig, process_scan
from cohort_sciseg.discover import find_scans
from cohort_sciseg.io import nifti
from cohort_sciseg.synth import synthesize_cohort


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    root = tmp_path_factory.mktemp("single-read")
    cohort = synthesize_cohort(root / "cohort", sites=1, subjects_per_site=1, seed=11)
    scans = [s for s in find_scans([Path(r) for r in cohort.dataset_roots]).scans if s.has_manual_masks]
    assert scans, "the synthetic cohort has a scan with manual masks"
    return scans[0]


@pytest.mark.parametrize("staged", [True, False], ids=["staged-engine", "path-segmenter"])
def test_each_file_of_a_scan_is_decoded_once(scan, tmp_path, monkeypatch, staged):
    payloads: Counter[str] = Counter()
    headers: Counter[str] = Counter()
    read_payload, read_header_block = nifti._read_payload, nifti._read_header_block

    def counting_payload(path, limit, scan_id):
        payloads[Path(path).name] += 1
        return read_payload(path, limit, scan_id)

    def counting_header(path, scan_id):
        headers[Path(path).name] += 1
        return read_header_block(path, scan_id)

    monkeypatch.setattr(nifti, "_read_payload", counting_payload)
    monkeypatch.setattr(nifti, "_read_header_block", counting_header)
    if staged:  # the bundled demo model through the engine's prepare/infer/finish
        spec = SegmenterSpec.make("nnunet", device="cpu", threads=1)
    else:  # a plugin that writes mask files from a path (the batch reads them once)
        spec = SegmenterSpec.make("copy-manual")
    out = tmp_path / "run"
    outcome = process_scan(scan, TaskConfig(out_dir=str(out), segmenter=spec, run_id="r", report=True))
    assert outcome.status == "done", outcome.message

    image = Path(scan.image_path).name
    cord, lesion = Path(scan.cord_mask_path).name, Path(scan.lesion_mask_path).name
    store = RecordStore(out)
    row = store.read(store.current(scan.site, scan.scan_id), "scans").to_pandas().iloc[0]
    predicted = {Path(row.cord_seg_path).name, Path(row.lesion_seg_path).name}
    assert row.validation == "validated"
    assert any((out / "report" / "scans").rglob("sagittal.png"))
    # the stand-in plugin reads the image and the manual masks itself (once each, as a model reading files
    # would); the batch reads each of them once more, and the masks a path-segmenter wrote once
    plugin_reads = 0 if staged else 1
    assert payloads[image] == 1 + plugin_reads, payloads
    assert headers[image] == 1 + plugin_reads, headers
    assert payloads[cord] == 1 + plugin_reads, payloads
    assert payloads[lesion] == 1 + plugin_reads, payloads
    # the engine's masks stay in memory: never read back
    assert all(payloads[name] == (0 if staged else 1) for name in predicted), payloads
    assert set(headers) == set(payloads), (headers, payloads)  # every header read is that of a decoded file
    assert sum(payloads.values()) == 3 + 3 * plugin_reads + (0 if staged else 2), payloads  # nothing else
