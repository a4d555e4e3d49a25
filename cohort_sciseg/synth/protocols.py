"""Site acquisition protocols of the synthetic cohort.

Three protocols, cycled over sites (site 4 reuses site 1's geometry with the next
vendor, and so on):

- ``site1``: sagittal 2D, voxels 3 mm left-right (slice thickness) x 0.5 x 0.5 mm,
  arrays stored ``PSR``, ``AIL`` or ``SAR`` (SCT naming), ``acq-sag``,
  Siemens Prisma 3 T, int16.
- ``site2``: axial 2D, voxels 0.7 x 0.7 mm in-plane x 5 mm superior-inferior,
  arrays ``RPI``, ``LAS`` or ``LPI``, ``acq-ax``, sessions (every second subject
  has a follow-up ``ses-02``), GE Signa HDxt 1.5 T, int16.
- ``site3``: isotropic 3D, 0.9 mm, arrays ``RPI``, ``PSR`` or ``ASR``, every second
  subject tilted 7 degrees about the left-right axis (oblique affine), no entity
  besides ``sub``, Philips Ingenia 3 T, float32.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

__all__ = ["DEFAULT_PROTOCOLS", "SiteProtocol", "site_protocol"]


@dataclass(frozen=True, slots=True)
class SiteProtocol:
    """How one site acquires its T2w scans.

    Attributes
    ----------
    plane
        Acquisition plane (``"sagittal"``, ``"axial"`` or ``"isotropic"``).
    voxel_mm
        Voxel size along world left-right, antero-posterior, superior-inferior (mm).
    fov_mm
        Field of view along the same axes (mm).
    orientations
        SCT orientation codes of the stored arrays, cycled over subjects.
    oblique_deg
        Tilt about the left-right axis (degrees), cycled over subjects (0: straight).
    manufacturer, model, field_strength_t, repetition_time_s, echo_time_s
        What the JSON sidecars say (BIDS ``Manufacturer``, ``ManufacturersModelName``,
        ``MagneticFieldStrength``, ``RepetitionTime``, ``EchoTime``; seconds, tesla).
    acq
        BIDS ``acq`` label of the files, or ``None``.
    follow_up
        Whether every second subject also has a follow-up session (then all of
        the site's subjects get ``ses-`` folders).
    dtype
        Stored image type (``"int16"`` or ``"float32"``).
    snr
        Cord signal over noise standard deviation.
    gain
        Stored value of CSF signal (before bias and noise).
    """

    plane: Literal["sagittal", "axial", "isotropic"]
    voxel_mm: tuple[float, float, float]
    fov_mm: tuple[float, float, float]
    orientations: tuple[str, ...]
    oblique_deg: tuple[float, ...]
    manufacturer: str
    model: str
    field_strength_t: float
    repetition_time_s: float
    echo_time_s: float
    acq: str | None = None
    follow_up: bool = False
    dtype: Literal["int16", "float32"] = "int16"
    snr: float = 20.0
    gain: float = 1500.0

    @property
    def sidecar(self) -> dict[str, object]:
        """BIDS JSON sidecar of the site's T2w images."""
        return {
            "Manufacturer": self.manufacturer,
            "ManufacturersModelName": self.model,
            "MagneticFieldStrength": self.field_strength_t,
            "RepetitionTime": self.repetition_time_s,
            "EchoTime": self.echo_time_s,
            "MRAcquisitionType": "3D" if self.plane == "isotropic" else "2D",
            "SliceThickness": max(self.voxel_mm),
        }


_VENDORS = (
    {"manufacturer": "Siemens", "model": "Prisma", "field_strength_t": 3.0, "snr": 22.0},
    {"manufacturer": "GE", "model": "Signa HDxt", "field_strength_t": 1.5, "snr": 13.0},
    {"manufacturer": "Philips", "model": "Ingenia", "field_strength_t": 3.0, "snr": 20.0},
)

#: The three base protocols (sites 1, 2, 3).
DEFAULT_PROTOCOLS: tuple[SiteProtocol, ...] = (
    SiteProtocol(
        plane="sagittal",
        voxel_mm=(3.0, 0.5, 0.5),
        fov_mm=(36.0, 64.0, 160.0),
        orientations=("PSR", "AIL", "SAR"),
        oblique_deg=(0.0,),
        manufacturer="Siemens",
        model="Prisma",
        field_strength_t=3.0,
        repetition_time_s=3.5,
        echo_time_s=0.095,
        acq="sag",
        snr=22.0,
        gain=1400.0,
    ),
    SiteProtocol(
        plane="axial",
        voxel_mm=(0.7, 0.7, 5.0),
        fov_mm=(64.0, 64.0, 150.0),
        orientations=("RPI", "LAS", "LPI"),
        oblique_deg=(0.0,),
        manufacturer="GE",
        model="Signa HDxt",
        field_strength_t=1.5,
        repetition_time_s=4.0,
        echo_time_s=0.102,
        acq="ax",
        follow_up=True,
        snr=13.0,
        gain=2600.0,
    ),
    SiteProtocol(
        plane="isotropic",
        voxel_mm=(0.9, 0.9, 0.9),
        fov_mm=(40.0, 60.0, 150.0),
        orientations=("RPI", "PSR", "ASR"),
        oblique_deg=(0.0, 7.0),
        manufacturer="Philips",
        model="Ingenia",
        field_strength_t=3.0,
        repetition_time_s=1.5,
        echo_time_s=0.12,
        dtype="float32",
        snr=20.0,
        gain=850.0,
    ),
)


def site_protocol(site_number: int) -> SiteProtocol:
    """Protocol of site ``site_number`` (1-based): geometry cycles with period 3, vendors shift."""
    base = DEFAULT_PROTOCOLS[(site_number - 1) % 3]
    rnd = (site_number - 1) // 3
    if rnd == 0:
        return base
    vendor = _VENDORS[(site_number - 1 + rnd) % 3]
    return replace(base, **vendor)  # type: ignore[arg-type]
