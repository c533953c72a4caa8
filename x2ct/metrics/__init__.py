"""Reconstruction metrics (legacy X2CT definitions and modern ones)."""

from x2ct.metrics.volume import LEGACY_PEAK, LEGACY_SCALE, mae0, psnr3d_legacy, ssim3d

__all__ = ["LEGACY_PEAK", "LEGACY_SCALE", "mae0", "psnr3d_legacy", "ssim3d"]
