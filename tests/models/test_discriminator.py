"""PatchDiscriminator3D: paper parameter count and patch map, layer facts, conditioning axes, validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from x2ct.models import PatchDiscriminator3D

PAPER_DISCRIMINATOR_PARAMETERS = 11_055_169  # official basic3d, 3 input channels, ndf 64, 3 layers, instance3d


def test_paper_parameter_count_and_patch_map() -> None:
    discriminator = PatchDiscriminator3D()
    assert sum(p.numel() for p in discriminator.parameters()) == PAPER_DISCRIMINATOR_PARAMETERS
    assert discriminator.output_size(128) == 19


def test_paper_layer_facts() -> None:
    convs = [m for m in PatchDiscriminator3D().modules() if isinstance(m, nn.Conv3d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert all(c.kernel_size == (4, 4, 4) and c.padding == (2, 2, 2) for c in convs)
    assert [c.bias is not None for c in convs] == [True, False, False, False, True]
    norms = [m for m in PatchDiscriminator3D().modules() if isinstance(m, nn.InstanceNorm3d)]
    assert len(norms) == 3 and not any(n.affine for n in norms)


@pytest.mark.parametrize("size", [16, 24, 32])
def test_output_size_matches_a_forward_pass(size: int) -> None:
    discriminator = PatchDiscriminator3D(base_channels=4)
    ct, xray1, xray2 = torch.rand(2, 1, size, size, size), torch.rand(2, 1, size, size), torch.rand(2, 1, size, size)
    patch = discriminator.output_size(size)
    assert discriminator(ct, xray1, xray2).shape == (2, 1, patch, patch, patch)
    assert discriminator.output_size(32) == 7  # 32 -> 17 -> 9 -> 5 -> 6 -> 7


def test_condition_copies_xray1_along_h_and_xray2_along_w() -> None:
    depth, height, width = 5, 6, 7  # distinct, so a wrong axis cannot even broadcast
    ct = torch.rand(2, 1, depth, height, width)
    xray1 = torch.rand(2, 1, depth, width)
    xray2 = torch.rand(2, 1, depth, height)
    stacked = PatchDiscriminator3D(base_channels=4).condition(ct, xray1, xray2)
    assert stacked.shape == (2, 3, depth, height, width)
    for h in range(height):
        assert torch.equal(stacked[:, 0, :, h, :], xray1[:, 0])  # xray1[r, c] -> ct[r, :, c]
    for w in range(width):
        assert torch.equal(stacked[:, 1, :, :, w], xray2[:, 0])  # xray2[r, c] -> ct[r, c, :]
    assert torch.equal(stacked[:, 2:], ct)


def test_logits_depend_on_each_condition_and_on_the_ct() -> None:
    torch.manual_seed(0)
    discriminator = PatchDiscriminator3D(base_channels=4).eval()
    ct, xray1, xray2 = torch.rand(1, 1, 16, 16, 16), torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        logits = discriminator(ct, xray1, xray2)
        assert not torch.allclose(discriminator(ct, torch.rand(1, 1, 16, 16), xray2), logits)
        assert not torch.allclose(discriminator(ct, xray1, torch.rand(1, 1, 16, 16)), logits)
        assert not torch.allclose(discriminator(torch.rand(1, 1, 16, 16, 16), xray1, xray2), logits)
        assert torch.equal(discriminator(ct, xray1, xray2), logits)


def test_unconditional_discriminator() -> None:
    discriminator = PatchDiscriminator3D(in_channels=1, base_channels=4)
    assert discriminator(torch.rand(1, 1, 16, 16, 16)).shape == (1, 1, 5, 5, 5)
    with pytest.raises(ValueError, match="built for 1 input channels, got 3"):
        discriminator(torch.rand(1, 1, 16, 16, 16), torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16))


def test_bad_inputs_are_rejected() -> None:
    discriminator = PatchDiscriminator3D(base_channels=4)
    ct = torch.rand(1, 1, 8, 10, 12)
    with pytest.raises(ValueError, match=r"xray1 must have shape \(N, 1, D, W\) = \(1, 1, 8, 12\)"):
        discriminator(ct, torch.rand(1, 1, 8, 10), torch.rand(1, 1, 8, 10))
    with pytest.raises(ValueError, match=r"xray2 must have shape \(N, 1, D, H\) = \(1, 1, 8, 10\)"):
        discriminator(ct, torch.rand(1, 1, 8, 12), torch.rand(1, 1, 8, 12))
    with pytest.raises(ValueError, match="both X-rays"):
        discriminator(ct, torch.rand(1, 1, 8, 12))
    with pytest.raises(ValueError, match="built for 3 input channels, got 1"):
        discriminator(ct)
    with pytest.raises(ValueError, match=r"ct must be \(N, C, D, H, W\)"):
        discriminator(torch.rand(1, 8, 10, 12))
    with pytest.raises(ValueError, match="n_layers must be a positive integer"):
        PatchDiscriminator3D(n_layers=0)
    with pytest.raises(ValueError, match="too small"):
        PatchDiscriminator3D(base_channels=4, padding=0).output_size(8)
