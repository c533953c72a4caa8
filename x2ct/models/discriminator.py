"""Conditional 3D PatchGAN discriminator of X2CT-GAN (official ``basic3d``, ``NLayer_3D_Discriminator``).

Layers (paper configuration ``base_channels=64, n_layers=3``): ``Conv4^3 s2 (in -> 64) + LReLU(0.2)``;
``n_layers - 1`` x ``Conv4^3 s2 (no bias) + IN + LReLU`` doubling the channels (at most 8 x base);
``Conv4^3 s1 (no bias) + IN + LReLU``; ``Conv4^3 s1 (-> 1)``. Padding 2 everywhere, so a 128^3 input gives a
19^3 map of patch logits (11,055,169 parameters with 3 input channels). Conditioning: each X-ray is copied
along its rays into a CT-sized volume (xray1 along H, xray2 along W) and concatenated before the CT, in the
official channel order ``(xray1, xray2, ct)``. With ``conditioning="rays"`` each X-ray is instead back-projected along
its true rays through the view's projection matrix (:mod:`x2ct.models.ray_lifting`), which is right for cone beams
and any lateral angle; the layers are the same.
"""

from __future__ import annotations

import torch
from torch import nn

from x2ct.models.axes import xray_to_ct_volume
from x2ct.models.blocks import instance_norm
from x2ct.models.ray_lifting import SamplingGridCache, lift_view

PATCH_KERNEL: int = 4
PATCH_PADDING: int = 2  # official ceil((kernel - 1) / 2)
DOWN_STRIDE: int = 2
LEAKY_SLOPE: float = 0.2
MAX_CHANNEL_MULTIPLIER: int = 8
CONDITIONED_IN_CHANNELS: int = 3  # xray1 volume, xray2 volume, CT
CONDITIONINGS: tuple[str, ...] = ("axis", "rays")


class PatchDiscriminator3D(nn.Module):
    """3D PatchGAN: ``forward(ct, xray1, xray2) -> (N, out_channels, P, P, P)`` raw logits (LSGAN, no sigmoid).

    Args:
        in_channels: channels after conditioning: CT channels + 2 when X-rays are given (paper 3), or the CT
            channels alone for an unconditional discriminator (then call it without X-rays).
        base_channels: channels of the first conv (paper 64).
        n_layers: number of stride-2 convs (paper 3); one stride-1 conv with norm and the output conv follow.
        kernel_size, padding: of every conv (paper 4 and 2).
        negative_slope: of the LeakyReLUs (paper 0.2).
        max_channel_multiplier: channel cap as a multiple of ``base_channels`` (paper 8).
        out_channels: logit channels (paper 1).
        conditioning: ``"axis"`` (official: copy along H / W) or ``"rays"`` (back-project through the batch's
            projection matrices; then ``forward`` needs ``proj_xray1`` and ``proj_xray2``).
    """

    def __init__(
        self,
        in_channels: int = CONDITIONED_IN_CHANNELS,
        base_channels: int = 64,
        n_layers: int = 3,
        kernel_size: int = PATCH_KERNEL,
        padding: int = PATCH_PADDING,
        negative_slope: float = LEAKY_SLOPE,
        max_channel_multiplier: int = MAX_CHANNEL_MULTIPLIER,
        out_channels: int = 1,
        conditioning: str = "axis",
    ) -> None:
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {conditioning!r}")
        self.conditioning = conditioning
        self.grid_cache = SamplingGridCache()
        for name, value in {
            "in_channels": in_channels,
            "base_channels": base_channels,
            "n_layers": n_layers,
            "kernel_size": kernel_size,
            "max_channel_multiplier": max_channel_multiplier,
            "out_channels": out_channels,
        }.items():
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self.in_channels = in_channels

        def conv(c_in: int, c_out: int, stride: int, bias: bool) -> nn.Conv3d:
            return nn.Conv3d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=bias)

        def width(index: int) -> int:
            return base_channels * min(2**index, max_channel_multiplier)

        layers: list[nn.Module] = [
            conv(in_channels, base_channels, DOWN_STRIDE, True),
            nn.LeakyReLU(negative_slope, True),
        ]
        for index in range(1, n_layers + 1):
            stride = DOWN_STRIDE if index < n_layers else 1
            layers += [
                conv(width(index - 1), width(index), stride, False),
                instance_norm(3, width(index)),
                nn.LeakyReLU(negative_slope, True),
            ]
        layers.append(conv(width(n_layers), out_channels, 1, True))
        self.model = nn.Sequential(*layers)

    def output_size(self, input_size: int) -> int:
        """Side of the patch map for a cubic input of side ``input_size`` (e.g. 128 -> 19 in the paper setup)."""
        size = input_size
        for layer in self.model:
            if isinstance(layer, nn.Conv3d):
                size = (size + 2 * layer.padding[0] - layer.kernel_size[0]) // layer.stride[0] + 1
        if size < 1:
            raise ValueError(f"input side {input_size} is too small for this discriminator")
        return size

    @property
    def uses_geometry(self) -> bool:
        """Whether ``forward`` needs the projection matrices (``conditioning="rays"``)."""
        return self.conditioning == "rays"

    def condition(
        self,
        ct: torch.Tensor,
        xray1: torch.Tensor,
        xray2: torch.Tensor,
        proj_xray1: torch.Tensor | None = None,
        proj_xray2: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``cat(lifted xray1, lifted xray2, ct)``: ``(N, C + 2, D, H, W)``.

        ``axis``: ``xray1 (N, 1, D, W)`` copied along H, ``xray2 (N, 1, D, H)`` along W. ``rays``: any image size,
        each back-projected through its (N, 3, 4) matrix.
        """
        n, _, depth, height, width = ct.shape
        if self.uses_geometry:
            if proj_xray1 is None or proj_xray2 is None:
                raise ValueError("conditioning='rays' needs proj_xray1 and proj_xray2 (the batch's matrices)")
            shape = (depth, height, width)
            volume1 = lift_view(xray1.to(ct.dtype), proj_xray1, shape, self.grid_cache)
            volume2 = lift_view(xray2.to(ct.dtype), proj_xray2, shape, self.grid_cache)
            return torch.cat((volume1, volume2, ct), dim=1)
        if tuple(xray1.shape) != (n, 1, depth, width):
            raise ValueError(f"xray1 must have shape (N, 1, D, W) = {(n, 1, depth, width)}, got {tuple(xray1.shape)}")
        if tuple(xray2.shape) != (n, 1, depth, height):
            raise ValueError(f"xray2 must have shape (N, 1, D, H) = {(n, 1, depth, height)}, got {tuple(xray2.shape)}")
        volume1 = xray_to_ct_volume(xray1, "xray1", ray_length=height)
        volume2 = xray_to_ct_volume(xray2, "xray2", ray_length=width)
        return torch.cat((volume1.to(ct.dtype), volume2.to(ct.dtype), ct), dim=1)

    def forward(
        self,
        ct: torch.Tensor,
        xray1: torch.Tensor | None = None,
        xray2: torch.Tensor | None = None,
        proj_xray1: torch.Tensor | None = None,
        proj_xray2: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if ct.dim() != 5:
            raise ValueError(f"ct must be (N, C, D, H, W), got shape {tuple(ct.shape)}")
        if (xray1 is None) != (xray2 is None):
            raise ValueError("give both X-rays (conditional) or neither (unconditional)")
        x = ct if xray1 is None or xray2 is None else self.condition(ct, xray1, xray2, proj_xray1, proj_xray2)
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"discriminator built for {self.in_channels} input channels, got {x.shape[1]} "
                f"({'conditional' if xray1 is not None else 'unconditional'} call with ct of {ct.shape[1]} channels)"
            )
        return self.model(x)
