"""A slow numpy + scikit-image version of the legacy X2CT metrics, slice by slice, for cross-checks and benchmarks.

It evaluates the same formulas as ``x2ct.metrics.legacy`` the way the official script does: one
``skimage.metrics.structural_similarity`` call per slice. scikit-image is a development dependency, imported
only when these functions run.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from x2ct.metrics.legacy import IDENTICAL_PSNR_DB, LEGACY_PEAK, LEGACY_SCALE
from x2ct.metrics.ssim2d import SSIM_DATA_RANGE

SLICE_AXIS_COUNT = 3


def _structural_similarity() -> Callable[..., float]:
    try:
        from skimage.metrics import structural_similarity
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("the reference metrics need scikit-image: pip install scikit-image") from error
    return structural_similarity


def skimage_ssim_slice_mean(
    real: np.ndarray, fake: np.ndarray, axis: int, data_range: float = SSIM_DATA_RANGE
) -> float:
    """Mean over the slices along ``axis`` of a (D, H, W) pair of scikit-image's default 2D SSIM (float64)."""
    structural_similarity = _structural_similarity()
    real64 = np.moveaxis(np.asarray(real, dtype=np.float64), axis, 0)
    fake64 = np.moveaxis(np.asarray(fake, dtype=np.float64), axis, 0)
    values = [
        structural_similarity(real_slice, fake_slice, data_range=data_range)
        for real_slice, fake_slice in zip(real64, fake64, strict=True)
    ]
    return float(np.mean(values))


def _psnr(mse: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        psnr = 20.0 * np.log10(LEGACY_PEAK / np.sqrt(mse))
    return np.where(mse == 0, IDENTICAL_PSNR_DB, psnr)


def legacy_x2ct_metrics_reference(real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
    """The legacy metrics of a (D, H, W) float pair on [0, 1] with numpy and a scikit-image slice loop.

    No input validation beyond numpy's own; the integer volumes use a float32 product like the official script.
    """
    real32 = np.asarray(real, dtype=np.float32)
    fake32 = np.clip(np.asarray(fake, dtype=np.float32), 0.0, 1.0)
    real64, fake64 = real32.astype(np.float64), fake32.astype(np.float64)
    real_int = (real32 * np.float32(LEGACY_SCALE)).astype(np.int32).astype(np.float64)
    fake_int = (fake32 * np.float32(LEGACY_SCALE)).astype(np.int32).astype(np.float64)
    squared_int = (real_int - fake_int) ** 2
    psnr_slices = [_psnr(squared_int.mean(axis=tuple(a for a in range(3) if a != axis))).mean() for axis in range(3)]
    ssim_slices = [skimage_ssim_slice_mean(real64, fake64, axis) for axis in range(SLICE_AXIS_COUNT)]
    cosine = np.sum(real64 * fake64) / (np.linalg.norm(fake64.ravel()) * np.linalg.norm(real64.ravel()))
    mse_int = squared_int.mean()
    return {
        "MAE0": float(np.abs(real64 - fake64).mean()),
        "MSE0": float(((real64 - fake64) ** 2).mean()),
        "MAE": float(np.abs(real_int - fake_int).mean()),
        "MSE": float(mse_int),
        "CosineSimilarity": float(cosine),
        "PSNR-3D": float(_psnr(np.asarray(mse_int))),
        "PSNR-1": float(psnr_slices[0]),
        "PSNR-2": float(psnr_slices[1]),
        "PSNR-3": float(psnr_slices[2]),
        "PSNR-avg": float(np.mean(psnr_slices)),
        "SSIM-1": ssim_slices[0],
        "SSIM-2": ssim_slices[1],
        "SSIM-3": ssim_slices[2],
        "SSIM-avg": float(np.mean(ssim_slices)),
    }
