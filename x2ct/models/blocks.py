"""Small building blocks of the X2CT-GAN networks (2D or 3D, chosen by ``spatial_dims`` as in MONAI).

Conventions of the official X2CT-GAN code that every block follows:

* Normalisation is instance norm with ``affine=False`` and per-instance statistics in training and evaluation
  alike (the official test script puts its InstanceNorm layers back into training mode, so their running
  statistics are never used; here they are simply not tracked).
* Activations are ReLU; every convolution of the generator has a bias.
* Two orders exist: post-activation ``Conv -> IN -> ReLU`` (decoder, connections) and pre-activation
  ``IN -> ReLU -> Conv`` (the DenseNet encoder).

Tensors are ``(N, C, H, W)`` for ``spatial_dims=2`` and ``(N, C, D, H, W)`` for ``spatial_dims=3``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from x2ct.models.onednn_conv import Conv3d

SpatialDims = Literal[2, 3]

STEM_KERNEL: int = 7
OUTPUT_KERNEL: int = 7
UPSAMPLE_KERNEL: int = 3
UPSAMPLE_FACTOR: int = 2
DENSE_KERNEL: int = 3

_CONV: dict[int, type[nn.Module]] = {2: nn.Conv2d, 3: Conv3d}  # Conv3d: oneDNN at batch 1 on CPU
_INSTANCE_NORM: dict[int, type[nn.Module]] = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}


def _check_spatial_dims(spatial_dims: int) -> None:
    if spatial_dims not in _CONV:
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")


def conv_layer(
    spatial_dims: SpatialDims,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    padding: int | None = None,
    bias: bool = True,
) -> nn.Module:
    """``nn.Conv2d`` / ``nn.Conv3d``; ``padding=None`` means ``kernel_size // 2`` (size kept at stride 1)."""
    _check_spatial_dims(spatial_dims)
    _check_positive(in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size, stride=stride)
    pad = kernel_size // 2 if padding is None else padding
    return _CONV[spatial_dims](in_channels, out_channels, kernel_size, stride=stride, padding=pad, bias=bias)


def instance_norm(spatial_dims: SpatialDims, channels: int) -> nn.Module:
    """Instance norm without affine parameters and without running statistics."""
    _check_spatial_dims(spatial_dims)
    _check_positive(channels=channels)
    return _INSTANCE_NORM[spatial_dims](channels, affine=False, track_running_stats=False)


def run_checkpointed(enabled: bool, function: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
    """``function(*inputs)``; when ``enabled`` and grad is on, its activations are not kept but recomputed in the
    backward pass (non-reentrant activation checkpointing; the RNG state is replayed, so dropout matches)."""
    if enabled and torch.is_grad_enabled():
        return checkpoint(function, *inputs, use_reentrant=False)
    return function(*inputs)


class ConvNormAct(nn.Sequential):
    """``Conv(k, stride) -> InstanceNorm -> ReLU``: ``(N, in, *S) -> (N, out, *S / stride)``."""

    def __init__(
        self,
        spatial_dims: SpatialDims,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
    ) -> None:
        super().__init__(
            conv_layer(spatial_dims, in_channels, out_channels, kernel_size, stride, padding),
            instance_norm(spatial_dims, out_channels),
            nn.ReLU(inplace=True),
        )
        self.out_channels = out_channels


class NormActConv(nn.Sequential):
    """Pre-activation ``InstanceNorm -> ReLU -> Conv(k, stride)``: ``(N, in, *S) -> (N, out, *S / stride)``."""

    def __init__(
        self,
        spatial_dims: SpatialDims,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
    ) -> None:
        super().__init__(
            instance_norm(spatial_dims, in_channels),
            nn.ReLU(inplace=True),
            conv_layer(spatial_dims, in_channels, out_channels, kernel_size, stride, padding),
        )
        self.out_channels = out_channels


class ReflectionStem2D(nn.Sequential):
    """Encoder stem ``ReflectionPad(k//2) -> Conv2d(k, no padding) -> IN -> ReLU``.

    ``(N, in, H, W) -> (N, out, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = STEM_KERNEL) -> None:
        if kernel_size % 2 != 1:
            raise ValueError(f"stem kernel_size must be odd to keep the image size, got {kernel_size}")
        super().__init__(
            nn.ReflectionPad2d(kernel_size // 2),
            conv_layer(2, in_channels, out_channels, kernel_size, padding=0),
            instance_norm(2, out_channels),
            nn.ReLU(inplace=True),
        )
        self.out_channels = out_channels


class UpConvNormAct3D(nn.Sequential):
    """``ConvTranspose3d(k3, stride 2, padding 1, output_padding 1) -> IN -> ReLU``: doubles D, H and W.

    ``(N, in, D, H, W) -> (N, out, 2D, 2H, 2W)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        _check_positive(in_channels=in_channels, out_channels=out_channels)
        half = UPSAMPLE_KERNEL // 2
        super().__init__(
            nn.ConvTranspose3d(
                in_channels,
                out_channels,
                UPSAMPLE_KERNEL,
                stride=UPSAMPLE_FACTOR,
                padding=half,
                output_padding=UPSAMPLE_FACTOR - 1,
                bias=True,
            ),
            instance_norm(3, out_channels),
            nn.ReLU(inplace=True),
        )
        self.out_channels = out_channels


class DenseLayer(nn.Module):
    """DenseNet-BC layer: ``x -> cat(x, NormActConv1x1(c -> bottleneck) -> NormActConv3x3(bottleneck -> growth))``.

    ``(N, c, *S) -> (N, c + growth_rate, *S)``.
    """

    def __init__(self, spatial_dims: SpatialDims, in_channels: int, growth_rate: int, bottleneck_channels: int) -> None:
        super().__init__()
        self.new_features = nn.Sequential(
            NormActConv(spatial_dims, in_channels, bottleneck_channels, kernel_size=1),
            NormActConv(spatial_dims, bottleneck_channels, growth_rate, kernel_size=DENSE_KERNEL),
        )
        self.out_channels = in_channels + growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.new_features(x)), dim=1)


class DenseBlock(nn.Sequential):
    """``n_layers`` :class:`DenseLayer` in a row: ``(N, c, *S) -> (N, c + n_layers * growth_rate, *S)``."""

    def __init__(
        self,
        spatial_dims: SpatialDims,
        n_layers: int,
        in_channels: int,
        growth_rate: int,
        bottleneck_channels: int,
    ) -> None:
        _check_positive(n_layers=n_layers, growth_rate=growth_rate, bottleneck_channels=bottleneck_channels)
        layers = [
            DenseLayer(spatial_dims, in_channels + i * growth_rate, growth_rate, bottleneck_channels)
            for i in range(n_layers)
        ]
        super().__init__(*layers)
        self.out_channels = in_channels + n_layers * growth_rate


class Transition(NormActConv):
    """DenseNet transition without pooling: ``IN -> ReLU -> Conv1x1``, ``(N, c, *S) -> (N, c // 2, *S)``."""

    def __init__(self, spatial_dims: SpatialDims, in_channels: int) -> None:
        if in_channels < 2:
            raise ValueError(f"a transition halves the channels and needs at least 2, got {in_channels}")
        super().__init__(spatial_dims, in_channels, in_channels // 2, kernel_size=1)


class OutputHead3D(nn.Sequential):
    """``Conv3d(c -> out, k7, padding 3) -> ReLU``: ``(N, c, D, H, W) -> (N, out, D, H, W)``, values >= 0."""

    def __init__(self, in_channels: int, out_channels: int = 1, kernel_size: int = OUTPUT_KERNEL) -> None:
        if kernel_size % 2 != 1:
            raise ValueError(f"output kernel_size must be odd to keep the volume size, got {kernel_size}")
        super().__init__(conv_layer(3, in_channels, out_channels, kernel_size), nn.ReLU(inplace=True))
        self.out_channels = out_channels
