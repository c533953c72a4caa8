"""DRR display: map rendered images to uint8 radiographs (bone bright, as on film).

* Physical line integrals ``p``: per image, a window [lo, hi] from percentiles of ``p`` (default p1..p99.5) or a
  fixed window. With ``object_fraction`` the percentiles are taken only over the object's pixels, those with
  ``p >= object_fraction * percentile(p, high)``, so that air around the body (p ~ 0) does not squeeze the
  anatomy into a few grey levels; air then maps to black, as on a radiograph.
  ``round(255 * clip((p - lo) / (hi - lo), 0, 1))``. High ``p`` (much bone on the ray) -> bright.
  An image with ``hi == lo`` (e.g. an empty volume) maps to 0 everywhere.
* Slicer images are already brightness in [0, 1]: ``round(255 * clip(p, 0, 1))``.
"""

from __future__ import annotations

import numpy as np
import torch

UINT8_MAX: float = 255.0
DEFAULT_PERCENTILES: tuple[float, float] = (1.0, 99.5)
DEFAULT_OBJECT_FRACTION: float = 0.5


def _as_numpy(images: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        return images.detach().to("cpu", torch.float64).numpy()
    return np.asarray(images, dtype=np.float64)


def check_window(window: tuple[float, float], what: str = "display window") -> None:
    """Raise ValueError unless ``window`` is (low, high) with low < high."""
    if len(window) != 2 or not float(window[0]) < float(window[1]):
        raise ValueError(f"{what} must be (low, high) with low < high, got {window}")


def check_percentiles(percentiles: tuple[float, float]) -> None:
    """Raise ValueError unless ``percentiles`` is (low, high) with 0 <= low < high <= 100."""
    check_window(percentiles, "display percentiles")
    if percentiles[0] < 0.0 or percentiles[1] > 100.0:
        raise ValueError(f"display percentiles must lie in [0, 100], got {percentiles}")


def check_object_fraction(fraction: float) -> None:
    """Raise ValueError unless 0 <= ``fraction`` < 1."""
    if not 0.0 <= float(fraction) < 1.0:
        raise ValueError(f"display object fraction must be in [0, 1), got {fraction}")


def window_to_uint8(
    images: torch.Tensor | np.ndarray,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    window: tuple[float, float] | None = None,
    object_fraction: float | None = None,
) -> np.ndarray:
    """Window images (..., R, C) to uint8 (..., R, C), each 2D image on its own percentile window of its values
    (``percentiles``, over the object's pixels when ``object_fraction`` is given), or all on the fixed ``window``
    (lo, hi) in the images' units when given."""
    values = _as_numpy(images)
    if values.ndim < 2:
        raise ValueError(f"images must be (..., R, C), got shape {values.shape}")
    flat = values.reshape(-1, values.shape[-2] * values.shape[-1])
    if window is not None:
        check_window(window)
        low = np.full(flat.shape[0], float(window[0]))
        high = np.full(flat.shape[0], float(window[1]))
    else:
        check_percentiles(percentiles)
        low, high = np.percentile(flat, percentiles, axis=1)
        if object_fraction is not None:
            check_object_fraction(object_fraction)
            object_low = np.empty_like(low)
            for i, (row, top) in enumerate(zip(flat, high, strict=True)):
                inside = row[row >= object_fraction * top]
                object_low[i] = np.percentile(inside, percentiles[0]) if inside.size else low[i]
            low = object_low
    span = high - low
    safe_span = np.where(span > 0, span, 1.0)
    scaled = np.where(span[:, None] > 0, (flat - low[:, None]) / safe_span[:, None], 0.0)
    out = np.round(np.clip(scaled, 0.0, 1.0) * UINT8_MAX).astype(np.uint8)
    return out.reshape(values.shape)


def unit_to_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Images already in [0, 1] (slicer mode) -> uint8, same shape."""
    return np.round(np.clip(_as_numpy(images), 0.0, 1.0) * UINT8_MAX).astype(np.uint8)
