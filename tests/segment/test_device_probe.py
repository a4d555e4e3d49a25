"""``auto`` device resolution without importing torch where torch is a CPU build."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

from cohort_sciseg.segment import predictors


@pytest.mark.parametrize(
    ("text", "cuda_build"),
    [
        ("cuda: Optional[str] = None\n", False),
        ("cuda = None\n", False),
        ("cuda: Optional[str] = '12.4'\n", True),
        ("__version__ = '2.13.0'\n", True),  # no cuda line: ask torch
    ],
)
def test_cuda_build_read_from_version_file(tmp_path, monkeypatch, text, cuda_build):
    (tmp_path / "version.py").write_text("from typing import Optional\n" + text)
    fake = SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: fake if name == "torch" else None)
    assert predictors._torch_built_with_cuda() is cuda_build


def test_cpu_build_resolves_auto_without_torch(monkeypatch):
    monkeypatch.setattr(predictors, "_torch_built_with_cuda", lambda: False)
    # any torch import would fail here
    monkeypatch.setitem(__import__("sys").modules, "torch", None)
    assert predictors.device_choice("auto") == "cpu"
    assert predictors.device_choice("cuda") == "cuda"
