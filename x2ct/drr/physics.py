"""Hounsfield units to the quantity a DRR integrates along each ray.

Two models:

* physical: linear attenuation ``mu = mu_water * (1 + HU / 1000)`` in 1/mm, HU clipped first so mu >= 0. The
  line integral ``p = sum mu dl`` is dimensionless (the log image ``-ln(I / I0)`` of Beer-Lambert).
* slicer: the 3D Slicer "CT-X-ray" volume-rendering preset that the X2CT-GAN paper used. Its opacity
  ``alpha(HU)`` ramps linearly from 0 at ``hu_low`` to ``alpha_max`` at ``hu_high`` (flat outside) per
  ``unit_mm`` of path; the per-mm extinction is ``kappa = -ln(1 - alpha) / unit_mm`` and the rendered image is
  ``1 - exp(-sum kappa dl)`` in [0, 1]. Not physical: bone/water contrast is about 6x instead of about 2x.
"""

from __future__ import annotations

import torch

MU_WATER_70KEV_PER_MM: float = 0.0193
HU_PER_WATER_UNIT: float = 1000.0
DEFAULT_HU_CLIP: tuple[float, float] = (-1000.0, 3000.0)
SLICER_HU_LOW: float = -200.0
SLICER_HU_HIGH: float = 1500.0
SLICER_ALPHA_MAX: float = 0.05
SLICER_UNIT_MM: float = 1.0


def hu_to_mu(
    hu: torch.Tensor,
    mu_water: float = MU_WATER_70KEV_PER_MM,
    hu_clip: tuple[float, float] = DEFAULT_HU_CLIP,
) -> torch.Tensor:
    """Linear attenuation (1/mm, >= 0 when ``hu_clip[0] >= -1000``) of a HU tensor of any shape."""
    low, high = hu_clip
    if not low < high:
        raise ValueError(f"hu_clip must be (low, high) with low < high, got {hu_clip}")
    if mu_water <= 0:
        raise ValueError(f"mu_water must be positive (1/mm), got {mu_water}")
    return mu_water * (1.0 + hu.clamp(low, high) / HU_PER_WATER_UNIT)


def slicer_opacity(
    hu: torch.Tensor,
    hu_low: float = SLICER_HU_LOW,
    hu_high: float = SLICER_HU_HIGH,
    alpha_max: float = SLICER_ALPHA_MAX,
) -> torch.Tensor:
    """Slicer "CT-X-ray" opacity per unit length in [0, alpha_max]: 0 below ``hu_low``, linear up to
    ``alpha_max`` at ``hu_high``, flat above."""
    if not hu_low < hu_high:
        raise ValueError(f"slicer breakpoints need hu_low < hu_high, got {hu_low}, {hu_high}")
    if not 0.0 < alpha_max < 1.0:
        raise ValueError(f"slicer alpha_max must lie in (0, 1), got {alpha_max}")
    ramp = ((hu - hu_low) / (hu_high - hu_low)).clamp(0.0, 1.0)
    return alpha_max * ramp


def slicer_extinction(
    hu: torch.Tensor,
    hu_low: float = SLICER_HU_LOW,
    hu_high: float = SLICER_HU_HIGH,
    alpha_max: float = SLICER_ALPHA_MAX,
    unit_mm: float = SLICER_UNIT_MM,
) -> torch.Tensor:
    """Extinction ``kappa = -ln(1 - alpha(HU)) / unit_mm`` in 1/mm (>= 0), same shape as ``hu``."""
    if unit_mm <= 0:
        raise ValueError(f"slicer unit_mm must be positive, got {unit_mm}")
    return -torch.log1p(-slicer_opacity(hu, hu_low, hu_high, alpha_max)) / unit_mm


def slicer_image(optical_depth: torch.Tensor) -> torch.Tensor:
    """Rendered Slicer brightness ``1 - exp(-optical_depth)`` in [0, 1) (bone bright)."""
    return -torch.expm1(-optical_depth)
