"""A geometry-aware generator: 2D view encoders, features lifted along the true rays at every 3D decoder scale.

Where X2CT-GAN copies each view's features along an array axis (exact only for orthogonal, axis-aligned parallel
views), this network projects every voxel into every view through the view's projection matrix and reads the
view's features there (:mod:`x2ct.models.ray_lifting`), so it follows cone beams and any lateral angle.

Data flow for ``L + 1`` levels (level 0 = full resolution, level l = cube / 2**l)::

    each view image (N, 1, S, S) --shared 2D encoder--> features F_l (N, c_l, S / 2**l, S / 2**l), l = 0..L
    (optionally refined coarse to fine, F_l <- conv([F_l, up(F_{l+1})]): a 2D U-Net, encoder_top_down)
    F_l --1x1 conv--> (N, k_l, ...) --lift through P_view--> (N, k_l, g_l, g_l, g_l)  (g_l = cube / 2**l)
    fuse over views: mean and variance -> (N, 2 k_l, g_l^3)
    level L:   x = ConvBlock3D(fused_L)                                      -> (N, d_L, g_L^3)
    level l:   x = ConvBlock3D([up(x), fused_l (+ lifted raw X-rays at l = 0)]) -> (N, d_l, g_l^3)
    head:      Conv3d(d_0 -> 1) -> ReLU                                      -> (N, 1, cube, cube, cube)

Up-sampling is trilinear followed by a convolution (no transposed convolutions, hence no checkerboard). The
encoder is shared by all views (the geometry, not the weights, tells the views apart; ``shared_encoder=False``
gives one encoder per view). Any non-empty subset of ``("xray1", "xray2")`` can be used: one view is a
single-view model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from x2ct.models.axes import VIEW_NAMES
from x2ct.models.blocks import ConvNormAct, conv_layer, run_checkpointed
from x2ct.models.ray_lifting import (
    SamplingGridCache,
    checked_view_names,
    fuse_lifted,
    fusion_multiplier,
    homogeneous_voxel_grid,
    lift_view,
    views_with_geometry,
)

UPSAMPLE_SCALE: int = 2
CONV_KERNEL: int = 3
XRAY_CHANNELS: int = 1
CT_CHANNELS: int = 1
OUTPUT_ACTIVATIONS: tuple[str, ...] = ("relu", "none")
POSITION_CHANNELS: int = 3  # x, y, z


def voxel_coordinates(like: torch.Tensor) -> torch.Tensor:
    """Voxel-centre coordinates (x, y, z) in [-1, 1] of the grid of ``like`` (N, C, D, H, W): (N, 3, D, H, W),
    channel 0 along W, 1 along H, 2 along D (the frame of the projection matrices)."""
    batch, _, *shape = like.shape
    grid = homogeneous_voxel_grid(shape, like.device, like.dtype)[:, :POSITION_CHANNELS]
    return grid.T.reshape(1, POSITION_CHANNELS, *shape).expand(batch, -1, -1, -1, -1)


class ViewEncoder2D(nn.Module):
    """``(N, 1, S, S) -> [F_0, ..., F_L]``, ``F_l`` of shape ``(N, channels[l], S / 2**l, S / 2**l)``.

    Bottom-up: level 0 has ``convs_per_level`` 3x3 ``Conv -> IN -> ReLU``; level l > 0 a stride-2 one, then
    ``convs_per_level - 1`` more. With ``top_down`` (a 2D U-Net), the levels are then refined from coarse to fine:
    ``F_l <- ConvNormAct([F_l, up(F_{l+1})])``, so that the fine features, which are lifted at the fine 3D scales,
    also know the context of the whole image (for example whether a pixel lies inside a vertebral body's shadow)
    instead of only a few pixels around it.
    """

    def __init__(self, channels: Sequence[int], convs_per_level: int = 2, top_down: bool = False) -> None:
        super().__init__()
        if convs_per_level < 1:
            raise ValueError(f"convs_per_level must be >= 1, got {convs_per_level}")
        levels = []
        previous = XRAY_CHANNELS
        for level, width in enumerate(channels):
            stride = 1 if level == 0 else UPSAMPLE_SCALE
            layers = [ConvNormAct(2, previous, width, CONV_KERNEL, stride=stride)]
            layers += [ConvNormAct(2, width, width, CONV_KERNEL) for _ in range(convs_per_level - 1)]
            levels.append(nn.Sequential(*layers))
            previous = width
        self.levels = nn.ModuleList(levels)
        widths = [int(c) for c in channels]
        self.refiners = (
            nn.ModuleList(
                ConvNormAct(2, widths[level] + widths[level + 1], widths[level], CONV_KERNEL)
                for level in range(len(widths) - 1)
            )
            if top_down
            else None
        )

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        features = []
        x = image
        for level in self.levels:
            x = level(x)
            features.append(x)
        if self.refiners is not None:
            for level in range(len(features) - 2, -1, -1):
                coarse = F.interpolate(features[level + 1], size=features[level].shape[-2:], mode="bilinear")
                features[level] = self.refiners[level](torch.cat((features[level], coarse), dim=1))
        return features


class ConvBlock3D(nn.Sequential):
    """``n_convs`` x ``Conv3d(3) -> IN -> ReLU``: ``(N, in, D, H, W) -> (N, out, D, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int, n_convs: int) -> None:
        if n_convs < 1:
            raise ValueError(f"decoder levels need at least one conv, got {n_convs}")
        layers = [ConvNormAct(3, in_channels, out_channels, CONV_KERNEL)]
        layers += [ConvNormAct(3, out_channels, out_channels, CONV_KERNEL) for _ in range(n_convs - 1)]
        super().__init__(*layers)


class UpConv3D(nn.Sequential):
    """Trilinear x2 up-sampling then ``Conv3d(3) -> IN -> ReLU``: ``(N, in, g^3) -> (N, out, (2g)^3)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Upsample(scale_factor=UPSAMPLE_SCALE, mode="trilinear", align_corners=False),
            ConvNormAct(3, in_channels, out_channels, CONV_KERNEL),
        )


class RayLiftingGenerator(nn.Module):
    """Geometry-aware generator: ``forward(xray1, xray2, proj_xray1, proj_xray2) -> (N, 1, cube, cube, cube)``.

    Args:
        cube: output edge length; a multiple of ``2**L`` (L = len(encoder_channels) - 1).
        views: which inputs are used, a non-empty subset of ``("xray1", "xray2")``.
        encoder_channels: 2D encoder widths, fine to coarse (``L + 1`` entries).
        lifted_channels: channels each view's features are reduced to (1x1 conv) before lifting, fine to coarse.
        decoder_channels: 3D decoder widths, fine to coarse.
        decoder_convs: convs per 3D level, fine to coarse.
        encoder_convs: convs per 2D encoder level.
        encoder_top_down: refine the 2D features from coarse to fine (a 2D U-Net per view, see
            :class:`ViewEncoder2D`) before lifting.
        fusion: ``"mean_var"`` (mean and variance over views) or ``"mean"``.
        position_channels: give every 3D decoder level the voxel coordinates (x, y, z in [-1, 1], the lifting's
            frame) as 3 extra input channels, so that the decoder knows where in the volume a voxel lies.
        lift_raw_xrays: also lift the raw images at full resolution as decoder input channels.
        shared_encoder: one 2D encoder for all views (True) or one per view.
        output_activation: ``"relu"`` (non-negative output, as X2CT-GAN) or ``"none"``.
        checkpointing: recompute the 3D decoder levels in the backward pass (activation checkpointing: less
            memory, about one more decoder forward of time).
        grid_cache_size: sampling grids kept per geometry (0: no cache).
    Inputs: images (N, 1, S, S) in [0, 1] (any S; coordinates are normalized), matrices (N, 3, 4) as in the batch
    contract. Output: (N, 1, cube, cube, cube), not clamped.
    """

    uses_geometry: bool = True

    def __init__(
        self,
        cube: int = 128,
        views: Sequence[str] = VIEW_NAMES,
        encoder_channels: Sequence[int] = (32, 64, 128, 256, 256),
        lifted_channels: Sequence[int] = (8, 16, 32, 64, 128),
        decoder_channels: Sequence[int] = (16, 32, 64, 128, 256),
        decoder_convs: Sequence[int] = (2, 2, 2, 2, 2),
        encoder_convs: int = 2,
        encoder_top_down: bool = False,
        fusion: str = "mean_var",
        position_channels: bool = False,
        lift_raw_xrays: bool = True,
        shared_encoder: bool = True,
        output_activation: str = "relu",
        checkpointing: bool = False,
        grid_cache_size: int = 16,
    ) -> None:
        super().__init__()
        self.views = checked_view_names(views, VIEW_NAMES)
        n_levels = len(encoder_channels)
        for name, values in (
            ("lifted_channels", lifted_channels),
            ("decoder_channels", decoder_channels),
            ("decoder_convs", decoder_convs),
        ):
            if len(values) != n_levels:
                raise ValueError(f"{name} needs {n_levels} entries (one per encoder level), got {tuple(values)}")
        if any(int(c) < 1 for c in (*encoder_channels, *lifted_channels, *decoder_channels)):
            raise ValueError("channel counts must be >= 1")
        factor = UPSAMPLE_SCALE ** (n_levels - 1)
        if cube < 1 or cube % factor:
            raise ValueError(f"cube={cube} must be a positive multiple of 2**{n_levels - 1}={factor}")
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"output_activation must be one of {OUTPUT_ACTIVATIONS}, got {output_activation!r}")
        self.cube = int(cube)
        self.fusion = fusion
        k = fusion_multiplier(fusion)
        self.lift_raw_xrays = bool(lift_raw_xrays)
        self.position_channels = bool(position_channels)
        position = POSITION_CHANNELS if self.position_channels else 0
        self.checkpointing = bool(checkpointing)
        self.grid_cache = SamplingGridCache(grid_cache_size)

        encoder_names = ("shared",) if shared_encoder else self.views
        self.encoders = nn.ModuleDict(
            {n: ViewEncoder2D(encoder_channels, encoder_convs, encoder_top_down) for n in encoder_names}
        )
        self.reducers = nn.ModuleList(
            conv_layer(2, int(c), int(r), kernel_size=1) for c, r in zip(encoder_channels, lifted_channels, strict=True)
        )
        raw_channels = k * XRAY_CHANNELS if self.lift_raw_xrays else 0
        blocks, ups = [], []
        for level in range(n_levels):
            incoming = k * int(lifted_channels[level]) + position
            if level < n_levels - 1:
                incoming += int(decoder_channels[level])  # the up-sampled coarser level
                ups.append(UpConv3D(int(decoder_channels[level + 1]), int(decoder_channels[level])))
            if level == 0:
                incoming += raw_channels
            blocks.append(ConvBlock3D(incoming, int(decoder_channels[level]), int(decoder_convs[level])))
        self.blocks = nn.ModuleList(blocks)  # fine to coarse
        self.ups = nn.ModuleList(ups)  # ups[l]: level l + 1 -> level l
        head: list[nn.Module] = [conv_layer(3, int(decoder_channels[0]), CT_CHANNELS, CONV_KERNEL)]
        if output_activation == "relu":
            head.append(nn.ReLU())
        self.head = nn.Sequential(*head)

    @property
    def n_levels(self) -> int:
        return len(self.blocks)

    def _encoder(self, view: str) -> ViewEncoder2D:
        return self.encoders["shared"] if "shared" in self.encoders else self.encoders[view]

    def forward(
        self,
        xray1: torch.Tensor | None = None,
        xray2: torch.Tensor | None = None,
        proj_xray1: torch.Tensor | None = None,
        proj_xray2: torch.Tensor | None = None,
    ) -> torch.Tensor:
        images, projections = views_with_geometry(self.views, xray1, xray2, proj_xray1, proj_xray2)
        return self.forward_views(images, projections, self.views)

    def forward_views(
        self, images: Sequence[torch.Tensor], projections: Sequence[torch.Tensor], names: Sequence[str]
    ) -> torch.Tensor:
        """Reconstruct from any number of views: ``images[i]`` (N, 1, S, S) seen through ``projections[i]``
        (N, 3, 4); ``names[i]`` picks the encoder when encoders are not shared."""
        if not images or len(images) != len(projections) or len(images) != len(names):
            raise ValueError("forward_views needs as many images, projections and names, at least one")
        per_view = [self._encoder(name)(image) for image, name in zip(images, names, strict=True)]
        fused = []
        for level in range(self.n_levels):
            size = self.cube // UPSAMPLE_SCALE**level
            shape = (size, size, size)
            lifted = [
                lift_view(self.reducers[level](features[level]), projection, shape, self.grid_cache)
                for features, projection in zip(per_view, projections, strict=True)
            ]
            fused.append(fuse_lifted(lifted, self.fusion))
        if self.lift_raw_xrays:
            shape = (self.cube,) * 3
            raw = [lift_view(image, p, shape, self.grid_cache) for image, p in zip(images, projections, strict=True)]
            fused[0] = torch.cat((fused[0], fuse_lifted(raw, self.fusion)), dim=1)
        if self.position_channels:
            fused = [torch.cat((f, voxel_coordinates(f)), dim=1) for f in fused]
        x = self._run(self.blocks[-1], fused[-1])
        for level in range(self.n_levels - 2, -1, -1):
            x = self._run(self.ups[level], x)
            x = self._run(self.blocks[level], torch.cat((x, fused[level]), dim=1))
        return self.head(x)

    def _run(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return run_checkpointed(self.checkpointing and self.training, module, x)
