"""Which voxels a point-sampled training step evaluates (for generators that predict any points, such as
:class:`x2ct.models.ray_implicit_generator.RayImplicitGenerator`).

A step draws ``points`` voxels per case: a ``foreground_fraction`` of them uniformly among the voxels whose ground
truth is at least ``foreground_hu`` (the body: soft tissue and bone, where the structure is), the rest uniformly in
the whole volume (so that air and the body outline are learnt too). A case with no foreground voxel draws all its
points uniformly. Draws use torch's global generator (seeded by the training's seed). Points are voxel centres, so
the ground truth at a point is the voxel's value: no interpolation of the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from x2ct.data.normalization import CTWindow
from x2ct.models.ray_lifting import normalized_axis

DEFAULT_FOREGROUND_HU: float = -300.0  # above fat and lung, below every soft tissue: "inside the body"


@dataclass(frozen=True)
class PointSampling:
    """Point-sampled training: ``points`` voxels per case and step (0: train on whole volumes).

    Attributes:
        points: voxels evaluated per case and step (0 turns point sampling off).
        foreground_fraction: share of them drawn among voxels with ground truth >= ``foreground_hu``.
        foreground_hu: the foreground threshold (HU).
    """

    points: int = 0
    foreground_fraction: float = 0.5
    foreground_hu: float = DEFAULT_FOREGROUND_HU

    def __post_init__(self) -> None:
        if int(self.points) < 0:
            raise ValueError(f"point_sampling.points must be >= 0, got {self.points}")
        if not 0.0 <= float(self.foreground_fraction) <= 1.0:
            raise ValueError(f"point_sampling.foreground_fraction must be in [0, 1], got {self.foreground_fraction}")

    @property
    def enabled(self) -> bool:
        return int(self.points) > 0

    def foreground_threshold(self, ct_window_hu: tuple[float, float]) -> float:
        """``foreground_hu`` on the [0, 1] scale of ``ct_window_hu``."""
        window = CTWindow.from_pair(ct_window_hu)
        return (float(self.foreground_hu) - window.low_hu) / window.width_hu


def sample_voxel_indices(
    volume: torch.Tensor, n_points: int, foreground_fraction: float, threshold: float
) -> torch.Tensor:
    """Flat voxel indices (N, n_points) into each case of ``volume`` (N, 1, D, H, W) (see the module docstring)."""
    if volume.dim() != 5 or volume.shape[1] != 1:
        raise ValueError(f"volume must be (N, 1, D, H, W), got {tuple(volume.shape)}")
    flat = volume.detach().flatten(1)
    n_voxels = flat.shape[1]
    rows = []
    for values in flat:
        foreground = torch.nonzero(values >= threshold).squeeze(1)
        n_foreground = round(n_points * foreground_fraction) if foreground.numel() else 0
        chosen = foreground[torch.randint(foreground.numel() or 1, (n_foreground,), device=flat.device)]
        uniform = torch.randint(n_voxels, (n_points - n_foreground,), device=flat.device)
        rows.append(torch.cat((chosen, uniform)))
    return torch.stack(rows)


def voxel_centres(indices: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Coordinates (N, M, 3) ``(x, y, z)`` in [-1, 1] (x along W, y along H, z along D; ``align_corners=False``
    centres, the frame of :mod:`x2ct.models.ray_lifting`) of flat indices (N, M) into a (D, H, W) grid."""
    depth, height, width = (int(s) for s in shape)
    axes = [normalized_axis(n, indices.device) for n in (width, height, depth)]
    w = indices % width
    h = (indices // width) % height
    d = indices // (width * height)
    return torch.stack((axes[0][w], axes[1][h], axes[2][d]), dim=-1)


def values_at(volume: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """The values (N, M) of ``volume`` (N, 1, D, H, W) at flat indices (N, M)."""
    return volume.flatten(1).gather(1, indices)
