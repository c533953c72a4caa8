"""Per-volume metrics used during validation."""

from __future__ import annotations

import math

import pytest
import torch

from x2ct.metrics import mae0, psnr3d_legacy, ssim3d


def test_mae0_and_legacy_psnr_values() -> None:
    real = torch.zeros(2, 1, 8, 8, 8)
    fake = real.clone()
    fake[0] += 0.1  # int32(250) everywhere -> MSE 62500
    assert torch.allclose(mae0(real, fake), torch.tensor([0.1, 0.0], dtype=torch.float64))
    psnr = psnr3d_legacy(real, fake)
    assert psnr[0].item() == pytest.approx(20 * math.log10(4095 / 250))
    assert psnr[1].item() == 100.0


def test_legacy_psnr_truncates_like_the_official_script() -> None:
    real = torch.zeros(1, 1, 4, 4, 4)
    fake = torch.full_like(real, 0.9 / 2500)  # 0.9 after scaling: truncated to 0 -> identical
    assert psnr3d_legacy(real, fake).item() == 100.0


def test_ssim3d_is_one_for_identical_and_lower_for_noise() -> None:
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(1, 1, 16, 16, 16, generator=gen)
    noisy = (real + 0.5 * torch.randn(real.shape, generator=gen)).clamp(0, 1)
    assert ssim3d(real, real).item() == pytest.approx(1.0, abs=1e-5)
    assert ssim3d(real, noisy).item() < 0.7


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        mae0(torch.zeros(1, 1, 4, 4, 4), torch.zeros(1, 1, 4, 4, 5))
