"""The canonical CT volume that every data source produces and every later stage consumes.

Canonical axes (array order D, H, W), the convention of the whole project:

* D (axis 0), cranio-caudal: index 0 is the most **superior** (cranial) slice, increasing toward the feet.
* H (axis 1), anterior-posterior: index 0 is the most **anterior** row, increasing toward the back.
* W (axis 2), left-right: index 0 is the patient's **right**, increasing toward the patient's left.

In nibabel's axis codes (the direction in which each index increases) this is ``("I", "P", "L")``.
An AP image ``xray1[r, c]`` therefore shows the head at the top and the patient's right on the viewer's
left (radiological display), and lines up with ``ct[r, :, c]``. A lateral image ``xray2[r, c]`` (90 degrees)
has the head at the top and anterior on the left, and lines up with ``ct[r, c, :]``.

The affine maps canonical voxel indices (d, h, w, 1) to RAS+ world millimetres (nibabel / NIfTI convention),
so a volume written with it opens the right way up in 3D Slicer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

CANONICAL_AXCODES: tuple[str, str, str] = ("I", "P", "L")
AIR_HU: float = -1000.0


def canonical_affine(
    spacing: tuple[float, float, float], origin_ras: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> np.ndarray:
    """4x4 affine of a canonical (I, P, L) grid with ``spacing`` (mm, D/H/W order) whose voxel (0,0,0) is at
    ``origin_ras`` (RAS+ mm)."""
    sd, sh, sw = (float(s) for s in spacing)
    affine = np.eye(4)
    affine[:3, 0] = (0.0, 0.0, -sd)  # D increases toward inferior (-S)
    affine[:3, 1] = (0.0, -sh, 0.0)  # H increases toward posterior (-A)
    affine[:3, 2] = (-sw, 0.0, 0.0)  # W increases toward the patient's left (-R)
    affine[:3, 3] = origin_ras
    return affine


@dataclass
class Volume:
    """A CT scan in canonical axes.

    Attributes:
        hu: float32 array (D, H, W) in Hounsfield units (air -1000).
        labels: int16 array (D, H, W) of vertebra labels in CTSpine1K/VerSe numbering (0 = background,
            1-7 C1-C7, 8-19 T1-T12, 20-24 L1-L5, 25 L6, 28 T13), or None.
        spacing: voxel size in mm along (D, H, W).
        affine: 4x4 voxel-index -> RAS+ mm matrix of this canonical array.
        case_id: identifier of the case (file stem, subject id or phantom name).
        meta: free-form provenance (source paths, original shape and spacing, ...).
    """

    hu: np.ndarray
    labels: np.ndarray | None
    spacing: tuple[float, float, float]
    affine: np.ndarray
    case_id: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.hu.ndim != 3:
            raise ValueError(f"case {self.case_id!r}: CT must be 3D (D, H, W), got shape {self.hu.shape}")
        if self.labels is not None and self.labels.shape != self.hu.shape:
            raise ValueError(
                f"case {self.case_id!r}: label shape {self.labels.shape} differs from CT shape {self.hu.shape}"
            )
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError(f"case {self.case_id!r}: spacing must be three positive numbers, got {self.spacing}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)  # type: ignore[return-value]

    def mask_centroid_mm(self) -> np.ndarray:
        """Centroid of the vertebra mask (labels > 0) in canonical millimetres (index * spacing), (3,).
        Raises ValueError when the mask is empty."""
        if self.labels is None or not np.any(self.labels > 0):
            raise ValueError(f"case {self.case_id!r}: the vertebra mask is empty, no centroid")
        idx = np.argwhere(self.labels > 0).mean(axis=0)
        return idx * np.asarray(self.spacing)
