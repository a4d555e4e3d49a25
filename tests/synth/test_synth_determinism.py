"""Same seed, same bytes; and every bad option is refused with a clear message."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cohort_sciseg.errors import SynthError
from cohort_sciseg.synth import insert_lesions, plan_cohort, synthesize_cohort


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def twin_cohorts(tmp_path_factory):
    base = tmp_path_factory.mktemp("twins")
    opts = {"sites": 3, "subjects_per_site": 2, "implant_fraction": 1.0}
    a = synthesize_cohort(base / "a", seed=5, **opts)
    b = synthesize_cohort(base / "b", seed=5, **opts)
    c = synthesize_cohort(base / "c", seed=6, **opts)
    return a, b, c


def test_same_seed_same_bytes(twin_cohorts):
    a, b, _ = twin_cohorts
    da, db = _digest(a.out_dir), _digest(b.out_dir)
    assert len(da) > 40
    assert any(k.endswith(".nii.gz") for k in da)
    assert any(k.endswith(".parquet") for k in da)
    assert da == db


def test_other_seed_other_data(twin_cohorts):
    a, _, c = twin_cohorts
    da, dc = _digest(a.out_dir), _digest(c.out_dir)
    images = [k for k in da if k.endswith("_T2w.nii.gz")]
    assert images
    assert all(da[k] != dc.get(k) for k in images)


def test_config_records_options(twin_cohorts):
    a, _, _ = twin_cohorts
    cfg = json.loads((a.out_dir / "ground_truth" / "config.json").read_text())
    assert cfg["seed"] == 5
    assert cfg["sites"] == 3
    assert cfg["implant_fraction"] == 1.0
    assert {"numpy", "nibabel", "cohort_sciseg"} <= set(cfg["versions"])


def test_insert_lesions_same_seed_same_bytes(twin_cohorts, tmp_path):
    # a synthetic site (sessions + acq entity) serves as the "real" source
    src = twin_cohorts[0].dataset_roots[1]
    before = _digest(src)
    x = insert_lesions(src, tmp_path / "x", seed=3)
    y = insert_lesions(src, tmp_path / "y", seed=3)
    assert _digest(x.out_dir) == _digest(y.out_dir)
    assert _digest(src) == before  # the source is only read
    assert x.n_scans == 3
    assert x.dataset_roots[0].name == "site2"
    assert (
        x.dataset_roots[0] / "sub-02" / "ses-02" / "anat" / "sub-02_ses-02_acq-ax_T2w.nii.gz"
    ).is_file()


# -- error branches ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"sites": 0}, r"sites=0 is not valid; expected an integer >= 1"),
        ({"sites": True}, r"sites=True is not valid"),
        ({"sites": 2.0}, r"sites=2\.0 is not valid"),
        ({"subjects_per_site": 0}, r"subjects_per_site=0 is not valid; expected an integer >= 1"),
        ({"seed": -1}, r"seed=-1 is not valid; expected an integer >= 0"),
        ({"seed": "1"}, r"seed='1' is not valid"),
        (
            {"implant_fraction": 1.5},
            r"implant_fraction=1\.5 is not valid; expected a number between 0 and 1",
        ),
        ({"implant_fraction": None}, r"implant_fraction=None is not valid"),
    ],
)
def test_bad_options(tmp_path, options, match):
    with pytest.raises(SynthError, match=match):
        synthesize_cohort(tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()  # nothing written
    with pytest.raises(SynthError, match=match):
        plan_cohort(**options)


def test_output_folder_not_empty(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(
        SynthError, match=r"the output folder is not empty; expected a new or empty folder"
    ):
        synthesize_cohort(tmp_path, sites=1, subjects_per_site=1)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_output_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SynthError, match=r"the output path exists and is not a folder"):
        synthesize_cohort(f, sites=1, subjects_per_site=1)


def test_empty_output_folder_is_fine(tmp_path):
    c = synthesize_cohort(tmp_path, sites=1, subjects_per_site=1, seed=2)
    assert c.out_dir == tmp_path
    assert c.n_scans == 1


def _bids_without_masks(root: Path, twin) -> Path:
    """A copy of a synthetic site without its derivatives."""
    src = twin.dataset_roots[2]
    for p in src.rglob("*"):
        rel = p.relative_to(src)
        if p.is_file() and rel.parts[0] != "derivatives":
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(p.read_bytes())
    return root


def test_insert_lesions_source_without_cord_masks(tmp_path, twin_cohorts):
    src = _bids_without_masks(tmp_path / "src", twin_cohorts[0])
    with pytest.raises(
        SynthError, match=r"no T2w image has a cord mask with suffix 'seg-manual'.*found.*none"
    ):
        insert_lesions(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_insert_lesions_wrong_suffix_lists_found(tmp_path, twin_cohorts):
    src = twin_cohorts[0].dataset_roots[2]
    with pytest.raises(SynthError, match=r"suffix 'seg-auto'.*\['lesion-manual', 'seg-manual'\]"):
        insert_lesions(src, tmp_path / "out", cord_suffix="seg-auto")


def test_insert_lesions_bad_arguments(tmp_path, twin_cohorts):
    src = twin_cohorts[0].dataset_roots[2]
    with pytest.raises(SynthError, match=r"source BIDS dataset does not exist"):
        insert_lesions(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(SynthError, match=r"lesions_per_scan=\(3, 1\) is not valid"):
        insert_lesions(src, tmp_path / "out", lesions_per_scan=(3, 1))
    with pytest.raises(SynthError, match=r"lesions_per_scan=2 is not valid"):
        insert_lesions(src, tmp_path / "out", lesions_per_scan=2)  # type: ignore[arg-type]
    with pytest.raises(SynthError, match=r"seed=-2 is not valid"):
        insert_lesions(src, tmp_path / "out", seed=-2)
    with pytest.raises(SynthError, match=r"the output folder is inside the source dataset"):
        insert_lesions(src, src / "derivatives" / "synth")
    assert not (src / "derivatives" / "synth").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(SynthError, match=r"the output folder is not empty"):
        insert_lesions(src, tmp_path / "full")
