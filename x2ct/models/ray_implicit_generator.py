"""A pixel-aligned implicit generator: every voxel reads its views' 2D features along its true rays, and an MLP
turns them into its density.

The ray-lifting generator (:mod:`x2ct.models.ray_lifting_generator`) lifts features into 3D grids and decodes them
with 3D convolutions, which must run over the whole volume at every step. Here (after DIF-Net, Lin et al., MICCAI
2023, reference section 8) a point ``p`` of the CT grid is projected into each view through the view's matrix, the
view's multi-scale 2D features are read there with bilinear ``grid_sample``, and a small MLP maps them to the CT value
at ``p``. No 3D convolution is needed, so training evaluates a few thousand sampled points per case
(:mod:`x2ct.models.point_sampling`) instead of every voxel: many more steps fit the same budget, and each point's
features come straight from the pixels its rays cross, so sharp edges in the X-rays stay sharp in the volume.

Data flow, for views ``v`` with images (N, 1, S, S) and matrices (N, 3, 4), and points (N, M, 3) (x along W, y along
H, z along D, in [-1, 1], the frame of :mod:`x2ct.models.ray_lifting`)::

    image_v --2D U-Net--> F_v,0 .. F_v,L  (N, c_l, S / 2**l, S / 2**l), plus the raw image (N, 1, S, S)
    uv_v = P_v (p, 1)                                     (N, M, 2) image coordinates in [-1, 1]
    f_v = concat_l grid_sample(F_v,l, uv_v)               (N, M, C),  C = sum(c_l) + 1
    fused = concat_v f_v  (or mean and variance over v)   (N, M, C * k)
    x = [fused, p] --MLP (Linear -> ReLU) x hidden_layers --> Linear --> (N, M) CT value on the [0, 1] scale

``forward`` evaluates every voxel of the ``cube``^3 grid (in chunks of ``points_per_chunk``) and returns
(N, 1, D, H, W) like the other generators, so evaluation, export and prediction need nothing new.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from x2ct.models.axes import VIEW_NAMES
from x2ct.models.ray_lifting import (
    checked_view_names,
    homogeneous_voxel_grid,
    project_point_sets,
    views_with_geometry,
)
from x2ct.models.ray_lifting_generator import ViewEncoder2D

POINT_FUSIONS: tuple[str, ...] = ("concat", "mean_var")
OUTPUT_ACTIVATIONS: tuple[str, ...] = ("relu", "none")
POSITION_CHANNELS: int = 3  # x, y, z
XRAY_CHANNELS: int = 1
DEFAULT_POINTS_PER_CHUNK: int = 65536


class RayImplicitGenerator(nn.Module):
    """``forward(xray1, xray2, proj_xray1, proj_xray2) -> (N, 1, cube, cube, cube)``; ``predict_points`` for any
    points.

    Args:
        cube: edge length of the volume ``forward`` returns.
        views: which inputs are used, a non-empty subset of ``("xray1", "xray2")``.
        encoder_channels: 2D encoder widths, fine to coarse (one level per 2x down-sampling).
        encoder_convs: 3x3 convs per encoder level.
        encoder_top_down: refine the 2D features coarse to fine (a 2D U-Net), so that the fine features read at a
            point also carry the context of the whole image.
        sample_raw_xrays: also read the raw image at each point's projection.
        fusion: ``"concat"`` (each view's features in its own channels; the views are told apart by their place,
            so exactly ``len(views)`` views are needed) or ``"mean_var"`` (mean and variance over views: any number
            of views, in any order).
        shared_encoder: one 2D encoder for all views (True) or one per view.
        position_channels: give the MLP the point's coordinates (x, y, z) too.
        hidden_channels, hidden_layers: the MLP's width and number of hidden layers.
        output_activation: ``"none"`` (the value as is; evaluation clamps to [0, 1]) or ``"relu"``.
        points_per_chunk: points decoded at once by ``forward`` (bounds its memory, not its result).
    """

    uses_geometry: bool = True
    samples_points: bool = True

    def __init__(
        self,
        cube: int = 128,
        views: Sequence[str] = VIEW_NAMES,
        encoder_channels: Sequence[int] = (32, 64, 128, 128),
        encoder_convs: int = 2,
        encoder_top_down: bool = True,
        sample_raw_xrays: bool = True,
        fusion: str = "concat",
        shared_encoder: bool = False,
        position_channels: bool = True,
        hidden_channels: int = 128,
        hidden_layers: int = 3,
        output_activation: str = "none",
        points_per_chunk: int = DEFAULT_POINTS_PER_CHUNK,
    ) -> None:
        super().__init__()
        self.views = checked_view_names(views, VIEW_NAMES)
        if fusion not in POINT_FUSIONS:
            raise ValueError(f"fusion must be one of {POINT_FUSIONS}, got {fusion!r}")
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"output_activation must be one of {OUTPUT_ACTIVATIONS}, got {output_activation!r}")
        if not encoder_channels or any(int(c) < 1 for c in encoder_channels):
            raise ValueError(f"encoder_channels must be positive widths, got {tuple(encoder_channels)}")
        if int(cube) < 1 or int(hidden_channels) < 1 or int(hidden_layers) < 1 or int(points_per_chunk) < 1:
            raise ValueError("cube, hidden_channels, hidden_layers and points_per_chunk must be >= 1")
        self.cube = int(cube)
        self.fusion = fusion
        self.sample_raw_xrays = bool(sample_raw_xrays)
        self.position_channels = bool(position_channels)
        self.output_activation = output_activation
        self.points_per_chunk = int(points_per_chunk)
        encoder_names = ("shared",) if shared_encoder else self.views
        self.encoders = nn.ModuleDict(
            {n: ViewEncoder2D(encoder_channels, encoder_convs, encoder_top_down) for n in encoder_names}
        )
        per_view = sum(int(c) for c in encoder_channels) + (XRAY_CHANNELS if self.sample_raw_xrays else 0)
        fused = per_view * (len(self.views) if fusion == "concat" else 2)
        layers: list[nn.Module] = []
        width = fused + (POSITION_CHANNELS if self.position_channels else 0)
        for _ in range(int(hidden_layers)):
            layers += [nn.Linear(width, int(hidden_channels)), nn.ReLU()]
            width = int(hidden_channels)
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def _encoder(self, view: str) -> ViewEncoder2D:
        return self.encoders["shared"] if "shared" in self.encoders else self.encoders[view]

    def encode(self, images: Sequence[torch.Tensor], names: Sequence[str]) -> list[list[torch.Tensor]]:
        """Each view's feature maps, fine to coarse, then the raw image (when sampled): a list per view."""
        if not images or len(images) != len(names):
            raise ValueError("encode needs as many images as view names, at least one")
        if self.fusion == "concat" and tuple(names) != self.views:
            raise ValueError(f"fusion='concat' needs exactly the views {self.views} in that order, got {tuple(names)}")
        encoded = []
        for image, name in zip(images, names, strict=True):
            maps = self._encoder(name)(image)
            encoded.append([*maps, image] if self.sample_raw_xrays else maps)
        return encoded

    def decode(
        self, encoded: Sequence[Sequence[torch.Tensor]], projections: Sequence[torch.Tensor], points: torch.Tensor
    ) -> torch.Tensor:
        """CT values (N, M) at ``points`` (N, M, 3) from the views' features (see :meth:`encode`)."""
        if points.dim() != 3 or points.shape[-1] != POSITION_CHANNELS:
            raise ValueError(f"points must be (N, M, 3), got {tuple(points.shape)}")
        homogeneous = torch.cat((points, torch.ones_like(points[..., :1])), dim=-1)
        sampled = []
        for maps, projection in zip(encoded, projections, strict=True):
            grid = project_point_sets(homogeneous, projection).unsqueeze(1).to(maps[0].dtype)  # (N, 1, M, 2)
            reads = [F.grid_sample(m, grid, mode="bilinear", padding_mode="zeros", align_corners=False) for m in maps]
            sampled.append(torch.cat(reads, dim=1)[:, :, 0].transpose(1, 2))  # (N, M, C)
        if self.fusion == "concat":
            features = torch.cat(sampled, dim=-1)
        else:
            stacked = torch.stack(sampled)
            mean = stacked.mean(dim=0)
            features = torch.cat((mean, (stacked - mean).pow(2).mean(dim=0)), dim=-1)
        if self.position_channels:
            features = torch.cat((features, points.to(features.dtype)), dim=-1)
        values = self.mlp(features).squeeze(-1)
        return F.relu(values) if self.output_activation == "relu" else values

    def predict_points(
        self,
        points: torch.Tensor,
        xray1: torch.Tensor | None = None,
        xray2: torch.Tensor | None = None,
        proj_xray1: torch.Tensor | None = None,
        proj_xray2: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """CT values (N, M) at ``points`` (N, M, 3) (x, y, z in [-1, 1]) from the views (what training evaluates)."""
        images, projections = views_with_geometry(self.views, xray1, xray2, proj_xray1, proj_xray2)
        return self.decode(self.encode(images, self.views), projections, points)

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
        """The whole (N, 1, cube, cube, cube) volume from any views the fusion accepts (see :meth:`encode`)."""
        if len(images) != len(projections):
            raise ValueError("forward_views needs one projection per image")
        encoded = self.encode(images, names)
        batch = images[0].shape[0]
        grid = homogeneous_voxel_grid((self.cube,) * 3, images[0].device, images[0].dtype)[:, :POSITION_CHANNELS]
        values = [
            self.decode(encoded, projections, chunk.unsqueeze(0).expand(batch, -1, -1))
            for chunk in grid.split(self.points_per_chunk)
        ]
        return torch.cat(values, dim=1).view(batch, 1, self.cube, self.cube, self.cube)
