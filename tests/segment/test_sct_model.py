"""``--model sct:lesion_sci_t2``: the SCIseg model an installed SCT holds, on a fake SCT tree.

The fake tree has SCT's layout (``<sct>/bin/sct_deepseg``,
``<sct>/data/deepseg_models/model_seg_sci_multiclass_sc_lesion_nnunet/`` with one
``nnUNetTrainer*`` folder and ``source.json``) and a tiny real nnU-Net model inside.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cohort_sciseg.cli import main
from cohort_sciseg.errors import SegmentationError
from cohort_sciseg.segment import SegmentationEngine, check_manifest, find_model, resolve_model_path
from cohort_sciseg.segment.sct import SCT_TASKS, find_sct_dir, is_sct_spec, resolve_sct_model
from cohort_sciseg.segment.testing import TINY_TRAINER_FOLDER, make_tiny_model

MODEL = "model_seg_sci_multiclass_sc_lesion_nnunet"
URL = "https://github.com/ivadomed/model_seg_sci/releases/download/r20240729/model_SCIsegV2_r20240729.zip"


def _no_exe(name: str) -> str | None:
    return None


@pytest.fixture(scope="module")
def tiny_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model in the layout of an unzipped release: no model.json, one trainer folder. Read only."""
    return make_tiny_model(tmp_path_factory.mktemp("release") / "model_SCIsegV2_r20240729", seed=3, manifest=False)


@pytest.fixture
def sct(tmp_path: Path, tiny_release: Path) -> Path:
    """A fake SCT installation (``<tmp>/sct_7.0``) holding the SCIseg model, installed as SCT installs it."""
    root = tmp_path / "sct_7.0"
    (root / "bin").mkdir(parents=True)
    exe = root / "bin" / "sct_deepseg"
    exe.write_text("#!/bin/sh\necho 'fake sct_deepseg: never run by cohort-sciseg' >&2\nexit 3\n")
    exe.chmod(0o755)
    model = root / "data" / "deepseg_models" / MODEL
    shutil.copytree(tiny_release, model)
    (model / "source.json").write_text(json.dumps({"model_name": MODEL, "model_urls": URL, "custom": False}))
    return root


@pytest.fixture
def sct_env(sct: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """SCT_DIR set to the fake SCT; PATH without any real SCT."""
    monkeypatch.setenv("SCT_DIR", str(sct))
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return sct


def _model_dir(sct: Path) -> Path:
    return sct / "data" / "deepseg_models" / MODEL


# ------------------------------------------------------------------------------- resolution


def test_sct_dir_environment_variable_finds_the_model(sct: Path) -> None:
    found = resolve_sct_model("sct:lesion_sci_t2", environ={"SCT_DIR": str(sct)}, which=_no_exe)
    assert found.path == _model_dir(sct).resolve()
    assert found.trainer_dir == found.path / TINY_TRAINER_FOLDER
    assert (found.sct_dir, found.found_by) == (sct.resolve(), "SCT_DIR")
    assert (found.model_name, found.task) == (MODEL, "lesion_sci_t2")
    assert found.model_urls == (URL,)
    assert found.release == "r20240729"
    assert found.custom is False
    assert found.record() == {
        "kind": "sct", "spec": "sct:lesion_sci_t2", "sct_dir": str(sct.resolve()), "found_by": "SCT_DIR",
        "model_name": MODEL, "task": "lesion_sci_t2", "model_urls": [URL], "release": "r20240729", "custom": False,
    }


def test_sct_deepseg_on_path_finds_the_model(sct: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCT_DIR", raising=False)
    monkeypatch.setenv("PATH", str(sct / "bin"))  # what SCT's installer adds; the real shutil.which
    found = resolve_sct_model("sct:lesion_sci_t2")
    assert found.sct_dir == sct.resolve()
    assert found.found_by == f"PATH ({sct / 'bin' / 'sct_deepseg'})"
    assert found.path == _model_dir(sct).resolve()


def test_linked_executable_and_sct_venv_lead_to_the_sct_folder(sct: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "usr" / "local" / "bin"
    elsewhere.mkdir(parents=True)
    (elsewhere / "sct_deepseg").symlink_to(sct / "bin" / "sct_deepseg")  # the link is followed
    assert find_sct_dir(environ={}, which=lambda n: str(elsewhere / n)) == (
        sct.resolve(), f"PATH ({elsewhere / 'sct_deepseg'})")
    venv_bin = sct / "python" / "envs" / "venv_sct" / "bin"  # SCT's own virtual environment activated
    venv_bin.mkdir(parents=True)
    (venv_bin / "sct_check_dependencies").write_text("#!/bin/sh\n")
    exes = {"sct_check_dependencies": str(venv_bin / "sct_check_dependencies")}
    assert find_sct_dir(environ={}, which=exes.get)[0] == sct.resolve()


def test_order_model_string_then_sct_dir_then_path(sct: Path, tmp_path: Path) -> None:
    other = tmp_path / "other_sct"
    other.mkdir()
    on_path = {"sct_deepseg": str(other / "bin" / "sct_deepseg")}
    assert find_sct_dir(environ={"SCT_DIR": str(sct)}, which=on_path.get)[1] == "SCT_DIR"
    found = resolve_sct_model(f"sct:{sct}:lesion_sci_t2", environ={"SCT_DIR": str(other)}, which=on_path.get)
    assert (found.sct_dir, found.found_by) == (sct.resolve(), "model string")
    assert found.record()["spec"] == f"sct:{sct}:lesion_sci_t2"
    # an empty SCT_DIR is as good as none
    assert find_sct_dir(environ={"SCT_DIR": ""}, which=lambda n: str(sct / "bin" / n))[0] == sct.resolve()


def test_model_folder_name_and_sct6_task_name(sct: Path) -> None:
    env = {"SCT_DIR": str(sct)}
    by_name = resolve_sct_model(f"sct:{MODEL}", environ=env, which=_no_exe)
    assert (by_name.path, by_name.task) == (_model_dir(sct).resolve(), None)
    old = resolve_sct_model("sct:seg_sc_lesion_t2w_sci", environ=env, which=_no_exe)
    assert (old.model_name, old.task) == (MODEL, "seg_sc_lesion_t2w_sci")
    assert set(SCT_TASKS.values()) == {MODEL}
    assert is_sct_spec("sct:lesion_sci_t2")
    assert not is_sct_spec("demo")
    assert not is_sct_spec(Path("sct:lesion_sci_t2"))  # a Path is always a path


def test_source_json_variants(sct: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = {"SCT_DIR": str(sct)}
    source = _model_dir(sct) / "source.json"
    source.write_text(json.dumps({"model_name": MODEL, "model_urls": {"seed1": [URL], "seed2": URL}, "custom": True}))
    found = resolve_sct_model("sct:lesion_sci_t2", environ=env, which=_no_exe)
    assert (found.model_urls, found.custom) == ((URL, URL), True)
    source.unlink()  # SCT before 2024 wrote none
    found = resolve_sct_model("sct:lesion_sci_t2", environ=env, which=_no_exe)
    assert (found.model_urls, found.release, found.custom) == ((), None, None)
    source.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="cohort_sciseg.segment.sct"):
        found = resolve_sct_model("sct:lesion_sci_t2", environ=env, which=_no_exe)
    assert found.model_urls == ()
    assert "source.json is unreadable" in caplog.text
    source.write_text("[1, 2]")
    assert resolve_sct_model("sct:lesion_sci_t2", environ=env, which=_no_exe).custom is None


# ----------------------------------------------------------------------------------- errors


def test_sct_not_found_names_both_places_tried() -> None:
    with pytest.raises(SegmentationError, match=(
        r"Spinal Cord Toolbox not found: SCT_DIR is not set and neither sct_deepseg nor "
        r"sct_check_dependencies is on PATH; expected an SCT installation .*Fix: set SCT_DIR to SCT's folder "
        r".*pass --model PATH to the model folder"
    )):
        resolve_sct_model("sct:lesion_sci_t2", environ={}, which=_no_exe)


def test_model_not_installed_says_how_to_install_it(sct: Path) -> None:
    shutil.rmtree(_model_dir(sct))
    with pytest.raises(SegmentationError, match=(
        rf"deepseg_models/{MODEL}': SCT model '{MODEL}' is not installed in the SCT found by SCT_DIR; "
        r"expected .*Fix: run once `sct_deepseg lesion_sci_t2 -install` \(SCT >= 7.0; SCT 6.x: "
        r"`sct_deepseg -install-task seg_sc_lesion_t2w_sci`\).*or pass --model PATH"
    )) as info:
        resolve_sct_model("sct:lesion_sci_t2", environ={"SCT_DIR": str(sct)}, which=_no_exe)
    assert info.value.path == str(_model_dir(sct).resolve())
    with pytest.raises(SegmentationError, match=r"'model_other' is not installed.*`sct_deepseg TASK -install`"):
        resolve_sct_model("sct:model_other", environ={"SCT_DIR": str(sct)}, which=_no_exe)


@pytest.mark.parametrize("spec", ["sct:spinalcord", "sct:/opt/sct:lesion_ms"])
def test_unknown_task_lists_the_known_ones(spec: str) -> None:
    with pytest.raises(SegmentationError, match=(
        r"unknown SCT task '(spinalcord|lesion_ms)' in .*; expected one of 'lesion_sci_t2', "
        r"'seg_sc_lesion_t2w_sci' \(SCT's cord \+ lesion tasks\).*Fix: pass --model sct:lesion_sci_t2"
    )):
        resolve_sct_model(spec, environ={}, which=_no_exe)


@pytest.mark.parametrize("spec", ["sct:", "sct::", "sct::lesion_sci_t2", "sct:/opt/sct:"])
def test_model_string_without_name(spec: str) -> None:
    with pytest.raises(SegmentationError, match=r"names no SCT task or model; expected sct:TASK or sct:SCT_FOLDER:TASK"):
        resolve_sct_model(spec, environ={}, which=_no_exe)


def test_not_an_sct_string() -> None:
    with pytest.raises(SegmentationError, match=r"'demo' is not an SCT model string"):
        resolve_sct_model("demo")


@pytest.mark.parametrize("n_trainers", [0, 2])
def test_no_or_several_trainer_folders(sct: Path, n_trainers: int) -> None:
    model = _model_dir(sct)
    if n_trainers == 0:
        shutil.rmtree(model / TINY_TRAINER_FOLDER)
        what = "no nnUNetTrainer\\* folder"
    else:
        shutil.copytree(model / TINY_TRAINER_FOLDER, model / "nnUNetTrainerDiceCELoss__nnUNetPlans__3d_fullres")
        what = ("2 nnUNetTrainer\\* folders \\(nnUNetTrainerDiceCELoss__nnUNetPlans__3d_fullres, "
                "nnUNetTrainer__nnUNetPlans__3d_fullres\\)")
    with pytest.raises(SegmentationError, match=(
        rf"SCT model folder of 'sct:lesion_sci_t2' holds {what}; expected exactly one "
        r"nnUNetTrainer\*__<plans>__3d_fullres folder.*Fix: reinstall the model with SCT"
    )):
        resolve_sct_model("sct:lesion_sci_t2", environ={"SCT_DIR": str(sct)}, which=_no_exe)


def test_sct_dir_that_is_not_a_folder(tmp_path: Path) -> None:
    a_file = tmp_path / "sct.txt"
    a_file.write_text("")
    with pytest.raises(SegmentationError, match=(
        r"sct.txt': SCT folder from SCT_DIR is not a folder; expected the Spinal Cord Toolbox installation "
        r"folder.*Fix: set SCT_DIR to SCT's installation folder"
    )) as info:
        resolve_sct_model("sct:lesion_sci_t2", environ={"SCT_DIR": str(a_file)}, which=_no_exe)
    assert info.value.path == str(a_file)
    with pytest.raises(SegmentationError, match=r"SCT folder from SCT_DIR does not exist"):
        resolve_sct_model("sct:lesion_sci_t2", environ={"SCT_DIR": str(tmp_path / "gone")}, which=_no_exe)
    with pytest.raises(SegmentationError, match=(
        r"SCT folder from the model string does not exist.*Fix: correct the folder in the model string"
    )):
        resolve_sct_model(f"sct:{tmp_path / 'gone'}:lesion_sci_t2", environ={}, which=_no_exe)


# ------------------------------------------------------------------ loading, provenance, CLI


def test_find_model_and_engine_record_the_sct_source(sct_env: Path) -> None:
    model_dir = _model_dir(sct_env).resolve()
    assert resolve_model_path("sct:lesion_sci_t2") == model_dir
    folder = find_model("sct:lesion_sci_t2")
    assert (folder.root, folder.trainer_dir) == (model_dir, model_dir / TINY_TRAINER_FOLDER)
    assert folder.source is not None
    assert folder.source["found_by"] == "SCT_DIR"
    assert find_model(model_dir).source is None  # the same folder by path: no SCT provenance
    info = SegmentationEngine(model="sct:lesion_sci_t2", device="cpu").describe()
    # no model.json in SCT's folder: accepted without --trust-model, checksummed from its files
    assert (info["name"], info["integrity"]) == (MODEL, "unverified")
    assert info["checksum"] == check_manifest(model_dir).checksum
    assert info["source"]["release"] == "r20240729"
    assert "source" not in info["settings"]


def test_outer_release_folder_loads_as_a_plain_path(tiny_release: Path) -> None:
    folder = find_model(tiny_release)
    assert folder.root == tiny_release.resolve()
    assert folder.trainer_dir == tiny_release.resolve() / TINY_TRAINER_FOLDER
    assert folder.source is None


def _write_image(path: Path) -> Path:
    from cohort_sciseg.segment.testing import textured_image

    affine = np.diag([-0.8, 1.0, 1.3, 1.0])  # RPI, anisotropic, non-cubic
    img = nib.Nifti1Image(textured_image((40, 36, 28), seed=2), affine)
    img.set_qform(affine, code=1)
    nib.save(img, path)
    return path


def test_cli_segment_with_sct_model_end_to_end(
    sct_env: Path, tiny_release: Path, tmp_path: Path, fresh_cache: None, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = _write_image(tmp_path / "sub-01_T2w.nii.gz")
    assert main(["segment", str(image), "--model", "sct:lesion_sci_t2"]) == 0
    out = capsys.readouterr().out
    assert f"model {MODEL} (unverified, checksum" in out
    cord, lesion = image.with_name("sub-01_T2w_sc_seg.nii.gz"), image.with_name("sub-01_T2w_lesion_seg.nii.gz")
    masks = [np.asarray(nib.load(p).dataobj) for p in (cord, lesion)]
    assert masks[0].shape == (40, 36, 28)
    assert masks[0].any()
    assert not (masks[1] & ~masks[0]).any()  # lesion inside cord
    entry = json.loads(image.with_name("sub-01_T2w_lesion_seg.json").read_text())["GeneratedBy"][0]
    assert (entry["ModelName"], entry["ModelIntegrity"]) == (MODEL, "unverified")
    assert entry["ModelSource"]["sct_dir"] == str(sct_env.resolve())
    assert entry["ModelSource"]["task"] == "lesion_sci_t2"
    assert entry["ModelSource"]["model_urls"] == [URL]
    assert "source.json" in entry["ModelFiles"]
    # SCT's folder named in the model string: no SCT_DIR needed (what a remote worker may lack)
    monkeypatch.delenv("SCT_DIR")
    assert main(["segment", str(image), "-o", str(tmp_path / "q"), "--model", f"sct:{sct_env}:lesion_sci_t2"]) == 0
    named = json.loads((tmp_path / "q_lesion_seg.json").read_text())["GeneratedBy"][0]
    assert (named["ModelSource"]["found_by"], named["ModelChecksum"]) == ("model string", entry["ModelChecksum"])
    assert np.array_equal(masks[1], np.asarray(nib.load(tmp_path / "q_lesion_seg.nii.gz").dataobj))
    # the same release unzipped and passed as a path: same weights, same masks, no SCT provenance
    assert main(["segment", str(image), "-o", str(tmp_path / "p"), "--model", str(tiny_release)]) == 0
    for ours, theirs in zip(masks, [tmp_path / "p_sc_seg.nii.gz", tmp_path / "p_lesion_seg.nii.gz"], strict=True):
        assert np.array_equal(ours, np.asarray(nib.load(theirs).dataobj))
    by_path = json.loads((tmp_path / "p_lesion_seg.json").read_text())["GeneratedBy"][0]
    assert "ModelSource" not in by_path
    weights = f"{TINY_TRAINER_FOLDER}/fold_0/checkpoint_final.pth"
    assert by_path["ModelFiles"][weights] == entry["ModelFiles"][weights]


def test_cli_segment_without_sct_is_a_clear_error(
    write_image: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("SCT_DIR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["segment", str(write_image()), "--model", "sct:lesion_sci_t2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cohort-sciseg segment: error: Spinal Cord Toolbox not found")
    assert "Traceback" not in err


@pytest.mark.slow
def test_cli_run_with_sct_model(sct_env: Path, tmp_path: Path) -> None:
    """``run --segmenter-option model=sct:lesion_sci_t2`` on a local Dask cluster (workers inherit SCT_DIR)."""
    from cohort_sciseg.synth.tree import write_skeleton_tree

    tree = write_skeleton_tree(tmp_path / "siteA", n_subjects=1, acquisitions=(None,), shape=(40, 36, 28), seed=1)
    out = tmp_path / "out"
    rc = main(["run", str(tree), "-o", str(out), "--segmenter-option", "model=sct:lesion_sci_t2",
               "--no-progress", "--gpus", "0", "--workers", "1", "--no-report"])
    assert rc == 0
    (record,) = (out / "logs" / "runs").glob("run-*.json")
    segmenter = json.loads(record.read_text())["segmenter"]
    assert (segmenter["name"], segmenter["source"]["sct_dir"]) == (MODEL, str(sct_env.resolve()))
    # the client resolved SCT once and pinned its folder for the workers
    assert segmenter["source"]["found_by"] == "model string"
    sidecars = list(out.rglob("*_label-lesion_mask.json"))
    assert sidecars
    assert json.loads(sidecars[0].read_text())["GeneratedBy"][0]["ModelSource"]["task"] == "lesion_sci_t2"


def test_run_pins_the_sct_folder_the_client_found(sct_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``run`` resolves ``sct:TASK`` in the client: workers elsewhere need no SCT_DIR or PATH of their own."""
    from cohort_sciseg.cli.commands.run import _segmenter_spec
    from cohort_sciseg.errors import CohortSciSegError

    spec = _segmenter_spec("nnunet", "sct:lesion_sci_t2", None)
    pinned = spec.options_dict["model"]
    assert pinned == f"sct:{resolve_sct_model('sct:lesion_sci_t2').sct_dir}:lesion_sci_t2"
    monkeypatch.delenv("SCT_DIR")
    monkeypatch.setenv("PATH", "/nonexistent")
    again = resolve_sct_model(pinned)  # what a worker without SCT's environment does
    assert again.found_by == "model string"
    assert again.path == resolve_sct_model(pinned).path
    with pytest.raises(CohortSciSegError, match="Spinal Cord Toolbox not found"):
        _segmenter_spec("nnunet", None, ["model=sct:lesion_sci_t2"])  # before any scan is discovered
