"""Per-volume metrics on batches of CT volumes in the model's [0, 1] scale, in torch (CPU or GPU), for validation.

Legacy definitions follow the official X2CT test script (``x2ct.metrics.legacy``): values are truncated to int32
after scaling by ``LEGACY_SCALE`` (2500) and PSNR uses the peak ``LEGACY_PEAK`` (4095), not the true range.
These helpers skip the full input validation of ``legacy_x2ct_metrics`` (cheap, for the training loop).
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from x2ct.metrics.legacy import legacy_integer_volume, legacy_psnr


def _check_pair(real: torch.Tensor, fake: torch.Tensor) -> None:
    if real.shape != fake.shape:
        raise ValueError(f"real and fake volumes differ in shape: {tuple(real.shape)} vs {tuple(fake.shape)}")
    if real.ndim != 5:
        raise ValueError(f"expected (N, 1, D, H, W) volumes, got shape {tuple(real.shape)}")


def mae0(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Mean absolute error on the [0, 1] scale per volume: float64 (N,) from (N, 1, D, H, W)."""
    _check_pair(real, fake)
    return (real.double() - fake.double()).abs().flatten(1).mean(dim=1)


def psnr3d_legacy(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """PSNR-3D of the official X2CT script per volume, float64 (N,) from (N, 1, D, H, W): int32(2500 x)
    truncation (float32 product), peak 4095, 100 dB if equal. ``fake`` is used as given (not clamped)."""
    _check_pair(real, fake)
    mse = (legacy_integer_volume(real) - legacy_integer_volume(fake)).square().flatten(1).mean(dim=1)
    return legacy_psnr(mse)


def ssim3d(real: torch.Tensor, fake: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """3D SSIM (torchmetrics, Gaussian 11^3 window, sigma 1.5) per volume (N,) with an explicit ``data_range``."""
    _check_pair(real, fake)
    return structural_similarity_index_measure(
        fake.float(), real.float(), data_range=data_range, reduction="none"
    ).reshape(-1)
