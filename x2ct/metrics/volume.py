"""Per-volume metrics on batches of CT volumes in the model's [0, 1] scale, in torch (CPU or GPU).

Legacy definitions follow the official X2CT test script (reference section 3): values are truncated to int32 after
scaling by ``LEGACY_SCALE`` (2500) and PSNR uses the peak ``LEGACY_PEAK`` (4095), not the true range.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

LEGACY_SCALE: float = 2500.0
LEGACY_PEAK: float = 4095.0
IDENTICAL_PSNR_DB: float = 100.0


def _check_pair(real: torch.Tensor, fake: torch.Tensor) -> None:
    if real.shape != fake.shape:
        raise ValueError(f"real and fake volumes differ in shape: {tuple(real.shape)} vs {tuple(fake.shape)}")
    if real.ndim != 5:
        raise ValueError(f"expected (N, 1, D, H, W) volumes, got shape {tuple(real.shape)}")


def mae0(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Mean absolute error on the [0, 1] scale per volume: (N,) from (N, 1, D, H, W)."""
    _check_pair(real, fake)
    return (real.double() - fake.double()).abs().flatten(1).mean(dim=1)


def psnr3d_legacy(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """PSNR-3D of the official X2CT script per volume (N,): int32(2500 x) truncation, peak 4095, 100 dB if equal."""
    _check_pair(real, fake)
    real_int = (real.double() * LEGACY_SCALE).to(torch.int32).double()
    fake_int = (fake.double() * LEGACY_SCALE).to(torch.int32).double()
    mse = (real_int - fake_int).pow(2).flatten(1).mean(dim=1)
    psnr = 20.0 * torch.log10(LEGACY_PEAK / mse.clamp_min(torch.finfo(torch.float64).tiny).sqrt())
    return torch.where(mse == 0, torch.full_like(psnr, IDENTICAL_PSNR_DB), psnr)


def ssim3d(real: torch.Tensor, fake: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """3D SSIM (torchmetrics, Gaussian 11^3 window) per volume (N,) with an explicit ``data_range``."""
    _check_pair(real, fake)
    return structural_similarity_index_measure(
        fake.float(), real.float(), data_range=data_range, reduction="none"
    ).reshape(-1)
