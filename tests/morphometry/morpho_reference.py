"""Independent, deliberately naive re-implementation of REFERENCE.md section 2 (the test oracle).

Written from the definitions only (not from ``cohort_sciseg.morphometry``): explicit Python loops
over voxels and slices, its own 18-connected flood fill, nibabel for the reorientation to RPI
(nibabel ``LAS``). Slow but obvious; used on small phantoms and on the real scans' few lesions.

Conventions (SCT ``sct_analyze_lesion``): RPI arrays, x R->L, y P->A, z I->S; ``zooms`` are the
voxel sizes of the RPI array in mm. Values that the definitions leave open (the midsagittal and
bridge measures of a lesion lying fully outside the cord, the intensity of such a lesion) are
returned as ``None`` and never compared.
"""

from __future__ import annotations

import math
from typing import Any

import nibabel as nib
import numpy as np
from scipy.interpolate import splev, splrep

NEIGHBOURS_18 = tuple(
    (dx, dy, dz)
    for dx in (-1, 0, 1)
    for dy in (-1, 0, 1)
    for dz in (-1, 0, 1)
    if 0 < abs(dx) + abs(dy) + abs(dz) <= 2
)


def to_rpi(arr: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Array and affine reoriented to SCT RPI (nibabel LAS)."""
    start = nib.orientations.io_orientation(affine)
    end = nib.orientations.axcodes2ornt(("L", "A", "S"))
    tr = nib.orientations.ornt_transform(start, end)
    out = nib.orientations.apply_orientation(np.asarray(arr), tr)
    return out, affine @ nib.orientations.inv_ornt_aff(tr, np.asarray(arr).shape)


def components_18(mask: np.ndarray) -> list[np.ndarray]:
    """18-connected components of a boolean volume, each an (n, 3) array of voxel indices."""
    remaining = {tuple(int(v) for v in p) for p in np.argwhere(mask)}
    comps = []
    while remaining:
        seed = remaining.pop()
        stack = [seed]
        comp = [seed]
        while stack:
            x, y, z = stack.pop()
            for dx, dy, dz in NEIGHBOURS_18:
                n = (x + dx, y + dy, z + dz)
                if n in remaining:
                    remaining.remove(n)
                    stack.append(n)
                    comp.append(n)
        comps.append(np.array(sorted(comp), dtype=int))
    return comps


def centerline_angles(
    cord: np.ndarray, zooms: tuple[float, float, float], angle_correction: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """theta3D(z) and thetaSag(z) (radians) for z in 0..nz-1 from the cord's smoothed centerline."""
    nz = cord.shape[2]
    if not angle_correction:
        return np.zeros(nz), np.zeros(nz)
    px, py, pz = zooms
    zs, xs, ys = [], [], []
    for z in range(nz):
        pts = np.argwhere(cord[:, :, z])
        if len(pts):
            zs.append(float(z))
            xs.append(float(np.mean(pts[:, 0])))
            ys.append(float(np.mean(pts[:, 1])))
    k = 3 if len(zs) > 3 else 1
    s = (len(zs) / nz) ** 2 * 20 * pz / 3
    tck_x = splrep(zs, xs, k=k, s=s)
    tck_y = splrep(zs, ys, k=k, s=s)
    grid = np.arange(nz, dtype=float)
    dxs = splev(grid, tck_x, der=1)
    dys = splev(grid, tck_y, der=1)
    theta3d = np.zeros(nz)
    theta_sag = np.zeros(nz)
    for z in range(nz):
        v3 = np.array([dxs[z] * px, dys[z] * py, pz])
        vs = np.array([0.0, dys[z] * py, pz])
        theta3d[z] = math.acos(min(1.0, v3[2] / np.linalg.norm(v3)))
        theta_sag[z] = math.acos(min(1.0, vs[2] / np.linalg.norm(vs)))
    return theta3d, theta_sag


def _line_extent(line: np.ndarray) -> tuple[int, int] | None:
    idx = np.flatnonzero(line)
    if len(idx) == 0:
        return None
    return int(idx[0]), int(idx[-1])


def _slice_bridge(
    r: np.ndarray, cord: np.ndarray, x: int, z: int
) -> tuple[int, int] | None:
    """(dorsal, ventral) bridge in voxels on the line (x, :, z), None when no lesion there."""
    le = _line_extent(r[x, :, z])
    if le is None:
        return None
    ce = _line_extent(cord[x, :, z])
    assert ce is not None  # the lesion is restricted to the cord
    return max(le[0] - ce[0], 0), max(ce[1] - le[1], 0)


def reference_measures(
    cord_rpi: np.ndarray,
    lesion_rpi: np.ndarray,
    affine_rpi: np.ndarray,
    *,
    image_rpi: np.ndarray | None = None,
    threshold: float = 0.5,
    angle_correction: bool = True,
    scan_id: str | None = None,
    nli_rpi: int | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Per-lesion rows, per-(lesion, sagittal slice) bridge rows and the scan summary (RPI input).

    ``nli_rpi``: the NLI slice as an RPI z index (SCT -nli-slice after its reorientation).
    """
    cord = np.asarray(cord_rpi) > threshold
    les = np.asarray(lesion_rpi) > threshold
    _nx, _ny, nz = cord.shape
    zooms = tuple(float(np.linalg.norm(affine_rpi[:3, i])) for i in range(3))
    px, py, pz = zooms
    vox = px * py * pz
    t3, ts = centerline_angles(cord, zooms, angle_correction)

    lesions = []
    for comp in components_18(les):
        inside = np.array([p for p in comp if cord[tuple(p)]], dtype=int).reshape(-1, 3)
        outside_n = len(comp) - len(inside)
        fully_outside = len(inside) == 0
        pts = comp if fully_outside else inside
        r = np.zeros(cord.shape, dtype=bool)
        r[tuple(inside.T)] = True
        m = np.zeros(cord.shape, dtype=bool)
        m[tuple(pts.T)] = True
        zs = sorted({int(z) for z in pts[:, 2]})
        length = sum(pz / math.cos(t3[z]) for z in zs)
        width = 0.0
        best_area = 0.0
        ratio = 0.0
        for z in zs:
            ys_z = pts[pts[:, 2] == z][:, 1]
            width = max(width, (int(ys_z.max()) - int(ys_z.min()) + 1) * py * math.cos(ts[z]))
            n_z = int(np.sum(pts[:, 2] == z))
            best_area = max(best_area, n_z * px * py * math.cos(t3[z]))
            if not fully_outside:
                ratio = max(ratio, n_z / int(cord[:, :, z].sum()))
        c_vox = pts.mean(axis=0)
        c_world = affine_rpi[:3, :3] @ c_vox + affine_rpi[:3, 3]
        mean_i = std_i = None
        if image_rpi is not None and not fully_outside:
            vals = np.array([image_rpi[tuple(p)] for p in inside], dtype=float)
            vals = vals[vals != 0]
            if len(vals):
                mean_i = float(np.mean(vals))
                std_i = float(np.sqrt(np.mean((vals - np.mean(vals)) ** 2)))
        lesions.append(
            {
                "_r": r,
                "_zc_volume": len(inside),
                "_centroid_vox": c_vox,
                "volume_mm3": len(inside) * vox,
                "outside_cord_volume_mm3": outside_n * vox,
                "fully_outside_cord": fully_outside,
                "length_mm": length,
                "width_mm": width,
                "max_equivalent_diameter_mm": 2 * math.sqrt(best_area / math.pi),
                "max_axial_damage_ratio": ratio,
                "centroid_x_mm": float(c_world[0]),
                "centroid_y_mm": float(c_world[1]),
                "centroid_z_mm": float(c_world[2]),
                "z_min_slice": zs[0],
                "z_max_slice": zs[-1],
                "mean_intensity": mean_i,
                "std_intensity": std_i,
            }
        )
    lesions.sort(key=lambda d: -d["_centroid_vox"][2])

    # Interpolated midsagittal slice from the largest lesion (inside-cord volume).
    x_star = math.nan
    if nli_rpi is not None:
        if cord[:, :, nli_rpi].any():
            x_star = float(np.argwhere(cord[:, :, nli_rpi])[:, 0].mean())
    elif lesions and max(d["_zc_volume"] for d in lesions) > 0:
        big = max(lesions, key=lambda d: d["_zc_volume"])
        z_c = round(float(np.argwhere(big["_r"])[:, 2].mean()))
        xs = []
        for z in range(z_c - 2, z_c + 3):
            if 0 <= z < nz and cord[:, :, z].any():
                xs.append(float(np.argwhere(cord[:, :, z])[:, 0].mean()))
        if xs:
            x_star = float(np.mean(xs))

    slice_rows = []
    for lid, d in enumerate(lesions, start=1):
        d["lesion_id"] = lid
        d["scan_id"] = scan_id
        r = d["_r"]
        # Per-sagittal-slice minimum bridges (SCT slice_<n>_*).
        for x in sorted({int(v) for v in np.argwhere(r)[:, 0]}):
            dors, vent = [], []
            for z in range(nz):
                b = _slice_bridge(r, cord, x, z)
                if b is not None:
                    dors.append(b[0] * py * math.cos(ts[z]))
                    vent.append(b[1] * py * math.cos(ts[z]))
            slice_rows.append(
                {
                    "scan_id": scan_id,
                    "lesion_id": lid,
                    "sagittal_slice": x,
                    "dorsal_bridge_width_mm": min(dors),
                    "ventral_bridge_width_mm": min(vent),
                    "total_bridge_width_mm": min(dors) + min(vent),
                }
            )
        keys = (
            "length_midsagittal_mm", "width_midsagittal_mm", "dorsal_bridge_width_mm",
            "ventral_bridge_width_mm", "total_bridge_width_mm", "dorsal_bridge_ratio_pct",
            "ventral_bridge_ratio_pct", "bridge_fallback",
        )
        if d["fully_outside_cord"] or math.isnan(x_star):
            d.update(dict.fromkeys(keys))
            continue
        s1, s2 = math.floor(x_star), math.ceil(x_star)
        f = x_star - s1
        interp = (1 - f) * r[s1].astype(float) + f * r[s2].astype(float)  # (y, z)
        length_mid = 0.0
        width_mid = 0.0
        for z in range(nz):
            col = interp[:, z]
            nzv = col[col != 0]
            if len(nzv):
                length_mid += float(np.mean(nzv)) * pz / math.cos(ts[z])
                width_mid = max(width_mid, float(np.sum(nzv)) * py * math.cos(ts[z]))
        d["length_midsagittal_mm"] = length_mid
        d["width_midsagittal_mm"] = width_mid
        zs_mid = [z for z in range(nz) if r[s1, :, z].any() or r[s2, :, z].any()]
        if zs_mid:
            dors, vent = [], []
            for z in zs_mid:
                # SCT master (PR #5202): a slice without the lesion takes the other slice's value.
                b1 = _slice_bridge(r, cord, s1, z)
                b2 = _slice_bridge(r, cord, s2, z)
                b1 = b1 if b1 is not None else b2
                b2 = b2 if b2 is not None else b1
                assert b1 is not None
                assert b2 is not None
                c = py * math.cos(ts[z])
                dors.append(((1 - f) * b1[0] + f * b2[0]) * c)
                vent.append(((1 - f) * b1[1] + f * b2[1]) * c)
            dorsal, ventral = min(dors), min(vent)
            fallback = False
        else:
            # Cord A-P diameter (voxel count on each line), both lines must have cord.
            vals = []
            for z in sorted({int(v) for v in np.argwhere(r)[:, 2]}):
                n1, n2 = int(cord[s1, :, z].sum()), int(cord[s2, :, z].sum())
                if n1 and n2:
                    vals.append(((1 - f) * n1 + f * n2) * py * math.cos(ts[z]))
            total = min(vals) if vals else math.nan
            dorsal = ventral = total / 2
            fallback = True
        total = dorsal + ventral
        d["dorsal_bridge_width_mm"] = dorsal
        d["ventral_bridge_width_mm"] = ventral
        d["total_bridge_width_mm"] = total
        d["dorsal_bridge_ratio_pct"] = 100 * dorsal / total if total > 0 else math.nan
        d["ventral_bridge_ratio_pct"] = 100 * ventral / total if total > 0 else math.nan
        d["bridge_fallback"] = fallback

    rows = [{k: v for k, v in d.items() if not k.startswith("_")} for d in lesions]
    nli_diameter = None
    if nli_rpi is not None and not math.isnan(x_star):
        s1, s2 = math.floor(x_star), math.ceil(x_star)
        f = x_star - s1
        n1, n2 = int(cord[s1, :, nli_rpi].sum()), int(cord[s2, :, nli_rpi].sum())
        if n1 and n2:
            nli_diameter = ((1 - f) * n1 + f * n2) * py * math.cos(ts[nli_rpi])
    summary = {
        "scan_id": scan_id,
        "n_lesions": len(rows),
        "total_volume_mm3": float(sum(d["volume_mm3"] for d in rows)),
        "total_outside_cord_volume_mm3": float(sum(d["outside_cord_volume_mm3"] for d in rows)),
        "total_length_mm": float(sum(d["length_mm"] for d in rows)),
        "max_axial_damage_ratio": float(max((d["max_axial_damage_ratio"] for d in rows), default=0.0)),
        "cord_volume_mm3": int(cord.sum()) * vox,
        "midsagittal_slice": x_star,
        "nli_ap_diameter_mm": nli_diameter,
        "connectivity": 18,
        "threshold": threshold,
        "angle_correction": angle_correction,
    }
    return rows, slice_rows, summary


def reference_from_any(
    cord: np.ndarray,
    lesion: np.ndarray,
    affine: np.ndarray,
    *,
    image: np.ndarray | None = None,
    **kwargs: Any,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """:func:`reference_measures` on arrays in any orientation (reoriented to RPI first)."""
    cord_rpi, aff_rpi = to_rpi(cord, affine)
    lesion_rpi, _ = to_rpi(lesion, affine)
    image_rpi = None if image is None else to_rpi(image, affine)[0]
    return reference_measures(cord_rpi, lesion_rpi, aff_rpi, image_rpi=image_rpi, **kwargs)
