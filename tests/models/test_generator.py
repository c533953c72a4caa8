"""BiplanarGenerator / SingleViewGenerator: paper parameter counts, shapes, axis convention, heads, validation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from x2ct.models import (
    BiplanarGenerator,
    SingleViewGenerator,
    ct_to_view,
    fuse_views,
    init_weights,
    view_to_ct,
    xray_to_ct_volume,
)
from x2ct.models.generator import DenseEncoder2D

PAPER_BIPLANAR_PARAMETERS = 61_740_467  # official multiview_network_denseUNetFuse_transposed
PAPER_SINGLE_VIEW_PARAMETERS = 29_384_481  # one official view branch (UNetLike_DownStep5)
# Per view head: one finest-level Conv3d(16, 16, k3) (6,928) + output Conv3d(16, 1, k7) (5,489).
PAPER_VIEW_HEAD_PARAMETERS = 16 * 16 * 27 + 16 + 16 * 343 + 1


def n_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- paper configuration


def test_paper_biplanar_parameter_count_with_and_without_view_heads() -> None:
    assert PAPER_VIEW_HEAD_PARAMETERS == 12_417
    assert n_parameters(BiplanarGenerator(build_view_heads=True)) == PAPER_BIPLANAR_PARAMETERS
    without_heads = n_parameters(BiplanarGenerator(build_view_heads=False))
    assert without_heads == PAPER_BIPLANAR_PARAMETERS - 2 * PAPER_VIEW_HEAD_PARAMETERS == 61_715_633


@pytest.mark.parametrize("view", ["xray1", "xray2"])
def test_paper_single_view_parameter_count(view: str) -> None:
    assert n_parameters(SingleViewGenerator(view=view)) == PAPER_SINGLE_VIEW_PARAMETERS


def test_paper_encoder_channels() -> None:
    encoder = DenseEncoder2D()
    assert encoder.skip_channels == (64, 128, 256, 512, 512)
    assert encoder.out_features == 704


def test_every_generator_conv_has_a_bias_and_norms_are_plain_instance_norms(
    tiny_generator_kwargs: Callable[..., dict],
) -> None:
    generator = BiplanarGenerator(**tiny_generator_kwargs(), build_view_heads=True)
    convs = [m for m in generator.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.modules.instancenorm._InstanceNorm)]
    assert convs and all(c.bias is not None for c in convs)
    assert norms and all(not n.affine and not n.track_running_stats for n in norms)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in generator.modules())


# ---------------------------------------------------------------- shapes and values


@pytest.mark.parametrize(("cube", "n_down"), [(32, 3), (64, 2)])
def test_biplanar_output_shape_and_range(cube: int, n_down: int, tiny_generator_kwargs: Callable[..., dict]) -> None:
    torch.manual_seed(0)
    generator = BiplanarGenerator(**tiny_generator_kwargs(cube, n_down)).eval()
    with torch.no_grad():
        ct = generator(torch.rand(2, 1, cube, cube), torch.rand(2, 1, cube, cube))
    assert ct.shape == (2, 1, cube, cube, cube)
    assert torch.isfinite(ct).all()
    assert ct.min() >= 0 and ct.max() > 0  # final ReLU, not all dead


@pytest.mark.parametrize("view", ["xray1", "xray2"])
def test_single_view_uses_only_its_view(view: str, tiny_generator_kwargs: Callable[..., dict]) -> None:
    torch.manual_seed(0)
    generator = SingleViewGenerator(view=view, **tiny_generator_kwargs(fused=False)).eval()
    chosen, other = torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)
    inputs = {"xray1": chosen, "xray2": other} if view == "xray1" else {"xray1": other, "xray2": chosen}
    with torch.no_grad():
        ct = generator(inputs["xray1"], inputs["xray2"])
        other_changed = dict(inputs, **{"xray2" if view == "xray1" else "xray1": torch.rand(1, 1, 32, 32)})
        chosen_changed = dict(inputs, **{view: torch.rand(1, 1, 32, 32)})
        assert ct.shape == (1, 1, 32, 32, 32) and ct.min() >= 0
        assert torch.equal(generator(**other_changed), ct)
        assert not torch.allclose(generator(**chosen_changed), ct)
        none_other = {view: chosen, ("xray2" if view == "xray1" else "xray1"): None}
        assert torch.equal(generator(**none_other), ct)


def test_dropout_only_in_training_mode(tiny_generator_kwargs: Callable[..., dict]) -> None:
    torch.manual_seed(0)
    generator = BiplanarGenerator(**tiny_generator_kwargs(), dropout=0.5)
    xray1, xray2 = torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert not torch.equal(generator.train()(xray1, xray2), generator(xray1, xray2))
        assert torch.equal(generator.eval()(xray1, xray2), generator(xray1, xray2))


# ---------------------------------------------------------------- axis convention


def test_view_layout_permutations_put_pixels_on_the_right_rays() -> None:
    depth, height, width = 4, 5, 6  # distinct sizes: any axis mix-up changes a shape or a position
    xray1 = torch.zeros(1, 1, depth, width)
    xray1[0, 0, 1, 4] = 1.0
    xray2 = torch.zeros(1, 1, depth, height)
    xray2[0, 0, 2, 3] = 1.0
    volume1 = xray_to_ct_volume(xray1, "xray1", ray_length=height)
    volume2 = xray_to_ct_volume(xray2, "xray2", ray_length=width)
    assert volume1.shape == volume2.shape == (1, 1, depth, height, width)
    expected1 = torch.zeros(depth, height, width)
    expected1[1, :, 4] = 1.0  # xray1[r, c] -> ct[r, :, c]
    expected2 = torch.zeros(depth, height, width)
    expected2[2, 3, :] = 1.0  # xray2[r, c] -> ct[r, c, :]
    assert torch.equal(volume1[0, 0], expected1)
    assert torch.equal(volume2[0, 0], expected2)


def test_connection_c_round_trip_and_average() -> None:
    a, b = torch.rand(2, 3, 4, 5, 6), torch.rand(2, 3, 4, 5, 6)
    for view in ("xray1", "xray2"):
        assert torch.equal(view_to_ct(ct_to_view(a, view), view), a)
    assert ct_to_view(a, "xray1").shape == (2, 3, 5, 4, 6)  # (ray=H, row=D, col=W)
    assert ct_to_view(a, "xray2").shape == (2, 3, 6, 4, 5)  # (ray=W, row=D, col=H)
    assert torch.allclose(fuse_views(ct_to_view(a, "xray1"), ct_to_view(b, "xray2")), (a + b) / 2)


def _window_mass(gradient: torch.Tensor, row: int, col: int, radius: int = 3) -> float:
    return float(gradient[max(row - radius, 0) : row + radius + 1, max(col - radius, 0) : col + radius + 1].sum())


@pytest.fixture(scope="module")
def axis_probe_generator(tiny_generator_kwargs: Callable[..., dict]) -> BiplanarGenerator:
    """A tiny initialised 64^3 generator whose final ReLU is active everywhere (so every voxel passes gradient)."""
    torch.manual_seed(0)
    generator = init_weights(BiplanarGenerator(**tiny_generator_kwargs(cube=64, n_down=2))).eval()
    with torch.no_grad():
        generator.fused.head[0].bias.fill_(10.0)
    return generator


@pytest.mark.parametrize("view", ["xray1", "xray2"])
def test_gradient_of_a_ct_ray_peaks_at_the_matching_xray_pixel(
    axis_probe_generator: BiplanarGenerator, view: str
) -> None:
    """d sum(ct[d, :, w]) / d xray1 peaks at (d, w); d sum(ct[d, h, :]) / d xray2 peaks at (d, h).

    The gradient mass near the right pixel must dominate the mass near the transposed pixel and near both
    mirrored pixels, so a transposed, mirrored or wrong-ray convention fails.
    """
    size = axis_probe_generator.cube
    torch.manual_seed(1)
    xray1 = torch.rand(1, 1, size, size, requires_grad=True)
    xray2 = torch.rand(1, 1, size, size, requires_grad=True)
    ct = axis_probe_generator(xray1, xray2)
    row, col = 12, 52  # (d, w) for xray1, (d, h) for xray2
    ray_sum = ct[:, :, row, :, col].sum() if view == "xray1" else ct[:, :, row, col, :].sum()
    image = xray1 if view == "xray1" else xray2
    gradient = torch.autograd.grad(ray_sum, image)[0][0, 0].abs()
    right = _window_mass(gradient, row, col)
    last = size - 1
    for wrong in [(col, row), (last - row, col), (row, last - col)]:
        assert right > 5 * _window_mass(gradient, *wrong), f"{view}: gradient near {wrong} rivals ({row}, {col})"


def test_perturbing_an_xray1_region_changes_the_ct_mostly_in_that_d_w_box(
    axis_probe_generator: BiplanarGenerator,
) -> None:
    size = axis_probe_generator.cube
    torch.manual_seed(2)
    xray1, xray2 = torch.rand(1, 1, size, size), torch.rand(1, 1, size, size)
    rows, cols = slice(6, 16), slice(44, 54)
    perturbed = xray1.clone()
    perturbed[:, :, rows, cols] += 0.5
    with torch.no_grad():
        change = (axis_probe_generator(perturbed, xray2) - axis_probe_generator(xray1, xray2)).abs()
    change_dw = change[0, 0].mean(dim=1)  # mean over H: (D, W)
    inside = float(change_dw[rows, cols].mean())
    assert inside > 3 * float(change_dw.mean())
    assert inside > 5 * float(change_dw[cols, rows].mean())  # transposed box
    assert inside > 5 * float(change_dw[rows, size - 54 : size - 44].mean())  # mirrored in W
    change_dh = change[0, 0].mean(dim=2)  # mean over W: (D, H); the ray axis H carries no position
    along_h = change_dh[rows].mean(dim=0)
    assert float(along_h.min()) > 0.2 * float(along_h.max())


# ---------------------------------------------------------------- view heads and unused parameters


def test_view_heads_share_the_ct_and_add_only_head_parameters(tiny_generator_kwargs: Callable[..., dict]) -> None:
    torch.manual_seed(0)
    with_heads = BiplanarGenerator(**tiny_generator_kwargs(), build_view_heads=True).eval()
    without_heads = BiplanarGenerator(**tiny_generator_kwargs(), build_view_heads=False).eval()
    result = without_heads.load_state_dict(with_heads.state_dict(), strict=False)
    assert result.missing_keys == []
    assert result.unexpected_keys and all(
        key.startswith(("view1.head", "view2.head")) for key in result.unexpected_keys
    )
    xray1, xray2 = torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        ct, view1_ct, view2_ct = with_heads.forward_with_view_outputs(xray1, xray2)
        assert torch.allclose(ct, with_heads(xray1, xray2))
        assert torch.allclose(ct, without_heads(xray1, xray2))
    assert view1_ct.shape == view2_ct.shape == (1, 1, 32, 32, 32)
    assert not torch.allclose(view1_ct, ct)
    with pytest.raises(RuntimeError, match="build_view_heads"):
        without_heads.forward_with_view_outputs(xray1, xray2)


@pytest.mark.parametrize("build_view_heads", [False, True])
def test_only_the_view_heads_get_no_gradient(
    build_view_heads: bool, tiny_generator_kwargs: Callable[..., dict]
) -> None:
    torch.manual_seed(0)
    generator = BiplanarGenerator(**tiny_generator_kwargs(), build_view_heads=build_view_heads)
    generator(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)).sum().backward()
    no_gradient = {name for name, p in generator.named_parameters() if p.grad is None}
    head_parameters = {
        name for name, _ in generator.named_parameters() if name.startswith(("view1.head", "view2.head"))
    }
    assert no_gradient == head_parameters
    assert bool(head_parameters) == build_view_heads


# ---------------------------------------------------------------- argument validation


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cube": 36}, "multiple of 2\\*\\*3"),
        ({"skip_channels": (4, 4)}, "skip_channels needs 3"),
        ({"decoder_channels": (16, 8, 4)}, "decoder_channels needs 4"),
        ({"view_decoder_convs": (1, 1)}, "view_decoder_convs needs 3"),
        ({"fused_decoder_convs": (1, 1, -1)}, "fused_decoder_convs needs 3 non-negative"),
        ({"dense_layers": ()}, "at least one dense block"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_invalid_architecture_is_rejected(
    overrides: dict, message: str, tiny_generator_kwargs: Callable[..., dict]
) -> None:
    with pytest.raises(ValueError, match=message):
        BiplanarGenerator(**{**tiny_generator_kwargs(), **overrides})


def test_bad_view_name_and_bad_inputs_are_rejected(tiny_generator_kwargs: Callable[..., dict]) -> None:
    with pytest.raises(ValueError, match="view must be one of"):
        SingleViewGenerator(view="xray3", **tiny_generator_kwargs(fused=False))  # type: ignore[arg-type]
    generator = BiplanarGenerator(**tiny_generator_kwargs())
    with pytest.raises(ValueError, match=r"xray1 must have shape \(N, 1, 32, 32\)"):
        generator(torch.rand(1, 1, 64, 64), torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match="xray2 must have shape"):
        generator(torch.rand(1, 1, 32, 32), torch.rand(1, 32, 32))
    with pytest.raises(ValueError, match="batch sizes differ"):
        generator(torch.rand(2, 1, 32, 32), torch.rand(1, 1, 32, 32))
    single = SingleViewGenerator(view="xray2", **tiny_generator_kwargs(fused=False))
    with pytest.raises(ValueError, match="needs the xray2 image"):
        single(torch.rand(1, 1, 32, 32), None)


# ---------------------------------------------------------------- activation checkpointing


def _tiny_generator(single_view: bool, kwargs: Callable[..., dict], **overrides) -> torch.nn.Module:
    if single_view:
        return SingleViewGenerator(**kwargs(fused=False), **overrides)
    return BiplanarGenerator(**kwargs(), **overrides)


def _decoder_modules(generator: torch.nn.Module) -> list[torch.nn.Module]:
    """Modules holding 3D convs that checkpointing recomputes: a Connection-B link, merge, refine and upsample
    convs of a view branch, and (biplanar) a fused level and the other branch's upsampling."""
    if isinstance(generator, SingleViewGenerator):
        branch = generator.branch
        return [branch.connection_b[0], branch.levels[1].merge_conv, branch.levels[1].refine[0], branch.head[0]]
    view1 = generator.view1
    return [
        view1.connection_b[0],
        view1.levels[1].merge_conv,
        view1.levels[1].refine[0],
        view1.levels[0].up,
        generator.view2.levels[2].up,
        generator.fused.levels[1],
    ]


@pytest.mark.parametrize("single_view", [False, True], ids=["biplanar", "single_view"])
def test_checkpointing_gives_the_same_outputs_and_gradients_with_dropout(
    single_view: bool, tiny_generator_kwargs: Callable[..., dict]
) -> None:
    torch.manual_seed(0)
    plain = _tiny_generator(single_view, tiny_generator_kwargs, dropout=0.5).train()
    checkpointed = _tiny_generator(single_view, tiny_generator_kwargs, dropout=0.5, checkpointing=True).train()
    assert plain.state_dict().keys() == checkpointed.state_dict().keys()
    checkpointed.load_state_dict(plain.state_dict())
    xray1, xray2 = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    target = torch.rand(2, 1, 32, 32, 32)

    def step(generator: torch.nn.Module, seed: int) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        inputs = (xray1.clone().requires_grad_(), xray2.clone().requires_grad_())
        torch.manual_seed(seed)
        ct = generator(*inputs)
        (ct - target).abs().mean().backward()
        gradients = [p.grad.clone() for p in generator.parameters()]
        generator.zero_grad(set_to_none=True)
        return ct.detach(), gradients, inputs[0].grad  # xray1: the image both generators use

    ct, gradients, input_gradient = step(plain, seed=1)
    assert not torch.equal(ct, step(plain, seed=2)[0])  # dropout is active: the seed changes the output
    ct_checkpointed, gradients_checkpointed, input_gradient_checkpointed = step(checkpointed, seed=1)
    torch.testing.assert_close(ct_checkpointed, ct, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(input_gradient_checkpointed, input_gradient, rtol=1e-6, atol=1e-7)
    names = [name for name, _ in plain.named_parameters()]
    assert len(gradients) == len(gradients_checkpointed) == len(names)
    for name, expected, actual in zip(names, gradients, gradients_checkpointed, strict=True):
        assert expected.abs().sum() > 0, name
        torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-7, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("single_view", [False, True], ids=["biplanar", "single_view"])
def test_checkpointing_recomputes_the_decoder_only_in_training_with_grad(
    single_view: bool, tiny_generator_kwargs: Callable[..., dict]
) -> None:
    torch.manual_seed(0)
    generator = _tiny_generator(single_view, tiny_generator_kwargs, checkpointing=True)
    assert generator.checkpointing
    calls: dict[int, int] = {}
    modules = _decoder_modules(generator)
    for index, module in enumerate(modules):
        # a pre-hook: the recomputation stops once the saved tensors are back, before a module's forward returns
        module.register_forward_pre_hook(lambda *_, i=index: calls.__setitem__(i, calls.get(i, 0) + 1))
    xray1, xray2 = torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)

    def forward_calls(training: bool, grad: bool) -> list[int]:
        calls.clear()
        generator.train(training)
        with torch.set_grad_enabled(grad):
            ct = generator(xray1, xray2)
            if grad:
                ct.sum().backward()
        return [calls.get(i, 0) for i in range(len(modules))]

    assert forward_calls(training=True, grad=True) == [2] * len(modules)  # forward + recomputation in backward
    assert forward_calls(training=False, grad=True) == [1] * len(modules)
    assert forward_calls(training=True, grad=False) == [1] * len(modules)
    generator.checkpointing = False
    branches = [generator.branch] if single_view else [generator.view1, generator.view2]
    assert not any(branch.checkpointing for branch in branches)
    assert forward_calls(training=True, grad=True) == [1] * len(modules)
