"""A corpus of hostile but realistic inputs mixed into good synthetic BIDS datasets.

:func:`build_corpus` writes, beside one good synthetic scan (the *template*), one
subject per case into a main dataset (plus a few extra datasets for the cases
that are about a whole dataset), and returns every case with the exact outcome
``cohort-sciseg run`` must give it:

- :class:`Failed`: one failure record of that stage whose message matches, names
  the file and carries a fix; the scan's row is ``failed`` (stage ``discover``:
  discovery refused the header, so the scan has no row at all);
- :class:`Problem`: discovery records one problem naming the case's file (and the
  scan is then either not run at all, or run as ``then`` says);
- :class:`Done`: the scan is ``done``, with the given ``suspect`` flag and
  ``validation`` value (and a failure record of stage validation when excluded).

Each case is small: most fail before the model runs; the rest run the real demo
nnU-Net model on the template's 128 x 320 x 12 grid.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from cohort_sciseg.io import load_nifti

MAIN = "main"


@dataclass(frozen=True)
class Failed:
    stage: str
    match: str


@dataclass(frozen=True)
class Done:
    suspect: bool = False
    validation: str | None = "validated"
    notes: str | None = None
    excluded_match: str | None = None


@dataclass(frozen=True)
class Problem:
    match: str
    then: Done | Failed | None = None


@dataclass(frozen=True)
class Case:
    name: str
    expect: Failed | Done | Problem
    dataset: str = MAIN
    what: str = ""

    @property
    def scan_id(self) -> str:
        return f"site-{self.dataset}_sub-{self.name}_T2w"


@dataclass
class Template:
    """The good scan every case starts from (image on its grid, manual masks)."""

    image: np.ndarray
    affine: np.ndarray
    cord: np.ndarray
    lesion: np.ndarray

    @classmethod
    def from_files(cls, image: str, cord: str, lesion: str) -> Template:
        img = load_nifti(image)
        return cls(
            np.asarray(img.data, dtype=np.int16), img.affine,
            np.asarray(load_nifti(cord).data > 0, dtype=np.uint8), np.asarray(load_nifti(lesion).data > 0, dtype=np.uint8),
        )


@dataclass
class _Writer:
    roots: dict[str, Path]
    t: Template
    cases: list[Case] = field(default_factory=list)

    def root(self, dataset: str = MAIN) -> Path:
        if dataset not in self.roots:
            root = self.roots[MAIN].parent / dataset
            root.mkdir(parents=True)
            _describe(root, dataset)
            self.roots[dataset] = root
        return self.roots[dataset]

    def image_path(self, name: str, dataset: str = MAIN, ext: str = ".nii.gz") -> Path:
        folder = self.root(dataset) / f"sub-{name}" / "anat"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"sub-{name}_T2w{ext}"

    def mask_path(self, name: str, kind: str, dataset: str = MAIN) -> Path:
        folder = self.root(dataset) / "derivatives" / "labels" / f"sub-{name}" / "anat"
        folder.mkdir(parents=True, exist_ok=True)
        suffix = "seg-manual" if kind == "cord" else "lesion-manual"
        return folder / f"sub-{name}_T2w_{suffix}.nii.gz"

    def scan(
        self, name: str, expect: Failed | Done | Problem, *, image: nib.Nifti1Image | None = None,
        cord: np.ndarray | bool | None = True, lesion: np.ndarray | bool | None = True, dataset: str = MAIN,
        ext: str = ".nii.gz", what: str = "", pixdim: dict[int, float] | None = None,
    ) -> Path:
        path = self.image_path(name, dataset, ext)
        nib.save(image if image is not None else _img(self.t.image, self.t.affine), path)
        if pixdim:
            _patch_pixdim(path, pixdim)
        for kind, mask, default in (("cord", cord, self.t.cord), ("lesion", lesion, self.t.lesion)):
            if mask is False or mask is None:
                continue
            data = default if mask is True else mask
            nib.save(_img(data, self.t.affine), self.mask_path(name, kind, dataset))
        self.cases.append(Case(name, expect, dataset, what or name))
        return path


def _describe(root: Path, name: str) -> None:
    (root / "dataset_description.json").write_text(json.dumps({"Name": name, "BIDSVersion": "1.9.0"}))


def _img(
    data: np.ndarray, affine: np.ndarray, *, sform: int = 1, qform: int = 1, dtype: object = None
) -> nib.Nifti1Image:
    arr = np.asarray(data)
    img = nib.Nifti1Image(arr, affine)
    img.set_data_dtype(np.dtype(dtype) if dtype is not None else arr.dtype)
    img.set_sform(affine, code=sform)
    img.set_qform(affine, code=qform)
    return img


def _qform_only(t: Template) -> nib.Nifti1Image:
    """The template with no sform (the qform gives the spacing)."""
    return _img(t.image, t.affine, sform=0, qform=1)


def _patch_pixdim(path: Path, values: dict[int, float]) -> None:
    """Overwrite ``pixdim[i]`` in the file's header bytes (nibabel refuses to write such headers)."""
    gz = path.name.endswith(".gz")
    raw = bytearray(gzip.decompress(path.read_bytes()) if gz else path.read_bytes())
    for i, v in values.items():
        raw[76 + 4 * i : 80 + 4 * i] = np.array([v], dtype="<f4").tobytes()  # pixdim: float32[8] at byte 76
    path.write_bytes(gzip.compress(bytes(raw)) if gz else bytes(raw))


def _deep_json(path: Path) -> None:
    path.write_text("[" * 100_000 + "]" * 100_000)


def build_corpus(main_root: Path, t: Template) -> tuple[list[Path], list[Case]]:
    """Write the corpus (see the module docstring); return the dataset roots and the cases."""
    w = _Writer({MAIN: main_root}, t)
    aff = t.affine
    shape = t.image.shape

    # ---- good scans: the baseline, and variants that must work
    w.scan("good", Done())
    w.scan("plainnii", Done(), ext=".nii", what="uncompressed .nii")
    w.scan("frame1", Done(), image=_img(t.image[..., None], aff), what="4D with one frame")
    sform_ok = _img(t.image, aff, sform=1, qform=0)
    sform_ok.header["pixdim"][1:4] = 0
    w.scan("sformok", Done(), image=sform_ok, what="pixdim 0 but a valid sform gives the spacing")
    scaled = _img(t.image, aff)
    scaled.header.set_slope_inter(2.0, 10.0)
    w.scan("scaled", Done(), image=scaled, what="int16 with a scaling slope")
    w.scan("float32", Done(), image=_img(t.image.astype(np.float32) / 7.0, aff), what="float32 intensities")

    flip = aff.copy()
    flip[:3, 0] *= -1
    flip[:3, 3] -= flip[:3, 0] * (shape[0] - 1)
    w.scan("flipped", Done(suspect=False, validation=None), image=_img(t.image[::-1].copy(), flip),
           cord=False, lesion=False, what="an axis stored the other way (the affine says so)")
    c, s_ = np.cos(np.radians(10)), np.sin(np.radians(10))
    oblique = np.array([[c, -s_, 0, 0], [s_, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]) @ aff
    w.scan("oblique", Done(validation=None), image=_img(t.image, oblique), cord=False, lesion=False,
           what="a 10 degree oblique acquisition")

    # ---- header / voxel sizes (io)
    for axis in (1, 2, 3):
        w.scan(f"pixdim0ax{axis}", Failed("discover", rf"pixdim\[{axis}\] = 0"), image=_qform_only(t), pixdim={axis: 0.0})
    w.scan("pixdimneg", Failed("discover", r"pixdim\[2\] = -0.5"), image=_qform_only(t), pixdim={2: -0.5})
    w.scan("pixdimtiny", Failed("discover", r"pixdim\[1\] = 0.01"), image=_qform_only(t), pixdim={1: 0.01})
    w.scan("pixdimhuge", Failed("discover", r"pixdim\[3\] = 50"), image=_qform_only(t), pixdim={3: 50.0})
    w.scan("pixdimnan", Failed("discover", r"pixdim\[1\] = nan"), image=_qform_only(t), pixdim={1: np.nan})
    w.scan("sformabsurd", Failed("discover", "srow"), image=_img(t.image, aff @ np.diag([0.001, 1, 1, 1]), sform=1, qform=0))
    w.scan("noaffine", Failed("discover", "neither an sform nor a qform"), image=_img(t.image, aff, sform=0, qform=0))
    singular = aff.copy()
    singular[:3, 1] = singular[:3, 0]
    w.scan("singular", Failed("discover", "singular|collinear|srow"), image=_img(t.image, singular, sform=1, qform=0))
    w.scan("frames3", Failed("discover", "4D with 3 frames"), image=_img(np.stack([t.image] * 3, -1), aff))
    w.scan("twod", Failed("discover", "2D"), image=_img(t.image[:, :, 0], aff))

    # ---- broken files (io)
    p = w.scan("emptyfile", Failed("discover", r"empty \(0 bytes\)"))
    p.write_bytes(b"")
    p = w.scan("truncated", Failed("io", "truncated"))
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    p = w.scan("garbage", Failed("discover", "cannot read the NIfTI header"))
    p.write_bytes(gzip.compress(b"this is not a NIfTI file" * 100))
    p = w.scan("shortdata", Failed("io", "data bytes"), ext=".nii")
    p.write_bytes(p.read_bytes()[:-1000])
    nan = t.image.astype(np.float32)
    nan[5, 5, 5] = np.nan
    w.scan("nanvox", Failed("io", "NaN or infinite"), image=_img(nan, aff))
    inf = t.image.astype(np.float32)
    inf[5, 5, 5] = np.inf
    w.scan("infvox", Failed("io", "NaN or infinite"), image=_img(inf, aff))
    w.scan("complex", Failed("io", "complex64.*not supported"), image=_img(t.image.astype(np.complex64), aff))
    p = w.scan("hugedims", Failed("discover", "voxels"))
    _write_header_only(p, (4000, 4000, 4000), aff)

    p = w.scan("voxoffset", Failed("io", "vox_offset|data bytes"), ext=".nii")
    raw = bytearray(p.read_bytes())
    raw[108:112] = np.array([1e9], dtype="<f4").tobytes()  # vox_offset far beyond the end of the file
    p.write_bytes(bytes(raw))

    # ---- intensities the model cannot use (io)
    w.scan("blank", Failed("io", "blank: all .* voxels are 0"), image=_img(np.zeros(shape, np.int16), aff))
    w.scan("constant", Failed("io", "one value everywhere"), image=_img(np.full(shape, 100, np.int16), aff))
    w.scan("blankuint8", Failed("io", "blank"), image=_img(np.zeros(shape, np.uint8), aff), ext=".nii")
    big = t.image.astype(np.float32) * np.float32(1e33)
    w.scan("extreme", Failed("io", "magnitude up to"), image=_img(big, aff))
    wrapped = (t.image.astype(np.int32) * 40).astype(np.int16)  # uint16 data above 32767 stored as int16
    w.scan("wrapped", Failed("io", "wrapped around"), image=_img(wrapped, aff))

    # ---- grids the model cannot segment (segment)
    w.scan("tiny4", Failed("segment", "field of view is too small"), image=_img(t.image[:4, :4, :4], aff),
           cord=False, lesion=False)
    w.scan("oneslice", Failed("segment", r"1 voxel\(s\)"), image=_img(t.image[:, :, 5:6], aff), cord=False, lesion=False)
    w.scan("thin2", Failed("segment", r"2 voxel\(s\)"), image=_img(t.image[:, :, 5:7], aff), cord=False, lesion=False)
    coarse = np.diag([10.0, 10.0, 10.0, 1.0])
    w.scan("coarse", Failed("segment", "1000-fold"), image=_img(t.image[:32, :32, :12].repeat(3, 2)[:, :, :32], coarse),
           cord=False, lesion=False)

    # ---- images without a cord: the model's output is flagged, never plain done
    rng = np.random.default_rng(0)
    w.scan("noise", Done(suspect=True, validation=None),
           image=_img(rng.normal(500, 100, shape).astype(np.int16), aff), cord=False, lesion=False)
    ramp = np.broadcast_to(np.linspace(0, 1000, shape[1])[None, :, None], shape).astype(np.int16)
    w.scan("gradient", Done(suspect=True, validation=None), image=_img(np.ascontiguousarray(ramp), aff),
           cord=False, lesion=False)

    # ---- manual masks (validation)
    excl = "excluded"
    w.scan("softlow", Done(validation=excl, excluded_match="none above 0.5"),
           lesion=t.lesion.astype(np.float32) * np.float32(0.45))
    w.scan("minusone", Done(validation=excl, excluded_match="none above 0.5"), lesion=-t.lesion.astype(np.int8))
    w.scan("emptycord", Done(validation=excl, excluded_match="cord mask is empty"), cord=np.zeros_like(t.cord))
    far = np.zeros_like(t.lesion)
    far[:3, :3, :3] = 1
    w.scan("lesionoutside", Done(validation=excl, excluded_match="fully outside the manual cord"), lesion=far)
    w.scan("maskgrid", Done(validation=excl, excluded_match="grid|shape"), cord=t.cord[:, :-1])
    w.scan("lesiononly", Done(validation="incomplete", notes="manual lesion mask without a manual cord mask"),
           cord=False)
    w.scan("cordonly", Done(validation="incomplete", notes="manual cord mask without a manual lesion mask"),
           lesion=False)
    w.scan("softok", Done(notes="manual lesion mask"), lesion=t.lesion.astype(np.float32) * np.float32(0.9))
    w.scan("nolesion", Done(), lesion=np.zeros_like(t.lesion))
    p = w.scan("maskcorrupt", Done(validation=excl, excluded_match="truncated"))
    m = w.mask_path("maskcorrupt", "lesion")
    m.write_bytes(m.read_bytes()[: m.stat().st_size // 2])

    # ---- files discovery must survive
    p = w.scan("selflink", Problem("symlink loop"))
    p.unlink()
    p.symlink_to(p.name)
    p = w.scan("subjloop", Problem("symlink loop"))
    subj = p.parent.parent
    shutil.rmtree(subj)
    subj.symlink_to(subj.name)
    w.scan("maskloop", Problem("symlink loop", then=Done(validation="incomplete")))
    m = w.mask_path("maskloop", "lesion")
    m.unlink()
    m.symlink_to(m.name)
    w.scan("maskfifo", Problem("FIFO", then=Done(validation="incomplete")))
    m = w.mask_path("maskfifo", "cord")
    m.unlink()
    os.mkfifo(m)
    p = w.scan("deepjson", Problem("nested too deeply", then=Done()))
    _deep_json(p.with_name("sub-deepjson_T2w.json"))
    p = w.scan("fifosidecar", Problem("FIFO", then=Done()))
    os.mkfifo(p.with_name("sub-fifosidecar_T2w.json"))
    p = w.scan("dupext", Problem("same scan id"))
    nib.save(_img(t.image, aff), p.with_name("sub-dupext_T2w.nii"))
    p = w.scan("brokenlink", Failed("discover", "not found|broken"))
    p.unlink()
    p.symlink_to("does-not-exist.nii.gz")
    p = w.scan("fifoimage", Failed("discover", "not a regular file|FIFO"), cord=False, lesion=False)
    p.unlink()
    os.mkfifo(p)

    # ---- whole datasets
    w.scan("siteb", Problem("FIFO", then=Done()), dataset="fifotsv")
    os.mkfifo(w.root("fifotsv") / "participants.tsv")
    w.scan("sitec", Problem("dataset_description"), dataset="nodesc")
    (w.root("nodesc") / "dataset_description.json").unlink()
    w.scan("sited", Problem("nested too deeply", then=Done()), dataset="deepdesc")
    _deep_json(w.root("deepdesc") / "dataset_description.json")
    w.scan("sitee", Problem("symlink loop", then=Done()), dataset="looptsv")
    tsv = w.root("looptsv") / "participants.tsv"
    tsv.symlink_to(tsv.name)
    return list(w.roots.values()), w.cases


def _write_header_only(path: Path, shape: tuple[int, int, int], affine: np.ndarray) -> None:
    """A header declaring ``shape`` (int16) followed by almost no data: refused from the header alone."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.int16)
    hdr.set_sform(affine, code=1)
    hdr.set_qform(affine, code=1)
    raw = hdr.binaryblock + b"\x00" * 4 + b"\x00" * 64
    path.write_bytes(gzip.compress(raw))


def the_template(synth_root: Path) -> tuple[Path, Template]:
    """A one-scan synthetic dataset (the template's own case ``good`` is written by the corpus)."""
    from cohort_sciseg.discover import find_scans
    from cohort_sciseg.synth import synthesize_cohort

    cohort = synthesize_cohort(synth_root, sites=1, subjects_per_site=2, seed=3)
    scans = find_scans(cohort.dataset_roots).scans
    scan = next(s for s in scans if (load_nifti(s.lesion_mask_path).data > 0).any())
    assert scan.cord_mask_path is not None
    assert scan.lesion_mask_path is not None
    return cohort.dataset_roots[0], Template.from_files(scan.image_path, scan.cord_mask_path, scan.lesion_mask_path)

