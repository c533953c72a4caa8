"""The pixel-aligned implicit generator: points read their views' features along their true rays."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tests.support.views import AP_ALIGNED, LATERAL_ALIGNED, parallel_view, random_view_inputs
from x2ct.models import RayImplicitGenerator
from x2ct.models.ray_lifting import homogeneous_voxel_grid

CUBE = 16


def tiny_kwargs(**overrides: Any) -> dict[str, Any]:
    kwargs = {"cube": CUBE, "encoder_channels": (4, 8), "encoder_convs": 1, "hidden_channels": 16, "hidden_layers": 2}
    return kwargs | overrides


def inputs(n: int = 2, angle: float = 0.0, seed: int = 0) -> dict[str, torch.Tensor]:
    return random_view_inputs(CUBE, n, angle, seed)


def voxel_points(n: int) -> torch.Tensor:
    """Every voxel centre of the CUBE^3 grid, D slowest, as (n, CUBE^3, 3)."""
    return homogeneous_voxel_grid((CUBE,) * 3)[:, :3].expand(n, -1, -1)


@pytest.mark.parametrize("fusion", ["concat", "mean_var"])
def test_volume_is_the_points_at_every_voxel_in_any_chunking(fusion: str) -> None:
    torch.manual_seed(0)
    net = RayImplicitGenerator(**tiny_kwargs(fusion=fusion, points_per_chunk=1000)).eval()
    batch = inputs()
    with torch.no_grad():
        volume = net(**batch)
        points = net.predict_points(voxel_points(2), **batch)
        net.points_per_chunk = CUBE**3
        whole = net(**batch)
    assert volume.shape == (2, 1, CUBE, CUBE, CUBE)
    torch.testing.assert_close(volume.flatten(1), points)
    torch.testing.assert_close(volume, whole)
    assert volume[0].std() > 0 and not torch.equal(volume[0], volume[1])  # different images -> different volumes


def test_a_point_reads_the_pixels_its_rays_cross() -> None:
    """With a one-level 3x3 encoder without its instance norm (so no context beyond a pixel's neighbours),
    changing the pixel where a point projects in either view changes its value; changing pixels far from both
    projections does not."""
    torch.manual_seed(0)
    net = RayImplicitGenerator(**tiny_kwargs(encoder_channels=(4,), encoder_top_down=False)).eval()
    for encoder in net.encoders.values():
        encoder.levels[0][0][1] = torch.nn.Identity()  # the image-wide statistics of the instance norm
    batch = inputs(n=1, angle=0.0)
    x, y, z = 0.3125, -0.4375, 0.0625  # a voxel centre of the 16^3 grid: (2i + 1) / 16 - 1
    point = torch.tensor([[[x, y, z]]])
    col, row = (lambda u: int((u + 1) * CUBE / 2)), (lambda v: int((v + 1) * CUBE / 2))

    def value(**changed: torch.Tensor) -> float:
        with torch.no_grad():
            return float(net.predict_points(point, **(batch | changed))[0, 0])

    reference = value()
    ap = batch["xray1"].clone()
    ap[0, 0, row(z), col(x)] += 1.0  # the AP ray through the point: (u, v) = (x, z)
    lateral = batch["xray2"].clone()
    lateral[0, 0, row(z), col(y)] += 1.0  # the lateral ray: (u, v) = (y, z)
    far = batch["xray1"].clone()
    far[0, 0, :, : col(x) - 3] += 1.0
    far[0, 0, :, col(x) + 4 :] += 1.0
    assert abs(value(xray1=ap) - reference) > 1e-4
    assert abs(value(xray2=lateral) - reference) > 1e-4
    assert value(xray1=far) == pytest.approx(reference, abs=1e-6)


def test_output_depends_on_the_geometry_and_other_image_sizes_are_read() -> None:
    torch.manual_seed(0)
    net = RayImplicitGenerator(**tiny_kwargs()).eval()
    with torch.no_grad():
        at_90 = net(**inputs(angle=0.0))
        at_75 = net(**inputs(angle=15.0))
        bigger = {
            k: v.repeat_interleave(2, -1).repeat_interleave(2, -2) if k.startswith("xray") else v
            for k, v in inputs(angle=0.0).items()
        }
        from_bigger = net(**bigger)
    assert (at_90 - at_75).abs().max() > 1e-4
    assert from_bigger.shape == at_90.shape


@pytest.mark.parametrize("shared", [True, False])
def test_gradients_reach_both_encoders_through_the_sampling(shared: bool) -> None:
    torch.manual_seed(0)
    net = RayImplicitGenerator(**tiny_kwargs(shared_encoder=shared))
    batch = inputs()
    batch["xray1"].requires_grad_(True)
    batch["xray2"].requires_grad_(True)
    points = torch.rand(2, 50, 3) * 2 - 1
    net.predict_points(points, **batch).square().mean().backward()
    assert batch["xray1"].grad.abs().sum() > 0 and batch["xray2"].grad.abs().sum() > 0
    for name, encoder in net.encoders.items():
        first_conv = encoder.levels[0][0][0]
        assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0, name
    assert set(net.encoders) == ({"shared"} if shared else {"xray1", "xray2"})


def test_views_single_or_more_with_mean_var_fusion() -> None:
    torch.manual_seed(0)
    single = RayImplicitGenerator(**tiny_kwargs(views=("xray2",)))
    batch = inputs()
    assert single(xray2=batch["xray2"], proj_xray2=batch["proj_xray2"]).shape == (2, 1, CUBE, CUBE, CUBE)
    with pytest.raises(ValueError, match="xray2"):
        single(xray1=batch["xray1"], proj_xray1=batch["proj_xray1"])
    any_number = RayImplicitGenerator(**tiny_kwargs(fusion="mean_var", shared_encoder=True))
    images = [torch.rand(1, 1, CUBE, CUBE) for _ in range(3)]
    matrices = [AP_ALIGNED[None], LATERAL_ALIGNED[None], parallel_view(30.0)[None]]
    assert any_number.forward_views(images, matrices, ["xray1", "xray2", "xray2"]).shape == (1, 1, CUBE, CUBE, CUBE)
    with pytest.raises(ValueError, match="concat"):
        RayImplicitGenerator(**tiny_kwargs()).forward_views(images, matrices, ["xray1", "xray2", "xray2"])


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="views"):
        RayImplicitGenerator(**tiny_kwargs(views=("xray3",)))
    with pytest.raises(ValueError, match="fusion"):
        RayImplicitGenerator(**tiny_kwargs(fusion="max"))
    with pytest.raises(ValueError, match="output_activation"):
        RayImplicitGenerator(**tiny_kwargs(output_activation="tanh"))
    with pytest.raises(ValueError, match=r"points must be \(N, M, 3\)"):
        RayImplicitGenerator(**tiny_kwargs()).predict_points(torch.zeros(2, 5), **inputs())
