"""Which voxels a point-sampled training step evaluates."""

from __future__ import annotations

import pytest
import torch

from x2ct.models.point_sampling import PointSampling, sample_voxel_indices, values_at, voxel_centres
from x2ct.models.ray_lifting import homogeneous_voxel_grid


def test_voxel_centres_are_the_lifting_frame_of_flat_indices() -> None:
    shape = (3, 4, 5)
    every = torch.arange(3 * 4 * 5)[None]
    torch.testing.assert_close(voxel_centres(every, shape)[0], homogeneous_voxel_grid(shape)[:, :3])


def test_values_at_reads_the_flat_voxels() -> None:
    volume = torch.arange(2 * 8, dtype=torch.float32).view(2, 1, 2, 2, 2)
    assert values_at(volume, torch.tensor([[0, 7], [1, 2]])).tolist() == [[0.0, 7.0], [9.0, 10.0]]


def test_the_foreground_share_is_drawn_inside_the_foreground_and_the_rest_anywhere() -> None:
    volume = torch.zeros(2, 1, 8, 8, 8)
    volume[0, 0, 2:4, 2:4, 2:4] = 1.0  # 8 foreground voxels of 512
    torch.manual_seed(0)
    indices = sample_voxel_indices(volume, 1000, 0.5, threshold=0.5)
    assert indices.shape == (2, 1000)
    inside = values_at(volume, indices) >= 0.5
    assert inside[0, :500].all()  # the foreground half
    assert inside[0, 500:].float().mean() < 0.1  # uniform: about 8 / 512 of them
    assert not inside[1].any()  # no foreground in case 1: all uniform
    assert indices[1].unique().numel() > 300  # spread over the volume
    torch.manual_seed(0)
    assert torch.equal(sample_voxel_indices(volume, 1000, 0.5, threshold=0.5), indices)  # seeded


def test_settings_are_checked_and_the_threshold_is_on_the_volume_scale() -> None:
    assert not PointSampling().enabled and PointSampling(points=10).enabled
    assert PointSampling(foreground_hu=226.0).foreground_threshold((-1024.0, 1476.0)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="points"):
        PointSampling(points=-1)
    with pytest.raises(ValueError, match="foreground_fraction"):
        PointSampling(points=8, foreground_fraction=1.5)
    with pytest.raises(ValueError, match="volume"):
        sample_voxel_indices(torch.zeros(8, 8, 8), 4, 0.5, 0.5)
