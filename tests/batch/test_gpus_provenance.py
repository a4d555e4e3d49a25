"""The run's provenance: one nvidia-smi reader (GPU names, GPU count), site dataset descriptions."""

from __future__ import annotations

import json
import os
import stat
from types import SimpleNamespace
from typing import cast

import pytest

from cohort_sciseg.batch.clusters import count_gpus
from cohort_sciseg.batch.gpus import gpu_names
from cohort_sciseg.batch.provenance import environment, write_dataset_descriptions
from cohort_sciseg.records import Scan


def test_site_descriptions_of_a_run(tmp_path):
    def scan(site: str, root: str, name: str) -> Scan:
        # only what the descriptions read: a run's scans carry more
        return cast(Scan, SimpleNamespace(site=site, dataset_root=root, dataset_name=name))

    scans = [scan("b", "/d/two", "two"), scan("a", "/d/one", "one"), scan("b", "/d/three", "three")]
    written = write_dataset_descriptions(tmp_path, scans, {"name": "m", "checksum": "abc"})
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "a/dataset_description.json",
        "b/dataset_description.json",
    ]
    b = json.loads(written[1].read_text())
    assert b["Name"] == "cohort-sciseg segmentations of three, two (site b)"
    assert b["DatasetType"] == "derivative"
    assert b["BIDSVersion"] == "1.9.0"
    assert b["SourceDatasets"] == [{"URL": "file:///d/three"}, {"URL": "file:///d/two"}]
    assert b["GeneratedBy"][0]["Description"].endswith("model m (checksum abc)")


# ----------------------------------------------------------------------------- nvidia-smi


@pytest.fixture
def fake_smi(tmp_path, monkeypatch):
    """An ``nvidia-smi`` on PATH that lists two GPUs (and a line that is not one)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        'echo "GPU 0: NVIDIA H200 (UUID: GPU-aaaa)"\n'
        'echo "  MIG 1g.18gb Device 0: (UUID: MIG-bbbb)"\n'
        'echo "GPU 1: NVIDIA H200 (UUID: GPU-cccc)"\n'
    )
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return smi


def test_one_nvidia_smi_reader_for_provenance_and_clusters(fake_smi):
    names = ["GPU 0: NVIDIA H200 (UUID: GPU-aaaa)", "GPU 1: NVIDIA H200 (UUID: GPU-cccc)"]
    assert gpu_names() == names
    assert count_gpus() == 2
    assert environment()["gpus"] == names


def test_no_nvidia_smi_means_no_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_names() == []
    assert count_gpus() == 0
