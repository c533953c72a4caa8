"""Modern reconstruction metrics, reported beside (never mixed with) the legacy X2CT ones.

For one (D, H, W) pair on the model's [0, 1] scale, where ``ct_window_hu = (low, high)`` maps 0 -> low HU and
1 -> high HU (``fake`` clamped to [0, 1]):

* ``PSNR-true``: 10 log10(1 / MSE) with the true data range 1 of the [0, 1] scale (100 dB when MSE = 0, the
  legacy convention, so that dataset means stay finite).
* ``MAE-HU``: mean |R - F| in HU (= MAE0 x window width).
* ``SSIM-3D-gauss``: 3D SSIM of torchmetrics (Gaussian window 11^3, sigma 1.5, ``data_range = 1.0``, reflect
  padding, mean over the whole map, float32: about 1e-4 below 1 for identical piecewise-constant volumes).
* ``Dice-bone``: Dice of the bone masks ``HU >= bone_threshold_hu``; NaN when both masks are empty.
* ``HD95-mm``: 95th-percentile symmetric Hausdorff distance between the bone masks' surfaces, in mm:
  max of the two directed 95th percentiles (MONAI's definition). ``ASSD-mm``: average symmetric surface
  distance, the mean of all surface distances of both directions pooled.
  Surfaces: mask voxels with a face neighbour outside the mask (the volume border counts as outside);
  distances: Euclidean distance transforms with ``sampling = spacing_mm``.
  Both are NaN when either mask is empty (undefined); ``x2ct.metrics.summarize`` leaves NaN out of a metric's
  mean and counts it in ``n_nan``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

from x2ct.metrics.inputs import VolumeLike, as_float_tensor, check_min_size, check_pair, check_spacing, check_unit_range
from x2ct.metrics.legacy import IDENTICAL_PSNR_DB
from x2ct.metrics.volume import ssim3d

DEFAULT_CT_WINDOW_HU: tuple[float, float] = (-1024.0, 1476.0)
DEFAULT_BONE_THRESHOLD_HU = 250.0
UNIT_DATA_RANGE = 1.0
HAUSDORFF_PERCENTILE = 95.0
SSIM3D_KERNEL_SIZE = 11  # torchmetrics' default Gaussian window
MODERN_METRIC_NAMES: tuple[str, ...] = ("PSNR-true", "MAE-HU", "SSIM-3D-gauss", "Dice-bone", "HD95-mm", "ASSD-mm")
FACE_CONNECTIVITY = 1


def dice(mask_a: np.ndarray, mask_b: np.ndarray) -> float:
    """2 |A and B| / (|A| + |B|) of two boolean masks; NaN when both are empty."""
    total = int(mask_a.sum()) + int(mask_b.sum())
    if total == 0:
        return math.nan
    return 2.0 * int(np.logical_and(mask_a, mask_b).sum()) / total


def mask_surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of a boolean mask with at least one face neighbour outside it (outside the array counts)."""
    structure = ndimage.generate_binary_structure(mask.ndim, FACE_CONNECTIVITY)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def directed_surface_distances_mm(
    surface_from: np.ndarray, surface_to: np.ndarray, spacing_mm: Sequence[float]
) -> np.ndarray:
    """For every voxel of ``surface_from``, the distance in mm to the nearest voxel of ``surface_to`` (1D)."""
    distance_to = ndimage.distance_transform_edt(~surface_to, sampling=tuple(spacing_mm))
    return distance_to[surface_from]


def surface_distances(mask_a: np.ndarray, mask_b: np.ndarray, spacing_mm: Sequence[float]) -> tuple[float, float]:
    """(HD95, ASSD) in mm between the surfaces of two boolean (D, H, W) masks; (NaN, NaN) if either is empty."""
    if mask_a.shape != mask_b.shape:
        raise ValueError(f"masks differ in shape: {mask_a.shape} vs {mask_b.shape}")
    spacing = check_spacing(spacing_mm)
    if not mask_a.any() or not mask_b.any():
        return math.nan, math.nan
    surface_a, surface_b = mask_surface(mask_a), mask_surface(mask_b)
    a_to_b = directed_surface_distances_mm(surface_a, surface_b, spacing)
    b_to_a = directed_surface_distances_mm(surface_b, surface_a, spacing)
    hd95 = max(np.percentile(a_to_b, HAUSDORFF_PERCENTILE), np.percentile(b_to_a, HAUSDORFF_PERCENTILE))
    assd = (a_to_b.sum() + b_to_a.sum()) / (a_to_b.size + b_to_a.size)
    return float(hd95), float(assd)


def modern_metrics(
    real: VolumeLike,
    fake: VolumeLike,
    spacing_mm: Sequence[float] = (1.0, 1.0, 1.0),
    ct_window_hu: Sequence[float] = DEFAULT_CT_WINDOW_HU,
    bone_threshold_hu: float = DEFAULT_BONE_THRESHOLD_HU,
) -> dict[str, float]:
    """Modern metrics of one (D, H, W) pair on the [0, 1] scale, ``{name: float}`` in ``MODERN_METRIC_NAMES``
    order (definitions and NaN cases in the module doc).

    ``spacing_mm``: voxel size (sd, sh, sw) in mm; ``ct_window_hu``: (low, high) HU of 0 and 1;
    ``bone_threshold_hu``: bone = HU >= this. Every side must be >= 11 (the 3D SSIM window).
    Raises ValueError for a shape mismatch, non-3D input, NaN/inf, ``real`` outside [0, 1] or bad parameters.
    """
    real_t = as_float_tensor(real, "real")
    fake_t = as_float_tensor(fake, "fake")
    check_pair(real_t, fake_t, ndim=3, layout="(D, H, W)")
    check_unit_range(real_t)
    check_min_size(tuple(real_t.shape), SSIM3D_KERNEL_SIZE, "the 11^3 Gaussian window of 3D SSIM")
    spacing = check_spacing(spacing_mm)
    low_hu, high_hu = (float(v) for v in ct_window_hu)
    if not (math.isfinite(low_hu) and math.isfinite(high_hu) and low_hu < high_hu):
        raise ValueError(f"ct_window_hu must be finite (low, high) with low < high, got {ct_window_hu!r}")
    if not math.isfinite(bone_threshold_hu):
        raise ValueError(f"bone_threshold_hu must be finite, got {bone_threshold_hu!r}")
    width_hu = high_hu - low_hu

    real64 = real_t.to(torch.float64)
    fake64 = fake_t.clamp(0.0, 1.0).to(torch.float64)
    diff = real64 - fake64
    mse = float(diff.square().mean())
    psnr = IDENTICAL_PSNR_DB if mse == 0 else 10.0 * math.log10(UNIT_DATA_RANGE**2 / mse)
    ssim = float(ssim3d(real64[None, None].float(), fake64[None, None].float(), data_range=UNIT_DATA_RANGE)[0])

    real_hu = real64.cpu().numpy() * width_hu + low_hu
    fake_hu = fake64.cpu().numpy() * width_hu + low_hu
    bone_real, bone_fake = real_hu >= bone_threshold_hu, fake_hu >= bone_threshold_hu
    hd95, assd = surface_distances(bone_real, bone_fake, spacing)
    return {
        "PSNR-true": psnr,
        "MAE-HU": float(diff.abs().mean()) * width_hu,
        "SSIM-3D-gauss": ssim,
        "Dice-bone": dice(bone_real, bone_fake),
        "HD95-mm": hd95,
        "ASSD-mm": assd,
    }
