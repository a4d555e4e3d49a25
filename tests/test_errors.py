"""Error hierarchy and message format."""

from __future__ import annotations

import pytest

from cohort_sciseg import errors


def test_format_error_full():
    msg = errors.format_error(
        "image is 4D with 3 frames", path="/d/a.nii.gz", scan_id="site-a_sub-01_T2w",
        expected="a 3D volume", fix="split it",
    )
    assert msg == "scan 'site-a_sub-01_T2w' '/d/a.nii.gz': image is 4D with 3 frames; expected a 3D volume. Fix: split it"


def test_format_error_minimal():
    assert errors.format_error("bad") == "bad."


@pytest.mark.parametrize(
    ("cls", "stage"),
    [
        (errors.NiftiError, "io"),
        (errors.GeometryError, "io"),
        (errors.DiscoveryError, "discover"),
        (errors.SynthError, "synth"),
        (errors.SegmentationError, "segment"),
        (errors.MorphometryError, "morphometry"),
        (errors.ValidationError, "validation"),
        (errors.BatchError, "batch"),
        (errors.ReportError, "report"),
    ],
)
def test_every_stage_has_a_subclass(cls, stage):
    exc = cls("msg", path="p", scan_id="s")
    assert isinstance(exc, errors.CohortSciSegError)
    assert (exc.stage, exc.path, exc.scan_id, str(exc)) == (stage, "p", "s", "msg")
