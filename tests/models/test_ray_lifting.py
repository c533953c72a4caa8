"""Lifting 2D features along the rays of a projection matrix: placement, cone magnification, fusion, caching."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from x2ct.models.axes import xray_to_ct_volume
from x2ct.models.ray_lifting import (
    SamplingGridCache,
    fuse_lifted,
    homogeneous_voxel_grid,
    lift_view,
    normalized_axis,
    project_points,
)

# Aligned parallel views of the X2CT convention (grid x along W, y along H, z along D; image u = cols, v = rows).
AP_ALIGNED = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])  # u = x (W), v = z (D)
LATERAL_ALIGNED = torch.tensor([[0.0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])  # u = y (H), v = z (D)


def batch_of(matrix: torch.Tensor, n: int = 1) -> torch.Tensor:
    return matrix[None].expand(n, 3, 4).clone()


def test_voxel_grid_is_voxel_centres_with_d_slowest() -> None:
    points = homogeneous_voxel_grid((2, 3, 4))
    assert points.shape == (24, 4)
    assert torch.allclose(normalized_axis(4), torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    # index (d=1, h=2, w=3) is the last point: x = 0.75 (W), y = 2/3 (H), z = 0.5 (D)
    assert torch.allclose(points[-1], torch.tensor([0.75, 2.0 / 3.0, 0.5, 1.0]))
    assert torch.allclose(points[1], torch.tensor([-0.25, -2.0 / 3.0, -0.5, 1.0]))  # next along W first


def test_aligned_matrices_reproduce_the_x2ct_axis_copy_exactly() -> None:
    torch.manual_seed(0)
    depth, height, width = 6, 5, 4
    xray1 = torch.rand(2, 3, depth, width)
    xray2 = torch.rand(2, 3, depth, height)
    lifted1 = lift_view(xray1, batch_of(AP_ALIGNED, 2), (depth, height, width))
    lifted2 = lift_view(xray2, batch_of(LATERAL_ALIGNED, 2), (depth, height, width))
    assert torch.allclose(lifted1, xray_to_ct_volume(xray1, "xray1", ray_length=height), atol=1e-6)
    assert torch.allclose(lifted2, xray_to_ct_volume(xray2, "xray2", ray_length=width), atol=1e-6)


def test_lifting_is_invariant_to_the_image_resolution() -> None:
    """Normalized coordinates: a 2x nearest-up-sampled image lifts to exactly the same volume."""
    torch.manual_seed(1)
    image = torch.rand(1, 2, 8, 8)
    bigger = F.interpolate(image, scale_factor=2, mode="nearest")
    shape = (8, 8, 8)
    assert torch.allclose(lift_view(image, batch_of(AP_ALIGNED), shape), lift_view(bigger, batch_of(AP_ALIGNED), shape))


def test_cone_matrix_magnifies_with_depth_and_reads_the_right_pixel() -> None:
    """A cone beam along +y from y = -3 (grid units) with focal scale f: u = f x / (y + 3), v = f z / (y + 3)."""
    focal, distance = 3.0, 3.0
    cone = torch.tensor([[focal, 0, 0, 0], [0, 0, focal, 0], [0, 1.0, 0, distance]])
    size = 16
    points = homogeneous_voxel_grid((size, size, size))
    uv = project_points(points, batch_of(cone))[0].view(size, size, size, 2)
    # the same (x, z) voxel column seen nearer the source (y < 0) lands further from the centre
    near, far = uv[12, 0, 12], uv[12, size - 1, 12]
    assert (near.abs() > far.abs()).all()
    expected_near = (
        focal
        * points.view(size, size, size, 4)[12, 0, 12, 0]
        / (points.view(size, size, size, 4)[12, 0, 12, 1] + distance)
    )
    assert torch.isclose(near[0], expected_near)
    # a single bright pixel lights exactly the voxels whose rays pass through it
    image = torch.zeros(1, 1, 32, 32)
    image[0, 0, 20, 24] = 1.0
    lifted = lift_view(image, batch_of(cone), (size, size, size))[0, 0]
    brightest = torch.nonzero(lifted == lifted.max())[0]
    u_pixel = ((uv[tuple(brightest)][0] + 1) * 32 - 1) / 2
    v_pixel = ((uv[tuple(brightest)][1] + 1) * 32 - 1) / 2
    assert abs(u_pixel - 24) < 1 and abs(v_pixel - 20) < 1


def test_points_behind_a_cone_source_read_zero() -> None:
    cone = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 1.0, 0, 0.0]])  # source at y = 0, inside the grid
    lifted = lift_view(torch.ones(1, 1, 8, 8), batch_of(cone), (4, 4, 4))[0, 0]
    assert (lifted[:, :2] == 0).all()  # y < 0: behind the source
    assert (lifted[:, 2:] > 0).any()


def test_fusion_mean_and_variance_are_symmetric_in_the_views() -> None:
    a, b = torch.rand(1, 2, 3, 3, 3), torch.rand(1, 2, 3, 3, 3)
    fused = fuse_lifted([a, b])
    assert fused.shape == (1, 4, 3, 3, 3)
    assert torch.allclose(fused[:, :2], (a + b) / 2)
    assert torch.allclose(fused[:, 2:], ((a - b) / 2).pow(2))
    assert torch.allclose(fuse_lifted([b, a]), fused)
    single = fuse_lifted([a])
    assert torch.equal(single[:, :2], a) and (single[:, 2:] == 0).all()
    assert fuse_lifted([a, b], "mean").shape == (1, 2, 3, 3, 3)
    with_product = fuse_lifted([a, b], "mean_var_prod")
    assert torch.allclose(with_product[:, :4], fused) and torch.allclose(with_product[:, 4:], a * b)
    assert torch.allclose(fuse_lifted([b, a], "mean_var_prod"), with_product)


def test_grid_cache_reuses_grids_per_geometry() -> None:
    cache = SamplingGridCache(max_entries=2)
    image = torch.rand(1, 1, 8, 8)
    first = lift_view(image, batch_of(AP_ALIGNED), (8, 8, 8), cache)
    again = lift_view(image, batch_of(AP_ALIGNED), (8, 8, 8), cache)
    other = lift_view(image, batch_of(LATERAL_ALIGNED), (8, 8, 8), cache)
    assert torch.equal(first, again) and not torch.allclose(first, other)
    assert (cache.hits, cache.misses) == (1, 2)
    lift_view(image, batch_of(AP_ALIGNED), (4, 4, 4), cache)  # a third entry evicts the oldest
    assert len(cache._grids) == 2


def test_grid_cache_reads_a_matrix_from_the_device_once_and_follows_in_place_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = SamplingGridCache()
    image = torch.rand(1, 1, 8, 8)
    matrix = batch_of(AP_ALIGNED)
    reads = []
    original = torch.Tensor.cpu
    monkeypatch.setattr(torch.Tensor, "cpu", lambda self, *a, **k: reads.append(1) or original(self, *a, **k))
    for size in (8, 4, 2):
        lift_view(image, matrix, (size, size, size), cache)
    assert len(reads) == 1  # three scales, one host read
    before = lift_view(image, matrix, (8, 8, 8), cache)
    matrix.copy_(batch_of(LATERAL_ALIGNED))  # changed in place: a new version, new values
    after = lift_view(image, matrix, (8, 8, 8), cache)
    assert len(reads) == 2 and not torch.allclose(before, after)


def test_lifting_passes_gradients_to_the_features() -> None:
    features = torch.rand(1, 2, 8, 8, requires_grad=True)
    lift_view(features, batch_of(LATERAL_ALIGNED), (8, 8, 8)).sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0


def test_grid_cache_takes_inference_tensors() -> None:
    """Lightning's test loop collates batches under inference mode: their matrices have no version counter."""
    cache = SamplingGridCache()
    image = torch.rand(1, 1, 8, 8)
    expected = lift_view(image, batch_of(LATERAL_ALIGNED), (8, 8, 8), cache)
    with torch.inference_mode():
        matrix = batch_of(LATERAL_ALIGNED).clone()
        assert matrix.is_inference()
        lifted = lift_view(image, matrix, (8, 8, 8), cache)
    assert torch.equal(lifted, expected) and cache.hits == 1
