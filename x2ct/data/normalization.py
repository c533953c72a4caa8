"""Scaling of stored triplets to the network's [0, 1] range and back, exactly as the official X2CT-GAN code.

CT: the stored value is HU + 1024 (``ct`` dataset). It is first resized to ``cube^3`` by trilinear
interpolation (if its shape differs), THEN clipped to the window and scaled to [0, 1]. The default window is
HU [-1024, 1476], i.e. [0, 2500] on the stored HU + 1024 scale, so ``x = clip(v, 0, 2500) / 2500`` and the
inverse is ``HU = x * 2500 - 1024``.

X-rays: uint8 -> resized to ``size x size`` by bilinear interpolation (if needed) -> ``/ 255``.

Resizing uses corner-aligned linear interpolation (``align_corners=True``), which is what the official
``scipy.ndimage.zoom(order=1)`` does (first and last samples of every axis stay in place). Like the official
code it does not low-pass filter before downsampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from x2ct.io.hdf5 import HU_OFFSET

DEFAULT_CT_WINDOW_HU: tuple[float, float] = (-1024.0, 1476.0)  # stored [0, 2500] on the HU + 1024 scale
XRAY_MAX_VALUE = 255.0  # uint8 X-rays are divided by this

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class CTWindow:
    """The HU window that maps to [0, 1]: ``low_hu`` -> 0, ``high_hu`` -> 1, values outside are clipped."""

    low_hu: float = DEFAULT_CT_WINDOW_HU[0]
    high_hu: float = DEFAULT_CT_WINDOW_HU[1]

    def __post_init__(self) -> None:
        low, high = float(self.low_hu), float(self.high_hu)
        if not (np.isfinite(low) and np.isfinite(high)) or low >= high:
            raise ValueError(f"CT window must be finite HU values with low < high, got ({self.low_hu}, {self.high_hu})")
        object.__setattr__(self, "low_hu", low)
        object.__setattr__(self, "high_hu", high)

    @classmethod
    def from_pair(cls, window_hu: Sequence[float] | CTWindow) -> CTWindow:
        """``(low_hu, high_hu)`` (tuple, list or Hydra ListConfig) -> CTWindow."""
        if isinstance(window_hu, CTWindow):
            return window_hu
        values = list(window_hu)
        if len(values) != 2:
            raise ValueError(f"CT window must be (low_hu, high_hu), got {window_hu!r}")
        return cls(float(values[0]), float(values[1]))

    @property
    def width_hu(self) -> float:
        return self.high_hu - self.low_hu

    @property
    def stored_low(self) -> float:
        """Lower bound on the stored HU + 1024 scale (0 for the default window)."""
        return self.low_hu + HU_OFFSET

    @property
    def stored_high(self) -> float:
        """Upper bound on the stored HU + 1024 scale (2500 for the default window)."""
        return self.high_hu + HU_OFFSET


# -------------------------------------------------------------------------------------------- resizing


def resize_volume(volume: np.ndarray | torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Trilinear, corner-aligned resize of a (D, H, W) volume to ``shape``; float32 tensor (D', H', W').

    Returns the input as float32 unchanged when it already has ``shape``. Values keep their scale.
    """
    tensor = torch.as_tensor(volume, dtype=torch.float32)
    if tensor.ndim != 3:
        raise ValueError(f"resize_volume expects a (D, H, W) volume, got shape {tuple(tensor.shape)}")
    _check_size(shape, 3)
    if tuple(tensor.shape) == tuple(shape):
        return tensor
    resized = F.interpolate(tensor[None, None], size=tuple(shape), mode="trilinear", align_corners=True)
    return resized[0, 0]


def resize_image(image: np.ndarray | torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bilinear, corner-aligned resize of a (rows, cols) image to ``shape``; float32 tensor.

    Returns the input as float32 unchanged when it already has ``shape``. Values keep their scale.
    """
    tensor = torch.as_tensor(image, dtype=torch.float32)
    if tensor.ndim != 2:
        raise ValueError(f"resize_image expects a 2D (rows, cols) image, got shape {tuple(tensor.shape)}")
    _check_size(shape, 2)
    if tuple(tensor.shape) == tuple(shape):
        return tensor
    resized = F.interpolate(tensor[None, None], size=tuple(shape), mode="bilinear", align_corners=True)
    return resized[0, 0]


def _check_size(shape: Sequence[int], ndim: int) -> None:
    if len(shape) != ndim or any(int(s) != s or s < 1 for s in shape):
        raise ValueError(f"target shape must be {ndim} positive integers, got {tuple(shape)}")


# ---------------------------------------------------------------------------------------- normalization


def normalize_ct(
    ct_hu_plus_1024: np.ndarray | torch.Tensor,
    cube: int | None,
    window: CTWindow | Sequence[float] = DEFAULT_CT_WINDOW_HU,
) -> torch.Tensor:
    """Stored CT (D, H, W), HU + 1024 -> float32 tensor (cube, cube, cube) in [0, 1].

    Order as in the official code: resize (only if ``cube`` is given and the shape differs) BEFORE clipping to
    the window, then ``(v - stored_low) / (stored_high - stored_low)``. ``cube=None`` keeps the stored shape.
    """
    ct_window = CTWindow.from_pair(window)
    volume = torch.as_tensor(ct_hu_plus_1024, dtype=torch.float32)
    if cube is not None:
        volume = resize_volume(volume, (cube, cube, cube))
    clipped = volume.clamp(ct_window.stored_low, ct_window.stored_high)
    return (clipped - ct_window.stored_low) / ct_window.width_hu


def hu_to_unit(hu: ArrayOrTensor, window: CTWindow | Sequence[float] = DEFAULT_CT_WINDOW_HU) -> ArrayOrTensor:
    """CT in HU (any shape, numpy or torch) -> [0, 1] with the window's clipping (no resizing)."""
    ct_window = CTWindow.from_pair(window)
    scaled = (hu - ct_window.low_hu) / ct_window.width_hu
    return scaled.clip(0.0, 1.0)


def ct_to_hu(unit: ArrayOrTensor, window: CTWindow | Sequence[float] = DEFAULT_CT_WINDOW_HU) -> ArrayOrTensor:
    """Inverse for export: [0, 1] (any shape, numpy or torch) -> HU, ``x * width + low``.

    Default window: ``x * 2500 - 1024``. Values outside [0, 1] (an unclamped network output) extrapolate.
    """
    ct_window = CTWindow.from_pair(window)
    return unit * ct_window.width_hu + ct_window.low_hu


def normalize_xray(image: np.ndarray | torch.Tensor, size: int | None) -> torch.Tensor:
    """uint8-scaled X-ray (rows, cols) in [0, 255] -> float32 tensor (size, size) in [0, 1].

    Resized first (only if ``size`` is given and the shape differs), then divided by 255. ``size=None`` keeps
    the stored shape.
    """
    tensor = torch.as_tensor(image, dtype=torch.float32)
    if size is not None:
        tensor = resize_image(tensor, (size, size))
    return tensor / XRAY_MAX_VALUE


def resampled_spacing(spacing_mm: Sequence[float], stored_shape: Sequence[int], cube: int) -> np.ndarray:
    """Voxel size (mm, per axis) of a volume of ``stored_shape`` at ``spacing_mm`` after :func:`resize_volume` to
    ``cube``: the resize is corner-aligned (first and last voxel centres stay), so spacing * (n - 1) / (cube - 1)."""
    stored = np.asarray(spacing_mm, dtype=float).reshape(-1)
    shape = np.asarray(stored_shape, dtype=float).reshape(-1)
    if cube < 2 or np.any(shape < 2):
        return stored * shape / cube
    return stored * (shape - 1) / (cube - 1)
