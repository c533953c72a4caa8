"""Parallel views in the batch contract's frame and random view inputs for the geometry-aware generators' tests."""

from __future__ import annotations

import math

import torch

AP_ALIGNED = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])  # (x, y, z) -> (u, v) = (x, z)
LATERAL_ALIGNED = torch.tensor([[0.0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])  # (x, y, z) -> (u, v) = (y, z)


def parallel_view(angle_deg: float) -> torch.Tensor:
    """A parallel view (3, 4) turned by ``angle_deg`` about the D (z) axis from the aligned lateral view."""
    a = math.radians(angle_deg)
    return torch.tensor([[-math.sin(a), math.cos(a), 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])


def random_view_inputs(size: int, n: int = 2, angle: float = 0.0, seed: int = 0) -> dict[str, torch.Tensor]:
    """Generator keyword inputs: random (n, 1, size, size) images, the aligned AP view and the lateral view turned
    by ``angle``."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "xray1": torch.rand(n, 1, size, size, generator=generator),
        "xray2": torch.rand(n, 1, size, size, generator=generator),
        "proj_xray1": AP_ALIGNED[None].expand(n, 3, 4).clone(),
        "proj_xray2": parallel_view(angle)[None].expand(n, 3, 4).clone(),
    }
