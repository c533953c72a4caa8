"""The geometry-aware ray-lifting generator and the ray-conditioned discriminator."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tests.support.views import AP_ALIGNED, LATERAL_ALIGNED, parallel_view, random_view_inputs
from x2ct.models import PatchDiscriminator3D, RayLiftingGenerator

CUBE = 16


def tiny_kwargs(**overrides: Any) -> dict[str, Any]:
    kwargs = {
        "cube": CUBE,
        "encoder_channels": (4, 8, 8),
        "lifted_channels": (2, 4, 4),
        "decoder_channels": (4, 8, 8),
        "decoder_convs": (1, 1, 1),
        "encoder_convs": 1,
    }
    return kwargs | overrides


def inputs(n: int = 2, angle: float = 0.0, seed: int = 0) -> dict[str, torch.Tensor]:
    return random_view_inputs(CUBE, n, angle, seed)


@pytest.mark.parametrize("fusion", ["mean_var", "mean", "mean_var_prod"])
def test_output_shape_and_range(fusion: str) -> None:
    torch.manual_seed(0)
    out = RayLiftingGenerator(**tiny_kwargs(fusion=fusion))(**inputs())
    assert out.shape == (2, 1, CUBE, CUBE, CUBE)
    assert (out >= 0).all()  # ReLU head


def test_output_depends_on_the_geometry() -> None:
    """Same images, a lateral view at another angle -> another volume; same angle -> same volume."""
    torch.manual_seed(0)
    net = RayLiftingGenerator(**tiny_kwargs()).eval()
    with torch.no_grad():
        at_90 = net(**inputs(angle=0.0))
        again = net(**inputs(angle=0.0))
        at_75 = net(**inputs(angle=15.0))
    assert torch.equal(at_90, again)
    assert (at_90 - at_75).abs().max() > 1e-4


def test_views_can_be_any_subset_and_images_any_size() -> None:
    torch.manual_seed(0)
    single = RayLiftingGenerator(**tiny_kwargs(views=("xray2",)))
    batch = inputs()
    out = single(xray2=batch["xray2"], proj_xray2=batch["proj_xray2"])
    assert out.shape == (2, 1, CUBE, CUBE, CUBE)
    with pytest.raises(ValueError, match="xray2"):
        single(xray1=batch["xray1"], proj_xray1=batch["proj_xray1"])
    bigger = {
        k: torch.nn.functional.interpolate(v, scale_factor=2) if k.startswith("xray") else v for k, v in batch.items()
    }
    assert RayLiftingGenerator(**tiny_kwargs())(**bigger).shape == (2, 1, CUBE, CUBE, CUBE)


def test_three_views_through_forward_views() -> None:
    torch.manual_seed(0)
    net = RayLiftingGenerator(**tiny_kwargs())
    images = [torch.rand(1, 1, CUBE, CUBE) for _ in range(3)]
    matrices = [AP_ALIGNED[None], LATERAL_ALIGNED[None], parallel_view(30.0)[None]]
    assert net.forward_views(images, matrices, ["xray1", "xray2", "xray2"]).shape == (1, 1, CUBE, CUBE, CUBE)


@pytest.mark.parametrize("shared", [True, False])
def test_gradients_reach_both_encoders_through_the_lifting(shared: bool) -> None:
    torch.manual_seed(0)
    net = RayLiftingGenerator(**tiny_kwargs(shared_encoder=shared))
    batch = inputs()
    batch["xray1"].requires_grad_(True)
    batch["xray2"].requires_grad_(True)
    net(**batch).square().mean().backward()
    assert batch["xray1"].grad.abs().sum() > 0 and batch["xray2"].grad.abs().sum() > 0
    for name, encoder in net.encoders.items():
        first_conv = encoder.levels[0][0][0]
        assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0, name
    assert set(net.encoders) == ({"shared"} if shared else {"xray1", "xray2"})


def test_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    plain = RayLiftingGenerator(**tiny_kwargs())
    checkpointed = RayLiftingGenerator(**tiny_kwargs(checkpointing=True))
    checkpointed.load_state_dict(plain.state_dict())
    for net in (plain, checkpointed):
        net(**inputs()).square().mean().backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6), name


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="views"):
        RayLiftingGenerator(**tiny_kwargs(views=("xray3",)))
    with pytest.raises(ValueError, match="lifted_channels"):
        RayLiftingGenerator(**tiny_kwargs(lifted_channels=(2, 4)))
    with pytest.raises(ValueError, match="cube"):
        RayLiftingGenerator(**tiny_kwargs(cube=18))


def test_ray_conditioned_discriminator_matches_the_axis_copy_for_aligned_views() -> None:
    torch.manual_seed(0)
    axis = PatchDiscriminator3D(base_channels=4)
    rays = PatchDiscriminator3D(base_channels=4, conditioning="rays")
    rays.load_state_dict(axis.state_dict())
    batch = inputs(angle=0.0)
    ct = torch.rand(2, 1, CUBE, CUBE, CUBE)
    expected = axis(ct, batch["xray1"], batch["xray2"])
    got = rays(ct, **batch)
    assert torch.allclose(expected, got, atol=1e-5)
    turned = rays(ct, **inputs(angle=15.0))
    assert not torch.allclose(expected, turned, atol=1e-4)
    with pytest.raises(ValueError, match="proj_xray1"):
        rays(ct, batch["xray1"], batch["xray2"])


@pytest.mark.parametrize("top_down", [False, True])
def test_top_down_encoder_gives_fine_features_the_whole_image_as_context(top_down: bool) -> None:
    from x2ct.models.ray_lifting_generator import ViewEncoder2D

    torch.manual_seed(0)
    encoder = ViewEncoder2D((4, 8, 8, 8), convs_per_level=1, top_down=top_down).eval()
    for name, module in list(encoder.named_modules()):  # instance norm mixes the whole image: take it out
        if isinstance(module, torch.nn.InstanceNorm2d):
            parent, _, child = name.rpartition(".")
            setattr(encoder.get_submodule(parent), child, torch.nn.Identity())
    image = torch.rand(1, 1, 32, 32)
    changed = image.clone()
    changed[..., 16:, 16:] += 1.0  # far outside the few-pixel reach of the fine bottom-up convs at [0, 0]
    with torch.no_grad():
        before, after = encoder(image), encoder(changed)
    assert [f.shape[-1] for f in after] == [32, 16, 8, 4]
    assert [f.shape[1] for f in after] == [4, 8, 8, 8]
    corner_moved = not torch.allclose(before[0][..., :4, :4], after[0][..., :4, :4])
    assert corner_moved == top_down


def test_position_channels_are_the_voxel_coordinates_of_the_lifting_frame() -> None:
    from x2ct.models.ray_lifting import normalized_axis
    from x2ct.models.ray_lifting_generator import voxel_coordinates

    volume = torch.zeros(2, 5, 4, 6, 8)  # (N, C, D, H, W)
    coords = voxel_coordinates(volume)
    assert coords.shape == (2, 3, 4, 6, 8)
    assert torch.equal(coords[1, 0, 2, 3, :], normalized_axis(8))  # x along W
    assert torch.equal(coords[0, 1, 1, :, 5], normalized_axis(6))  # y along H
    assert torch.equal(coords[0, 2, :, 0, 0], normalized_axis(4))  # z along D
    generator = RayLiftingGenerator(
        cube=16,
        encoder_channels=(4, 8),
        lifted_channels=(2, 4),
        decoder_channels=(4, 8),
        decoder_convs=(1, 1),
        position_channels=True,
    )
    assert generator.blocks[-1][0][0].in_channels == 2 * 4 + 3  # mean/var of 4 lifted channels + x, y, z
