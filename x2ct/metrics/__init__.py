"""Reconstruction metrics: the legacy X2CT definitions (exact), modern ones, and dataset statistics."""

from x2ct.metrics.legacy import (
    IDENTICAL_PSNR_DB,
    LEGACY_METRIC_NAMES,
    LEGACY_PEAK,
    LEGACY_SCALE,
    legacy_dataset_means,
    legacy_x2ct_metrics,
    legacy_x2ct_metrics_batch,
    official_rule_keeps,
)
from x2ct.metrics.modern import MODERN_METRIC_NAMES, dice, modern_metrics, surface_distances
from x2ct.metrics.ssim2d import ssim_slice_means
from x2ct.metrics.stats import bootstrap_mean_ci, summarize
from x2ct.metrics.volume import mae0, psnr3d_legacy, ssim3d

__all__ = [
    "IDENTICAL_PSNR_DB",
    "LEGACY_METRIC_NAMES",
    "LEGACY_PEAK",
    "LEGACY_SCALE",
    "MODERN_METRIC_NAMES",
    "bootstrap_mean_ci",
    "dice",
    "legacy_dataset_means",
    "legacy_x2ct_metrics",
    "legacy_x2ct_metrics_batch",
    "mae0",
    "modern_metrics",
    "official_rule_keeps",
    "psnr3d_legacy",
    "ssim3d",
    "ssim_slice_means",
    "summarize",
    "surface_distances",
]
