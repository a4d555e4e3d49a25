"""``cohort-sciseg analyze-lesion`` end to end on NIfTI files (in-process ``main``)."""

from __future__ import annotations

import dataclasses
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from morpho_phantoms import cylinder, reorient, rpi_affine
from morpho_reference import to_rpi

from cohort_sciseg.cli import main
from cohort_sciseg.records import LESION_SLICES_SCHEMA, LESIONS_SCHEMA, ScanMorphometry

ZOOMS = (0.5, 0.6, 3.0)
SHAPE = (43, 37, 17)


def phantom():
    """Straight cord, two box lesions (superior 4x5x3, inferior 3x3x2), an image; RPI arrays."""
    cx, cy = 21, 18
    cord = cylinder(SHAPE, ZOOMS, (cx, cy))
    lesion = np.zeros(SHAPE, dtype=np.uint8)
    lesion[cx - 2 : cx + 2, cy - 3 : cy + 2, 10:13] = 1
    lesion[cx - 1 : cx + 2, cy - 1 : cy + 2, 3:5] = 1
    assert (lesion.astype(bool) <= cord).all()
    image = np.full(SHAPE, 100, dtype=np.int16)
    image[:, :, 10:13] = 200
    return cord.astype(np.uint8), lesion, image


def stored_zooms(path):
    """RPI voxel sizes of the file as stored (the sform is float32: 0.6 is not exactly 0.6)."""
    img = nib.load(path)
    _, aff_rpi = to_rpi(np.zeros(img.shape), img.affine)
    return tuple(float(np.linalg.norm(aff_rpi[:3, i])) for i in range(3))


def write(path, data, aff):
    nib.save(nib.Nifti1Image(data, aff), path)
    return path


@pytest.fixture
def files(tmp_path):
    """The phantom stored PSR (like the real sagittal scans)."""
    cord, lesion, image = phantom()
    aff = rpi_affine(ZOOMS)
    out = {}
    for name, arr in (("cord", cord), ("lesion", lesion), ("image", image)):
        data, aff2 = reorient(arr, aff, "PSR")
        out[name] = write(tmp_path / f"sub-01_T2w_{name}.nii.gz", data, aff2)
    return out


def test_analyze_lesion_writes_tables_and_summary(files, tmp_path):
    prefix = tmp_path / "out" / "sub-01"
    prefix.parent.mkdir()
    rc = main(
        ["analyze-lesion", "--lesion", str(files["lesion"]), "--cord", str(files["cord"]),
         "--image", str(files["image"]), "-o", str(prefix)]
    )
    assert rc == 0
    px, py, pz = stored_zooms(files["lesion"])
    assert (px, py, pz) == pytest.approx(ZOOMS, rel=1e-6)
    vox = px * py * pz
    lesions_path = prefix.parent / "sub-01.parquet"
    slices_path = prefix.parent / "sub-01_slices.parquet"
    json_path = prefix.parent / "sub-01.json"
    for p in (lesions_path, slices_path, json_path):
        assert p.is_file(), p

    table = pq.read_table(lesions_path)
    assert table.schema.equals(LESIONS_SCHEMA, check_metadata=False)
    assert pq.read_table(slices_path).schema.equals(LESION_SLICES_SCHEMA, check_metadata=False)
    df = table.to_pandas().sort_values("lesion_id")
    assert df["lesion_id"].tolist() == [1, 2]
    assert df["volume_mm3"].tolist() == pytest.approx([60 * vox, 18 * vox], rel=1e-9)
    assert df["length_mm"].tolist() == pytest.approx([3 * pz, 2 * pz], rel=1e-9)
    assert df["width_mm"].tolist() == pytest.approx([5 * py, 3 * py], rel=1e-9)
    assert df["z_min_slice"].tolist() == [10, 3]  # RPI indices, whatever the file's orientation
    assert df["mean_intensity"].tolist() == pytest.approx([200.0, 100.0])
    assert df["std_intensity"].tolist() == pytest.approx([0.0, 0.0])
    slices = pd.read_parquet(slices_path)
    assert sorted(slices.loc[slices.lesion_id == 1, "sagittal_slice"]) == [19, 20, 21, 22]

    doc = json.loads(json_path.read_text())
    summary = doc.get("summary", doc)
    names = {f.name for f in dataclasses.fields(ScanMorphometry)}
    assert names <= set(summary), sorted(names - set(summary))
    assert summary["n_lesions"] == 2
    assert summary["total_volume_mm3"] == pytest.approx(78 * vox, rel=1e-9)
    assert summary["total_length_mm"] == pytest.approx(5 * pz, rel=1e-9)
    assert summary["midsagittal_slice"] == pytest.approx(21.0)
    assert summary["connectivity"] == 18
    assert summary["angle_correction"] is True


def test_analyze_lesion_label_image_in_input_grid(files, tmp_path):
    prefix = tmp_path / "res"
    assert main(["analyze-lesion", "-m", str(files["lesion"]), "-s", str(files["cord"]), "-o", str(prefix)]) == 0
    label_path = tmp_path / "res_label.nii.gz"
    assert label_path.is_file()
    img = nib.load(label_path)
    src = nib.load(files["lesion"])
    assert img.shape == src.shape
    np.testing.assert_allclose(img.affine, src.affine, atol=1e-6)
    labels = np.asanyarray(img.dataobj)
    lesion = np.asanyarray(src.dataobj) > 0.5
    assert np.array_equal(labels > 0, lesion)
    assert sorted(np.unique(labels[labels > 0]).tolist()) == [1, 2]
    # lesion 1 is the superior one (RPI z 10..12)
    lab_rpi = nib.orientations.apply_orientation(
        labels, nib.orientations.ornt_transform(nib.orientations.io_orientation(img.affine),
                                                nib.orientations.axcodes2ornt(("L", "A", "S")))
    )
    assert set(np.unique(lab_rpi[:, :, 10:13])) == {0, 1}
    assert set(np.unique(lab_rpi[:, :, 3:5])) == {0, 2}
    # no image: intensity columns are null
    t = pq.read_table(tmp_path / "res.parquet")
    assert t.column("mean_intensity").null_count == 2


def test_analyze_lesion_empty_mask(files, tmp_path):
    empty = nib.load(files["lesion"])
    path = write(tmp_path / "empty.nii.gz", np.zeros(empty.shape, dtype=np.uint8), empty.affine)
    prefix = tmp_path / "empty_res"
    assert main(["analyze-lesion", "--lesion", str(path), "--cord", str(files["cord"]), "-o", str(prefix)]) == 0
    t = pq.read_table(tmp_path / "empty_res.parquet")
    assert t.num_rows == 0
    assert t.schema.equals(LESIONS_SCHEMA, check_metadata=False)
    doc = json.loads((tmp_path / "empty_res.json").read_text())
    summary = doc.get("summary", doc)
    assert summary["n_lesions"] == 0
    assert summary["total_volume_mm3"] == 0.0


def test_mismatched_shapes_exit_2(files, tmp_path, capsys):
    src = nib.load(files["lesion"])
    other = write(
        tmp_path / "small.nii.gz",
        np.zeros(tuple(n - 1 for n in src.shape), dtype=np.uint8),
        src.affine,
    )
    rc = main(["analyze-lesion", "--lesion", str(other), "--cord", str(files["cord"]), "-o", str(tmp_path / "x")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "analyze-lesion" in err
    assert "shape" in err.lower()
    assert not (tmp_path / "x.parquet").exists()


def test_mismatched_voxel_size_exit_2(files, tmp_path, capsys):
    src = nib.load(files["lesion"])
    aff = src.affine.copy()
    aff[:3, :3] *= 1.5
    other = write(tmp_path / "scaled.nii.gz", np.asanyarray(src.dataobj), aff)
    rc = main(["analyze-lesion", "--lesion", str(other), "--cord", str(files["cord"]), "-o", str(tmp_path / "x")])
    assert rc == 2
    err = capsys.readouterr().err.lower()
    assert any(w in err for w in ("affine", "voxel", "spacing", "zoom")), err
    assert not (tmp_path / "x.parquet").exists()


def test_mismatched_image_grid_exit_2(files, tmp_path, capsys):
    src = nib.load(files["image"])
    other = write(
        tmp_path / "img.nii.gz", np.zeros(src.shape[::-1], dtype=np.int16), src.affine
    )
    rc = main(["analyze-lesion", "--lesion", str(files["lesion"]), "--cord", str(files["cord"]),
               "--image", str(other), "-o", str(tmp_path / "x")])
    assert rc == 2
    assert "shape" in capsys.readouterr().err.lower()


def test_missing_file_exit_2(files, tmp_path, capsys):
    missing = tmp_path / "nope_lesion.nii.gz"
    rc = main(["analyze-lesion", "--lesion", str(missing), "--cord", str(files["cord"]), "-o", str(tmp_path / "x")])
    assert rc == 2
    assert "nope_lesion.nii.gz" in capsys.readouterr().err


def test_sct_style_arguments_default_output_and_nli_slice(files, tmp_path, monkeypatch, capsys):
    # sct_analyze_lesion -m L -s C -nli-slice N: outputs named after the lesion file in the current
    # folder (-ofolder moves them); with no lesion, the cord A-P diameter at the NLI slice.
    empty = nib.load(files["lesion"])
    path = write(tmp_path / "sub-01_T2w_lesion-none.nii.gz", np.zeros(empty.shape, dtype=np.uint8), empty.affine)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    # stored PSR: the S-I axis is array axis 1, pointing superior, so N is the RPI z itself
    assert "".join(nib.aff2axcodes(empty.affine)) == "PSR"
    nli = 8
    assert main(["analyze-lesion", "-m", str(path), "-s", str(files["cord"]), "-nli-slice", str(nli)]) == 0
    doc = json.loads((work / "sub-01_T2w_lesion-none_analysis.json").read_text())
    cord, _, _ = phantom()
    _, py, _ = stored_zooms(files["cord"])
    # straight symmetric cord centred on x = 21: x* = 21, f = 0, diameter = cord voxels on (21, :, 8)
    assert doc["midsagittal_slice"] == pytest.approx(21.0)
    assert doc["nli_slice"] == nli
    assert doc["nli_ap_diameter_mm"] == pytest.approx(int(cord[21, :, nli].sum()) * py, rel=1e-9)
    assert "cord A-P diameter at the NLI slice 8" in capsys.readouterr().out
    out = tmp_path / "elsewhere"
    out.mkdir()
    assert main(["analyze-lesion", "-m", str(path), "-s", str(files["cord"]), "-ofolder", str(out)]) == 0
    assert (out / "sub-01_T2w_lesion-none_analysis.parquet").is_file()
    assert json.loads((out / "sub-01_T2w_lesion-none_analysis.json").read_text())["nli_ap_diameter_mm"] is None


def test_nli_slice_out_of_range_exit_2(files, tmp_path, capsys):
    rc = main(["analyze-lesion", "-m", str(files["lesion"]), "-s", str(files["cord"]),
               "-nli-slice", "17", "-o", str(tmp_path / "x")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "NLI slice 17 is not a slice of the image's S-I axis" in err
    assert "from 0 to 16" in err
    assert "Traceback" not in err


def test_disc_labels_give_vertebral_levels(files, tmp_path):
    # disc C3/C4 (value 4) at RPI z = 7 and C4/C5 (value 5) at z = 12. SCT gives a slice the
    # value of the nearest disc strictly above it: z < 7 -> 4 (C4), 7 <= z < 12 -> 5 (C5),
    # z >= 12 -> no level.
    phantom()  # the same cord as the other tests
    discs = np.zeros(SHAPE, dtype=np.uint8)
    discs[21, 18, 7] = 4
    discs[21, 18, 12] = 5
    data, aff2 = reorient(discs, rpi_affine(ZOOMS), "PSR")
    path = write(tmp_path / "sub-01_T2w_label-discs_dlabel.nii.gz", data, aff2)
    prefix = tmp_path / "lv"
    assert main(["analyze-lesion", "-m", str(files["lesion"]), "-s", str(files["cord"]),
                 "--disc-labels", str(path), "-o", str(prefix)]) == 0
    df = pq.read_table(tmp_path / "lv.parquet").to_pandas().sort_values("lesion_id")
    # lesion 1 on z 10..12 (C5, C5, none), centroid z 11 -> C5; lesion 2 on z 3..4 -> C4
    assert [list(v) for v in df["vert_levels"]] == [["C5"], ["C4"]]
    assert df["vert_level_centroid"].tolist() == ["C5", "C4"]
    doc = json.loads((tmp_path / "lv.json").read_text())
    assert doc["lesion_vert_levels"] == ["C4", "C5"]
    assert doc["vert_labels"] == "discs"
