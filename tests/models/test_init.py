"""init_weights: N(0, std) weights and zero biases for convs/linears, N(1, std) for affine norms."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from x2ct.models import BiplanarGenerator, PatchDiscriminator3D, init_weights


def _weight_layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]


@pytest.mark.parametrize("std", [0.02, 0.05])
def test_generator_and_discriminator_weights_follow_the_init(std: float, tiny_generator_kwargs: Callable) -> None:
    torch.manual_seed(0)
    for network in (BiplanarGenerator(**tiny_generator_kwargs()), PatchDiscriminator3D(base_channels=8)):
        assert init_weights(network, std=std) is network
        layers = _weight_layers(network)
        expected = (nn.Conv3d,) if isinstance(network, PatchDiscriminator3D) else (nn.Conv2d, nn.Conv3d)
        assert all(any(isinstance(layer, kind) for layer in layers) for kind in expected)
        weights = torch.cat([layer.weight.detach().flatten() for layer in layers])
        assert weights.std().item() == pytest.approx(std, rel=0.03)
        assert abs(weights.mean().item()) < 0.05 * std
        for layer in layers:
            if layer.weight.numel() >= 2000:  # each big layer on its own, not just the pooled mix
                assert layer.weight.std().item() == pytest.approx(std, rel=0.1)
            if layer.bias is not None:
                assert torch.count_nonzero(layer.bias) == 0


def test_transposed_convs_and_linear_layers_are_initialised(tiny_generator_kwargs: Callable) -> None:
    torch.manual_seed(0)
    generator = init_weights(BiplanarGenerator(**tiny_generator_kwargs()))
    transposed = [m for m in generator.modules() if isinstance(m, nn.ConvTranspose3d)]
    linears = [m for m in generator.modules() if isinstance(m, nn.Linear)]
    assert transposed and linears
    for layer in transposed + linears:
        assert layer.weight.std().item() == pytest.approx(0.02, rel=0.15)
        assert torch.count_nonzero(layer.bias) == 0


def test_affine_norm_layers_get_unit_mean_weights_and_zero_bias() -> None:
    torch.manual_seed(0)
    norm = nn.BatchNorm3d(4096)
    with torch.no_grad():
        norm.bias.fill_(3.0)
    init_weights(nn.Sequential(norm))
    assert norm.weight.mean().item() == pytest.approx(1.0, abs=0.002)
    assert norm.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert torch.count_nonzero(norm.bias) == 0


def test_non_positive_std_is_rejected() -> None:
    with pytest.raises(ValueError, match="std must be > 0"):
        init_weights(nn.Linear(2, 2), std=0.0)
