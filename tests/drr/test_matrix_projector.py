"""Line integrals along the rays of a projection matrix: aligned views, cone chords, rotation, gradients."""

from __future__ import annotations

import math

import torch

from x2ct.drr.matrix_projector import matrix_rays, project_volume, rotate_about_depth_axis

AP_ALIGNED = torch.tensor([[[1.0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]])  # u = x (W), v = z (D)
LATERAL_ALIGNED = torch.tensor([[[0.0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]])  # u = y (H), v = z (D)
GRID_LENGTH = 2.0  # the volume spans [-1, 1] along each axis


def test_aligned_parallel_views_integrate_along_the_array_axes() -> None:
    torch.manual_seed(0)
    depth, height, width = 6, 8, 4
    volume = torch.rand(2, 1, depth, height, width)
    ap = project_volume(volume, AP_ALIGNED.expand(2, 3, 4), (depth, width), n_samples=height)
    lateral = project_volume(volume, LATERAL_ALIGNED.expand(2, 3, 4), (depth, height), n_samples=width)
    assert torch.allclose(ap, volume.mean(dim=3) * GRID_LENGTH, atol=1e-5)  # xray1[r, c] ~ ct[r, :, c]
    assert torch.allclose(lateral, volume.mean(dim=4) * GRID_LENGTH, atol=1e-5)  # xray2[r, c] ~ ct[r, c, :]


def test_cone_rays_start_at_the_source_and_measure_a_ball_chord() -> None:
    focal, distance = 4.0, 4.0  # source at y = -4 looking along +y
    cone = torch.tensor([[[focal, 0, 0, 0], [0, 0, focal, 0], [0, 1.0, 0, distance]]])
    origins, directions = matrix_rays(cone, torch.tensor([[0.0, 0.0], [0.5, 0.0]]))
    assert torch.allclose(origins[0, 0], torch.tensor([0.0, -distance, 0.0], dtype=torch.float64))
    assert torch.allclose(directions[0, 0], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    assert directions[0, 1, 0] > 0  # off-centre pixels diverge
    size, radius = 48, 0.6
    axis = (2.0 * torch.arange(size) + 1.0) / size - 1.0
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    ball = ((x**2 + y**2 + z**2) <= radius**2).float()[None, None]
    image = project_volume(ball, cone, (33, 33), n_samples=256)
    assert math.isclose(float(image[0, 0, 16, 16]), 2 * radius, rel_tol=0.03)  # the central ray's chord
    assert float(image[0, 0, 0, 0]) == 0.0  # a corner ray misses the ball


def test_turning_the_ap_view_by_90_degrees_gives_the_mirrored_lateral_view() -> None:
    torch.manual_seed(0)
    size = 8
    volume = torch.rand(1, 1, size, size, size)
    turned = rotate_about_depth_axis(AP_ALIGNED, torch.tensor([90.0]))
    assert torch.allclose(
        project_volume(volume, turned, (size, size), size),
        project_volume(volume, LATERAL_ALIGNED, (size, size), size).flip(-1),
        atol=1e-5,
    )


def test_gradients_reach_the_volume() -> None:
    volume = torch.rand(1, 1, 8, 8, 8, requires_grad=True)
    project_volume(volume, rotate_about_depth_axis(LATERAL_ALIGNED, torch.tensor([15.0])), (8, 8), 16).sum().backward()
    assert volume.grad is not None and volume.grad.abs().sum() > 0
