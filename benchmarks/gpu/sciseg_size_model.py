"""A model of SCIseg's size with random weights: nnU-Net's default 3d_fullres network for this data.

SCIseg's weights cannot be downloaded here, and a network's speed does not depend on its
weights, so the GPU kit times a stand-in: the network that nnU-Net's own planner
(``ExperimentPlanner``, the default ``nnUNetPlans``: PlainConvUNet, 32 to 320 features,
patch sized for 8 GB) chooses for spinal cord T2w data, with seeded random weights.

``sciseg_size_plans.json`` (committed) is that plan. ``--plan`` makes it again: it writes a
dataset fingerprint with the geometry (nnU-Net axis order, after SCT's RPI reorientation) of
the scans the kit runs (errsm11 384x216x52 at 1 mm, sctms 320x256x19 at 0.69x0.69x7.5 mm and
the synthetic cohort's three site styles: sagittal 3x0.5x0.5 mm, axial 0.7x0.7x5 mm,
isotropic 0.9 mm), as ``nnUNetv2_extract_fingerprint`` would record them, and runs the
planner on it in a temporary nnU-Net tree.

The written model folder has SCIseg's layout (``nnUNetTrainer__nnUNetPlans__3d_fullres``,
region labels, RPI) and a ``model.json`` manifest. Its segmentation head is zeroed with a
large negative bias: random logits would make thousands of one-voxel "lesions" whose
measurement would dominate the CPU stages, so its masks are empty (the demo model measures
the CPU stages on real masks). ``--small`` divides the features by 8 (the kit's CPU dry run).

Run::

    python benchmarks/gpu/sciseg_size_model.py OUT_DIR [--small] [--seed 0]
    python benchmarks/gpu/sciseg_size_model.py --plan   # rewrite sciseg_size_plans.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PLANS = HERE / "sciseg_size_plans.json"

#: (shape, spacing) in nnU-Net's axis order (SimpleITK's z, y, x after RPI: SI, AP, LR).
FINGERPRINT_CASES = [
    ((384, 216, 52), (1.0, 1.0, 1.0)),  # errsm11, sagittal 3D, 1 mm
    ((19, 256, 320), (7.5, 0.69, 0.69)),  # sctms, axial 2D
    ((320, 128, 12), (0.5, 0.5, 3.0)),  # synthetic site 1, sagittal 2D
    ((30, 91, 91), (5.0, 0.7, 0.7)),  # synthetic site 2, axial 2D
    ((167, 67, 44), (0.9, 0.9, 0.9)),  # synthetic site 3, isotropic 3D
]


def _plan_in_this_process(root: Path) -> dict[str, Any]:
    """Run nnU-Net's ExperimentPlanner on the fingerprint (nnU-Net's paths are read at import)."""
    import nibabel as nib
    import numpy as np

    name = "Dataset777_SCIsegSize"
    raw, pre = root / "raw" / name, root / "preprocessed" / name
    for folder in (raw / "imagesTr", raw / "labelsTr", pre):
        folder.mkdir(parents=True, exist_ok=True)
    dataset = {"channel_names": {"0": "T2w"}, "labels": {"background": 0, "sc": [1, 2], "lesion": 2},
               "regions_class_order": [1, 2], "numTraining": len(FINGERPRINT_CASES), "file_ending": ".nii.gz"}
    (raw / "dataset.json").write_text(json.dumps(dataset))
    for i in range(len(FINGERPRINT_CASES)):  # files only name the cases; the planner reads the fingerprint
        img = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
        nib.save(img, raw / "imagesTr" / f"case{i:03d}_0000.nii.gz")
        nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4)), raw / "labelsTr" / f"case{i:03d}.nii.gz")
    fingerprint = {
        "spacings": [list(sp) for _, sp in FINGERPRINT_CASES],
        "shapes_after_crop": [list(sh) for sh, _ in FINGERPRINT_CASES],
        "median_relative_size_after_cropping": 1.0,
        "foreground_intensity_properties_per_channel": {"0": {
            "max": 3000.0, "mean": 800.0, "median": 780.0, "min": 0.0,
            "percentile_00_5": 150.0, "percentile_99_5": 2000.0, "std": 300.0}},
    }
    (pre / "dataset_fingerprint.json").write_text(json.dumps(fingerprint))
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import (
        ExperimentPlanner,
    )

    ExperimentPlanner(name).plan_experiment()
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    plans["configurations"] = {"3d_fullres": plans["configurations"]["3d_fullres"]}
    plans["dataset_name"] = name
    plans["_comment"] = ("nnU-Net's ExperimentPlanner (default nnUNetPlans) on the fingerprint of "
                         "benchmarks/gpu/sciseg_size_model.py FINGERPRINT_CASES")
    return plans


def make_plans() -> dict[str, Any]:
    """Plan in a fresh process (nnU-Net reads ``nnUNet_raw``/``nnUNet_preprocessed`` at import)."""
    with tempfile.TemporaryDirectory(prefix="sciseg-size-plan-") as tmp:
        env = {**os.environ, "nnUNet_raw": f"{tmp}/raw", "nnUNet_preprocessed": f"{tmp}/preprocessed",
               "nnUNet_results": f"{tmp}/results"}
        code = f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import sciseg_size_model as m; " \
               f"print(json.dumps(m._plan_in_this_process(__import__('pathlib').Path({tmp!r}))))"
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def write_model(out: str | os.PathLike[str], *, small: bool = False, seed: int = 0) -> Path:
    """Write the model folder (SCIseg's layout, random weights); return it."""
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    from cohort_sciseg.segment.manifest import write_manifest
    from cohort_sciseg.segment.testing import tiny_dataset_json

    plans = json.loads(PLANS.read_text())
    config = plans["configurations"]["3d_fullres"]
    arch = config["architecture"]
    if small:
        kwargs = arch["arch_kwargs"]
        kwargs["features_per_stage"] = [max(2, int(f) // 8) for f in kwargs["features_per_stage"]]
    root = Path(out)
    trainer = root / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (trainer / "fold_0").mkdir(parents=True, exist_ok=True)
    (trainer / "plans.json").write_text(json.dumps(plans, indent=1))
    dataset = tiny_dataset_json("regions")
    (trainer / "dataset.json").write_text(json.dumps(dataset, indent=1))
    torch.manual_seed(seed)
    net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                 1, 2, allow_init=True, deep_supervision=False)
    head = net.decoder.seg_layers[-1]
    with torch.no_grad():  # empty masks: see the module docstring
        head.weight.zero_()
        head.bias.fill_(-20.0)
    checkpoint = {
        "network_weights": net.state_dict(),  # shared tensors (the decoder holds the encoder) saved once
        "init_args": {"configuration": "3d_fullres", "fold": 0},
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }
    torch.save(checkpoint, trainer / "fold_0" / "checkpoint_final.pth")
    write_manifest(root, name="sciseg-size-random" + ("-small" if small else ""), version="benchmark")
    return root


def describe(plans: dict[str, Any] | None = None) -> dict[str, Any]:
    """Patch size, spacing, stages, features and parameter count of the plan."""
    plans = plans or json.loads(PLANS.read_text())
    cfg = plans["configurations"]["3d_fullres"]
    kw = cfg["architecture"]["arch_kwargs"]
    return {"patch_size": cfg["patch_size"], "spacing": cfg["spacing"], "n_stages": kw["n_stages"],
            "features_per_stage": kw["features_per_stage"], "network": cfg["architecture"]["network_class_name"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", type=Path, help="model folder to write")
    p.add_argument("--small", action="store_true", help="features / 8 (CPU dry run)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plan", action="store_true", help="rewrite sciseg_size_plans.json with nnU-Net's planner")
    args = p.parse_args(argv)
    if args.plan:
        PLANS.write_text(json.dumps(make_plans(), indent=1) + "\n")
        print(json.dumps(describe(), indent=1))
    if args.out is not None:
        print(write_model(args.out, small=args.small, seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
