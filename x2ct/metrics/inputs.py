"""Validation and conversion of metric inputs: CT volumes in the model's [0, 1] scale, numpy or torch."""

from __future__ import annotations

import numpy as np
import torch

VolumeLike = np.ndarray | torch.Tensor


def as_float_tensor(volume: VolumeLike, name: str) -> torch.Tensor:
    """``volume`` as a floating-point tensor (no copy where possible); ValueError for other dtypes or types."""
    if isinstance(volume, np.ndarray):
        if not np.issubdtype(volume.dtype, np.floating):
            raise ValueError(f"{name} must be a floating-point array in [0, 1], got dtype {volume.dtype}")
        return torch.from_numpy(np.ascontiguousarray(volume))
    if isinstance(volume, torch.Tensor):
        if not volume.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor in [0, 1], got dtype {volume.dtype}")
        return volume.detach()
    raise ValueError(f"{name} must be a numpy array or a torch tensor, got {type(volume).__name__}")


def check_pair(real: torch.Tensor, fake: torch.Tensor, ndim: int, layout: str) -> None:
    """Same shape, ``ndim`` dimensions (``layout`` names them in the message), non-empty, finite values."""
    if real.ndim != ndim:
        raise ValueError(f"expected {layout} volumes ({ndim}D), got real of shape {tuple(real.shape)}")
    if real.shape != fake.shape:
        raise ValueError(f"real and fake volumes differ in shape: {tuple(real.shape)} vs {tuple(fake.shape)}")
    if real.numel() == 0:
        raise ValueError(f"empty volume: shape {tuple(real.shape)}")
    if real.device != fake.device:
        raise ValueError(f"real and fake volumes are on different devices: {real.device} vs {fake.device}")
    for name, volume in (("real", real), ("fake", fake)):
        if not bool(torch.isfinite(volume).all()):
            raise ValueError(f"{name} volume contains NaN or inf values")


def check_unit_range(real: torch.Tensor) -> None:
    """The ground truth must lie in [0, 1] (the data pipeline clips it to the CT window)."""
    low, high = float(real.min()), float(real.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"real volume must lie in [0, 1] (the CT window scale), found values in [{low}, {high}]")


def check_min_size(shape: tuple[int, ...], minimum: int, what: str) -> None:
    """Every spatial size in ``shape`` must be at least ``minimum`` (``what`` explains why)."""
    if min(shape) < minimum:
        raise ValueError(f"volume of spatial shape {shape} is too small for {what}: every side must be >= {minimum}")


def check_spacing(spacing_mm: tuple[float, float, float] | list[float]) -> tuple[float, float, float]:
    """Three finite, positive voxel sizes in mm (sd, sh, sw)."""
    values = tuple(float(s) for s in spacing_mm)
    if len(values) != 3 or not all(np.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing_mm must be three positive finite voxel sizes (sd, sh, sw), got {spacing_mm!r}")
    return values  # type: ignore[return-value]
